/*
 * libxg2g: the control core of a live-TV streaming gateway.
 *
 * The only header users include. See docs/conventions.md for the rules every
 * function follows (status codes, last error, ownership, threading).
 */
#ifndef XG2G_H
#define XG2G_H

#include "xg2g_common.h"
#include "xg2g_session.h"
#include "xg2g_store.h"
#include "xg2g_engine.h"
#include "xg2g_http.h"
#include "xg2g_receiver.h"
#include "xg2g_tls.h"

#endif /* XG2G_H */

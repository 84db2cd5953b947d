// Handle structs behind the opaque C types. Each wraps one core object.
#ifndef XG2G_CAPI_HANDLES_H_
#define XG2G_CAPI_HANDLES_H_

#include <memory>
#include <vector>

#include "include/xg2g/xg2g.h"
#include "lib/session/session.h"
#include "lib/store/store.h"

struct xg2g_session {
  xg2g::SessionRecord rep;
};

struct xg2g_session_list {
  std::vector<xg2g_session> items;
};

struct xg2g_store {
  std::unique_ptr<xg2g::Store> rep;
};

#endif  // XG2G_CAPI_HANDLES_H_

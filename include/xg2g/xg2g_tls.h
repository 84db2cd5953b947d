/*
 * libxg2g: TLS certificate checks (computed with the library's private
 * BoringSSL; safe in processes that also load OpenSSL).
 */
#ifndef XG2G_TLS_H
#define XG2G_TLS_H

#include "xg2g_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of xg2g_tls_check(); initialise with XG2G_TLS_CHECK_OPTIONS_INIT. */
typedef struct xg2g_tls_check_options {
  unsigned int version;  /* XG2G_TLS_CHECK_OPTIONS_VERSION */
  int warn_days;         /* expiry warning horizon in days; <= 0 means 30 */
  double warn_fraction;  /* fraction of the lifetime; <= 0 means 0.33 */
  int64_t now_unix;      /* time to check against; 0 means now */
} xg2g_tls_check_options;

#define XG2G_TLS_CHECK_OPTIONS_VERSION 1
#define XG2G_TLS_CHECK_OPTIONS_INIT {XG2G_TLS_CHECK_OPTIONS_VERSION, 30, 0.33, 0}

/* Fills opts with the defaults. Errors: XG2G_EINVAL (NULL), XG2G_EVERSION. Since 0.1. */
XG2G_API(xg2g_status) xg2g_tls_check_options_init(xg2g_tls_check_options *opts,
                                                  unsigned int version);

/*
 * Checks a certificate (chain) file and its private key file and writes the
 * report as JSON into *out_json (free with xg2g_free):
 *   {"valid","errors":[{"code","file","message"}],"warnings":[...],"subject",
 *    "sans":[...],"not_before","not_after","days_left","key_type","key_bits"}
 * A certificate that fails the check is still XG2G_OK: the report says why.
 * opts may be NULL for the defaults.
 * Errors: XG2G_EINVAL (NULL out or path), XG2G_EVERSION (opts->version).
 * Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_tls_check(char **out_json, const char *cert_path,
                                     const char *key_path, const xg2g_tls_check_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* XG2G_TLS_H */

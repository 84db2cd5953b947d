/*
 * libxg2g: common definitions shared by every module.
 *
 * Status codes, the per-thread last error, library-owned memory and versions.
 * This header is C99 and C++ compatible and is included by <xg2g/xg2g.h>.
 */
#ifndef XG2G_COMMON_H
#define XG2G_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "xg2g_version.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#  define XG2G_EXTERN __attribute__((visibility("default")))
#else
#  define XG2G_EXTERN
#endif

/* Declares an exported function: XG2G_API(xg2g_status) xg2g_foo(void); */
#define XG2G_API(type) XG2G_EXTERN type

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Result of every fallible call. 0 is success; failures are fixed negative
 * values that are only ever appended to, never renumbered. The message for
 * the last failure on the calling thread comes from xg2g_last_error().
 */
typedef enum xg2g_status {
  XG2G_OK = 0,
  XG2G_EINVAL = -1,       /* an argument is invalid; the message names it */
  XG2G_ENOMEM = -2,       /* out of memory */
  XG2G_EVERSION = -3,     /* a versioned struct or option has an unknown version */
  XG2G_ENOTFOUND = -4,    /* the session, key or lease does not exist (or expired) */
  XG2G_EEXISTS = -5,      /* the object already exists */
  XG2G_ECONFLICT = -6,    /* a concurrent change or an owner mismatch; nothing was written */
  XG2G_EBUSY = -7,        /* the lease is held by another owner / no free tuner */
  XG2G_ESTATE = -8,       /* the transition is not allowed from the current state */
  XG2G_EUNAVAILABLE = -9, /* the store or an upstream is unreachable; nothing was written */
  XG2G_ECORRUPT = -10,    /* a stored record failed to decode; the message names its key */
  XG2G_ESTOREFULL = -11,  /* the store is out of space */
  XG2G_ETIMEOUT = -12,    /* a deadline passed */
  XG2G_ECANCELLED = -13,  /* the operation was cancelled by the caller */
  XG2G_EIO = -14,         /* an operating-system I/O error */
  XG2G_EUNSUPPORTED = -15,/* the feature or URI scheme is not supported */
  XG2G_EINTERNAL = -16,   /* a bug in libxg2g; the message names the function */
  XG2G_EINFLIGHT = -17,   /* the idempotency key's first request is still being created */
  XG2G_ECIRCUITOPEN = -18 /* a circuit breaker is open: the upstream failed repeatedly and is
                             not called until its open timeout passes (HTTP 503
                             CIRCUIT_OPEN); nothing was sent. Since 0.1. */
} xg2g_status;

/*
 * Stable, static, English name of a status ("XG2G_ENOTFOUND"). Unknown values
 * give "XG2G_UNKNOWN". Never NULL. Thread-safe. Since 0.1.
 */
XG2G_API(const char *) xg2g_status_str(xg2g_status status);

/*
 * Message describing the last failure of a libxg2g call on the calling thread.
 * Reset to "" at the start of every call that returns xg2g_status. Never NULL;
 * valid until the next libxg2g call on the same thread. Since 0.1.
 */
XG2G_API(const char *) xg2g_last_error(void);

/*
 * Frees memory that libxg2g returned to the caller (strings, JSON documents).
 * NULL is ignored. Since 0.1.
 */
XG2G_API(void) xg2g_free(void *ptr);

/* Run-time version of the loaded library. Thread-safe. Since 0.1. */
XG2G_API(void) xg2g_version(int *major, int *minor, int *patch);

/* Run-time version as "MAJOR.MINOR.PATCH"; static storage, never NULL. Since 0.1. */
XG2G_API(const char *) xg2g_version_string(void);

/*
 * Checks that the loaded library is compatible with the header the caller was
 * compiled against: pass XG2G_VERSION_MAJOR and XG2G_VERSION_MINOR.
 * XG2G_OK when the major versions match and the library is at least as new;
 * XG2G_EVERSION otherwise. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_check_version(int major, int minor);

#ifdef __cplusplus
}
#endif

#endif /* XG2G_COMMON_H */

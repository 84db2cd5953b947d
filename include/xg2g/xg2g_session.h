/*
 * libxg2g: the session record and its state machine.
 *
 * A session is what one client's "start watching" intent becomes. Its state
 * only changes through xg2g_session_apply(), which consults the library's one
 * transition table; an illegal transition is XG2G_ESTATE and changes nothing.
 *
 * Handles are not thread-safe: use one handle from one thread at a time.
 * Distinct handles are independent.
 */
#ifndef XG2G_SESSION_H
#define XG2G_SESSION_H

#include "xg2g_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xg2g_session xg2g_session;

typedef enum xg2g_session_state {
  XG2G_STATE_NEW = 0,
  XG2G_STATE_STARTING = 1,
  XG2G_STATE_READY = 2,
  XG2G_STATE_DRAINING = 3,
  XG2G_STATE_STOPPING = 4,
  XG2G_STATE_FAILED = 5,    /* terminal */
  XG2G_STATE_CANCELLED = 6, /* terminal */
  XG2G_STATE_STOPPED = 7    /* terminal */
} xg2g_session_state;

/* Reason codes; their names ("R_LEASE_BUSY") are stable strings. */
typedef enum xg2g_reason {
  XG2G_R_NONE = 0,
  XG2G_R_UNKNOWN = 1,
  XG2G_R_BAD_REQUEST = 2,
  XG2G_R_NOT_FOUND = 3,
  XG2G_R_LEASE_BUSY = 4,
  XG2G_R_TUNE_TIMEOUT = 5,
  XG2G_R_LEASE_EXPIRED = 6,
  XG2G_R_TUNE_FAILED = 7,
  XG2G_R_INVARIANT_VIOLATION = 8,
  XG2G_R_FFMPEG_START_FAILED = 9,
  XG2G_R_PROCESS_ENDED = 10,
  XG2G_R_PACKAGER_FAILED = 11,
  XG2G_R_CANCELLED = 12,
  XG2G_R_IDLE_TIMEOUT = 13,
  XG2G_R_CLIENT_STOP = 14,
  XG2G_R_UPSTREAM_CORRUPT = 15
} xg2g_reason;

/* What happened to a session; the transition table maps (state, event) to the next state. */
typedef enum xg2g_session_event {
  XG2G_EVENT_LEASES_ACQUIRED = 0, /* NEW -> STARTING */
  XG2G_EVENT_HOST_READY = 1,      /* STARTING -> READY */
  XG2G_EVENT_DRAIN = 2,           /* READY -> DRAINING */
  XG2G_EVENT_STOP = 3,            /* NEW -> STOPPED; STARTING/READY/DRAINING -> STOPPING; terminal unchanged */
  XG2G_EVENT_HOST_STOPPED = 4,    /* STOPPING/DRAINING -> STOPPED */
  XG2G_EVENT_HOST_FAILED = 5,     /* non-terminal -> FAILED (STOPPING -> STOPPED, the stop's reason kept) */
  XG2G_EVENT_LEASE_LOST = 6,      /* like HOST_FAILED with R_LEASE_EXPIRED */
  XG2G_EVENT_NO_TUNER = 7,        /* NEW -> FAILED with R_LEASE_BUSY */
  XG2G_EVENT_DEADLINE = 8,        /* NEW/STARTING -> FAILED (R_TUNE_TIMEOUT); DRAINING -> STOPPING; STOPPING -> STOPPED (R_IDLE_TIMEOUT) */
  XG2G_EVENT_IDLE_TIMEOUT = 9,    /* READY -> STOPPING with R_IDLE_TIMEOUT */
  XG2G_EVENT_CANCEL = 10          /* NEW/STARTING -> CANCELLED with R_CANCELLED */
} xg2g_session_event;

/* Stable name of a state ("READY"); "UNKNOWN" for values outside the enum. Since 0.1. */
XG2G_API(const char *) xg2g_session_state_str(xg2g_session_state state);
/* Stable name of a reason ("R_LEASE_BUSY"); "R_UNKNOWN" for values outside the enum. Since 0.1. */
XG2G_API(const char *) xg2g_reason_str(xg2g_reason reason);
/* 1 for FAILED, CANCELLED and STOPPED, else 0. Since 0.1. */
XG2G_API(int) xg2g_session_state_is_terminal(xg2g_session_state state);

/*
 * Creates a session in state NEW for service_ref.
 * session_id: NULL or "" for a fresh random id (128 bits, lowercase hex);
 *   otherwise it must match ^[A-Za-z0-9_-]{1,64}$.
 * profile: profile name, NULL for "default".
 * now_ms: wall-clock time in Unix milliseconds for the timestamps; 0 for "now".
 * Errors: XG2G_EINVAL (NULL out or service_ref, empty service_ref, unsafe id).
 * Ownership: *out is the caller's; end it with xg2g_session_destroy(). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_session_create(xg2g_session **out, const char *session_id,
                                          const char *service_ref, const char *profile,
                                          int64_t now_ms);

/* Frees a session handle. NULL is ignored. Since 0.1. */
XG2G_API(void) xg2g_session_destroy(xg2g_session *session);

/* Copies a session. Errors: XG2G_EINVAL (NULL argument). Since 0.1. */
XG2G_API(xg2g_status) xg2g_session_clone(xg2g_session **out, const xg2g_session *session);

/*
 * Decodes a session record from its JSON form (the names of DESIGN §2).
 * Errors: XG2G_EINVAL (NULL argument), XG2G_ECORRUPT (malformed JSON or
 * fields; the message says which). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_session_from_json(xg2g_session **out, const char *json, size_t len);

/*
 * Encodes a session as JSON into *out (NUL-terminated, free with xg2g_free()).
 * Errors: XG2G_EINVAL (NULL argument). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_session_to_json(char **out, const xg2g_session *session);

/*
 * Read accessors. Strings are borrowed from the handle and valid until it is
 * changed or destroyed; a NULL handle gives NULL (or 0 / XG2G_STATE_NEW /
 * XG2G_R_NONE). Since 0.1.
 */
XG2G_API(const char *) xg2g_session_get_id(const xg2g_session *session);
XG2G_API(const char *) xg2g_session_get_service_ref(const xg2g_session *session);
XG2G_API(const char *) xg2g_session_get_profile(const xg2g_session *session);
XG2G_API(xg2g_session_state) xg2g_session_get_state(const xg2g_session *session);
XG2G_API(xg2g_reason) xg2g_session_get_reason(const xg2g_session *session);
XG2G_API(const char *) xg2g_session_get_reason_detail(const xg2g_session *session);
XG2G_API(const char *) xg2g_session_get_correlation_id(const xg2g_session *session);
XG2G_API(int64_t) xg2g_session_get_created_at_unix(const xg2g_session *session);
XG2G_API(int64_t) xg2g_session_get_updated_at_unix(const xg2g_session *session);
XG2G_API(int64_t) xg2g_session_get_expires_at_unix(const xg2g_session *session);
/* Value of contextData[key], or NULL when absent. */
XG2G_API(const char *) xg2g_session_get_context(const xg2g_session *session, const char *key);

/*
 * Sets contextData[key] = value (value NULL removes the key).
 * Errors: XG2G_EINVAL (NULL session or key, empty key). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_session_set_context(xg2g_session *session, const char *key,
                                               const char *value);

/* Sets the correlation id (NULL clears it). Errors: XG2G_EINVAL. Since 0.1. */
XG2G_API(xg2g_status) xg2g_session_set_correlation_id(xg2g_session *session, const char *id);

/* Sets expiresAtUnix (seconds). Errors: XG2G_EINVAL (NULL session, negative). Since 0.1. */
XG2G_API(xg2g_status) xg2g_session_set_expires_at_unix(xg2g_session *session, int64_t unix_sec);

/*
 * Applies an event through the transition table.
 * reason: the reason the caller reports (used by HOST_FAILED; others pick
 *   their own and ignore it unless it is not XG2G_R_NONE); detail may be NULL.
 * now_ms: Unix milliseconds for updatedAtUnix; 0 for "now".
 * Errors: XG2G_ESTATE (event not allowed in the current state; nothing
 * changes), XG2G_EINVAL (NULL session, unknown event or reason). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_session_apply(xg2g_session *session, xg2g_session_event event,
                                         xg2g_reason reason, const char *detail, int64_t now_ms);

#ifdef __cplusplus
}
#endif

#endif /* XG2G_SESSION_H */

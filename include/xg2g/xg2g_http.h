/*
 * libxg2g: the v3 HTTP API as a transport-free handler.
 *
 * The host's HTTP server hands each request to xg2g_http_handler_handle()
 * and sends back the response it gets: status, headers and body. The
 * handler serves, over an engine (xg2g_engine.h):
 *
 *   POST /api/v3/intents          start or stop a stream      scope v3:write
 *   GET  /api/v3/sessions/{id}    one session                 scope v3:read
 *   GET  /api/v3/sessions         sessions, ?offset=&limit=   scope v3:admin
 *   GET  /healthz                 200 while the process runs  open
 *   GET  /readyz                  store and receiver checks   open
 *   GET  /metrics                 Prometheus text format      open, or a scope
 *
 * and does the work around them: a request ID on every response, the
 * security headers, rate limiting per client IP (with trusted proxies and an
 * allow-list), token auth (Bearer header, xg2g_session cookie, and, only if
 * enabled, the deprecated ?token= parameter), audit events and metrics.
 * /metrics serves the handler's and the engine's series and those of every
 * circuit breaker in the process (the same text as
 * xg2g_circuit_breaker_get_metrics()), so a host needs to add nothing.
 * Steps run in this order: route (404, 405), rate limit (429), auth (401,
 * 403), body size (413), validation (400), the operation; a request refused
 * before the operation changes nothing in the store. docs/http.md describes
 * the routes, answers and error codes in full.
 *
 * Threads. A handler is thread-safe: any number of threads may call
 * xg2g_http_handler_handle() at once, and xg2g_http_handler_reload() may run
 * concurrently with them. A configuration (xg2g_http_config) and a response
 * are not thread-safe: use each from one thread at a time. Callbacks (audit,
 * readiness) run on the thread that is handling the request (or reloading).
 */
#ifndef XG2G_HTTP_H
#define XG2G_HTTP_H

#include "xg2g_common.h"
#include "xg2g_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xg2g_http_config xg2g_http_config;
typedef struct xg2g_http_handler xg2g_http_handler;
typedef struct xg2g_http_response xg2g_http_response;

/*
 * Largest request body the handler accepts (1 MiB); a larger one is answered
 * 413 (once the request passed the rate limit and auth). A host may stop
 * reading a body after XG2G_HTTP_MAX_BODY_SIZE + 1 bytes and pass what it
 * read: the answer is the same. Since 0.1.
 */
#define XG2G_HTTP_MAX_BODY_SIZE 1048576

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/*
 * Creates a configuration with the defaults: no tokens (every API request is
 * 401), query tokens off, rate limit 50 requests/s with a burst of 100 per
 * client, at most 65536 clients tracked, empty allow-list, no trusted
 * proxies, /metrics open, audit as JSON lines on stderr, no readiness check
 * beyond the store.
 * Errors: XG2G_EINVAL (out is NULL), XG2G_ENOMEM. *out is the caller's; end
 * it with xg2g_http_config_destroy(). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_create(xg2g_http_config **out);

/*
 * Destroys a configuration. Handlers created or reloaded from it are not
 * affected (they copied it); callback user data it still holds is destroyed
 * when no handler uses it any more. NULL is ignored. Since 0.1.
 */
XG2G_API(void) xg2g_http_config_destroy(xg2g_http_config *cfg);

/*
 * Sets the API tokens from "token=scope,scope;token2=scope". A token is any
 * non-empty string without '=', ';', ',' or white space; scopes are v3:read,
 * v3:write, v3:admin (each includes the ones before it), v3:* and * (all).
 * White space around entries is ignored; "" means no tokens. Only SHA-256
 * digests of the tokens are kept. A token under 16 characters is accepted
 * with a warning (xg2g_http_config_get_warnings()).
 * Errors: XG2G_EINVAL (NULL argument; an entry without '=', an empty token,
 * no or an unknown scope, a token listed twice: the message names the entry
 * by position and never repeats a token; the config keeps its previous
 * tokens). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_tokens(xg2g_http_config *cfg, const char *spec);

/*
 * Accepts the token in the ?token= query parameter as a last resort (after
 * the Authorization header and the xg2g_session cookie). Deprecated: off by
 * default; each use is counted and audited (deprecated_query_token).
 * Errors: XG2G_EINVAL (NULL cfg). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_allow_query_tokens(xg2g_http_config *cfg, int enabled);

/*
 * The per-client token bucket: rate_per_sec tokens a second (finite, >= 0;
 * 0 turns rate limiting off), at most burst (1..1000000000) at once. The
 * defaults are 50 and 100.
 * Errors: XG2G_EINVAL (NULL cfg, a value out of range; the config keeps its
 * previous limits). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_rate_limit(xg2g_http_config *cfg, double rate_per_sec,
                                                      int64_t burst);

/*
 * How many clients' buckets the handler keeps at most (>= 1, default 65536;
 * rounded up to a multiple of 16). Idle buckets that are full again are
 * dropped first; beyond that the longest idle are evicted.
 * Errors: XG2G_EINVAL (NULL cfg, 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_rate_limit_max_clients(xg2g_http_config *cfg,
                                                                  size_t max_clients);

/*
 * Client addresses that are never rate limited: a comma-separated list of
 * IPv4/IPv6 addresses and CIDR blocks ("10.0.0.0/8, 192.0.2.7, 2001:db8::/32").
 * A single address matches only itself. "" empties the list.
 * Errors: XG2G_EINVAL (NULL argument; a malformed entry, a prefix out of
 * range, host bits set below the prefix, an empty entry: the message quotes
 * the entry; the config keeps its previous list). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_allow_list(xg2g_http_config *cfg, const char *spec);

/*
 * Proxies whose X-Forwarded-For is believed, in the same syntax as the
 * allow-list. When the peer is one of them, the client is the right-most
 * X-Forwarded-For entry that is not; otherwise X-Forwarded-For is ignored.
 * Errors: as xg2g_http_config_set_allow_list(). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_trusted_proxies(xg2g_http_config *cfg,
                                                           const char *spec);

/*
 * The scope /metrics needs ("v3:read", ..., "*"); "" (the default) serves it
 * without a token.
 * Errors: XG2G_EINVAL (NULL argument, an unknown scope). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_metrics_scope(xg2g_http_config *cfg,
                                                         const char *scope);

/*
 * Sends the handler's audit events (auth_success, auth_failure,
 * rate_limited, deprecated_query_token, session_start, session_stop,
 * admin_action, config_reload) to fn, one JSON object per call (see
 * xg2g_audit_fn; it runs on the thread handling the request, on several
 * threads at once), instead of the default (JSON lines on stderr).
 * Replaces an audit path set earlier. fn NULL restores the default. Events
 * never hold a token: callers are named by their principal id.
 * Ownership of user_data passes to the library whatever the result: destroy
 * (may be NULL) runs exactly once, at once when fn is NULL or the call fails,
 * otherwise when neither the config nor any handler made from it uses fn.
 * A handler keeps the callback it was created with; a reload does not
 * change it.
 * Errors: XG2G_EINVAL (NULL cfg). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_audit_callback(xg2g_http_config *cfg, xg2g_audit_fn fn,
                                                          void *user_data,
                                                          void (*destroy)(void *));

/*
 * Appends the audit events as JSON lines to the file at path (created 0600
 * if missing, opened by xg2g_http_handler_create(), flushed per line),
 * replacing an audit callback set earlier. The path is copied.
 * Errors: XG2G_EINVAL (NULL argument, empty path). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_audit_path(xg2g_http_config *cfg, const char *path);

/*
 * The host's readiness check (the receiver): /readyz calls it after the
 * store answered. Return XG2G_OK when ready; otherwise write a short reason
 * (NUL-terminated, truncated to reason_size) into reason, which /readyz
 * shows in its 503 answer. It runs on the thread handling /readyz, possibly
 * on several at once, and must be thread-safe and quick.
 * Since 0.1.
 */
typedef xg2g_status (*xg2g_http_ready_fn)(char *reason, size_t reason_size, void *user_data);

/*
 * Installs (fn non-NULL) or removes (fn NULL) the readiness check.
 * Ownership of user_data as for xg2g_http_config_set_audit_callback().
 * A reload does not change a handler's check.
 * Errors: XG2G_EINVAL (NULL cfg). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_config_set_readiness_check(xg2g_http_config *cfg,
                                                           xg2g_http_ready_fn fn, void *user_data,
                                                           void (*destroy)(void *));

/*
 * Warnings about the configuration as it stands, one per line ("" when
 * there are none): tokens under 16 characters, query tokens on. Borrowed:
 * valid until the config is changed or destroyed. NULL cfg gives "".
 * Since 0.1.
 */
XG2G_API(const char *) xg2g_http_config_get_warnings(const xg2g_http_config *cfg);

/* ------------------------------------------------------------------------ */
/* Handler                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Creates a handler over an engine. The config is copied (change or destroy
 * it afterwards freely); the engine is borrowed and must outlive the
 * handler. The handler reads time from the engine's clock (so in manual
 * clock mode rate-limit buckets refill only when the clock is advanced).
 * Errors: XG2G_EINVAL (NULL argument), XG2G_EIO (the audit file cannot be
 * opened; the message names it), XG2G_ENOMEM.
 * *out is the caller's; end it with xg2g_http_handler_destroy(); NULL on
 * failure. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_handler_create(xg2g_http_handler **out, xg2g_engine *engine,
                                               const xg2g_http_config *cfg);

/*
 * Applies a new configuration to a live handler, atomically: the tokens,
 * query-token switch, rate limit, client cap, allow-list, trusted proxies and
 * metrics scope all change together for the requests that start afterwards
 * (requests in flight finish under the old ones). Rate-limit buckets are kept
 * and follow the new rate and burst. The audit sink and the readiness check
 * stay as they were created. Emits a config_reload audit event (counts,
 * never tokens). Meant for SIGHUP: build a config, reload, destroy the
 * config; since each setter checks its own value, a config that was built
 * without errors always applies.
 * Errors: XG2G_EINVAL (NULL argument). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_handler_reload(xg2g_http_handler *handler,
                                               const xg2g_http_config *cfg);

/*
 * Destroys a handler. No call on it may be running. The engine is not
 * touched. NULL is ignored. Since 0.1.
 */
XG2G_API(void) xg2g_http_handler_destroy(xg2g_http_handler *handler);

/* One request header; both strings NUL-terminated. Since 0.1. */
typedef struct xg2g_http_header {
  const char *name;  /* any case: "content-type" and "Content-Type" are one */
  const char *value;
} xg2g_http_header;

/*
 * One request. Initialise with XG2G_HTTP_REQUEST_INIT or
 * xg2g_http_request_init(). Everything is borrowed for the duration of the
 * call only.
 * method: "GET", "POST", ... (case-sensitive, as HTTP says).
 * target: the path and query as sent, "/api/v3/sessions?offset=0&limit=10";
 *   not decoded.
 * headers: header_count entries (NULL when 0); repeated headers are passed
 *   as repeated entries, in order.
 * body, body_size: the body (may hold any bytes; NULL when body_size is 0).
 * peer_ip: the transport's peer address ("192.0.2.1", "2001:db8::1"; a port
 *   may follow as "192.0.2.1:4711" or "[2001:db8::1]:4711"). NULL or an
 *   unparseable value puts the request in one shared "unknown client"
 *   bucket. Since 0.1.
 */
typedef struct xg2g_http_request {
  unsigned int version; /* XG2G_HTTP_REQUEST_VERSION */
  const char *method;
  const char *target;
  const xg2g_http_header *headers;
  size_t header_count;
  const char *body;
  size_t body_size;
  const char *peer_ip;
} xg2g_http_request;

#define XG2G_HTTP_REQUEST_VERSION 1
#define XG2G_HTTP_REQUEST_INIT {XG2G_HTTP_REQUEST_VERSION, NULL, NULL, NULL, 0, NULL, 0, NULL}

/*
 * Fills req with XG2G_HTTP_REQUEST_INIT for `version` (pass
 * XG2G_HTTP_REQUEST_VERSION). Errors: XG2G_EINVAL (req is NULL),
 * XG2G_EVERSION (unknown version). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_request_init(xg2g_http_request *req, unsigned int version);

/*
 * Answers one request. XG2G_OK whenever a response was made, whatever its
 * HTTP status (4xx and 5xx answers included); *out then holds it.
 * Errors: XG2G_EINVAL (NULL out, handler, req, method or target; headers
 * NULL with header_count > 0, a header with a NULL name or value; body NULL
 * with body_size > 0), XG2G_EVERSION (req->version), XG2G_ENOMEM. On these
 * *out is NULL and the host should answer 500 itself.
 * *out is the caller's; end it with xg2g_http_response_destroy().
 * Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_http_handler_handle(xg2g_http_response **out,
                                               xg2g_http_handler *handler,
                                               const xg2g_http_request *req);

/* The HTTP status (200, 202, 400, ...); 0 for NULL. Since 0.1. */
XG2G_API(int) xg2g_http_response_get_status(const xg2g_http_response *resp);

/* How many headers the response has; 0 for NULL. Since 0.1. */
XG2G_API(size_t) xg2g_http_response_get_header_count(const xg2g_http_response *resp);

/*
 * Name and value of header `index` (0 .. count-1), borrowed from the
 * response; NULL for a NULL response or an index out of range. A header may
 * appear more than once (send each). Since 0.1.
 */
XG2G_API(const char *) xg2g_http_response_get_header_name(const xg2g_http_response *resp,
                                                          size_t index);
XG2G_API(const char *) xg2g_http_response_get_header_value(const xg2g_http_response *resp,
                                                           size_t index);

/*
 * The value of the first header called `name` (case-insensitive), borrowed;
 * NULL when there is none or an argument is NULL. Since 0.1.
 */
XG2G_API(const char *) xg2g_http_response_get_header(const xg2g_http_response *resp,
                                                     const char *name);

/*
 * The body, borrowed from the response and NUL-terminated (it holds no other
 * NUL); its length goes to *size when size is not NULL. A HEAD request gets
 * an empty body (with the GET answer's headers). "" and 0 for NULL resp.
 * Since 0.1.
 */
XG2G_API(const char *) xg2g_http_response_get_body(const xg2g_http_response *resp, size_t *size);

/* Frees a response; its borrowed strings end with it. NULL is ignored. Since 0.1. */
XG2G_API(void) xg2g_http_response_destroy(xg2g_http_response *resp);

#ifdef __cplusplus
}
#endif

#endif /* XG2G_HTTP_H */

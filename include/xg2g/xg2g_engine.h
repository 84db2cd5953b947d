/*
 * libxg2g: the engine, which turns start and stop intents into sessions.
 *
 * An engine is created from a configuration (xg2g_config, an opaque handle
 * with typed setters) and a store. It gives out tuner slots, holds one active
 * session per service, answers retried requests from their idempotency key,
 * drives the host's media pipeline through callbacks and moves every session
 * through its states, with a deadline for each (docs/engine.md).
 *
 * Threads. An engine handle is thread-safe: any number of threads may call
 * start, stop, the reports and touch at once. By default the engine runs one
 * background thread of its own (the heartbeat, the sweeper, timers and the
 * host pipeline callbacks run there, one at a time). In manual clock mode
 * (xg2g_config_set_manual_clock) it has no thread: time stands still until
 * xg2g_engine_advance_clock() moves it, and the work that is due runs inside
 * xg2g_engine_poll() / xg2g_engine_advance_clock() on the calling thread.
 * A config handle is not thread-safe: use it from one thread at a time.
 *
 * Callbacks never run while the engine holds a lock, so they may call back
 * into the engine (report ready, stopped or failed, start or stop other
 * sessions). They must not destroy the engine, and must not call
 * xg2g_engine_poll() or xg2g_engine_advance_clock().
 */
#ifndef XG2G_ENGINE_H
#define XG2G_ENGINE_H

#include "xg2g_common.h"
#include "xg2g_session.h"
#include "xg2g_store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xg2g_config xg2g_config;
typedef struct xg2g_engine xg2g_engine;

/* Sizes of the fixed string buffers in the result structs (NUL included). */
#define XG2G_SESSION_ID_SIZE 65     /* session ids are at most 64 characters */
#define XG2G_CORRELATION_ID_SIZE 129 /* correlation ids are at most 128 bytes */

/* ------------------------------------------------------------------------ */
/* Host pipeline callbacks                                                  */
/* ------------------------------------------------------------------------ */

/*
 * What the engine asks the host's pipeline to do for one session. Borrowed:
 * every pointer is valid only for the duration of the callback; copy what
 * you keep. Fields may be appended in later versions, so never allocate or
 * copy one by value. Since 0.1.
 */
typedef struct xg2g_pipeline_command {
  const char *session_id;  /* the session's id */
  const char *service_ref; /* what to tune */
  const char *profile;     /* profile name ("default" when the request named none) */
  int slot;                /* the tuner slot the session holds */
  uint64_t fencing_token;  /* the slot lease's token: pass it back in the reports,
                              and refuse commands with a token older than one
                              already seen for the slot */
} xg2g_pipeline_command;

/*
 * The host's media pipeline. Initialise with XG2G_PIPELINE_CALLBACKS_INIT or
 * xg2g_pipeline_callbacks_init(), then set the functions.
 *
 * tune, start: return XG2G_OK when the command was accepted. Any other status
 *   fails the session (tune: R_TUNE_FAILED, start: R_FFMPEG_START_FAILED); the
 *   session's reasonDetail is the callback thread's xg2g_last_error() text if
 *   it is not empty, else a message naming the callback and the status.
 *   After a successful start the host reports progress with
 *   xg2g_engine_report_ready() / xg2g_engine_report_failed(), now or later,
 *   from any thread.
 * stop: tear the session's pipeline down, then call
 *   xg2g_engine_report_stopped() (now or later, from any thread). Until it
 *   does, the session stays STOPPING until its stop deadline.
 * Any of the three may be NULL: a NULL tune or start counts as success, a
 *   NULL stop as a teardown that the host reports itself.
 *
 * The callbacks run on the engine's thread (in manual clock mode inside
 * xg2g_engine_poll() / xg2g_engine_advance_clock(), on the calling thread),
 * one at a time, never while the engine holds a lock. Since 0.1.
 */
typedef struct xg2g_pipeline_callbacks {
  unsigned int version; /* XG2G_PIPELINE_CALLBACKS_VERSION */
  xg2g_status (*tune)(const xg2g_pipeline_command *cmd, void *user_data);
  xg2g_status (*start)(const xg2g_pipeline_command *cmd, void *user_data);
  void (*stop)(const xg2g_pipeline_command *cmd, void *user_data);
} xg2g_pipeline_callbacks;

#define XG2G_PIPELINE_CALLBACKS_VERSION 1
#define XG2G_PIPELINE_CALLBACKS_INIT {XG2G_PIPELINE_CALLBACKS_VERSION, NULL, NULL, NULL}

/*
 * Fills cbs with XG2G_PIPELINE_CALLBACKS_INIT for `version` (pass
 * XG2G_PIPELINE_CALLBACKS_VERSION). Errors: XG2G_EINVAL (cbs is NULL),
 * XG2G_EVERSION (unknown version). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_pipeline_callbacks_init(xg2g_pipeline_callbacks *cbs,
                                                   unsigned int version);

/*
 * The simulated pipeline that ships with the library (tests, examples): it
 * reports ready tune_delay_ms + ready_delay_ms after the engine started a
 * session, and stopped stop_delay_ms after the engine stopped one, measured
 * on the engine's clock (so in manual clock mode nothing happens until the
 * clock is advanced past the delay). Negative delays count as 0.
 * fail_tune / fail_start (non-zero): the command fails, the session ends
 * FAILED with R_TUNE_FAILED / R_FFMPEG_START_FAILED.
 * fail_after_ready_ms (> 0): that long after the ready report the simulated
 * process ends and the session fails with R_PROCESS_ENDED. Since 0.1.
 */
typedef struct xg2g_simulated_pipeline_options {
  unsigned int version; /* XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION */
  int64_t tune_delay_ms;
  int64_t ready_delay_ms;
  int64_t stop_delay_ms;
  int fail_tune;
  int fail_start;
  int64_t fail_after_ready_ms;
} xg2g_simulated_pipeline_options;

#define XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION 1
#define XG2G_SIMULATED_PIPELINE_OPTIONS_INIT \
  {XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION, 0, 0, 0, 0, 0, 0}

/*
 * Fills opts with XG2G_SIMULATED_PIPELINE_OPTIONS_INIT for `version`.
 * Errors: XG2G_EINVAL (opts is NULL), XG2G_EVERSION (unknown version).
 * Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_simulated_pipeline_options_init(xg2g_simulated_pipeline_options *opts,
                                                           unsigned int version);

/*
 * Receives one audit event as a JSON object (one line, no trailing newline,
 * NUL-terminated), borrowed for the duration of the call. Runs on whichever
 * thread caused the event (a caller of xg2g_engine_start/stop, or the
 * engine's thread), possibly on several threads at once: it must be
 * thread-safe. Since 0.1.
 */
typedef void (*xg2g_audit_fn)(const char *json_line, void *user_data);

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/*
 * Creates a configuration with the defaults: tuner slots "0-3", a random
 * owner id, lease TTL 30000 ms, heartbeat 10000 ms, start deadline 30000 ms,
 * stop deadline 60000 ms, idle timeout 0 (off), retention 86400000 ms,
 * idempotency key lifetime 600000 ms, no re-queue on recovery, the real
 * clock with a background thread, no pipeline (sessions stay STARTING until
 * their deadline), audit to stderr.
 * Errors: XG2G_EINVAL (out is NULL), XG2G_ENOMEM. *out is the caller's; end
 * it with xg2g_config_destroy(). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_create(xg2g_config **out);

/*
 * Destroys a configuration. Engines created from it are not affected (they
 * copied it). Callback user data the config still holds is destroyed when
 * neither the config nor an engine created from it uses it any more. NULL is
 * ignored. Since 0.1.
 */
XG2G_API(void) xg2g_config_destroy(xg2g_config *cfg);

/*
 * Sets the tuner slots from a spec: "0-3", "0,2,5", "0" (one slot numbered
 * 0), or mixtures ("0-1,4"); slots are 0..1023, each listed once.
 * Errors: XG2G_EINVAL (NULL argument; an empty spec, a bad number, a reversed
 * range or a duplicate: the message names the bad part; the config keeps its
 * previous slots). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_tuner_slots(xg2g_config *cfg, const char *spec);

/*
 * Sets the engine's identity, used as the owner of its leases and recorded
 * in its sessions. "" restores the default (a random id per engine).
 * At most 128 printable ASCII characters without white space.
 * Errors: XG2G_EINVAL (NULL argument, too long, a forbidden character).
 * Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_owner_id(xg2g_config *cfg, const char *owner_id);

/*
 * Lease lifetime (> 0). The heartbeat (below) must be shorter; that is
 * checked by xg2g_engine_create(), so the two may be set in any order.
 * Errors: XG2G_EINVAL (NULL cfg, ms <= 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_lease_ttl_ms(xg2g_config *cfg, int64_t ms);

/*
 * Lease renewal interval (> 0, and < the lease TTL at engine creation).
 * Errors: XG2G_EINVAL (NULL cfg, ms <= 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_heartbeat_ms(xg2g_config *cfg, int64_t ms);

/*
 * Deadline of NEW + STARTING (> 0): past it the session fails with
 * R_TUNE_TIMEOUT. Errors: XG2G_EINVAL (NULL cfg, ms <= 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_start_deadline_ms(xg2g_config *cfg, int64_t ms);

/*
 * Deadline of STOPPING and DRAINING (> 0): past it a STOPPING session is
 * STOPPED even without the host's report. Errors: XG2G_EINVAL (NULL cfg,
 * ms <= 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_stop_deadline_ms(xg2g_config *cfg, int64_t ms);

/*
 * Idle timeout of READY sessions (>= 0; 0 = off): a READY session without
 * xg2g_engine_touch() for this long is stopped with R_IDLE_TIMEOUT.
 * Errors: XG2G_EINVAL (NULL cfg, ms < 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_idle_timeout_ms(xg2g_config *cfg, int64_t ms);

/*
 * How long terminal sessions stay in the store before the sweeper deletes
 * them (> 0). Errors: XG2G_EINVAL (NULL cfg, ms <= 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_retention_ms(xg2g_config *cfg, int64_t ms);

/*
 * Lifetime of idempotency keys (> 0). Errors: XG2G_EINVAL (NULL cfg,
 * ms <= 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_idempotency_ttl_ms(xg2g_config *cfg, int64_t ms);

/*
 * What start-up recovery does with sessions whose lease is gone: 0 (the
 * default) fails them with R_LEASE_EXPIRED, non-zero re-acquires their leases
 * and starts them again. Errors: XG2G_EINVAL (NULL cfg). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_requeue_on_recovery(xg2g_config *cfg, int enabled);

/*
 * Manual clock mode, for tests and simulations: the engine reads time from a
 * private clock that starts at start_unix_ms (Unix milliseconds, > 0) and
 * only moves with xg2g_engine_advance_clock(); it starts no thread, and
 * timers, the heartbeat, the sweeper and the host callbacks run inside
 * xg2g_engine_poll() / xg2g_engine_advance_clock(). The default audit sink
 * is then none (set one explicitly to see events). The store keeps its own
 * clock: lease and idempotency-key lifetimes inside the store do not follow
 * the engine's manual clock.
 * Errors: XG2G_EINVAL (NULL cfg, start_unix_ms <= 0). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_manual_clock(xg2g_config *cfg, int64_t start_unix_ms);

/*
 * Installs the host's pipeline (replacing the simulated pipeline or earlier
 * callbacks). The callbacks struct is copied; user_data is passed to every
 * callback. Ownership of user_data passes to the library whatever the
 * result: destroy (may be NULL) is called exactly once with user_data, on
 * failure or when cbs is NULL before this function returns, otherwise when
 * neither the config nor any engine created from it uses the callbacks any
 * more (after the last such engine has been destroyed and no callback can
 * run; the config drops them when destroyed or given another pipeline).
 * cbs NULL removes the pipeline (sessions then stay STARTING until their
 * deadline).
 * Errors: XG2G_EINVAL (NULL cfg), XG2G_EVERSION (cbs->version). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_pipeline(xg2g_config *cfg,
                                               const xg2g_pipeline_callbacks *cbs,
                                               void *user_data, void (*destroy)(void *));

/*
 * Uses the simulated pipeline (replacing host callbacks set earlier); opts
 * NULL means XG2G_SIMULATED_PIPELINE_OPTIONS_INIT. Each engine created from
 * the config gets its own simulated pipeline.
 * Errors: XG2G_EINVAL (NULL cfg), XG2G_EVERSION (opts->version). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_use_simulated_pipeline(
    xg2g_config *cfg, const xg2g_simulated_pipeline_options *opts);

/*
 * Sends audit events (session_start, session_stop, ...) to fn instead of the
 * default sink (replacing an audit path set earlier). fn NULL restores the
 * default: JSON lines on stderr, or no audit in manual clock mode.
 * Ownership of user_data as for xg2g_config_set_pipeline(): destroy is
 * called exactly once, when neither the config nor an engine uses fn any
 * more (or at once when fn is NULL or the call fails).
 * Errors: XG2G_EINVAL (NULL cfg). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_audit_callback(xg2g_config *cfg, xg2g_audit_fn fn,
                                                     void *user_data, void (*destroy)(void *));

/*
 * Appends audit events as JSON lines to the file at path (created if
 * missing, opened by xg2g_engine_create(), flushed after each line),
 * replacing an audit callback set earlier. The path is copied.
 * Errors: XG2G_EINVAL (NULL argument, empty path). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_audit_path(xg2g_config *cfg, const char *path);

/* ------------------------------------------------------------------------ */
/* Engine                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Creates an engine. The config is copied (change or destroy it afterwards
 * freely); the store is borrowed and must outlive the engine. Runs start-up
 * recovery of the sessions in the store before returning, and, unless the
 * config selects the manual clock, starts the engine's thread.
 * Errors: XG2G_EINVAL (NULL argument; the heartbeat is not shorter than the
 * lease TTL), XG2G_EIO (the audit file cannot be opened; the message names
 * it), XG2G_EUNAVAILABLE (the store failed during recovery).
 * *out is the caller's; end it with xg2g_engine_destroy(); NULL on failure.
 * Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_create(xg2g_engine **out, const xg2g_config *cfg,
                                         xg2g_store *store);

/*
 * Shuts the engine down and frees it: joins its thread, drops pending host
 * calls and timers, then ends the sessions it drives: the host's stop
 * callback runs (on the calling thread) for each whose pipeline was started,
 * NEW and STARTING sessions become CANCELLED, the others STOPPED, and their
 * leases are released. Finally the callbacks' user data is released if
 * nothing else holds it (see xg2g_config_set_pipeline). Must not be called
 * from a callback of the same engine, nor while another thread is inside a
 * call on it. NULL is ignored. Since 0.1.
 */
XG2G_API(void) xg2g_engine_destroy(xg2g_engine *engine);

/*
 * A start intent. Initialise with XG2G_START_REQUEST_INIT or
 * xg2g_start_request_init(). Strings are copied during the call.
 * service_ref: required, not empty.
 * profile: profile name; NULL or "" means "default".
 * principal: who asks (a digest, never a token); NULL means "" (anonymous).
 *   Scopes the idempotency key.
 * idempotency_key: NULL or "" for none. With a key, a retry with the same
 *   principal, service_ref, profile and params answers with the first
 *   session (replay) instead of creating a new one.
 * correlation_id: NULL or "" to let the engine choose one; at most 128 bytes.
 *   Not part of the idempotency fingerprint.
 * params: param_count key/value pairs as 2 * param_count strings
 *   (key0, value0, key1, value1, ...); keys unique and not empty. NULL when
 *   param_count is 0. Order does not matter. Since 0.1.
 */
typedef struct xg2g_start_request {
  unsigned int version; /* XG2G_START_REQUEST_VERSION */
  const char *service_ref;
  const char *profile;
  const char *principal;
  const char *idempotency_key;
  const char *correlation_id;
  const char *const *params;
  size_t param_count;
} xg2g_start_request;

#define XG2G_START_REQUEST_VERSION 1
#define XG2G_START_REQUEST_INIT {XG2G_START_REQUEST_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, 0}

/*
 * Fills req with XG2G_START_REQUEST_INIT for `version`. Errors: XG2G_EINVAL
 * (req is NULL), XG2G_EVERSION (unknown version). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_start_request_init(xg2g_start_request *req, unsigned int version);

/*
 * The answer to a start intent, in caller-owned memory. Set version (with
 * XG2G_START_RESULT_INIT or xg2g_start_result_init()) before the call; the
 * library fills the fields that version defines.
 * On XG2G_OK: session_id names the session (a new one, or with replay = 1
 *   the one the idempotency key was first used for); state is its state when
 *   the call returned (NEW or STARTING for a new session: the host is told
 *   to tune on the engine's thread, after the call returns); correlation_id
 *   is the session's; busy_session_id is "".
 * On failure every field but version is zeroed ("" and XG2G_STATE_NEW),
 *   except busy_session_id: on XG2G_EBUSY because the service already has an
 *   active session it names that session ("" when the engine has no free
 *   tuner slot instead), and on XG2G_EINFLIGHT it names the session the
 *   idempotency key's first request is creating. Since 0.1.
 */
typedef struct xg2g_start_result {
  unsigned int version; /* XG2G_START_RESULT_VERSION */
  char session_id[XG2G_SESSION_ID_SIZE];
  xg2g_session_state state;
  int replay;
  char correlation_id[XG2G_CORRELATION_ID_SIZE];
  char busy_session_id[XG2G_SESSION_ID_SIZE];
} xg2g_start_result;

#define XG2G_START_RESULT_VERSION 1
#define XG2G_START_RESULT_INIT {XG2G_START_RESULT_VERSION, "", XG2G_STATE_NEW, 0, "", ""}

/*
 * Fills res with XG2G_START_RESULT_INIT for `version`. Errors: XG2G_EINVAL
 * (res is NULL), XG2G_EVERSION (unknown version). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_start_result_init(xg2g_start_result *res, unsigned int version);

/*
 * Submits a start intent: validates it, checks the idempotency key, creates
 * the session, takes the service's lease and the first free tuner slot, and
 * queues the host's tune and start for the engine's thread.
 * Errors: XG2G_EINVAL (NULL argument, empty service_ref, a bad param or
 *   correlation id; the message names the field), XG2G_EVERSION
 *   (req->version, or out->version: *out is then left untouched),
 *   XG2G_EBUSY (the service already has an active session:
 *   out->busy_session_id names it; or no tuner slot is free: the new
 *   session is FAILED with R_LEASE_BUSY),
 *   XG2G_ECONFLICT (the idempotency key was first used with a different
 *   request; nothing was created), XG2G_EINFLIGHT (the key's first request
 *   is still being created: retry shortly), XG2G_EUNAVAILABLE (the store
 *   failed; nothing was left behind).
 * Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_start(xg2g_start_result *out, xg2g_engine *engine,
                                        const xg2g_start_request *req);

/*
 * The answer to a stop intent, in caller-owned memory; set version first
 * (XG2G_STOP_RESULT_INIT or xg2g_stop_result_init()). On XG2G_OK session_id
 * names the session and state is its state once the stop was recorded
 * (STOPPING, STOPPED, or the terminal state it already had); on failure both
 * are zeroed. Since 0.1.
 */
typedef struct xg2g_stop_result {
  unsigned int version; /* XG2G_STOP_RESULT_VERSION */
  char session_id[XG2G_SESSION_ID_SIZE];
  xg2g_session_state state;
} xg2g_stop_result;

#define XG2G_STOP_RESULT_VERSION 1
#define XG2G_STOP_RESULT_INIT {XG2G_STOP_RESULT_VERSION, "", XG2G_STATE_NEW}

/*
 * Fills res with XG2G_STOP_RESULT_INIT for `version`. Errors: XG2G_EINVAL
 * (res is NULL), XG2G_EVERSION (unknown version). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_stop_result_init(xg2g_stop_result *res, unsigned int version);

/*
 * Submits a stop intent for any session in the store, whichever engine owns
 * it (the owner tears down at once if it is this engine, else within one
 * heartbeat). Stopping a session that already stopped is harmless and
 * answers its current state. out may be NULL.
 * Errors: XG2G_EINVAL (NULL engine or id, an unsafe id), XG2G_EVERSION
 * (out->version), XG2G_ENOTFOUND (no such session), XG2G_EUNAVAILABLE.
 * Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_stop(xg2g_stop_result *out, xg2g_engine *engine,
                                       const char *session_id);

/*
 * The host reports that the session's pipeline runs: STARTING -> READY.
 * fencing_token is the one from the xg2g_pipeline_command.
 * Errors: XG2G_EINVAL (NULL argument), XG2G_ENOTFOUND (this engine does not
 * drive the session: unknown, over, or another engine's), XG2G_ECONFLICT (a
 * stale fencing token), XG2G_ESTATE (the session is no longer STARTING, e.g.
 * it was stopped meanwhile; nothing changed). Thread-safe; may be called
 * from inside a pipeline callback. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_report_ready(xg2g_engine *engine, const char *session_id,
                                               uint64_t fencing_token);

/*
 * The host reports that the session's pipeline failed: the session becomes
 * FAILED with `reason` (R_UNKNOWN when R_NONE) and `detail` (NULL for none),
 * unless a stop was recorded first, whose reason is kept.
 * Errors: XG2G_EINVAL (NULL engine or id, a reason outside xg2g_reason),
 * XG2G_ENOTFOUND (this engine does not drive the session), XG2G_ECONFLICT
 * (a stale fencing token). Thread-safe; may be called from inside a
 * pipeline callback. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_report_failed(xg2g_engine *engine, const char *session_id,
                                                uint64_t fencing_token, xg2g_reason reason,
                                                const char *detail);

/*
 * The host reports that the session's pipeline is torn down: STOPPING ->
 * STOPPED, and the session's leases are released. For a session that was
 * not being stopped the pipeline ended on its own: the session fails with
 * R_PROCESS_ENDED.
 * Errors: XG2G_EINVAL (NULL argument), XG2G_ENOTFOUND (this engine does not
 * drive the session), XG2G_ECONFLICT (a stale fencing token), XG2G_ESTATE.
 * Thread-safe; may be called from inside a pipeline callback. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_report_stopped(xg2g_engine *engine, const char *session_id,
                                                 uint64_t fencing_token);

/*
 * Marks activity on a READY session (a client fetched a segment), pushing
 * its idle deadline back. With the idle timeout off it only checks the id.
 * Errors: XG2G_EINVAL (NULL argument, an unsafe id), XG2G_ENOTFOUND,
 * XG2G_ESTATE (the session is not READY). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_touch(xg2g_engine *engine, const char *session_id);

/*
 * Runs what is due now: queued host calls, timers (the simulated pipeline's
 * reports), the heartbeat and the sweeper. Only does something in manual
 * clock mode; with the engine's own thread it returns XG2G_OK at once.
 * Calls from several threads are serialised.
 * Errors: XG2G_EINVAL (NULL engine), XG2G_ESTATE (called from inside one of
 * this engine's callbacks). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_poll(xg2g_engine *engine);

/*
 * Manual clock mode only: moves the engine's clock forward by ms (>= 0), then
 * runs what is due, as xg2g_engine_poll(). Each call is one step: timers
 * that fall due within it run once, at the new time; advance in smaller
 * steps to see intermediate states.
 * Errors: XG2G_EINVAL (NULL engine, ms < 0, the engine does not use the
 * manual clock), XG2G_ESTATE (called from inside one of this engine's
 * callbacks). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_advance_clock(xg2g_engine *engine, int64_t ms);

/*
 * The engine's counters, monotonic since it was created, except
 * active_sessions (the sessions this engine drives now). Set version first
 * (XG2G_ENGINE_STATS_INIT or xg2g_engine_stats_init()). Since 0.1.
 */
typedef struct xg2g_engine_stats {
  unsigned int version;       /* XG2G_ENGINE_STATS_VERSION */
  uint64_t start_intents;     /* start intents received */
  uint64_t stop_intents;      /* stop intents received */
  uint64_t replays;           /* starts answered from an idempotency key */
  uint64_t busy;              /* starts answered with XG2G_EBUSY */
  uint64_t store_failures;    /* starts/stops answered with XG2G_EUNAVAILABLE */
  uint64_t lease_losses;      /* sessions failed because a lease renewal failed */
  uint64_t transitions;       /* state changes made by this engine */
  uint64_t deadline_expiries; /* sessions moved on by a deadline */
  uint64_t recovered;         /* sessions failed or re-queued at start-up */
  uint64_t retention_deletes; /* terminal sessions deleted after retention */
  uint64_t active_sessions;   /* gauge */
} xg2g_engine_stats;

#define XG2G_ENGINE_STATS_VERSION 1
#define XG2G_ENGINE_STATS_INIT {XG2G_ENGINE_STATS_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/*
 * Fills stats with XG2G_ENGINE_STATS_INIT for `version`. Errors: XG2G_EINVAL
 * (stats is NULL), XG2G_EVERSION (unknown version). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_stats_init(xg2g_engine_stats *stats, unsigned int version);

/*
 * Reads the engine's counters into *out (a consistent-enough snapshot: each
 * counter is exact, they are not read atomically together).
 * Errors: XG2G_EINVAL (NULL argument), XG2G_EVERSION (out->version; *out is
 * then left untouched). On other failures the counters are zeroed.
 * Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_engine_get_stats(xg2g_engine_stats *out, xg2g_engine *engine);

#ifdef __cplusplus
}
#endif

#endif /* XG2G_ENGINE_H */

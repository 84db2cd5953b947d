/*
 * libxg2g: the outside edges. An Enigma2 receiver's OpenWebIF API behind a
 * circuit breaker, tune readiness, readiness waits for HTTP URLs and TCP
 * listeners, cancel tokens, and the receiver-backed engine pipeline
 * (docs/receiver.md).
 *
 * Waits never sleep a fixed time: they poll with backoff up to a deadline,
 * and a cancel token tripped by another thread ends them at once.
 */
#ifndef XG2G_RECEIVER_H
#define XG2G_RECEIVER_H

#include "xg2g_common.h"
#include "xg2g_session.h"
#include "xg2g_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Cancel tokens                                                            */
/* ------------------------------------------------------------------------ */

/*
 * A cancel token: a flag any thread may set once, which ends the waits and
 * calls that were given the token with XG2G_ECANCELLED. Never reset: use a
 * new token per operation. Thread-safe. Since 0.1.
 */
typedef struct xg2g_cancel_token xg2g_cancel_token;

/*
 * Creates a token that is not cancelled. Errors: XG2G_EINVAL (out is NULL),
 * XG2G_ENOMEM. *out is the caller's; end it with xg2g_cancel_token_destroy()
 * once no call uses it any more. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_cancel_token_create(xg2g_cancel_token **out);

/* Destroys a token no call is using. NULL is ignored. Since 0.1. */
XG2G_API(void) xg2g_cancel_token_destroy(xg2g_cancel_token *token);

/*
 * Cancels: every wait or call using the token returns XG2G_ECANCELLED as soon
 * as it notices (at once for waits between attempts; an HTTP request in
 * flight is abandoned). Harmless when repeated; NULL is ignored. Any thread,
 * also while another thread waits with the token. Since 0.1.
 */
XG2G_API(void) xg2g_cancel_token_cancel(xg2g_cancel_token *token);

/* 1 once the token is cancelled, else 0 (also for NULL). Since 0.1. */
XG2G_API(int) xg2g_cancel_token_is_cancelled(const xg2g_cancel_token *token);

/* ------------------------------------------------------------------------ */
/* Readiness waits                                                          */
/* ------------------------------------------------------------------------ */

/*
 * How long and how often a readiness wait tries. Initialise with
 * XG2G_WAIT_OPTIONS_INIT or xg2g_wait_options_init(). After a failed attempt
 * the wait pauses initial_backoff_ms, doubling up to max_backoff_ms; one
 * attempt takes at most attempt_timeout_ms and never runs past the deadline.
 * Since 0.1.
 */
typedef struct xg2g_wait_options {
  unsigned int version;        /* XG2G_WAIT_OPTIONS_VERSION */
  int64_t timeout_ms;          /* the whole wait (>= 1); default 30000 */
  int64_t initial_backoff_ms;  /* >= 1; default 50 */
  int64_t max_backoff_ms;      /* >= initial_backoff_ms; default 1000 */
  int64_t attempt_timeout_ms;  /* >= 1; default 2000 */
  int skip_tls_verify;         /* https:// waits: non-zero accepts any certificate (a daemon
                                  asking its own listener, whose certificate may be
                                  self-signed); default 0 */
} xg2g_wait_options;

#define XG2G_WAIT_OPTIONS_VERSION 1
#define XG2G_WAIT_OPTIONS_INIT {XG2G_WAIT_OPTIONS_VERSION, 30000, 50, 1000, 2000, 0}

/*
 * Fills opts with XG2G_WAIT_OPTIONS_INIT for `version`. Errors: XG2G_EINVAL
 * (opts is NULL), XG2G_EVERSION (unknown version). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_wait_options_init(xg2g_wait_options *opts, unsigned int version);

/*
 * Blocks until a GET of url (http:// or https://) answers with a 2xx status.
 * A daemon calls it on its own listener before it announces that it is
 * ready. opts NULL: the defaults. cancel may be NULL.
 * Errors: XG2G_ETIMEOUT (the deadline passed; the message names the URL, the
 * number of attempts and the last error, e.g. "HTTP status 503" or
 * "Couldn't connect to server"), XG2G_ECANCELLED (cancel was tripped; the
 * message names the last error too), XG2G_EINVAL (NULL or malformed url, an
 * option out of range: the message names it), XG2G_EVERSION (opts->version).
 * Thread-safe; blocks the calling thread. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_wait_http_ready(const char *url, const xg2g_wait_options *opts,
                                           xg2g_cancel_token *cancel);

/*
 * Blocks until a TCP connection to host:port (a name or a numeric IPv4/IPv6
 * address; port 1..65535) is accepted; the connection is closed at once.
 * Errors and threads as xg2g_wait_http_ready(). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_wait_tcp_ready(const char *host, int port,
                                          const xg2g_wait_options *opts,
                                          xg2g_cancel_token *cancel);

/* ------------------------------------------------------------------------ */
/* Receiver client                                                          */
/* ------------------------------------------------------------------------ */

/*
 * A client of one receiver's OpenWebIF API with its circuit breaker. The
 * handle is thread-safe: any number of threads may call at once; HTTP
 * connections are kept and reused between calls. Since 0.1.
 */
typedef struct xg2g_receiver xg2g_receiver;

/* Circuit breaker states; the values are those of the metric. Since 0.1. */
typedef enum xg2g_breaker_state {
  XG2G_BREAKER_CLOSED = 0,    /* calls go through */
  XG2G_BREAKER_HALF_OPEN = 1, /* a bounded number of probe calls go through */
  XG2G_BREAKER_OPEN = 2       /* calls fail fast with XG2G_ECIRCUITOPEN */
} xg2g_breaker_state;

/*
 * Options of a receiver (xg2g_receiver_create(), xg2g_config_set_receiver()).
 * Initialise with XG2G_RECEIVER_OPTIONS_INIT or xg2g_receiver_options_init().
 * Strings are copied by the call that takes the options. Since 0.1.
 *
 * Tune readiness: a tune is ready after required_polls consecutive polls,
 * poll_interval_ms +- poll_jitter_ms apart, show the requested service as
 * current with a signal lock; max_bad_polls polls in a row showing the same
 * problem (another service, no lock, no answer) fail it early (0: only the
 * deadline ends it).
 * Circuit breaker: breaker_failure_threshold consecutive failed calls open
 * it; after breaker_open_timeout_ms it lets breaker_half_open_probes calls
 * through at once, and breaker_half_open_successes successes close it.
 */
typedef struct xg2g_receiver_options {
  unsigned int version;               /* XG2G_RECEIVER_OPTIONS_VERSION */
  const char *username;               /* basic auth; NULL or "" for none */
  const char *password;               /* NULL means "" */
  int64_t connect_timeout_ms;         /* >= 1; default 2000 */
  int64_t request_timeout_ms;         /* one HTTP call, >= 1; default 5000 */
  int64_t poll_interval_ms;           /* >= 1; default 250 */
  int64_t poll_jitter_ms;             /* >= 0 and < poll_interval_ms; default 50 */
  int required_polls;                 /* >= 1; default 2 */
  int max_bad_polls;                  /* >= 0; default 8 */
  int64_t tune_timeout_ms;            /* engine pipeline: zap to confirmed lock; default 15000 */
  const char *breaker_name;           /* metrics label; NULL or "" means "receiver" */
  int breaker_failure_threshold;      /* >= 1; default 5 */
  int64_t breaker_open_timeout_ms;    /* >= 1; default 30000 */
  int breaker_half_open_probes;       /* >= 1; default 1 */
  int breaker_half_open_successes;    /* >= 1; default 1 */
} xg2g_receiver_options;

#define XG2G_RECEIVER_OPTIONS_VERSION 1
#define XG2G_RECEIVER_OPTIONS_INIT \
  {XG2G_RECEIVER_OPTIONS_VERSION, NULL, NULL, 2000, 5000, 250, 50, 2, 8, 15000, NULL, 5, 30000, 1, 1}

/*
 * Fills opts with XG2G_RECEIVER_OPTIONS_INIT for `version`. Errors:
 * XG2G_EINVAL (opts is NULL), XG2G_EVERSION (unknown version). Thread-safe.
 * Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_options_init(xg2g_receiver_options *opts,
                                                 unsigned int version);

/*
 * Creates a client for the receiver at base_url ("http://192.168.1.20",
 * "https://box:8443"; a path prefix is kept). No request is made yet.
 * opts NULL: the defaults. The breaker's state changes are written to stderr
 * as JSON lines until xg2g_receiver_set_log_callback() says otherwise; the
 * breaker is listed in xg2g_circuit_breaker_get_metrics() while the receiver
 * lives.
 * Errors: XG2G_EINVAL (NULL out or base_url, not an http(s) URL, an option
 * out of range: the message names it), XG2G_EVERSION (opts->version),
 * XG2G_ENOMEM. *out is the caller's; end it with xg2g_receiver_destroy();
 * NULL on failure. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_create(xg2g_receiver **out, const char *base_url,
                                           const xg2g_receiver_options *opts);

/*
 * Destroys a receiver no other thread is calling. The log callback's user
 * data is destroyed with it. NULL is ignored. Since 0.1.
 */
XG2G_API(void) xg2g_receiver_destroy(xg2g_receiver *receiver);

/*
 * Receives one breaker state change as a JSON object (one line, no newline,
 * borrowed for the call): {"level":"warn","msg":"circuit breaker state
 * change","breaker":NAME,"from":"closed","to":"open","reason":...,
 * "last_error":...,"time_unix_ms":...,"sequence":N}. Runs on the thread whose
 * call changed the state, never while a library lock is held; may run on
 * several threads at once. Since 0.1.
 */
typedef void (*xg2g_receiver_log_fn)(const char *json_line, void *user_data);

/*
 * Sends the breaker's state changes to fn instead of stderr (fn NULL restores
 * stderr). Ownership of user_data passes to the library whatever the result:
 * destroy (may be NULL) is called once, when the callback is replaced or the
 * receiver destroyed and no call of it can run any more (at once when fn is
 * NULL or the call fails).
 * Errors: XG2G_EINVAL (receiver is NULL). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_set_log_callback(xg2g_receiver *receiver,
                                                     xg2g_receiver_log_fn fn, void *user_data,
                                                     void (*destroy)(void *));

/*
 * Zaps the receiver to service_ref (GET /api/zap?sRef=...). XG2G_OK means
 * the receiver accepted the zap; that it has tuned is what
 * xg2g_receiver_wait_tuned() finds out.
 * Errors: XG2G_EINVAL (NULL or empty argument; the receiver refused the zap
 * or the credentials: the message says which), XG2G_EUNAVAILABLE (no answer,
 * HTTP 5xx), XG2G_ETIMEOUT (no answer within request_timeout_ms),
 * XG2G_ECORRUPT (an answer that is not OpenWebIF JSON), XG2G_ECIRCUITOPEN
 * (the breaker is open: nothing was sent). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_zap(xg2g_receiver *receiver, const char *service_ref);

/*
 * The service the receiver plays now (GET /api/getcurrent) into *out ("" when
 * none); free it with xg2g_free(). On failure *out is NULL.
 * Errors: XG2G_EINVAL (NULL argument), and those of xg2g_receiver_zap().
 * Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_get_current(char **out, xg2g_receiver *receiver);

/* Bits of xg2g_signal.known: which values the receiver sent. */
#define XG2G_SIGNAL_SNR 1u
#define XG2G_SIGNAL_SNR_DB 2u
#define XG2G_SIGNAL_AGC 4u
#define XG2G_SIGNAL_BER 8u

/*
 * The tuner's signal (GET /api/signal), in caller-owned memory; set version
 * first (XG2G_SIGNAL_INIT). A value the receiver did not send ("" in
 * OpenWebIF) is 0 with its bit clear in `known`. locked is the receiver's
 * lock flag when it sends one, else 1 when the SNR is above 0 and the box is
 * not in standby. Since 0.1.
 */
typedef struct xg2g_signal {
  unsigned int version; /* XG2G_SIGNAL_VERSION */
  unsigned int known;   /* XG2G_SIGNAL_* bits */
  double snr_percent;
  double snr_db;
  double agc_percent;
  double ber;
  int locked;
  int in_standby;
} xg2g_signal;

#define XG2G_SIGNAL_VERSION 1
#define XG2G_SIGNAL_INIT {XG2G_SIGNAL_VERSION, 0u, 0.0, 0.0, 0.0, 0.0, 0, 0}

/*
 * Reads the signal into *out. On failure the fields but version are zeroed.
 * Errors: XG2G_EINVAL (NULL argument), XG2G_EVERSION (out->version; *out is
 * then left untouched), and those of xg2g_receiver_zap(). Thread-safe.
 * Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_get_signal(xg2g_signal *out, xg2g_receiver *receiver);

/*
 * Whether the receiver answers (GET /api/about): XG2G_OK when it does.
 * Errors as xg2g_receiver_zap(). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_ping(xg2g_receiver *receiver);

/*
 * Blocks until service_ref is tuned on the receiver under the readiness rule
 * (see xg2g_receiver_options), for at most timeout_ms (>= 1). Waits for the
 * same slot share one poll loop, so any number of threads may wait for one
 * tune at the cost of one. cancel may be NULL; out_reason may be NULL.
 * *out_reason receives the session reason the result maps to: XG2G_R_NONE on
 * success, XG2G_R_TUNE_TIMEOUT for XG2G_ETIMEOUT, XG2G_R_CANCELLED for
 * XG2G_ECANCELLED, XG2G_R_TUNE_FAILED for every other failure.
 * Errors: XG2G_ETIMEOUT (not confirmed by the deadline; the message says
 * what the last poll saw), XG2G_ECONFLICT (another service stayed current),
 * XG2G_EUNAVAILABLE (no signal lock, or the receiver stopped answering),
 * XG2G_ECIRCUITOPEN (the breaker is open), XG2G_ECANCELLED, XG2G_EINVAL
 * (NULL or empty argument, timeout_ms < 1). Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_wait_tuned(xg2g_reason *out_reason, xg2g_receiver *receiver,
                                               int slot, const char *service_ref,
                                               int64_t timeout_ms, xg2g_cancel_token *cancel);

/*
 * Zaps to service_ref, then waits as xg2g_receiver_wait_tuned() with what is
 * left of timeout_ms. A refused or failed zap ends it at once (XG2G_EINVAL /
 * XG2G_EUNAVAILABLE / XG2G_ECIRCUITOPEN, R_TUNE_FAILED). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_receiver_tune(xg2g_reason *out_reason, xg2g_receiver *receiver,
                                         int slot, const char *service_ref, int64_t timeout_ms,
                                         xg2g_cancel_token *cancel);

/*
 * The receiver's breaker state now (an open breaker whose timeout passed
 * becomes half-open here). NULL gives XG2G_BREAKER_CLOSED. Thread-safe.
 * Since 0.1.
 */
XG2G_API(xg2g_breaker_state) xg2g_receiver_get_breaker_state(xg2g_receiver *receiver);

/*
 * Every circuit breaker of the process (receivers and engines' receivers) in
 * the Prometheus text format, into *out (free with xg2g_free()):
 *   xg2g_circuit_breaker_state{name="receiver"} 0        (0 closed, 1 half-open, 2 open)
 *   xg2g_circuit_breaker_trips_total{name="receiver",reason="consecutive_failures"} 0
 *   xg2g_circuit_breaker_trips_total{name="receiver",reason="half_open_probe_failed"} 0
 * with # HELP and # TYPE lines; "" when there is no breaker. Breakers with
 * the same name are merged (the worst state, the summed trips).
 * Errors: XG2G_EINVAL (out is NULL), XG2G_ENOMEM. Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_circuit_breaker_get_metrics(char **out);

/* ------------------------------------------------------------------------ */
/* Engine: the receiver pipeline                                            */
/* ------------------------------------------------------------------------ */

/*
 * Makes engines created from cfg tune through the receiver at base_url
 * before the host pipeline (xg2g_config_set_pipeline() or the simulated
 * pipeline) runs: the engine's tune zaps the receiver and polls it (on the
 * engine's thread, as engine timers) until the readiness rule confirms the
 * tune; then the host's tune and start callbacks run. Without a host
 * pipeline the session is READY as soon as the tune is confirmed, and
 * STOPPED as soon as it is stopped. A tune that fails ends the session:
 * R_TUNE_TIMEOUT when not confirmed within opts->tune_timeout_ms,
 * R_TUNE_FAILED for a refused zap, another service, no lock, a receiver that
 * does not answer or whose breaker is open. Each engine gets its own client
 * and breaker (named opts->breaker_name); its state changes go to stderr as
 * JSON lines, except in manual clock mode.
 * base_url NULL or "" removes the receiver. opts NULL: the defaults.
 * Errors: XG2G_EINVAL (NULL cfg, a malformed URL, an option out of range),
 * XG2G_EVERSION (opts->version). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_config_set_receiver(xg2g_config *cfg, const char *base_url,
                                               const xg2g_receiver_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* XG2G_RECEIVER_H */

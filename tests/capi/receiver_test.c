/*
 * Plain-C test of xg2g_receiver.h: cancel tokens, readiness waits, the
 * receiver client with its breaker and log callback, tune readiness, the
 * breaker metrics and an engine with the receiver pipeline. The receiver is
 * tests/integration/fake_receiver.py on 127.0.0.1 (argv[1] is the Python
 * interpreter, argv[2] the script), started here and stopped by pid. Built as
 * C99; links only the shared library.
 */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xg2g/xg2g.h>

#include "check.h"

#define REF "1:0:19:283D:3FB:1:C00000:0:0:0:"
#define OTHER "1:0:19:2B66:3F3:1:C00000:0:0:0:"
#define T0 1700000000000LL

static const char *python = NULL;
static const char *script = NULL;

/* ---------------------------------------------------------------------- */
/* The fake receiver process                                              */

typedef struct fake {
  pid_t pid;
  int port;
  char url[64];
} fake;

/* Starts the fake with up to four extra arguments; port 0 on failure. */
static fake fake_start(const char *a1, const char *a2, const char *a3, const char *a4) {
  fake f = {-1, 0, ""};
  int out[2];
  if (pipe(out) != 0) return f;
  f.pid = fork();
  if (f.pid == 0) {
    const char *argv[7];
    int n = 0;
    argv[n++] = python;
    argv[n++] = script;
    if (a1 != NULL) argv[n++] = a1;
    if (a2 != NULL) argv[n++] = a2;
    if (a3 != NULL) argv[n++] = a3;
    if (a4 != NULL) argv[n++] = a4;
    argv[n] = NULL;
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execv(python, (char *const *)argv);
    _exit(127);
  }
  close(out[1]);
  {
    /* The port line, within 20 s: a bounded wait on the pipe. */
    char line[32] = "";
    size_t used = 0;
    int rounds = 0;
    while (used + 1 < sizeof line && strchr(line, '\n') == NULL && rounds++ < 200) {
      struct pollfd p;
      ssize_t got;
      p.fd = out[0];
      p.events = POLLIN;
      p.revents = 0;
      if (poll(&p, 1, 100) <= 0) continue;
      got = read(out[0], line + used, sizeof line - 1 - used);
      if (got <= 0) break;
      used += (size_t)got;
      line[used] = '\0';
    }
    f.port = atoi(line);
  }
  close(out[0]);
  snprintf(f.url, sizeof f.url, "http://127.0.0.1:%d", f.port);
  return f;
}

static void fake_stop(fake *f) {
  int status = 0;
  if (f->pid > 0) {
    kill(f->pid, SIGTERM);
    waitpid(f->pid, &status, 0);
    f->pid = -1;
  }
}

/* ---------------------------------------------------------------------- */
/* Log callback                                                           */

typedef struct log_state {
  int lines;
  int opened;
  int destroyed;
} log_state;

static void on_log(const char *json_line, void *user_data) {
  log_state *state = (log_state *)user_data;
  state->lines++;
  if (strstr(json_line, "\"to\":\"open\"") != NULL) state->opened++;
}

static void on_log_destroy(void *user_data) { ((log_state *)user_data)->destroyed++; }

/* ---------------------------------------------------------------------- */

static void test_cancel_and_inits(void) {
  xg2g_cancel_token *token = NULL;
  xg2g_wait_options wait = XG2G_WAIT_OPTIONS_INIT;
  xg2g_receiver_options opts = XG2G_RECEIVER_OPTIONS_INIT;

  CHECK_STATUS(xg2g_cancel_token_create(NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_cancel_token_create(&token), XG2G_OK);
  CHECK(xg2g_cancel_token_is_cancelled(token) == 0);
  xg2g_cancel_token_cancel(token);
  xg2g_cancel_token_cancel(token);
  xg2g_cancel_token_cancel(NULL);
  CHECK(xg2g_cancel_token_is_cancelled(token) == 1);
  CHECK(xg2g_cancel_token_is_cancelled(NULL) == 0);
  xg2g_cancel_token_destroy(token);
  xg2g_cancel_token_destroy(NULL);

  CHECK_STATUS(xg2g_wait_options_init(NULL, XG2G_WAIT_OPTIONS_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_wait_options_init(&wait, 9), XG2G_EVERSION);
  CHECK_STATUS(xg2g_wait_options_init(&wait, XG2G_WAIT_OPTIONS_VERSION), XG2G_OK);
  CHECK(wait.timeout_ms == 30000 && wait.initial_backoff_ms == 50);
  CHECK_STATUS(xg2g_receiver_options_init(NULL, XG2G_RECEIVER_OPTIONS_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_receiver_options_init(&opts, 0), XG2G_EVERSION);
  CHECK_STATUS(xg2g_receiver_options_init(&opts, XG2G_RECEIVER_OPTIONS_VERSION), XG2G_OK);
  CHECK(opts.poll_interval_ms == 250 && opts.required_polls == 2);
  CHECK(opts.breaker_failure_threshold == 5 && opts.breaker_open_timeout_ms == 30000);

  CHECK(strcmp(xg2g_status_str(XG2G_ECIRCUITOPEN), "XG2G_ECIRCUITOPEN") == 0);
}

static void test_waits(const fake *up) {
  xg2g_wait_options wait = XG2G_WAIT_OPTIONS_INIT;
  xg2g_cancel_token *cancel = NULL;
  char url[96];
  fake down;

  wait.timeout_ms = 5000;
  wait.initial_backoff_ms = 10;
  wait.max_backoff_ms = 50;
  snprintf(url, sizeof url, "%s/api/about", up->url);
  CHECK_STATUS(xg2g_wait_http_ready(url, &wait, NULL), XG2G_OK);
  CHECK_STATUS(xg2g_wait_tcp_ready("127.0.0.1", up->port, NULL, NULL), XG2G_OK);

  /* A port nobody listens on any more: the wait times out naming the error. */
  down = fake_start(NULL, NULL, NULL, NULL);
  fake_stop(&down);
  snprintf(url, sizeof url, "%s/api/about", down.url);
  wait.timeout_ms = 200;
  CHECK_STATUS(xg2g_wait_http_ready(url, &wait, NULL), XG2G_ETIMEOUT);
  CHECK_ERROR_MENTIONS("xg2g_wait_http_ready");
  CHECK_ERROR_MENTIONS("attempt");
  CHECK_STATUS(xg2g_wait_tcp_ready("127.0.0.1", down.port, &wait, NULL), XG2G_ETIMEOUT);
  CHECK_ERROR_MENTIONS("refused");

  /* Cancelled (here before the wait starts; the C++ tests cancel mid-wait). */
  CHECK_STATUS(xg2g_cancel_token_create(&cancel), XG2G_OK);
  xg2g_cancel_token_cancel(cancel);
  wait.timeout_ms = 30000;
  CHECK_STATUS(xg2g_wait_http_ready(url, &wait, cancel), XG2G_ECANCELLED);
  CHECK_STATUS(xg2g_wait_tcp_ready("127.0.0.1", down.port, &wait, cancel), XG2G_ECANCELLED);
  xg2g_cancel_token_destroy(cancel);

  CHECK_STATUS(xg2g_wait_http_ready(NULL, NULL, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_wait_http_ready("ftp://127.0.0.1/", NULL, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_wait_tcp_ready(NULL, 80, NULL, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_wait_tcp_ready("127.0.0.1", 0, NULL, NULL), XG2G_EINVAL);
  wait.max_backoff_ms = 1;
  CHECK_STATUS(xg2g_wait_tcp_ready("127.0.0.1", up->port, &wait, NULL), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("max_backoff_ms");
  wait.version = 7;
  CHECK_STATUS(xg2g_wait_tcp_ready("127.0.0.1", up->port, &wait, NULL), XG2G_EVERSION);
}

static void test_client(const fake *up) {
  xg2g_receiver *r = NULL;
  xg2g_receiver_options opts = XG2G_RECEIVER_OPTIONS_INIT;
  xg2g_signal signal = XG2G_SIGNAL_INIT;
  xg2g_reason reason = XG2G_R_UNKNOWN;
  char *current = NULL;

  CHECK_STATUS(xg2g_receiver_create(NULL, up->url, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_receiver_create(&r, NULL, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_receiver_create(&r, "not a url", NULL), XG2G_EINVAL);
  CHECK(r == NULL);
  opts.poll_jitter_ms = opts.poll_interval_ms;
  CHECK_STATUS(xg2g_receiver_create(&r, up->url, &opts), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("poll_jitter_ms");
  opts.version = 5;
  CHECK_STATUS(xg2g_receiver_create(&r, up->url, &opts), XG2G_EVERSION);

  CHECK_STATUS(xg2g_receiver_options_init(&opts, XG2G_RECEIVER_OPTIONS_VERSION), XG2G_OK);
  opts.poll_interval_ms = 30;
  opts.poll_jitter_ms = 5;
  opts.max_bad_polls = 3;
  opts.breaker_name = "capi-test";
  CHECK_STATUS(xg2g_receiver_create(&r, up->url, &opts), XG2G_OK);
  CHECK(xg2g_receiver_get_breaker_state(r) == XG2G_BREAKER_CLOSED);
  CHECK(xg2g_receiver_get_breaker_state(NULL) == XG2G_BREAKER_CLOSED);

  CHECK_STATUS(xg2g_receiver_ping(r), XG2G_OK);
  CHECK_STATUS(xg2g_receiver_ping(NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_receiver_zap(r, REF), XG2G_OK);
  CHECK_STATUS(xg2g_receiver_zap(r, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_receiver_zap(r, ""), XG2G_EINVAL);

  CHECK_STATUS(xg2g_receiver_get_current(&current, r), XG2G_OK);
  CHECK(current != NULL && strcmp(current, REF) == 0);
  xg2g_free(current);
  CHECK_STATUS(xg2g_receiver_get_current(NULL, r), XG2G_EINVAL);
  current = (char *)1;
  CHECK_STATUS(xg2g_receiver_get_current(&current, NULL), XG2G_EINVAL);
  CHECK(current == NULL);

  CHECK_STATUS(xg2g_receiver_get_signal(&signal, r), XG2G_OK);
  CHECK(signal.locked == 1);
  CHECK(signal.known == (XG2G_SIGNAL_SNR | XG2G_SIGNAL_SNR_DB | XG2G_SIGNAL_AGC | XG2G_SIGNAL_BER));
  CHECK(signal.snr_percent > 91.0 && signal.snr_percent < 93.0);
  CHECK(signal.snr_db > 14.0 && signal.snr_db < 14.5);
  signal.version = 3;
  CHECK_STATUS(xg2g_receiver_get_signal(&signal, r), XG2G_EVERSION);
  signal.version = XG2G_SIGNAL_VERSION;
  CHECK_STATUS(xg2g_receiver_get_signal(&signal, NULL), XG2G_EINVAL);

  /* Tuned: two polls show the service with a lock. */
  CHECK_STATUS(xg2g_receiver_tune(&reason, r, 0, OTHER, 5000, NULL), XG2G_OK);
  CHECK(reason == XG2G_R_NONE);
  CHECK_STATUS(xg2g_receiver_wait_tuned(&reason, r, 0, OTHER, 5000, NULL), XG2G_OK);
  /* Waiting for a service that is not current: another service, three polls. */
  CHECK_STATUS(xg2g_receiver_wait_tuned(&reason, r, 0, REF, 5000, NULL), XG2G_ECONFLICT);
  CHECK(reason == XG2G_R_TUNE_FAILED);
  CHECK_ERROR_MENTIONS(OTHER);
  CHECK_STATUS(xg2g_receiver_wait_tuned(NULL, r, 0, REF, 0, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_receiver_tune(&reason, NULL, 0, REF, 100, NULL), XG2G_EINVAL);
  CHECK(reason == XG2G_R_NONE);

  CHECK_STATUS(xg2g_receiver_set_log_callback(NULL, on_log, NULL, NULL), XG2G_EINVAL);
  xg2g_receiver_destroy(r);
  xg2g_receiver_destroy(NULL);
}

static void test_breaker(void) {
  fake broken = fake_start("--error", "500", NULL, NULL);
  xg2g_receiver *r = NULL;
  xg2g_receiver_options opts = XG2G_RECEIVER_OPTIONS_INIT;
  xg2g_reason reason = XG2G_R_NONE;
  log_state log = {0, 0, 0};
  log_state replaced = {0, 0, 0};
  char *metrics = NULL;
  int i;

  CHECK(broken.port > 0);
  opts.breaker_failure_threshold = 2;
  opts.breaker_open_timeout_ms = 60000;
  opts.breaker_name = "capi-broken";
  CHECK_STATUS(xg2g_receiver_create(&r, broken.url, &opts), XG2G_OK);
  CHECK_STATUS(xg2g_receiver_set_log_callback(r, on_log, &replaced, on_log_destroy), XG2G_OK);
  CHECK_STATUS(xg2g_receiver_set_log_callback(r, on_log, &log, on_log_destroy), XG2G_OK);
  CHECK(replaced.destroyed == 1);

  for (i = 0; i < 2; ++i) CHECK_STATUS(xg2g_receiver_ping(r), XG2G_EUNAVAILABLE);
  CHECK(xg2g_receiver_get_breaker_state(r) == XG2G_BREAKER_OPEN);
  CHECK(log.opened == 1);
  CHECK_STATUS(xg2g_receiver_ping(r), XG2G_ECIRCUITOPEN);
  CHECK_ERROR_MENTIONS("capi-broken");
  CHECK_STATUS(xg2g_receiver_tune(&reason, r, 0, REF, 1000, NULL), XG2G_ECIRCUITOPEN);
  CHECK(reason == XG2G_R_TUNE_FAILED);

  CHECK_STATUS(xg2g_circuit_breaker_get_metrics(NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_circuit_breaker_get_metrics(&metrics), XG2G_OK);
  CHECK(metrics != NULL && strstr(metrics, "xg2g_circuit_breaker_state{name=\"capi-broken\"} 2") != NULL);
  CHECK(metrics != NULL &&
        strstr(metrics, "xg2g_circuit_breaker_trips_total{name=\"capi-broken\",reason=\"consecutive_failures\"} 1") != NULL);
  xg2g_free(metrics);

  xg2g_receiver_destroy(r);
  CHECK(log.destroyed == 1);
  /* The destroyed receiver's breaker left the metrics. */
  CHECK_STATUS(xg2g_circuit_breaker_get_metrics(&metrics), XG2G_OK);
  CHECK(metrics != NULL && strstr(metrics, "capi-broken") == NULL);
  xg2g_free(metrics);

  /* fn NULL: destroy runs at once. */
  CHECK_STATUS(xg2g_receiver_create(&r, broken.url, NULL), XG2G_OK);
  log.destroyed = 0;
  CHECK_STATUS(xg2g_receiver_set_log_callback(r, NULL, &log, on_log_destroy), XG2G_OK);
  CHECK(log.destroyed == 1);
  xg2g_receiver_destroy(r);
  fake_stop(&broken);
}

static xg2g_session_state state_of(xg2g_store *store, const char *id) {
  xg2g_session *s = NULL;
  xg2g_session_state state = (xg2g_session_state)-1;
  if (xg2g_store_get_session(&s, store, id) == XG2G_OK) state = xg2g_session_get_state(s);
  xg2g_session_destroy(s);
  return state;
}

static void test_engine_pipeline(const fake *up) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = NULL;
  xg2g_engine *engine = NULL;
  xg2g_receiver_options opts = XG2G_RECEIVER_OPTIONS_INIT;
  xg2g_start_request req = XG2G_START_REQUEST_INIT;
  xg2g_start_result res = XG2G_START_RESULT_INIT;
  xg2g_stop_result stop = XG2G_STOP_RESULT_INIT;

  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "0"), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_manual_clock(cfg, T0), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_receiver(NULL, up->url, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_receiver(cfg, "gopher://x", NULL), XG2G_EINVAL);
  opts.version = 0;
  CHECK_STATUS(xg2g_config_set_receiver(cfg, up->url, &opts), XG2G_EVERSION);
  CHECK_STATUS(xg2g_receiver_options_init(&opts, XG2G_RECEIVER_OPTIONS_VERSION), XG2G_OK);
  opts.poll_interval_ms = 100;
  opts.poll_jitter_ms = 0;
  opts.breaker_name = "capi-engine";
  CHECK_STATUS(xg2g_config_set_receiver(cfg, up->url, &opts), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&engine, cfg, store), XG2G_OK);
  xg2g_config_destroy(cfg);

  req.service_ref = REF;
  CHECK_STATUS(xg2g_engine_start(&res, engine, &req), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(engine), XG2G_OK); /* the zap */
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STARTING);
  CHECK_STATUS(xg2g_engine_advance_clock(engine, 100), XG2G_OK); /* poll 1 */
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STARTING);
  CHECK_STATUS(xg2g_engine_advance_clock(engine, 100), XG2G_OK); /* poll 2: confirmed */
  CHECK(state_of(store, res.session_id) == XG2G_STATE_READY);
  CHECK_STATUS(xg2g_engine_stop(&stop, engine, res.session_id), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(engine), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STOPPED);

  xg2g_engine_destroy(engine);
  xg2g_store_close(store);

  /* "" removes the receiver again. */
  CHECK_STATUS(xg2g_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_receiver(cfg, up->url, NULL), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_receiver(cfg, "", NULL), XG2G_OK);
  xg2g_config_destroy(cfg);
}

int main(int argc, char **argv) {
  fake up;
  if (argc < 3) {
    fprintf(stderr, "usage: %s PYTHON FAKE_RECEIVER_SCRIPT\n", argv[0]);
    return 2;
  }
  python = argv[1];
  script = argv[2];
  up = fake_start(NULL, NULL, NULL, NULL);
  if (up.port <= 0) {
    fprintf(stderr, "the fake receiver did not start\n");
    fake_stop(&up);
    return 1;
  }
  test_cancel_and_inits();
  test_waits(&up);
  test_client(&up);
  test_breaker();
  test_engine_pipeline(&up);
  fake_stop(&up);
  printf("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

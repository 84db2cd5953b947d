/*
 * xg2g start: this process hosts a session. The pipeline is the host's own
 * (callbacks below): it reports the stream ready as soon as the engine asks
 * it to start, and the main thread waits on a pipe, never on a timer, for
 * "ready", "stopped by someone else" or a signal.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <xg2g/xg2g.h>

#include "cli.h"

static int wake_fd = -1; /* write end of the pipe the main thread waits on */

typedef struct host {
  xg2g_engine *engine; /* set before the first start intent */
  char session_id[XG2G_SESSION_ID_SIZE];
} host;

static void wake(char what) {
  ssize_t n;
  do {
    n = write(wake_fd, &what, 1);
  } while (n < 0 && errno == EINTR);
}

static void on_signal(int sig) {
  (void)sig;
  wake('S');
}

/* Engine thread: the stream "runs" at once. */
static xg2g_status host_start(const xg2g_pipeline_command *cmd, void *user_data) {
  host *h = (host *)user_data;
  xg2g_status rc = xg2g_engine_report_ready(h->engine, cmd->session_id, cmd->fencing_token);
  if (rc == XG2G_OK) wake('R');
  return rc;
}

/* Engine thread, or the destroying thread: the stream is torn down. */
static void host_stop(const xg2g_pipeline_command *cmd, void *user_data) {
  host *h = (host *)user_data;
  (void)xg2g_engine_report_stopped(h->engine, cmd->session_id, cmd->fencing_token);
  wake('X');
}

/* Reads one wake-up; 0 when the deadline passed first. */
static char wait_for(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  char what = 0;
  for (;;) {
    int n = poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    if (read(fd, &what, 1) == 1) return what;
  }
}

static void print_result(const cli_options *opts, const xg2g_start_result *r,
                         xg2g_session_state state) {
  if (opts->json) {
    printf("{\"sessionId\":");
    cli_json_string(stdout, r->session_id);
    printf(",\"state\":\"%s\",\"correlationId\":", xg2g_session_state_str(state));
    cli_json_string(stdout, r->correlation_id);
    printf(",\"replay\":%s}\n", r->replay ? "true" : "false");
  } else {
    printf("session %s: %s%s (correlation id %s)\n", r->session_id, xg2g_session_state_str(state),
           r->replay ? ", a replay of the first request with this idempotency key" : "",
           r->correlation_id);
  }
  fflush(stdout);
}

int cli_cmd_start(const cli_options *opts, int argc, char **argv) {
  xg2g_start_request req = XG2G_START_REQUEST_INIT;
  xg2g_start_result res = XG2G_START_RESULT_INIT;
  xg2g_pipeline_callbacks cbs = XG2G_PIPELINE_CALLBACKS_INIT;
  const char *slots = NULL;
  int once = 0, fds[2] = {-1, -1}, result;
  xg2g_store *store = NULL;
  xg2g_engine *engine = NULL;
  xg2g_session *current = NULL;
  xg2g_status rc;
  host h;
  struct sigaction sa;

  memset(&h, 0, sizeof h);
  for (int i = 0; i < argc; ++i) {
    const char **target = NULL;
    if (strcmp(argv[i], "--once") == 0) {
      once = 1;
      continue;
    }
    if (strcmp(argv[i], "--profile") == 0) target = &req.profile;
    if (strcmp(argv[i], "--idempotency-key") == 0) target = &req.idempotency_key;
    if (strcmp(argv[i], "--tuner-slots") == 0) target = &slots;
    if (target != NULL) {
      if (i + 1 >= argc) return cli_usage_error("start", "%s needs a value", argv[i]);
      *target = argv[++i];
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      return cli_usage_error("start", "unknown option '%s'", argv[i]);
    } else if (req.service_ref == NULL) {
      req.service_ref = argv[i];
    } else {
      return cli_usage_error("start", "unexpected argument '%s'", argv[i]);
    }
  }
  if (req.service_ref == NULL) return cli_usage_error("start", "%s", "needs a SERVICE_REF");
  req.principal = "cli";

  if (pipe(fds) != 0) {
    perror("xg2g start: pipe");
    return CLI_FAILED;
  }
  wake_fd = fds[1];
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  cbs.start = host_start;
  cbs.stop = host_stop;
  if ((result = cli_open_store(opts, &store)) != CLI_OK) goto out;
  if ((result = cli_create_engine(opts, store, slots, &cbs, &h, &engine)) != CLI_OK) goto out;
  h.engine = engine;

  if ((rc = xg2g_engine_start(&res, engine, &req)) != XG2G_OK) {
    result = cli_fail("start", rc);
    if (res.busy_session_id[0] != '\0') {
      fprintf(stderr, "xg2g: the service's session is %s\n", res.busy_session_id);
    }
    goto out;
  }
  if (res.replay) {
    /* Another host (or an earlier run) created it: show it as it is now. */
    if ((rc = xg2g_store_get_session(&current, store, res.session_id)) != XG2G_OK) {
      result = cli_fail("read session", rc);
      goto out;
    }
    print_result(opts, &res, xg2g_session_get_state(current));
    goto out;
  }
  switch (wait_for(fds[0], 30000)) {
    case 'R':
      break;
    case 'S':
      result = CLI_FAILED;
      fprintf(stderr, "xg2g start: interrupted before the session was ready\n");
      goto out;
    default:
      /* The session ended or its start deadline passed: say how. */
      result = CLI_FAILED;
      if (xg2g_store_get_session(&current, store, res.session_id) == XG2G_OK) {
        fprintf(stderr, "xg2g start: session %s is %s (%s)\n", res.session_id,
                xg2g_session_state_str(xg2g_session_get_state(current)),
                xg2g_reason_str(xg2g_session_get_reason(current)));
      } else {
        fprintf(stderr, "xg2g start: session %s did not become ready\n", res.session_id);
      }
      goto out;
  }
  print_result(opts, &res, XG2G_STATE_READY);
  if (!once) {
    if (!opts->json) {
      printf("hosting session %s; Ctrl-C stops it\n", res.session_id);
      fflush(stdout);
    }
    if (wait_for(fds[0], -1) == 'X' && !opts->json) {
      printf("session %s was stopped elsewhere\n", res.session_id);
    }
  }
  result = CLI_OK;
out:
  /* Destroying the engine stops the session it hosts and releases its leases. */
  xg2g_engine_destroy(engine);
  xg2g_session_destroy(current);
  xg2g_store_close(store);
  wake_fd = -1;
  if (fds[0] >= 0) close(fds[0]);
  if (fds[1] >= 0) close(fds[1]);
  return result;
}

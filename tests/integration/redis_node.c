/*
 * One "daemon" of the multi-process Redis test (redis_multiprocess_test.py):
 * a store opened by URI and an engine on it, through the public C API only,
 * driven line by line on stdin. Several of these processes share one
 * redis-server the way several xg2gd daemons on several machines would.
 *
 * Usage: redis_node STORE_URI OWNER_ID GATE_FD
 *   The engine has one tuner slot (0) and runs on the manual clock: nothing
 *   happens between commands. GATE_FD is the read end of a pipe shared by
 *   every node: armed start threads each wait for one byte from it, so one
 *   write by the driver releases the threads of all processes at once.
 *
 * Commands (one reply line each; "error STATUS MESSAGE" when a call fails):
 *   arm N SERVICE   N threads, each to start SERVICE once the gate opens
 *                   -> "armed"
 *   collect         waits for the armed threads
 *                   -> "result OK BUSY OTHER WINNER BUSYFOR" (WINNER: the
 *                      session this process started or "-"; BUSYFOR: the
 *                      distinct sessions busy answers named, comma-separated,
 *                      or "-")
 *   poll            runs what is due -> "host TUNES STOPS LAST_TOKEN"
 *   advance MS      moves the clock, runs what is due -> as poll
 *   stop ID         -> "stopped STATE"
 *   state ID        -> "state STATE REASON"
 *   leases          the store's live leases -> "leases N KEY=OWNER ..."
 *   quit            ends the engine and the store -> "bye"
 * The host pipeline reports ready from its start callback and stopped from
 * its stop callback, as a host whose pipeline starts and stops at once.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xg2g/xg2g.h>

#define MAX_THREADS 256

static xg2g_engine *engine;
static xg2g_store *store;
static int gate_fd = -1;

/* What the host pipeline saw; only touched on the thread that polls. */
static long tunes, stops;
static unsigned long long last_token;

struct starter {
  pthread_t thread;
  const char *service;
  xg2g_status status;
  xg2g_start_result result;
};
static struct starter starters[MAX_THREADS];
static int armed;
static char service_ref[256];

static xg2g_status host_tune(const xg2g_pipeline_command *cmd, void *user_data) {
  (void)user_data;
  ++tunes;
  last_token = (unsigned long long)cmd->fencing_token;
  return XG2G_OK;
}

static xg2g_status host_start(const xg2g_pipeline_command *cmd, void *user_data) {
  (void)user_data;
  return xg2g_engine_report_ready(engine, cmd->session_id, cmd->fencing_token);
}

static void host_stop(const xg2g_pipeline_command *cmd, void *user_data) {
  (void)user_data;
  ++stops;
  if (xg2g_engine_report_stopped(engine, cmd->session_id, cmd->fencing_token) != XG2G_OK) {
    fprintf(stderr, "redis_node: report_stopped: %s\n", xg2g_last_error());
  }
}

static void *run_starter(void *arg) {
  struct starter *s = (struct starter *)arg;
  xg2g_start_request req = XG2G_START_REQUEST_INIT;
  char byte;
  /* One byte from the gate per thread: all processes' threads go together. */
  if (read(gate_fd, &byte, 1) != 1) {
    s->status = XG2G_EIO;
    return NULL;
  }
  req.service_ref = s->service;
  req.principal = "multiprocess";
  s->status = xg2g_engine_start(&s->result, engine, &req);
  return NULL;
}

static void reply_error(xg2g_status rc) {
  printf("error %s %s\n", xg2g_status_str(rc), xg2g_last_error());
}

static void reply_host(xg2g_status rc) {
  if (rc != XG2G_OK) {
    reply_error(rc);
    return;
  }
  printf("host %ld %ld %llu\n", tunes, stops, last_token);
}

static void do_arm(const char *args) {
  int n = 0;
  int i;
  if (armed > 0 || sscanf(args, "%d %255s", &n, service_ref) != 2 || n < 1 || n > MAX_THREADS) {
    printf("error usage arm N SERVICE (1..%d threads, none armed)\n", MAX_THREADS);
    return;
  }
  for (i = 0; i < n; ++i) {
    struct starter *s = &starters[i];
    memset(s, 0, sizeof *s);
    s->service = service_ref;
    s->result.version = XG2G_START_RESULT_VERSION;
    if (pthread_create(&s->thread, NULL, run_starter, s) != 0) {
      fprintf(stderr, "redis_node: pthread_create failed\n");
      exit(2);
    }
    ++armed;
  }
  printf("armed\n");
}

static void do_collect(void) {
  int ok = 0, busy = 0, other = 0, i, j;
  const char *winner = "-";
  char busy_for[8][XG2G_SESSION_ID_SIZE];
  int distinct = 0;
  for (i = 0; i < armed; ++i) pthread_join(starters[i].thread, NULL);
  for (i = 0; i < armed; ++i) {
    struct starter *s = &starters[i];
    if (s->status == XG2G_OK) {
      ++ok;
      winner = s->result.session_id;
    } else if (s->status == XG2G_EBUSY) {
      int seen = 0;
      ++busy;
      for (j = 0; j < distinct; ++j) seen |= strcmp(busy_for[j], s->result.busy_session_id) == 0;
      if (!seen && distinct < 8) {
        memcpy(busy_for[distinct++], s->result.busy_session_id, XG2G_SESSION_ID_SIZE);
      }
    } else {
      ++other;
      fprintf(stderr, "redis_node: start: %s\n", xg2g_status_str(s->status));
    }
  }
  printf("result %d %d %d %s ", ok, busy, other, winner);
  if (distinct == 0) printf("-");
  for (j = 0; j < distinct; ++j) printf("%s%s", j ? "," : "", busy_for[j][0] ? busy_for[j] : "?");
  printf("\n");
  armed = 0;
}

static void do_stop(const char *id) {
  xg2g_stop_result res = XG2G_STOP_RESULT_INIT;
  xg2g_status rc = xg2g_engine_stop(&res, engine, id);
  if (rc != XG2G_OK) {
    reply_error(rc);
    return;
  }
  printf("stopped %s\n", xg2g_session_state_str(res.state));
}

static void do_state(const char *id) {
  xg2g_session *s = NULL;
  xg2g_status rc = xg2g_store_get_session(&s, store, id);
  if (rc != XG2G_OK) {
    reply_error(rc);
    return;
  }
  printf("state %s %s\n", xg2g_session_state_str(xg2g_session_get_state(s)),
         xg2g_reason_str(xg2g_session_get_reason(s)));
  xg2g_session_destroy(s);
}

static void do_leases(void) {
  xg2g_lease_list *list = NULL;
  size_t i, n;
  xg2g_status rc = xg2g_store_list_leases(&list, store);
  if (rc != XG2G_OK) {
    reply_error(rc);
    return;
  }
  n = xg2g_lease_list_count(list);
  printf("leases %zu", n);
  for (i = 0; i < n; ++i) {
    printf(" %s=%s", xg2g_lease_list_key(list, i), xg2g_lease_list_owner(list, i));
  }
  printf("\n");
  xg2g_lease_list_destroy(list);
}

static void die(const char *what, xg2g_status rc) {
  fprintf(stderr, "redis_node: %s: %s (%s)\n", what, xg2g_last_error(), xg2g_status_str(rc));
  exit(2);
}

int main(int argc, char **argv) {
  xg2g_config *cfg = NULL;
  xg2g_pipeline_callbacks cbs = XG2G_PIPELINE_CALLBACKS_INIT;
  xg2g_status rc;
  char line[512];

  if (argc != 4) {
    fprintf(stderr, "usage: redis_node STORE_URI OWNER_ID GATE_FD\n");
    return 2;
  }
  gate_fd = atoi(argv[3]);
  setvbuf(stdout, NULL, _IOLBF, 0);

  if ((rc = xg2g_store_open(&store, argv[1])) != XG2G_OK) die("store_open", rc);
  if ((rc = xg2g_config_create(&cfg)) != XG2G_OK) die("config_create", rc);
  if ((rc = xg2g_config_set_tuner_slots(cfg, "0")) != XG2G_OK) die("tuner slots", rc);
  if ((rc = xg2g_config_set_owner_id(cfg, argv[2])) != XG2G_OK) die("owner id", rc);
  if ((rc = xg2g_config_set_manual_clock(cfg, 1700000000000LL)) != XG2G_OK) die("clock", rc);
  cbs.tune = host_tune;
  cbs.start = host_start;
  cbs.stop = host_stop;
  if ((rc = xg2g_config_set_pipeline(cfg, &cbs, NULL, NULL)) != XG2G_OK) die("pipeline", rc);
  if ((rc = xg2g_engine_create(&engine, cfg, store)) != XG2G_OK) die("engine_create", rc);
  xg2g_config_destroy(cfg);
  printf("ready\n");

  while (fgets(line, sizeof line, stdin) != NULL) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (strncmp(line, "arm ", 4) == 0) {
      do_arm(line + 4);
    } else if (strcmp(line, "collect") == 0) {
      do_collect();
    } else if (strcmp(line, "poll") == 0) {
      reply_host(xg2g_engine_poll(engine));
    } else if (strncmp(line, "advance ", 8) == 0) {
      reply_host(xg2g_engine_advance_clock(engine, atoll(line + 8)));
    } else if (strncmp(line, "stop ", 5) == 0) {
      do_stop(line + 5);
    } else if (strncmp(line, "state ", 6) == 0) {
      do_state(line + 6);
    } else if (strcmp(line, "leases") == 0) {
      do_leases();
    } else if (strcmp(line, "quit") == 0) {
      break;
    } else {
      printf("error usage unknown command '%s'\n", line);
    }
  }
  if (armed > 0) do_collect();
  xg2g_engine_destroy(engine);
  xg2g_store_close(store);
  printf("bye\n");
  return 0;
}

/*
 * Start+stop cycles per second through the C API on the memory store, beside
 * the raw store operations one cycle performs, measured in the same run.
 *
 * One engine cycle = xg2g_engine_start + xg2g_engine_stop of a session the
 * host never tuned (the stop ends it at once). Its store work is: put the
 * session, take the service and tuner leases, three read-modify-writes
 * (STARTING, STOPPING, STOPPED) and two lease releases. The raw baseline runs
 * exactly those eight store calls through xg2g_store_*.
 *
 * Usage: engine_bench [cycles-per-thread]   (default 20000)
 * Prints one line per thread count and the ratio engine / raw (target <= 2).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xg2g/xg2g.h>

static long cycles_per_thread = 20000;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, xg2g_status rc) {
  fprintf(stderr, "engine_bench: %s: %s (%s)\n", what, xg2g_last_error(), xg2g_status_str(rc));
  exit(2);
}

struct worker {
  int index;
  xg2g_engine *engine;
  xg2g_store *store;
};

static void *engine_cycles(void *arg) {
  struct worker *w = (struct worker *)arg;
  char service[64];
  long i;
  snprintf(service, sizeof service, "1:0:1:BENCH%d", w->index);
  for (i = 0; i < cycles_per_thread; ++i) {
    xg2g_start_request req = XG2G_START_REQUEST_INIT;
    xg2g_start_result res = XG2G_START_RESULT_INIT;
    xg2g_stop_result stopped = XG2G_STOP_RESULT_INIT;
    xg2g_status rc;
    req.service_ref = service;
    req.principal = "bench";
    if ((rc = xg2g_engine_start(&res, w->engine, &req)) != XG2G_OK) die("start", rc);
    if ((rc = xg2g_engine_stop(&stopped, w->engine, res.session_id)) != XG2G_OK) die("stop", rc);
    if (stopped.state != XG2G_STATE_STOPPED) {
      fprintf(stderr, "engine_bench: stop left %s\n", xg2g_session_state_str(stopped.state));
      exit(2);
    }
  }
  return NULL;
}

static xg2g_status touch(xg2g_session *s, void *user_data) {
  return xg2g_session_set_context(s, "step", (const char *)user_data);
}

static void *raw_cycles(void *arg) {
  struct worker *w = (struct worker *)arg;
  char service_key[64], tuner_key[32], id[48];
  long i;
  snprintf(service_key, sizeof service_key, "service:1:0:1:RAW%d", w->index);
  snprintf(tuner_key, sizeof tuner_key, "tuner:%d", w->index);
  for (i = 0; i < cycles_per_thread; ++i) {
    xg2g_session *s = NULL;
    xg2g_status rc;
    uint64_t token = 0;
    snprintf(id, sizeof id, "raw-%d-%ld", w->index, i);
    /* A record of the same size as the engine's. */
    if ((rc = xg2g_session_create(&s, id, "1:0:1:RAW", NULL, 0)) != XG2G_OK) die("create", rc);
    (void)xg2g_session_set_correlation_id(s, "0123456789abcdef");
    (void)xg2g_session_set_context(s, "owner", "engine-0123456789abcdef");
    (void)xg2g_session_set_context(s, "tuner_slot", "0");
    (void)xg2g_session_set_context(s, "fencing_token", "12345");
    if ((rc = xg2g_store_put_session(w->store, s)) != XG2G_OK) die("put", rc);
    if ((rc = xg2g_store_lease_acquire(&token, w->store, service_key, id, 30000)) != XG2G_OK)
      die("acquire service", rc);
    if ((rc = xg2g_store_lease_acquire(&token, w->store, tuner_key, id, 30000)) != XG2G_OK)
      die("acquire tuner", rc);
    if ((rc = xg2g_store_update_session(NULL, w->store, id, touch, "starting")) != XG2G_OK ||
        (rc = xg2g_store_update_session(NULL, w->store, id, touch, "stopping")) != XG2G_OK ||
        (rc = xg2g_store_update_session(NULL, w->store, id, touch, "stopped")) != XG2G_OK)
      die("update", rc);
    if ((rc = xg2g_store_lease_release(w->store, tuner_key, id)) != XG2G_OK ||
        (rc = xg2g_store_lease_release(w->store, service_key, id)) != XG2G_OK)
      die("release", rc);
    xg2g_session_destroy(s);
  }
  return NULL;
}

static double run(int threads, void *(*fn)(void *), xg2g_engine *engine, xg2g_store *store) {
  pthread_t ids[2];
  struct worker workers[2];
  double start;
  int t;
  start = now_seconds();
  for (t = 0; t < threads; ++t) {
    workers[t].index = t;
    workers[t].engine = engine;
    workers[t].store = store;
    pthread_create(&ids[t], NULL, fn, &workers[t]);
  }
  for (t = 0; t < threads; ++t) pthread_join(ids[t], NULL);
  return now_seconds() - start;
}

int main(int argc, char **argv) {
  int threads;
  if (argc > 1) cycles_per_thread = atol(argv[1]);
  if (cycles_per_thread <= 0) cycles_per_thread = 20000;
  printf("%-8s %14s %14s %8s\n", "threads", "engine cyc/s", "raw cyc/s", "ratio");
  for (threads = 1; threads <= 2; ++threads) {
    xg2g_store *engine_store = NULL, *raw_store = NULL;
    xg2g_config *cfg = NULL;
    xg2g_engine *engine = NULL;
    xg2g_status rc;
    double engine_s, raw_s, cycles = (double)cycles_per_thread * threads;
    if ((rc = xg2g_store_open(&engine_store, "memory:")) != XG2G_OK) die("open", rc);
    if ((rc = xg2g_store_open(&raw_store, "memory:")) != XG2G_OK) die("open", rc);
    if ((rc = xg2g_config_create(&cfg)) != XG2G_OK) die("config", rc);
    if ((rc = xg2g_config_set_tuner_slots(cfg, "0-1")) != XG2G_OK) die("slots", rc);
    /* Manual clock: no background thread competes with the measured ones. */
    if ((rc = xg2g_config_set_manual_clock(cfg, 1800000000000LL)) != XG2G_OK) die("clock", rc);
    if ((rc = xg2g_engine_create(&engine, cfg, engine_store)) != XG2G_OK) die("engine", rc);
    /* Interleave so drift in machine load hits both sides alike. */
    raw_s = run(threads, raw_cycles, NULL, raw_store);
    engine_s = run(threads, engine_cycles, engine, NULL);
    printf("%-8d %14.0f %14.0f %8.2f\n", threads, cycles / engine_s, cycles / raw_s,
           engine_s / raw_s);
    xg2g_engine_destroy(engine);
    xg2g_config_destroy(cfg);
    xg2g_store_close(engine_store);
    xg2g_store_close(raw_store);
  }
  printf("target: ratio <= 2.00 (the engine adds at most 2x over its store operations)\n");
  return 0;
}

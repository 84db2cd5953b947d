/*
 * Plain-C test of the engine's entry points (xg2g_engine.h): every function,
 * NULL arguments and bad versions, and whole session cycles with the
 * simulated pipeline and with host callbacks of this test's own. Time moves
 * by hand (manual clock mode); the one test of the engine's own thread waits
 * for states with a deadline, never a fixed sleep. Built as C99; links only
 * the shared library.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xg2g/xg2g.h>

#include "check.h"

#define T0 1700000000000LL /* the manual clock's start */

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */

static xg2g_session_state state_of(xg2g_store *store, const char *id) {
  xg2g_session *s = NULL;
  xg2g_session_state state = (xg2g_session_state)-1;
  if (xg2g_store_get_session(&s, store, id) == XG2G_OK) state = xg2g_session_get_state(s);
  xg2g_session_destroy(s);
  return state;
}

static xg2g_reason reason_of(xg2g_store *store, const char *id) {
  xg2g_session *s = NULL;
  xg2g_reason reason = (xg2g_reason)-1;
  if (xg2g_store_get_session(&s, store, id) == XG2G_OK) reason = xg2g_session_get_reason(s);
  xg2g_session_destroy(s);
  return reason;
}

/* 1 when the session's reasonDetail contains `text`. */
static int detail_mentions(xg2g_store *store, const char *id, const char *text) {
  xg2g_session *s = NULL;
  int found = 0;
  if (xg2g_store_get_session(&s, store, id) == XG2G_OK) {
    found = strstr(xg2g_session_get_reason_detail(s), text) != NULL;
  }
  xg2g_session_destroy(s);
  return found;
}

static int context_is(xg2g_store *store, const char *id, const char *key, const char *want) {
  xg2g_session *s = NULL;
  int same = 0;
  if (xg2g_store_get_session(&s, store, id) == XG2G_OK) {
    const char *value = xg2g_session_get_context(s, key);
    same = value != NULL && strcmp(value, want) == 0;
  }
  xg2g_session_destroy(s);
  return same;
}

/* A start request for service_ref with everything else unset. */
static xg2g_start_request request_for(const char *service_ref) {
  xg2g_start_request req = XG2G_START_REQUEST_INIT;
  req.service_ref = service_ref;
  return req;
}

static xg2g_status start(xg2g_start_result *res, xg2g_engine *e, const xg2g_start_request *req) {
  xg2g_start_result fresh = XG2G_START_RESULT_INIT;
  *res = fresh;
  return xg2g_engine_start(res, e, req);
}

static xg2g_status start_service(xg2g_start_result *res, xg2g_engine *e, const char *ref) {
  xg2g_start_request req = request_for(ref);
  return start(res, e, &req);
}

static void counting_destroy(void *user_data) { ++*(int *)user_data; }

/* Collects audit lines. Only ever called on one thread at a time here. */
#define MAX_AUDIT 32
typedef struct audit_log {
  int count;
  char lines[MAX_AUDIT][512];
  int destroyed;
} audit_log;

static void collect_audit(const char *json_line, void *user_data) {
  audit_log *log = (audit_log *)user_data;
  if (log->count < MAX_AUDIT) {
    strncpy(log->lines[log->count], json_line, sizeof log->lines[0] - 1);
    log->lines[log->count][sizeof log->lines[0] - 1] = '\0';
  }
  ++log->count;
}

static void destroy_audit(void *user_data) { ++((audit_log *)user_data)->destroyed; }

/* Number of audit lines that contain both a and b. */
static int audit_lines_with(const audit_log *log, const char *a, const char *b) {
  int i, n = 0;
  for (i = 0; i < log->count && i < MAX_AUDIT; ++i) {
    if (strstr(log->lines[i], a) != NULL && strstr(log->lines[i], b) != NULL) ++n;
  }
  return n;
}

/* A manual-clock config with the given slots. */
static xg2g_config *manual_config(const char *slots) {
  xg2g_config *cfg = NULL;
  CHECK_STATUS(xg2g_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, slots), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_manual_clock(cfg, T0), XG2G_OK);
  return cfg;
}

/* ---------------------------------------------------------------------- */
/* Struct initialisers                                                    */

static void test_struct_inits(void) {
  xg2g_pipeline_callbacks cbs;
  xg2g_simulated_pipeline_options sim;
  xg2g_start_request req;
  xg2g_start_result res;
  xg2g_stop_result stop;
  xg2g_engine_stats stats;

  memset(&cbs, 0x5a, sizeof cbs);
  CHECK_STATUS(xg2g_pipeline_callbacks_init(NULL, XG2G_PIPELINE_CALLBACKS_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_pipeline_callbacks_init(&cbs, 99), XG2G_EVERSION);
  CHECK_ERROR_MENTIONS("99");
  CHECK_STATUS(xg2g_pipeline_callbacks_init(&cbs, XG2G_PIPELINE_CALLBACKS_VERSION), XG2G_OK);
  CHECK(cbs.version == XG2G_PIPELINE_CALLBACKS_VERSION && cbs.tune == NULL && cbs.start == NULL &&
        cbs.stop == NULL);

  memset(&sim, 0x5a, sizeof sim);
  CHECK_STATUS(xg2g_simulated_pipeline_options_init(NULL, XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION),
               XG2G_EINVAL);
  CHECK_STATUS(xg2g_simulated_pipeline_options_init(&sim, 0), XG2G_EVERSION);
  CHECK_STATUS(xg2g_simulated_pipeline_options_init(&sim, XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION),
               XG2G_OK);
  CHECK(sim.version == XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION && sim.ready_delay_ms == 0 &&
        sim.fail_tune == 0 && sim.fail_after_ready_ms == 0);

  memset(&req, 0x5a, sizeof req);
  CHECK_STATUS(xg2g_start_request_init(NULL, XG2G_START_REQUEST_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_start_request_init(&req, 2), XG2G_EVERSION);
  CHECK_STATUS(xg2g_start_request_init(&req, XG2G_START_REQUEST_VERSION), XG2G_OK);
  CHECK(req.version == XG2G_START_REQUEST_VERSION && req.service_ref == NULL &&
        req.params == NULL && req.param_count == 0);

  memset(&res, 0x5a, sizeof res);
  CHECK_STATUS(xg2g_start_result_init(NULL, XG2G_START_RESULT_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_start_result_init(&res, 7), XG2G_EVERSION);
  CHECK_STATUS(xg2g_start_result_init(&res, XG2G_START_RESULT_VERSION), XG2G_OK);
  CHECK(res.version == XG2G_START_RESULT_VERSION && res.session_id[0] == '\0' &&
        res.busy_session_id[0] == '\0' && res.replay == 0 && res.state == XG2G_STATE_NEW);

  memset(&stop, 0x5a, sizeof stop);
  CHECK_STATUS(xg2g_stop_result_init(NULL, XG2G_STOP_RESULT_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_stop_result_init(&stop, 3), XG2G_EVERSION);
  CHECK_STATUS(xg2g_stop_result_init(&stop, XG2G_STOP_RESULT_VERSION), XG2G_OK);
  CHECK(stop.version == XG2G_STOP_RESULT_VERSION && stop.session_id[0] == '\0');

  memset(&stats, 0x5a, sizeof stats);
  CHECK_STATUS(xg2g_engine_stats_init(NULL, XG2G_ENGINE_STATS_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_stats_init(&stats, 5), XG2G_EVERSION);
  CHECK_STATUS(xg2g_engine_stats_init(&stats, XG2G_ENGINE_STATS_VERSION), XG2G_OK);
  CHECK(stats.version == XG2G_ENGINE_STATS_VERSION && stats.start_intents == 0 &&
        stats.active_sessions == 0);
}

/* ---------------------------------------------------------------------- */
/* Configuration                                                          */

static void test_config_setters(void) {
  xg2g_config *cfg = (xg2g_config *)1;
  xg2g_pipeline_callbacks cbs = XG2G_PIPELINE_CALLBACKS_INIT;
  xg2g_simulated_pipeline_options sim = XG2G_SIMULATED_PIPELINE_OPTIONS_INIT;
  int destroyed = 0;

  CHECK_STATUS(xg2g_config_create(NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_create(&cfg), XG2G_OK);
  CHECK(cfg != NULL && cfg != (xg2g_config *)1);

  /* Tuner slots: good specs, and bad ones named in the message. */
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "0-3"), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "0,2,5"), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "0"), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_tuner_slots(NULL, "0"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, ""), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("xg2g_config_set_tuner_slots");
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "0,x7"), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("x7");
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "5-2"), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("5-2");
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "1,1"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "0,,1"), XG2G_EINVAL);

  CHECK_STATUS(xg2g_config_set_owner_id(cfg, "daemon-a"), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_owner_id(cfg, ""), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_owner_id(cfg, "has space"), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("owner_id");
  CHECK_STATUS(xg2g_config_set_owner_id(cfg, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_owner_id(NULL, "a"), XG2G_EINVAL);

  /* Durations: > 0, or >= 0 where 0 means off / at once. */
  CHECK_STATUS(xg2g_config_set_lease_ttl_ms(cfg, 30000), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_lease_ttl_ms(cfg, 0), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("xg2g_config_set_lease_ttl_ms");
  CHECK_STATUS(xg2g_config_set_lease_ttl_ms(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_heartbeat_ms(cfg, 10000), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_heartbeat_ms(cfg, -1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_heartbeat_ms(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_start_deadline_ms(cfg, 30000), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_start_deadline_ms(cfg, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_start_deadline_ms(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_stop_deadline_ms(cfg, 60000), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_stop_deadline_ms(cfg, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_stop_deadline_ms(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_idle_timeout_ms(cfg, 0), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_idle_timeout_ms(cfg, -5), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("-5");
  CHECK_STATUS(xg2g_config_set_idle_timeout_ms(NULL, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_retention_ms(cfg, 1000), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_retention_ms(cfg, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_retention_ms(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_idempotency_ttl_ms(cfg, 600000), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_idempotency_ttl_ms(cfg, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_idempotency_ttl_ms(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_requeue_on_recovery(cfg, 1), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_requeue_on_recovery(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_manual_clock(cfg, T0), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_manual_clock(cfg, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_manual_clock(NULL, T0), XG2G_EINVAL);

  /* Pipelines. user_data is the library's whatever happens: destroy runs
   * exactly once, at once when the call fails or removes the pipeline. */
  CHECK_STATUS(xg2g_config_set_pipeline(NULL, &cbs, &destroyed, counting_destroy), XG2G_EINVAL);
  CHECK(destroyed == 1);
  cbs.version = 42;
  CHECK_STATUS(xg2g_config_set_pipeline(cfg, &cbs, &destroyed, counting_destroy), XG2G_EVERSION);
  CHECK_ERROR_MENTIONS("42");
  CHECK(destroyed == 2);
  cbs.version = XG2G_PIPELINE_CALLBACKS_VERSION;
  CHECK_STATUS(xg2g_config_set_pipeline(cfg, NULL, &destroyed, counting_destroy), XG2G_OK);
  CHECK(destroyed == 3);
  CHECK_STATUS(xg2g_config_set_pipeline(cfg, &cbs, &destroyed, counting_destroy), XG2G_OK);
  CHECK(destroyed == 3);
  /* Replacing the pipeline lets go of the callbacks (no engine holds them). */
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, NULL), XG2G_OK);
  CHECK(destroyed == 4);
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(NULL, &sim), XG2G_EINVAL);
  sim.version = 0;
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, &sim), XG2G_EVERSION);
  sim.version = XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION;
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, &sim), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_pipeline(cfg, &cbs, NULL, NULL), XG2G_OK);

  /* Audit sinks. */
  CHECK_STATUS(xg2g_config_set_audit_callback(NULL, NULL, &destroyed, counting_destroy),
               XG2G_EINVAL);
  CHECK(destroyed == 5);
  CHECK_STATUS(xg2g_config_set_audit_callback(cfg, NULL, &destroyed, counting_destroy), XG2G_OK);
  CHECK(destroyed == 6);
  CHECK_STATUS(xg2g_config_set_audit_path(cfg, "/tmp/x.jsonl"), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_audit_path(cfg, ""), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("path");
  CHECK_STATUS(xg2g_config_set_audit_path(cfg, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_config_set_audit_path(NULL, "/tmp/x.jsonl"), XG2G_EINVAL);

  /* A config that holds callbacks releases them when destroyed. */
  CHECK_STATUS(xg2g_config_set_pipeline(cfg, &cbs, &destroyed, counting_destroy), XG2G_OK);
  xg2g_config_destroy(cfg);
  CHECK(destroyed == 7);
  xg2g_config_destroy(NULL);
}

/* ---------------------------------------------------------------------- */
/* Engine arguments                                                       */

static void test_engine_create_errors(void) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = NULL;
  xg2g_engine *e = (xg2g_engine *)1;

  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_manual_clock(cfg, T0), XG2G_OK);

  CHECK_STATUS(xg2g_engine_create(NULL, cfg, store), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_create(&e, NULL, store), XG2G_EINVAL);
  CHECK(e == NULL);
  e = (xg2g_engine *)1;
  CHECK_STATUS(xg2g_engine_create(&e, cfg, NULL), XG2G_EINVAL);
  CHECK(e == NULL);

  /* The heartbeat must be shorter than the lease, checked at creation. */
  CHECK_STATUS(xg2g_config_set_heartbeat_ms(cfg, 5000), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_lease_ttl_ms(cfg, 5000), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("heartbeat");
  CHECK(e == NULL);
  CHECK_STATUS(xg2g_config_set_lease_ttl_ms(cfg, 15000), XG2G_OK);

  /* An audit file that cannot be opened. */
  CHECK_STATUS(xg2g_config_set_audit_path(cfg, "/nonexistent-dir/audit.jsonl"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_EIO);
  CHECK_ERROR_MENTIONS("/nonexistent-dir/audit.jsonl");
  CHECK(e == NULL);

  CHECK_STATUS(xg2g_config_set_audit_callback(cfg, NULL, NULL, NULL), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);
  CHECK(e != NULL);
  xg2g_engine_destroy(e);
  xg2g_engine_destroy(NULL);
  xg2g_config_destroy(cfg);
  xg2g_store_close(store);
}

static void test_engine_arguments(void) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = manual_config("0-1");
  xg2g_engine *e = NULL;
  xg2g_start_result res = XG2G_START_RESULT_INIT;
  xg2g_stop_result stop = XG2G_STOP_RESULT_INIT;
  xg2g_engine_stats stats = XG2G_ENGINE_STATS_INIT;
  xg2g_start_request req = request_for("1:0:1:ARGS");
  const char *dup_params[] = {"k", "1", "k", "2"};
  const char *null_params[] = {"k", NULL};

  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);

  /* start */
  CHECK_STATUS(xg2g_engine_start(NULL, e, &req), XG2G_EINVAL);
  res.version = 9;
  strcpy(res.session_id, "untouched");
  CHECK_STATUS(xg2g_engine_start(&res, e, &req), XG2G_EVERSION);
  CHECK(strcmp(res.session_id, "untouched") == 0);
  CHECK_STATUS(start(&res, NULL, &req), XG2G_EINVAL);
  CHECK(res.session_id[0] == '\0');
  CHECK_STATUS(start(&res, e, NULL), XG2G_EINVAL);
  req.version = 77;
  CHECK_STATUS(start(&res, e, &req), XG2G_EVERSION);
  CHECK_ERROR_MENTIONS("77");
  req = request_for(NULL);
  CHECK_STATUS(start(&res, e, &req), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("service_ref");
  req = request_for("");
  CHECK_STATUS(start(&res, e, &req), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("serviceRef");
  req = request_for("1:0:1:ARGS");
  req.param_count = 1;
  CHECK_STATUS(start(&res, e, &req), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("params");
  req.params = dup_params;
  req.param_count = 2;
  CHECK_STATUS(start(&res, e, &req), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("'k'");
  req.params = null_params;
  req.param_count = 1;
  CHECK_STATUS(start(&res, e, &req), XG2G_EINVAL);
  req = request_for("1:0:1:ARGS");
  req.correlation_id = "not a valid id";
  CHECK_STATUS(start(&res, e, &req), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("correlationId");
  CHECK(res.session_id[0] == '\0' && res.busy_session_id[0] == '\0');

  /* stop */
  CHECK_STATUS(xg2g_engine_stop(&stop, NULL, "abc"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_stop(&stop, e, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_stop(&stop, e, "../etc"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_stop(&stop, e, "no_such_session"), XG2G_ENOTFOUND);
  CHECK_ERROR_MENTIONS("xg2g_engine_stop");
  CHECK_STATUS(xg2g_engine_stop(NULL, e, "no_such_session"), XG2G_ENOTFOUND);
  stop.version = 4;
  CHECK_STATUS(xg2g_engine_stop(&stop, e, "no_such_session"), XG2G_EVERSION);
  stop.version = XG2G_STOP_RESULT_VERSION;

  /* reports and touch */
  CHECK_STATUS(xg2g_engine_report_ready(NULL, "abc", 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_report_ready(e, NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_report_ready(e, "no_such_session", 1), XG2G_ENOTFOUND);
  CHECK_STATUS(xg2g_engine_report_failed(NULL, "abc", 1, XG2G_R_PROCESS_ENDED, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_report_failed(e, NULL, 1, XG2G_R_PROCESS_ENDED, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_report_failed(e, "abc", 1, (xg2g_reason)99, NULL), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("99");
  CHECK_STATUS(xg2g_engine_report_failed(e, "abc", 1, (xg2g_reason)-1, "x"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_report_failed(e, "no_such_session", 1, XG2G_R_PROCESS_ENDED, NULL),
               XG2G_ENOTFOUND);
  CHECK_STATUS(xg2g_engine_report_stopped(NULL, "abc", 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_report_stopped(e, NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_report_stopped(e, "no_such_session", 1), XG2G_ENOTFOUND);
  CHECK_STATUS(xg2g_engine_touch(NULL, "abc"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_touch(e, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_touch(e, "bad id!"), XG2G_EINVAL);

  /* poll, clock, stats */
  CHECK_STATUS(xg2g_engine_poll(NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK(strcmp(xg2g_last_error(), "") == 0);
  CHECK_STATUS(xg2g_engine_advance_clock(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_advance_clock(e, -1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 0), XG2G_OK);
  CHECK_STATUS(xg2g_engine_get_stats(NULL, e), XG2G_EINVAL);
  stats.version = 0;
  CHECK_STATUS(xg2g_engine_get_stats(&stats, e), XG2G_EVERSION);
  stats.version = XG2G_ENGINE_STATS_VERSION;
  CHECK_STATUS(xg2g_engine_get_stats(&stats, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_engine_get_stats(&stats, e), XG2G_OK);
  /* Rejected starts still count as intents; nothing was created. */
  CHECK(stats.start_intents >= 1 && stats.active_sessions == 0 && stats.busy == 0);

  xg2g_engine_destroy(e);
  xg2g_config_destroy(cfg);
  xg2g_store_close(store);
}

/* ---------------------------------------------------------------------- */
/* The simulated pipeline, manual clock                                   */

static void test_simulated_cycle(void) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = manual_config("0");
  xg2g_engine *e = NULL;
  xg2g_simulated_pipeline_options sim = XG2G_SIMULATED_PIPELINE_OPTIONS_INIT;
  xg2g_start_result res, other;
  xg2g_stop_result stop = XG2G_STOP_RESULT_INIT;
  xg2g_engine_stats stats = XG2G_ENGINE_STATS_INIT;
  audit_log *log = (audit_log *)calloc(1, sizeof *log);
  char id[XG2G_SESSION_ID_SIZE];

  sim.tune_delay_ms = 100;
  sim.ready_delay_ms = 200;
  sim.stop_delay_ms = 50;
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, &sim), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_audit_callback(cfg, collect_audit, log, destroy_audit), XG2G_OK);
  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);
  /* The engine copied the config: destroying it changes nothing. */
  xg2g_config_destroy(cfg);
  CHECK(log->destroyed == 0);

  CHECK_STATUS(start_service(&res, e, "1:0:19:2B66"), XG2G_OK);
  CHECK(strlen(res.session_id) > 0 && res.replay == 0);
  CHECK(res.state == XG2G_STATE_STARTING);
  CHECK(strlen(res.correlation_id) > 0 && res.busy_session_id[0] == '\0');
  strcpy(id, res.session_id);
  CHECK(context_is(store, id, "tuner_slot", "0"));
  CHECK(audit_lines_with(log, "session_start", id) == 1);

  /* The host is told on the next poll; ready follows tune + ready delay. */
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 299), XG2G_OK);
  CHECK(state_of(store, id) == XG2G_STATE_STARTING);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 1), XG2G_OK);
  CHECK(state_of(store, id) == XG2G_STATE_READY);

  /* One slot, two services: the second gets the busy answer without a
   * session to name; the same service again names the active session. */
  CHECK_STATUS(start_service(&other, e, "1:0:19:OTHER"), XG2G_EBUSY);
  CHECK_ERROR_MENTIONS("tuner");
  CHECK(other.busy_session_id[0] == '\0' && other.session_id[0] == '\0');
  CHECK_STATUS(start_service(&other, e, "1:0:19:2B66"), XG2G_EBUSY);
  CHECK(strcmp(other.busy_session_id, id) == 0);
  CHECK(other.session_id[0] == '\0');
  CHECK(state_of(store, id) == XG2G_STATE_READY);

  /* Stop: STOPPING at once, STOPPED stop_delay after the host heard of it. */
  CHECK_STATUS(xg2g_engine_stop(&stop, e, id), XG2G_OK);
  CHECK(strcmp(stop.session_id, id) == 0 && stop.state == XG2G_STATE_STOPPING);
  CHECK(audit_lines_with(log, "session_stop", id) == 1);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 49), XG2G_OK);
  CHECK(state_of(store, id) == XG2G_STATE_STOPPING);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 1), XG2G_OK);
  CHECK(state_of(store, id) == XG2G_STATE_STOPPED);
  CHECK(reason_of(store, id) == XG2G_R_CLIENT_STOP);

  /* A second stop is harmless and answers the current state. */
  CHECK_STATUS(xg2g_engine_stop(&stop, e, id), XG2G_OK);
  CHECK(stop.state == XG2G_STATE_STOPPED);

  /* The slot is free again. */
  CHECK_STATUS(start_service(&other, e, "1:0:19:OTHER"), XG2G_OK);
  CHECK(context_is(store, other.session_id, "tuner_slot", "0"));

  CHECK_STATUS(xg2g_engine_get_stats(&stats, e), XG2G_OK);
  CHECK(stats.start_intents == 4);
  CHECK(stats.stop_intents == 2);
  CHECK(stats.busy == 2);
  CHECK(stats.replays == 0);
  CHECK(stats.transitions >= 4);
  CHECK(stats.active_sessions == 1);

  xg2g_engine_destroy(e);
  /* Destroying the engine ended what it drove and let go of the callback. */
  CHECK(state_of(store, other.session_id) == XG2G_STATE_CANCELLED);
  CHECK(log->destroyed == 1);
  xg2g_store_close(store);
  free(log);
}

static void test_idempotency(void) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = manual_config("0-3");
  xg2g_engine *e = NULL;
  xg2g_start_result first, again;
  xg2g_engine_stats stats = XG2G_ENGINE_STATS_INIT;
  xg2g_start_request req = request_for("1:0:1:IDEM");
  const char *params[] = {"audio", "de", "bitrate", "4000"};
  const char *reordered[] = {"bitrate", "4000", "audio", "de"};
  const char *changed[] = {"bitrate", "8000", "audio", "de"};

  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, NULL), XG2G_OK);
  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);

  req.principal = "alice";
  req.idempotency_key = "key-1";
  req.correlation_id = "corr-1";
  req.params = params;
  req.param_count = 2;
  CHECK_STATUS(start(&first, e, &req), XG2G_OK);
  CHECK(first.replay == 0);
  CHECK(strcmp(first.correlation_id, "corr-1") == 0);

  /* Same key, same request (params in another order, another correlation
   * id): the same session, marked as a replay. */
  req.params = reordered;
  req.correlation_id = "corr-2";
  CHECK_STATUS(start(&again, e, &req), XG2G_OK);
  CHECK(again.replay == 1);
  CHECK(strcmp(again.session_id, first.session_id) == 0);
  CHECK(strcmp(again.correlation_id, "corr-1") == 0);

  /* Same key, another request: ECONFLICT, nothing new. */
  req.params = changed;
  CHECK_STATUS(start(&again, e, &req), XG2G_ECONFLICT);
  CHECK_ERROR_MENTIONS("key-1");
  CHECK(again.session_id[0] == '\0');
  req.params = params;
  req.profile = "hd";
  CHECK_STATUS(start(&again, e, &req), XG2G_ECONFLICT);

  /* The key is scoped to the principal: bob's key-1 is another key (and the
   * service is busy with alice's session). */
  req.profile = NULL;
  req.principal = "bob";
  CHECK_STATUS(start(&again, e, &req), XG2G_EBUSY);
  CHECK(strcmp(again.busy_session_id, first.session_id) == 0);

  CHECK_STATUS(xg2g_engine_get_stats(&stats, e), XG2G_OK);
  CHECK(stats.replays == 1);
  CHECK(stats.busy == 1);

  xg2g_engine_destroy(e);
  xg2g_config_destroy(cfg);
  xg2g_store_close(store);
}

static void test_simulated_failures(void) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = manual_config("0-3");
  xg2g_engine *e = NULL;
  xg2g_simulated_pipeline_options sim = XG2G_SIMULATED_PIPELINE_OPTIONS_INIT;
  xg2g_start_result res;

  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);

  /* Tune fails. */
  sim.fail_tune = 1;
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, &sim), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);
  CHECK_STATUS(start_service(&res, e, "1:0:1:TUNEFAIL"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_FAILED);
  CHECK(reason_of(store, res.session_id) == XG2G_R_TUNE_FAILED);
  CHECK(detail_mentions(store, res.session_id, "fail_tune"));
  xg2g_engine_destroy(e);

  /* Start fails. */
  sim.fail_tune = 0;
  sim.fail_start = 1;
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, &sim), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);
  CHECK_STATUS(start_service(&res, e, "1:0:1:STARTFAIL"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_FAILED);
  CHECK(reason_of(store, res.session_id) == XG2G_R_FFMPEG_START_FAILED);
  xg2g_engine_destroy(e);

  /* The process ends on its own some time after ready. */
  sim.fail_start = 0;
  sim.fail_after_ready_ms = 1000;
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, &sim), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);
  CHECK_STATUS(start_service(&res, e, "1:0:1:ENDS"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 0), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_READY);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 999), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_READY);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 1), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_FAILED);
  CHECK(reason_of(store, res.session_id) == XG2G_R_PROCESS_ENDED);
  xg2g_engine_destroy(e);

  /* No pipeline: the session stays STARTING until its deadline. */
  CHECK_STATUS(xg2g_config_set_pipeline(cfg, NULL, NULL, NULL), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_start_deadline_ms(cfg, 5000), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);
  CHECK_STATUS(start_service(&res, e, "1:0:1:NOPIPE"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 4000), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STARTING);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 2000), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_FAILED);
  CHECK(reason_of(store, res.session_id) == XG2G_R_TUNE_TIMEOUT);
  xg2g_engine_destroy(e);

  xg2g_config_destroy(cfg);
  xg2g_store_close(store);
}

static void test_deadlines_and_retention(void) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = manual_config("0");
  xg2g_engine *e = NULL;
  xg2g_start_result res;
  xg2g_session *gone = (xg2g_session *)1;
  xg2g_engine_stats stats = XG2G_ENGINE_STATS_INIT;

  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, NULL), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_idle_timeout_ms(cfg, 5000), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_retention_ms(cfg, 60000), XG2G_OK);
  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);

  CHECK_STATUS(start_service(&res, e, "1:0:1:IDLE"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 0), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_READY);

  /* Touch pushes the idle deadline: without it 8 s would be past 5 s. */
  CHECK_STATUS(xg2g_engine_advance_clock(e, 4000), XG2G_OK);
  CHECK_STATUS(xg2g_engine_touch(e, res.session_id), XG2G_OK);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 4000), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_READY);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 2000), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STOPPING);
  CHECK(reason_of(store, res.session_id) == XG2G_R_IDLE_TIMEOUT);
  CHECK_STATUS(xg2g_engine_touch(e, res.session_id), XG2G_ESTATE);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 0), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STOPPED);
  CHECK(reason_of(store, res.session_id) == XG2G_R_IDLE_TIMEOUT);

  /* Terminal sessions are deleted after the retention period. */
  CHECK_STATUS(xg2g_engine_advance_clock(e, 59000), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STOPPED);
  CHECK_STATUS(xg2g_engine_advance_clock(e, 2000), XG2G_OK);
  CHECK_STATUS(xg2g_store_get_session(&gone, store, res.session_id), XG2G_ENOTFOUND);
  CHECK(gone == NULL);

  CHECK_STATUS(xg2g_engine_get_stats(&stats, e), XG2G_OK);
  CHECK(stats.deadline_expiries == 1);
  CHECK(stats.retention_deletes == 1);
  CHECK(stats.active_sessions == 0);

  xg2g_engine_destroy(e);
  xg2g_config_destroy(cfg);
  xg2g_store_close(store);
}

/* ---------------------------------------------------------------------- */
/* Host callbacks of our own                                              */

typedef struct host {
  xg2g_engine *engine; /* set once the engine exists */
  int tunes, starts, stops, destroyed;
  int report_inside;  /* report ready/stopped from inside the callbacks */
  int fail_tune;      /* tune answers XG2G_EIO */
  xg2g_status poll_inside; /* what xg2g_engine_poll answered inside a callback */
  char last_id[XG2G_SESSION_ID_SIZE];
  char last_service[64];
  char last_profile[32];
  int last_slot;
  uint64_t last_token;
} host;

static void remember(host *h, const xg2g_pipeline_command *cmd) {
  strncpy(h->last_id, cmd->session_id, sizeof h->last_id - 1);
  strncpy(h->last_service, cmd->service_ref, sizeof h->last_service - 1);
  strncpy(h->last_profile, cmd->profile, sizeof h->last_profile - 1);
  h->last_slot = cmd->slot;
  h->last_token = cmd->fencing_token;
}

static xg2g_status host_tune(const xg2g_pipeline_command *cmd, void *user_data) {
  host *h = (host *)user_data;
  ++h->tunes;
  remember(h, cmd);
  if (h->tunes == 1) h->poll_inside = xg2g_engine_poll(h->engine);
  return h->fail_tune ? XG2G_EIO : XG2G_OK;
}

static xg2g_status host_start(const xg2g_pipeline_command *cmd, void *user_data) {
  host *h = (host *)user_data;
  ++h->starts;
  if (h->report_inside) return xg2g_engine_report_ready(h->engine, cmd->session_id,
                                                        cmd->fencing_token);
  return XG2G_OK;
}

static void host_stop(const xg2g_pipeline_command *cmd, void *user_data) {
  host *h = (host *)user_data;
  ++h->stops;
  if (h->report_inside) {
    (void)xg2g_engine_report_stopped(h->engine, cmd->session_id, cmd->fencing_token);
  }
}

static void host_destroy(void *user_data) { ++((host *)user_data)->destroyed; }

static void test_host_callbacks(void) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = manual_config("2,5");
  xg2g_engine *e = NULL;
  xg2g_pipeline_callbacks cbs;
  xg2g_start_request req = request_for("1:0:1:HOST");
  xg2g_start_result res, second;
  xg2g_stop_result stop = XG2G_STOP_RESULT_INIT;
  host h;
  char id[XG2G_SESSION_ID_SIZE];
  char token[32];

  memset(&h, 0, sizeof h);
  h.poll_inside = XG2G_OK;
  CHECK_STATUS(xg2g_pipeline_callbacks_init(&cbs, XG2G_PIPELINE_CALLBACKS_VERSION), XG2G_OK);
  cbs.tune = host_tune;
  cbs.start = host_start;
  cbs.stop = host_stop;
  CHECK_STATUS(xg2g_config_set_pipeline(cfg, &cbs, &h, host_destroy), XG2G_OK);
  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);
  h.engine = e;
  /* The engine holds the callbacks now: the config may go. */
  xg2g_config_destroy(cfg);
  CHECK(h.destroyed == 0);

  /* The host is called on poll, with what the session holds. */
  req.profile = "hd";
  CHECK_STATUS(start(&res, e, &req), XG2G_OK);
  strcpy(id, res.session_id);
  CHECK(h.tunes == 0);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK(h.tunes == 1 && h.starts == 1 && h.stops == 0);
  CHECK(strcmp(h.last_id, id) == 0);
  CHECK(strcmp(h.last_service, "1:0:1:HOST") == 0);
  CHECK(strcmp(h.last_profile, "hd") == 0);
  CHECK(h.last_slot == 2);
  CHECK(h.last_token > 0);
  sprintf(token, "%llu", (unsigned long long)h.last_token);
  CHECK(context_is(store, id, "fencing_token", token));
  /* Polling from inside a callback is refused, not a deadlock, and the
   * refusal's message does not leak into the poll's own result. */
  CHECK(h.poll_inside == XG2G_ESTATE);
  CHECK(state_of(store, id) == XG2G_STATE_STARTING);

  /* Reports: a stale token is refused, the right one moves the session. */
  CHECK_STATUS(xg2g_engine_report_ready(e, id, h.last_token + 1), XG2G_ECONFLICT);
  CHECK_STATUS(xg2g_engine_report_ready(e, id, h.last_token), XG2G_OK);
  CHECK(state_of(store, id) == XG2G_STATE_READY);
  CHECK_STATUS(xg2g_engine_touch(e, id), XG2G_OK);

  /* A second service takes the next slot; its host reports from inside the
   * callbacks. */
  h.report_inside = 1;
  CHECK_STATUS(start_service(&second, e, "1:0:1:HOST2"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK(h.tunes == 2 && h.last_slot == 5);
  CHECK(state_of(store, second.session_id) == XG2G_STATE_READY);

  /* Stop: the host's stop runs on the next poll and reports back. */
  CHECK_STATUS(xg2g_engine_stop(&stop, e, second.session_id), XG2G_OK);
  CHECK(stop.state == XG2G_STATE_STOPPING);
  CHECK(h.stops == 0);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK(h.stops == 1);
  CHECK(state_of(store, second.session_id) == XG2G_STATE_STOPPED);

  /* The host failing: the reason it gives is kept, a later report is stale. */
  CHECK_STATUS(xg2g_engine_report_failed(e, id, 0, XG2G_R_PROCESS_ENDED, "x"), XG2G_ECONFLICT);
  {
    /* id's token: fetched from the store, the host's last one was HOST2's. */
    xg2g_session *s = NULL;
    unsigned long long id_token = 0;
    CHECK_STATUS(xg2g_store_get_session(&s, store, id), XG2G_OK);
    if (s != NULL && xg2g_session_get_context(s, "fencing_token") != NULL) {
      id_token = strtoull(xg2g_session_get_context(s, "fencing_token"), NULL, 10);
    }
    xg2g_session_destroy(s);
    CHECK_STATUS(xg2g_engine_report_failed(e, id, id_token, XG2G_R_PACKAGER_FAILED,
                                           "packager crashed"),
                 XG2G_OK);
    CHECK(state_of(store, id) == XG2G_STATE_FAILED);
    CHECK(reason_of(store, id) == XG2G_R_PACKAGER_FAILED);
    CHECK(detail_mentions(store, id, "packager crashed"));
    /* The session is over: this engine no longer drives it. */
    CHECK_STATUS(xg2g_engine_report_stopped(e, id, id_token), XG2G_ENOTFOUND);
  }

  /* A failing tune fails the session with R_TUNE_FAILED, naming the status. */
  h.fail_tune = 1;
  CHECK_STATUS(start_service(&res, e, "1:0:1:HOSTFAIL"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK(strcmp(xg2g_last_error(), "") == 0);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_FAILED);
  CHECK(reason_of(store, res.session_id) == XG2G_R_TUNE_FAILED);
  CHECK(detail_mentions(store, res.session_id, "XG2G_EIO"));
  CHECK(h.starts == 2); /* start is not called after a failed tune */
  h.fail_tune = 0;

  /* A ready report after a stop was recorded changes nothing; the host's
   * stopped report ends the session. */
  h.report_inside = 0;
  CHECK_STATUS(start_service(&res, e, "1:0:1:LATE"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK_STATUS(xg2g_engine_stop(&stop, e, res.session_id), XG2G_OK);
  CHECK(stop.state == XG2G_STATE_STOPPING);
  CHECK_STATUS(xg2g_engine_report_ready(e, res.session_id, h.last_token), XG2G_ESTATE);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STOPPING);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK(h.stops == 2);
  CHECK_STATUS(xg2g_engine_report_stopped(e, res.session_id, h.last_token), XG2G_OK);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STOPPED);
  CHECK(reason_of(store, res.session_id) == XG2G_R_CLIENT_STOP);

  /* Destroying the engine stops what it still drives (on this thread), then
   * releases the callbacks exactly once. */
  CHECK_STATUS(start_service(&res, e, "1:0:1:LAST"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);
  CHECK_STATUS(xg2g_engine_report_ready(e, res.session_id, h.last_token), XG2G_OK);
  CHECK(h.stops == 2);
  xg2g_engine_destroy(e);
  CHECK(h.stops == 3);
  CHECK(state_of(store, res.session_id) == XG2G_STATE_STOPPED);
  CHECK(h.destroyed == 1);
  xg2g_store_close(store);
}

static void test_audit_file(void) {
  const char *path = "engine_test_audit.jsonl";
  xg2g_store *store = NULL;
  xg2g_config *cfg = manual_config("0");
  xg2g_engine *e = NULL;
  xg2g_start_result res;
  FILE *f;
  char line[1024];
  int starts = 0, stops = 0;

  remove(path);
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, NULL), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_audit_path(cfg, path), XG2G_OK);
  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);
  CHECK_STATUS(start_service(&res, e, "1:0:1:AUDIT"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_stop(NULL, e, res.session_id), XG2G_OK);
  xg2g_engine_destroy(e);

  f = fopen(path, "r");
  CHECK(f != NULL);
  if (f != NULL) {
    while (fgets(line, sizeof line, f) != NULL) {
      CHECK(line[0] == '{' && strchr(line, '\n') != NULL);
      if (strstr(line, "\"session_start\"") != NULL && strstr(line, res.session_id) != NULL) {
        ++starts;
      }
      if (strstr(line, "\"session_stop\"") != NULL && strstr(line, res.session_id) != NULL) {
        ++stops;
      }
    }
    fclose(f);
  }
  CHECK(starts == 1 && stops == 1);
  remove(path);
  xg2g_config_destroy(cfg);
  xg2g_store_close(store);
}

/* ---------------------------------------------------------------------- */
/* The engine's own thread                                                */

static double monotonic_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits (polling with backoff, at most 10 s) until the session is in `want`. */
static int wait_for_state(xg2g_store *store, const char *id, xg2g_session_state want) {
  const double deadline = monotonic_s() + 10.0;
  long delay_ns = 1000000L;
  while (state_of(store, id) != want) {
    struct timespec pause;
    if (monotonic_s() > deadline) return 0;
    pause.tv_sec = 0;
    pause.tv_nsec = delay_ns;
    nanosleep(&pause, NULL);
    if (delay_ns < 50000000L) delay_ns *= 2;
  }
  return 1;
}

static void test_background_engine(void) {
  xg2g_store *store = NULL;
  xg2g_config *cfg = NULL;
  xg2g_engine *e = NULL;
  xg2g_start_result res;
  xg2g_stop_result stop = XG2G_STOP_RESULT_INIT;

  CHECK_STATUS(xg2g_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_tuner_slots(cfg, "0"), XG2G_OK);
  CHECK_STATUS(xg2g_config_use_simulated_pipeline(cfg, NULL), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_audit_path(cfg, "/dev/null"), XG2G_OK);
  CHECK_STATUS(xg2g_store_open(&store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&e, cfg, store), XG2G_OK);

  /* No manual clock: advancing it is an error, polling a harmless no-op. */
  CHECK_STATUS(xg2g_engine_advance_clock(e, 10), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("xg2g_config_set_manual_clock");
  CHECK_STATUS(xg2g_engine_poll(e), XG2G_OK);

  CHECK_STATUS(start_service(&res, e, "1:0:1:THREAD"), XG2G_OK);
  CHECK(wait_for_state(store, res.session_id, XG2G_STATE_READY));
  CHECK_STATUS(xg2g_engine_stop(&stop, e, res.session_id), XG2G_OK);
  CHECK(wait_for_state(store, res.session_id, XG2G_STATE_STOPPED));

  xg2g_engine_destroy(e);
  xg2g_config_destroy(cfg);
  xg2g_store_close(store);
}

int main(void) {
  test_struct_inits();
  test_config_setters();
  test_engine_create_errors();
  test_engine_arguments();
  test_simulated_cycle();
  test_idempotency();
  test_simulated_failures();
  test_deadlines_and_retention();
  test_host_callbacks();
  test_audit_file();
  test_background_engine();
  printf("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

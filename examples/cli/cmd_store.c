/*
 * xg2g sessions list|show|stop, leases list, store check: reading and
 * changing a store through the public C API.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xg2g/xg2g.h>

#include "cli.h"

/* A UTC timestamp (RFC 3339) of unix seconds, "-" for 0. */
static const char *format_time(int64_t unix_sec, char *buf, size_t size) {
  time_t t = (time_t)unix_sec;
  struct tm tm;
  if (unix_sec <= 0 || gmtime_r(&t, &tm) == NULL) return "-";
  strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

static int print_session_json(const xg2g_session *s) {
  char *json = NULL;
  xg2g_status rc = xg2g_session_to_json(&json, s);
  if (rc != XG2G_OK) return cli_fail("encode session", rc);
  fputs(json, stdout);
  xg2g_free(json);
  return CLI_OK;
}

int cli_cmd_sessions_list(const cli_options *opts, int argc, char **argv) {
  size_t offset = 0, limit = 100, total = 0;
  xg2g_store *store = NULL;
  xg2g_session_list *list = NULL;
  xg2g_status rc;
  int result;

  for (int i = 0; i < argc; ++i) {
    size_t *target = NULL;
    if (strcmp(argv[i], "--offset") == 0) target = &offset;
    if (strcmp(argv[i], "--limit") == 0) target = &limit;
    if (target == NULL) return cli_usage_error("sessions list", "unexpected argument '%s'", argv[i]);
    if (i + 1 >= argc || !cli_parse_size(argv[i + 1], target)) {
      return cli_usage_error("sessions list", "%s needs a non-negative integer", argv[i]);
    }
    ++i;
  }
  if (limit < 1 || limit > 1000) {
    return cli_usage_error("sessions list", "%s must be between 1 and 1000", "--limit");
  }
  if ((result = cli_open_store(opts, &store)) != CLI_OK) return result;
  rc = xg2g_store_list_sessions(&list, &total, store, offset, limit);
  if (rc != XG2G_OK) {
    result = cli_fail("list sessions", rc);
  } else {
    size_t count = xg2g_session_list_count(list);
    if (opts->json) {
      printf("{\"sessions\":[");
      for (size_t i = 0; i < count && result == CLI_OK; ++i) {
        if (i > 0) putchar(',');
        result = print_session_json(xg2g_session_list_at(list, i));
      }
      printf("],\"pagination\":{\"offset\":%zu,\"limit\":%zu,\"total\":%zu,\"count\":%zu}}\n",
             offset, limit, total, count);
    } else {
      char when[32];
      printf("%-34s %-10s %-20s %-10s %s\n", "ID", "STATE", "UPDATED", "PROFILE", "SERVICE");
      for (size_t i = 0; i < count; ++i) {
        const xg2g_session *s = xg2g_session_list_at(list, i);
        printf("%-34s %-10s %-20s %-10s %s\n", xg2g_session_get_id(s),
               xg2g_session_state_str(xg2g_session_get_state(s)),
               format_time(xg2g_session_get_updated_at_unix(s), when, sizeof when),
               xg2g_session_get_profile(s), xg2g_session_get_service_ref(s));
      }
      printf("%zu of %zu sessions (from %zu)\n", count, total, offset);
    }
  }
  xg2g_session_list_destroy(list);
  xg2g_store_close(store);
  return result;
}

int cli_cmd_sessions_show(const cli_options *opts, int argc, char **argv) {
  xg2g_store *store = NULL;
  xg2g_session *s = NULL;
  xg2g_status rc;
  int result;

  if (argc != 1) {
    return cli_usage_error("sessions show", "%s", argc == 0 ? "needs a session ID" : "takes one session ID");
  }
  if ((result = cli_open_store(opts, &store)) != CLI_OK) return result;
  if ((rc = xg2g_store_get_session(&s, store, argv[0])) != XG2G_OK) {
    result = cli_fail("show session", rc);
  } else if (opts->json) {
    result = print_session_json(s);
    putchar('\n');
  } else {
    char created[32], updated[32], expires[32];
    const char *detail = xg2g_session_get_reason_detail(s);
    printf("session      %s\n", xg2g_session_get_id(s));
    printf("state        %s\n", xg2g_session_state_str(xg2g_session_get_state(s)));
    printf("reason       %s%s%s\n", xg2g_reason_str(xg2g_session_get_reason(s)),
           detail && *detail ? ": " : "", detail ? detail : "");
    printf("service      %s\n", xg2g_session_get_service_ref(s));
    printf("profile      %s\n", xg2g_session_get_profile(s));
    printf("correlation  %s\n", xg2g_session_get_correlation_id(s));
    printf("created      %s\n", format_time(xg2g_session_get_created_at_unix(s), created, sizeof created));
    printf("updated      %s\n", format_time(xg2g_session_get_updated_at_unix(s), updated, sizeof updated));
    printf("expires      %s\n", format_time(xg2g_session_get_expires_at_unix(s), expires, sizeof expires));
  }
  xg2g_session_destroy(s);
  xg2g_store_close(store);
  return result;
}

/* An engine of this process on the store, to send intents through. Its owner
 * id is unique, so start-up recovery leaves other hosts' sessions alone. */
int cli_create_engine(const cli_options *opts, xg2g_store *store, const char *slots,
                      const xg2g_pipeline_callbacks *pipeline, void *user_data,
                      xg2g_engine **out) {
  xg2g_config *cfg = NULL;
  xg2g_status rc;
  char owner[96];
  (void)opts;
  *out = NULL;
  snprintf(owner, sizeof owner, "xg2g-cli-%ld-%lld", (long)getpid(), (long long)time(NULL));
  if ((rc = xg2g_config_create(&cfg)) != XG2G_OK) return cli_fail("engine config", rc);
  rc = xg2g_config_set_owner_id(cfg, owner);
  if (rc == XG2G_OK && slots != NULL) rc = xg2g_config_set_tuner_slots(cfg, slots);
  if (rc == XG2G_OK && pipeline != NULL) {
    rc = xg2g_config_set_pipeline(cfg, pipeline, user_data, NULL);
  }
  /* Audit events of a one-shot command would only clutter stderr. */
  if (rc == XG2G_OK) rc = xg2g_config_set_audit_path(cfg, "/dev/null");
  if (rc != XG2G_OK) {
    xg2g_config_destroy(cfg);
    return cli_fail("engine config", rc);
  }
  rc = xg2g_engine_create(out, cfg, store);
  xg2g_config_destroy(cfg);
  if (rc != XG2G_OK) return cli_fail("create engine", rc);
  return CLI_OK;
}

int cli_cmd_sessions_stop(const cli_options *opts, int argc, char **argv) {
  xg2g_store *store = NULL;
  xg2g_engine *engine = NULL;
  xg2g_stop_result stopped = XG2G_STOP_RESULT_INIT;
  xg2g_status rc;
  int result;

  if (argc != 1) {
    return cli_usage_error("sessions stop", "%s", argc == 0 ? "needs a session ID" : "takes one session ID");
  }
  if ((result = cli_open_store(opts, &store)) != CLI_OK) return result;
  if ((result = cli_create_engine(opts, store, NULL, NULL, NULL, &engine)) == CLI_OK) {
    if ((rc = xg2g_engine_stop(&stopped, engine, argv[0])) != XG2G_OK) {
      result = cli_fail("stop session", rc);
    } else if (opts->json) {
      printf("{\"sessionId\":");
      cli_json_string(stdout, stopped.session_id);
      printf(",\"state\":\"%s\"}\n", xg2g_session_state_str(stopped.state));
    } else {
      printf("session %s: %s\n", stopped.session_id, xg2g_session_state_str(stopped.state));
    }
  }
  xg2g_engine_destroy(engine);
  xg2g_store_close(store);
  return result;
}

int cli_cmd_leases_list(const cli_options *opts, int argc, char **argv) {
  xg2g_store *store = NULL;
  xg2g_lease_list *leases = NULL;
  xg2g_status rc;
  int result;

  if (argc > 0) return cli_usage_error("leases list", "unexpected argument '%s'", argv[0]);
  if ((result = cli_open_store(opts, &store)) != CLI_OK) return result;
  if ((rc = xg2g_store_list_leases(&leases, store)) != XG2G_OK) {
    result = cli_fail("list leases", rc);
  } else {
    size_t count = xg2g_lease_list_count(leases);
    if (opts->json) putchar('[');
    else printf("%-40s %-34s %8s %10s\n", "KEY", "OWNER", "TOKEN", "EXPIRES_IN");
    for (size_t i = 0; i < count; ++i) {
      if (opts->json) {
        if (i > 0) putchar(',');
        printf("{\"key\":");
        cli_json_string(stdout, xg2g_lease_list_key(leases, i));
        printf(",\"owner\":");
        cli_json_string(stdout, xg2g_lease_list_owner(leases, i));
        printf(",\"fencing_token\":%llu,\"expires_in_ms\":%lld}",
               (unsigned long long)xg2g_lease_list_fencing_token(leases, i),
               (long long)xg2g_lease_list_expires_in_ms(leases, i));
      } else {
        printf("%-40s %-34s %8llu %8.1f s\n", xg2g_lease_list_key(leases, i),
               xg2g_lease_list_owner(leases, i),
               (unsigned long long)xg2g_lease_list_fencing_token(leases, i),
               (double)xg2g_lease_list_expires_in_ms(leases, i) / 1000.0);
      }
    }
    if (opts->json) printf("]\n");
    else printf("%zu lease%s held\n", count, count == 1 ? "" : "s");
  }
  xg2g_lease_list_destroy(leases);
  xg2g_store_close(store);
  return result;
}

int cli_cmd_store_check(const cli_options *opts, int argc, char **argv) {
  xg2g_store *store = NULL;
  xg2g_store_report *report = NULL;
  xg2g_status rc;
  int result;

  if (argc > 0) return cli_usage_error("store check", "unexpected argument '%s'", argv[0]);
  if ((result = cli_open_store(opts, &store)) != CLI_OK) return result;
  if ((rc = xg2g_store_check(&report, store)) != XG2G_OK) {
    result = cli_fail("check store", rc);
  } else {
    size_t problems = xg2g_store_report_problem_count(report);
    int64_t keys = xg2g_store_report_idempotency_keys(report);
    if (opts->json) {
      printf("{\"consistent\":%s,\"sessions\":%zu,\"leases\":%zu,\"idempotency_keys\":",
             problems == 0 ? "true" : "false", xg2g_store_report_sessions(report),
             xg2g_store_report_leases(report));
      if (keys < 0) printf("null");
      else printf("%lld", (long long)keys);
      printf(",\"problems\":[");
      for (size_t i = 0; i < problems; ++i) {
        if (i > 0) putchar(',');
        cli_json_string(stdout, xg2g_store_report_problem(report, i));
      }
      printf("]}\n");
    } else {
      printf("store %s: %zu sessions, %zu leases", opts->store, xg2g_store_report_sessions(report),
             xg2g_store_report_leases(report));
      if (keys >= 0) printf(", %lld idempotency keys", (long long)keys);
      printf("\n");
      for (size_t i = 0; i < problems; ++i) {
        printf("problem: %s\n", xg2g_store_report_problem(report, i));
      }
      printf("%s\n", problems == 0 ? "consistent" : "NOT consistent");
    }
    result = problems == 0 ? CLI_OK : CLI_FINDINGS;
  }
  xg2g_store_report_destroy(report);
  xg2g_store_close(store);
  return result;
}

/*
 * Plain-C test of every entry point of libxg2g, including NULL arguments and
 * bad versions. Built as C99; links only the shared library.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xg2g/xg2g.h>

#include "check.h"

static void test_common(void) {
  int major = -1, minor = -1, patch = -1;
  char expected[32];
  xg2g_version(&major, &minor, &patch);
  CHECK(major == XG2G_VERSION_MAJOR && minor == XG2G_VERSION_MINOR && patch == XG2G_VERSION_PATCH);
  xg2g_version(NULL, NULL, NULL); /* NULL outputs are allowed */
  snprintf(expected, sizeof expected, "%d.%d.%d", major, minor, patch);
  CHECK(strcmp(xg2g_version_string(), expected) == 0);
  CHECK(strcmp(xg2g_version_string(), XG2G_VERSION_STRING) == 0);

  CHECK_STATUS(xg2g_check_version(XG2G_VERSION_MAJOR, XG2G_VERSION_MINOR), XG2G_OK);
  CHECK(strcmp(xg2g_last_error(), "") == 0);
  CHECK_STATUS(xg2g_check_version(XG2G_VERSION_MAJOR + 1, 0), XG2G_EVERSION);
  CHECK_ERROR_MENTIONS(XG2G_VERSION_STRING);
  CHECK_STATUS(xg2g_check_version(XG2G_VERSION_MAJOR, XG2G_VERSION_MINOR + 1), XG2G_EVERSION);
  /* A successful call resets the last error. */
  CHECK_STATUS(xg2g_check_version(XG2G_VERSION_MAJOR, 0), XG2G_OK);
  CHECK(strcmp(xg2g_last_error(), "") == 0);

  CHECK(strcmp(xg2g_status_str(XG2G_OK), "XG2G_OK") == 0);
  CHECK(strcmp(xg2g_status_str(XG2G_ENOTFOUND), "XG2G_ENOTFOUND") == 0);
  CHECK(strcmp(xg2g_status_str(XG2G_EINTERNAL), "XG2G_EINTERNAL") == 0);
  CHECK(strcmp(xg2g_status_str((xg2g_status)-1000), "XG2G_UNKNOWN") == 0);
  CHECK(strcmp(xg2g_status_str((xg2g_status)5), "XG2G_UNKNOWN") == 0);
  xg2g_free(NULL);
}

static void test_names(void) {
  CHECK(strcmp(xg2g_session_state_str(XG2G_STATE_READY), "READY") == 0);
  CHECK(strcmp(xg2g_session_state_str(XG2G_STATE_STOPPED), "STOPPED") == 0);
  CHECK(strcmp(xg2g_session_state_str((xg2g_session_state)99), "UNKNOWN") == 0);
  CHECK(strcmp(xg2g_reason_str(XG2G_R_LEASE_BUSY), "R_LEASE_BUSY") == 0);
  CHECK(strcmp(xg2g_reason_str(XG2G_R_UPSTREAM_CORRUPT), "R_UPSTREAM_CORRUPT") == 0);
  CHECK(strcmp(xg2g_reason_str((xg2g_reason)-3), "R_UNKNOWN") == 0);
  CHECK(xg2g_session_state_is_terminal(XG2G_STATE_FAILED) == 1);
  CHECK(xg2g_session_state_is_terminal(XG2G_STATE_CANCELLED) == 1);
  CHECK(xg2g_session_state_is_terminal(XG2G_STATE_READY) == 0);
  CHECK(xg2g_session_state_is_terminal((xg2g_session_state)42) == 0);
}

static void test_session(void) {
  xg2g_session *s = (xg2g_session *)1;
  xg2g_session *copy = NULL;
  xg2g_session *decoded = NULL;
  char *json = NULL;

  CHECK_STATUS(xg2g_session_create(NULL, NULL, "1:0:1", NULL, 0), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("out");
  CHECK_STATUS(xg2g_session_create(&s, NULL, NULL, NULL, 0), XG2G_EINVAL);
  CHECK(s == NULL); /* *out is NULL on failure */
  CHECK_ERROR_MENTIONS("service_ref");
  CHECK_STATUS(xg2g_session_create(&s, NULL, "", NULL, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_create(&s, "bad id!", "1:0:1", NULL, 0), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("session_id");
  CHECK_STATUS(xg2g_session_create(&s, NULL, "1:0:1", NULL, -5), XG2G_EINVAL);

  CHECK_STATUS(xg2g_session_create(&s, NULL, "1:0:19:2B66:3F3:1:C00000:0:0:0:", NULL,
                                   1700000000123LL), XG2G_OK);
  CHECK(s != NULL);
  CHECK(strlen(xg2g_session_get_id(s)) == 32);
  CHECK(strcmp(xg2g_session_get_service_ref(s), "1:0:19:2B66:3F3:1:C00000:0:0:0:") == 0);
  CHECK(strcmp(xg2g_session_get_profile(s), "default") == 0);
  CHECK(xg2g_session_get_state(s) == XG2G_STATE_NEW);
  CHECK(xg2g_session_get_reason(s) == XG2G_R_NONE);
  CHECK(strcmp(xg2g_session_get_reason_detail(s), "") == 0);
  CHECK(strcmp(xg2g_session_get_correlation_id(s), "") == 0);
  CHECK(xg2g_session_get_created_at_unix(s) == 1700000000);
  CHECK(xg2g_session_get_updated_at_unix(s) == 1700000000);
  CHECK(xg2g_session_get_expires_at_unix(s) == 0);
  CHECK(xg2g_session_get_context(s, "tuner_slot") == NULL);

  /* NULL handles give neutral values, never a crash. */
  CHECK(xg2g_session_get_id(NULL) == NULL);
  CHECK(xg2g_session_get_service_ref(NULL) == NULL);
  CHECK(xg2g_session_get_profile(NULL) == NULL);
  CHECK(xg2g_session_get_state(NULL) == XG2G_STATE_NEW);
  CHECK(xg2g_session_get_reason(NULL) == XG2G_R_NONE);
  CHECK(xg2g_session_get_reason_detail(NULL) == NULL);
  CHECK(xg2g_session_get_correlation_id(NULL) == NULL);
  CHECK(xg2g_session_get_created_at_unix(NULL) == 0);
  CHECK(xg2g_session_get_updated_at_unix(NULL) == 0);
  CHECK(xg2g_session_get_expires_at_unix(NULL) == 0);
  CHECK(xg2g_session_get_context(NULL, "k") == NULL);
  CHECK(xg2g_session_get_context(s, NULL) == NULL);

  CHECK_STATUS(xg2g_session_set_context(NULL, "k", "v"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_set_context(s, NULL, "v"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_set_context(s, "", "v"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_set_context(s, "tuner_slot", "0"), XG2G_OK);
  CHECK_STATUS(xg2g_session_set_context(s, "gone", "x"), XG2G_OK);
  CHECK_STATUS(xg2g_session_set_context(s, "gone", NULL), XG2G_OK);
  CHECK(strcmp(xg2g_session_get_context(s, "tuner_slot"), "0") == 0);
  CHECK(xg2g_session_get_context(s, "gone") == NULL);
  CHECK_STATUS(xg2g_session_set_correlation_id(NULL, "c"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_set_correlation_id(s, "corr-1"), XG2G_OK);
  CHECK(strcmp(xg2g_session_get_correlation_id(s), "corr-1") == 0);
  CHECK_STATUS(xg2g_session_set_expires_at_unix(NULL, 1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_set_expires_at_unix(s, -1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_set_expires_at_unix(s, 1700003600), XG2G_OK);
  CHECK(xg2g_session_get_expires_at_unix(s) == 1700003600);

  /* Transitions go through the table; illegal ones change nothing. */
  CHECK_STATUS(xg2g_session_apply(NULL, XG2G_EVENT_STOP, XG2G_R_NONE, NULL, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_apply(s, (xg2g_session_event)77, XG2G_R_NONE, NULL, 0), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("event");
  CHECK_STATUS(xg2g_session_apply(s, XG2G_EVENT_STOP, (xg2g_reason)99, NULL, 0), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("reason");
  CHECK_STATUS(xg2g_session_apply(s, XG2G_EVENT_HOST_READY, XG2G_R_NONE, NULL, 0), XG2G_ESTATE);
  CHECK(xg2g_session_get_state(s) == XG2G_STATE_NEW);
  CHECK_STATUS(xg2g_session_apply(s, XG2G_EVENT_LEASES_ACQUIRED, XG2G_R_NONE, NULL,
                                  1700000001000LL), XG2G_OK);
  CHECK(xg2g_session_get_state(s) == XG2G_STATE_STARTING);
  CHECK(xg2g_session_get_updated_at_unix(s) == 1700000001);
  CHECK_STATUS(xg2g_session_apply(s, XG2G_EVENT_HOST_READY, XG2G_R_NONE, NULL, 0), XG2G_OK);
  CHECK(xg2g_session_get_state(s) == XG2G_STATE_READY);

  CHECK_STATUS(xg2g_session_clone(NULL, s), XG2G_EINVAL);
  copy = (xg2g_session *)1;
  CHECK_STATUS(xg2g_session_clone(&copy, NULL), XG2G_EINVAL);
  CHECK(copy == NULL);
  CHECK_STATUS(xg2g_session_clone(&copy, s), XG2G_OK);
  CHECK(strcmp(xg2g_session_get_id(copy), xg2g_session_get_id(s)) == 0);
  CHECK_STATUS(xg2g_session_apply(copy, XG2G_EVENT_HOST_FAILED, XG2G_R_PROCESS_ENDED, "exit 1", 0),
               XG2G_OK);
  CHECK(xg2g_session_get_state(copy) == XG2G_STATE_FAILED);
  CHECK(xg2g_session_get_reason(copy) == XG2G_R_PROCESS_ENDED);
  CHECK(strcmp(xg2g_session_get_reason_detail(copy), "exit 1") == 0);
  CHECK(xg2g_session_get_state(s) == XG2G_STATE_READY); /* the clone is independent */

  CHECK_STATUS(xg2g_session_to_json(NULL, s), XG2G_EINVAL);
  json = (char *)1;
  CHECK_STATUS(xg2g_session_to_json(&json, NULL), XG2G_EINVAL);
  CHECK(json == NULL);
  CHECK_STATUS(xg2g_session_to_json(&json, s), XG2G_OK);
  CHECK(json != NULL && strstr(json, "\"state\":\"READY\"") != NULL);
  CHECK_STATUS(xg2g_session_from_json(NULL, json, strlen(json)), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_from_json(&decoded, NULL, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_session_from_json(&decoded, json, strlen(json)), XG2G_OK);
  CHECK(decoded != NULL && strcmp(xg2g_session_get_id(decoded), xg2g_session_get_id(s)) == 0);
  CHECK(decoded != NULL && strcmp(xg2g_session_get_context(decoded, "tuner_slot"), "0") == 0);
  xg2g_session_destroy(decoded);
  decoded = (xg2g_session *)1;
  CHECK_STATUS(xg2g_session_from_json(&decoded, "{\"sessionId\":", 13), XG2G_ECORRUPT);
  CHECK(decoded == NULL);
  CHECK(strlen(xg2g_last_error()) > 0);
  xg2g_free(json);

  xg2g_session_destroy(copy);
  xg2g_session_destroy(s);
  xg2g_session_destroy(NULL);
}

struct scan_state {
  int seen;
  int stop_after;
};

static int count_sessions(const xg2g_session *s, void *user_data) {
  struct scan_state *st = (struct scan_state *)user_data;
  if (xg2g_session_get_id(s) != NULL) st->seen++;
  return st->stop_after > 0 && st->seen >= st->stop_after;
}

static xg2g_status mark_ready(xg2g_session *s, void *user_data) {
  (void)user_data;
  return xg2g_session_apply(s, XG2G_EVENT_LEASES_ACQUIRED, XG2G_R_NONE, NULL, 0);
}

static xg2g_status refuse(xg2g_session *s, void *user_data) {
  (void)user_data;
  (void)xg2g_session_set_context(s, "should_not", "persist");
  return XG2G_ESTATE;
}

static void test_store(void) {
  xg2g_store *st = (xg2g_store *)1;
  xg2g_session *s = NULL, *got = NULL, *other = NULL;
  xg2g_session_list *list = NULL;
  size_t total = 99;
  char *existing = NULL;
  uint64_t t1 = 0, t2 = 0, t3 = 0;
  struct scan_state scan = {0, 0};
  char id[16];
  int i;

  CHECK_STATUS(xg2g_store_open(NULL, "memory:"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_open(&st, NULL), XG2G_EINVAL);
  CHECK(st == NULL);
  CHECK_STATUS(xg2g_store_open(&st, "nosuch://x"), XG2G_EUNSUPPORTED);
  CHECK_ERROR_MENTIONS("nosuch");
  CHECK_STATUS(xg2g_store_open(&st, ""), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_open(&st, "memory:"), XG2G_OK);

  CHECK_STATUS(xg2g_session_create(&s, "sess-a", "1:0:1:AA", "hd", 0), XG2G_OK);
  CHECK_STATUS(xg2g_store_put_session(NULL, s), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_put_session(st, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_put_session(st, s), XG2G_OK);

  CHECK_STATUS(xg2g_store_get_session(NULL, st, "sess-a"), XG2G_EINVAL);
  got = (xg2g_session *)1;
  CHECK_STATUS(xg2g_store_get_session(&got, NULL, "sess-a"), XG2G_EINVAL);
  CHECK(got == NULL);
  CHECK_STATUS(xg2g_store_get_session(&got, st, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_get_session(&got, st, "missing"), XG2G_ENOTFOUND);
  CHECK(got == NULL);
  CHECK_ERROR_MENTIONS("missing");
  CHECK_STATUS(xg2g_store_get_session(&got, st, "../etc"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_get_session(&got, st, "sess-a"), XG2G_OK);
  CHECK(got != NULL && strcmp(xg2g_session_get_profile(got), "hd") == 0);
  xg2g_session_destroy(got);
  got = NULL;

  CHECK_STATUS(xg2g_store_update_session(NULL, NULL, "sess-a", mark_ready, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_update_session(NULL, st, NULL, mark_ready, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_update_session(NULL, st, "sess-a", NULL, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_update_session(NULL, st, "missing", mark_ready, NULL), XG2G_ENOTFOUND);
  CHECK_STATUS(xg2g_store_update_session(&got, st, "sess-a", mark_ready, NULL), XG2G_OK);
  CHECK(got != NULL && xg2g_session_get_state(got) == XG2G_STATE_STARTING);
  xg2g_session_destroy(got);
  got = NULL;
  CHECK_STATUS(xg2g_store_update_session(NULL, st, "sess-a", refuse, NULL), XG2G_ESTATE);
  CHECK_STATUS(xg2g_store_get_session(&got, st, "sess-a"), XG2G_OK);
  CHECK(got != NULL && xg2g_session_get_state(got) == XG2G_STATE_STARTING);
  CHECK(got != NULL && xg2g_session_get_context(got, "should_not") == NULL);
  xg2g_session_destroy(got);
  got = NULL;

  for (i = 0; i < 5; ++i) {
    snprintf(id, sizeof id, "sess-%d", i);
    CHECK_STATUS(xg2g_session_create(&other, id, "1:0:1:BB", NULL, 0), XG2G_OK);
    CHECK_STATUS(xg2g_store_put_session(st, other), XG2G_OK);
    xg2g_session_destroy(other);
    other = NULL;
  }
  CHECK_STATUS(xg2g_store_scan_sessions(NULL, count_sessions, &scan), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_scan_sessions(st, NULL, &scan), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_scan_sessions(st, count_sessions, &scan), XG2G_OK);
  CHECK(scan.seen == 6);
  scan.seen = 0;
  scan.stop_after = 2;
  CHECK_STATUS(xg2g_store_scan_sessions(st, count_sessions, &scan), XG2G_OK);
  CHECK(scan.seen == 2);

  CHECK_STATUS(xg2g_store_list_sessions(NULL, &total, st, 0, 10), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_list_sessions(&list, &total, NULL, 0, 10), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_list_sessions(&list, &total, st, 0, 0), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("limit");
  CHECK_STATUS(xg2g_store_list_sessions(&list, &total, st, 0, 1001), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_list_sessions(&list, &total, st, 2, 3), XG2G_OK);
  CHECK(total == 6);
  CHECK(xg2g_session_list_count(list) == 3);
  /* Ordered by id: sess-0..sess-4, sess-a. */
  CHECK(strcmp(xg2g_session_get_id(xg2g_session_list_at(list, 0)), "sess-2") == 0);
  CHECK(xg2g_session_list_at(list, 3) == NULL);
  CHECK(xg2g_session_list_at(NULL, 0) == NULL);
  CHECK(xg2g_session_list_count(NULL) == 0);
  xg2g_session_list_destroy(list);
  xg2g_session_list_destroy(NULL);
  list = NULL;
  CHECK_STATUS(xg2g_store_list_sessions(&list, NULL, st, 10, 5), XG2G_OK);
  CHECK(xg2g_session_list_count(list) == 0);
  xg2g_session_list_destroy(list);

  CHECK_STATUS(xg2g_store_delete_session(NULL, "sess-0"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_delete_session(st, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_delete_session(st, "sess-0"), XG2G_OK);
  CHECK_STATUS(xg2g_store_delete_session(st, "sess-0"), XG2G_ENOTFOUND);

  /* Idempotent put: new key stores, same request replays, other request conflicts. */
  CHECK_STATUS(xg2g_session_create(&other, "sess-idem", "1:0:1:CC", NULL, 0), XG2G_OK);
  CHECK_STATUS(xg2g_store_put_session_idempotent(NULL, st, other, "k1", "fp1", 60000), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_put_session_idempotent(&existing, NULL, other, "k1", "fp1", 60000),
               XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_put_session_idempotent(&existing, st, NULL, "k1", "fp1", 60000),
               XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_put_session_idempotent(&existing, st, other, NULL, "fp1", 60000),
               XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_put_session_idempotent(&existing, st, other, "k1", NULL, 60000),
               XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_put_session_idempotent(&existing, st, other, "k1", "fp1", 0),
               XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("ttl_ms");
  CHECK_STATUS(xg2g_store_put_session_idempotent(&existing, st, other, "k1", "fp1", 60000),
               XG2G_OK);
  CHECK(existing == NULL);
  xg2g_session_destroy(other);
  CHECK_STATUS(xg2g_session_create(&other, "sess-idem2", "1:0:1:CC", NULL, 0), XG2G_OK);
  CHECK_STATUS(xg2g_store_put_session_idempotent(&existing, st, other, "k1", "fp1", 60000),
               XG2G_OK);
  CHECK(existing != NULL && strcmp(existing, "sess-idem") == 0);
  xg2g_free(existing);
  existing = NULL;
  CHECK_STATUS(xg2g_store_put_session_idempotent(&existing, st, other, "k1", "fp2", 60000),
               XG2G_ECONFLICT);
  CHECK(existing == NULL);
  CHECK_ERROR_MENTIONS("k1");
  CHECK_STATUS(xg2g_store_get_session(&got, st, "sess-idem2"), XG2G_ENOTFOUND);
  xg2g_session_destroy(other);

  /* Leases. */
  CHECK_STATUS(xg2g_store_lease_acquire(&t1, NULL, "tuner:0", "a", 1000), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_acquire(&t1, st, NULL, "a", 1000), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_acquire(&t1, st, "tuner:0", NULL, 1000), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_acquire(&t1, st, "tuner:0", "a", -1), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_acquire(&t1, st, "tuner:0", "a", 60000), XG2G_OK);
  CHECK(t1 > 0);
  CHECK_STATUS(xg2g_store_lease_acquire(&t2, st, "tuner:0", "b", 60000), XG2G_EBUSY);
  CHECK(t2 == 0);
  CHECK_STATUS(xg2g_store_lease_acquire(NULL, st, "tuner:0", "a", 60000), XG2G_OK);
  CHECK_STATUS(xg2g_store_lease_renew(NULL, "tuner:0", "a", 1000), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_renew(st, NULL, "a", 1000), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_renew(st, "tuner:0", NULL, 1000), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_renew(st, "tuner:0", "a", 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_renew(st, "tuner:0", "b", 60000), XG2G_ECONFLICT);
  CHECK_STATUS(xg2g_store_lease_renew(st, "tuner:0", "a", 60000), XG2G_OK);
  CHECK_STATUS(xg2g_store_lease_renew(st, "tuner:9", "a", 60000), XG2G_ENOTFOUND);
  CHECK_STATUS(xg2g_store_lease_release(NULL, "tuner:0", "a"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_release(st, NULL, "a"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_release(st, "tuner:0", NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_store_lease_release(st, "tuner:0", "b"), XG2G_ECONFLICT);
  CHECK_STATUS(xg2g_store_lease_release(st, "tuner:0", "a"), XG2G_OK);
  CHECK_STATUS(xg2g_store_lease_release(st, "tuner:0", "a"), XG2G_ENOTFOUND);
  CHECK_STATUS(xg2g_store_lease_acquire(&t3, st, "tuner:0", "b", 60000), XG2G_OK);
  CHECK(t3 > t1); /* fencing tokens only grow */

  /* Listing leases and checking the store. */
  {
    xg2g_lease_list *leases = (xg2g_lease_list *)&checks;
    xg2g_store_report *report = (xg2g_store_report *)&checks;
    CHECK_STATUS(xg2g_store_list_leases(&leases, NULL), XG2G_EINVAL);
    CHECK(leases == NULL);
    CHECK_STATUS(xg2g_store_list_leases(NULL, st), XG2G_EINVAL);
    CHECK_STATUS(xg2g_store_list_leases(&leases, st), XG2G_OK);
    CHECK(xg2g_lease_list_count(leases) == 1);
    CHECK(xg2g_lease_list_key(leases, 0) != NULL && strcmp(xg2g_lease_list_key(leases, 0), "tuner:0") == 0);
    CHECK(xg2g_lease_list_owner(leases, 0) != NULL && strcmp(xg2g_lease_list_owner(leases, 0), "b") == 0);
    CHECK(xg2g_lease_list_fencing_token(leases, 0) == t3);
    CHECK(xg2g_lease_list_expires_in_ms(leases, 0) > 0 &&
          xg2g_lease_list_expires_in_ms(leases, 0) <= 60000);
    CHECK(xg2g_lease_list_key(leases, 1) == NULL && xg2g_lease_list_owner(leases, 1) == NULL);
    CHECK(xg2g_lease_list_fencing_token(leases, 1) == 0 && xg2g_lease_list_expires_in_ms(leases, 1) == 0);
    CHECK(xg2g_lease_list_count(NULL) == 0 && xg2g_lease_list_key(NULL, 0) == NULL);
    xg2g_lease_list_destroy(leases);
    xg2g_lease_list_destroy(NULL);

    CHECK_STATUS(xg2g_store_check(&report, NULL), XG2G_EINVAL);
    CHECK(report == NULL);
    CHECK_STATUS(xg2g_store_check(NULL, st), XG2G_EINVAL);
    CHECK_STATUS(xg2g_store_check(&report, st), XG2G_OK);
    CHECK(xg2g_store_report_problem_count(report) == 0);
    CHECK(xg2g_store_report_problem(report, 0) == NULL);
    CHECK(xg2g_store_report_leases(report) == 1);
    CHECK(xg2g_store_report_sessions(report) >= 1);
    CHECK(xg2g_store_report_idempotency_keys(report) == -1); /* the memory store does not count */
    xg2g_store_report_destroy(report);
    CHECK(xg2g_store_report_sessions(NULL) == 0 && xg2g_store_report_leases(NULL) == 0);
    CHECK(xg2g_store_report_idempotency_keys(NULL) == -1);
    CHECK(xg2g_store_report_problem_count(NULL) == 0 && xg2g_store_report_problem(NULL, 0) == NULL);
    xg2g_store_report_destroy(NULL);
  }

  xg2g_session_destroy(s);
  xg2g_store_close(st);
  xg2g_store_close(NULL);
}

static void test_tls_arguments(void) {
  xg2g_tls_check_options opts = XG2G_TLS_CHECK_OPTIONS_INIT;
  char *report = (char *)1;
  CHECK_STATUS(xg2g_tls_check_options_init(NULL, XG2G_TLS_CHECK_OPTIONS_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_tls_check_options_init(&opts, 999), XG2G_EVERSION);
  CHECK_STATUS(xg2g_tls_check_options_init(&opts, XG2G_TLS_CHECK_OPTIONS_VERSION), XG2G_OK);
  CHECK(opts.version == XG2G_TLS_CHECK_OPTIONS_VERSION && opts.warn_days == 30);
  CHECK_STATUS(xg2g_tls_check(NULL, "c.pem", "k.pem", NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_tls_check(&report, NULL, "k.pem", NULL), XG2G_EINVAL);
  CHECK(report == NULL);
  CHECK_STATUS(xg2g_tls_check(&report, "c.pem", NULL, NULL), XG2G_EINVAL);
  opts.version = 77;
  CHECK_STATUS(xg2g_tls_check(&report, "c.pem", "k.pem", &opts), XG2G_EVERSION);
  /* Missing files are a report with errors, not a failed call. */
  CHECK_STATUS(xg2g_tls_check(&report, "/nonexistent/cert.pem", "/nonexistent/key.pem", NULL),
               XG2G_OK);
  CHECK(report != NULL && strstr(report, "\"valid\":false") != NULL);
  CHECK(report != NULL && strstr(report, "/nonexistent/cert.pem") != NULL);
  xg2g_free(report);
}

int main(void) {
  test_common();
  test_names();
  test_session();
  test_store();
  test_tls_arguments();
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

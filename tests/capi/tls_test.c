/*
 * Plain-C test of the TLS certificate check with certificates generated at
 * test time: options versions 1 and 2, passphrases, the report's facts and
 * codes. Built as C99; links only the shared library.
 *
 * Usage: tls_test DIR, where DIR holds the output of
 * tests/data/tls/make-fixtures.sh (meson runs it through with-fixtures.sh).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xg2g/xg2g.h>

#include "check.h"

/* 2030-01-01T00:00:00Z and 2026-01-01T00:00:00Z (the end of leaf-365d.pem). */
#define NOW_2030 INT64_C(1893456000)
#define END_365D INT64_C(1767225600)
#define DAY INT64_C(86400)

static const char *dir = "";

static const char *path(const char *name, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", dir, name);
  return buf;
}

/* Runs the check; returns the JSON (free with xg2g_free) or NULL. */
static char *check(const char *cert, const char *key, const xg2g_tls_check_options *opts) {
  char cert_path[4096];
  char key_path[4096];
  char *json = NULL;
  CHECK_STATUS(xg2g_tls_check(&json, path(cert, cert_path, sizeof cert_path),
                              path(key, key_path, sizeof key_path), opts),
               XG2G_OK);
  if (json == NULL) fprintf(stderr, "no report for %s / %s\n", cert, key);
  return json;
}

static int contains(const char *json, const char *needle) {
  const int found = json != NULL && strstr(json, needle) != NULL;
  if (!found) fprintf(stderr, "expected %s in %s\n", needle, json != NULL ? json : "(null)");
  return found;
}

static void test_options_init(void) {
  xg2g_tls_check_options opts;
  memset(&opts, 0x5a, sizeof opts);
  CHECK_STATUS(xg2g_tls_check_options_init(&opts, XG2G_TLS_CHECK_OPTIONS_VERSION), XG2G_OK);
  CHECK(opts.version == 2 && XG2G_TLS_CHECK_OPTIONS_VERSION == 2);
  CHECK(opts.warn_days == 30 && opts.warn_fraction == 0.33 && opts.now_unix == 0);
  CHECK(opts.passphrase == NULL);
  CHECK_STATUS(xg2g_tls_check_options_init(&opts, 0), XG2G_EVERSION);
  CHECK_ERROR_MENTIONS("version 0");
  CHECK_STATUS(xg2g_tls_check_options_init(&opts, 3), XG2G_EVERSION);
  CHECK_STATUS(xg2g_tls_check_options_init(NULL, 2), XG2G_EINVAL);
  {
    const xg2g_tls_check_options init = XG2G_TLS_CHECK_OPTIONS_INIT;
    CHECK(init.version == 2 && init.warn_days == 30 && init.passphrase == NULL);
  }
}

/* The options structure as a caller built against version 1 has it, followed
 * by bytes that must stay untouched (and would crash if read as a pointer). */
struct options_v1 {
  unsigned int version;
  int warn_days;
  double warn_fraction;
  int64_t now_unix;
};
struct v1_with_guard {
  struct options_v1 opts;
  unsigned char guard[16];
};

static void test_version_1_callers_keep_working(void) {
  struct v1_with_guard v1;
  size_t i;
  int guard_intact = 1;
  char *json;
  memset(&v1, 0xa5, sizeof v1);
  CHECK(offsetof(xg2g_tls_check_options, passphrase) == sizeof(struct options_v1));
  CHECK_STATUS(xg2g_tls_check_options_init((xg2g_tls_check_options *)(void *)&v1.opts, 1),
               XG2G_OK);
  CHECK(v1.opts.version == 1 && v1.opts.warn_days == 30 && v1.opts.now_unix == 0);
  for (i = 0; i < sizeof v1.guard; ++i) guard_intact &= v1.guard[i] == 0xa5;
  CHECK(guard_intact);

  /* Version 1 has no passphrase: an encrypted key stays KEY_ENCRYPTED and
   * the bytes after the structure are never read. */
  v1.opts.now_unix = NOW_2030;
  json = check("leaf.pem", "encrypted.key", (const xg2g_tls_check_options *)(const void *)&v1.opts);
  CHECK(contains(json, "\"code\":\"KEY_ENCRYPTED\""));
  xg2g_free(json);
  json = check("chain.pem", "leaf.key", (const xg2g_tls_check_options *)(const void *)&v1.opts);
  CHECK(contains(json, "\"valid\":true"));
  CHECK(contains(json, "\"warnings\":[]"));
  xg2g_free(json);
}

static void test_report_facts(void) {
  xg2g_tls_check_options opts = XG2G_TLS_CHECK_OPTIONS_INIT;
  char *json;
  opts.now_unix = NOW_2030;

  json = check("chain.pem", "leaf.key", &opts);
  CHECK(contains(json, "\"valid\":true,\"errors\":[],\"warnings\":[]"));
  CHECK(contains(json, "\"subject\":\"CN=localhost,O=libxg2g tests\""));
  CHECK(contains(json, "\"sans\":[\"localhost\",\"xg2g.test\",\"127.0.0.1\",\"::1\"]"));
  CHECK(contains(json, "\"not_before\":\"2024-01-01T00:00:00Z\""));
  CHECK(contains(json, "\"not_after\":\"2049-12-31T23:59:59Z\""));
  CHECK(contains(json, "\"days_left\":7304"));
  CHECK(contains(json, "\"key_type\":\"RSA\",\"key_bits\":2048}"));
  xg2g_free(json);

  json = check("ec384.pem", "ec384-sec1.key", &opts);
  CHECK(contains(json, "\"valid\":true"));
  CHECK(contains(json, "\"key_type\":\"EC\",\"key_bits\":384}"));
  xg2g_free(json);

  json = check("ed25519.pem", "ed25519.key", &opts);
  CHECK(contains(json, "\"valid\":true"));
  CHECK(contains(json, "\"sans\":[\"2001:db8::25\"]"));
  CHECK(contains(json, "\"key_type\":\"Ed25519\",\"key_bits\":253}"));
  xg2g_free(json);

  json = check("leaf.der", "leaf.key", &opts);
  CHECK(contains(json, "\"valid\":false"));
  CHECK(contains(json, "\"code\":\"FILE_NOT_PEM\""));
  xg2g_free(json);
}

static void test_passphrases(void) {
  xg2g_tls_check_options opts = XG2G_TLS_CHECK_OPTIONS_INIT;
  char *json;
  opts.now_unix = NOW_2030;

  json = check("chain.pem", "encrypted.key", &opts);
  CHECK(contains(json, "\"valid\":false"));
  CHECK(contains(json, "\"code\":\"KEY_ENCRYPTED\""));
  xg2g_free(json);

  opts.passphrase = "secret";
  json = check("chain.pem", "encrypted.key", &opts);
  CHECK(contains(json, "\"valid\":true,\"errors\":[],\"warnings\":[]"));
  xg2g_free(json);
  json = check("chain.pem", "encrypted-pkcs1.key", &opts);
  CHECK(contains(json, "\"valid\":true"));
  xg2g_free(json);
  json = check("ec.pem", "encrypted-sec1.key", &opts);
  CHECK(contains(json, "\"valid\":true"));
  CHECK(contains(json, "\"key_type\":\"EC\""));
  xg2g_free(json);
  json = check("leaf.pem", "encrypted-scrypt.key", &opts);
  CHECK(contains(json, "\"code\":\"KEY_ENCRYPTION_UNSUPPORTED\""));
  xg2g_free(json);

  opts.passphrase = "not the secret";
  json = check("chain.pem", "encrypted.key", &opts);
  CHECK(contains(json, "\"valid\":false"));
  CHECK(contains(json, "\"code\":\"KEY_PASSPHRASE_WRONG\""));
  CHECK(json == NULL || strstr(json, "KEY_MISMATCH") == NULL);
  xg2g_free(json);
}

static void test_warning_options(void) {
  xg2g_tls_check_options opts = XG2G_TLS_CHECK_OPTIONS_INIT;
  char *json = (char *)1;

  opts.now_unix = END_365D - 30 * DAY;
  json = check("leaf-365d.pem", "leaf.key", &opts);
  CHECK(contains(json, "\"valid\":true"));
  CHECK(contains(json, "\"code\":\"CERT_EXPIRING\""));
  CHECK(contains(json, "\"days_left\":30"));
  xg2g_free(json);

  opts.warn_days = 10;
  json = check("leaf-365d.pem", "leaf.key", &opts);
  CHECK(contains(json, "\"warnings\":[]"));
  xg2g_free(json);

  opts.warn_fraction = NAN;
  CHECK_STATUS(xg2g_tls_check(&json, "c.pem", "k.pem", &opts), XG2G_EINVAL);
  CHECK(json == NULL);
  CHECK_ERROR_MENTIONS("warn_fraction");
  opts.warn_fraction = 1.5;
  CHECK_STATUS(xg2g_tls_check(&json, "c.pem", "k.pem", &opts), XG2G_EINVAL);
  opts.warn_fraction = 0.33;
  opts.version = 3;
  CHECK_STATUS(xg2g_tls_check(&json, "c.pem", "k.pem", &opts), XG2G_EVERSION);
  opts.version = 0;
  CHECK_STATUS(xg2g_tls_check(&json, "c.pem", "k.pem", &opts), XG2G_EVERSION);
  CHECK(json == NULL);
}

/* The typed report: the same facts and findings as the JSON, and accessors
 * that answer NULL/0 instead of reading out of range. */
static void test_typed_report(void) {
  xg2g_tls_check_options opts = XG2G_TLS_CHECK_OPTIONS_INIT;
  xg2g_tls_report *report = (xg2g_tls_report *)1;
  char cert_path[4096];
  char key_path[4096];
  int64_t not_before = 0, not_after = 0, days_left = 0;
  char *json = NULL;
  char *direct = NULL;
  opts.now_unix = NOW_2030;

  CHECK_STATUS(xg2g_tls_check_report(&report, path("chain.pem", cert_path, sizeof cert_path),
                                     path("leaf.key", key_path, sizeof key_path), &opts),
               XG2G_OK);
  CHECK(xg2g_tls_report_valid(report) == 1);
  CHECK(xg2g_tls_report_count(report, XG2G_TLS_ERRORS) == 0);
  CHECK(xg2g_tls_report_count(report, XG2G_TLS_WARNINGS) == 0);
  CHECK(xg2g_tls_report_count(report, 7) == 0);
  CHECK(xg2g_tls_report_subject(report) != NULL &&
        strcmp(xg2g_tls_report_subject(report), "CN=localhost,O=libxg2g tests") == 0);
  CHECK(xg2g_tls_report_san_count(report) == 4);
  CHECK(xg2g_tls_report_san(report, 2) != NULL &&
        strcmp(xg2g_tls_report_san(report, 2), "127.0.0.1") == 0);
  CHECK(xg2g_tls_report_san(report, 4) == NULL);
  CHECK(xg2g_tls_report_validity(report, &not_before, &not_after, &days_left) == 1);
  CHECK(not_before == INT64_C(1704067200) && not_after == INT64_C(2524607999));
  CHECK(days_left == 7304);
  CHECK(xg2g_tls_report_validity(report, NULL, NULL, NULL) == 1);
  CHECK(xg2g_tls_report_key_type(report) != NULL &&
        strcmp(xg2g_tls_report_key_type(report), "RSA") == 0);
  CHECK(xg2g_tls_report_key_bits(report) == 2048);
  CHECK(xg2g_tls_report_code(report, XG2G_TLS_ERRORS, 0) == NULL);
  /* The JSON of the handle is the JSON of the one-call check. */
  CHECK_STATUS(xg2g_tls_report_to_json(&json, report), XG2G_OK);
  CHECK_STATUS(xg2g_tls_check(&direct, cert_path, key_path, &opts), XG2G_OK);
  CHECK(json != NULL && direct != NULL && strcmp(json, direct) == 0);
  xg2g_free(json);
  xg2g_free(direct);
  xg2g_tls_report_destroy(report);

  /* Errors and warnings, each with its code, file and reason. */
  opts.now_unix = 0;
  CHECK_STATUS(xg2g_tls_check_report(&report, path("expired.pem", cert_path, sizeof cert_path),
                                     path("rsa1024.key", key_path, sizeof key_path), &opts),
               XG2G_OK);
  CHECK(xg2g_tls_report_valid(report) == 0);
  CHECK(xg2g_tls_report_count(report, XG2G_TLS_ERRORS) >= 2);
  {
    int expired = 0, mismatch = 0;
    for (size_t i = 0; i < xg2g_tls_report_count(report, XG2G_TLS_ERRORS); ++i) {
      const char *code = xg2g_tls_report_code(report, XG2G_TLS_ERRORS, i);
      const char *file = xg2g_tls_report_file(report, XG2G_TLS_ERRORS, i);
      const char *message = xg2g_tls_report_message(report, XG2G_TLS_ERRORS, i);
      CHECK(code != NULL && file != NULL && message != NULL && message[0] != '\0');
      if (code != NULL && strcmp(code, "CERT_EXPIRED") == 0) {
        expired = 1;
        CHECK(strstr(file, "expired.pem") != NULL);
      }
      if (code != NULL && strcmp(code, "KEY_MISMATCH") == 0) mismatch = 1;
    }
    CHECK(expired && mismatch);
  }
  CHECK(xg2g_tls_report_code(report, XG2G_TLS_ERRORS,
                             xg2g_tls_report_count(report, XG2G_TLS_ERRORS)) == NULL);
  CHECK(xg2g_tls_report_message(report, -1, 0) == NULL);
  xg2g_tls_report_destroy(report);

  opts.now_unix = NOW_2030;
  CHECK_STATUS(xg2g_tls_check_report(&report, path("selfsigned.pem", cert_path, sizeof cert_path),
                                     path("selfsigned.key", key_path, sizeof key_path), &opts),
               XG2G_OK);
  CHECK(xg2g_tls_report_valid(report) == 1);
  CHECK(xg2g_tls_report_count(report, XG2G_TLS_WARNINGS) == 1);
  CHECK(xg2g_tls_report_code(report, XG2G_TLS_WARNINGS, 0) != NULL &&
        strcmp(xg2g_tls_report_code(report, XG2G_TLS_WARNINGS, 0), "SELF_SIGNED") == 0);
  xg2g_tls_report_destroy(report);

  /* A certificate file that is not there: no facts about the leaf (the key
   * file is still read). */
  CHECK_STATUS(xg2g_tls_check_report(&report, path("missing.pem", cert_path, sizeof cert_path),
                                     key_path, &opts),
               XG2G_OK);
  CHECK(xg2g_tls_report_valid(report) == 0);
  CHECK(xg2g_tls_report_code(report, XG2G_TLS_ERRORS, 0) != NULL &&
        strcmp(xg2g_tls_report_code(report, XG2G_TLS_ERRORS, 0), "FILE_NOT_FOUND") == 0);
  CHECK(xg2g_tls_report_subject(report) == NULL && xg2g_tls_report_san_count(report) == 0);
  not_before = 42;
  CHECK(xg2g_tls_report_validity(report, &not_before, NULL, NULL) == 0 && not_before == 42);
  xg2g_tls_report_destroy(report);

  /* Bad arguments, and NULL handles read as empty. */
  report = (xg2g_tls_report *)1;
  CHECK_STATUS(xg2g_tls_check_report(&report, NULL, key_path, &opts), XG2G_EINVAL);
  CHECK(report == NULL);
  CHECK_ERROR_MENTIONS("cert_path");
  opts.version = 9;
  CHECK_STATUS(xg2g_tls_check_report(&report, cert_path, key_path, &opts), XG2G_EVERSION);
  CHECK(report == NULL);
  CHECK_STATUS(xg2g_tls_check_report(NULL, cert_path, key_path, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_tls_report_to_json(&json, NULL), XG2G_EINVAL);
  CHECK(json == NULL);
  CHECK(xg2g_tls_report_valid(NULL) == 0 && xg2g_tls_report_count(NULL, 0) == 0);
  CHECK(xg2g_tls_report_san_count(NULL) == 0 && xg2g_tls_report_key_bits(NULL) == 0);
  xg2g_tls_report_destroy(NULL);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR (the output of make-fixtures.sh)\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  test_options_init();
  test_version_1_callers_keep_working();
  test_report_facts();
  test_passphrases();
  test_warning_options();
  test_typed_report();
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

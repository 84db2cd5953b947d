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
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

/*
 * xg2g tls check: the library's certificate check on a certificate (chain)
 * file and its key, as a report for a person or, with --json, the report's
 * JSON. Exit 0 clean, 1 valid with warnings, 2 invalid (or bad usage).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xg2g/xg2g.h>

#include "cli.h"

static const char *format_utc(int64_t unix_sec, char *buf, size_t size) {
  time_t t = (time_t)unix_sec;
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL) return "?";
  strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/* Reads the first line of `file` (without its line end) into buf; 0 when the
 * file cannot be read or the line does not fit. */
static int read_passphrase(const char *file, char *buf, size_t size) {
  FILE *f = fopen(file, "r");
  size_t len;
  if (f == NULL) return 0;
  if (fgets(buf, (int)size, f) == NULL) buf[0] = '\0';
  fclose(f);
  len = strlen(buf);
  if (len + 1 >= size && buf[len - 1] != '\n') return 0;
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = '\0';
  return 1;
}

static void print_findings(const xg2g_tls_report *report, int list, const char *label) {
  for (size_t i = 0; i < xg2g_tls_report_count(report, list); ++i) {
    printf("%-8s %-26s %s: %s\n", label, xg2g_tls_report_code(report, list, i),
           xg2g_tls_report_file(report, list, i), xg2g_tls_report_message(report, list, i));
  }
}

static void print_report(const xg2g_tls_report *report, const char *cert) {
  const size_t errors = xg2g_tls_report_count(report, XG2G_TLS_ERRORS);
  const size_t warnings = xg2g_tls_report_count(report, XG2G_TLS_WARNINGS);
  int64_t not_before = 0, not_after = 0, days_left = 0;
  const char *subject = xg2g_tls_report_subject(report);
  const char *key_type = xg2g_tls_report_key_type(report);

  if (errors > 0) {
    printf("%s: invalid, %zu error%s, %zu warning%s\n", cert, errors, errors == 1 ? "" : "s",
           warnings, warnings == 1 ? "" : "s");
  } else if (warnings > 0) {
    printf("%s: valid, %zu warning%s\n", cert, warnings, warnings == 1 ? "" : "s");
  } else {
    printf("%s: valid\n", cert);
  }
  if (subject != NULL) printf("subject  %s\n", subject);
  if (xg2g_tls_report_san_count(report) > 0) {
    printf("sans     ");
    for (size_t i = 0; i < xg2g_tls_report_san_count(report); ++i) {
      printf("%s%s", i > 0 ? ", " : "", xg2g_tls_report_san(report, i));
    }
    putchar('\n');
  }
  if (xg2g_tls_report_validity(report, &not_before, &not_after, &days_left)) {
    char from[32], to[32];
    printf("valid    %s .. %s (%lld days left)\n", format_utc(not_before, from, sizeof from),
           format_utc(not_after, to, sizeof to), (long long)days_left);
  }
  if (key_type != NULL) printf("key      %s %d bits\n", key_type, xg2g_tls_report_key_bits(report));
  print_findings(report, XG2G_TLS_ERRORS, "error");
  print_findings(report, XG2G_TLS_WARNINGS, "warning");
}

int cli_cmd_tls_check(const cli_options *opts, int argc, char **argv) {
  const char *cert = NULL, *key = NULL, *passphrase_file = NULL;
  xg2g_tls_check_options check_opts = XG2G_TLS_CHECK_OPTIONS_INIT;
  xg2g_tls_report *report = NULL;
  char passphrase[1024];
  xg2g_status rc;
  int result;

  for (int i = 0; i < argc; ++i) {
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--cert") == 0 || strcmp(argv[i], "--key") == 0 ||
        strcmp(argv[i], "--passphrase-file") == 0) {
      if (value == NULL || value[0] == '\0') {
        return cli_usage_error("tls check", "%s needs a file name", argv[i]);
      }
      if (strcmp(argv[i], "--cert") == 0) cert = value;
      if (strcmp(argv[i], "--key") == 0) key = value;
      if (strcmp(argv[i], "--passphrase-file") == 0) passphrase_file = value;
    } else if (strcmp(argv[i], "--warn-days") == 0) {
      size_t days = 0;
      if (!cli_parse_size(value, &days) || days < 1 || days > 36500) {
        return cli_usage_error("tls check", "%s needs a whole number of days from 1 to 36500",
                               argv[i]);
      }
      check_opts.warn_days = (int)days;
    } else if (strcmp(argv[i], "--warn-fraction") == 0) {
      char *end = NULL;
      double fraction;
      if (value == NULL) return cli_usage_error("tls check", "%s needs a number", argv[i]);
      errno = 0;
      fraction = strtod(value, &end);
      if (errno != 0 || end == value || *end != '\0' || !(fraction > 0.0 && fraction <= 1.0)) {
        return cli_usage_error("tls check", "%s needs a number above 0 and at most 1", argv[i]);
      }
      check_opts.warn_fraction = fraction;
    } else {
      return cli_usage_error("tls check", "unexpected argument '%s'", argv[i]);
    }
    ++i;
  }
  if (cert == NULL) return cli_usage_error("tls check", "%s is required", "--cert FILE");
  if (key == NULL) return cli_usage_error("tls check", "%s is required", "--key FILE");
  if (passphrase_file != NULL) {
    if (!read_passphrase(passphrase_file, passphrase, sizeof passphrase)) {
      return cli_usage_error("tls check", "cannot read a passphrase line from '%s'",
                             passphrase_file);
    }
    check_opts.passphrase = passphrase;
  }
  if ((rc = xg2g_check_version(XG2G_VERSION_MAJOR, XG2G_VERSION_MINOR)) != XG2G_OK) {
    return cli_fail("version check", rc);
  }
  rc = xg2g_tls_check_report(&report, cert, key, &check_opts);
  memset(passphrase, 0, sizeof passphrase);
  if (rc != XG2G_OK) return cli_fail("check certificate", rc);

  if (opts->json) {
    char *json = NULL;
    if ((rc = xg2g_tls_report_to_json(&json, report)) != XG2G_OK) {
      xg2g_tls_report_destroy(report);
      return cli_fail("encode report", rc);
    }
    printf("%s\n", json);
    xg2g_free(json);
  } else {
    print_report(report, cert);
  }
  if (!xg2g_tls_report_valid(report)) {
    result = CLI_USAGE; /* 2: invalid */
  } else if (xg2g_tls_report_count(report, XG2G_TLS_WARNINGS) > 0) {
    result = CLI_FINDINGS;
  } else {
    result = CLI_OK;
  }
  xg2g_tls_report_destroy(report);
  return result;
}

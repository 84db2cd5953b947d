/*
 * The checks of the plain-C tests: each CHECK counts, a failure prints the
 * expression and the library's last error and the test goes on.
 */
#ifndef XG2G_TESTS_CAPI_CHECK_H
#define XG2G_TESTS_CAPI_CHECK_H

#include <stdio.h>
#include <string.h>

#include <xg2g/xg2g.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                   \
  do {                                                                \
    ++checks;                                                         \
    if (!(cond)) {                                                    \
      ++failures;                                                     \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",   \
              __FILE__, __LINE__, #cond, xg2g_last_error());          \
    }                                                                 \
  } while (0)

#define CHECK_STATUS(expr, expected)                                         \
  do {                                                                       \
    xg2g_status rc_ = (expr);                                                \
    ++checks;                                                                \
    if (rc_ != (expected)) {                                                 \
      ++failures;                                                            \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", \
              __FILE__, __LINE__, #expr, xg2g_status_str(rc_),               \
              xg2g_status_str(expected), xg2g_last_error());                 \
    }                                                                        \
  } while (0)

/* The last error after a failure names what was wrong. */
#define CHECK_ERROR_MENTIONS(text) CHECK(strstr(xg2g_last_error(), (text)) != NULL)

#endif /* XG2G_TESTS_CAPI_CHECK_H */

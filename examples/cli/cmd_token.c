/*
 * xg2g token new: a random API token (256 bits from the kernel, URL-safe
 * base64 without padding) and the XG2G_API_TOKENS entry that grants it.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cli.h"

static const char *const kScopes[] = {"v3:read", "v3:write", "v3:admin", "v3:*", "*"};

/* 1 when every comma-separated entry of `list` is a known scope. */
static int check_scopes(const char *list) {
  const char *p = list;
  if (*p == '\0') return cli_usage_error("token new", "%s needs at least one scope", "--scopes"), 0;
  while (*p) {
    size_t len = strcspn(p, ",");
    int known = 0;
    for (size_t i = 0; i < sizeof kScopes / sizeof kScopes[0]; ++i) {
      if (strlen(kScopes[i]) == len && strncmp(p, kScopes[i], len) == 0) known = 1;
    }
    if (!known) {
      char bad[64];
      snprintf(bad, sizeof bad, "%.*s", (int)(len < 60 ? len : 60), p);
      cli_usage_error("token new",
                      "unknown scope '%s' (known: v3:read, v3:write, v3:admin, v3:*, *)", bad);
      return 0;
    }
    p += len;
    if (*p == ',') {
      ++p;
      if (*p == '\0') return cli_usage_error("token new", "%s", "--scopes ends with a comma"), 0;
    }
  }
  return 1;
}

int cli_cmd_token_new(const cli_options *opts, int argc, char **argv) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const char *scopes = NULL;
  unsigned char raw[33]; /* 264 bits: 44 characters, no padding */
  char token[64];
  size_t got = 0, n = 0;

  for (int i = 0; i < argc; ++i) {
    if (strcmp(argv[i], "--scopes") == 0 && i + 1 < argc) {
      scopes = argv[++i];
    } else if (strcmp(argv[i], "--scopes") == 0) {
      return cli_usage_error("token new", "%s needs a value", argv[i]);
    } else {
      return cli_usage_error("token new", "unexpected argument '%s'", argv[i]);
    }
  }
  if (scopes == NULL) return cli_usage_error("token new", "%s is required", "--scopes");
  if (!check_scopes(scopes)) return CLI_USAGE;

  while (got < sizeof raw) {
    ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      perror("xg2g token new: getrandom");
      return CLI_FAILED;
    }
    got += (size_t)r;
  }
  memcpy(token, "xg2g_", 5);
  n = 5;
  for (size_t i = 0; i + 2 < sizeof raw; i += 3) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
    token[n++] = kAlphabet[(v >> 18) & 63];
    token[n++] = kAlphabet[(v >> 12) & 63];
    token[n++] = kAlphabet[(v >> 6) & 63];
    token[n++] = kAlphabet[v & 63];
  }
  token[n] = '\0';
  if (opts->json) {
    printf("{\"token\":\"%s\",\"scopes\":", token);
    cli_json_string(stdout, scopes);
    printf(",\"config\":\"XG2G_API_TOKENS=%s=", token);
    /* scopes are from a fixed alphabet: nothing to escape */
    printf("%s\"}\n", scopes);
  } else {
    printf("%s\n", token);
    printf("XG2G_API_TOKENS='%s=%s'\n", token, scopes);
    fprintf(stderr, "keep the token secret; the daemon stores only its digest\n");
  }
  return CLI_OK;
}

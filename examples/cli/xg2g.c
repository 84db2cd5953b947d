/*
 * xg2g: the example command-line host of libxg2g. Uses only the public header
 * and libxg2g.so. Every subcommand has --help and --json; `xg2g --help` lists
 * them and the exit codes (docs/cli.md has the same).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xg2g/xg2g.h>

#include "cli.h"

#define PROGRAM_VERSION XG2G_VERSION_STRING

static const char kUsage[] =
    "usage: xg2g [--store URI] [--json] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  sessions list [--offset N] [--limit N]   sessions, ordered by id\n"
    "  sessions show ID                         one session\n"
    "  sessions stop ID                         stop a session, whichever host runs it\n"
    "  leases list                              the tuner and service leases held now\n"
    "  start SERVICE_REF [--profile P] [--idempotency-key K] [--tuner-slots SPEC]\n"
    "        [--once]                           start a session on the simulated pipeline\n"
    "                                           and host it until interrupted\n"
    "  store check                              read the whole store, report problems\n"
    "  tls check --cert F --key F [--warn-days N] [--warn-fraction X]\n"
    "            [--passphrase-file F]          check a certificate and its key\n"
    "  token new --scopes S[,S...]              a new API token and its config line\n"
    "  selfcheck                                exercise a store step by step\n"
    "  version                                  program and library versions\n"
    "\n"
    "options (before or after the command):\n"
    "  --store URI   memory:, lmdb:DIR or redis://HOST:PORT/DB (default: $XG2G_STORE,\n"
    "                else lmdb:./var/xg2g)\n"
    "  --json        machine-readable output on stdout\n"
    "  --help        help for the command\n"
    "\n"
    "exit codes:\n"
    "  0  done\n"
    "  1  done, with findings: store check problems, certificate warnings\n"
    "  2  bad usage or invalid input: unknown command or option, bad URI, bad scope,\n"
    "     a certificate with errors\n"
    "  3  not found: no such session\n"
    "  4  refused: the service or every tuner is busy, an idempotency key reused\n"
    "  5  the store or the library failed: unreachable, corrupt, out of space\n"
    "errors go to stderr with the library's message.\n";

/* ------------------------------------------------------------------------ */
/* Shared plumbing                                                          */
/* ------------------------------------------------------------------------ */

int cli_exit_code(xg2g_status rc) {
  switch (rc) {
    case XG2G_OK:
      return CLI_OK;
    case XG2G_EINVAL:
    case XG2G_EVERSION:
    case XG2G_EUNSUPPORTED:
      return CLI_USAGE;
    case XG2G_ENOTFOUND:
      return CLI_NOT_FOUND;
    case XG2G_EBUSY:
    case XG2G_ECONFLICT:
    case XG2G_EINFLIGHT:
    case XG2G_ESTATE:
    case XG2G_EEXISTS:
      return CLI_REFUSED;
    default:
      return CLI_FAILED;
  }
}

int cli_fail(const char *step, xg2g_status rc) {
  fprintf(stderr, "xg2g: %s: %s (%s)\n", step, xg2g_last_error(), xg2g_status_str(rc));
  return cli_exit_code(rc);
}

int cli_usage_error(const char *command, const char *fmt, const char *arg) {
  fprintf(stderr, "xg2g%s%s: ", command[0] ? " " : "", command);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see 'xg2g %s%s--help')\n", command, command[0] ? " " : "");
  return CLI_USAGE;
}

void cli_json_string(FILE *out, const char *s) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  fputc('"', out);
  for (; *p; ++p) {
    if (*p == '"' || *p == '\\') {
      fputc('\\', out);
      fputc(*p, out);
    } else if (*p < 0x20) {
      fprintf(out, "\\u%04x", *p);
    } else {
      fputc(*p, out);
    }
  }
  fputc('"', out);
}

int cli_parse_size(const char *text, size_t *out) {
  char *end = NULL;
  unsigned long long v;
  if (text == NULL || *text == '\0' || *text == '-') return 0;
  errno = 0;
  v = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0') return 0;
  *out = (size_t)v;
  return 1;
}

int cli_open_store(const cli_options *opts, xg2g_store **out) {
  xg2g_status rc;
  if ((rc = xg2g_check_version(XG2G_VERSION_MAJOR, XG2G_VERSION_MINOR)) != XG2G_OK) {
    return cli_fail("version check", rc);
  }
  if ((rc = xg2g_store_open(out, opts->store)) != XG2G_OK) return cli_fail("open store", rc);
  return CLI_OK;
}

/* ------------------------------------------------------------------------ */
/* version, selfcheck                                                       */
/* ------------------------------------------------------------------------ */

static int cmd_version(const cli_options *opts, int argc, char **argv) {
  if (argc > 0) return cli_usage_error("version", "unexpected argument '%s'", argv[0]);
  if (opts->json) {
    printf("{\"version\":\"%s\",\"library\":\"%s\"}\n", PROGRAM_VERSION, xg2g_version_string());
  } else {
    printf("xg2g %s (libxg2g %s)\n", PROGRAM_VERSION, xg2g_version_string());
  }
  return CLI_OK;
}

static int cmd_selfcheck(const cli_options *opts, int argc, char **argv) {
  xg2g_store *store = NULL;
  xg2g_session *session = NULL, *read_back = NULL, *again = NULL;
  char *existing = NULL;
  char key[96];
  uint64_t token = 0;
  xg2g_status rc;
  int result;

  if (argc > 0) return cli_usage_error("selfcheck", "unexpected argument '%s'", argv[0]);
  if ((result = cli_open_store(opts, &store)) != CLI_OK) return result;
  result = CLI_FAILED;
  if (!opts->json) printf("store %s: open\n", opts->store);

  if ((rc = xg2g_session_create(&session, NULL, "1:0:19:2B66:3F3:1:C00000:0:0:0:", NULL, 0)) !=
      XG2G_OK) {
    result = cli_fail("create session", rc);
    goto out;
  }
  /* A key of this run's own: a persistent store keeps the keys of earlier runs. */
  snprintf(key, sizeof key, "selfcheck-%s", xg2g_session_get_id(session));
  if ((rc = xg2g_store_put_session_idempotent(&existing, store, session, key, "fp", 60000)) !=
      XG2G_OK) {
    result = cli_fail("store session", rc);
    goto out;
  }
  if ((rc = xg2g_session_create(&again, NULL, "1:0:19:2B66:3F3:1:C00000:0:0:0:", NULL, 0)) !=
          XG2G_OK ||
      (rc = xg2g_store_put_session_idempotent(&existing, store, again, key, "fp", 60000)) !=
          XG2G_OK) {
    result = cli_fail("replay", rc);
    goto out;
  }
  if (existing == NULL || strcmp(existing, xg2g_session_get_id(session)) != 0) {
    fprintf(stderr, "xg2g: replay returned another session\n");
    goto out;
  }
  if (!opts->json) {
    printf("session %s: stored, replay returns it\n", xg2g_session_get_id(session));
  }
  if ((rc = xg2g_store_lease_acquire(&token, store, "selfcheck:lease", "selfcheck", 30000)) !=
      XG2G_OK) {
    result = cli_fail("acquire lease", rc);
    goto out;
  }
  if ((rc = xg2g_store_lease_acquire(NULL, store, "selfcheck:lease", "someone-else", 30000)) !=
      XG2G_EBUSY) {
    fprintf(stderr, "xg2g: a second owner was not refused (%s)\n", xg2g_status_str(rc));
    goto out;
  }
  if (!opts->json) {
    printf("lease selfcheck:lease: held, fencing token %llu, second owner refused\n",
           (unsigned long long)token);
  }
  if ((rc = xg2g_store_get_session(&read_back, store, xg2g_session_get_id(session))) != XG2G_OK) {
    result = cli_fail("read session", rc);
    goto out;
  }
  if ((rc = xg2g_store_lease_release(store, "selfcheck:lease", "selfcheck")) != XG2G_OK) {
    result = cli_fail("release lease", rc);
    goto out;
  }
  if ((rc = xg2g_store_delete_session(store, xg2g_session_get_id(session))) != XG2G_OK) {
    result = cli_fail("delete session", rc);
    goto out;
  }
  if (opts->json) {
    printf("{\"ok\":true,\"store\":");
    cli_json_string(stdout, opts->store);
    printf(",\"fencing_token\":%llu}\n", (unsigned long long)token);
  } else {
    printf("selfcheck: ok\n");
  }
  result = CLI_OK;
out:
  xg2g_free(existing);
  xg2g_session_destroy(again);
  xg2g_session_destroy(read_back);
  xg2g_session_destroy(session);
  xg2g_store_close(store);
  return result;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct command {
  const char *name;    /* first word */
  const char *sub;     /* second word, or NULL */
  int (*run)(const cli_options *, int, char **);
  const char *help;    /* shown by --help */
} command;

static const command kCommands[] = {
    {"sessions", "list", cli_cmd_sessions_list,
     "usage: xg2g sessions list [--offset N] [--limit N] [--store URI] [--json]\n"
     "Lists sessions ordered by id, at most --limit (1-1000, default 100) from --offset.\n"
     "--json: {\"sessions\":[...],\"pagination\":{\"offset\",\"limit\",\"total\",\"count\"}}\n"},
    {"sessions", "show", cli_cmd_sessions_show,
     "usage: xg2g sessions show ID [--store URI] [--json]\n"
     "Shows one session; exit 3 when there is none with that id. --json: the session record.\n"},
    {"sessions", "stop", cli_cmd_sessions_stop,
     "usage: xg2g sessions stop ID [--store URI] [--json]\n"
     "Stops a session whichever host runs it (that host tears it down within one heartbeat).\n"
     "Exit 3 when there is no such session. --json: {\"sessionId\",\"state\"}\n"},
    {"leases", "list", cli_cmd_leases_list,
     "usage: xg2g leases list [--store URI] [--json]\n"
     "Lists the leases held now. --json: [{\"key\",\"owner\",\"fencing_token\",\"expires_in_ms\"}]\n"},
    {"start", NULL, cli_cmd_start,
     "usage: xg2g start SERVICE_REF [--profile P] [--idempotency-key K] [--tuner-slots SPEC]\n"
     "                  [--once] [--store URI] [--json]\n"
     "Starts a session on the simulated pipeline, prints it once READY and hosts it until\n"
     "SIGINT or SIGTERM, then stops it. --once stops it right after printing. Exit 4 when\n"
     "the service already has a session or no tuner is free (the busy session is named).\n"
     "--json: {\"sessionId\",\"state\",\"correlationId\",\"replay\"}\n"},
    {"store", "check", cli_cmd_store_check,
     "usage: xg2g store check [--store URI] [--json]\n"
     "Reads the whole store and reports what does not add up; exit 1 when there are\n"
     "problems. --json: {\"consistent\",\"sessions\",\"leases\",\"idempotency_keys\",\"problems\"}\n"},
    {"tls", "check", cli_cmd_tls_check,
     "usage: xg2g tls check --cert FILE --key FILE [--warn-days N] [--warn-fraction X]\n"
     "                      [--passphrase-file FILE] [--json]\n"
     "Checks a certificate file (PEM, the leaf first, then its issuers) and its private key:\n"
     "readable, PEM, key matches, chain order, validity period, key strength. Warns when the\n"
     "time left is under min(--warn-days (30), --warn-fraction (0.33) x lifetime), for RSA\n"
     "under 2048 bits and for a self-signed leaf. An encrypted key needs --passphrase-file\n"
     "(its first line). Exit 0 clean, 1 valid with warnings, 2 invalid.\n"
     "--json: {\"valid\",\"errors\":[{\"code\",\"file\",\"message\"}],\"warnings\":[...],\"subject\",\n"
     "\"sans\",\"not_before\",\"not_after\",\"days_left\",\"key_type\",\"key_bits\"}\n"},
    {"token", "new", cli_cmd_token_new,
     "usage: xg2g token new --scopes S[,S...] [--json]\n"
     "Prints a new random API token and the XG2G_API_TOKENS entry for it. Scopes: v3:read,\n"
     "v3:write, v3:admin, v3:*, *. --json: {\"token\",\"scopes\",\"config\"}\n"},
    {"selfcheck", NULL, cmd_selfcheck,
     "usage: xg2g selfcheck [--store URI] [--json]\n"
     "Stores a session with an idempotency key, replays it, takes and releases a lease,\n"
     "then removes what it stored, reporting each step.\n"},
    {"version", NULL, cmd_version,
     "usage: xg2g version [--json]\n"
     "Prints the program's and the loaded library's versions.\n"
     "--json: {\"version\",\"library\"}\n"},
};

/* Removes the global options (--store, --json, --help) from argv wherever
 * they are; returns the count left, or -1 after a usage error. */
static int take_global_options(int argc, char **argv, cli_options *opts, int *help) {
  int kept = 0;
  for (int i = 0; i < argc; ++i) {
    if (strcmp(argv[i], "--json") == 0) {
      opts->json = 1;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      *help = 1;
    } else if (strcmp(argv[i], "--store") == 0) {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') {
        cli_usage_error("", "%s needs a store URI", "--store");
        return -1;
      }
      opts->store = argv[++i];
    } else if (strncmp(argv[i], "--store=", 8) == 0) {
      opts->store = argv[i] + 8;
    } else {
      argv[kept++] = argv[i];
    }
  }
  return kept;
}

int main(int argc, char **argv) {
  cli_options opts = {NULL, 0};
  int help = 0;
  const char *env_store = getenv("XG2G_STORE");
  opts.store = (env_store && *env_store) ? env_store : "lmdb:./var/xg2g";

  argc = take_global_options(argc - 1, argv + 1, &opts, &help);
  argv = argv + 1;
  if (argc < 0) return CLI_USAGE;
  if (argc == 0) {
    fputs(kUsage, help ? stdout : stderr);
    return help ? CLI_OK : CLI_USAGE;
  }
  for (size_t i = 0; i < sizeof kCommands / sizeof kCommands[0]; ++i) {
    const command *c = &kCommands[i];
    if (strcmp(argv[0], c->name) != 0) continue;
    if (c->sub == NULL) {
      if (help) {
        fputs(c->help, stdout);
        return CLI_OK;
      }
      return c->run(&opts, argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], c->sub) == 0) {
      if (help) {
        fputs(c->help, stdout);
        return CLI_OK;
      }
      return c->run(&opts, argc - 2, argv + 2);
    }
  }
  /* A known first word with a missing or unknown second one. */
  for (size_t i = 0; i < sizeof kCommands / sizeof kCommands[0]; ++i) {
    const command *c = &kCommands[i];
    if (c->sub == NULL || strcmp(argv[0], c->name) != 0) continue;
    if (help && argc == 1) {
      for (size_t j = i; j < sizeof kCommands / sizeof kCommands[0]; ++j) {
        if (strcmp(kCommands[j].name, c->name) == 0) fputs(kCommands[j].help, stdout);
      }
      return CLI_OK;
    }
    if (argc == 1) return cli_usage_error(c->name, "'%s' needs a subcommand", c->name);
    fprintf(stderr, "xg2g %s: unknown subcommand '%s' (see 'xg2g %s --help')\n", c->name,
            argv[1], c->name);
    return CLI_USAGE;
  }
  fprintf(stderr, "xg2g: unknown command '%s' (see 'xg2g --help')\n", argv[0]);
  return CLI_USAGE;
}

/*
 * Shared parts of the example CLI's commands (xg2g.c dispatches).
 */
#ifndef XG2G_EXAMPLES_CLI_CLI_H
#define XG2G_EXAMPLES_CLI_CLI_H

#include <stddef.h>
#include <stdio.h>

#include <xg2g/xg2g.h>

/* Exit codes; `xg2g --help` and docs/cli.md list them. */
enum {
  CLI_OK = 0,
  CLI_FINDINGS = 1,
  CLI_USAGE = 2,
  CLI_NOT_FOUND = 3,
  CLI_REFUSED = 4,
  CLI_FAILED = 5
};

typedef struct cli_options {
  const char *store; /* store URI */
  int json;          /* --json */
} cli_options;

/* The exit code for a library status. */
int cli_exit_code(xg2g_status rc);
/* Prints "xg2g: STEP: last error (STATUS)" to stderr; returns the exit code. */
int cli_fail(const char *step, xg2g_status rc);
/* Prints a usage error naming `arg` (fmt has one %s) to stderr; returns 2. */
int cli_usage_error(const char *command, const char *fmt, const char *arg);
/* Writes s as a JSON string literal. */
void cli_json_string(FILE *out, const char *s);
/* A decimal, non-negative integer; 0 when text is not one. */
int cli_parse_size(const char *text, size_t *out);
/* Checks the library version and opens opts->store; an exit code. */
int cli_open_store(const cli_options *opts, xg2g_store **out);

/* An engine of this process on `store` (owner id unique to the process),
 * with the host's pipeline (NULL: none) and tuner slots (NULL: default). */
int cli_create_engine(const cli_options *opts, xg2g_store *store, const char *slots,
                      const xg2g_pipeline_callbacks *pipeline, void *user_data,
                      xg2g_engine **out);

int cli_cmd_sessions_list(const cli_options *opts, int argc, char **argv);
int cli_cmd_sessions_show(const cli_options *opts, int argc, char **argv);
int cli_cmd_sessions_stop(const cli_options *opts, int argc, char **argv);
int cli_cmd_leases_list(const cli_options *opts, int argc, char **argv);
int cli_cmd_start(const cli_options *opts, int argc, char **argv);
int cli_cmd_store_check(const cli_options *opts, int argc, char **argv);
int cli_cmd_tls_check(const cli_options *opts, int argc, char **argv);
int cli_cmd_token_new(const cli_options *opts, int argc, char **argv);

#endif /* XG2G_EXAMPLES_CLI_CLI_H */

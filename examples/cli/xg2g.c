/*
 * xg2g: the example command-line host of libxg2g. Uses only the public header
 * and libxg2g.so.
 *
 *   xg2g version [--json]     versions of the program and the loaded library
 *   xg2g selfcheck [--store URI]
 *                             exercises sessions, idempotency and leases on a
 *                             store and reports each step
 */
#include <stdio.h>
#include <string.h>

#include <xg2g/xg2g.h>

#define PROGRAM_VERSION XG2G_VERSION_STRING

static int usage(FILE *to) {
  fprintf(to,
          "usage: xg2g version [--json]\n"
          "       xg2g selfcheck [--store URI]   (default store: memory:)\n"
          "exit codes: 0 success, 1 a check failed, 2 usage or library error\n");
  return to == stdout ? 0 : 2;
}

static int fail(const char *step, xg2g_status rc) {
  fprintf(stderr, "xg2g: %s: %s (%s)\n", step, xg2g_last_error(), xg2g_status_str(rc));
  return 1;
}

static int cmd_version(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[2], "--json") == 0) {
    printf("{\"version\":\"%s\",\"library\":\"%s\"}\n", PROGRAM_VERSION, xg2g_version_string());
  } else if (argc > 2) {
    return usage(stderr);
  } else {
    printf("xg2g %s (libxg2g %s)\n", PROGRAM_VERSION, xg2g_version_string());
  }
  return 0;
}

static int cmd_selfcheck(int argc, char **argv) {
  const char *uri = "memory:";
  xg2g_store *store = NULL;
  xg2g_session *session = NULL, *read_back = NULL, *again = NULL;
  char *existing = NULL;
  char key[96];
  uint64_t token = 0;
  xg2g_status rc;
  int result = 1;

  if (argc == 4 && strcmp(argv[2], "--store") == 0) {
    uri = argv[3];
  } else if (argc != 2) {
    return usage(stderr);
  }
  if ((rc = xg2g_check_version(XG2G_VERSION_MAJOR, XG2G_VERSION_MINOR)) != XG2G_OK)
    return fail("version check", rc);
  if ((rc = xg2g_store_open(&store, uri)) != XG2G_OK) return fail("open store", rc) + 1;
  printf("store %s: open\n", uri);

  if ((rc = xg2g_session_create(&session, NULL, "1:0:19:2B66:3F3:1:C00000:0:0:0:", NULL, 0)) !=
      XG2G_OK) {
    fail("create session", rc);
    goto out;
  }
  /* A key of this run's own: a persistent store keeps the keys of earlier runs. */
  snprintf(key, sizeof key, "selfcheck-%s", xg2g_session_get_id(session));
  if ((rc = xg2g_store_put_session_idempotent(&existing, store, session, key, "fp", 60000)) !=
      XG2G_OK) {
    fail("store session", rc);
    goto out;
  }
  if ((rc = xg2g_session_create(&again, NULL, "1:0:19:2B66:3F3:1:C00000:0:0:0:", NULL, 0)) !=
          XG2G_OK ||
      (rc = xg2g_store_put_session_idempotent(&existing, store, again, key, "fp", 60000)) !=
          XG2G_OK) {
    fail("replay", rc);
    goto out;
  }
  if (existing == NULL || strcmp(existing, xg2g_session_get_id(session)) != 0) {
    fprintf(stderr, "xg2g: replay returned another session\n");
    goto out;
  }
  printf("session %s: stored, replay returns it\n", xg2g_session_get_id(session));
  if ((rc = xg2g_store_lease_acquire(&token, store, "tuner:0", "selfcheck", 30000)) != XG2G_OK) {
    fail("acquire lease", rc);
    goto out;
  }
  if ((rc = xg2g_store_lease_acquire(NULL, store, "tuner:0", "someone-else", 30000)) != XG2G_EBUSY) {
    fprintf(stderr, "xg2g: a second owner was not refused (%s)\n", xg2g_status_str(rc));
    goto out;
  }
  printf("lease tuner:0: held, fencing token %llu, second owner refused\n",
         (unsigned long long)token);
  if ((rc = xg2g_store_get_session(&read_back, store, xg2g_session_get_id(session))) != XG2G_OK) {
    fail("read session", rc);
    goto out;
  }
  if ((rc = xg2g_store_lease_release(store, "tuner:0", "selfcheck")) != XG2G_OK) {
    fail("release lease", rc);
    goto out;
  }
  if ((rc = xg2g_store_delete_session(store, xg2g_session_get_id(session))) != XG2G_OK) {
    fail("delete session", rc);
    goto out;
  }
  printf("selfcheck: ok\n");
  result = 0;
out:
  xg2g_free(existing);
  xg2g_session_destroy(again);
  xg2g_session_destroy(read_back);
  xg2g_session_destroy(session);
  xg2g_store_close(store);
  return result;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage(stderr);
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return usage(stdout);
  if (strcmp(argv[1], "version") == 0) return cmd_version(argc, argv);
  if (strcmp(argv[1], "selfcheck") == 0) return cmd_selfcheck(argc, argv);
  fprintf(stderr, "xg2g: unknown command '%s'\n", argv[1]);
  return usage(stderr);
}

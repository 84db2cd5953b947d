/*
 * Plain-C test of the HTTP handler's entry points (xg2g_http.h): every
 * function, NULL arguments and bad versions, the configuration setters and
 * their errors, and whole request cycles: auth, rate limiting on the
 * engine's manual clock, intents, sessions, readiness, audit callbacks,
 * reload. Built as C99; links only the shared library.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xg2g/xg2g.h>

#include "check.h"

#define T0 1700000000000LL

#define READ_TOKEN "reader-token-0123456789"
#define WRITE_TOKEN "writer-token-0123456789"
#define ADMIN_TOKEN "admin-token-0123456789"
#define TOKENS READ_TOKEN "=v3:read;" WRITE_TOKEN "=v3:write;" ADMIN_TOKEN "=v3:admin"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */

typedef struct audit_log {
  int lines;
  int with_token; /* lines that contain any token: must stay 0 */
  char last_type[64];
  int destroyed;
  int reloads;
  int query_uses;
} audit_log;

static void record_audit(const char *json_line, void *user_data) {
  audit_log *log = (audit_log *)user_data;
  const char *type = strstr(json_line, "\"type\":\"");
  log->lines++;
  if (strstr(json_line, "token-0123456789") != NULL) log->with_token++;
  if (strstr(json_line, "\"config_reload\"") != NULL) log->reloads++;
  if (strstr(json_line, "\"deprecated_query_token\"") != NULL) log->query_uses++;
  if (type != NULL) {
    size_t n = 0;
    type += strlen("\"type\":\"");
    while (type[n] != '"' && type[n] != '\0' && n + 1 < sizeof log->last_type) n++;
    memcpy(log->last_type, type, n);
    log->last_type[n] = '\0';
  }
}

static void destroy_audit(void *user_data) { ((audit_log *)user_data)->destroyed++; }

typedef struct readiness {
  int ready;
  int destroyed;
} readiness;

static xg2g_status check_receiver(char *reason, size_t reason_size, void *user_data) {
  readiness *r = (readiness *)user_data;
  if (r->ready) return XG2G_OK;
  snprintf(reason, reason_size, "receiver does not answer");
  return XG2G_EUNAVAILABLE;
}

static void destroy_readiness(void *user_data) { ((readiness *)user_data)->destroyed++; }

/* Sends one request; returns the response (the caller destroys it). */
static xg2g_http_response *send_request(xg2g_http_handler *h, const char *method,
                                        const char *target, const char *token, const char *body,
                                        const char *peer) {
  xg2g_http_request req = XG2G_HTTP_REQUEST_INIT;
  xg2g_http_header headers[2];
  char authorization[128];
  size_t n = 0;
  xg2g_http_response *resp = NULL;
  if (token != NULL) {
    snprintf(authorization, sizeof authorization, "Bearer %s", token);
    headers[n].name = "Authorization";
    headers[n].value = authorization;
    n++;
  }
  headers[n].name = "content-type";
  headers[n].value = "application/json";
  n++;
  req.method = method;
  req.target = target;
  req.headers = headers;
  req.header_count = n;
  req.body = body;
  req.body_size = body != NULL ? strlen(body) : 0;
  req.peer_ip = peer;
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_OK);
  return resp;
}

/* The HTTP status of one request (the response is destroyed). */
static int status_of(xg2g_http_handler *h, const char *method, const char *target,
                     const char *token, const char *body, const char *peer) {
  xg2g_http_response *resp = send_request(h, method, target, token, body, peer);
  int status = xg2g_http_response_get_status(resp);
  xg2g_http_response_destroy(resp);
  return status;
}

/* Copies the string value of "key" from a flat JSON object into out. */
static int json_string(const char *json, const char *key, char *out, size_t size) {
  char pattern[64];
  const char *at;
  size_t n = 0;
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  at = strstr(json, pattern);
  if (at == NULL) return 0;
  at += strlen(pattern);
  while (at[n] != '"' && at[n] != '\0' && n + 1 < size) n++;
  memcpy(out, at, n);
  out[n] = '\0';
  return 1;
}

typedef struct world {
  xg2g_store *store;
  xg2g_config *engine_cfg;
  xg2g_engine *engine;
} world;

static void world_open(world *w) {
  w->store = NULL;
  w->engine_cfg = NULL;
  w->engine = NULL;
  CHECK_STATUS(xg2g_store_open(&w->store, "memory:"), XG2G_OK);
  CHECK_STATUS(xg2g_config_create(&w->engine_cfg), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_manual_clock(w->engine_cfg, T0), XG2G_OK);
  CHECK_STATUS(xg2g_config_set_tuner_slots(w->engine_cfg, "0-1"), XG2G_OK);
  CHECK_STATUS(xg2g_engine_create(&w->engine, w->engine_cfg, w->store), XG2G_OK);
}

static void world_close(world *w) {
  xg2g_engine_destroy(w->engine);
  xg2g_config_destroy(w->engine_cfg);
  xg2g_store_close(w->store);
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                  */

static void test_request_init(void) {
  xg2g_http_request req;
  memset(&req, 0xab, sizeof req);
  CHECK_STATUS(xg2g_http_request_init(&req, XG2G_HTTP_REQUEST_VERSION), XG2G_OK);
  CHECK(req.version == XG2G_HTTP_REQUEST_VERSION);
  CHECK(req.method == NULL && req.target == NULL && req.headers == NULL);
  CHECK(req.header_count == 0 && req.body == NULL && req.body_size == 0 && req.peer_ip == NULL);
  CHECK_STATUS(xg2g_http_request_init(NULL, XG2G_HTTP_REQUEST_VERSION), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_request_init(&req, 99), XG2G_EVERSION);
  CHECK_ERROR_MENTIONS("99");
}

static void test_config_setters(void) {
  xg2g_http_config *cfg = NULL;
  audit_log log;
  readiness ready;
  memset(&log, 0, sizeof log);
  memset(&ready, 0, sizeof ready);

  CHECK_STATUS(xg2g_http_config_create(NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_config_create(&cfg), XG2G_OK);
  CHECK(strcmp(xg2g_http_config_get_warnings(cfg), "") == 0);
  CHECK(strcmp(xg2g_http_config_get_warnings(NULL), "") == 0);

  CHECK_STATUS(xg2g_http_config_set_tokens(cfg, TOKENS), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_tokens(cfg, "secret-value-0123456789=v3:root"), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("xg2g_http_config_set_tokens");
  CHECK_ERROR_MENTIONS("entry 1 has an unknown scope 'v3:root'");
  CHECK(strstr(xg2g_last_error(), "secret-value") == NULL);
  CHECK_STATUS(xg2g_http_config_set_tokens(cfg, "no-equals-sign"), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_config_set_tokens(NULL, TOKENS), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_config_set_tokens(cfg, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_config_set_tokens(cfg, "short=v3:read"), XG2G_OK);
  CHECK(strstr(xg2g_http_config_get_warnings(cfg), "shorter than 16 characters") != NULL);
  CHECK(strstr(xg2g_http_config_get_warnings(cfg), "short") == strstr(xg2g_http_config_get_warnings(cfg), "shorter"));

  CHECK_STATUS(xg2g_http_config_set_allow_query_tokens(cfg, 1), XG2G_OK);
  CHECK(strstr(xg2g_http_config_get_warnings(cfg), "query tokens are on") != NULL);
  CHECK_STATUS(xg2g_http_config_set_allow_query_tokens(cfg, 0), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_allow_query_tokens(NULL, 1), XG2G_EINVAL);

  CHECK_STATUS(xg2g_http_config_set_rate_limit(cfg, 50, 100), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_rate_limit(cfg, 0, 1), XG2G_OK); /* off */
  CHECK_STATUS(xg2g_http_config_set_rate_limit(cfg, -1, 1), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("rate_per_sec");
  CHECK_STATUS(xg2g_http_config_set_rate_limit(cfg, 1, 0), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("burst");
  CHECK_STATUS(xg2g_http_config_set_rate_limit(NULL, 1, 1), XG2G_EINVAL);

  CHECK_STATUS(xg2g_http_config_set_rate_limit_max_clients(cfg, 1024), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_rate_limit_max_clients(cfg, 0), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_config_set_rate_limit_max_clients(NULL, 5), XG2G_EINVAL);

  CHECK_STATUS(xg2g_http_config_set_allow_list(cfg, "10.0.0.0/8, 2001:db8::7"), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_allow_list(cfg, "10.0.0.0/8, 10.0.0.1/8"), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("rate-limit allow-list: '10.0.0.1/8' has host bits set");
  CHECK_STATUS(xg2g_http_config_set_allow_list(cfg, ""), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_allow_list(cfg, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_config_set_trusted_proxies(cfg, "192.0.2.1,::1"), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_trusted_proxies(cfg, "proxy.local"), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("trusted proxies: 'proxy.local'");
  CHECK_STATUS(xg2g_http_config_set_trusted_proxies(NULL, ""), XG2G_EINVAL);

  CHECK_STATUS(xg2g_http_config_set_metrics_scope(cfg, "v3:admin"), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_metrics_scope(cfg, ""), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_metrics_scope(cfg, "v4:read"), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("unknown scope 'v4:read'");
  CHECK_STATUS(xg2g_http_config_set_metrics_scope(cfg, NULL), XG2G_EINVAL);

  /* Callback ownership: destroy runs exactly once. */
  CHECK_STATUS(xg2g_http_config_set_audit_callback(cfg, record_audit, &log, destroy_audit), XG2G_OK);
  CHECK(log.destroyed == 0);
  CHECK_STATUS(xg2g_http_config_set_audit_path(cfg, "/dev/null"), XG2G_OK);
  CHECK(log.destroyed == 1); /* replaced */
  CHECK_STATUS(xg2g_http_config_set_audit_path(cfg, ""), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_config_set_audit_path(cfg, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_config_set_audit_callback(NULL, record_audit, &log, destroy_audit),
               XG2G_EINVAL);
  CHECK(log.destroyed == 2); /* failed: destroyed at once */
  CHECK_STATUS(xg2g_http_config_set_audit_callback(cfg, NULL, &log, destroy_audit), XG2G_OK);
  CHECK(log.destroyed == 3); /* NULL fn: destroyed at once */

  CHECK_STATUS(xg2g_http_config_set_readiness_check(cfg, check_receiver, &ready, destroy_readiness),
               XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_readiness_check(cfg, NULL, NULL, NULL), XG2G_OK);
  CHECK(ready.destroyed == 1);
  CHECK_STATUS(xg2g_http_config_set_readiness_check(NULL, check_receiver, &ready, destroy_readiness),
               XG2G_EINVAL);
  CHECK(ready.destroyed == 2);

  xg2g_http_config_destroy(cfg);
  xg2g_http_config_destroy(NULL);
}

static void test_handler_arguments(void) {
  world w;
  xg2g_http_config *cfg = NULL;
  xg2g_http_handler *h = NULL;
  xg2g_http_response *resp = NULL;
  xg2g_http_request req = XG2G_HTTP_REQUEST_INIT;
  xg2g_http_header bad_header = {NULL, "x"};

  world_open(&w);
  CHECK_STATUS(xg2g_http_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_audit_path(cfg, "/nonexistent-dir/audit.log"), XG2G_OK);
  h = (xg2g_http_handler *)&w; /* garbage that must be overwritten */
  CHECK_STATUS(xg2g_http_handler_create(&h, w.engine, cfg), XG2G_EIO);
  CHECK_ERROR_MENTIONS("/nonexistent-dir/audit.log");
  CHECK(h == NULL);
  CHECK_STATUS(xg2g_http_config_set_audit_path(cfg, "/dev/null"), XG2G_OK);
  CHECK_STATUS(xg2g_http_handler_create(NULL, w.engine, cfg), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_handler_create(&h, NULL, cfg), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_handler_create(&h, w.engine, NULL), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_handler_create(&h, w.engine, cfg), XG2G_OK);

  req.method = "GET";
  req.target = "/healthz";
  CHECK_STATUS(xg2g_http_handler_handle(NULL, h, &req), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_handler_handle(&resp, NULL, &req), XG2G_EINVAL);
  CHECK(resp == NULL);
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, NULL), XG2G_EINVAL);
  req.version = 7;
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_EVERSION);
  req.version = XG2G_HTTP_REQUEST_VERSION;
  req.method = NULL;
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("req->method");
  req.method = "GET";
  req.target = NULL;
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_EINVAL);
  req.target = "/healthz";
  req.header_count = 1;
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_EINVAL);
  req.headers = &bad_header;
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_EINVAL);
  CHECK_ERROR_MENTIONS("req->headers[0] has a NULL name");
  req.headers = NULL;
  req.header_count = 0;
  req.body_size = 3;
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_EINVAL);
  req.body_size = 0;
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_OK);
  CHECK(xg2g_http_response_get_status(resp) == 200);
  xg2g_http_response_destroy(resp);

  CHECK_STATUS(xg2g_http_handler_reload(NULL, cfg), XG2G_EINVAL);
  CHECK_STATUS(xg2g_http_handler_reload(h, NULL), XG2G_EINVAL);

  /* NULL-safe accessors. */
  CHECK(xg2g_http_response_get_status(NULL) == 0);
  CHECK(xg2g_http_response_get_header_count(NULL) == 0);
  CHECK(xg2g_http_response_get_header_name(NULL, 0) == NULL);
  CHECK(xg2g_http_response_get_header_value(NULL, 0) == NULL);
  CHECK(xg2g_http_response_get_header(NULL, "X-Request-ID") == NULL);
  {
    size_t size = 99;
    CHECK(strcmp(xg2g_http_response_get_body(NULL, &size), "") == 0);
    CHECK(size == 0);
  }
  xg2g_http_response_destroy(NULL);
  xg2g_http_handler_destroy(NULL);

  xg2g_http_handler_destroy(h);
  xg2g_http_config_destroy(cfg);
  world_close(&w);
}

static void test_response_accessors(void) {
  world w;
  xg2g_http_config *cfg = NULL;
  xg2g_http_handler *h = NULL;
  xg2g_http_response *resp = NULL;
  xg2g_http_request req = XG2G_HTTP_REQUEST_INIT;
  xg2g_http_header headers[1] = {{"X-Request-ID", "trace-1"}};
  size_t i, size = 0;
  int saw_nosniff = 0;
  const char *body;

  world_open(&w);
  CHECK_STATUS(xg2g_http_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_audit_path(cfg, "/dev/null"), XG2G_OK);
  CHECK_STATUS(xg2g_http_handler_create(&h, w.engine, cfg), XG2G_OK);

  req.method = "GET";
  req.target = "/nowhere";
  req.headers = headers;
  req.header_count = 1;
  req.peer_ip = "192.0.2.1";
  CHECK_STATUS(xg2g_http_handler_handle(&resp, h, &req), XG2G_OK);
  CHECK(xg2g_http_response_get_status(resp) == 404);
  for (i = 0; i < xg2g_http_response_get_header_count(resp); ++i) {
    const char *name = xg2g_http_response_get_header_name(resp, i);
    const char *value = xg2g_http_response_get_header_value(resp, i);
    CHECK(name != NULL && value != NULL);
    if (strcmp(name, "X-Content-Type-Options") == 0) saw_nosniff = strcmp(value, "nosniff") == 0;
  }
  CHECK(saw_nosniff);
  CHECK(xg2g_http_response_get_header_name(resp, i) == NULL);
  CHECK(xg2g_http_response_get_header_value(resp, i) == NULL);
  CHECK(strcmp(xg2g_http_response_get_header(resp, "x-request-id"), "trace-1") == 0);
  CHECK(strcmp(xg2g_http_response_get_header(resp, "content-type"), "application/json") == 0);
  CHECK(xg2g_http_response_get_header(resp, "X-Nothing") == NULL);
  CHECK(xg2g_http_response_get_header(resp, NULL) == NULL);
  body = xg2g_http_response_get_body(resp, &size);
  CHECK(size == strlen(body));
  CHECK(strstr(body, "\"code\":\"NOT_FOUND\"") != NULL);
  CHECK(strstr(body, "\"request_id\":\"trace-1\"") != NULL);
  CHECK(xg2g_http_response_get_body(resp, NULL) == body);
  xg2g_http_response_destroy(resp);

  xg2g_http_handler_destroy(h);
  xg2g_http_config_destroy(cfg);
  world_close(&w);
}

static void test_auth_intents_and_sessions(void) {
  world w;
  xg2g_http_config *cfg = NULL;
  xg2g_http_handler *h = NULL;
  xg2g_http_response *resp;
  audit_log log;
  char id[XG2G_SESSION_ID_SIZE] = "";
  char path[128];
  const char *start = "{\"type\":\"stream.start\",\"serviceRef\":\"1:0:19:C:0:0:0:0:0:0:\"}";
  char stop[160];

  memset(&log, 0, sizeof log);
  world_open(&w);
  CHECK_STATUS(xg2g_http_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_tokens(cfg, TOKENS), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_audit_callback(cfg, record_audit, &log, destroy_audit), XG2G_OK);
  CHECK_STATUS(xg2g_http_handler_create(&h, w.engine, cfg), XG2G_OK);

  CHECK(status_of(h, "POST", "/api/v3/intents", NULL, start, "192.0.2.1") == 401);
  CHECK(status_of(h, "POST", "/api/v3/intents", "wrong-token-0123456789", start, "192.0.2.1") == 401);
  CHECK(status_of(h, "POST", "/api/v3/intents", READ_TOKEN, start, "192.0.2.1") == 403);
  CHECK(status_of(h, "POST", "/api/v3/intents", WRITE_TOKEN, "{\"type\":1}", "192.0.2.1") == 400);
  CHECK(strcmp(log.last_type, "auth_success") == 0);

  resp = send_request(h, "POST", "/api/v3/intents", WRITE_TOKEN, start, "192.0.2.1");
  CHECK(xg2g_http_response_get_status(resp) == 202);
  CHECK(json_string(xg2g_http_response_get_body(resp, NULL), "sessionId", id, sizeof id));
  CHECK(strstr(xg2g_http_response_get_body(resp, NULL), "\"replay\":false") != NULL);
  xg2g_http_response_destroy(resp);
  CHECK(strcmp(log.last_type, "session_start") == 0);

  /* The busy start is recorded as a FAILED session (R_LEASE_BUSY). */
  CHECK(status_of(h, "POST", "/api/v3/intents", WRITE_TOKEN, start, "192.0.2.1") == 409);

  snprintf(path, sizeof path, "/api/v3/sessions/%s", id);
  resp = send_request(h, "GET", path, READ_TOKEN, NULL, "192.0.2.1");
  CHECK(xg2g_http_response_get_status(resp) == 200);
  CHECK(strstr(xg2g_http_response_get_body(resp, NULL), "\"state\":\"STARTING\"") != NULL);
  xg2g_http_response_destroy(resp);
  CHECK(status_of(h, "GET", "/api/v3/sessions/unknown", READ_TOKEN, NULL, "192.0.2.1") == 404);
  CHECK(status_of(h, "GET", "/api/v3/sessions/bad.id", READ_TOKEN, NULL, "192.0.2.1") == 400);

  CHECK(status_of(h, "GET", "/api/v3/sessions", WRITE_TOKEN, NULL, "192.0.2.1") == 403);
  resp = send_request(h, "GET", "/api/v3/sessions?limit=10", ADMIN_TOKEN, NULL, "192.0.2.1");
  CHECK(xg2g_http_response_get_status(resp) == 200);
  CHECK(strstr(xg2g_http_response_get_body(resp, NULL),
               "\"pagination\":{\"offset\":0,\"limit\":10,\"total\":2,\"count\":2}") != NULL);
  xg2g_http_response_destroy(resp);
  CHECK(status_of(h, "GET", "/api/v3/sessions?limit=5000", ADMIN_TOKEN, NULL, "192.0.2.1") == 400);

  snprintf(stop, sizeof stop, "{\"type\":\"stream.stop\",\"sessionId\":\"%s\"}", id);
  resp = send_request(h, "POST", "/api/v3/intents", WRITE_TOKEN, stop, "192.0.2.1");
  CHECK(xg2g_http_response_get_status(resp) == 202);
  CHECK(strstr(xg2g_http_response_get_body(resp, NULL), id) != NULL);
  xg2g_http_response_destroy(resp);
  CHECK(status_of(h, "POST", "/api/v3/intents", WRITE_TOKEN,
                  "{\"type\":\"stream.stop\",\"sessionId\":\"nope\"}", "192.0.2.1") == 404);

  CHECK(log.lines > 10);
  CHECK(log.with_token == 0);
  xg2g_http_handler_destroy(h);
  CHECK(log.destroyed == 0); /* the config still holds the callback */
  xg2g_http_config_destroy(cfg);
  CHECK(log.destroyed == 1);
  world_close(&w);
}

static void test_rate_limit_on_the_manual_clock(void) {
  world w;
  xg2g_http_config *cfg = NULL;
  xg2g_http_handler *h = NULL;
  xg2g_http_response *resp;

  world_open(&w);
  CHECK_STATUS(xg2g_http_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_tokens(cfg, TOKENS), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_rate_limit(cfg, 1, 2), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_allow_list(cfg, "198.51.100.0/24"), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_trusted_proxies(cfg, "10.0.0.1"), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_rate_limit_max_clients(cfg, 100), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_audit_path(cfg, "/dev/null"), XG2G_OK);
  CHECK_STATUS(xg2g_http_handler_create(&h, w.engine, cfg), XG2G_OK);

  CHECK(status_of(h, "GET", "/api/v3/sessions", ADMIN_TOKEN, NULL, "192.0.2.5") == 200);
  CHECK(status_of(h, "GET", "/api/v3/sessions", NULL, NULL, "192.0.2.5") == 401);
  resp = send_request(h, "GET", "/api/v3/sessions", ADMIN_TOKEN, NULL, "192.0.2.5");
  CHECK(xg2g_http_response_get_status(resp) == 429);
  CHECK(strcmp(xg2g_http_response_get_header(resp, "Retry-After"), "1") == 0);
  CHECK(strcmp(xg2g_http_response_get_header(resp, "RateLimit-Policy"), "\"per-client\";q=2;w=2") == 0);
  CHECK(strcmp(xg2g_http_response_get_header(resp, "RateLimit"), "\"per-client\";r=0;t=2") == 0);
  CHECK(strstr(xg2g_http_response_get_body(resp, NULL), "RATE_LIMIT_EXCEEDED") != NULL);
  xg2g_http_response_destroy(resp);
  /* Health is never limited; allow-listed clients neither. */
  CHECK(status_of(h, "GET", "/healthz", NULL, NULL, "192.0.2.5") == 200);
  CHECK(status_of(h, "GET", "/api/v3/sessions", ADMIN_TOKEN, NULL, "198.51.100.1") == 200);
  CHECK(status_of(h, "GET", "/api/v3/sessions", ADMIN_TOKEN, NULL, "198.51.100.1") == 200);
  CHECK(status_of(h, "GET", "/api/v3/sessions", ADMIN_TOKEN, NULL, "198.51.100.1") == 200);
  /* The engine's manual clock refills the bucket. */
  CHECK_STATUS(xg2g_engine_advance_clock(w.engine, 1000), XG2G_OK);
  CHECK(status_of(h, "GET", "/api/v3/sessions", ADMIN_TOKEN, NULL, "192.0.2.5") == 200);
  CHECK(status_of(h, "GET", "/api/v3/sessions", ADMIN_TOKEN, NULL, "192.0.2.5") == 429);

  xg2g_http_handler_destroy(h);
  xg2g_http_config_destroy(cfg);
  world_close(&w);
}

static void test_readiness_metrics_and_reload(void) {
  world w;
  xg2g_http_config *cfg = NULL;
  xg2g_http_config *next = NULL;
  xg2g_http_handler *h = NULL;
  xg2g_http_response *resp;
  readiness ready = {1, 0};
  audit_log log;
  char target[128];

  memset(&log, 0, sizeof log);
  world_open(&w);
  CHECK_STATUS(xg2g_http_config_create(&cfg), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_tokens(cfg, TOKENS), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_readiness_check(cfg, check_receiver, &ready, destroy_readiness),
               XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_audit_callback(cfg, record_audit, &log, destroy_audit), XG2G_OK);
  CHECK_STATUS(xg2g_http_handler_create(&h, w.engine, cfg), XG2G_OK);
  xg2g_http_config_destroy(cfg); /* the handler keeps what it needs */
  CHECK(ready.destroyed == 0);
  CHECK(log.destroyed == 0);

  CHECK(status_of(h, "GET", "/readyz", NULL, NULL, "192.0.2.1") == 200);
  ready.ready = 0;
  resp = send_request(h, "GET", "/readyz", NULL, NULL, "192.0.2.1");
  CHECK(xg2g_http_response_get_status(resp) == 503);
  CHECK(strstr(xg2g_http_response_get_body(resp, NULL), "receiver does not answer") != NULL);
  CHECK(xg2g_http_response_get_header(resp, "Retry-After") != NULL);
  xg2g_http_response_destroy(resp);

  resp = send_request(h, "GET", "/metrics", NULL, NULL, "192.0.2.1");
  CHECK(xg2g_http_response_get_status(resp) == 200);
  CHECK(strstr(xg2g_http_response_get_body(resp, NULL),
               "# TYPE xg2g_v3_http_request_duration_seconds histogram") != NULL);
  CHECK(strncmp(xg2g_http_response_get_header(resp, "Content-Type"), "text/plain", 10) == 0);
  xg2g_http_response_destroy(resp);

  /* Reload: new tokens, query tokens on, /metrics behind a scope. */
  CHECK_STATUS(xg2g_http_config_create(&next), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_tokens(next, "rotated-token-0123456789=*"), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_allow_query_tokens(next, 1), XG2G_OK);
  CHECK_STATUS(xg2g_http_config_set_metrics_scope(next, "v3:read"), XG2G_OK);
  CHECK_STATUS(xg2g_http_handler_reload(h, next), XG2G_OK);
  xg2g_http_config_destroy(next);
  CHECK(log.reloads == 1);
  CHECK(status_of(h, "GET", "/api/v3/sessions", ADMIN_TOKEN, NULL, "192.0.2.1") == 401);
  CHECK(status_of(h, "GET", "/api/v3/sessions", "rotated-token-0123456789", NULL, "192.0.2.1") == 200);
  snprintf(target, sizeof target, "/api/v3/sessions?token=%s", "rotated-token-0123456789");
  CHECK(status_of(h, "GET", target, NULL, NULL, "192.0.2.1") == 200);
  CHECK(log.query_uses == 1);
  CHECK(status_of(h, "GET", "/metrics", NULL, NULL, "192.0.2.1") == 401);
  CHECK(status_of(h, "GET", "/metrics", "rotated-token-0123456789", NULL, "192.0.2.1") == 200);
  CHECK(log.with_token == 0);

  xg2g_http_handler_destroy(h);
  CHECK(ready.destroyed == 1);
  CHECK(log.destroyed == 1);
  world_close(&w);
}

int main(void) {
  test_request_init();
  test_config_setters();
  test_handler_arguments();
  test_response_accessors();
  test_auth_intents_and_sessions();
  test_rate_limit_on_the_manual_clock();
  test_readiness_metrics_and_reload();
  printf("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

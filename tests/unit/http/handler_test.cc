// The v3 HTTP handler, rule by rule (CONTRACT.md): routes, the order of the
// steps, headers, error JSON, auth, rate limiting, intents, sessions,
// listing, health and readiness, audit, reload, and that refused requests
// leave the store untouched.
#include "lib/http/handler.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/http/target.h"
#include "tests/unit/http/http_test_util.h"

namespace xg2g {
namespace {

using testing::Fixture;
using testing::Get;
using testing::Json;
using testing::kAdminToken;
using testing::kReadToken;
using testing::kStarToken;
using testing::kWriteToken;
using testing::Post;
using testing::Request;
using testing::StartBody;
using testing::StopBody;

constexpr std::string_view kService = "1:0:19:132F:3EF:1:C00000:0:0:0:";

std::string HeaderOf(const HttpResponse& r, std::string_view name) {
  const std::string* v = r.Header(name);
  return v == nullptr ? "<none>" : *v;
}

// Checks the error JSON: code, a message, the request id, and optionally
// details.field.
void CheckError(const HttpResponse& r, int status, std::string_view code,
                std::string_view field = {}) {
  INFO("body: ", r.body);
  CHECK(r.status == status);
  CHECK(HeaderOf(r, "Content-Type") == "application/json");
  Json json(r.body);
  CHECK(json.String("code") == code);
  CHECK_FALSE(json.String("message").empty());
  CHECK(json.String("request_id") == HeaderOf(r, "X-Request-ID"));
  if (!field.empty()) {
    std::string_view got;
    CHECK(json["details"]["field"].get(got) == simdjson::SUCCESS);
    CHECK(got == field);
  }
}

// ---------------------------------------------------------------------------
// Routes

TEST_CASE("unknown paths are 404 NOT_FOUND and wrong methods 405 with Allow") {
  Fixture f;
  struct Case {
    std::string method;
    std::string target;
    int status;
    std::string_view allow;
  };
  const Case cases[] = {
      {"GET", "/", 404, ""},
      {"GET", "/api/v3", 404, ""},
      {"GET", "/api/v3/sessions/", 404, ""},
      {"GET", "/api/v3/sessions/abc/def", 404, ""},
      {"GET", "/api/v3/intents/", 404, ""},
      {"GET", "/API/v3/sessions", 404, ""},
      {"GET", "/healthz/", 404, ""},
      {"GET", "/api/v3/intents", 405, "POST"},
      {"PUT", "/api/v3/intents", 405, "POST"},
      {"POST", "/api/v3/sessions", 405, "GET, HEAD"},
      {"DELETE", "/api/v3/sessions/abc", 405, "GET, HEAD"},
      {"POST", "/healthz", 405, "GET, HEAD"},
      {"get", "/healthz", 405, "GET, HEAD"},  // methods are case-sensitive
      {"BREW", "/metrics", 405, "GET, HEAD"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.method);
    CAPTURE(c.target);
    Request r = Get(c.target);
    r.method = c.method;
    const HttpResponse response = f.Do(r.Bearer(kStarToken));
    CheckError(response, c.status, c.status == 404 ? "NOT_FOUND" : "METHOD_NOT_ALLOWED");
    if (!c.allow.empty()) CHECK(HeaderOf(response, "Allow") == c.allow);
  }
}

TEST_CASE("HEAD answers like GET without a body") {
  Fixture f;
  Request r = Get("/healthz");
  r.method = "HEAD";
  const HttpResponse head = f.Do(r);
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(HeaderOf(head, "Content-Type") == "application/json");
}

TEST_CASE("a query string or fragment does not change the route") {
  Fixture f;
  CHECK(f.Do(Get("/healthz?x=1")).status == 200);
  CHECK(f.Do(Get("/healthz#top")).status == 200);
  CHECK(f.Do(Get("/api/v3/sessions?limit=5").Bearer(kAdminToken)).status == 200);
}

// ---------------------------------------------------------------------------
// Headers

TEST_CASE("every response carries the request id and the security headers") {
  Fixture::Options options;
  options.rate = 1;
  options.burst = 1;
  Fixture f(options);
  const std::vector<Request> requests = {
      Get("/healthz"),
      Get("/readyz"),
      Get("/metrics"),
      Get("/nowhere"),
      Post("/api/v3/sessions", ""),
      Get("/api/v3/sessions"),                          // 401
      Get("/api/v3/sessions"),                          // 429
      Get("/api/v3/sessions").Bearer(kReadToken).From("192.0.2.99"),  // 403
      Post("/api/v3/intents", "{}").Bearer(kWriteToken).From("192.0.2.98"),  // 400
  };
  for (const Request& r : requests) {
    CAPTURE(r.target);
    const HttpResponse response = f.Do(r);
    CHECK(IsValidRequestId(HeaderOf(response, "X-Request-ID")));
    CHECK(HeaderOf(response, "X-Content-Type-Options") == "nosniff");
    CHECK(HeaderOf(response, "X-Frame-Options") == "DENY");
    CHECK(HeaderOf(response, "Referrer-Policy") == "no-referrer");
    CHECK(HeaderOf(response, "Content-Security-Policy") ==
          "default-src 'none'; frame-ancestors 'none'");
    CHECK(HeaderOf(response, "Cache-Control") == "no-store");
  }
}

TEST_CASE("a valid X-Request-ID is echoed, anything else replaced by a fresh one") {
  Fixture f;
  struct Case {
    std::vector<std::string> values;
    bool echoed;
  };
  const std::string longest(128, 'a');
  const std::string too_long(129, 'a');
  const Case cases[] = {
      {{"abc-123_X.y"}, true},
      {{longest}, true},
      {{"a"}, true},
      {{""}, false},
      {{too_long}, false},
      {{"has space"}, false},
      {{"semi;colon"}, false},
      {{"gr\xc3\xbc\xc3\x9f"}, false},
      {{"one", "two"}, false},
  };
  std::vector<std::string> fresh;
  for (const Case& c : cases) {
    Request r = Get("/healthz");
    for (const std::string& v : c.values) r.Header("x-request-id", v);
    const HttpResponse response = f.Do(r);
    const std::string id = HeaderOf(response, "X-Request-ID");
    CAPTURE(id);
    if (c.echoed) {
      CHECK(id == c.values[0]);
    } else {
      CHECK(IsValidRequestId(id));
      for (const std::string& v : c.values) CHECK(id != v);
      fresh.push_back(id);
    }
  }
  for (size_t i = 1; i < fresh.size(); ++i) CHECK(fresh[i] != fresh[i - 1]);
}

TEST_CASE("an error names the request id it answered") {
  Fixture f;
  const HttpResponse r = f.Do(Get("/api/v3/sessions/x").Header("X-Request-ID", "trace-42"));
  CheckError(r, 401, "UNAUTHORIZED");
  CHECK(Json(r.body).String("request_id") == "trace-42");
}

// ---------------------------------------------------------------------------
// The order of the steps

TEST_CASE("an unauthenticated request with a bad or huge body gets 401") {
  Fixture f;
  CheckError(f.Do(Post("/api/v3/intents", "{not json")), 401, "UNAUTHORIZED");
  CheckError(f.Do(Post("/api/v3/intents", std::string(kMaxBodyBytes + 1, 'x'))), 401,
             "UNAUTHORIZED");
  // Authenticated, the huge body is 413 before its content is judged.
  CheckError(
      f.Do(Post("/api/v3/intents", std::string(kMaxBodyBytes + 1, 'x')).Bearer(kWriteToken)), 413,
      "PAYLOAD_TOO_LARGE");
  // Exactly the limit is not too large (it is invalid JSON: 400).
  CheckError(f.Do(Post("/api/v3/intents", std::string(kMaxBodyBytes, ' ')).Bearer(kWriteToken)),
             400, "INVALID_INPUT");
}

TEST_CASE("route errors come before the rate limit; 401s consume tokens") {
  Fixture::Options options;
  options.rate = 1;
  options.burst = 2;
  Fixture f(options);
  for (int i = 0; i < 5; ++i) CHECK(f.Do(Get("/nowhere")).status == 404);
  for (int i = 0; i < 5; ++i) CHECK(f.Do(Post("/api/v3/sessions", "")).status == 405);
  CHECK(f.Do(Get("/api/v3/sessions")).status == 401);
  CHECK(f.Do(Get("/api/v3/sessions").Bearer("wrong-wrong-wrong-wrong")).status == 401);
  // The bucket is empty now: even a valid admin token is refused before auth.
  CheckError(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken)), 429, "RATE_LIMIT_EXCEEDED");
}

TEST_CASE("health, readiness and metrics are never rate limited") {
  Fixture::Options options;
  options.rate = 1;
  options.burst = 1;
  Fixture f(options);
  CHECK(f.Do(Get("/api/v3/sessions")).status == 401);
  CHECK(f.Do(Get("/api/v3/sessions")).status == 429);
  for (int i = 0; i < 5; ++i) {
    for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
      const HttpResponse r = f.Do(Get(path));
      CHECK(r.status == 200);
      CHECK(r.Header("RateLimit") == nullptr);
    }
  }
}

// ---------------------------------------------------------------------------
// Auth

TEST_CASE("each route needs its scope: 401 without or with a bad token, 403 with too few") {
  Fixture f;
  const std::string id = f.Start(kService);
  struct Case {
    std::string_view route;
    std::string_view token;  // "" none
    int status;
  };
  const std::string session = "/api/v3/sessions/" + id;
  const Case cases[] = {
      {session, "", 401},
      {session, "not-a-configured-token", 401},
      {session, kReadToken, 200},
      {session, kWriteToken, 200},
      {session, kAdminToken, 200},
      {session, kStarToken, 200},
      {"/api/v3/sessions", "", 401},
      {"/api/v3/sessions", kReadToken, 403},
      {"/api/v3/sessions", kWriteToken, 403},
      {"/api/v3/sessions", kAdminToken, 200},
      {"/api/v3/sessions", kStarToken, 200},
      {"intents", "", 401},
      {"intents", kReadToken, 403},
      {"intents", kWriteToken, 202},
      {"intents", kAdminToken, 202},
      {"intents", kStarToken, 202},
  };
  for (const Case& c : cases) {
    CAPTURE(c.route);
    CAPTURE(c.token);
    Request r = c.route == "intents" ? Post("/api/v3/intents", StopBody(id)) : Get(std::string(c.route));
    if (!c.token.empty()) r.Bearer(c.token);
    const HttpResponse response = f.Do(r);
    CHECK(response.status == c.status);
    if (c.status == 401) {
      CheckError(response, 401, "UNAUTHORIZED");
      CHECK(HeaderOf(response, "WWW-Authenticate").rfind("Bearer realm=\"xg2g\"", 0) == 0);
    }
    if (c.status == 403) {
      CheckError(response, 403, "FORBIDDEN");
      CHECK(HeaderOf(response, "WWW-Authenticate").find("insufficient_scope") != std::string::npos);
    }
  }
}

TEST_CASE("a present but malformed Authorization header is a 401, not a fallthrough") {
  Fixture f;
  const std::string cookie = "xg2g_session=" + std::string(kAdminToken);
  for (const char* header : {"", "Bearer", "Bearer   ", "Basic YWRtaW46YWRtaW4=", "Token abc",
                             "Bearer two words"}) {
    CAPTURE(header);
    const HttpResponse r =
        f.Do(Get("/api/v3/sessions").Header("Authorization", header).Header("Cookie", cookie));
    CheckError(r, 401, "UNAUTHORIZED");
  }
  // The cookie alone is enough.
  CHECK(f.Do(Get("/api/v3/sessions").Header("Cookie", cookie)).status == 200);
  CHECK(f.Do(Get("/api/v3/sessions").Header("Cookie", "a=b; " + cookie + "; c=d")).status == 200);
  CHECK(f.Do(Get("/api/v3/sessions").Header("Cookie", "xg2g_session=")).status == 401);
  // The scheme is case-insensitive.
  CHECK(f.Do(Get("/api/v3/sessions").Header("authorization", "bearer " + std::string(kAdminToken)))
            .status == 200);
}

TEST_CASE("the query token works only when allowed, and every use is audited") {
  const std::string target = "/api/v3/sessions?token=" + std::string(kAdminToken);
  {
    Fixture f;
    CheckError(f.Do(Get(target)), 401, "UNAUTHORIZED");
    CHECK(f.audit->Count("deprecated_query_token") == 0);
  }
  Fixture::Options options;
  options.allow_query_tokens = true;
  Fixture f(options);
  CHECK(f.Do(Get(target)).status == 200);
  CHECK(f.Do(Get("/api/v3/sessions?token=wrong-wrong-wrong-wrong")).status == 401);
  CHECK(f.Do(Get("/api/v3/sessions?token=" + std::string(kAdminToken) + "&token=x")).status == 401);
  CHECK(f.audit->Count("deprecated_query_token") == 3);
  // A header wins over the query and is not a query use.
  CHECK(f.Do(Get("/api/v3/sessions?token=junk").Bearer(kAdminToken)).status == 200);
  CHECK(f.audit->Count("deprecated_query_token") == 3);
  // Percent-encoded tokens are decoded.
  CHECK(f.Do(Get("/api/v3/sessions?token=admin%2Dtoken-0123456789")).status == 200);
  const HttpResponse metrics = f.Do(Get("/metrics"));
  CHECK(metrics.body.find("xg2g_v3_query_token_uses_total 4\n") != std::string::npos);
}

TEST_CASE("a token never appears in audit events, error bodies or metrics") {
  Fixture::Options options;
  options.allow_query_tokens = true;
  options.rate = 1;
  options.burst = 3;
  Fixture f(options);
  const std::string secret = "this-is-a-secret-0123456789";
  std::vector<HttpResponse> responses;
  responses.push_back(f.Do(Get("/api/v3/sessions").Bearer(secret)));
  responses.push_back(f.Do(Get("/api/v3/sessions?token=" + secret)));
  responses.push_back(f.Do(Get("/api/v3/sessions").Header("Cookie", "xg2g_session=" + secret)));
  responses.push_back(f.Do(Get("/api/v3/sessions").Bearer(secret)));  // 429
  responses.push_back(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("192.0.2.50")));
  responses.push_back(f.Do(Post("/api/v3/intents", StartBody(kService)).Bearer(kWriteToken)
                               .From("192.0.2.51")));
  responses.push_back(f.Do(Get("/metrics")));
  for (const HttpResponse& r : responses) {
    CHECK(r.body.find(secret) == std::string::npos);
    CHECK(r.body.find(kAdminToken) == std::string::npos);
    CHECK(r.body.find(kWriteToken) == std::string::npos);
  }
  const std::vector<std::string> lines = f.audit->Lines();
  CHECK(lines.size() >= 8);
  for (const std::string& line : lines) {
    CAPTURE(line);
    CHECK(line.find(secret) == std::string::npos);
    CHECK(line.find(kAdminToken) == std::string::npos);
    CHECK(line.find(kWriteToken) == std::string::npos);
    CHECK(line.find("token-0123456789") == std::string::npos);
  }
}

// ---------------------------------------------------------------------------
// Rate limiting

TEST_CASE("rate-limited routes carry RateLimit headers; the 429 adds Retry-After") {
  Fixture::Options options;
  options.rate = 2;
  options.burst = 3;
  Fixture f(options);
  for (int i = 0; i < 3; ++i) {
    const HttpResponse r = f.Do(Get("/api/v3/sessions").Bearer(kAdminToken));
    CHECK(r.status == 200);
    CHECK(HeaderOf(r, "RateLimit-Policy") == "\"per-client\";q=3;w=2");
    CHECK(HeaderOf(r, "RateLimit") == "\"per-client\";r=" + std::to_string(2 - i) + ";t=" +
                                          (i < 2 ? "1" : "2"));
    CHECK(r.Header("Retry-After") == nullptr);
  }
  const HttpResponse refused = f.Do(Get("/api/v3/sessions").Bearer(kAdminToken));
  CheckError(refused, 429, "RATE_LIMIT_EXCEEDED");
  CHECK(HeaderOf(refused, "Retry-After") == "1");
  CHECK(HeaderOf(refused, "RateLimit-Policy") == "\"per-client\";q=3;w=2");
  CHECK(HeaderOf(refused, "RateLimit") == "\"per-client\";r=0;t=2");
  // Time refills the bucket.
  f.clock.AdvanceMs(500);
  CHECK(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken)).status == 200);
  CHECK(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken)).status == 429);
  CHECK(f.audit->Count("rate_limited") == 2);
}

TEST_CASE("allow-listed clients are never limited; single IPv6 addresses match exactly") {
  Fixture::Options options;
  options.rate = 1;
  options.burst = 1;
  options.allow_list = "198.51.100.0/24, 2001:db8::7";
  Fixture f(options);
  for (int i = 0; i < 5; ++i) {
    const HttpResponse r = f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("198.51.100.9"));
    CHECK(r.status == 200);
    CHECK(r.Header("RateLimit") == nullptr);
    CHECK(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("[2001:db8::7]:5000")).status ==
          200);
  }
  CHECK(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("2001:db8::8")).status == 200);
  CHECK(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("2001:db8::8")).status == 429);
}

TEST_CASE("behind a trusted proxy each forwarded client has its own bucket") {
  Fixture::Options options;
  options.rate = 1;
  options.burst = 1;
  options.trusted_proxies = "10.0.0.0/8";
  options.allow_list = "203.0.113.5";
  Fixture f(options);
  auto via_proxy = [&](std::string xff) {
    return f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("10.0.0.1")
                    .Header("X-Forwarded-For", std::move(xff)))
        .status;
  };
  CHECK(via_proxy("198.51.100.1") == 200);
  CHECK(via_proxy("198.51.100.1") == 429);
  CHECK(via_proxy("198.51.100.2") == 200);
  CHECK(via_proxy("6.6.6.6, 198.51.100.2") == 429);  // a forged prefix changes nothing
  CHECK(via_proxy("203.0.113.5") == 200);            // the allow-list uses the resolved client
  CHECK(via_proxy("203.0.113.5") == 200);
  // An untrusted peer cannot pick its bucket with the header.
  auto direct = [&](std::string xff) {
    return f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("192.0.2.77")
                    .Header("X-Forwarded-For", std::move(xff)))
        .status;
  };
  CHECK(direct("198.51.100.3") == 200);
  CHECK(direct("198.51.100.4") == 429);
  CHECK(direct("203.0.113.5") == 429);  // nor claim an allow-listed address
  // The audit event names the resolved client.
  bool found = false;
  for (const AuditEvent& e : f.audit->Events()) found |= e.client_ip == "198.51.100.2";
  CHECK(found);
}

TEST_CASE("many repeated headers are all read, in order") {
  Fixture::Options options;
  options.rate = 1;
  options.burst = 1;
  options.trusted_proxies = "10.0.0.0/8";
  Fixture f(options);
  Request r = Get("/api/v3/sessions").Bearer(kAdminToken).From("10.0.0.1");
  for (const char* hop : {"1.1.1.1", "198.51.100.9", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"}) {
    r.Header("X-Forwarded-For", hop);
  }
  CHECK(f.Do(r).status == 200);
  CHECK(f.Do(r).status == 429);
  bool found = false;
  for (const AuditEvent& e : f.audit->Events()) found |= e.client_ip == "198.51.100.9";
  CHECK(found);
  Request cookies = Get("/api/v3/sessions").From("192.0.2.123");
  for (int i = 0; i < 5; ++i) cookies.Header("Cookie", "c" + std::to_string(i) + "=v");
  cookies.Header("Cookie", "xg2g_session=" + std::string(kAdminToken));
  CHECK(f.Do(cookies).status == 200);
}

TEST_CASE("requests without a usable peer share one limited bucket") {
  Fixture::Options options;
  options.rate = 1;
  options.burst = 1;
  Fixture f(options);
  CHECK(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("")).status == 200);
  CHECK(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken).From("garbage")).status == 429);
}

// ---------------------------------------------------------------------------
// Intents

TEST_CASE("a start answers 202 with the session, its state and correlation id") {
  Fixture f;
  const HttpResponse r = f.Do(Post("/api/v3/intents",
                                   "{\"type\":\"stream.start\",\"serviceRef\":\"" +
                                       std::string(kService) +
                                       "\",\"profile\":\"hd\",\"correlationId\":\"corr-1\","
                                       "\"params\":{\"b\":\"2\",\"a\":\"1\"}}")
                              .Bearer(kWriteToken));
  INFO(r.body);
  REQUIRE(r.status == 202);
  CHECK(HeaderOf(r, "Content-Type") == "application/json");
  Json json(r.body);
  const std::string id = json.String("sessionId");
  CHECK(IsValidSessionId(id));
  CHECK(json.String("state") == "STARTING");
  CHECK(json.String("correlationId") == "corr-1");
  bool replay = true;
  CHECK(json["replay"].get(replay) == simdjson::SUCCESS);
  CHECK_FALSE(replay);
  auto record = f.store->GetSession(id);
  REQUIRE(record.ok());
  CHECK(record->profile.name == "hd");
  CHECK(record->principal == PrincipalIdOf(kWriteToken));
}

TEST_CASE("the Idempotency-Key replays; header and body keys must agree") {
  Fixture f;
  auto start = [&](std::string body, std::string header_key) {
    Request r = Post("/api/v3/intents", std::move(body)).Bearer(kWriteToken);
    if (!header_key.empty()) r.Header("Idempotency-Key", std::move(header_key));
    return f.Do(r);
  };
  const std::string body = StartBody(kService);
  const HttpResponse first = start(body, "key-1");
  REQUIRE(first.status == 202);
  const std::string id = Json(first.body).String("sessionId");

  const HttpResponse again = start(body, "key-1");
  REQUIRE(again.status == 202);
  Json replay(again.body);
  CHECK(replay.String("sessionId") == id);
  bool is_replay = false;
  CHECK(replay["replay"].get(is_replay) == simdjson::SUCCESS);
  CHECK(is_replay);

  // The body's key is the same key.
  const std::string keyed_body = "{\"type\":\"stream.start\",\"serviceRef\":\"" +
                                 std::string(kService) + "\",\"idempotencyKey\":\"key-1\"}";
  const HttpResponse by_body = start(keyed_body, "");
  CHECK(by_body.status == 202);
  CHECK(Json(by_body.body).String("sessionId") == id);
  CHECK(start(keyed_body, "key-1").status == 202);  // both, equal: fine
  CheckError(start(keyed_body, "key-2"), 400, "INVALID_INPUT", "idempotencyKey");
  CheckError(start(body, ""), 409, "LEASE_BUSY");  // no key: a new start, service busy

  // Same key, another request: 422.
  const HttpResponse reused = start(StartBody("1:0:1:OTHER:0:0:0:0:0:0:"), "key-1");
  CheckError(reused, 422, "IDEMPOTENCY_KEY_REUSED", "idempotencyKey");

  // Keys are scoped to the principal: another token's same key is a new start.
  Request other = Post("/api/v3/intents", StartBody("1:0:1:THIRD:0:0:0:0:0:0:"))
                      .Bearer(kAdminToken)
                      .Header("Idempotency-Key", "key-1");
  CHECK(f.Do(other).status == 202);

  Request twice = Post("/api/v3/intents", body).Bearer(kWriteToken);
  twice.Header("Idempotency-Key", "a").Header("Idempotency-Key", "b");
  CheckError(f.Do(twice), 400, "INVALID_INPUT", "Idempotency-Key");
  CheckError(start(body, std::string()), 409, "LEASE_BUSY");
}

TEST_CASE("busy answers are 409 LEASE_BUSY with Retry-After, naming the active session") {
  Fixture::Options options;
  options.tuner_slots = "0";
  Fixture f(options);
  const std::string id = f.Start(kService);
  const HttpResponse same = f.Do(Post("/api/v3/intents", StartBody(kService)).Bearer(kWriteToken));
  CheckError(same, 409, "LEASE_BUSY");
  CHECK(HeaderOf(same, "Retry-After") == "5");
  const Json named_doc(same.body);  // the view below points into it
  std::string_view named;
  CHECK(named_doc["details"]["sessionId"].get(named) == simdjson::SUCCESS);
  CHECK(named == id);

  const HttpResponse no_tuner =
      f.Do(Post("/api/v3/intents", StartBody("1:0:1:OTHER:0:0:0:0:0:0:")).Bearer(kWriteToken));
  CheckError(no_tuner, 409, "LEASE_BUSY");
  CHECK(HeaderOf(no_tuner, "Retry-After") == "5");
  CHECK_FALSE(Json(no_tuner.body).Has("details"));
}

TEST_CASE("a stop answers 202 with the state; unknown is 404, unsafe 400, repeated harmless") {
  Fixture f;
  const std::string id = f.Start(kService);
  const HttpResponse stop = f.Do(Post("/api/v3/intents", StopBody(id)).Bearer(kWriteToken));
  INFO(stop.body);
  REQUIRE(stop.status == 202);
  Json json(stop.body);
  CHECK(json.String("sessionId") == id);
  const std::string state = json.String("state");
  CHECK((state == "STOPPING" || state == "STOPPED"));
  const HttpResponse again = f.Do(Post("/api/v3/intents", StopBody(id)).Bearer(kWriteToken));
  CHECK(again.status == 202);

  CheckError(f.Do(Post("/api/v3/intents", StopBody("no-such-session")).Bearer(kWriteToken)), 404,
             "SESSION_NOT_FOUND");
  CheckError(f.Do(Post("/api/v3/intents", StopBody("../etc")).Bearer(kWriteToken)), 400,
             "INVALID_INPUT", "sessionId");
  CheckError(f.Do(Post("/api/v3/intents", StopBody(std::string(65, 'a'))).Bearer(kWriteToken)),
             400, "INVALID_INPUT", "sessionId");
}

TEST_CASE("intent bodies are read strictly") {
  Fixture f;
  struct Case {
    std::string_view name;
    std::string body;
    std::string_view field;  // "" when the answer names none
  };
  const std::string svc = std::string(kService);
  const std::vector<Case> cases = {
      {"empty", "", ""},
      {"not JSON", "{type:", ""},
      {"not an object", "[1,2]", ""},
      {"a string", "\"stream.start\"", ""},
      {"trailing content", StartBody(svc) + " {}", ""},
      {"truncated", "{\"type\":\"stream.start\",\"serviceRef\":\"x\"", ""},
      {"unknown field", "{\"type\":\"stream.start\",\"serviceRef\":\"x\",\"extra\":1}", "extra"},
      {"repeated field", "{\"type\":\"stream.start\",\"type\":\"stream.stop\"}", "type"},
      {"no type", "{\"serviceRef\":\"x\"}", "type"},
      {"unknown type", "{\"type\":\"stream.pause\",\"serviceRef\":\"x\"}", "type"},
      {"type not a string", "{\"type\":1}", "type"},
      {"no serviceRef", "{\"type\":\"stream.start\"}", "serviceRef"},
      {"empty serviceRef", "{\"type\":\"stream.start\",\"serviceRef\":\"\"}", "serviceRef"},
      {"serviceRef a number", "{\"type\":\"stream.start\",\"serviceRef\":5}", "serviceRef"},
      {"no sessionId", "{\"type\":\"stream.stop\"}", "sessionId"},
      {"params not an object", "{\"type\":\"stream.start\",\"serviceRef\":\"x\",\"params\":[]}",
       "params"},
      {"a param not a string",
       "{\"type\":\"stream.start\",\"serviceRef\":\"x\",\"params\":{\"a\":1}}", "params.a"},
      {"a repeated param",
       "{\"type\":\"stream.start\",\"serviceRef\":\"x\",\"params\":{\"a\":\"1\",\"a\":\"2\"}}",
       "params.a"},
      {"a bad profile (the engine's check)",
       "{\"type\":\"stream.start\",\"serviceRef\":\"x\",\"profile\":\"a b\"}", "profile"},
      {"a bad correlation id",
       "{\"type\":\"stream.start\",\"serviceRef\":\"x\",\"correlationId\":\"a/b\"}",
       "correlationId"},
      {"a control character in serviceRef",
       "{\"type\":\"stream.start\",\"serviceRef\":\"a\\u0001b\"}", "serviceRef"},
      {"invalid UTF-8", "{\"type\":\"stream.start\",\"serviceRef\":\"\xff\"}", ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CheckError(f.Do(Post("/api/v3/intents", c.body).Bearer(kWriteToken)), 400, "INVALID_INPUT",
               c.field);
  }
  // Nothing was created by any of them.
  auto page = f.store->ListSessions(0, 10);
  REQUIRE(page.ok());
  CHECK(page->total == 0);
  // null means absent; unknown stop fields are refused too, known ones ignored.
  CHECK(f.Do(Post("/api/v3/intents", "{\"type\":\"stream.start\",\"serviceRef\":\"" + svc +
                                         "\",\"profile\":null,\"params\":null}")
                 .Bearer(kWriteToken))
            .status == 202);
}

TEST_CASE("with cookie auth a POST must say application/json") {
  Fixture f;
  const std::string cookie = "xg2g_session=" + std::string(kWriteToken);
  Request form;
  form.method = "POST";
  form.target = "/api/v3/intents";
  form.body = StartBody(kService);
  form.Header("Content-Type", "text/plain").Header("Cookie", cookie);
  CheckError(f.Do(form), 400, "INVALID_INPUT", "Content-Type");
  Request json = Post("/api/v3/intents", StartBody(kService));
  json.headers.clear();
  json.Header("Content-Type", "application/json; charset=utf-8").Header("Cookie", cookie);
  CHECK(f.Do(json).status == 202);
  // A bearer client needs no Content-Type.
  Request bare;
  bare.method = "POST";
  bare.target = "/api/v3/intents";
  bare.body = StartBody("1:0:1:OTHER:0:0:0:0:0:0:");
  CHECK(f.Do(bare.Bearer(kWriteToken)).status == 202);
}

// ---------------------------------------------------------------------------
// Sessions

TEST_CASE("a session reads back with the client field names") {
  Fixture f;
  const std::string id = f.Start(kService);
  const HttpResponse r = f.Do(Get("/api/v3/sessions/" + id).Bearer(kReadToken));
  INFO(r.body);
  REQUIRE(r.status == 200);
  Json json(r.body);
  CHECK(json.String("sessionId") == id);
  CHECK(json.String("serviceRef") == kService);
  CHECK(json.String("state") == "STARTING");
  CHECK(json.String("pipelineState") == "IDLE");
  CHECK(json.String("reason") == "R_NONE");
  std::string_view name;
  CHECK(json["profile"]["name"].get(name) == simdjson::SUCCESS);
  CHECK(name == "default");
  std::string_view slot;
  CHECK(json["contextData"]["tuner_slot"].get(slot) == simdjson::SUCCESS);
  CHECK(slot == "0");
  for (const char* key : {"reasonDetail", "correlationId", "createdAtUnix", "updatedAtUnix",
                          "expiresAtUnix"}) {
    CAPTURE(key);
    CHECK(json.Has(key));
  }
  CHECK_FALSE(json.Has("principal"));  // internal: not part of the client view
  // Percent-encoded ids decode first.
  const std::string encoded = fmt::format("%{:02X}", static_cast<int>(id[0])) + id.substr(1);
  CHECK(f.Do(Get("/api/v3/sessions/" + encoded).Bearer(kReadToken)).status == 200);
}

TEST_CASE("unknown sessions are 404 SESSION_NOT_FOUND, unsafe ids 400") {
  Fixture f;
  CheckError(f.Do(Get("/api/v3/sessions/unknown-id").Bearer(kReadToken)), 404, "SESSION_NOT_FOUND");
  for (const char* id : {"a.b", "a%2Fb", "%zz", "a%00b", "has%20space",
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}) {
    CAPTURE(id);
    CheckError(f.Do(Get(std::string("/api/v3/sessions/") + id).Bearer(kReadToken)), 400,
               "INVALID_INPUT", "sessionId");
  }
}

TEST_CASE("listing pages with offset and limit, and refuses bad values") {
  Fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(f.Start("1:0:1:" + std::to_string(i) + ":0:0:0:0:0:0:"));
  std::sort(ids.begin(), ids.end());

  const HttpResponse all = f.Do(Get("/api/v3/sessions").Bearer(kAdminToken));
  REQUIRE(all.status == 200);
  Json json(all.body);
  simdjson::dom::array sessions;
  REQUIRE(json["sessions"].get(sessions) == simdjson::SUCCESS);
  CHECK(sessions.size() == 3);
  int64_t offset = -1, limit = -1, total = -1, count = -1;
  CHECK(json["pagination"]["offset"].get(offset) == simdjson::SUCCESS);
  CHECK(json["pagination"]["limit"].get(limit) == simdjson::SUCCESS);
  CHECK(json["pagination"]["total"].get(total) == simdjson::SUCCESS);
  CHECK(json["pagination"]["count"].get(count) == simdjson::SUCCESS);
  CHECK(offset == 0);
  CHECK(limit == 100);
  CHECK(total == 3);
  CHECK(count == 3);

  const HttpResponse page = f.Do(Get("/api/v3/sessions?offset=1&limit=1&_=cachebuster").Bearer(kAdminToken));
  REQUIRE(page.status == 200);
  Json second(page.body);
  simdjson::dom::array one;
  REQUIRE(second["sessions"].get(one) == simdjson::SUCCESS);
  REQUIRE(one.size() == 1);
  std::string_view got;
  CHECK((*one.begin())["sessionId"].get(got) == simdjson::SUCCESS);
  CHECK(got == ids[1]);
  CHECK(f.Do(Get("/api/v3/sessions?offset=99").Bearer(kAdminToken)).status == 200);
  CHECK(f.Do(Get("/api/v3/sessions?limit=1000").Bearer(kAdminToken)).status == 200);

  struct Bad {
    std::string query;
    std::string_view field;
  };
  const Bad bad[] = {
      {"limit=0", "limit"},         {"limit=1001", "limit"},   {"limit=-1", "limit"},
      {"limit=abc", "limit"},       {"limit=1.5", "limit"},    {"limit=", "limit"},
      {"limit=+5", "limit"},        {"limit=1&limit=2", "limit"},
      {"offset=-1", "offset"},      {"offset=x", "offset"},    {"offset=99999999999", "offset"},
      {"offset=18446744073709551616", "offset"},
      {"offset=%zz", "query"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.query);
    CheckError(f.Do(Get("/api/v3/sessions?" + b.query).Bearer(kAdminToken)), 400, "INVALID_INPUT",
               b.field);
  }
  CHECK(f.audit->Count("admin_action") == 4);  // the refused ones never got there
}

// ---------------------------------------------------------------------------
// Health and readiness

TEST_CASE("healthz is always 200; readyz follows the store and the receiver") {
  Fixture::Options options;
  options.fault_store = true;
  Fixture f(options);
  CHECK(f.Do(Get("/healthz")).status == 200);
  const HttpResponse ready = f.Do(Get("/readyz"));
  CHECK(ready.status == 200);
  CHECK(ready.body == "{\"status\":\"ready\",\"checks\":{\"store\":\"ok\",\"receiver\":\"ok\"}}");

  f.readiness = UnavailableError("receiver 192.0.2.1:80 does not answer");
  const HttpResponse receiver_down = f.Do(Get("/readyz"));
  CheckError(receiver_down, 503, "SERVICE_UNAVAILABLE");
  CHECK(HeaderOf(receiver_down, "Retry-After") == "5");
  const Json receiver_doc(receiver_down.body);  // the view below points into it
  std::string_view receiver;
  CHECK(receiver_doc["details"]["receiver"].get(receiver) == simdjson::SUCCESS);
  CHECK(receiver == "receiver 192.0.2.1:80 does not answer");

  f.readiness = absl::OkStatus();
  f.faults->FailAll();
  const HttpResponse store_down = f.Do(Get("/readyz"));
  CheckError(store_down, 503, "SERVICE_UNAVAILABLE");
  const Json store_doc(store_down.body);  // the view below points into it
  std::string_view store;
  CHECK(store_doc["details"]["store"].get(store) == simdjson::SUCCESS);
  CHECK(store == "XG2G_EUNAVAILABLE");
  CHECK(f.Do(Get("/healthz")).status == 200);
}

TEST_CASE("a store that is down answers 503 with Retry-After, and creates nothing") {
  Fixture::Options options;
  options.fault_store = true;
  Fixture f(options);
  const std::string id = f.Start(kService);
  f.faults->FailAll();
  const HttpResponse start =
      f.Do(Post("/api/v3/intents", StartBody("1:0:1:NEW:0:0:0:0:0:0:")).Bearer(kWriteToken));
  CheckError(start, 503, "SERVICE_UNAVAILABLE");
  CHECK(HeaderOf(start, "Retry-After") == "5");
  CheckError(f.Do(Post("/api/v3/intents", StopBody(id)).Bearer(kWriteToken)), 503,
             "SERVICE_UNAVAILABLE");
  CheckError(f.Do(Get("/api/v3/sessions/" + id).Bearer(kReadToken)), 503, "SERVICE_UNAVAILABLE");
  CheckError(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken)), 503, "SERVICE_UNAVAILABLE");
  f.faults->FailNone();
  auto page = f.store->ListSessions(0, 10);
  REQUIRE(page.ok());
  CHECK(page->total == 1);
}

// ---------------------------------------------------------------------------
// Rejected requests change nothing

TEST_CASE("requests refused with 401, 403, 429, 400, 404, 405 and 413 never write the store") {
  Fixture::Options options;
  options.fault_store = true;
  options.rate = 1;
  options.burst = 100;
  Fixture f(options);
  f.faults->FailWrites();  // any write would fail loudly, and is counted anyway
  f.faults->ResetCalls();
  const std::string big(kMaxBodyBytes + 1, '{');
  const std::string start = StartBody(kService);
  struct Case {
    std::string_view name;
    Request request;
    int status;
  };
  std::vector<Case> cases = {
      {"no credentials", Post("/api/v3/intents", start), 401},
      {"bad token", Post("/api/v3/intents", start).Bearer("nope-nope-nope-nope"), 401},
      {"malformed header", Post("/api/v3/intents", start).Header("Authorization", "Basic x"), 401},
      {"read scope", Post("/api/v3/intents", start).Bearer(kReadToken), 403},
      {"bad JSON", Post("/api/v3/intents", "{").Bearer(kWriteToken), 400},
      {"unknown field", Post("/api/v3/intents", "{\"type\":\"stream.start\",\"x\":1}").Bearer(kWriteToken), 400},
      {"unsafe stop id", Post("/api/v3/intents", StopBody("a/b")).Bearer(kWriteToken), 400},
      {"differing keys", Post("/api/v3/intents", "{\"type\":\"stream.start\",\"serviceRef\":\"s\",\"idempotencyKey\":\"a\"}")
                             .Bearer(kWriteToken).Header("Idempotency-Key", "b"), 400},
      {"too large", Post("/api/v3/intents", big).Bearer(kWriteToken), 413},
      {"no route", Post("/api/v3/nothing", start).Bearer(kWriteToken), 404},
      {"wrong method", Get("/api/v3/intents").Bearer(kWriteToken), 405},
      {"stop without scope", Post("/api/v3/intents", StopBody("abc")).Bearer(kReadToken), 403},
      {"list without admin", Get("/api/v3/sessions").Bearer(kWriteToken), 403},
  };
  for (Case& c : cases) {
    CAPTURE(c.name);
    CHECK(f.Do(c.request).status == c.status);
  }
  // Exhaust one client's bucket: its refused start is a 429.
  const std::string flood_peer = "198.51.100.200";
  for (int i = 0; i < 100; ++i) (void)f.Do(Get("/api/v3/sessions").From(flood_peer));
  CHECK(f.Do(Post("/api/v3/intents", start).Bearer(kWriteToken).From(flood_peer)).status == 429);

  CHECK(f.faults->FaultsInjected() == 0);
  for (const std::string& call : f.faults->Calls()) {
    CAPTURE(call);
    CHECK_FALSE(FaultInjectingStore::IsWriteMethod(call));
  }
  auto page = f.store->ListSessions(0, 10);
  REQUIRE(page.ok());
  CHECK(page->total == 0);
  auto leases = f.store->ListLeases();
  REQUIRE(leases.ok());
  CHECK(leases->empty());
  // Only refusals at the operation step may read (none of the above got
  // there): the store saw no call at all.
  CHECK(f.faults->CallsSinceReset() == 0);
}

// ---------------------------------------------------------------------------
// Audit

TEST_CASE("audit events name the time, client, route, outcome and principal") {
  Fixture f;
  f.clock.AdvanceMs(123);
  const std::string id = f.Start(kService);
  (void)f.Do(Get("/api/v3/sessions/" + id).Bearer(kReadToken).From("2001:db8::5"));
  (void)f.Do(Get("/api/v3/sessions").Bearer(kReadToken));
  (void)f.Do(Get("/api/v3/sessions"));
  (void)f.Do(Post("/api/v3/intents", StopBody(id)).Bearer(kWriteToken));
  const std::vector<AuditEvent> events = f.audit->Events();
  std::vector<std::string> types;
  for (const AuditEvent& e : events) types.push_back(e.type);
  const std::vector<std::string> want = {"auth_success", "session_start", "auth_success",
                                         "auth_failure", "auth_failure",  "auth_success",
                                         "session_stop"};
  CHECK(types == want);
  REQUIRE(events.size() == want.size());
  const AuditEvent& start = events[1];
  CHECK(start.route == "/api/v3/intents");
  CHECK(start.outcome == "ok");
  CHECK(start.client_ip == "192.0.2.10");
  CHECK(start.principal_digest == PrincipalIdOf(kWriteToken));
  CHECK(start.session_id == id);
  CHECK(start.time_unix_ms == 1'700'000'000'123);
  CHECK(events[2].client_ip == "2001:db8::5");
  CHECK(events[2].route == "/api/v3/sessions/{id}");
  CHECK(events[3].outcome == "denied");
  CHECK(events[3].principal_digest == PrincipalIdOf(kReadToken));  // 403: known, too weak
  CHECK(events[4].principal_digest.empty());                       // 401: nobody
  CHECK(events[6].outcome == "ok");
}

// ---------------------------------------------------------------------------
// Reload

TEST_CASE("a reload swaps tokens, limits and lists at once, and is audited") {
  Fixture f;
  CHECK(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken)).status == 200);
  std::vector<std::string> warnings;
  auto policy = ParseHttpPolicy("fresh-admin-0123456789=v3:admin", false, 1, 1, "", "", "v3:read",
                                &warnings);
  REQUIRE(policy.ok());
  CHECK(warnings.empty());
  f.handler->Reload(std::move(*policy));
  CheckError(f.Do(Get("/api/v3/sessions").Bearer(kAdminToken)), 401, "UNAUTHORIZED");
  CheckError(f.Do(Get("/api/v3/sessions").Bearer("fresh-admin-0123456789")), 429,
             "RATE_LIMIT_EXCEEDED");  // the new limit applies to the same client
  CHECK(f.Do(Get("/api/v3/sessions").Bearer("fresh-admin-0123456789").From("192.0.2.200"))
            .status == 200);
  CheckError(f.Do(Get("/metrics")), 401, "UNAUTHORIZED");  // the new metrics scope
  CHECK(f.Do(Get("/metrics").Bearer("fresh-admin-0123456789")).status == 200);
  REQUIRE(f.audit->Count("config_reload") == 1);
  for (const AuditEvent& e : f.audit->Events()) {
    if (e.type != "config_reload") continue;
    CHECK(e.outcome == "ok");
    CHECK(e.detail.find("tokens=1") != std::string::npos);
    CHECK(e.detail.find("metrics_scope=v3:read") != std::string::npos);
    CHECK(e.detail.find("fresh-admin") == std::string::npos);
  }
}

TEST_CASE("policy strings are checked part by part, naming the part and entry") {
  struct Case {
    std::string_view name;
    absl::StatusOr<HttpPolicy> result;
    std::string_view error;
  };
  const std::string tokens = testing::StandardTokens();
  const Case cases[] = {
      {"bad token", ParseHttpPolicy("x", false, 1, 1, "", "", ""), "tokens: entry 1 has no '='"},
      {"negative rate", ParseHttpPolicy(tokens, false, -1, 1, "", "", ""), "rate limit: the rate"},
      {"zero burst", ParseHttpPolicy(tokens, false, 1, 0, "", "", ""), "rate limit: the burst"},
      {"bad allow entry", ParseHttpPolicy(tokens, false, 1, 1, "10.0.0.0/8, 1.2.3", "", ""),
       "rate-limit allow-list: '1.2.3' is not an IP address or CIDR block"},
      {"bad proxy entry", ParseHttpPolicy(tokens, false, 1, 1, "", "2001:db8::/200", ""),
       "trusted proxies: '2001:db8::/200'"},
      {"bad metrics scope", ParseHttpPolicy(tokens, false, 1, 1, "", "", "v3:root"),
       "metrics scope: unknown scope \"v3:root\""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    REQUIRE_FALSE(c.result.ok());
    CHECK(FromAbsl(c.result.status().message()).find(c.error) != std::string_view::npos);
  }
  CHECK(ParseHttpPolicy(tokens, false, 0, 0, "", "", "").ok());  // rate 0: off, burst moot
}

}  // namespace
}  // namespace xg2g

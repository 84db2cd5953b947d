// Shared set-up of the HTTP handler tests: a memory store (optionally behind
// the fault-injecting wrapper), an engine without a thread on a fake clock, a
// handler with a recording audit sink, and a compact way to send requests.
#ifndef XG2G_TESTS_UNIT_HTTP_HTTP_TEST_UTIL_H_
#define XG2G_TESTS_UNIT_HTTP_HTTP_TEST_UTIL_H_

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <simdjson.h>

#include "lib/common/clock.h"
#include "lib/engine/engine.h"
#include "lib/http/handler.h"
#include "lib/observe/audit.h"
#include "lib/store/fault_store.h"
#include "lib/store/memory_store.h"

namespace xg2g::testing {

// Tokens of the standard test policy (all at least 16 characters).
inline constexpr std::string_view kReadToken = "read-token-0123456789";
inline constexpr std::string_view kWriteToken = "write-token-0123456789";
inline constexpr std::string_view kAdminToken = "admin-token-0123456789";
inline constexpr std::string_view kStarToken = "star-token-0123456789";
inline constexpr std::string_view kPeer = "192.0.2.10";

inline std::string StandardTokens() {
  return std::string(kReadToken) + "=v3:read;" + std::string(kWriteToken) + "=v3:write;" +
         std::string(kAdminToken) + "=v3:admin;" + std::string(kStarToken) + "=*";
}

class RecordingAudit final : public AuditSink {
 public:
  void Emit(const AuditEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(event);
    lines_.push_back(EncodeAuditEvent(event));
  }
  std::vector<AuditEvent> Events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  std::vector<std::string> Lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  size_t Count(std::string_view type) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& e : events_) n += e.type == type;
    return n;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    events_.clear();
    lines_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<AuditEvent> events_;
  std::vector<std::string> lines_;
};

struct Request {
  std::string method = "GET";
  std::string target = "/healthz";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer = std::string(kPeer);

  Request& Header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  Request& Bearer(std::string_view token) {
    return Header("Authorization", "Bearer " + std::string(token));
  }
  Request& From(std::string ip) {
    peer = std::move(ip);
    return *this;
  }
};

inline Request Get(std::string target) {
  Request r;
  r.target = std::move(target);
  return r;
}

inline Request Post(std::string target, std::string body) {
  Request r;
  r.method = "POST";
  r.target = std::move(target);
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", "application/json");
  return r;
}

inline std::string StartBody(std::string_view service_ref) {
  return "{\"type\":\"stream.start\",\"serviceRef\":\"" + std::string(service_ref) + "\"}";
}

inline std::string StopBody(std::string_view session_id) {
  return "{\"type\":\"stream.stop\",\"sessionId\":\"" + std::string(session_id) + "\"}";
}

struct Fixture {
  struct Options {
    std::string tokens = StandardTokens();
    double rate = 0;  // off unless a test turns it on
    int64_t burst = 100;
    size_t max_clients = 65536;
    std::string allow_list;
    std::string trusted_proxies;
    std::string metrics_scope;
    bool allow_query_tokens = false;
    bool fault_store = false;
    std::string tuner_slots = "0-3";
    // The breakers /metrics lists; null (the default here) keeps the tests
    // independent of the process-wide registry.
    const CircuitBreakerRegistry* breakers = nullptr;
    // The engine's host pipeline; null: none (sessions stay STARTING).
    std::shared_ptr<Pipeline> pipeline;
  };

  Fixture() : Fixture(Options{}) {}
  explicit Fixture(Options options) {
    store = std::make_unique<MemoryStore>(&clock);
    Store* engine_store = store.get();
    if (options.fault_store) {
      faults = std::make_unique<FaultInjectingStore>(store.get(), &clock);
      engine_store = faults.get();
    }
    EngineOptions engine_options;
    engine_options.background = false;
    engine_options.owner_id = "test-engine";
    auto slots = ParseSlotSpec(options.tuner_slots);
    REQUIRE(slots.ok());
    engine_options.tuner_slots = *slots;
    auto created = Engine::Create(engine_options, engine_store, &clock, options.pipeline, nullptr);
    REQUIRE(created.ok());
    engine = std::move(*created);
    auto policy = ParseHttpPolicy(options.tokens, options.allow_query_tokens, options.rate,
                                  options.burst, options.allow_list, options.trusted_proxies,
                                  options.metrics_scope);
    REQUIRE(policy.ok());
    policy->rate_limit.max_clients = options.max_clients;
    HttpHandlerOptions handler_options;
    handler_options.audit = audit;
    handler_options.readiness = [this]() -> absl::Status { return readiness; };
    handler_options.breakers = options.breakers;
    auto h = HttpHandler::Create(engine.get(), std::move(*policy), std::move(handler_options));
    REQUIRE(h.ok());
    handler = std::move(*h);
  }

  HttpResponse Do(const Request& r) {
    std::vector<HttpHeader> headers;
    for (const auto& [name, value] : r.headers) headers.push_back(HttpHeader{name, value});
    HttpRequest request;
    request.method = r.method;
    request.target = r.target;
    request.headers = headers;
    request.body = r.body;
    request.peer = r.peer;
    return handler->Handle(request);
  }

  // A started session's id (fails the test otherwise).
  std::string Start(std::string_view service_ref) {
    HttpResponse response = Do(Post("/api/v3/intents", StartBody(service_ref)).Bearer(kWriteToken));
    REQUIRE(response.status == 202);
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(response.body);
    return std::string(std::string_view(doc["sessionId"]));
  }

  FakeClock clock;
  std::unique_ptr<MemoryStore> store;
  std::unique_ptr<FaultInjectingStore> faults;
  std::unique_ptr<Engine> engine;
  std::shared_ptr<RecordingAudit> audit = std::make_shared<RecordingAudit>();
  absl::Status readiness = absl::OkStatus();
  std::unique_ptr<HttpHandler> handler;
};

// The JSON body, parsed (the parser must outlive the element).
struct Json {
  explicit Json(const std::string& text) : padded(text) { doc = parser.parse(padded); }
  simdjson::dom::element operator[](std::string_view key) const { return doc[key]; }
  std::string String(std::string_view key) const {
    std::string_view value;
    if (doc[key].get(value) != simdjson::SUCCESS) return "<missing>";
    return std::string(value);
  }
  bool Has(std::string_view key) const { return doc[key].error() == simdjson::SUCCESS; }

  simdjson::padded_string padded;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
};

}  // namespace xg2g::testing

#endif  // XG2G_TESTS_UNIT_HTTP_HTTP_TEST_UTIL_H_

// Handler calls per second for the v3 HTTP API, beside the store and engine
// operations those calls perform, in the same run; and the cost of each
// layer the handler adds (auth, rate limiting, metrics, audit) on its own.
//
//   GET /api/v3/sessions/{id}   vs  Store::GetSession
//   POST start + POST stop      vs  Engine::Start + Engine::Stop
//
// Every handler request is authorised (bearer token, v3:admin), rate limited
// (a bucket that never runs dry), metered and audited (a host callback that
// only counts bytes, as a cheap host would). The added microseconds per
// request are handler minus raw; the target is under 5 us for auth + rate
// limiting + metrics + audit.
//
// Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that other
// work on a shared machine does not inflate them.
//
// Usage: http_bench [iterations]   (default 100000; each measurement is the
// best of five rounds)
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "lib/auth/auth.h"
#include "lib/common/clock.h"
#include "lib/engine/engine.h"
#include "lib/http/handler.h"
#include "lib/observe/audit.h"
#include "lib/observe/metrics.h"
#include "lib/ratelimit/client_ip.h"
#include "lib/ratelimit/limiter.h"
#include "lib/store/memory_store.h"

namespace {

constexpr std::string_view kToken = "bench-admin-token-0123456789";
constexpr int kRounds = 5;

std::atomic<uint64_t> audit_bytes{0};

[[noreturn]] void Die(std::string_view what) {
  std::fprintf(stderr, "http_bench: %.*s\n", static_cast<int>(what.size()), what.data());
  std::exit(2);
}

// The calling thread's CPU time in nanoseconds: on a shared machine, time
// the thread spent waiting for a core does not count.
double ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// CPU nanoseconds per call of `fn`, best of kRounds rounds of `n` calls.
template <typename Fn>
double NsPerCall(long n, Fn&& fn) {
  double best = 1e300;
  for (int round = 0; round < kRounds; ++round) {
    const double start = ThreadCpuNs();
    for (long i = 0; i < n; ++i) fn(i);
    best = std::min(best, (ThreadCpuNs() - start) / static_cast<double>(n));
  }
  return best;
}

struct World {
  World() {
    store = std::make_unique<xg2g::MemoryStore>();
    xg2g::EngineOptions options;
    options.background = false;  // nothing runs behind the measurement's back
    options.owner_id = "bench";
    auto created = xg2g::Engine::Create(options, store.get(), nullptr, nullptr, nullptr);
    if (!created.ok()) Die("engine");
    engine = std::move(*created);
    auto policy = xg2g::ParseHttpPolicy(std::string(kToken) + "=v3:admin", false, 1e9, 1'000'000'000,
                                        "", "10.0.0.0/8", "");
    if (!policy.ok()) Die("policy");
    xg2g::HttpHandlerOptions handler_options;
    handler_options.audit = std::make_shared<xg2g::CallbackAuditSink>(
        [](std::string_view json) { audit_bytes.fetch_add(json.size(), std::memory_order_relaxed); });
    auto h = xg2g::HttpHandler::Create(engine.get(), std::move(*policy), std::move(handler_options));
    if (!h.ok()) Die("handler");
    handler = std::move(*h);
  }
  std::unique_ptr<xg2g::MemoryStore> store;
  std::unique_ptr<xg2g::Engine> engine;
  std::unique_ptr<xg2g::HttpHandler> handler;
};

xg2g::HttpResponse Send(xg2g::HttpHandler& handler, std::string_view method,
                        std::string_view target, std::string_view body) {
  static const std::string authorization = "Bearer " + std::string(kToken);
  const xg2g::HttpHeader headers[] = {
      {"Host", "gateway.example"},
      {"User-Agent", "bench/1.0"},
      {"Accept", "application/json"},
      {"Authorization", authorization},
      {"Content-Type", "application/json"},
  };
  xg2g::HttpRequest request;
  request.method = method;
  request.target = target;
  request.headers = headers;
  request.body = body;
  request.peer = "192.0.2.10";
  return handler.Handle(request);
}

void Row(std::string_view name, double ns) {
  std::printf("  %-54.*s %9.0f /s  %8.2f us\n", static_cast<int>(name.size()), name.data(),
              1e9 / ns, ns / 1000);
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::max(1000L, std::atol(argv[1])) : 100'000;
  std::printf("http_bench: %ld iterations per round, best of %d rounds, one thread, CPU time\n\n", n,
              kRounds);

  // --- GET /api/v3/sessions/{id} beside Store::GetSession -------------------
  World get_world;
  xg2g::StartRequest seed;
  seed.service_ref = "1:0:19:132F:3EF:1:C00000:0:0:0:";
  seed.principal = "bench";
  auto started = get_world.engine->Start(seed);
  if (!started.ok()) Die("seed start");
  const std::string id = started->session_id;
  const std::string target = "/api/v3/sessions/" + id;
  if (Send(*get_world.handler, "GET", target, "").status != 200) Die("GET is not 200");

  const double raw_get = NsPerCall(n, [&](long) {
    auto record = get_world.store->GetSession(id);
    if (!record.ok()) Die("raw get");
  });
  const double raw_get_json = NsPerCall(n, [&](long) {
    auto record = get_world.store->GetSession(id);
    if (!record.ok() || xg2g::SessionJson(*record).empty()) Die("raw get");
  });
  const double handler_get = NsPerCall(n, [&](long) {
    if (Send(*get_world.handler, "GET", target, "").status != 200) Die("GET");
  });

  // --- start + stop beside Engine::Start + Engine::Stop ----------------------
  World raw_world;
  const double raw_cycle = NsPerCall(n / 4, [&](long) {
    auto s = raw_world.engine->Start(seed);
    if (!s.ok()) Die("raw start");
    auto stopped = raw_world.engine->Stop(s->session_id);
    if (!stopped.ok() || stopped->state != xg2g::SessionState::kStopped) Die("raw stop");
  });
  World http_world;
  const std::string start_body =
      "{\"type\":\"stream.start\",\"serviceRef\":\"1:0:19:132F:3EF:1:C00000:0:0:0:\"}";
  const double handler_cycle = NsPerCall(n / 4, [&](long) {
    const xg2g::HttpResponse s = Send(*http_world.handler, "POST", "/api/v3/intents", start_body);
    if (s.status != 202) Die("start: " + s.body);
    // The id sits at a fixed place in {"sessionId":"<32 hex>",...}.
    const std::string stop = "{\"type\":\"stream.stop\",\"sessionId\":\"" + s.body.substr(14, 32) + "\"}";
    const xg2g::HttpResponse t = Send(*http_world.handler, "POST", "/api/v3/intents", stop);
    if (t.status != 202) Die("stop: " + t.body);
  });

  // --- the four layers on their own -----------------------------------------
  auto tokens = xg2g::TokenSet::Parse(std::string(kToken) + "=v3:admin");
  if (!tokens.ok()) Die("tokens");
  const std::string authorization = "Bearer " + std::string(kToken);
  const double auth = NsPerCall(n, [&](long) {
    const std::string_view values[] = {authorization};
    const xg2g::Credentials c = xg2g::ExtractCredentials(values, {}, {}, false);
    if (!tokens->Authenticate(c.token)) Die("auth");
  });
  xg2g::RateLimiter limiter;
  const xg2g::IpList trusted = *xg2g::IpList::Parse("10.0.0.0/8", "trusted");
  const xg2g::IpList allow;
  const xg2g::RateLimitParams params{1e9, 1'000'000'000, 65536};
  const double ratelimit = NsPerCall(n, [&](long i) {
    auto ip = xg2g::ResolveClientIp("192.0.2.10", {}, trusted);
    if (!ip || allow.Contains(*ip)) Die("client ip");
    if (!limiter.Take(*ip, i, params).allowed) Die("limited");
    (void)fmt::format("\"per-client\";q={};w={}", 100, 2);
    (void)fmt::format("\"per-client\";r={};t={}", 99, 1);
  });
  xg2g::MetricsRegistry registry;
  auto* histogram = registry.AddHistogramFamily("bench_seconds", "h", {"method", "route", "status"},
                                                xg2g::LatencyBuckets());
  auto* gauge = registry.AddGauge("bench_in_flight", "g");
  const double metrics = NsPerCall(n, [&](long) {
    gauge->Add(1);
    histogram->With({"GET", "/api/v3/sessions/{id}", "200"})->Observe(0.00001);
    gauge->Add(-1);
  });
  xg2g::CallbackAuditSink sink(
      [](std::string_view json) { audit_bytes.fetch_add(json.size(), std::memory_order_relaxed); });
  const double audit = NsPerCall(n, [&](long) {
    xg2g::AuditEvent event;
    event.type = "auth_success";
    event.time_unix_ms = 1'700'000'000'000;
    event.client_ip = "192.0.2.10";
    event.route = "/api/v3/sessions/{id}";
    event.outcome = "ok";
    event.principal_digest = "0123456789abcdef";
    event.detail = "bearer";
    sink.Emit(event);
  });

  std::printf("GET /api/v3/sessions/{id} (authorised, rate limited, metered, audited)\n");
  Row("Store::GetSession (raw)", raw_get);
  Row("Store::GetSession + session JSON", raw_get_json);
  Row("handler GET", handler_get);
  std::printf("  added per request: %.2f us over the raw read, %.2f us over read + JSON\n\n",
              (handler_get - raw_get) / 1000, (handler_get - raw_get_json) / 1000);

  std::printf("start + stop pair (two POST /api/v3/intents)\n");
  Row("Engine::Start + Engine::Stop (raw)", raw_cycle);
  Row("handler POST start + POST stop", handler_cycle);
  std::printf("  added per pair: %.2f us (%.2f us per request)\n\n",
              (handler_cycle - raw_cycle) / 1000, (handler_cycle - raw_cycle) / 2000);

  std::printf("the layers on their own, per request\n");
  Row("auth (bearer extraction, SHA-256, constant-time compare)", auth);
  Row("rate limit (client IP, bucket, two header values)", ratelimit);
  Row("metrics (in-flight gauge, labelled histogram)", metrics);
  Row("audit (one event encoded and handed to a callback)", audit);
  const double layers = auth + ratelimit + metrics + audit;
  std::printf("  auth + rate limit + metrics + audit: %.2f us (target < 5 us): %s\n", layers / 1000,
              layers < 5000 ? "met" : "MISSED");
  std::printf("  (a GET emits one audit event, a start or stop two)\n");
  std::printf("\n(%llu audit bytes handed to the callback)\n",
              static_cast<unsigned long long>(audit_bytes.load()));
  return 0;
}

// The receiver client, tune readiness, readiness waits, the circuit breaker
// and the receiver pipeline against tests/integration/fake_receiver.py, a
// real HTTP server on 127.0.0.1 that this test starts and stops by pid.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/engine/engine.h"
#include "lib/store/store.h"
#include "lib/upstream/cancel.h"
#include "lib/upstream/circuit_breaker.h"
#include "lib/upstream/readiness.h"
#include "lib/upstream/receiver_client.h"
#include "lib/upstream/receiver_pipeline.h"
#include "lib/upstream/tune.h"
#include "tests/integration/fake_receiver_process.h"

namespace xg2g {
namespace {

using testing::FakeReceiverProcess;

constexpr const char* kRef = "1:0:19:283D:3FB:1:C00000:0:0:0:";
constexpr const char* kOther = "1:0:19:2B66:3F3:1:C00000:0:0:0:";

bool Has(const absl::Status& s, std::string_view text) {
  return FromAbsl(s.message()).find(text) != std::string_view::npos;
}

std::unique_ptr<ReceiverClient> Client(const FakeReceiverProcess& fake, Clock* clock = nullptr,
                                       CircuitBreakerRegistry* registry = nullptr,
                                       ReceiverOptions options = {}) {
  options.base_url = fake.url();
  if (options.request_timeout_ms == ReceiverOptions{}.request_timeout_ms) {
    options.request_timeout_ms = 3'000;
  }
  auto client = ReceiverClient::Create(options, clock, BreakerLogFn{}, registry);
  REQUIRE_MESSAGE(client.ok(), std::string(FromAbsl(client.status().message())));
  return std::move(*client);
}

TuneOptions FastTune(int max_bad = 4) {
  TuneOptions o;
  o.poll_interval_ms = 30;
  o.poll_jitter_ms = 5;
  o.max_bad_polls = max_bad;
  return o;
}

WaitOptions FastWait(int64_t timeout_ms) {
  WaitOptions o;
  o.timeout_ms = timeout_ms;
  o.initial_backoff_ms = 20;
  o.max_backoff_ms = 100;
  o.attempt_timeout_ms = 1'000;
  return o;
}

TEST_CASE("the client zaps and reads the current service, the box and the signal") {
  FakeReceiverProcess fake;
  auto client = Client(fake);
  REQUIRE(client->Zap(kRef).ok());
  auto current = client->GetCurrent();
  REQUIRE(current.ok());
  CHECK(current->service_ref == kRef);
  CHECK(current->name == "Channel 283D");
  auto signal = client->GetSignal();
  REQUIRE(signal.ok());
  CHECK(signal->locked);
  CHECK(signal->snr_percent.value() == doctest::Approx(92));
  CHECK(signal->snr_db.value() == doctest::Approx(14.29));
  auto about = client->About();
  REQUIRE(about.ok());
  CHECK(about->model == "Receiver");
  CHECK(about->service.service_ref == kRef);
  CHECK(fake.Stat("zaps") == 1);
}

TEST_CASE("the client reuses one connection for sequential calls") {
  FakeReceiverProcess fake;
  auto client = Client(fake);
  for (int i = 0; i < 20; ++i) REQUIRE(client->GetSignal().ok());
  CHECK(client->Stats().requests == 20);
  CHECK(client->Stats().connections_opened == 1);
  CHECK(fake.Stat("api_requests") == 20);
}

TEST_CASE("basic auth: without credentials EINVAL says so, with them the call passes") {
  FakeReceiverProcess fake({"--user", "root", "--password", "s3cret"});
  auto anonymous = Client(fake);
  auto refused = anonymous->GetCurrent();
  CHECK(CodeOf(refused.status()) == ErrorCode::kInvalid);
  CHECK(Has(refused.status(), "HTTP 401"));
  CHECK(Has(refused.status(), "credentials"));
  CHECK(anonymous->breaker().state() == BreakerState::kClosed);  // the receiver is up

  ReceiverOptions options;
  options.username = "root";
  options.password = "s3cret";
  auto authorised = Client(fake, nullptr, nullptr, options);
  CHECK(authorised->GetCurrent().ok());
}

TEST_CASE("a per-call timeout ends a call to a slow receiver with ETIMEOUT") {
  FakeReceiverProcess fake({"--slow-ms", "2000"});
  ReceiverOptions options;
  options.request_timeout_ms = 150;
  auto client = Client(fake, nullptr, nullptr, options);
  const auto start = std::chrono::steady_clock::now();
  auto r = client->GetSignal();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  CHECK(CodeOf(r.status()) == ErrorCode::kTimeout);
  CHECK(ms < 1500);
  // A call may ask for less than the client's timeout, never for more.
  ReceiverCallOptions call;
  call.timeout_ms = 60'000;
  CHECK(CodeOf(client->GetSignal(call).status()) == ErrorCode::kTimeout);
}

TEST_CASE("error answers map to typed errors: 5xx EUNAVAILABLE, garbage ECORRUPT, refusal EINVAL") {
  FakeReceiverProcess fake;
  auto client = Client(fake);
  fake.Admin("/admin/set?error=500");
  CHECK(CodeOf(client->GetCurrent().status()) == ErrorCode::kUnavailable);
  fake.Admin("/admin/set?error=0&garbage=1");
  auto garbage = client->GetCurrent();
  CHECK(CodeOf(garbage.status()) == ErrorCode::kCorrupt);
  CHECK(Has(garbage.status(), "/api/getcurrent"));
  fake.Admin("/admin/set?garbage=0&refuse_zap=1");
  absl::Status refused = client->Zap(kRef);
  CHECK(CodeOf(refused) == ErrorCode::kInvalid);
  CHECK(Has(refused, "is not available"));
  CHECK(client->Stats().failures == 2);
}

TEST_CASE("an unreachable receiver is EUNAVAILABLE naming the URL without the password") {
  FakeReceiverProcess fake;
  const std::string url = fake.url();
  fake.Stop();
  ReceiverOptions options;
  options.base_url = "http://admin:hunter2@" + url.substr(std::string("http://").size());
  auto client = ReceiverClient::Create(options, nullptr, BreakerLogFn{}, nullptr);
  REQUIRE(client.ok());
  auto r = (*client)->GetCurrent();
  CHECK(CodeOf(r.status()) == ErrorCode::kUnavailable);
  CHECK(Has(r.status(), "/api/getcurrent"));
  CHECK_FALSE(Has(r.status(), "hunter2"));
}

TEST_CASE("tune readiness against the receiver: ready, wrong service, no lock, slow lock, timeout") {
  FakeReceiverProcess fake;
  auto client = Client(fake);
  TuneWaiter waiter(client.get(), FastTune(4));

  SUBCASE("ready after two polls") { CHECK(waiter.Tune(0, kRef, 5'000).ok()); }
  SUBCASE("the zap takes a while and the lock longer: still ready before the deadline") {
    fake.Admin("/admin/set?zap_delay_ms=100&lock_delay_ms=250");
    CHECK(waiter.Tune(0, kRef, 5'000).ok());
  }
  SUBCASE("another service stays on: R_TUNE_FAILED") {
    fake.Admin(std::string("/admin/set?wrong_service=") + kOther);
    absl::Status s = waiter.Tune(0, kRef, 5'000);
    CHECK(CodeOf(s) == ErrorCode::kConflict);
    CHECK(TuneFailureReason(s) == Reason::kTuneFailed);
    CHECK(Has(s, kOther));
  }
  SUBCASE("no lock: R_TUNE_FAILED") {
    fake.Admin("/admin/set?no_lock=1");
    absl::Status s = waiter.Tune(0, kRef, 5'000);
    CHECK(CodeOf(s) == ErrorCode::kUnavailable);
    CHECK(TuneFailureReason(s) == Reason::kTuneFailed);
    CHECK(Has(s, "no signal lock"));
  }
  SUBCASE("the lock comes too late: R_TUNE_TIMEOUT") {
    fake.Admin("/admin/set?lock_delay_ms=60000");
    TuneWaiter patient(client.get(), FastTune(0));
    absl::Status s = patient.Tune(0, kRef, 300);
    CHECK(CodeOf(s) == ErrorCode::kTimeout);
    CHECK(TuneFailureReason(s) == Reason::kTuneTimeout);
  }
  SUBCASE("an explicit lock flag is honoured") {
    fake.Admin("/admin/set?lock_field=1");
    CHECK(waiter.Tune(0, kRef, 5'000).ok());
  }
}

TEST_CASE("HTTP readiness: at once, after a delay, never, cancelled") {
  SUBCASE("ready at once") {
    FakeReceiverProcess fake;
    CHECK(WaitForHttpReady(fake.url() + "/api/about", FastWait(5'000)).ok());
    CHECK(WaitForTcpReady("127.0.0.1", fake.port(), FastWait(5'000)).ok());
  }
  SUBCASE("ready after the listener starts late") {
    FakeReceiverProcess fake({"--listen-delay-ms", "400"});
    const auto start = std::chrono::steady_clock::now();
    CHECK(WaitForHttpReady(fake.url() + "/api/about", FastWait(10'000)).ok());
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));
  }
  SUBCASE("never ready: the timeout names the last error") {
    FakeReceiverProcess fake({"--error", "503"});
    absl::Status s = WaitForHttpReady(fake.url() + "/api/about", FastWait(300));
    CHECK(CodeOf(s) == ErrorCode::kTimeout);
    CHECK(Has(s, "HTTP status 503"));
  }
  SUBCASE("ready once the errors stop") {
    FakeReceiverProcess fake({"--error", "503"});
    std::thread heal([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      fake.Admin("/admin/set?error=0");
    });
    absl::Status s = WaitForHttpReady(fake.url() + "/api/about", FastWait(10'000));
    heal.join();
    CHECK(s.ok());
  }
  SUBCASE("cancelled while waiting") {
    FakeReceiverProcess fake({"--error", "503"});
    CancelToken cancel;
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      cancel.Cancel();
    });
    absl::Status s = WaitForHttpReady(fake.url() + "/api/about", FastWait(30'000), &cancel);
    canceller.join();
    CHECK(CodeOf(s) == ErrorCode::kCancelled);
    CHECK(Has(s, "HTTP status 503"));
  }
}

TEST_CASE("the breaker opens on a failing receiver, fails fast, and closes again after a probe") {
  FakeReceiverProcess fake;
  FakeClock clock;
  CircuitBreakerRegistry registry;
  ReceiverOptions options;
  options.breaker.failure_threshold = 3;
  options.breaker.open_timeout_ms = 5'000;
  auto client = Client(fake, &clock, &registry, options);

  fake.Admin("/admin/set?error=502");
  for (int i = 0; i < 3; ++i) CHECK(CodeOf(client->GetSignal().status()) == ErrorCode::kUnavailable);
  CHECK(client->breaker().state() == BreakerState::kOpen);
  const int64_t sent = fake.Stat("api_requests");
  auto fast = client->GetSignal();
  CHECK(CodeOf(fast.status()) == ErrorCode::kCircuitOpen);
  CHECK(RetryAfterMs(fast.status()).value() == 5'000);
  CHECK(fake.Stat("api_requests") == sent);  // the receiver was not called

  std::string metrics;
  AppendCircuitBreakerMetrics(metrics, registry.Snapshots());
  CHECK(metrics.find("xg2g_circuit_breaker_state{name=\"receiver\"} 2") != std::string::npos);
  CHECK(metrics.find("{name=\"receiver\",reason=\"consecutive_failures\"} 1") != std::string::npos);

  // Still failing at the first probe: open again.
  clock.AdvanceMs(5'000);
  CHECK(CodeOf(client->GetSignal().status()) == ErrorCode::kUnavailable);
  CHECK(client->breaker().state() == BreakerState::kOpen);

  // The receiver recovers; the next probe closes the breaker.
  fake.Admin("/admin/set?error=0");
  clock.AdvanceMs(5'000);
  CHECK(client->breaker().state() == BreakerState::kHalfOpen);
  CHECK(client->GetSignal().ok());
  CHECK(client->breaker().state() == BreakerState::kClosed);
  metrics.clear();
  AppendCircuitBreakerMetrics(metrics, registry.Snapshots());
  CHECK(metrics.find("xg2g_circuit_breaker_state{name=\"receiver\"} 0") != std::string::npos);
  CHECK(metrics.find("reason=\"half_open_probe_failed\"} 1") != std::string::npos);
}

TEST_CASE("under load from many threads the breaker opens on failing and slow answers, fails fast, and closes") {
  FakeReceiverProcess fake;
  FakeClock clock;  // the breaker's clock; call timeouts run on real time
  ReceiverOptions options;
  options.breaker.failure_threshold = 5;
  options.breaker.open_timeout_ms = 10'000;
  options.request_timeout_ms = 2'000;  // far above a healthy answer, even on a busy machine
  auto client = Client(fake, &clock, nullptr, options);
  constexpr int kThreads = 8;

  // `calls` GetSignal calls on each of kThreads threads at once, counted by
  // outcome.
  struct Outcomes {
    std::atomic<int> ok{0}, unavailable{0}, timeout{0}, open{0}, other{0};
  };
  auto load = [&](int calls) {
    auto outcomes = std::make_unique<Outcomes>();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < calls; ++i) {
          const absl::Status status = client->GetSignal().status();
          switch (CodeOf(status)) {
            case ErrorCode::kOk: outcomes->ok++; break;
            case ErrorCode::kUnavailable: outcomes->unavailable++; break;
            case ErrorCode::kTimeout: outcomes->timeout++; break;
            case ErrorCode::kCircuitOpen: outcomes->open++; break;
            default: outcomes->other++; break;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    MESSAGE("ok ", outcomes->ok.load(), " unavailable ", outcomes->unavailable.load(), " timeout ",
            outcomes->timeout.load(), " open ", outcomes->open.load(), " other ",
            outcomes->other.load());
    return outcomes;
  };
  auto sent = [&] { return fake.Stat("api_requests"); };

  // Healthy: every call answered.
  auto healthy = load(10);
  CHECK(healthy->ok.load() == kThreads * 10);
  CHECK(client->breaker().state() == BreakerState::kClosed);

  // Failing: the breaker opens after the threshold; only the calls already
  // under way when it opened still reach the receiver, the rest fail fast.
  int64_t before = sent();
  auto failing = [&] {
    fake.Admin("/admin/set?error=502");
    return load(20);
  }();
  const int64_t reached = sent() - before;
  CHECK(client->breaker().state() == BreakerState::kOpen);
  CHECK(failing->other.load() == 0);
  CHECK(failing->ok.load() == 0);
  CHECK(failing->unavailable.load() == reached);
  CHECK(reached >= options.breaker.failure_threshold);
  CHECK(reached < options.breaker.failure_threshold + kThreads);
  CHECK(failing->open.load() == kThreads * 20 - reached);

  // Open: nothing reaches the receiver, whatever it would answer now.
  fake.Admin("/admin/set?error=0&slow_ms=4000");
  before = sent();
  auto open = load(10);
  CHECK(open->open.load() == kThreads * 10);
  CHECK(sent() == before);

  // Half-open against a slow receiver: one probe goes out and times out, the
  // breaker opens again, every other call fails fast.
  clock.AdvanceMs(options.breaker.open_timeout_ms);
  before = sent();
  auto slow = load(10);
  CHECK(sent() - before == 1);
  CHECK(slow->timeout.load() == 1);
  CHECK(slow->open.load() == kThreads * 10 - 1);
  CHECK(client->breaker().state() == BreakerState::kOpen);

  // Recovered: the next probe succeeds and closes it; then every call passes.
  fake.Admin("/admin/set?slow_ms=0");
  clock.AdvanceMs(options.breaker.open_timeout_ms);
  auto probe = load(10);
  CHECK(probe->ok.load() >= 1);
  CHECK(probe->ok.load() + probe->open.load() == kThreads * 10);
  CHECK(client->breaker().state() == BreakerState::kClosed);
  auto closed = load(10);
  CHECK(closed->ok.load() == kThreads * 10);
}

// An engine on a manual clock with the receiver pipeline over the real client.
struct EngineFixture {
  explicit EngineFixture(const FakeReceiverProcess& fake, int max_bad = 3)
      : clock(1'800'000'000'000) {
    auto opened = OpenStore("memory:", &clock);
    REQUIRE(opened.ok());
    store = std::move(*opened);
    ReceiverOptions options;
    options.base_url = fake.url();
    options.breaker.failure_threshold = 2;
    options.breaker.open_timeout_ms = 60'000;
    auto created = ReceiverClient::Create(options, &clock, BreakerLogFn{}, &registry);
    REQUIRE(created.ok());
    client = std::shared_ptr<ReceiverClient>(std::move(*created));
    ReceiverPipelineOptions po;
    po.tune.poll_interval_ms = 100;
    po.tune.poll_jitter_ms = 0;
    po.tune.max_bad_polls = max_bad;
    pipeline = std::make_shared<ReceiverPipeline>(client, nullptr, po, &clock);
    EngineOptions eo;
    eo.tuner_slots = {0};
    eo.owner_id = "engine-int";
    eo.background = false;
    auto engine_or = Engine::Create(eo, store.get(), &clock, pipeline, nullptr);
    REQUIRE(engine_or.ok());
    engine = std::move(*engine_or);
    pipeline->Attach(engine.get());
  }
  std::string Start(const std::string& ref) {
    StartRequest r;
    r.service_ref = ref;
    auto started = engine->Start(r);
    REQUIRE(started.ok());
    engine->Poll();
    return started->session_id;
  }
  void Advance(int64_t ms) {
    clock.AdvanceMs(ms);
    engine->Poll();
  }
  SessionRecord Get(const std::string& id) {
    auto record = store->GetSession(id);
    REQUIRE(record.ok());
    return *record;
  }
  FakeClock clock;
  CircuitBreakerRegistry registry;
  std::unique_ptr<Store> store;
  std::shared_ptr<ReceiverClient> client;
  std::shared_ptr<ReceiverPipeline> pipeline;
  std::unique_ptr<Engine> engine;
};

TEST_CASE("the receiver pipeline takes a session to READY through the receiver, and stops it") {
  FakeReceiverProcess fake;
  EngineFixture f(fake);
  const std::string id = f.Start(kRef);
  CHECK(fake.Stat("zaps") == 1);
  f.Advance(100);
  f.Advance(100);
  CHECK(f.Get(id).state == SessionState::kReady);
  REQUIRE(f.engine->Stop(id).ok());
  f.engine->Poll();
  CHECK(f.Get(id).state == SessionState::kStopped);
}

TEST_CASE("the receiver pipeline fails a session whose receiver shows another service") {
  FakeReceiverProcess fake({"--wrong-service", kOther});
  EngineFixture f(fake);
  const std::string id = f.Start(kRef);
  for (int i = 0; i < 3; ++i) f.Advance(100);
  SessionRecord record = f.Get(id);
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kTuneFailed);
  CHECK(record.reason_detail.find(kOther) != std::string::npos);
}

TEST_CASE("with the receiver down the breaker opens and later starts fail fast") {
  FakeReceiverProcess fake({"--error", "500"});
  EngineFixture f(fake);
  const std::string first = f.Start(kRef);  // the zap fails: 1 failure
  CHECK(f.Get(first).reason == Reason::kTuneFailed);
  const std::string second = f.Start(kRef);  // 2 failures: open
  CHECK(f.client->breaker().state() == BreakerState::kOpen);
  const int64_t sent = fake.Stat("api_requests");
  const std::string third = f.Start(kRef);
  SessionRecord record = f.Get(third);
  CHECK(record.reason == Reason::kTuneFailed);
  CHECK(record.reason_detail.find("circuit breaker 'receiver' is open") != std::string::npos);
  CHECK(fake.Stat("api_requests") == sent);

  // Back up, and past the open timeout: the next start probes and succeeds.
  fake.Admin("/admin/set?error=0");
  f.clock.AdvanceMs(60'000);
  const std::string fourth = f.Start(kRef);
  f.Advance(100);
  f.Advance(100);
  CHECK(f.Get(fourth).state == SessionState::kReady);
  CHECK(f.client->breaker().state() == BreakerState::kClosed);
}

}  // namespace
}  // namespace xg2g

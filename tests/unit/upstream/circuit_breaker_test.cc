// The circuit breaker on a fake clock: every transition, the fail-fast error,
// what counts as a failure, the log hook, the registry and the metrics text.
// Concurrent probes in half-open are in TEST_SUITE("concurrency") (TSan).
#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/upstream/circuit_breaker.h"

namespace xg2g {
namespace {

struct Log {
  std::mutex mu;
  std::vector<BreakerStateChange> changes;
  BreakerLogFn Fn() {
    return [this](const BreakerStateChange& change) {
      std::lock_guard<std::mutex> lock(mu);
      changes.push_back(change);
    };
  }
  std::vector<BreakerStateChange> Get() {
    std::lock_guard<std::mutex> lock(mu);
    return changes;
  }
};

CircuitBreakerOptions Options(int threshold = 3, int64_t open_ms = 1000, int probes = 1,
                              int successes = 1) {
  CircuitBreakerOptions o;
  o.failure_threshold = threshold;
  o.open_timeout_ms = open_ms;
  o.half_open_max_probes = probes;
  o.half_open_success_threshold = successes;
  return o;
}

absl::Status Fail() { return UnavailableError("receiver unreachable"); }

void Call(CircuitBreaker& breaker, const absl::Status& result) {
  absl::Status s = breaker.Run([&] { return result; });
  (void)s;
}

TEST_CASE("a closed breaker opens after the configured number of consecutive failures") {
  FakeClock clock;
  Log log;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("receiver", Options(3), &clock, log.Fn(), &registry);
  CHECK(breaker.state() == BreakerState::kClosed);
  Call(breaker, Fail());
  Call(breaker, Fail());
  CHECK(breaker.state() == BreakerState::kClosed);
  CHECK(breaker.Snapshot().consecutive_failures == 2);
  Call(breaker, Fail());
  CHECK(breaker.state() == BreakerState::kOpen);

  auto changes = log.Get();
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].name == "receiver");
  CHECK(changes[0].from == BreakerState::kClosed);
  CHECK(changes[0].to == BreakerState::kOpen);
  CHECK(changes[0].reason == kTripConsecutiveFailures);
  CHECK(changes[0].last_error == "receiver unreachable");
  CHECK(changes[0].sequence == 1);
  CHECK(changes[0].at_unix_ms == clock.NowUnixMs());
}

TEST_CASE("a success in between resets the consecutive failure count") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(3), &clock, {}, &registry);
  Call(breaker, Fail());
  Call(breaker, Fail());
  Call(breaker, absl::OkStatus());
  Call(breaker, Fail());
  Call(breaker, Fail());
  CHECK(breaker.state() == BreakerState::kClosed);
  Call(breaker, Fail());
  CHECK(breaker.state() == BreakerState::kOpen);
}

TEST_CASE("an open breaker fails fast with ECIRCUITOPEN and does not call the upstream") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("receiver", Options(1, 5000), &clock, {}, &registry);
  Call(breaker, Fail());
  REQUIRE(breaker.state() == BreakerState::kOpen);
  clock.AdvanceMs(1500);
  int calls = 0;
  absl::Status s = breaker.Run([&] {
    ++calls;
    return absl::OkStatus();
  });
  CHECK(calls == 0);
  CHECK(CodeOf(s) == ErrorCode::kCircuitOpen);
  CHECK(s.code() == absl::StatusCode::kUnavailable);  // code that only reads absl codes: 503-ish
  const std::string message(FromAbsl(s.message()));
  CHECK(message.find("'receiver' is open") != std::string::npos);
  CHECK(message.find("receiver unreachable") != std::string::npos);
  REQUIRE(RetryAfterMs(s).has_value());
  CHECK(*RetryAfterMs(s) == 3500);
  CHECK(breaker.Snapshot().rejected == 1);
  CHECK_FALSE(RetryAfterMs(Fail()).has_value());
}

TEST_CASE("after the open timeout the breaker is half-open and lets one probe through") {
  FakeClock clock;
  Log log;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(1, 1000, 1), &clock, log.Fn(), &registry);
  Call(breaker, Fail());
  clock.AdvanceMs(999);
  CHECK(breaker.state() == BreakerState::kOpen);
  CHECK(breaker.Snapshot().state == BreakerState::kOpen);
  clock.AdvanceMs(1);
  CHECK(breaker.Snapshot().state == BreakerState::kHalfOpen);  // the gauge already says so

  auto probe = breaker.Allow();
  REQUIRE(probe.ok());
  CHECK(breaker.state() == BreakerState::kHalfOpen);
  auto second = breaker.Allow();  // the one probe slot is taken
  CHECK(CodeOf(second.status()) == ErrorCode::kCircuitOpen);
  CHECK(FromAbsl(second.status().message()).find("half-open") != std::string_view::npos);
  probe->Record(absl::OkStatus());
  CHECK(breaker.state() == BreakerState::kClosed);

  auto changes = log.Get();
  REQUIRE(changes.size() == 3);
  CHECK(changes[1].from == BreakerState::kOpen);
  CHECK(changes[1].to == BreakerState::kHalfOpen);
  CHECK(changes[1].reason == "open_timeout_elapsed");
  CHECK(changes[2].from == BreakerState::kHalfOpen);
  CHECK(changes[2].to == BreakerState::kClosed);
  CHECK(changes[2].reason == "probes_succeeded");
  CHECK(changes[2].sequence == 3);
}

TEST_CASE("a failed probe opens the breaker again and restarts the open timeout") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(1, 1000), &clock, {}, &registry);
  Call(breaker, Fail());
  clock.AdvanceMs(1000);
  Call(breaker, Fail());  // the probe
  CHECK(breaker.state() == BreakerState::kOpen);
  auto snap = breaker.Snapshot();
  CHECK(snap.trips[std::string(kTripConsecutiveFailures)] == 1);
  CHECK(snap.trips[std::string(kTripProbeFailed)] == 1);
  clock.AdvanceMs(999);
  CHECK(breaker.state() == BreakerState::kOpen);
  clock.AdvanceMs(1);
  CHECK(breaker.state() == BreakerState::kHalfOpen);
}

TEST_CASE("half-open closes only after the configured number of probe successes") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(1, 100, 2, 3), &clock, {}, &registry);
  Call(breaker, Fail());
  clock.AdvanceMs(100);
  Call(breaker, absl::OkStatus());
  Call(breaker, absl::OkStatus());
  CHECK(breaker.state() == BreakerState::kHalfOpen);
  Call(breaker, absl::OkStatus());
  CHECK(breaker.state() == BreakerState::kClosed);
  CHECK(breaker.Snapshot().consecutive_failures == 0);
}

TEST_CASE("at most half_open_max_probes calls are in flight while half-open") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(1, 100, 2, 2), &clock, {}, &registry);
  Call(breaker, Fail());
  clock.AdvanceMs(100);
  auto a = breaker.Allow();
  auto b = breaker.Allow();
  auto c = breaker.Allow();
  CHECK(a.ok());
  CHECK(b.ok());
  CHECK(CodeOf(c.status()) == ErrorCode::kCircuitOpen);
  a->Record(absl::OkStatus());
  auto d = breaker.Allow();  // a's slot is free again
  CHECK(d.ok());
  b->Record(absl::OkStatus());
  CHECK(breaker.state() == BreakerState::kClosed);
  d->Record(Fail());  // belongs to the half-open episode that ended: ignored
  CHECK(breaker.state() == BreakerState::kClosed);
  CHECK(breaker.Snapshot().consecutive_failures == 0);
}

TEST_CASE("caller cancellations count neither as failure nor as success") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(2, 100), &clock, {}, &registry);
  Call(breaker, Fail());
  for (int i = 0; i < 10; ++i) {
    Call(breaker, MakeError(ErrorCode::kCancelled, "caller gave up"));
  }
  CHECK(breaker.state() == BreakerState::kClosed);
  CHECK(breaker.Snapshot().consecutive_failures == 1);  // not reset either
  Call(breaker, Fail());
  CHECK(breaker.state() == BreakerState::kOpen);

  // A cancelled probe frees its slot without closing or re-opening.
  clock.AdvanceMs(100);
  {
    auto probe = breaker.Allow();
    REQUIRE(probe.ok());
    probe->Record(MakeError(ErrorCode::kCancelled, "caller gave up"));
  }
  CHECK(breaker.state() == BreakerState::kHalfOpen);
  {
    auto probe = breaker.Allow();
    REQUIRE(probe.ok());
    // dropped without a result: the same as a cancellation
  }
  CHECK(breaker.state() == BreakerState::kHalfOpen);
  CHECK(breaker.Allow().ok());
}

TEST_CASE("an answer that refuses the request proves the upstream alive") {
  CHECK(ClassifyResult(absl::OkStatus()) == CallOutcome::kSuccess);
  CHECK(ClassifyResult(InvalidError("bad ref")) == CallOutcome::kSuccess);
  CHECK(ClassifyResult(NotFoundError("no such service")) == CallOutcome::kSuccess);
  CHECK(ClassifyResult(UnavailableError("refused")) == CallOutcome::kFailure);
  CHECK(ClassifyResult(MakeError(ErrorCode::kTimeout, "slow")) == CallOutcome::kFailure);
  CHECK(ClassifyResult(CorruptError("not JSON")) == CallOutcome::kFailure);
  CHECK(ClassifyResult(MakeError(ErrorCode::kIo, "io")) == CallOutcome::kFailure);
  CHECK(ClassifyResult(MakeError(ErrorCode::kCancelled, "c")) == CallOutcome::kIgnored);
  CHECK(ClassifyResult(CircuitOpenError("nested")) == CallOutcome::kIgnored);
}

TEST_CASE("Run passes a StatusOr through and records its status") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(1), &clock, {}, &registry);
  absl::StatusOr<int> ok = breaker.Run([]() -> absl::StatusOr<int> { return 7; });
  REQUIRE(ok.ok());
  CHECK(*ok == 7);
  absl::StatusOr<int> bad = breaker.Run([]() -> absl::StatusOr<int> { return Fail(); });
  CHECK(CodeOf(bad.status()) == ErrorCode::kUnavailable);
  CHECK(breaker.state() == BreakerState::kOpen);
  absl::StatusOr<int> fast = breaker.Run([]() -> absl::StatusOr<int> { return 1; });
  CHECK(CodeOf(fast.status()) == ErrorCode::kCircuitOpen);
}

TEST_CASE("Reset closes an open breaker and is logged") {
  FakeClock clock;
  Log log;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(1), &clock, log.Fn(), &registry);
  Call(breaker, Fail());
  breaker.Reset();
  CHECK(breaker.state() == BreakerState::kClosed);
  auto changes = log.Get();
  REQUIRE(changes.size() == 2);
  CHECK(changes[1].reason == "reset");
  CHECK(changes[1].from == BreakerState::kOpen);
}

TEST_CASE("a result from before a state change does not touch the new state") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker breaker("r", Options(2, 100), &clock, {}, &registry);
  auto slow = breaker.Allow();  // admitted while closed
  REQUIRE(slow.ok());
  Call(breaker, Fail());
  Call(breaker, Fail());
  REQUIRE(breaker.state() == BreakerState::kOpen);
  slow->Record(absl::OkStatus());  // a late success does not close it
  CHECK(breaker.state() == BreakerState::kOpen);
}

TEST_CASE("options out of range are rejected naming the option") {
  CHECK(ValidateCircuitBreakerOptions(Options()).ok());
  auto check = [](CircuitBreakerOptions o, std::string_view name) {
    absl::Status s = ValidateCircuitBreakerOptions(o);
    CHECK(CodeOf(s) == ErrorCode::kInvalid);
    CHECK(FromAbsl(s.message()).find(name) != std::string_view::npos);
  };
  check(Options(0), "failure_threshold");
  check(Options(1, 0), "open_timeout_ms");
  check(Options(1, 1, 0), "half_open_max_probes");
  check(Options(1, 1, 1, 0), "half_open_success_threshold");
}

TEST_CASE("the registry lists live breakers and the metrics render in Prometheus text") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  std::string empty;
  AppendCircuitBreakerMetrics(empty, registry.Snapshots());
  CHECK(empty.empty());
  {
    CircuitBreaker a("receiver", Options(1, 1000), &clock, {}, &registry);
    CircuitBreaker b("we\"ird\\name\n", Options(5), &clock, {}, &registry);
    Call(a, Fail());
    clock.AdvanceMs(1000);
    Call(a, Fail());  // probe fails: a second trip, other reason
    CHECK(registry.Snapshots().size() == 2);

    std::string text = "# existing\n";
    AppendCircuitBreakerMetrics(text, registry.Snapshots());
    CHECK(text ==
          "# existing\n"
          "# HELP xg2g_circuit_breaker_state Circuit breaker state (0 closed, 1 half-open, 2 "
          "open).\n"
          "# TYPE xg2g_circuit_breaker_state gauge\n"
          "xg2g_circuit_breaker_state{name=\"receiver\"} 2\n"
          "xg2g_circuit_breaker_state{name=\"we\\\"ird\\\\name\\n\"} 0\n"
          "# HELP xg2g_circuit_breaker_trips_total Times a circuit breaker opened, by reason.\n"
          "# TYPE xg2g_circuit_breaker_trips_total counter\n"
          "xg2g_circuit_breaker_trips_total{name=\"receiver\",reason=\"consecutive_failures\"} 1\n"
          "xg2g_circuit_breaker_trips_total{name=\"receiver\",reason=\"half_open_probe_failed\"} 1\n"
          "xg2g_circuit_breaker_trips_total{name=\"we\\\"ird\\\\name\\n\",reason=\"consecutive_"
          "failures\"} 0\n"
          "xg2g_circuit_breaker_trips_total{name=\"we\\\"ird\\\\name\\n\",reason=\"half_open_"
          "probe_failed\"} 0\n");
  }
  CHECK(registry.Snapshots().empty());  // destroyed breakers leave the registry
}

TEST_CASE("breakers sharing a name are merged: worst state, summed trips") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreaker a("receiver", Options(1), &clock, {}, &registry);
  CircuitBreaker b("receiver", Options(1), &clock, {}, &registry);
  Call(a, Fail());
  b.Reset();
  Call(b, Fail());
  b.Reset();
  std::string text;
  AppendCircuitBreakerMetrics(text, registry.Snapshots());
  CHECK(text.find("xg2g_circuit_breaker_state{name=\"receiver\"} 2\n") != std::string::npos);
  CHECK(text.find("{name=\"receiver\",reason=\"consecutive_failures\"} 2\n") != std::string::npos);
  CHECK(text.find("xg2g_circuit_breaker_state{name=\"receiver\"} 0") == std::string::npos);
}

TEST_CASE("breakers join the default registry unless told otherwise") {
  const size_t before = CircuitBreakerRegistry::Default().Snapshots().size();
  {
    CircuitBreaker breaker("default-registry-test", Options());
    CHECK(CircuitBreakerRegistry::Default().Snapshots().size() == before + 1);
    std::string text;
    AppendCircuitBreakerMetrics(text);
    CHECK(text.find("{name=\"default-registry-test\"} 0") != std::string::npos);
  }
  CHECK(CircuitBreakerRegistry::Default().Snapshots().size() == before);
}

TEST_SUITE("concurrency") {
  TEST_CASE("concurrent callers in half-open: never more probes than allowed, one close") {
    for (int round = 0; round < 50; ++round) {
      FakeClock clock;
      Log log;
      CircuitBreakerRegistry registry;
      CircuitBreaker breaker("r", Options(1, 100, 3, 3), &clock, log.Fn(), &registry);
      Call(breaker, Fail());
      clock.AdvanceMs(100);

      constexpr int kThreads = 8;
      std::atomic<int> in_flight{0};
      std::atomic<int> max_in_flight{0};
      std::atomic<int> admitted{0};
      std::atomic<int> rejected{0};
      std::barrier start(kThreads);
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
          start.arrive_and_wait();
          for (int i = 0; i < 20; ++i) {
            absl::Status s = breaker.Run([&] {
              const int now = in_flight.fetch_add(1) + 1;
              int seen = max_in_flight.load();
              while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
              }
              admitted.fetch_add(1);
              std::this_thread::yield();
              in_flight.fetch_sub(1);
              return absl::OkStatus();
            });
            if (CodeOf(s) == ErrorCode::kCircuitOpen) rejected.fetch_add(1);
          }
        });
      }
      for (auto& t : threads) t.join();
      CHECK(breaker.state() == BreakerState::kClosed);
      CHECK(admitted.load() + rejected.load() == kThreads * 20);
      // While half-open at most 3 probes ran at once; once closed any number
      // may, so the bound is only checked through the log: exactly one close.
      int closes = 0;
      for (const auto& change : log.Get()) closes += change.to == BreakerState::kClosed;
      CHECK(closes == 1);
    }
  }

  TEST_CASE("concurrent probes in half-open never exceed the bound while it stays half-open") {
    FakeClock clock;
    CircuitBreakerRegistry registry;
    // Probes succeed but the success threshold is out of reach, so the
    // breaker stays half-open the whole time and the bound holds throughout.
    CircuitBreaker breaker("r", Options(1, 100, 2, 1'000'000), &clock, {}, &registry);
    Call(breaker, Fail());
    clock.AdvanceMs(100);
    constexpr int kThreads = 8;
    std::atomic<int> in_flight{0};
    std::atomic<int> max_in_flight{0};
    std::atomic<int> admitted{0};
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < 500; ++i) {
          (void)breaker.Run([&] {
            const int now = in_flight.fetch_add(1) + 1;
            int seen = max_in_flight.load();
            while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
            }
            admitted.fetch_add(1);
            std::this_thread::yield();
            in_flight.fetch_sub(1);
            return absl::OkStatus();
          });
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(max_in_flight.load() <= 2);
    CHECK(admitted.load() >= 1);
    CHECK(breaker.state() == BreakerState::kHalfOpen);
  }

  TEST_CASE("failures racing from many threads trip the breaker exactly once") {
    FakeClock clock;
    Log log;
    CircuitBreakerRegistry registry;
    CircuitBreaker breaker("r", Options(5, 1'000'000), &clock, log.Fn(), &registry);
    constexpr int kThreads = 8;
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < 100; ++i) Call(breaker, Fail());
      });
    }
    // Metrics are read while the breaker changes.
    std::thread reader([&] {
      for (int i = 0; i < 200; ++i) {
        std::string text;
        AppendCircuitBreakerMetrics(text, registry.Snapshots());
      }
    });
    for (auto& t : threads) t.join();
    reader.join();
    CHECK(breaker.state() == BreakerState::kOpen);
    auto changes = log.Get();
    REQUIRE(changes.size() == 1);
    CHECK(breaker.Snapshot().trips[std::string(kTripConsecutiveFailures)] == 1);
  }
}

}  // namespace
}  // namespace xg2g

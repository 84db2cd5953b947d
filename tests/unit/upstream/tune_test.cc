// Tune readiness against an in-process receiver: the two-poll rule, the
// failure kinds and their reasons, deadlines, cancellation, and shared poll
// loops (TEST_SUITE("concurrency"), run under TSan).
#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "lib/common/status.h"
#include "lib/session/session.h"
#include "lib/upstream/cancel.h"
#include "lib/upstream/tune.h"
#include "tests/unit/upstream/fake_receiver_api.h"

namespace xg2g {
namespace {

constexpr const char* kRef = "1:0:19:283D:3FB:1:C00000:0:0:0:";
constexpr const char* kOther = "1:0:19:2B66:3F3:1:C00000:0:0:0:";

bool Has(const absl::Status& s, std::string_view text) {
  return FromAbsl(s.message()).find(text) != std::string_view::npos;
}

TuneOptions Fast(int max_bad = 3) {
  TuneOptions o;
  o.poll_interval_ms = 5;
  o.poll_jitter_ms = 0;
  o.required_polls = 2;
  o.max_bad_polls = max_bad;
  return o;
}

TuneObservation Seen(std::string ref, bool locked) {
  TuneObservation o;
  o.service_ref = std::move(ref);
  o.signal.locked = locked;
  o.signal.snr_percent = locked ? 90 : 0;
  return o;
}

TEST_CASE("a tune is ready only after two consecutive confirming polls") {
  TuneProgress p(kRef, 0, Fast());
  CHECK(p.Observe(Seen(kRef, true)) == TuneProgress::Verdict::kPending);
  CHECK(p.Observe(Seen(kRef, false)) == TuneProgress::Verdict::kPending);  // the streak breaks
  CHECK(p.Observe(Seen(kRef, true)) == TuneProgress::Verdict::kPending);
  CHECK(p.last_seen().find("1 of 2") != std::string::npos);
  CHECK(p.Observe(Seen(kRef, true)) == TuneProgress::Verdict::kReady);
  CHECK(p.polls() == 4);
}

TEST_CASE("the same problem max_bad_polls times in a row fails the tune with its kind") {
  SUBCASE("another service") {
    TuneProgress p(kRef, 2, Fast(3));
    CHECK(p.Observe(Seen(kOther, true)) == TuneProgress::Verdict::kPending);
    CHECK(p.Observe(Seen(kOther, true)) == TuneProgress::Verdict::kPending);
    CHECK(p.Observe(Seen(kOther, true)) == TuneProgress::Verdict::kFailed);
    CHECK(CodeOf(p.Failure()) == ErrorCode::kConflict);
    CHECK(Has(p.Failure(), kOther));
    CHECK(Has(p.Failure(), "slot 2"));
    CHECK(Has(p.Failure(), "3 polls in a row"));
    CHECK(TuneFailureReason(p.Failure()) == Reason::kTuneFailed);
  }
  SUBCASE("no lock") {
    TuneProgress p(kRef, 0, Fast(2));
    p.Observe(Seen(kRef, false));
    CHECK(p.Observe(Seen(kRef, false)) == TuneProgress::Verdict::kFailed);
    CHECK(CodeOf(p.Failure()) == ErrorCode::kUnavailable);
    CHECK(Has(p.Failure(), "no signal lock"));
    CHECK(TuneFailureReason(p.Failure()) == Reason::kTuneFailed);
  }
  SUBCASE("unreachable") {
    TuneProgress p(kRef, 0, Fast(2));
    TuneObservation down;
    down.error = MakeError(ErrorCode::kTimeout, "GET /api/getcurrent: timed out");
    p.Observe(down);
    CHECK(p.Observe(down) == TuneProgress::Verdict::kFailed);
    // Not a tune timeout: the receiver did not answer.
    CHECK(CodeOf(p.Failure()) == ErrorCode::kUnavailable);
    CHECK(TuneFailureReason(p.Failure()) == Reason::kTuneFailed);
  }
  SUBCASE("problems that change do not add up") {
    TuneProgress p(kRef, 0, Fast(2));
    CHECK(p.Observe(Seen(kOther, true)) == TuneProgress::Verdict::kPending);
    CHECK(p.Observe(Seen(kRef, false)) == TuneProgress::Verdict::kPending);
    CHECK(p.Observe(Seen(kOther, true)) == TuneProgress::Verdict::kPending);
  }
  SUBCASE("max_bad_polls 0 never fails early") {
    TuneProgress p(kRef, 0, Fast(0));
    for (int i = 0; i < 100; ++i) CHECK(p.Observe(Seen(kOther, true)) == TuneProgress::Verdict::kPending);
    absl::Status t = p.Timeout(1234);
    CHECK(CodeOf(t) == ErrorCode::kTimeout);
    CHECK(Has(t, "1234 ms"));
    CHECK(Has(t, std::string("shows '") + kOther + "'"));
    CHECK(TuneFailureReason(t) == Reason::kTuneTimeout);
  }
}

TEST_CASE("an open breaker fails the tune at once; a cancelled poll is no result") {
  TuneProgress p(kRef, 0, Fast(5));
  TuneObservation cancelled;
  cancelled.error = MakeError(ErrorCode::kCancelled, "c");
  CHECK(p.Observe(cancelled) == TuneProgress::Verdict::kPending);
  CHECK(p.polls() == 0);
  TuneObservation open;
  open.error = CircuitOpenError("circuit breaker 'receiver' is open");
  CHECK(p.Observe(open) == TuneProgress::Verdict::kFailed);
  CHECK(CodeOf(p.Failure()) == ErrorCode::kCircuitOpen);
  CHECK(TuneFailureReason(p.Failure()) == Reason::kTuneFailed);
  CHECK(TuneFailureReason(absl::OkStatus()) == Reason::kNone);
  CHECK(TuneFailureReason(MakeError(ErrorCode::kCancelled, "c")) == Reason::kCancelled);
}

TEST_CASE("tune options out of range are EINVAL naming the option") {
  CHECK(ValidateTuneOptions(TuneOptions{}).ok());
  TuneOptions o;
  o.poll_jitter_ms = o.poll_interval_ms;
  CHECK(Has(ValidateTuneOptions(o), "poll_jitter_ms"));
  o = TuneOptions{};
  o.required_polls = 0;
  CHECK(Has(ValidateTuneOptions(o), "required_polls"));
  std::mt19937 rng(1);
  TuneOptions j;
  for (int i = 0; i < 100; ++i) {
    const int64_t pause = JitteredPause(j, rng);
    CHECK(pause >= 200);
    CHECK(pause <= 300);
  }
}

TEST_CASE("WaitTuned answers after two polls when the receiver already plays the service") {
  FakeReceiverApi fake;
  fake.SetCurrent(kRef);
  TuneWaiter waiter(&fake, Fast());
  CHECK(waiter.WaitTuned(0, kRef, 5000).ok());
  CHECK(waiter.polls() == 2);
  CHECK(fake.current_calls.load() == 2);
}

TEST_CASE("Tune zaps and then waits; a refused zap fails at once") {
  FakeReceiverApi fake;
  TuneWaiter waiter(&fake, Fast());
  CHECK(waiter.Tune(1, kRef, 5000).ok());
  CHECK(fake.zaps.load() == 1);

  fake.SetRefuseZap(true);
  absl::Status refused = waiter.Tune(1, kOther, 5000);
  CHECK(CodeOf(refused) == ErrorCode::kInvalid);
  CHECK(Has(refused, "zap failed"));
  CHECK(TuneFailureReason(refused) == Reason::kTuneFailed);

  fake.SetRefuseZap(false);
  fake.SetError(MakeError(ErrorCode::kTimeout, "GET /api/zap: timed out"));
  absl::Status down = waiter.Tune(1, kOther, 5000);
  CHECK(CodeOf(down) == ErrorCode::kUnavailable);  // a zap nobody answers is a failed tune
  CHECK(TuneFailureReason(down) == Reason::kTuneFailed);
}

TEST_CASE("WaitTuned ends at its deadline with a typed timeout naming the last poll") {
  FakeReceiverApi fake;
  fake.SetCurrent(kOther);
  TuneWaiter waiter(&fake, Fast(0));
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = waiter.WaitTuned(0, kRef, 100);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
          .count();
  CHECK(CodeOf(s) == ErrorCode::kTimeout);
  CHECK(TuneFailureReason(s) == Reason::kTuneTimeout);
  CHECK(Has(s, "not confirmed within"));
  CHECK(Has(s, kOther));
  CHECK(ms >= 95);  // the deadline is kept in whole milliseconds
  CHECK(ms < 2000);
}

TEST_CASE("WaitTuned fails early on wrong service, no lock and an unreachable receiver") {
  FakeReceiverApi fake;
  TuneWaiter waiter(&fake, Fast(3));
  fake.SetCurrent(kOther);
  CHECK(CodeOf(waiter.WaitTuned(0, kRef, 10'000)) == ErrorCode::kConflict);
  fake.SetCurrent(kRef);
  fake.SetLocked(false);
  CHECK(CodeOf(waiter.WaitTuned(0, kRef, 10'000)) == ErrorCode::kUnavailable);
  fake.SetError(UnavailableError("connection refused"));
  absl::Status down = waiter.WaitTuned(0, kRef, 10'000);
  CHECK(CodeOf(down) == ErrorCode::kUnavailable);
  CHECK(Has(down, "connection refused"));
  fake.SetError(CircuitOpenError("circuit breaker 'receiver' is open"));
  CHECK(CodeOf(waiter.WaitTuned(0, kRef, 10'000)) == ErrorCode::kCircuitOpen);
}

TEST_CASE("WaitTuned is cancelled from another thread") {
  FakeReceiverApi fake;
  fake.SetCurrent(kOther);
  TuneOptions o = Fast(0);
  o.poll_interval_ms = 60'000;  // only a cancel can end the pause early
  TuneWaiter waiter(&fake, o);
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel.Cancel();
  });
  absl::Status s = waiter.WaitTuned(0, kRef, 30'000, &cancel);
  canceller.join();
  CHECK(CodeOf(s) == ErrorCode::kCancelled);
  CHECK(Has(s, kOther));
}

TEST_CASE("bad arguments to WaitTuned are EINVAL") {
  FakeReceiverApi fake;
  TuneWaiter waiter(&fake, Fast());
  CHECK(CodeOf(waiter.WaitTuned(0, "", 100)) == ErrorCode::kInvalid);
  CHECK(CodeOf(waiter.WaitTuned(0, kRef, 0)) == ErrorCode::kInvalid);
  TuneOptions bad = Fast();
  bad.required_polls = 0;
  TuneWaiter invalid(&fake, bad);
  CHECK(CodeOf(invalid.WaitTuned(0, kRef, 100)) == ErrorCode::kInvalid);
}

TEST_SUITE("concurrency") {
  TEST_CASE("concurrent waits for the same slot share one poll loop") {
    FakeReceiverApi fake;
    fake.SetCurrent(kRef);
    TuneOptions o = Fast();
    o.poll_interval_ms = 30;
    TuneWaiter waiter(&fake, o);
    constexpr int kThreads = 8;
    std::barrier start(kThreads);
    std::vector<absl::Status> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        results[t] = waiter.WaitTuned(3, kRef, 10'000);
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& r : results) CHECK(r.ok());
    // One loop: two polls make everyone ready (a straggler that joined after
    // the first poll needs one more); eight separate loops would make 16.
    CHECK(waiter.polls() <= 4);
    CHECK(fake.current_calls.load() <= 4);
  }

  TEST_CASE("waits on different slots poll independently") {
    FakeReceiverApi fake;
    fake.SetCurrent(kRef);
    TuneWaiter waiter(&fake, Fast());
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int slot = 0; slot < 4; ++slot) {
      threads.emplace_back([&, slot] {
        if (waiter.WaitTuned(slot, kRef, 10'000).ok()) ok.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    CHECK(ok.load() == 4);
    CHECK(waiter.polls() >= 8);
  }

  TEST_CASE("a shared poll result reaches waiters for different services on the slot") {
    FakeReceiverApi fake;
    fake.SetCurrent(kRef);
    TuneWaiter waiter(&fake, Fast(3));
    absl::Status mine, theirs;
    std::thread a([&] { mine = waiter.WaitTuned(0, kRef, 10'000); });
    std::thread b([&] { theirs = waiter.WaitTuned(0, kOther, 10'000); });
    a.join();
    b.join();
    CHECK(mine.ok());
    CHECK(CodeOf(theirs) == ErrorCode::kConflict);
  }

  TEST_CASE("when the polling waiter is cancelled mid-poll another waiter takes over") {
    FakeReceiverApi fake;
    fake.SetCurrent(kRef);
    TuneWaiter waiter(&fake, Fast());
    fake.CloseGate();
    CancelToken first_cancel;
    absl::Status first, second;
    std::thread a([&] { first = waiter.WaitTuned(0, kRef, 10'000, &first_cancel); });
    fake.AwaitAtGate(1);  // a polls, held at the gate
    std::thread b([&] { second = waiter.WaitTuned(0, kRef, 10'000); });
    first_cancel.Cancel();  // a's poll ends, a leaves
    a.join();
    fake.OpenGate();
    b.join();
    CHECK(CodeOf(first) == ErrorCode::kCancelled);
    CHECK(second.ok());
  }

  TEST_CASE("many threads tuning and cancelling on few slots stay consistent") {
    FakeReceiverApi fake;
    fake.SetCurrent(kRef);
    TuneOptions o = Fast(0);
    o.poll_interval_ms = 2;
    TuneWaiter waiter(&fake, o);
    constexpr int kThreads = 8;
    std::vector<std::thread> threads;
    std::atomic<int> done{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i) {
          CancelToken cancel;
          if (i % 3 == 0) cancel.Cancel();
          absl::Status s = waiter.WaitTuned(t % 2, i % 2 == 0 ? kRef : kOther, 200, &cancel);
          if (s.ok() || CodeOf(s) == ErrorCode::kCancelled || CodeOf(s) == ErrorCode::kTimeout) {
            done.fetch_add(1);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(done.load() == kThreads * 20);
  }
}

}  // namespace
}  // namespace xg2g

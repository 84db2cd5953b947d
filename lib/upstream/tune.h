// Tune readiness: when has the receiver really tuned a service?
//
// The rule (docs/receiver.md): a tune is ready after `required_polls` (2)
// consecutive polls, about `poll_interval_ms` (250 ms) apart with up to
// `poll_jitter_ms` of jitter, show the requested service as current AND a
// signal lock. A poll is GET /api/getcurrent then GET /api/signal.
//
// The wait ends
//  - ready (OK);
//  - at its deadline: kTimeout, naming what the last poll saw (R_TUNE_TIMEOUT);
//  - early, when `max_bad_polls` consecutive polls show the same problem:
//    another service is current (kConflict), no signal lock (kUnavailable),
//    or the receiver does not answer (kUnavailable) -- R_TUNE_FAILED;
//  - at once when the receiver's circuit breaker is open (kCircuitOpen,
//    R_TUNE_FAILED) or the caller cancels (kCancelled).
//
// TuneProgress is the rule for one wait, fed one observation at a time;
// TuneWaiter runs blocking waits on it, and concurrent waits for the same
// tuner slot share one poll loop (one thread polls, all waiters read each
// result). The receiver pipeline drives TuneProgress from engine timers.
#ifndef XG2G_LIB_UPSTREAM_TUNE_H_
#define XG2G_LIB_UPSTREAM_TUNE_H_

#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "lib/common/clock.h"
#include "lib/session/session.h"
#include "lib/upstream/cancel.h"
#include "lib/upstream/openwebif.h"
#include "lib/upstream/receiver_client.h"

namespace xg2g {

struct TuneOptions {
  int64_t poll_interval_ms = 250;  // >= 1
  int64_t poll_jitter_ms = 50;     // each pause is interval +- up to this (>= 0, < interval)
  int required_polls = 2;          // consecutive confirming polls (>= 1)
  int max_bad_polls = 8;           // the same problem this often in a row fails early; 0: never
};

[[nodiscard]] absl::Status ValidateTuneOptions(const TuneOptions& options);

// What one poll of the receiver saw.
struct TuneObservation {
  absl::Status error;          // not OK: the poll failed (and why)
  std::string service_ref;     // the current service ("" when none plays)
  std::string service_name;
  SignalInfo signal;
};

// One poll: GetCurrent, then GetSignal; the first error ends it.
[[nodiscard]] TuneObservation PollReceiver(ReceiverApi& receiver, const ReceiverCallOptions& call);

// The session reason a tune result maps to: OK -> R_NONE, kTimeout ->
// R_TUNE_TIMEOUT, kCancelled -> R_CANCELLED, anything else -> R_TUNE_FAILED.
[[nodiscard]] Reason TuneFailureReason(const absl::Status& status);

// A pause of poll_interval_ms +- poll_jitter_ms (uniform, >= 1).
[[nodiscard]] int64_t JitteredPause(const TuneOptions& options, std::mt19937& rng);

// The readiness rule for one wait. Thread-compatible.
class TuneProgress {
 public:
  enum class Verdict { kPending, kReady, kFailed };

  TuneProgress(std::string service_ref, int slot, const TuneOptions& options);

  // Feeds one poll's result. kFailed: Failure() says why.
  Verdict Observe(const TuneObservation& observation);
  [[nodiscard]] absl::Status Failure() const { return failure_; }
  // The kTimeout status for a wait of `waited_ms` that ends at its deadline.
  [[nodiscard]] absl::Status Timeout(int64_t waited_ms) const;
  // What the last poll saw, for messages.
  [[nodiscard]] const std::string& last_seen() const { return last_seen_; }
  [[nodiscard]] const std::string& service_ref() const { return service_ref_; }
  [[nodiscard]] int polls() const { return polls_; }

 private:
  enum class Problem { kNone, kWrongService, kNoLock, kUnreachable };

  const std::string service_ref_;
  const int slot_;
  const TuneOptions options_;
  int polls_ = 0;
  int good_streak_ = 0;
  int bad_streak_ = 0;
  Problem last_problem_ = Problem::kNone;
  std::string last_seen_ = "no poll has completed yet";
  absl::Status failure_;
};

// Blocking tune waits against one receiver. Thread-safe.
class TuneWaiter {
 public:
  // `receiver` (and `clock`, null: real) must outlive the waiter.
  TuneWaiter(ReceiverApi* receiver, TuneOptions options, Clock* clock = nullptr);
  TuneWaiter(const TuneWaiter&) = delete;
  TuneWaiter& operator=(const TuneWaiter&) = delete;

  // Waits until `service_ref` is ready on `slot` (see the rule above), for
  // at most timeout_ms (>= 1). Waits for the same slot share one poll loop:
  // whichever waiter is due polls, and every waiter of the slot reads the
  // result. A waiter that is cancelled or times out leaves; the others go on.
  [[nodiscard]] absl::Status WaitTuned(int slot, std::string_view service_ref, int64_t timeout_ms,
                                       const CancelToken* cancel = nullptr);

  // Zap, then WaitTuned with what is left of timeout_ms. A refused or failed
  // zap ends it at once (R_TUNE_FAILED).
  [[nodiscard]] absl::Status Tune(int slot, std::string_view service_ref, int64_t timeout_ms,
                                  const CancelToken* cancel = nullptr);

  // Polls made so far (all slots): shared loops poll once for all waiters.
  [[nodiscard]] uint64_t polls() const;

  // The pause before the next poll: interval +- jitter (>= 1).
  [[nodiscard]] int64_t NextPause();

 private:
  int64_t NextPauseLocked();

  struct Waiter {
    TuneProgress progress;
    int64_t deadline_ms;
    bool done = false;
    absl::Status result;
  };
  struct Slot {
    std::list<Waiter*> waiters;
    bool polling = false;
    int64_t next_poll_ms = 0;  // monotonic
  };

  ReceiverApi* const receiver_;
  const TuneOptions options_;
  Clock* const clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Slot> slots_;  // guarded by mu_
  uint64_t polls_ = 0;         // guarded by mu_
  std::mt19937 rng_;           // guarded by mu_
};

}  // namespace xg2g

#endif  // XG2G_LIB_UPSTREAM_TUNE_H_

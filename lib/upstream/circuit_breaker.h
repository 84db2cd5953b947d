// A circuit breaker around calls to an upstream (the receiver): after a run
// of consecutive failures it opens and fails every call fast with
// ErrorCode::kCircuitOpen (HTTP 503 CIRCUIT_OPEN) instead of letting callers
// wait on a dead upstream; after its open timeout it lets a bounded number of
// probe calls through (half-open), and closes again when they succeed
// (DESIGN.md §7, docs/receiver.md).
//
//   closed --(failure_threshold consecutive failures)--> open
//   open --(open_timeout_ms passed, at the next call)--> half-open
//   half-open --(half_open_success_threshold successes)--> closed
//   half-open --(a probe fails)--> open (the timeout starts again)
//
// A caller's cancellation (ECANCELLED) is neither a success nor a failure,
// and so is an answer that says the upstream is fine but refused the request
// (EINVAL, ENOTFOUND, ...): only transport-like errors (EUNAVAILABLE,
// ETIMEOUT, EIO, ECORRUPT, EINTERNAL) count as failures. A result that comes
// back after the breaker changed state meanwhile is ignored.
//
// Every state change is reported to the log hook with the old and the new
// state; every breaker is listed in a registry from which the metrics
// `xg2g_circuit_breaker_state{name}` and
// `xg2g_circuit_breaker_trips_total{name,reason}` are rendered.
//
// Thread-safe. Time comes from an injectable Clock. The log hook runs on the
// thread whose call changed the state, never while a breaker lock is held;
// two changes racing on two threads may reach the hook in either order
// (each carries its sequence number).
#ifndef XG2G_LIB_UPSTREAM_CIRCUIT_BREAKER_H_
#define XG2G_LIB_UPSTREAM_CIRCUIT_BREAKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/clock.h"
#include "lib/common/status.h"

namespace xg2g {

// Values are the metric's: 0 closed, 1 half-open, 2 open.
enum class BreakerState : int { kClosed = 0, kHalfOpen = 1, kOpen = 2 };

// "closed", "half-open", "open".
[[nodiscard]] std::string_view BreakerStateName(BreakerState state);

// Trip reasons: the `reason` label of xg2g_circuit_breaker_trips_total.
inline constexpr std::string_view kTripConsecutiveFailures = "consecutive_failures";
inline constexpr std::string_view kTripProbeFailed = "half_open_probe_failed";

struct CircuitBreakerOptions {
  int failure_threshold = 5;           // consecutive failures that open a closed breaker (>= 1)
  int64_t open_timeout_ms = 30'000;    // open -> half-open after this long (>= 1)
  int half_open_max_probes = 1;        // calls let through at once while half-open (>= 1)
  int half_open_success_threshold = 1; // probe successes that close it (>= 1)
};

// InvalidError naming the first option out of range.
[[nodiscard]] absl::Status ValidateCircuitBreakerOptions(const CircuitBreakerOptions& options);

// One state change, as the log hook receives it.
struct BreakerStateChange {
  std::string name;
  BreakerState from = BreakerState::kClosed;
  BreakerState to = BreakerState::kClosed;
  std::string reason;       // a trip reason, "open_timeout_elapsed", "probes_succeeded", "reset"
  std::string last_error;   // the failure that tripped it ("" otherwise)
  int64_t at_unix_ms = 0;
  uint64_t sequence = 0;    // 1, 2, ... per breaker
};
using BreakerLogFn = std::function<void(const BreakerStateChange&)>;

// One change as a JSON object on one line, without a newline:
// {"level":"warn","msg":"circuit breaker state change","breaker":...,"from":"closed",
//  "to":"open","reason":...,"last_error":...,"time_unix_ms":...,"sequence":N}
[[nodiscard]] std::string BreakerStateChangeJson(const BreakerStateChange& change);

// A hook that writes each change as one JSON line to stderr
// ({"level":"warn","msg":"circuit breaker state change","breaker":...,"from":...,"to":...}).
[[nodiscard]] BreakerLogFn StderrBreakerLog();

// How a call's result counts.
enum class CallOutcome { kSuccess, kFailure, kIgnored };
[[nodiscard]] CallOutcome ClassifyResult(const absl::Status& result);

// What the metrics and the docs show of one breaker.
struct BreakerSnapshot {
  std::string name;
  BreakerState state = BreakerState::kClosed;  // half-open once the open timeout has passed
  int consecutive_failures = 0;
  std::map<std::string, uint64_t> trips;      // reason -> count (both known reasons present)
  uint64_t rejected = 0;                      // calls failed fast
  std::string last_error;
};

class CircuitBreaker;

// The breakers that exist in the process (or in one test), for metrics.
// Thread-safe. Breakers add and remove themselves.
class CircuitBreakerRegistry {
 public:
  CircuitBreakerRegistry() = default;
  CircuitBreakerRegistry(const CircuitBreakerRegistry&) = delete;
  CircuitBreakerRegistry& operator=(const CircuitBreakerRegistry&) = delete;

  // The process-wide registry (constructed on first use, never destroyed).
  static CircuitBreakerRegistry& Default();

  // A snapshot of every registered breaker, in registration order.
  [[nodiscard]] std::vector<BreakerSnapshot> Snapshots() const;

 private:
  friend class CircuitBreaker;
  void Add(const CircuitBreaker* breaker);
  void Remove(const CircuitBreaker* breaker);

  mutable std::mutex mu_;
  std::vector<const CircuitBreaker*> breakers_;  // guarded by mu_
};

// Appends the two metric families in the Prometheus text format (HELP, TYPE,
// one line per breaker and per breaker and reason) to `out`; nothing when
// there is no breaker. Breakers sharing a name are merged: the worst state,
// the summed trips.
void AppendCircuitBreakerMetrics(std::string& out, const std::vector<BreakerSnapshot>& breakers);
// The same over the default registry.
void AppendCircuitBreakerMetrics(std::string& out);

// When a kCircuitOpen status says the breaker may let a call through again
// (ms from when the status was made), for a Retry-After header.
[[nodiscard]] std::optional<int64_t> RetryAfterMs(const absl::Status& status);

class CircuitBreaker {
 public:
  // `clock` null: the real clock. `log` null: changes are not reported.
  // `registry` null: not listed anywhere. Both must outlive the breaker.
  CircuitBreaker(std::string name, CircuitBreakerOptions options, Clock* clock = nullptr,
                 BreakerLogFn log = {},
                 CircuitBreakerRegistry* registry = &CircuitBreakerRegistry::Default());
  ~CircuitBreaker();
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Admission to one call. Record the call's result on it; a permit dropped
  // unrecorded counts as a cancellation (ignored). Move-only.
  class Permit {
   public:
    Permit(Permit&& other) noexcept;
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit();

    void Record(const absl::Status& result) { RecordOutcome(ClassifyResult(result), result); }
    void RecordOutcome(CallOutcome outcome, const absl::Status& result = absl::OkStatus());

   private:
    friend class CircuitBreaker;
    Permit(CircuitBreaker* breaker, uint64_t generation, bool probe)
        : breaker_(breaker), generation_(generation), probe_(probe) {}
    CircuitBreaker* breaker_ = nullptr;
    uint64_t generation_ = 0;
    bool probe_ = false;
  };

  // A permit, or kCircuitOpen naming the breaker, why it opened and when it
  // lets a probe through (RetryAfterMs reads that back).
  [[nodiscard]] absl::StatusOr<Permit> Allow();

  // Allow + fn() + Record. `fn` returns absl::Status or absl::StatusOr<T>.
  template <typename Fn>
  auto Run(Fn&& fn) -> std::invoke_result_t<Fn> {
    absl::StatusOr<Permit> permit = Allow();
    if (!permit.ok()) return permit.status();
    auto result = std::forward<Fn>(fn)();
    permit->Record(StatusOf(result));
    return result;
  }

  // The state now; moves an open breaker whose timeout passed to half-open
  // (reported like any other change).
  [[nodiscard]] BreakerState state();
  [[nodiscard]] BreakerSnapshot Snapshot() const;
  // Back to closed with the failure count cleared (operator action, tests).
  void Reset();

  const std::string& name() const { return name_; }
  const CircuitBreakerOptions& options() const { return options_; }

 private:
  static const absl::Status& StatusOf(const absl::Status& s) { return s; }
  template <typename T>
  static absl::Status StatusOf(const absl::StatusOr<T>& s) {
    return s.status();
  }

  // Each takes mu_ as held; changes to report are appended to `changes`.
  void TransitionLocked(BreakerState to, std::string_view reason, std::vector<BreakerStateChange>& changes);
  void MaybeHalfOpenLocked(std::vector<BreakerStateChange>& changes);
  void Finish(const Permit& permit, CallOutcome outcome, const absl::Status& result);
  void Report(const std::vector<BreakerStateChange>& changes);

  const std::string name_;
  const CircuitBreakerOptions options_;
  Clock* const clock_;
  const BreakerLogFn log_;
  CircuitBreakerRegistry* const registry_;

  mutable std::mutex mu_;
  BreakerState state_ = BreakerState::kClosed;  // guarded by mu_
  uint64_t generation_ = 1;                     // bumped on every change; mu_
  uint64_t sequence_ = 0;                       // changes so far; mu_
  int consecutive_failures_ = 0;                // closed; mu_
  int64_t opened_at_ms_ = 0;                    // monotonic; mu_
  int probes_in_flight_ = 0;                    // half-open; mu_
  int probe_successes_ = 0;                     // half-open; mu_
  uint64_t trips_consecutive_ = 0;              // mu_
  uint64_t trips_probe_ = 0;                    // mu_
  uint64_t rejected_ = 0;                       // mu_
  std::string last_error_;                      // mu_
};

}  // namespace xg2g

#endif  // XG2G_LIB_UPSTREAM_CIRCUIT_BREAKER_H_

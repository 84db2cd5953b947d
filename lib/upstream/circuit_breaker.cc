#include "lib/upstream/circuit_breaker.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "lib/common/json_writer.h"

namespace xg2g {
namespace {

constexpr std::string_view kRetryAfterPayload = "xg2g.dev/retry-after-ms";

// Prometheus label values escape backslash, double quote and newline.
void AppendLabelValue(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

}  // namespace

std::string_view BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed: return "closed";
    case BreakerState::kHalfOpen: return "half-open";
    case BreakerState::kOpen: return "open";
  }
  return "unknown";
}

absl::Status ValidateCircuitBreakerOptions(const CircuitBreakerOptions& o) {
  if (o.failure_threshold < 1) {
    return InvalidError(fmt::format("circuit breaker: failure_threshold must be >= 1, got {}",
                                    o.failure_threshold));
  }
  if (o.open_timeout_ms < 1) {
    return InvalidError(fmt::format("circuit breaker: open_timeout_ms must be >= 1, got {}",
                                    o.open_timeout_ms));
  }
  if (o.half_open_max_probes < 1) {
    return InvalidError(fmt::format("circuit breaker: half_open_max_probes must be >= 1, got {}",
                                    o.half_open_max_probes));
  }
  if (o.half_open_success_threshold < 1) {
    return InvalidError(
        fmt::format("circuit breaker: half_open_success_threshold must be >= 1, got {}",
                    o.half_open_success_threshold));
  }
  return absl::OkStatus();
}

std::string BreakerStateChangeJson(const BreakerStateChange& change) {
  std::string line = R"({"level":"warn","msg":"circuit breaker state change","breaker":)";
  AppendJsonString(line, change.name);
  line += R"(,"from":")";
  line += BreakerStateName(change.from);
  line += R"(","to":")";
  line += BreakerStateName(change.to);
  line += R"(","reason":)";
  AppendJsonString(line, change.reason);
  if (!change.last_error.empty()) {
    line += R"(,"last_error":)";
    AppendJsonString(line, change.last_error);
  }
  line += fmt::format(R"(,"time_unix_ms":{},"sequence":{}}})", change.at_unix_ms, change.sequence);
  return line;
}

BreakerLogFn StderrBreakerLog() {
  return [](const BreakerStateChange& change) {
    const std::string line = BreakerStateChangeJson(change) + "\n";
    // Best effort: a failed write to stderr has nowhere better to go.
    (void)std::fwrite(line.data(), 1, line.size(), stderr);
  };
}

CallOutcome ClassifyResult(const absl::Status& result) {
  switch (CodeOf(result)) {
    case ErrorCode::kOk:
      return CallOutcome::kSuccess;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
    case ErrorCode::kIo:
    case ErrorCode::kCorrupt:
    case ErrorCode::kInternal:
      return CallOutcome::kFailure;
    case ErrorCode::kCancelled:
    case ErrorCode::kCircuitOpen:  // a nested breaker's answer says nothing of this upstream
    case ErrorCode::kNoMemory:
      return CallOutcome::kIgnored;
    default:
      // The upstream answered and refused: it is alive.
      return CallOutcome::kSuccess;
  }
}

std::optional<int64_t> RetryAfterMs(const absl::Status& status) {
  if (CodeOf(status) != ErrorCode::kCircuitOpen) return std::nullopt;
  auto payload = status.GetPayload(ToAbsl(kRetryAfterPayload));
  if (!payload) return std::nullopt;
  int64_t ms = 0;
  if (!absl::SimpleAtoi(payload->Flatten(), &ms)) return std::nullopt;
  return ms;
}

// ---------------------------------------------------------------------------
// Registry and metrics

CircuitBreakerRegistry& CircuitBreakerRegistry::Default() {
  static auto* const registry = new CircuitBreakerRegistry();
  return *registry;
}

void CircuitBreakerRegistry::Add(const CircuitBreaker* breaker) {
  std::lock_guard<std::mutex> lock(mu_);
  breakers_.push_back(breaker);
}

void CircuitBreakerRegistry::Remove(const CircuitBreaker* breaker) {
  std::lock_guard<std::mutex> lock(mu_);
  breakers_.erase(std::remove(breakers_.begin(), breakers_.end(), breaker), breakers_.end());
}

std::vector<BreakerSnapshot> CircuitBreakerRegistry::Snapshots() const {
  // Lock order: registry, then breaker. A breaker never takes the registry's
  // lock while holding its own (it registers in its constructor and
  // unregisters in its destructor, both without its own lock).
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<BreakerSnapshot> out;
  out.reserve(breakers_.size());
  for (const CircuitBreaker* breaker : breakers_) out.push_back(breaker->Snapshot());
  return out;
}

void AppendCircuitBreakerMetrics(std::string& out, const std::vector<BreakerSnapshot>& breakers) {
  if (breakers.empty()) return;
  struct Merged {
    BreakerState state = BreakerState::kClosed;
    std::map<std::string, uint64_t> trips;
  };
  std::vector<std::string> order;
  std::map<std::string, Merged> merged;
  for (const BreakerSnapshot& b : breakers) {
    auto [it, inserted] = merged.try_emplace(b.name);
    if (inserted) order.push_back(b.name);
    if (static_cast<int>(b.state) > static_cast<int>(it->second.state)) it->second.state = b.state;
    for (const auto& [reason, count] : b.trips) it->second.trips[reason] += count;
  }
  out += "# HELP xg2g_circuit_breaker_state Circuit breaker state (0 closed, 1 half-open, 2 open).\n";
  out += "# TYPE xg2g_circuit_breaker_state gauge\n";
  for (const std::string& name : order) {
    out += "xg2g_circuit_breaker_state{name=\"";
    AppendLabelValue(out, name);
    out += fmt::format("\"}} {}\n", static_cast<int>(merged[name].state));
  }
  out += "# HELP xg2g_circuit_breaker_trips_total Times a circuit breaker opened, by reason.\n";
  out += "# TYPE xg2g_circuit_breaker_trips_total counter\n";
  for (const std::string& name : order) {
    for (const auto& [reason, count] : merged[name].trips) {
      out += "xg2g_circuit_breaker_trips_total{name=\"";
      AppendLabelValue(out, name);
      out += "\",reason=\"";
      AppendLabelValue(out, reason);
      out += fmt::format("\"}} {}\n", count);
    }
  }
}

void AppendCircuitBreakerMetrics(std::string& out) {
  AppendCircuitBreakerMetrics(out, CircuitBreakerRegistry::Default().Snapshots());
}

// ---------------------------------------------------------------------------
// Breaker

CircuitBreaker::CircuitBreaker(std::string name, CircuitBreakerOptions options, Clock* clock,
                               BreakerLogFn log, CircuitBreakerRegistry* registry)
    : name_(std::move(name)),
      options_(options),
      clock_(clock != nullptr ? clock : Clock::Real()),
      log_(std::move(log)),
      registry_(registry) {
  if (registry_ != nullptr) registry_->Add(this);
}

CircuitBreaker::~CircuitBreaker() {
  if (registry_ != nullptr) registry_->Remove(this);
}

void CircuitBreaker::TransitionLocked(BreakerState to, std::string_view reason,
                                      std::vector<BreakerStateChange>& changes) {
  if (state_ == to) return;
  BreakerStateChange change;
  change.name = name_;
  change.from = state_;
  change.to = to;
  change.reason = std::string(reason);
  if (to == BreakerState::kOpen) change.last_error = last_error_;
  change.at_unix_ms = clock_->NowUnixMs();
  change.sequence = ++sequence_;
  state_ = to;
  ++generation_;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  if (to == BreakerState::kOpen) {
    opened_at_ms_ = clock_->MonotonicMs();
    if (reason == kTripConsecutiveFailures) ++trips_consecutive_;
    if (reason == kTripProbeFailed) ++trips_probe_;
  }
  if (to == BreakerState::kClosed) consecutive_failures_ = 0;
  changes.push_back(std::move(change));
}

void CircuitBreaker::MaybeHalfOpenLocked(std::vector<BreakerStateChange>& changes) {
  if (state_ == BreakerState::kOpen &&
      clock_->MonotonicMs() - opened_at_ms_ >= options_.open_timeout_ms) {
    TransitionLocked(BreakerState::kHalfOpen, "open_timeout_elapsed", changes);
  }
}

void CircuitBreaker::Report(const std::vector<BreakerStateChange>& changes) {
  if (!log_) return;
  for (const BreakerStateChange& change : changes) log_(change);
}

absl::StatusOr<CircuitBreaker::Permit> CircuitBreaker::Allow() {
  std::vector<BreakerStateChange> changes;
  std::optional<Permit> permit;
  absl::Status rejection;
  {
    std::lock_guard<std::mutex> lock(mu_);
    MaybeHalfOpenLocked(changes);
    switch (state_) {
      case BreakerState::kClosed:
        permit.emplace(Permit(this, generation_, false));
        break;
      case BreakerState::kHalfOpen:
        if (probes_in_flight_ < options_.half_open_max_probes) {
          ++probes_in_flight_;
          permit.emplace(Permit(this, generation_, true));
        } else {
          ++rejected_;
          rejection = CircuitOpenError(fmt::format(
              "circuit breaker '{}' is half-open and its {} probe call(s) are in flight; not "
              "calling the upstream",
              name_, options_.half_open_max_probes));
          rejection.SetPayload(ToAbsl(kRetryAfterPayload), absl::Cord("0"));
        }
        break;
      case BreakerState::kOpen: {
        ++rejected_;
        const int64_t retry_ms = std::max<int64_t>(
            0, opened_at_ms_ + options_.open_timeout_ms - clock_->MonotonicMs());
        rejection = CircuitOpenError(fmt::format(
            "circuit breaker '{}' is open (last failure: {}); not calling the upstream for "
            "another {} ms",
            name_, last_error_.empty() ? "none recorded" : last_error_, retry_ms));
        rejection.SetPayload(ToAbsl(kRetryAfterPayload), absl::Cord(std::to_string(retry_ms)));
        break;
      }
    }
  }
  Report(changes);
  if (permit.has_value()) return std::move(*permit);
  return rejection;
}

void CircuitBreaker::Finish(const Permit& permit, CallOutcome outcome, const absl::Status& result) {
  std::vector<BreakerStateChange> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (permit.generation_ != generation_) {
      // The breaker changed state since this call was admitted: its result
      // belongs to a past episode.
    } else if (state_ == BreakerState::kHalfOpen && permit.probe_) {
      --probes_in_flight_;
      if (outcome == CallOutcome::kFailure) {
        last_error_ = std::string(FromAbsl(result.message()));
        TransitionLocked(BreakerState::kOpen, kTripProbeFailed, changes);
      } else if (outcome == CallOutcome::kSuccess &&
                 ++probe_successes_ >= options_.half_open_success_threshold) {
        TransitionLocked(BreakerState::kClosed, "probes_succeeded", changes);
      }
    } else if (state_ == BreakerState::kClosed) {
      if (outcome == CallOutcome::kFailure) {
        last_error_ = std::string(FromAbsl(result.message()));
        if (++consecutive_failures_ >= options_.failure_threshold) {
          TransitionLocked(BreakerState::kOpen, kTripConsecutiveFailures, changes);
        }
      } else if (outcome == CallOutcome::kSuccess) {
        consecutive_failures_ = 0;
      }
    }
  }
  Report(changes);
}

BreakerState CircuitBreaker::state() {
  std::vector<BreakerStateChange> changes;
  BreakerState state{};
  {
    std::lock_guard<std::mutex> lock(mu_);
    MaybeHalfOpenLocked(changes);
    state = state_;
  }
  Report(changes);
  return state;
}

BreakerSnapshot CircuitBreaker::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  BreakerSnapshot s;
  s.name = name_;
  s.state = state_;
  if (state_ == BreakerState::kOpen &&
      clock_->MonotonicMs() - opened_at_ms_ >= options_.open_timeout_ms) {
    s.state = BreakerState::kHalfOpen;  // the next call is a probe
  }
  s.consecutive_failures = consecutive_failures_;
  s.trips[std::string(kTripConsecutiveFailures)] = trips_consecutive_;
  s.trips[std::string(kTripProbeFailed)] = trips_probe_;
  s.rejected = rejected_;
  s.last_error = last_error_;
  return s;
}

void CircuitBreaker::Reset() {
  std::vector<BreakerStateChange> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TransitionLocked(BreakerState::kClosed, "reset", changes);
    consecutive_failures_ = 0;
  }
  Report(changes);
}

// ---------------------------------------------------------------------------
// Permit

CircuitBreaker::Permit::Permit(Permit&& other) noexcept
    : breaker_(std::exchange(other.breaker_, nullptr)),
      generation_(other.generation_),
      probe_(other.probe_) {}

CircuitBreaker::Permit& CircuitBreaker::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    RecordOutcome(CallOutcome::kIgnored);
    breaker_ = std::exchange(other.breaker_, nullptr);
    generation_ = other.generation_;
    probe_ = other.probe_;
  }
  return *this;
}

CircuitBreaker::Permit::~Permit() { RecordOutcome(CallOutcome::kIgnored); }

void CircuitBreaker::Permit::RecordOutcome(CallOutcome outcome, const absl::Status& result) {
  CircuitBreaker* breaker = std::exchange(breaker_, nullptr);
  if (breaker != nullptr) breaker->Finish(*this, outcome, result);
}

}  // namespace xg2g

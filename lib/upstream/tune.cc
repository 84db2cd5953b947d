#include "lib/upstream/tune.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g {

absl::Status ValidateTuneOptions(const TuneOptions& o) {
  if (o.poll_interval_ms < 1) {
    return InvalidError(
        fmt::format("tune: poll_interval_ms must be >= 1, got {}", o.poll_interval_ms));
  }
  if (o.poll_jitter_ms < 0 || o.poll_jitter_ms >= o.poll_interval_ms) {
    return InvalidError(fmt::format("tune: poll_jitter_ms must be >= 0 and < poll_interval_ms "
                                    "({}), got {}",
                                    o.poll_interval_ms, o.poll_jitter_ms));
  }
  if (o.required_polls < 1) {
    return InvalidError(fmt::format("tune: required_polls must be >= 1, got {}", o.required_polls));
  }
  if (o.max_bad_polls < 0) {
    return InvalidError(fmt::format("tune: max_bad_polls must be >= 0, got {}", o.max_bad_polls));
  }
  return absl::OkStatus();
}

TuneObservation PollReceiver(ReceiverApi& receiver, const ReceiverCallOptions& call) {
  TuneObservation observation;
  absl::StatusOr<CurrentService> current = receiver.GetCurrent(call);
  if (!current.ok()) {
    observation.error = current.status();
    return observation;
  }
  observation.service_ref = current->service_ref;
  observation.service_name = current->name;
  absl::StatusOr<SignalInfo> signal = receiver.GetSignal(call);
  if (!signal.ok()) {
    observation.error = signal.status();
    return observation;
  }
  observation.signal = *signal;
  return observation;
}

Reason TuneFailureReason(const absl::Status& status) {
  switch (CodeOf(status)) {
    case ErrorCode::kOk: return Reason::kNone;
    case ErrorCode::kTimeout: return Reason::kTuneTimeout;
    case ErrorCode::kCancelled: return Reason::kCancelled;
    default: return Reason::kTuneFailed;
  }
}

int64_t JitteredPause(const TuneOptions& options, std::mt19937& rng) {
  int64_t pause = options.poll_interval_ms;
  if (options.poll_jitter_ms > 0) {
    std::uniform_int_distribution<int64_t> jitter(-options.poll_jitter_ms, options.poll_jitter_ms);
    pause += jitter(rng);
  }
  return std::max<int64_t>(1, pause);
}

// ---------------------------------------------------------------------------
// TuneProgress

TuneProgress::TuneProgress(std::string service_ref, int slot, const TuneOptions& options)
    : service_ref_(std::move(service_ref)), slot_(slot), options_(options) {}

TuneProgress::Verdict TuneProgress::Observe(const TuneObservation& o) {
  if (!failure_.ok()) return Verdict::kFailed;
  const std::string prefix = fmt::format("tune of '{}' on slot {}", service_ref_, slot_);
  Problem problem = Problem::kNone;
  absl::Status why;
  if (!o.error.ok()) {
    const ErrorCode code = CodeOf(o.error);
    if (code == ErrorCode::kCancelled) return Verdict::kPending;  // the caller's, not a result
    last_seen_ = fmt::format("the receiver did not answer: {}", FromAbsl(o.error.message()));
    if (code == ErrorCode::kCircuitOpen) {
      ++polls_;
      failure_ = CircuitOpenError(fmt::format("{}: {}", prefix, FromAbsl(o.error.message())));
      return Verdict::kFailed;
    }
    problem = Problem::kUnreachable;
    why = UnavailableError(fmt::format("{}: {}", prefix, last_seen_));
  } else if (!SameServiceRef(o.service_ref, service_ref_)) {
    last_seen_ = o.service_ref.empty()
                     ? std::string("no service is playing")
                     : fmt::format("the receiver shows '{}'{} instead", o.service_ref,
                                   o.service_name.empty() ? "" : " (" + o.service_name + ")");
    problem = Problem::kWrongService;
    why = ConflictError(fmt::format("{}: {}", prefix, last_seen_));
  } else if (!o.signal.locked) {
    last_seen_ = fmt::format("no signal lock ({})", DescribeSignal(o.signal));
    problem = Problem::kNoLock;
    why = UnavailableError(fmt::format("{}: {}", prefix, last_seen_));
  }
  ++polls_;
  if (problem == Problem::kNone) {
    bad_streak_ = 0;
    last_problem_ = Problem::kNone;
    ++good_streak_;
    last_seen_ = fmt::format("the service is current with a lock ({}); {} of {} polls confirmed",
                             DescribeSignal(o.signal), good_streak_, options_.required_polls);
    return good_streak_ >= options_.required_polls ? Verdict::kReady : Verdict::kPending;
  }
  good_streak_ = 0;
  bad_streak_ = problem == last_problem_ ? bad_streak_ + 1 : 1;
  last_problem_ = problem;
  if (options_.max_bad_polls > 0 && bad_streak_ >= options_.max_bad_polls) {
    failure_ = MakeError(CodeOf(why), fmt::format("{} ({} polls in a row)",
                                                  FromAbsl(why.message()), bad_streak_));
    return Verdict::kFailed;
  }
  return Verdict::kPending;
}

absl::Status TuneProgress::Timeout(int64_t waited_ms) const {
  return MakeError(ErrorCode::kTimeout,
                   fmt::format("tune of '{}' on slot {} not confirmed within {} ms ({} poll(s)); "
                               "last poll: {}",
                               service_ref_, slot_, waited_ms, polls_, last_seen_));
}

// ---------------------------------------------------------------------------
// TuneWaiter

TuneWaiter::TuneWaiter(ReceiverApi* receiver, TuneOptions options, Clock* clock)
    : receiver_(receiver),
      options_(options),
      clock_(clock != nullptr ? clock : Clock::Real()),
      rng_(std::random_device{}()) {}

uint64_t TuneWaiter::polls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return polls_;
}

int64_t TuneWaiter::NextPause() {
  std::lock_guard<std::mutex> lock(mu_);
  return NextPauseLocked();
}

int64_t TuneWaiter::NextPauseLocked() { return JitteredPause(options_, rng_); }

absl::Status TuneWaiter::WaitTuned(int slot, std::string_view service_ref, int64_t timeout_ms,
                                   const CancelToken* cancel) {
  XG2G_RETURN_IF_ERROR(ValidateTuneOptions(options_));
  if (service_ref.empty()) return InvalidError("tune: the service ref is empty");
  if (timeout_ms < 1) {
    return InvalidError(fmt::format("tune: timeout_ms must be >= 1, got {}", timeout_ms));
  }
  const int64_t start = clock_->MonotonicMs();
  Waiter me{TuneProgress(std::string(service_ref), slot, options_), start + timeout_ms, false,
            absl::OkStatus()};

  // Subscribed before taking mu_: a token cancelled already runs the
  // callback here, and the callback takes mu_.
  CancelToken::Subscription wake;
  if (cancel != nullptr) {
    wake = cancel->OnCancel([this] {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    });
  }

  std::unique_lock<std::mutex> lock(mu_);
  Slot& group = slots_[slot];  // std::map: stable while the slot has waiters
  group.waiters.push_back(&me);
  for (;;) {
    if (me.done) break;
    if (cancel != nullptr && cancel->cancelled()) {
      me.result = MakeError(ErrorCode::kCancelled,
                            fmt::format("tune of '{}' on slot {}: cancelled; last poll: {}",
                                        service_ref, slot, me.progress.last_seen()));
      break;
    }
    const int64_t now = clock_->MonotonicMs();
    if (now >= me.deadline_ms) {
      me.result = me.progress.Timeout(now - start);
      break;
    }
    if (!group.polling && now >= group.next_poll_ms) {
      // This waiter polls for the whole slot, without the lock. The call may
      // take as long as the longest waiter still has.
      int64_t longest = 0;
      for (const Waiter* w : group.waiters) longest = std::max(longest, w->deadline_ms - now);
      group.polling = true;
      lock.unlock();
      ReceiverCallOptions call;
      call.cancel = cancel;
      call.timeout_ms = std::max<int64_t>(1, longest);
      const TuneObservation observation = PollReceiver(*receiver_, call);
      lock.lock();
      group.polling = false;
      const bool mine_cancelled = CodeOf(observation.error) == ErrorCode::kCancelled;
      if (!mine_cancelled) {
        ++polls_;
        group.next_poll_ms = clock_->MonotonicMs() + NextPauseLocked();
        for (Waiter* w : group.waiters) {
          if (w->done) continue;
          switch (w->progress.Observe(observation)) {
            case TuneProgress::Verdict::kReady:
              w->done = true;
              w->result = absl::OkStatus();
              break;
            case TuneProgress::Verdict::kFailed:
              w->done = true;
              w->result = w->progress.Failure();
              break;
            case TuneProgress::Verdict::kPending:
              break;
          }
        }
      }
      cv_.notify_all();
      continue;
    }
    // Someone else polls, or the next poll is not due: wait for a result, the
    // poll time, the deadline or a cancel.
    int64_t until = me.deadline_ms;
    if (!group.polling) until = std::min(until, group.next_poll_ms);
    int64_t left = std::max<int64_t>(1, until - now);
    if (clock_ != Clock::Real()) left = std::min<int64_t>(left, 10);
    cv_.wait_for(lock, std::chrono::milliseconds(left));
  }
  group.waiters.remove(&me);
  if (group.waiters.empty() && !group.polling) slots_.erase(slot);
  cv_.notify_all();  // a waiter left: another may have to take over polling
  return me.result;
}

absl::Status TuneWaiter::Tune(int slot, std::string_view service_ref, int64_t timeout_ms,
                              const CancelToken* cancel) {
  if (service_ref.empty()) return InvalidError("tune: the service ref is empty");
  if (timeout_ms < 1) {
    return InvalidError(fmt::format("tune: timeout_ms must be >= 1, got {}", timeout_ms));
  }
  const int64_t start = clock_->MonotonicMs();
  ReceiverCallOptions call;
  call.cancel = cancel;
  call.timeout_ms = timeout_ms;
  absl::Status zapped = receiver_->Zap(service_ref, call);
  if (!zapped.ok()) {
    const ErrorCode code = CodeOf(zapped);
    // The zap's own timeout is not the tune's deadline: a receiver that does
    // not answer a zap failed the tune.
    const ErrorCode as = (code == ErrorCode::kCancelled || code == ErrorCode::kCircuitOpen ||
                          code == ErrorCode::kInvalid)
                             ? code
                             : ErrorCode::kUnavailable;
    return MakeError(as, fmt::format("tune of '{}' on slot {}: zap failed: {}", service_ref, slot,
                                     FromAbsl(zapped.message())));
  }
  const int64_t left = timeout_ms - (clock_->MonotonicMs() - start);
  if (left < 1) {
    return MakeError(ErrorCode::kTimeout,
                     fmt::format("tune of '{}' on slot {}: the zap took the whole {} ms",
                                 service_ref, slot, timeout_ms));
  }
  return WaitTuned(slot, service_ref, left, cancel);
}

}  // namespace xg2g

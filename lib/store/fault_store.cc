#include "lib/store/fault_store.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g {

FaultInjectingStore::FaultInjectingStore(Store* inner, Clock* clock)
    : inner_(inner), clock_(clock != nullptr ? clock : Clock::Real()) {}

std::string_view FaultInjectingStore::NameOf(Method method) {
  switch (method) {
    case Method::kPutSession: return "PutSession";
    case Method::kGetSession: return "GetSession";
    case Method::kUpdateSession: return "UpdateSession";
    case Method::kDeleteSession: return "DeleteSession";
    case Method::kScanSessions: return "ScanSessions";
    case Method::kListSessions: return "ListSessions";
    case Method::kPutSessionWithIdempotency: return "PutSessionWithIdempotency";
    case Method::kGetIdempotency: return "GetIdempotency";
    case Method::kDeleteIdempotency: return "DeleteIdempotency";
    case Method::kAcquireLease: return "AcquireLease";
    case Method::kRenewLease: return "RenewLease";
    case Method::kReleaseLease: return "ReleaseLease";
    case Method::kGetLease: return "GetLease";
    case Method::kListLeases: return "ListLeases";
    case Method::kAcquireFirstFreeLease: return "AcquireFirstFreeLease";
    case Method::kRenewLeases: return "RenewLeases";
    case Method::kReleaseLeases: return "ReleaseLeases";
    case Method::kCount: break;
  }
  return "?";
}

bool FaultInjectingStore::IsWrite(Method method) {
  switch (method) {
    case Method::kPutSession:
    case Method::kUpdateSession:
    case Method::kDeleteSession:
    case Method::kPutSessionWithIdempotency:
    case Method::kDeleteIdempotency:
    case Method::kAcquireLease:
    case Method::kAcquireFirstFreeLease:
    case Method::kRenewLease:
    case Method::kRenewLeases:
    case Method::kReleaseLease:
    case Method::kReleaseLeases:
      return true;
    default:
      return false;
  }
}

bool FaultInjectingStore::IsWriteMethod(std::string_view method) {
  for (size_t i = 0; i < kMethodCount; ++i) {
    const auto m = static_cast<Method>(i);
    if (NameOf(m) == method) return IsWrite(m);
  }
  return false;
}

// ------------------------------------------------------------------ modes

void FaultInjectingStore::SetMode(Mode mode, int64_t n, int64_t deadline_ms) {
  std::lock_guard lock(mu_);
  mode_ = mode;
  mode_n_ = std::max<int64_t>(n, 1);
  mode_deadline_ms_ = deadline_ms;
  calls_in_mode_ = 0;
}

void FaultInjectingStore::FailNone() { SetMode(Mode::kNone, 0, 0); }
void FaultInjectingStore::FailNthCall(int64_t n) { SetMode(Mode::kFailNthCall, n, 0); }
void FaultInjectingStore::FailFromNthCall(int64_t n) { SetMode(Mode::kFailFromNthCall, n, 0); }
void FaultInjectingStore::FailWrites() { SetMode(Mode::kFailWrites, 0, 0); }
void FaultInjectingStore::FailAll() { SetMode(Mode::kFailAll, 0, 0); }

void FaultInjectingStore::FailAfterDelay(int64_t delay_ms) {
  const int64_t now = clock_->MonotonicMs();
  const int64_t deadline = delay_ms > std::numeric_limits<int64_t>::max() - now
                               ? std::numeric_limits<int64_t>::max()
                               : now + delay_ms;
  SetMode(Mode::kFailAfterDeadline, 0, deadline);
}

absl::Status FaultInjectingStore::FailMethod(std::string_view method) {
  for (size_t i = 0; i < kMethodCount; ++i) {
    const auto m = static_cast<Method>(i);
    if (NameOf(m) != method) continue;
    {
      std::lock_guard lock(mu_);
      mode_method_ = m;
    }
    SetMode(Mode::kFailMethod, 0, 0);
    return absl::OkStatus();
  }
  return InvalidError(fmt::format("fault store: no store method is named '{}'", method));
}

void FaultInjectingStore::FailRandomly(double probability, uint64_t seed) {
  // NaN counts as 0; the threshold is probability x 2^64 on the draw's scale.
  const double p = probability >= 1.0 ? 1.0 : (probability > 0.0 ? probability : 0.0);
  constexpr double kScale = 18446744073709551616.0;  // 2^64
  {
    std::lock_guard lock(mu_);
    random_always_ = p >= 1.0;
    random_threshold_ = random_always_ ? 0 : static_cast<uint64_t>(p * kScale);
    random_.emplace(seed);
  }
  SetMode(Mode::kFailRandomly, 0, 0);
}

FaultInjectingStore::Mode FaultInjectingStore::mode() const {
  std::lock_guard lock(mu_);
  return mode_;
}

// --------------------------------------------------------------- counters

int64_t FaultInjectingStore::CallCount() const {
  std::lock_guard lock(mu_);
  return total_calls_;
}

int64_t FaultInjectingStore::CallsSinceReset() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(call_log_.size());
}

int64_t FaultInjectingStore::CallCount(std::string_view method) const {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < kMethodCount; ++i) {
    if (NameOf(static_cast<Method>(i)) == method) return calls_by_method_[i];
  }
  return 0;
}

std::vector<std::string> FaultInjectingStore::Calls() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  names.reserve(call_log_.size());
  for (Method method : call_log_) names.emplace_back(NameOf(method));
  return names;
}

int64_t FaultInjectingStore::FaultsInjected() const {
  std::lock_guard lock(mu_);
  return faults_;
}

void FaultInjectingStore::ResetCalls() {
  std::lock_guard lock(mu_);
  call_log_.clear();
  calls_by_method_.fill(0);
}

// ---------------------------------------------------------------- admission

void FaultInjectingStore::SetCallHook(CallHook hook) {
  auto shared = hook ? std::make_shared<const CallHook>(std::move(hook)) : nullptr;
  std::lock_guard lock(mu_);
  hook_ = std::move(shared);
}

absl::Status FaultInjectingStore::Admit(Method method) {
  // Read before the lock: the clock is the caller's and may take locks of
  // its own. A call that read it just before a FailAfterDelay set the mode
  // compares a time from before the deadline was set: it goes through.
  const int64_t now = clock_->MonotonicMs();
  std::shared_ptr<const CallHook> hook;
  absl::Status verdict = Judge(method, now, hook);
  if (hook) (*hook)(NameOf(method));  // no lock held: it may call the wrapper
  return verdict;
}

absl::Status FaultInjectingStore::Judge(Method method, int64_t now,
                                        std::shared_ptr<const CallHook>& hook) {
  std::lock_guard lock(mu_);
  hook = hook_;
  ++total_calls_;
  ++calls_by_method_[static_cast<size_t>(method)];
  call_log_.push_back(method);
  const int64_t number = ++calls_in_mode_;
  bool fail = false;
  switch (mode_) {
    case Mode::kNone:
      break;
    case Mode::kFailNthCall:
      fail = number == mode_n_;
      break;
    case Mode::kFailFromNthCall:
      fail = number >= mode_n_;
      break;
    case Mode::kFailWrites:
      fail = IsWrite(method);
      break;
    case Mode::kFailAll:
      fail = true;
      break;
    case Mode::kFailAfterDeadline:
      fail = now >= mode_deadline_ms_;
      break;
    case Mode::kFailRandomly:
      fail = random_always_ || (random_.has_value() && (*random_)() < random_threshold_);
      break;
    case Mode::kFailMethod:
      fail = method == mode_method_;
      break;
  }
  if (!fail) return absl::OkStatus();
  ++faults_;
  return UnavailableError(fmt::format("injected fault: {} call #{}", NameOf(method), number));
}

// --------------------------------------------------------------- forwarding

absl::Status FaultInjectingStore::PutSession(const SessionRecord& record) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kPutSession));
  return inner_->PutSession(record);
}

absl::StatusOr<SessionRecord> FaultInjectingStore::GetSession(std::string_view id) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kGetSession));
  return inner_->GetSession(id);
}

absl::StatusOr<SessionRecord> FaultInjectingStore::UpdateSession(std::string_view id,
                                                                 const Mutator& mutate) {
  // Failed whole, before the inner read: the mutator never runs and nothing
  // is half written.
  XG2G_RETURN_IF_ERROR(Admit(Method::kUpdateSession));
  return inner_->UpdateSession(id, mutate);
}

absl::Status FaultInjectingStore::DeleteSession(std::string_view id) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kDeleteSession));
  return inner_->DeleteSession(id);
}

absl::Status FaultInjectingStore::ScanSessions(const Visitor& visit) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kScanSessions));
  return inner_->ScanSessions(visit);
}

absl::StatusOr<SessionPage> FaultInjectingStore::ListSessions(size_t offset, size_t limit) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kListSessions));
  return inner_->ListSessions(offset, limit);
}

absl::StatusOr<IdempotencyOutcome> FaultInjectingStore::PutSessionWithIdempotency(
    const SessionRecord& record, std::string_view key, std::string_view fingerprint,
    int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kPutSessionWithIdempotency));
  return inner_->PutSessionWithIdempotency(record, key, fingerprint, ttl_ms);
}

absl::StatusOr<IdempotencyEntry> FaultInjectingStore::GetIdempotency(std::string_view key) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kGetIdempotency));
  return inner_->GetIdempotency(key);
}

absl::Status FaultInjectingStore::DeleteIdempotency(std::string_view key) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kDeleteIdempotency));
  return inner_->DeleteIdempotency(key);
}

absl::StatusOr<LeaseGrant> FaultInjectingStore::AcquireLease(std::string_view key,
                                                             std::string_view owner,
                                                             int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kAcquireLease));
  return inner_->AcquireLease(key, owner, ttl_ms);
}

absl::StatusOr<LeaseGrant> FaultInjectingStore::RenewLease(std::string_view key,
                                                           std::string_view owner,
                                                           int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kRenewLease));
  return inner_->RenewLease(key, owner, ttl_ms);
}

absl::Status FaultInjectingStore::ReleaseLease(std::string_view key, std::string_view owner) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kReleaseLease));
  return inner_->ReleaseLease(key, owner);
}

absl::StatusOr<LeaseInfo> FaultInjectingStore::GetLease(std::string_view key) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kGetLease));
  return inner_->GetLease(key);
}

absl::StatusOr<std::vector<LeaseInfo>> FaultInjectingStore::ListLeases() {
  XG2G_RETURN_IF_ERROR(Admit(Method::kListLeases));
  return inner_->ListLeases();
}

absl::StatusOr<FirstLeaseGrant> FaultInjectingStore::AcquireFirstFreeLease(
    std::span<const std::string_view> keys, std::string_view owner, int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kAcquireFirstFreeLease));
  return inner_->AcquireFirstFreeLease(keys, owner, ttl_ms);
}

absl::StatusOr<std::vector<absl::StatusOr<LeaseGrant>>> FaultInjectingStore::RenewLeases(
    std::span<const LeaseRef> leases, int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kRenewLeases));
  return inner_->RenewLeases(leases, ttl_ms);
}

absl::StatusOr<std::vector<absl::Status>> FaultInjectingStore::ReleaseLeases(
    std::span<const LeaseRef> leases) {
  XG2G_RETURN_IF_ERROR(Admit(Method::kReleaseLeases));
  return inner_->ReleaseLeases(leases);
}

int64_t FaultInjectingStore::NowMs() const { return inner_->NowMs(); }

}  // namespace xg2g

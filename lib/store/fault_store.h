// A Store that forwards to another one and fails calls on demand: the tool
// with which tests prove that a store failing at any step leaves nothing
// behind (DESIGN.md §4: "the store failing ... -> 503, and no session, lease
// or event is created").
//
// Every call is counted and numbered; the fault mode, settable at any time,
// decides whether the call is forwarded or fails with
//   UnavailableError("injected fault: <Method> call #<n>")
// where <n> is the call's number since the mode was set (1 for the first).
// A failed call never reaches the inner store, so it changes nothing there.
// That holds for UpdateSession as a whole: its read, the caller's mutator and
// its write are one call here, failed before any of them runs, so a fault can
// never leave half an update behind (and the mutator does not run).
//
// NowMs() cannot fail: it is forwarded, never counted and never failed.
//
// Thread-safe: calls may come from any thread, and the mode may change while
// they run. The wrapper's own lock is never held while the inner store runs,
// so mutators and visitors may call back into the wrapper.
#ifndef XG2G_LIB_STORE_FAULT_STORE_H_
#define XG2G_LIB_STORE_FAULT_STORE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "lib/common/clock.h"
#include "lib/store/store.h"

namespace xg2g {

class FaultInjectingStore final : public Store {
 public:
  enum class Mode {
    kNone,             // forward everything
    kFailNthCall,      // fail call number n only
    kFailFromNthCall,  // fail call number n and every call after it
    kFailWrites,       // fail every call that writes (see IsWriteMethod)
    kFailAll,          // fail every call
    kFailAfterDeadline,  // fail every call once the clock reaches a deadline
    kFailRandomly,       // fail each call with a set probability (seeded)
    kFailMethod,         // fail every call of one method
  };

  // `inner` (not owned) receives the forwarded calls; `clock` (null: the real
  // clock) times kFailAfterDeadline. Both must outlive the wrapper.
  explicit FaultInjectingStore(Store* inner, Clock* clock = nullptr);
  ~FaultInjectingStore() override = default;

  FaultInjectingStore(const FaultInjectingStore&) = delete;
  FaultInjectingStore& operator=(const FaultInjectingStore&) = delete;

  // Fault modes. Each replaces the previous mode and restarts the numbering
  // of calls: the next call is #1.
  void FailNone();
  // Fails call #n only; the calls before and after it go through. An n below
  // 1 is taken as 1.
  void FailNthCall(int64_t n);
  // Fails call #n (n below 1 taken as 1) and every later call: a store that
  // goes down in the middle of an operation and stays down.
  void FailFromNthCall(int64_t n);
  // Fails PutSession, UpdateSession, DeleteSession, PutSessionWithIdempotency,
  // DeleteIdempotency, AcquireLease, AcquireFirstFreeLease, RenewLease,
  // RenewLeases, ReleaseLease and ReleaseLeases; reads go through.
  void FailWrites();
  void FailAll();
  // Fails every call made once the clock's MonotonicMs() has reached now +
  // `delay_ms` ("the store goes away after a while").
  void FailAfterDelay(int64_t delay_ms);
  // Fails each call, independently, with `probability` (clamped to [0, 1]),
  // drawn from a generator seeded with `seed`: the same seed and the same
  // order of calls give the same faults. Load tests use it to fail calls at
  // random points of concurrent operations.
  void FailRandomly(double probability, uint64_t seed);
  // Fails every call of the method named `method` ("ReleaseLeases"); the
  // other methods go through. InvalidError, mode unchanged, for a name that
  // is not a Store method.
  absl::Status FailMethod(std::string_view method);

  Mode mode() const;

  // Counters. A call counts whether it was forwarded or failed.
  // Every call over the wrapper's lifetime.
  int64_t CallCount() const;
  // Calls since construction or the last ResetCalls().
  int64_t CallsSinceReset() const;
  // Calls of one method ("AcquireLease") since the last reset.
  int64_t CallCount(std::string_view method) const;
  // Method names of the calls since the last reset, in the order they were
  // made (for concurrent calls: the order they were numbered in).
  std::vector<std::string> Calls() const;
  // Calls failed by an injected fault over the wrapper's lifetime.
  int64_t FaultsInjected() const;
  // Starts the per-reset counters and the call list afresh; the mode and its
  // numbering are left alone.
  void ResetCalls();

  // True for the methods kFailWrites fails ("PutSession", ...).
  static bool IsWriteMethod(std::string_view method);

  // Runs `hook` with the method's name at the start of every call, once the
  // call is counted and before it is failed or forwarded, on the caller's
  // thread and with no lock of the wrapper held: a test looks there at what
  // its caller has done so far. An empty function removes the hook.
  using CallHook = std::function<void(std::string_view method)>;
  void SetCallHook(CallHook hook);

  Store* inner() const { return inner_; }

  // Store: forwarded unless the mode says otherwise.
  absl::Status PutSession(const SessionRecord& record) override;
  absl::StatusOr<SessionRecord> GetSession(std::string_view id) override;
  absl::StatusOr<SessionRecord> UpdateSession(std::string_view id,
                                              const Mutator& mutate) override;
  absl::Status DeleteSession(std::string_view id) override;
  absl::Status ScanSessions(const Visitor& visit) override;
  absl::StatusOr<SessionPage> ListSessions(size_t offset, size_t limit) override;
  absl::StatusOr<IdempotencyOutcome> PutSessionWithIdempotency(const SessionRecord& record,
                                                               std::string_view key,
                                                               std::string_view fingerprint,
                                                               int64_t ttl_ms) override;
  absl::StatusOr<IdempotencyEntry> GetIdempotency(std::string_view key) override;
  absl::Status DeleteIdempotency(std::string_view key) override;
  absl::StatusOr<LeaseGrant> AcquireLease(std::string_view key, std::string_view owner,
                                          int64_t ttl_ms) override;
  absl::StatusOr<LeaseGrant> RenewLease(std::string_view key, std::string_view owner,
                                        int64_t ttl_ms) override;
  absl::Status ReleaseLease(std::string_view key, std::string_view owner) override;
  absl::StatusOr<LeaseInfo> GetLease(std::string_view key) override;
  absl::StatusOr<std::vector<LeaseInfo>> ListLeases() override;
  absl::StatusOr<FirstLeaseGrant> AcquireFirstFreeLease(std::span<const std::string_view> keys,
                                                        std::string_view owner,
                                                        int64_t ttl_ms) override;
  absl::StatusOr<std::vector<absl::StatusOr<LeaseGrant>>> RenewLeases(
      std::span<const LeaseRef> leases, int64_t ttl_ms) override;
  absl::StatusOr<std::vector<absl::Status>> ReleaseLeases(
      std::span<const LeaseRef> leases) override;
  int64_t NowMs() const override;

 private:
  enum class Method : uint8_t {
    kPutSession,
    kGetSession,
    kUpdateSession,
    kDeleteSession,
    kScanSessions,
    kListSessions,
    kPutSessionWithIdempotency,
    kGetIdempotency,
    kDeleteIdempotency,
    kAcquireLease,
    kRenewLease,
    kReleaseLease,
    kGetLease,
    kListLeases,
    kAcquireFirstFreeLease,
    kRenewLeases,
    kReleaseLeases,
    kCount,
  };
  static constexpr size_t kMethodCount = static_cast<size_t>(Method::kCount);

  static std::string_view NameOf(Method method);
  static bool IsWrite(Method method);

  // Counts the call, decides its fate (OK to forward, or the injected fault
  // to return instead) and runs the call hook.
  absl::Status Admit(Method method);
  // Admit's part under mu_: the count, the fate, and the hook to run.
  absl::Status Judge(Method method, int64_t now, std::shared_ptr<const CallHook>& hook);
  void SetMode(Mode mode, int64_t n, int64_t deadline_ms);

  Store* const inner_;
  Clock* const clock_;

  mutable std::mutex mu_;
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kNone;
  Method mode_method_ ABSL_GUARDED_BY(mu_) = Method::kCount;  // kFailMethod
  int64_t mode_n_ ABSL_GUARDED_BY(mu_) = 0;            // kFailNthCall, kFailFromNthCall
  int64_t mode_deadline_ms_ ABSL_GUARDED_BY(mu_) = 0;  // kFailAfterDeadline
  // kFailRandomly: a call fails when the next draw is below the threshold.
  uint64_t random_threshold_ ABSL_GUARDED_BY(mu_) = 0;
  bool random_always_ ABSL_GUARDED_BY(mu_) = false;  // probability 1
  std::optional<std::mt19937_64> random_ ABSL_GUARDED_BY(mu_);  // made by FailRandomly
  int64_t calls_in_mode_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t total_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t faults_ ABSL_GUARDED_BY(mu_) = 0;
  std::array<int64_t, kMethodCount> calls_by_method_ ABSL_GUARDED_BY(mu_){};
  // Since the last reset; one small enum per call, so long runs stay cheap.
  std::vector<Method> call_log_ ABSL_GUARDED_BY(mu_);
  // Shared so that a call runs the hook it read while another thread
  // replaces it.
  std::shared_ptr<const CallHook> hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace xg2g

#endif  // XG2G_LIB_STORE_FAULT_STORE_H_

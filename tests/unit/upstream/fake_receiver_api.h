// An in-process receiver for the unit tests of tune readiness and the
// receiver pipeline: what it shows, whether it locks, answers or refuses is
// set by the test; a gate can hold GetCurrent calls until released (to
// catch a poll in flight). Thread-safe.
#ifndef XG2G_TESTS_UNIT_UPSTREAM_FAKE_RECEIVER_API_H_
#define XG2G_TESTS_UNIT_UPSTREAM_FAKE_RECEIVER_API_H_

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>

#include "lib/common/status.h"
#include "lib/upstream/receiver_client.h"

namespace xg2g {

class FakeReceiverApi final : public ReceiverApi {
 public:
  absl::Status Zap(std::string_view ref, const ReceiverCallOptions& = {}) override {
    zaps.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.ok()) return error_;
    if (refuse_zap_) return InvalidError("the receiver refused to zap to '" + std::string(ref) + "'");
    if (!sticky_) current_ = std::string(ref);
    return absl::OkStatus();
  }

  absl::StatusOr<CurrentService> GetCurrent(const ReceiverCallOptions& call = {}) override {
    current_calls.fetch_add(1);
    std::unique_lock<std::mutex> lock(mu_);
    if (gated_) {
      ++waiting_at_gate_;
      cv_.notify_all();
      CancelToken::Subscription wake;
      if (call.cancel != nullptr) {
        lock.unlock();
        wake = call.cancel->OnCancel([this] {
          std::lock_guard<std::mutex> l(mu_);
          cv_.notify_all();
        });
        lock.lock();
      }
      cv_.wait(lock, [&] {
        return !gated_ || (call.cancel != nullptr && call.cancel->cancelled());
      });
      --waiting_at_gate_;
      const bool cancelled = gated_;
      // Unsubscribe without our lock: Cancel() holds the token's lock while
      // its callback takes ours.
      lock.unlock();
      wake.Reset();
      lock.lock();
      if (cancelled) return MakeError(ErrorCode::kCancelled, "cancelled at the gate");
    }
    if (!error_.ok()) return error_;
    CurrentService service;
    service.service_ref = current_;
    service.name = current_.empty() ? "" : "Channel";
    return service;
  }

  absl::StatusOr<SignalInfo> GetSignal(const ReceiverCallOptions& = {}) override {
    signal_calls.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.ok()) return error_;
    SignalInfo signal;
    signal.snr_percent = locked_ ? 92 : 0;
    signal.locked = locked_;
    return signal;
  }

  void SetCurrent(std::string ref) {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = std::move(ref);
  }
  void SetLocked(bool locked) {
    std::lock_guard<std::mutex> lock(mu_);
    locked_ = locked;
  }
  void SetError(absl::Status error) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(error);
  }
  void SetRefuseZap(bool refuse) {
    std::lock_guard<std::mutex> lock(mu_);
    refuse_zap_ = refuse;
  }
  // A zap does not change what plays (someone else holds the tuner).
  void SetSticky(bool sticky) {
    std::lock_guard<std::mutex> lock(mu_);
    sticky_ = sticky;
  }
  void CloseGate() {
    std::lock_guard<std::mutex> lock(mu_);
    gated_ = true;
  }
  void OpenGate() {
    std::lock_guard<std::mutex> lock(mu_);
    gated_ = false;
    cv_.notify_all();
  }
  // Blocks until `n` calls wait at the gate.
  void AwaitAtGate(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return waiting_at_gate_ >= n; });
  }

  std::atomic<int> zaps{0};
  std::atomic<int> current_calls{0};
  std::atomic<int> signal_calls{0};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string current_;
  bool locked_ = true;
  bool refuse_zap_ = false;
  bool sticky_ = false;
  bool gated_ = false;
  int waiting_at_gate_ = 0;
  absl::Status error_;
};

}  // namespace xg2g

#endif  // XG2G_TESTS_UNIT_UPSTREAM_FAKE_RECEIVER_API_H_

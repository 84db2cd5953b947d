#include "lib/upstream/cancel.h"

#include <utility>

namespace xg2g {

void CancelToken::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  // Run under the lock: an unsubscribing waiter blocks until its callback
  // has returned, so the callback never touches a dead waiter.
  for (auto& [id, fn] : callbacks_) {
    if (fn) fn();
  }
  callbacks_.clear();
}

CancelToken::Subscription CancelToken::OnCancel(std::function<void()> fn) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!cancelled_.load(std::memory_order_acquire)) {
      const uint64_t id = next_id_++;
      callbacks_.emplace(id, std::move(fn));
      return Subscription(this, id);
    }
  }
  if (fn) fn();
  return Subscription();
}

void CancelToken::Unsubscribe(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  callbacks_.erase(id);
}

CancelToken::Subscription::Subscription(Subscription&& other) noexcept
    : token_(std::exchange(other.token_, nullptr)), id_(std::exchange(other.id_, 0)) {}

CancelToken::Subscription& CancelToken::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    Reset();
    token_ = std::exchange(other.token_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void CancelToken::Subscription::Reset() {
  if (token_ != nullptr) token_->Unsubscribe(id_);
  token_ = nullptr;
  id_ = 0;
}

}  // namespace xg2g

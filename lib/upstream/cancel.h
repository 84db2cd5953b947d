// A cancel token: any thread trips it, and
// every wait that watches it ends early with ECANCELLED.
//
// Waits in lib/upstream subscribe a wake-up callback for as long as they
// block, so a Cancel() ends a wait at once instead of at its next deadline.
// Thread-safe: Cancel(), cancelled() and subscriptions may be used from any
// thread at any time. A token is never reset: make a new one per operation.
#ifndef XG2G_LIB_UPSTREAM_CANCEL_H_
#define XG2G_LIB_UPSTREAM_CANCEL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace xg2g {

class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Trips the token and runs every subscribed callback on the calling thread.
  // Later calls do nothing.
  void Cancel();
  [[nodiscard]] bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // Keeps a callback subscribed while it lives; destroying it unsubscribes
  // and waits for a callback that is running right now to return, so what
  // the callback touches may be destroyed right after. Hence: never destroy
  // (or Reset) a subscription while holding a lock its callback takes.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& other) noexcept;
    Subscription& operator=(Subscription&& other) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription() { Reset(); }
    void Reset();

   private:
    friend class CancelToken;
    Subscription(const CancelToken* token, uint64_t id) : token_(token), id_(id) {}
    const CancelToken* token_ = nullptr;
    uint64_t id_ = 0;
  };

  // Subscribes `fn`, which runs once when the token is cancelled: on the
  // thread that calls Cancel(), with the token's lock held (keep it short; it
  // must not use this token). If the token is cancelled already, `fn` runs
  // here, at once, and the subscription is empty. The token must outlive the
  // subscription.
  // Subscribing does not change the token: a waiter holds it as const.
  [[nodiscard]] Subscription OnCancel(std::function<void()> fn) const;

 private:
  void Unsubscribe(uint64_t id) const;

  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  mutable uint64_t next_id_ = 1;                                  // guarded by mu_
  mutable std::map<uint64_t, std::function<void()>> callbacks_;  // guarded by mu_
};

}  // namespace xg2g

#endif  // XG2G_LIB_UPSTREAM_CANCEL_H_

// Injectable time source.
//
// Everything in the core that reads time goes through a Clock so tests can
// move time by hand (FakeClock) instead of sleeping. Wall time stamps records;
// monotonic time drives expiry inside one process. Thread-safe.
#ifndef XG2G_LIB_COMMON_CLOCK_H_
#define XG2G_LIB_COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace xg2g {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, Unix milliseconds.
  [[nodiscard]] virtual int64_t NowUnixMs() const = 0;
  // Monotonic milliseconds from an arbitrary origin; never goes backwards.
  [[nodiscard]] virtual int64_t MonotonicMs() const = 0;

  // The process-wide real clock (constructed on first use, never destroyed).
  static Clock* Real();
};

// A clock that only moves when told to. Both readings advance together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_unix_ms = 1'700'000'000'000) : unix_ms_(start_unix_ms) {}
  int64_t NowUnixMs() const override { return unix_ms_.load(std::memory_order_acquire); }
  int64_t MonotonicMs() const override { return mono_ms_.load(std::memory_order_acquire); }
  void AdvanceMs(int64_t ms) {
    unix_ms_.fetch_add(ms, std::memory_order_acq_rel);
    mono_ms_.fetch_add(ms, std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> unix_ms_;
  std::atomic<int64_t> mono_ms_{1'000'000};
};

}  // namespace xg2g

#endif  // XG2G_LIB_COMMON_CLOCK_H_

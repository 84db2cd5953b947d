// Token-bucket rate limiting per client address (DESIGN.md §7).
//
// Each client has a bucket of `burst` tokens refilled at `rate` tokens per
// second; a request takes one token or is refused. The table of buckets is
// bounded: a bucket that has been idle long enough to be full again carries
// no information and is dropped first; if the table is still full, the
// longest-idle eighth is evicted (an evicted client starts again with a full
// bucket). A flood of distinct addresses therefore costs a bounded amount of
// memory and amortised constant time per request.
//
// Thread-safe: the table is split into shards, each behind its own mutex;
// the rate, burst and capacity come with each call, so a configuration
// reload takes effect on the next request without touching the table.
#ifndef XG2G_LIB_RATELIMIT_LIMITER_H_
#define XG2G_LIB_RATELIMIT_LIMITER_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "lib/ratelimit/ip.h"

namespace xg2g {

struct RateLimitParams {
  double rate = 50;           // tokens per second, > 0
  int64_t burst = 100;        // bucket size, >= 1
  // Buckets kept at most over all shards, >= 1 (below 16, one per shard: 16).
  size_t max_clients = 65536;
};

struct RateLimitDecision {
  bool allowed = false;
  int64_t remaining = 0;       // whole tokens left after this request
  int64_t reset_seconds = 0;   // until the bucket is full again (rounded up)
  int64_t retry_after_seconds = 0;  // refused: until one token is back (>= 1)
};

class RateLimiter {
 public:
  RateLimiter() = default;
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes a token from `client`'s bucket at monotonic time `now_ms`.
  RateLimitDecision Take(const IpAddress& client, int64_t now_ms, const RateLimitParams& params);

  // Buckets held now, and buckets evicted while still holding information
  // (counted for the metrics).
  size_t Size() const;
  uint64_t Evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  struct Bucket {
    int64_t tokens = 0;  // in millionths of a token
    int64_t last_ms = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<IpAddress, Bucket> buckets;  // guarded by mu
  };
  static constexpr size_t kShards = 16;

  // Makes room in a full shard (called with its lock held).
  void MakeRoom(Shard& shard, int64_t now_ms, const RateLimitParams& params, size_t capacity);

  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> evictions_{0};
};

}  // namespace xg2g

#endif  // XG2G_LIB_RATELIMIT_LIMITER_H_

#include "lib/ratelimit/limiter.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/hash/hash.h"

namespace xg2g {
namespace {

// Tokens are counted in millionths so that refills add up exactly.
constexpr int64_t kScale = 1'000'000;

int64_t Refill(int64_t elapsed_ms, double rate) {
  if (elapsed_ms <= 0) return 0;
  const double refill = static_cast<double>(elapsed_ms) * rate * (kScale / 1000.0);
  return refill >= 9.0e18 ? INT64_MAX / 2 : std::llround(refill);
}

int64_t CeilSeconds(int64_t scaled_tokens, double rate) {
  if (scaled_tokens <= 0) return 0;
  return static_cast<int64_t>(std::ceil(static_cast<double>(scaled_tokens) / kScale / rate));
}

}  // namespace

RateLimitDecision RateLimiter::Take(const IpAddress& client, int64_t now_ms,
                                    const RateLimitParams& params) {
  const int64_t full = std::max<int64_t>(params.burst, 1) * kScale;
  const double rate = params.rate > 0 ? params.rate : 1e-9;
  // max_clients split over the shards exactly: the first max_clients % kShards
  // shards hold one bucket more. Below kShards each shard still holds one.
  const size_t index = absl::Hash<IpAddress>()(client) % kShards;
  const size_t capacity = std::max<size_t>(
      1, params.max_clients / kShards + (index < params.max_clients % kShards ? 1 : 0));

  Shard& shard = shards_[index];
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.buckets.find(client);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= capacity) MakeRoom(shard, now_ms, params, capacity);
    it = shard.buckets.emplace(client, Bucket{full, now_ms}).first;
  }
  Bucket& bucket = it->second;
  int64_t tokens = bucket.tokens;
  if (now_ms > bucket.last_ms) {
    tokens = std::min(full, tokens + Refill(now_ms - bucket.last_ms, rate));
    bucket.last_ms = now_ms;
  }
  tokens = std::min(tokens, full);  // the burst may have shrunk on reload

  RateLimitDecision decision;
  if (tokens >= kScale) {
    tokens -= kScale;
    decision.allowed = true;
  } else {
    decision.retry_after_seconds = std::max<int64_t>(1, CeilSeconds(kScale - tokens, rate));
  }
  bucket.tokens = tokens;
  decision.remaining = tokens / kScale;
  decision.reset_seconds = CeilSeconds(full - tokens, rate);
  return decision;
}

void RateLimiter::MakeRoom(Shard& shard, int64_t now_ms, const RateLimitParams& params,
                           size_t capacity) {
  const int64_t full = std::max<int64_t>(params.burst, 1) * kScale;
  const double rate = params.rate > 0 ? params.rate : 1e-9;
  auto& buckets = shard.buckets;
  // Buckets that are full again say nothing a fresh bucket would not.
  for (auto it = buckets.begin(); it != buckets.end();) {
    const int64_t tokens = it->second.tokens;
    if (tokens + Refill(now_ms - it->second.last_ms, rate) >= full) {
      buckets.erase(it++);
    } else {
      ++it;
    }
  }
  if (buckets.size() < capacity) return;
  // Still full: evict the longest-idle eighth (at least one), so the next
  // evictions are that many inserts away.
  std::vector<int64_t> last_seen;
  last_seen.reserve(buckets.size());
  for (const auto& [ip, bucket] : buckets) last_seen.push_back(bucket.last_ms);
  const size_t victims = std::max<size_t>(1, buckets.size() / 8);
  std::nth_element(last_seen.begin(), last_seen.begin() + static_cast<ptrdiff_t>(victims - 1),
                   last_seen.end());
  const int64_t threshold = last_seen[victims - 1];
  // Those idle longer than the threshold, then as many of those idle exactly
  // that long as make up the count (under a flood many share a millisecond).
  size_t ties = static_cast<size_t>(
      std::count(last_seen.begin(), last_seen.begin() + static_cast<ptrdiff_t>(victims), threshold));
  uint64_t evicted = 0;
  for (auto it = buckets.begin(); it != buckets.end();) {
    const int64_t last = it->second.last_ms;
    if (last < threshold || (last == threshold && ties > 0)) {
      if (last == threshold) --ties;
      buckets.erase(it++);
      ++evicted;
    } else {
      ++it;
    }
  }
  evictions_.fetch_add(evicted, std::memory_order_relaxed);
}

size_t RateLimiter::Size() const {
  size_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    total += shard.buckets.size();
  }
  return total;
}

}  // namespace xg2g

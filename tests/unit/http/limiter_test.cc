// The token bucket per client: burst, rate, the numbers for the headers, and
// the bounded table.
#include "lib/ratelimit/limiter.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace xg2g {
namespace {

IpAddress Ip(const std::string& text) {
  auto ip = ParseIp(text);
  REQUIRE(ip.has_value());
  return *ip;
}

TEST_CASE("a fresh client may send a burst, then one request per refill") {
  RateLimiter limiter;
  const RateLimitParams params{2.0, 3, 1000};  // 2/s, burst 3
  const IpAddress client = Ip("192.0.2.1");
  int64_t now = 1'000'000;
  for (int i = 0; i < 3; ++i) {
    const RateLimitDecision d = limiter.Take(client, now, params);
    CHECK(d.allowed);
    CHECK(d.remaining == 2 - i);
  }
  RateLimitDecision refused = limiter.Take(client, now, params);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.remaining == 0);
  CHECK(refused.retry_after_seconds == 1);  // half a second, rounded up
  CHECK(refused.reset_seconds == 2);        // 3 tokens at 2/s: 1.5 s, rounded up

  now += 499;
  CHECK_FALSE(limiter.Take(client, now, params).allowed);  // not quite one token
  now += 1;
  CHECK(limiter.Take(client, now, params).allowed);  // exactly one token back
  CHECK_FALSE(limiter.Take(client, now, params).allowed);

  now += 60'000;  // long idle: back to the burst, never beyond it
  for (int i = 0; i < 3; ++i) CHECK(limiter.Take(client, now, params).allowed);
  CHECK_FALSE(limiter.Take(client, now, params).allowed);
}

TEST_CASE("clients have separate buckets") {
  RateLimiter limiter;
  const RateLimitParams params{1.0, 1, 1000};
  CHECK(limiter.Take(Ip("192.0.2.1"), 0, params).allowed);
  CHECK_FALSE(limiter.Take(Ip("192.0.2.1"), 0, params).allowed);
  CHECK(limiter.Take(Ip("192.0.2.2"), 0, params).allowed);
  CHECK(limiter.Take(Ip("2001:db8::1"), 0, params).allowed);
  CHECK(limiter.Take(Ip("::ffff:192.0.2.2"), 0, params).allowed == false);  // same client as .2
}

TEST_CASE("a slow rate gives a long Retry-After") {
  RateLimiter limiter;
  const RateLimitParams params{0.1, 1, 1000};  // one every 10 s
  const IpAddress client = Ip("192.0.2.1");
  CHECK(limiter.Take(client, 0, params).allowed);
  const RateLimitDecision d = limiter.Take(client, 2'000, params);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after_seconds == 8);
}

TEST_CASE("a smaller burst after a reload applies at once") {
  RateLimiter limiter;
  const IpAddress client = Ip("192.0.2.1");
  CHECK(limiter.Take(client, 0, RateLimitParams{1.0, 100, 1000}).allowed);  // 99 left
  const RateLimitParams smaller{1.0, 2, 1000};
  CHECK(limiter.Take(client, 0, smaller).allowed);
  CHECK(limiter.Take(client, 0, smaller).allowed);
  CHECK_FALSE(limiter.Take(client, 0, smaller).allowed);
}

TEST_CASE("a flood of distinct addresses keeps the table bounded") {
  RateLimiter limiter;
  const RateLimitParams params{1.0, 10, 256};
  int64_t now = 0;
  for (int i = 0; i < 20'000; ++i) {
    const std::string ip = fmt::format("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    CHECK(limiter.Take(Ip(ip), now, params).allowed);  // every newcomer has a full bucket
    if (i % 100 == 0) ++now;
  }
  CHECK(limiter.Size() <= 256);
  CHECK(limiter.Evictions() > 0);
}

TEST_CASE("the bound holds exactly when it is not a multiple of the shard count") {
  for (const size_t max_clients : {size_t{1000}, size_t{17}, size_t{31}}) {
    RateLimiter limiter;
    const RateLimitParams params{1.0, 10, max_clients};
    size_t peak = 0;
    for (int i = 0; i < 20'000; ++i) {
      const std::string ip = fmt::format("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
      (void)limiter.Take(Ip(ip), 0, params);  // nobody refills: every bucket stays
      if (i % 50 == 0) peak = std::max(peak, limiter.Size());
    }
    INFO("max_clients ", max_clients);
    CHECK(std::max(peak, limiter.Size()) <= max_clients);
    CHECK(limiter.Size() >= max_clients * 3 / 4);  // and the room is used
  }
}

TEST_CASE("idle buckets that are full again are dropped before anyone is evicted") {
  RateLimiter limiter;
  const RateLimitParams params{10.0, 10, 16};  // one bucket per shard
  for (int i = 0; i < 64; ++i) {
    // Each client takes one token and then idles for two seconds: full again.
    CHECK(limiter.Take(Ip(fmt::format("192.0.2.{}", i)), i * 2'000, params).allowed);
  }
  CHECK(limiter.Size() <= 16);
  CHECK(limiter.Evictions() == 0);
}

TEST_CASE("an active client keeps its bucket while a flood passes") {
  RateLimiter limiter;
  const RateLimitParams params{1.0, 2, 64};
  const IpAddress victim = Ip("198.51.100.7");
  CHECK(limiter.Take(victim, 0, params).allowed);
  CHECK(limiter.Take(victim, 0, params).allowed);
  CHECK_FALSE(limiter.Take(victim, 0, params).allowed);
  // A flood of newcomers, each seen later than the victim's last request...
  for (int i = 0; i < 1000; ++i) {
    (void)limiter.Take(Ip(fmt::format("10.0.{}.{}", i >> 8, i & 255)), 1 + i / 500, params);
  }
  // ...may evict the victim (it is the oldest), which only ever gives it a
  // fresh bucket: never fewer tokens than it had. Either way the table held.
  CHECK(limiter.Size() <= 64);
}

}  // namespace
}  // namespace xg2g

#include "lib/store/redis_cache.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <utility>
#include <vector>

#include <hiredis/hiredis.h>

#include "lib/common/status.h"

namespace xg2g {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kChannel = "__redis__:invalidate";
// How long the listener waits for data at a time (and so how soon it sees
// that the cache is stopping), and how long a silent connection may stay
// quiet before it is asked for a PING.
constexpr int kPollMs = 200;
constexpr int64_t kQuietMs = 1000;
// The pause between two attempts to connect, doubling up to the cap.
constexpr int64_t kFirstRetryMs = 100;
constexpr int64_t kMaxRetryMs = 5000;

int64_t MsSince(Clock::time_point then) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - then).count();
}

// Sends one command on `ctx` and reads its reply (blocking, within the
// socket's timeout); nullptr when the connection failed.
RedisReplyPtr Ask(redisContext* ctx, const RedisArgs& args) {
  void* raw = nullptr;
  if (!AppendRedisCommand(ctx, args) || redisGetReply(ctx, &raw) != REDIS_OK) return nullptr;
  return RedisReplyPtr(static_cast<redisReply*>(raw));
}

}  // namespace

RedisSessionCache::RedisSessionCache(RedisPool* pool, std::string record_prefix, size_t capacity)
    : pool_(pool),
      record_prefix_(std::move(record_prefix)),
      capacity_(capacity),
      per_shard_(std::max<size_t>(1, (capacity + kShards - 1) / kShards)),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  listener_ = std::thread([this] { Listen(); });
}

RedisSessionCache::~RedisSessionCache() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);  // the listener's poll returns at once
  }
  listener_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

RedisSessionCache::Shard& RedisSessionCache::ShardOf(std::string_view id) {
  return shards_[std::hash<std::string_view>{}(id) % kShards];
}

std::optional<SessionRecord> RedisSessionCache::Find(std::string_view id) {
  if (listening_.load(std::memory_order_acquire)) {
    Shard& shard = ShardOf(id);
    std::lock_guard lock(shard.mu);
    auto it = shard.records.find(ToAbsl(id));
    if (it != shard.records.end()) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      return it->second;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

RedisSessionCache::Ticket RedisSessionCache::Take(std::string_view id) {
  Ticket ticket;
  // The epoch first: a Clear() between the two reads makes the ticket stale
  // rather than current.
  ticket.epoch = epoch_.load(std::memory_order_acquire);
  Shard& shard = ShardOf(id);
  std::lock_guard lock(shard.mu);
  ticket.generation = shard.generation;
  return ticket;
}

void RedisSessionCache::Remember(const Ticket& ticket, const SessionRecord& record) {
  if (!listening_.load(std::memory_order_acquire)) return;
  Shard& shard = ShardOf(record.session_id);
  std::lock_guard lock(shard.mu);
  // Checked under the shard's lock, which Clear() and every invalidation
  // take after moving the epoch or the generation on.
  if (shard.generation != ticket.generation ||
      epoch_.load(std::memory_order_acquire) != ticket.epoch) {
    return;
  }
  auto it = shard.records.find(record.session_id);
  if (it != shard.records.end()) {
    it->second = record;
    return;
  }
  if (shard.records.size() >= per_shard_) shard.records.erase(shard.records.begin());
  shard.records.emplace(record.session_id, record);
}

void RedisSessionCache::Forget(std::string_view id) {
  Shard& shard = ShardOf(id);
  std::lock_guard lock(shard.mu);
  ++shard.generation;
  shard.records.erase(ToAbsl(id));
}

void RedisSessionCache::Clear() {
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    ++shard.generation;
    shard.records.clear();
  }
}

void RedisSessionCache::Invalidate(std::string_view key) {
  if (key.substr(0, record_prefix_.size()) == record_prefix_) {
    Forget(key.substr(record_prefix_.size()));
  }
  invalidations_.fetch_add(1, std::memory_order_release);  // counted once done
}

void RedisSessionCache::SetListening(bool listening) {
  if (listening) {
    Clear();  // whatever changed while nobody listened
    connects_.fetch_add(1, std::memory_order_relaxed);
  }
  listening_.store(listening, std::memory_order_release);
  if (!listening) Clear();
  {
    std::lock_guard lock(mu_);  // WaitListening checks under it
  }
  changed_.notify_all();
}

bool RedisSessionCache::WaitListening(int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0)),
                           [&] { return stopping_ || listening_.load(); }) &&
         listening_.load();
}

RedisCacheStats RedisSessionCache::Stats() const {
  RedisCacheStats stats;
  stats.capacity = capacity_;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    stats.entries += shard.records.size();
  }
  stats.listening = listening_.load();
  stats.hits = hits_.load();
  stats.misses = misses_.load();
  stats.invalidations = invalidations_.load();
  stats.connects = connects_.load();
  return stats;
}

void RedisSessionCache::Listen() {
  // A write to a connection the server closed raises SIGPIPE, which would
  // end the process: this thread, the library's own, keeps it blocked.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  int64_t retry_ms = kFirstRetryMs;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    absl::StatusOr<redisContext*> ctx = pool_->ConnectOwn();
    if (ctx.ok()) {
      const auto began = Clock::now();
      Serve(*ctx);
      redisFree(*ctx);
      // A connection that served a while earns a quick reconnect.
      if (MsSince(began) > kMaxRetryMs) retry_ms = kFirstRetryMs;
    }
    std::unique_lock lock(mu_);
    if (changed_.wait_for(lock, std::chrono::milliseconds(retry_ms), [&] { return stopping_; })) {
      return;
    }
    retry_ms = std::min(retry_ms * 2, kMaxRetryMs);
  }
}

void RedisSessionCache::Serve(redisContext* ctx) {
  // Tracking redirected to this very connection, which then subscribes to
  // the channel the server sends invalidations on.
  RedisReplyPtr id = Ask(ctx, {"CLIENT", "ID"});
  if (id == nullptr || id->type != REDIS_REPLY_INTEGER) return;
  const std::string own_id = std::to_string(id->integer);
  RedisReplyPtr tracking = Ask(ctx, {"CLIENT", "TRACKING", "on", "REDIRECT", own_id, "BCAST",
                                     "PREFIX", record_prefix_});
  if (tracking == nullptr || tracking->type == REDIS_REPLY_ERROR) return;
  RedisReplyPtr subscribed = Ask(ctx, {"SUBSCRIBE", kChannel});
  if (subscribed == nullptr || subscribed->type != REDIS_REPLY_ARRAY) return;
  SetListening(true);

  Clock::time_point last_data = Clock::now();
  bool ping_out = false;
  const int64_t patience_ms = std::max<int64_t>(kQuietMs, pool_->endpoint().timeout_ms);
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    // Without the wake-up descriptor (eventfd failed) the stop is seen
    // within kPollMs.
    pollfd pfds[2] = {{ctx->fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int ready = poll(pfds, wake_fd_ >= 0 ? 2 : 1, kPollMs);
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0 && pfds[1].revents != 0) break;  // stopping
    if (ready > 0 && pfds[0].revents != 0) {
      if (redisBufferRead(ctx) != REDIS_OK) break;
      last_data = Clock::now();
      ping_out = false;
      bool failed = false;
      for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(ctx, &raw) != REDIS_OK) {
          failed = true;
          break;
        }
        if (raw == nullptr) break;  // no whole reply buffered yet
        RedisReplyPtr message(static_cast<redisReply*>(raw));
        // ["message", channel, keys or nil]; "pong" answers and
        // confirmations pass by.
        if (message->type != REDIS_REPLY_ARRAY || message->elements != 3 ||
            RedisText(*message->element[0]) != "message") {
          continue;
        }
        const redisReply& keys = *message->element[2];
        if (keys.type == REDIS_REPLY_ARRAY) {
          for (size_t i = 0; i < keys.elements; ++i) Invalidate(RedisText(*keys.element[i]));
        } else {
          Clear();  // nil: the whole database was flushed
          invalidations_.fetch_add(1, std::memory_order_release);
        }
      }
      if (failed) break;
      continue;
    }
    // Quiet: ask whether the server is still there, and give up on it when
    // it does not answer in time.
    if (ping_out) {
      if (MsSince(last_data) > patience_ms + kQuietMs) break;
    } else if (MsSince(last_data) > kQuietMs) {
      if (!AppendRedisCommand(ctx, {"PING"})) break;
      int done = 0;
      while (done == 0) {
        if (redisBufferWrite(ctx, &done) != REDIS_OK) break;
      }
      if (done == 0) break;
      ping_out = true;
    }
  }
  SetListening(false);
}

}  // namespace xg2g

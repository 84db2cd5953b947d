// The Redis store's session cache (docs/redis.md, "Session cache"): decoded
// session records kept in this process and dropped when the server says they
// changed.
//
// One connection of its own, held by a listener thread, asks the server to
// track every key under the session records' prefix (CLIENT TRACKING ...
// BCAST PREFIX) and subscribes to the invalidation channel on the same
// connection. Every write to a session record, by any client of the server,
// then reaches the listener as the record's key, and the listener drops that
// record here. While that connection is not up (not yet, or lost) the cache
// answers nothing and keeps nothing: every read goes to the server.
//
// A read the cache cannot answer takes a Ticket, reads the server and offers
// the record with the ticket (Remember); it is kept only when nothing about
// its shard changed meanwhile (no invalidation, no write of this process, no
// loss of the connection), so an answer the server gave before a write is
// never kept after that write's invalidation. This process's own writes drop
// their record at once (Forget): a store sees its own writes immediately, and
// another process's writes once their invalidation has arrived.
//
// Thread-safe. At most `capacity` records; when a shard is full an arbitrary
// record of it makes room.
#ifndef XG2G_LIB_STORE_REDIS_CACHE_H_
#define XG2G_LIB_STORE_REDIS_CACHE_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "lib/session/session.h"
#include "lib/store/redis_pool.h"

namespace xg2g {

// What the cache has done, for operators and tests.
struct RedisCacheStats {
  size_t capacity = 0;
  size_t entries = 0;
  bool listening = false;      // the invalidation connection is up
  uint64_t hits = 0;           // reads answered here
  uint64_t misses = 0;         // reads that went to the server
  uint64_t invalidations = 0;  // keys (or whole flushes) the server reported
  uint64_t connects = 0;       // times the invalidation connection came up
};

class RedisSessionCache {
 public:
  // `pool` (not owned, must outlive the cache) makes the listener's
  // connection; `record_prefix` is what every session record's key starts
  // with. Starts the listener thread; capacity 0 is not allowed (no cache is
  // made then).
  RedisSessionCache(RedisPool* pool, std::string record_prefix, size_t capacity);
  ~RedisSessionCache();
  RedisSessionCache(const RedisSessionCache&) = delete;
  RedisSessionCache& operator=(const RedisSessionCache&) = delete;

  // The cached record of `id`, if the cache holds it and is listening.
  std::optional<SessionRecord> Find(std::string_view id);

  struct Ticket {
    uint64_t epoch = 0;
    uint64_t generation = 0;
  };
  // Taken before a read of `id` from the server.
  Ticket Take(std::string_view id);
  // Keeps `record` (read from the server under `ticket`) unless the ticket
  // went stale.
  void Remember(const Ticket& ticket, const SessionRecord& record);
  // Drops `id`'s record: this process has written it (or tried to).
  void Forget(std::string_view id);

  // Waits until the invalidation connection is up, at most `timeout_ms`;
  // whether it is.
  bool WaitListening(int64_t timeout_ms);

  RedisCacheStats Stats() const;

 private:
  static constexpr size_t kShards = 64;
  struct Shard {
    mutable std::mutex mu;
    uint64_t generation ABSL_GUARDED_BY(mu) = 0;
    absl::flat_hash_map<std::string, SessionRecord> records ABSL_GUARDED_BY(mu);
  };

  Shard& ShardOf(std::string_view id);
  // Drops every record and makes every outstanding ticket stale.
  void Clear();
  // A key the server reported: its record is dropped.
  void Invalidate(std::string_view key);
  void SetListening(bool listening);

  // The listener: connect, track, subscribe, read invalidations; again after
  // a pause when the connection fails.
  void Listen();
  // One connection's life; returns when it fails or the cache stops.
  void Serve(struct redisContext* ctx);

  RedisPool* const pool_;
  const std::string record_prefix_;
  const size_t capacity_;
  const size_t per_shard_;

  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> listening_{false};
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> invalidations_{0};
  std::atomic<uint64_t> connects_{0};

  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Written once by the destructor: wakes the listener's poll.
  const int wake_fd_;
  std::thread listener_;
};

}  // namespace xg2g

#endif  // XG2G_LIB_STORE_REDIS_CACHE_H_

// The Redis store backend ("redis://..."): several daemons on several machines
// share sessions, idempotency keys and tuner leases through one Redis server
// (or one Redis Cluster). URI, key layout, scripts, connections and what holds
// without persistence: docs/redis.md.
//
// Thread-safe. Calls borrow a connection from a bounded pool (RedisPool) for
// their commands only: no connection is held while a caller's mutator or
// visitor runs, so they may call back into the store. Every step that reads
// and writes, or writes several keys, is one server-side Lua script (atomic on
// the server); an update is an optimistic read, mutate (client side), then a
// compare-and-set script on the record's revision. Time is the server's:
// deadlines and NowMs() come from its clock, never this machine's.
#ifndef XG2G_LIB_STORE_REDIS_STORE_H_
#define XG2G_LIB_STORE_REDIS_STORE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/store/redis_cache.h"
#include "lib/store/redis_pool.h"
#include "lib/store/store.h"

namespace xg2g {

inline constexpr std::string_view kRedisDefaultPrefix = "xg2g:v3:";
inline constexpr size_t kRedisMaxPool = 1024;
inline constexpr int64_t kRedisMaxTimeoutMs = 600'000;

inline constexpr size_t kRedisDefaultCache = 16384;
inline constexpr size_t kRedisMaxCache = size_t{1} << 24;

struct RedisOptions {
  RedisEndpoint endpoint;
  // Every key starts with it (docs/redis.md, "Keys").
  std::string prefix = std::string(kRedisDefaultPrefix);
  // Session records kept in this process between changes (docs/redis.md,
  // "Session cache"); 0: none, every read goes to the server.
  size_t cache_entries = kRedisDefaultCache;
};

// Parses what follows "redis:" in a store URI:
//   //[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P&pool=N&timeout_ms=N&cache=N]
// HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT defaults
// to 6379, DB to 0. The password and query values are percent-decoded. When
// the URI has no password, XG2G_REDIS_PASSWORD supplies one; pool and
// timeout_ms default to XG2G_REDIS_POOL and XG2G_REDIS_TIMEOUT_MS, then to 8
// and 2000; cache (session records, 0 to kRedisMaxCache) to 16384.
// InvalidError naming the offending part, never echoing the password.
[[nodiscard]] absl::StatusOr<RedisOptions> ParseRedisLocation(std::string_view location);

class RedisStore final : public Store {
 public:
  // Connects once (so a wrong address or password shows at start-up, as
  // UnavailableError) and loads the scripts. Later outages do not need a new
  // store: calls fail with UnavailableError while the server is away and work
  // again when it is back. With a session cache, waits (at most a second)
  // for its invalidation connection; a server that refuses it leaves the
  // cache idle, not the store unusable.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RedisStore>> Open(
      const RedisOptions& options);

  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

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
  // One read of the lease index (ZMSCORE) names the first key it shows free;
  // AcquireLease takes it; a key taken meanwhile sends the search on past it.
  absl::StatusOr<FirstLeaseGrant> AcquireFirstFreeLease(std::span<const std::string_view> keys,
                                                        std::string_view owner,
                                                        int64_t ttl_ms) override;
  // One pipeline of renewal (release) scripts on one connection: one round
  // trip for up to 512 leases, instead of one per lease.
  absl::StatusOr<std::vector<absl::StatusOr<LeaseGrant>>> RenewLeases(
      std::span<const LeaseRef> leases, int64_t ttl_ms) override;
  absl::StatusOr<std::vector<absl::Status>> ReleaseLeases(
      std::span<const LeaseRef> leases) override;

  // The server's clock (TIME) in Unix milliseconds, one round trip. While the
  // server is unreachable: this machine's monotonic clock plus the offset
  // seen at the last answer. Never goes backwards within this store.
  int64_t NowMs() const override;

  // The Redis key of each kind of entry (docs/redis.md, "Keys"); for tests
  // and operators.
  std::string SessionKey(std::string_view id) const;
  std::string SessionIndexKey() const;
  std::string RevisionKey() const;
  std::string IdempotencyKey(std::string_view key) const;
  std::string LeaseKey(std::string_view key) const;
  std::string FenceKey(std::string_view key) const;
  std::string LeaseIndexKey() const;

  const std::string& where() const { return pool_.where(); }
  // Round trips to the server so far (RedisPool::round_trips).
  uint64_t RoundTrips() const { return pool_.round_trips(); }

  // The session cache's counters (all zero without a cache).
  RedisCacheStats CacheStats() const;

 private:
  enum ScriptId : size_t {
    kPut,
    kCas,
    kDelete,
    kList,
    kScan,
    kPutIdem,
    kGetIdem,
    kDeleteIdem,
    kAcquire,
    kRenew,
    kRelease,
    kGetLeaseScript,
    kListLeasesScript,
    kFirstFreeScript,
    kScriptCount,
  };
  struct Script {
    std::string source;
    std::string sha;  // set by Open (SCRIPT LOAD); the same on every server
  };

  explicit RedisStore(const RedisOptions& options);

  // Runs script `id` by EVALSHA; on NOSCRIPT (a restarted or flushed server)
  // loads it again and retries once. An error reply becomes a typed error
  // about `what` (ReplyError): CORRUPT -> CorruptError, OOM ->
  // StoreFullError, a server that is loading, read-only or busy ->
  // UnavailableError.
  absl::StatusOr<RedisReplyPtr> Eval(ScriptId id, const std::vector<std::string_view>& keys,
                                     const std::vector<std::string_view>& args,
                                     std::string_view what);
  // The answer of a script that replies {outcome, ...}: the reply (which owns
  // `result`), the array and its first element.
  struct Outcome {
    RedisReplyPtr reply;
    const redisReply* result = nullptr;
    int code = -1;
  };
  // Eval, then reads the outcome; an answer of another shape is an internal
  // error naming `what`.
  absl::StatusOr<Outcome> EvalOutcome(ScriptId id, const std::vector<std::string_view>& keys,
                                      const std::vector<std::string_view>& args,
                                      std::string_view what);
  // One run of a script: its keys, its arguments, and what it is about (for
  // messages).
  struct ScriptCall {
    std::vector<std::string> keys;
    std::vector<std::string> args;
    std::string what;
  };
  static constexpr size_t kPipelineChunk = 512;
  // Runs script `id` once per call, kPipelineChunk calls to a pipeline (one
  // round trip each), and reads each answer as EvalOutcome would; a call the
  // server answered NOSCRIPT is run again alone by EvalOutcome. A pipeline
  // that failed answers each of its calls with that failure.
  std::vector<absl::StatusOr<Outcome>> EvalOutcomes(ScriptId id,
                                                    const std::vector<ScriptCall>& calls);
  // EvalOutcomes of script `id` for each lease (keys: its record and the
  // lease index; arguments: its key, its owner, then `extra`). A lease whose
  // key or owner is invalid is answered with that error and not sent.
  std::vector<absl::StatusOr<Outcome>> EvalPerLease(ScriptId id, std::span<const LeaseRef> leases,
                                                    const std::vector<std::string>& extra);
  absl::Status LoadScripts();
  // Maps an error reply (or the error-ness of a reply) for `what`.
  absl::Status ReplyError(const redisReply& reply, std::string_view what) const;

  // A session read: from the cache when `cached` and it holds the record,
  // else from the server (and then offered to the cache when `cached`).
  absl::StatusOr<SessionRecord> ReadSession(std::string_view id, bool cached);
  // This process wrote (or tried to write) session `id`: the cache drops it.
  void Wrote(std::string_view id);

  absl::StatusOr<SessionRecord> DecodeStored(std::string_view id, std::string_view key,
                                             const redisReply& value) const;

  const std::string prefix_;
  const std::string sessions_;  // prefix_ + "{sessions}:"
  const std::string leases_;    // prefix_ + "{leases}:"
  mutable RedisPool pool_;
  std::array<Script, kScriptCount> scripts_;
  // Null without a cache. Declared after pool_: destroyed (its listener
  // stopped) before it.
  std::unique_ptr<RedisSessionCache> cache_;
  // NowMs(): the latest reading, and the server's clock minus this machine's
  // monotonic clock at the last answer.
  mutable std::atomic<int64_t> last_now_ms_{0};
  mutable std::atomic<int64_t> offset_ms_{0};
};

}  // namespace xg2g

#endif  // XG2G_LIB_STORE_REDIS_STORE_H_

// The in-process store backend ("memory:"): tests and embedded hosts that need
// no persistence. Everything is lost when the store is destroyed.
//
// Thread-safe. Sessions live in kShardCount shards chosen by a hash of the id,
// each an ordered map behind its own std::shared_mutex, so readers of one shard
// never wait for each other and writers of different shards never meet.
// Idempotency keys and leases are sharded the same way behind std::mutex.
// Lock order (the only orders in which two locks are ever held together):
//   idempotency shard -> session shard      (PutSessionWithIdempotency)
//   session shards in ascending index       (ScanSessions, ListSessions)
// so no two operations can wait for each other in a cycle. No lock is held
// while a caller-supplied function (mutator, visitor) runs.
//
// std::shared_mutex rather than absl::Mutex: the system's Abseil is not built
// with ThreadSanitizer instrumentation, and the concurrency suite runs under it.
#ifndef XG2G_LIB_STORE_MEMORY_STORE_H_
#define XG2G_LIB_STORE_MEMORY_STORE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "lib/common/clock.h"
#include "lib/store/store.h"

namespace xg2g {

class MemoryStore final : public Store {
 public:
  static constexpr size_t kShardCount = 16;
  // A shard's idempotency (or lease) table first drops its expired entries
  // when it reaches this size, and then again at twice what was left.
  static constexpr size_t kMinSweepSize = 1024;

  // `clock` drives lease and key expiry (its MonotonicMs); null means
  // Clock::Real(). It must outlive the store.
  explicit MemoryStore(Clock* clock = nullptr);
  ~MemoryStore() override = default;

  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

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
  // Locks the lease shards once and looks each key up in turn.
  absl::StatusOr<FirstLeaseGrant> AcquireFirstFreeLease(std::span<const std::string_view> keys,
                                                        std::string_view owner,
                                                        int64_t ttl_ms) override;

  int64_t NowMs() const override;

  // Idempotency entries held now over all shards, expired ones not dropped
  // yet included (what the amortised clean-up bounds; tests/soak checks it).
  size_t IdempotencyEntryCount();

 private:
  // Ordered maps: ListSessions merges the shards in id order without sorting,
  // and std::less<> lets lookups take a std::string_view without a copy.
  template <typename V>
  using OrderedMap = std::map<std::string, V, std::less<>>;

  // Records are immutable once stored (a write stores a new one), and shared:
  // a scan's snapshot or a read copies pointers under the lock and records
  // after it, so writers wait for pointer copies only.
  using StoredSession = std::shared_ptr<const SessionRecord>;
  struct SessionShard {
    mutable std::shared_mutex mu;
    OrderedMap<StoredSession> sessions ABSL_GUARDED_BY(mu);
  };

  struct IdempotencyShard {
    std::mutex mu;
    OrderedMap<IdempotencyEntry> entries ABSL_GUARDED_BY(mu);
    // Size at which the next insert first drops expired entries (amortised
    // clean-up: keys nobody asks about again must not pile up for ever).
    size_t sweep_at ABSL_GUARDED_BY(mu) = kMinSweepSize;
  };

  struct Lease {
    std::string owner;
    uint64_t fencing_token = 0;
    int64_t expires_at_ms = 0;
  };

  // Leases are hashed, not ordered: ListLeases sorts what it merges, and
  // AcquireFirstFreeLease looks up many keys in a row.
  struct LeaseShard {
    std::mutex mu;
    absl::flat_hash_map<std::string, Lease> leases ABSL_GUARDED_BY(mu);
    size_t sweep_at ABSL_GUARDED_BY(mu) = kMinSweepSize;
  };

  static size_t ShardOf(std::string_view key);

  // AcquireLease on a shard whose lock the caller holds. Nothing is granted
  // when the key is held by another owner, or by `owner` itself unless
  // `may_renew`; then `busy` (optional) gets the holder's lease.
  std::optional<LeaseGrant> AcquireLocked(LeaseShard& shard, std::string_view key,
                                          std::string_view owner, int64_t ttl_ms, int64_t now,
                                          bool may_renew, const Lease** busy)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  // Deadline `ttl_ms` after now, saturating instead of overflowing.
  int64_t DeadlineAfter(int64_t ttl_ms) const;

  // The next revision: store-wide and strictly increasing, so a record that
  // is deleted and put again never reuses a revision an update compared with.
  int64_t NextRevision() { return next_revision_.fetch_add(1, std::memory_order_relaxed) + 1; }

  Clock* const clock_;
  std::array<SessionShard, kShardCount> session_shards_;
  std::array<IdempotencyShard, kShardCount> idempotency_shards_;
  std::array<LeaseShard, kShardCount> lease_shards_;
  std::atomic<int64_t> next_revision_{0};
  // Bumped, under the shard's lock, whenever a session id comes or goes.
  std::atomic<uint64_t> membership_{0};
  // Where the last listed page ended: `next_offset` records come up to and
  // including `last_id`, valid while `membership` is unchanged.
  struct PageEnd {
    uint64_t membership = 0;
    size_t next_offset = 0;
    std::string last_id;
  };
  std::mutex page_end_mu_;
  std::optional<PageEnd> page_end_ ABSL_GUARDED_BY(page_end_mu_);
  // Fencing tokens come from one store-wide counter: a key's tokens are then
  // strictly increasing whatever happened to the key in between (release,
  // expiry, clean-up of its entry), with no per-key state kept for ever.
  std::atomic<uint64_t> last_fencing_token_{0};
};

}  // namespace xg2g

#endif  // XG2G_LIB_STORE_MEMORY_STORE_H_

// The LMDB store backend ("lmdb:DIR"): the durable embedded default. One
// directory holds one LMDB environment (data.mdb, lock.mdb) that several
// threads and several processes on one machine share. Layout, sync modes, map
// growth and the multi-process rules: docs/lmdb.md.
//
// Thread-safe. Every call runs in its own short LMDB transaction; no
// transaction is open and no lock is held while a caller's mutator or visitor
// runs. Writes are serialised by LMDB's writer lock (across processes too);
// reads run in parallel with everything.
//
// Each store object keeps a bounded cache of decoded session records
// (LmdbOptions::cache_entries): a memo of the decoder, keyed by session id,
// holding the exact stored bytes beside the record decoded from them. A read
// uses an entry only when the bytes it has just read from LMDB equal the
// entry's byte for byte, so a write by any thread, store object or process,
// and a damaged record, are seen exactly as without the cache. A session read
// at the LMDB snapshot (the id of the last committed write, the same in every
// process) at which its entry last matched skips the read and the compare:
// nothing can have changed since.
//
// LMDB forbids opening one environment twice in one process, so stores opened
// on the same directory in one process share one environment (a process-wide
// registry keyed by the directory's device and inode, with a reference count).
// The environment's options (sync mode, map sizes) are those of the first
// opener; a later open with other options is EINVAL. A child made by fork()
// never uses an environment its parent opened: it opens its own.
#ifndef XG2G_LIB_STORE_LMDB_STORE_H_
#define XG2G_LIB_STORE_LMDB_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/clock.h"
#include "lib/store/store.h"

namespace xg2g {

// How a commit reaches the disk (docs/lmdb.md, "Sync modes"). Whatever the
// mode, a process that dies (kill -9) loses nothing it was told was written:
// the modes differ only when the machine itself goes down.
enum class LmdbSync {
  kDurable,     // fsync at every commit: an acknowledged write survives power loss
  kNoMetaSync,  // data synced, the commit record with the next commit: a crash may
                // lose the last transaction, never the store's integrity
  kNoSync,      // the operating system writes back when it likes: a crash may lose
                // recent transactions (integrity kept if the file system keeps
                // write order)
};

struct LmdbOptions {
  LmdbSync sync = LmdbSync::kDurable;
  // The memory map starts at this size and doubles as the data grows, up to
  // max_map_bytes (both rounded up to whole pages). The map only reserves
  // address space: the file grows with the data.
  uint64_t initial_map_bytes = uint64_t{64} << 20;
  uint64_t max_map_bytes = uint64_t{4096} << 20;
  // Decoded session records this store object keeps (see above); 0 turns the
  // cache off. Per store object, not per environment: two stores open on one
  // directory may size it differently.
  size_t cache_entries = 4096;
  // Group commit: the writes this process's threads make at the same moment
  // share one write transaction and one fsync, each acknowledged only once
  // it is committed (lib/store/lmdb_store.cc, WriteGrouped). Per
  // environment: every store opened on a directory in a process must agree.
  bool group_commit = true;
};

// The most cache_entries accepted.
inline constexpr size_t kLmdbMaxCacheEntries = size_t{1} << 24;

// The lowest accepted max_map_bytes: room for the database's own pages and a
// useful number of records.
inline constexpr uint64_t kLmdbMinMapBytes = uint64_t{256} << 10;

// Parses what follows "lmdb:" in a store URI: `DIR[?key=value&...]` with keys
// sync (durable|nometasync|nosync), map_size_mb and max_map_size_mb (whole
// MiB, at least 1), cache (entries, 0 to kLmdbMaxCacheEntries) and
// group_commit (on|off).
// InvalidError naming the offending part.
struct LmdbLocation {
  std::string dir;
  LmdbOptions options;
};
[[nodiscard]] absl::StatusOr<LmdbLocation> ParseLmdbLocation(std::string_view location);

// What SweepExpired removed.
struct LmdbSweepStats {
  size_t idempotency_removed = 0;
  size_t leases_removed = 0;
  size_t corrupt_skipped = 0;  // undecodable records left for an operator to look at
};

// The outcome of CheckConsistency.
struct LmdbCheckReport {
  size_t sessions = 0;
  size_t idempotency_keys = 0;
  size_t leases = 0;
  uint64_t last_revision = 0;
  uint64_t last_fencing_token = 0;
  std::vector<std::string> problems;  // empty: the store is consistent
};

// The session cache of one store object, for operators and tests.
struct LmdbCacheStats {
  size_t capacity = 0;  // cache_entries as opened
  size_t entries = 0;   // records held now (never above capacity)
  uint64_t hits = 0;    // reads answered from the cache
  uint64_t misses = 0;  // reads that decoded (not cached, or the bytes differed)
};

// Group commits of the environment (every store object of this process on
// the directory), for operators and tests.
struct LmdbCommitStats {
  uint64_t groups = 0;   // shared write transactions committed
  uint64_t writes = 0;   // writes committed in them
  size_t running = 0;    // writes in the group being committed now
  size_t queued = 0;     // writes waiting for the next group
};

// Map usage, for operators and tests.
struct LmdbMapInfo {
  uint64_t map_bytes = 0;      // this process's current map size
  uint64_t max_map_bytes = 0;  // the configured ceiling
  uint64_t file_bytes = 0;     // the high-water mark of the data file's pages
  uint64_t used_bytes = 0;     // pages in use by the data (free pages not counted)
  uint64_t page_bytes = 0;
};

class LmdbStore final : public Store {
 public:
  // Opens (creating if missing, mode 0700) the store in `dir`. `clock` gives
  // the wall clock that deadlines are stored in (Unix ms, shared by every
  // process using the directory); null means Clock::Real(). It must outlive
  // the store. Errors: InvalidError (options), kIo (the directory cannot be
  // made or opened), kVersion (written by a newer, incompatible library),
  // CorruptError (not an LMDB environment, or not this library's store).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<LmdbStore>> Open(
      std::string_view dir, const LmdbOptions& options = {}, Clock* clock = nullptr);

  ~LmdbStore() override;
  LmdbStore(const LmdbStore&) = delete;
  LmdbStore& operator=(const LmdbStore&) = delete;

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
  // Every renewal in one write transaction: one sync for all.
  absl::StatusOr<std::vector<absl::Status>> ReleaseLeases(
      std::span<const LeaseRef> leases) override;
  absl::StatusOr<std::vector<absl::StatusOr<LeaseGrant>>> RenewLeases(
      std::span<const LeaseRef> leases, int64_t ttl_ms) override;
  // One read transaction finds the first key free (absent or expired);
  // AcquireLease takes it; a key taken meanwhile sends the search on past it.
  absl::StatusOr<FirstLeaseGrant> AcquireFirstFreeLease(std::span<const std::string_view> keys,
                                                        std::string_view owner,
                                                        int64_t ttl_ms) override;
  // The interface's checks plus CheckConsistency's, with the key count.
  absl::StatusOr<StoreCheckReport> Check() override;

  // The wall clock in Unix ms (deadlines are stored in it so that every
  // process reads them alike), never going backwards within this store.
  int64_t NowMs() const override;

  // Removes expired idempotency keys and leases, in batches of short write
  // transactions (readers and writers are never held up for long). Undecodable
  // records are left alone and counted. The store also calls it by itself
  // after an insert that doubled a table since the last sweep.
  [[nodiscard]] absl::StatusOr<LmdbSweepStats> SweepExpired();

  // Reads everything in one read transaction and checks it: every record
  // decodes, sits under the key it names, and has a revision or token no
  // greater than the store's counters; the format record is there. Errors
  // only when the store cannot be read; findings go to `problems`.
  [[nodiscard]] absl::StatusOr<LmdbCheckReport> CheckConsistency();

  [[nodiscard]] absl::StatusOr<LmdbMapInfo> MapInfo();

  LmdbCacheStats CacheStats() const;
  LmdbCommitStats CommitStats() const;

  // The directory, as resolved at open.
  const std::string& path() const;

  struct Env;           // the shared environment (lmdb_store.cc)
  class SessionCache;  // decoded records (lmdb_store.cc)

 private:
  LmdbStore(Env* env, Clock* clock, size_t cache_entries);

  // The record stored as `bytes` under `id`: from the cache when it holds
  // exactly these bytes, else decoded (and, when `remember`, cached). `bytes`
  // must be committed data (read in a read transaction).
  absl::StatusOr<SessionRecord> DecodeCached(std::string_view id, std::string_view bytes,
                                             bool remember);
  // Decodes without looking in the cache; caches the record when `remember`,
  // drops what the cache held for `id` when it does not decode. `snapshot`:
  // the id (mdb_txn_id) of the read transaction `bytes` come from, or all
  // ones when not known.
  absl::StatusOr<SessionRecord> DecodeAndRemember(std::string_view id, std::string_view bytes,
                                                  bool remember, uint64_t snapshot);

  // Deadline `ttl_ms` after now, saturating instead of overflowing.
  int64_t DeadlineAfter(int64_t ttl_ms) const;
  // Runs SweepExpired when an insert pushed a table past its sweep threshold.
  void MaybeSweep(bool idempotency_due, bool leases_due);

  Env* const env_;  // counted in the process-wide registry; released by the destructor
  Clock* const clock_;
  const std::unique_ptr<SessionCache> cache_;  // null when cache_entries is 0
  mutable std::atomic<int64_t> last_now_ms_{0};
};

}  // namespace xg2g

#endif  // XG2G_LIB_STORE_LMDB_STORE_H_

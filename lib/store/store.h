// The store contract (DESIGN.md §3): sessions, idempotency keys and leases.
//
// One interface, three backends (memory, LMDB, Redis); tests/store holds the
// conformance suite every backend runs unchanged. Implementations are
// thread-safe. No implementation holds a lock while calling a caller-supplied
// function (update mutators, scan visitors).
#ifndef XG2G_LIB_STORE_STORE_H_
#define XG2G_LIB_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/clock.h"
#include "lib/session/session.h"

namespace xg2g {

struct LeaseGrant {
  uint64_t fencing_token = 0;
  int64_t expires_at_ms = 0;  // in the store's clock (see Store::NowMs)
};

// Result of Store::AcquireFirstFreeLease: which key was granted, and how.
struct FirstLeaseGrant {
  size_t index = 0;  // into the keys passed
  LeaseGrant grant;
};

// One lease for Store::RenewLeases and Store::ReleaseLeases: its key and the
// owner renewing or releasing it.
struct LeaseRef {
  std::string_view key;
  std::string_view owner;
};

struct LeaseInfo {
  std::string key;
  std::string owner;
  uint64_t fencing_token = 0;
  int64_t expires_at_ms = 0;
};

struct IdempotencyEntry {
  std::string session_id;
  std::string fingerprint;
  int64_t expires_at_ms = 0;
};

// Result of PutSessionWithIdempotency.
struct IdempotencyOutcome {
  bool stored = false;         // true: key and session were written now
  IdempotencyEntry existing;   // when !stored: the entry that was already there
};

struct SessionPage {
  std::vector<SessionRecord> sessions;
  size_t total = 0;  // number of sessions in the store
};

// The outcome of Store::Check.
struct StoreCheckReport {
  size_t sessions = 0;
  size_t leases = 0;
  int64_t idempotency_keys = -1;       // -1: the backend does not count them
  std::vector<std::string> problems;   // empty: the store is consistent
};

inline constexpr size_t kMaxPageLimit = 1000;
// Bound on the retries of an optimistic UpdateSession before kConflict.
inline constexpr int kMaxUpdateAttempts = 64;

class Store {
 public:
  virtual ~Store() = default;

  // Stores a copy, replacing any record with the same id; sets its revision.
  [[nodiscard]] virtual absl::Status PutSession(const SessionRecord& record) = 0;

  // NotFoundError when missing; CorruptError naming the key when undecodable.
  [[nodiscard]] virtual absl::StatusOr<SessionRecord> GetSession(std::string_view id) = 0;

  // Read-modify-write, atomic per record. `mutate` gets a private copy and runs
  // with no store lock held; if the record changed meanwhile it runs again on
  // the fresh copy (at most kMaxUpdateAttempts, then ConflictError). A non-OK
  // status from `mutate` aborts with nothing written. Returns what was stored.
  using Mutator = std::function<absl::Status(SessionRecord&)>;
  [[nodiscard]] virtual absl::StatusOr<SessionRecord> UpdateSession(std::string_view id,
                                                                    const Mutator& mutate) = 0;

  [[nodiscard]] virtual absl::Status DeleteSession(std::string_view id) = 0;

  // Visits a snapshot of all sessions; the visitor returns false to stop.
  // The visitor runs with no store lock held and may call back into the store.
  // Every backend visits a session that exists for the whole scan exactly
  // once; one written or deleted during the scan may or may not be visited
  // (a backend may page). The memory backend visits a point-in-time snapshot.
  using Visitor = std::function<bool(const SessionRecord&)>;
  [[nodiscard]] virtual absl::Status ScanSessions(const Visitor& visit) = 0;

  // Sessions ordered by id (byte order), skipping `offset`; limit in
  // [1, kMaxPageLimit], else InvalidError naming the limit. `total` counts all
  // sessions; an offset past the end gives an empty page.
  [[nodiscard]] virtual absl::StatusOr<SessionPage> ListSessions(size_t offset,
                                                                 size_t limit) = 0;

  // One atomic step: a new (or expired) key stores key and session together;
  // an existing, unexpired key returns the existing entry with nothing
  // written, whatever the fingerprint (comparing it is the caller's job).
  [[nodiscard]] virtual absl::StatusOr<IdempotencyOutcome> PutSessionWithIdempotency(
      const SessionRecord& record, std::string_view key, std::string_view fingerprint,
      int64_t ttl_ms) = 0;

  // NotFoundError when missing or expired.
  [[nodiscard]] virtual absl::StatusOr<IdempotencyEntry> GetIdempotency(std::string_view key) = 0;
  [[nodiscard]] virtual absl::Status DeleteIdempotency(std::string_view key) = 0;

  // Leases. Acquire: free or expired -> granted with a token strictly greater
  // than any earlier token for this key; held by `owner` -> renewed, same
  // token; held by another owner -> BusyError naming the holder.
  [[nodiscard]] virtual absl::StatusOr<LeaseGrant> AcquireLease(std::string_view key,
                                                                std::string_view owner,
                                                                int64_t ttl_ms) = 0;
  // NotFoundError when not held (released or expired); ConflictError when
  // another owner holds it.
  [[nodiscard]] virtual absl::StatusOr<LeaseGrant> RenewLease(std::string_view key,
                                                              std::string_view owner,
                                                              int64_t ttl_ms) = 0;
  // NotFoundError when not held (released or expired); ConflictError when
  // another owner holds it.
  [[nodiscard]] virtual absl::Status ReleaseLease(std::string_view key,
                                                  std::string_view owner) = 0;
  // The lease on `key` as it is now: holder, token and deadline. NotFoundError
  // naming the key when it is not held (never acquired, released or expired).
  // Changes nothing: it is not a renewal.
  [[nodiscard]] virtual absl::StatusOr<LeaseInfo> GetLease(std::string_view key) = 0;
  // The unexpired leases, ordered by key.
  [[nodiscard]] virtual absl::StatusOr<std::vector<LeaseInfo>> ListLeases() = 0;

  // RenewLease for each of `leases`, as one step where the backend can (one
  // write transaction on LMDB, one sync for all): answer i is what
  // RenewLease(leases[i]...) would have answered, and every renewal stands
  // on its own (one lease lost does not keep the others from renewing). The
  // status is an error, with nothing renewed, for a bad ttl (InvalidError);
  // a store that cannot be reached answers each renewal with its error (the
  // fault-injecting wrapper fails the whole call instead). The default calls
  // RenewLease for each.
  [[nodiscard]] virtual absl::StatusOr<std::vector<absl::StatusOr<LeaseGrant>>> RenewLeases(
      std::span<const LeaseRef> leases, int64_t ttl_ms);

  // ReleaseLease for each of `leases`, as one step where the backend can (one
  // write transaction on LMDB): answer i is what ReleaseLease(leases[i]...)
  // would have answered, and each release stands on its own. A store that
  // cannot be reached answers each release with its error (the
  // fault-injecting wrapper fails the whole call instead). The default calls
  // ReleaseLease for each.
  [[nodiscard]] virtual absl::StatusOr<std::vector<absl::Status>> ReleaseLeases(
      std::span<const LeaseRef> leases);

  // Grants `owner` the first of `keys`, in their order, that is free (never
  // acquired, released or expired), with a new token as AcquireLease grants
  // it. A key held by anyone, `owner` included, is passed over: this takes a
  // free key, it renews nothing. Each key is acquired atomically; the choice
  // among them is not: a key taken by someone else after it was seen free is
  // passed over for the next. BusyError when none is free; InvalidError for
  // an empty list or an empty key, owner or bad ttl, with nothing acquired.
  // The default lists the leases once and tries the keys it shows free;
  // backends with a cheaper way to find a free key override it.
  [[nodiscard]] virtual absl::StatusOr<FirstLeaseGrant> AcquireFirstFreeLease(
      std::span<const std::string_view> keys, std::string_view owner, int64_t ttl_ms);

  // Reads the whole store and reports what does not add up (a record that
  // does not decode, a listing that disagrees with a scan, a lease without an
  // owner or token). Problems go into the report; the status is an error only
  // when the store cannot be read at all. Writes nothing. The default reads
  // through this interface; a backend with more to check overrides it.
  [[nodiscard]] virtual absl::StatusOr<StoreCheckReport> Check();

  // The store's clock in milliseconds (what lease and key deadlines use): an
  // entry with deadline d is live while NowMs() < d.
  [[nodiscard]] virtual int64_t NowMs() const = 0;
};

// Opens a store by URI: "memory:", "lmdb:DIR[?...]" or "redis://..."
// (docs/lmdb.md, docs/redis.md).
// InvalidError naming the malformed part; UnsupportedError for an unknown
// scheme. `clock` may be null for the real clock; it must outlive the store.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Store>> OpenStore(std::string_view uri,
                                                               Clock* clock = nullptr);

}  // namespace xg2g

#endif  // XG2G_LIB_STORE_STORE_H_

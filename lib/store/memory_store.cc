#include "lib/store/memory_store.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/session/session.h"
#include "lib/store/backend_util.h"

namespace xg2g {
namespace {

using store_internal::IdempotencyNotFound;
using store_internal::LeaseHeldByOther;
using store_internal::LeaseNotHeld;
using store_internal::SessionNotFound;
using store_internal::UpdateBackOff;
using store_internal::ValidateIdempotencyKey;
using store_internal::ValidateLeaseArgs;
using store_internal::ValidateTtl;

// Drops the entries `expired` says are gone once the map has grown to
// `sweep_at`, then moves the threshold to twice what is left: each insert pays
// O(1) amortised for the clean-up.
template <typename Map, typename Expired>
void MaybeSweep(Map& map, size_t& sweep_at, size_t min_sweep, Expired expired) {
  if (map.size() < sweep_at) return;
  // std::erase_if or absl::erase_if, whichever the map's namespace offers.
  erase_if(map, [&](const auto& entry) { return expired(entry.second); });
  sweep_at = std::max(min_sweep, 2 * map.size());
}


}  // namespace

MemoryStore::MemoryStore(Clock* clock) : clock_(clock != nullptr ? clock : Clock::Real()) {}

size_t MemoryStore::ShardOf(std::string_view key) {
  return std::hash<std::string_view>{}(key) % kShardCount;
}

int64_t MemoryStore::NowMs() const { return clock_->MonotonicMs(); }

size_t MemoryStore::IdempotencyEntryCount() {
  size_t total = 0;
  for (IdempotencyShard& shard : idempotency_shards_) {
    std::lock_guard lock(shard.mu);
    total += shard.entries.size();
  }
  return total;
}

int64_t MemoryStore::DeadlineAfter(int64_t ttl_ms) const {
  const int64_t now = NowMs();
  if (ttl_ms > std::numeric_limits<int64_t>::max() - now) {
    return std::numeric_limits<int64_t>::max();
  }
  return now + ttl_ms;
}

// ---------------------------------------------------------------- sessions

absl::Status MemoryStore::PutSession(const SessionRecord& record) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(record.session_id));
  auto stored = std::make_shared<SessionRecord>(record);
  SessionShard& shard = session_shards_[ShardOf(record.session_id)];
  std::unique_lock lock(shard.mu);
  // Taken under the lock: writes of one record get increasing revisions in
  // the order they are applied.
  stored->revision = NextRevision();
  if (shard.sessions.insert_or_assign(record.session_id, std::move(stored)).second) {
    membership_.fetch_add(1, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

absl::StatusOr<SessionRecord> MemoryStore::GetSession(std::string_view id) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  const SessionShard& shard = session_shards_[ShardOf(id)];
  StoredSession stored;
  {
    std::shared_lock lock(shard.mu);
    auto it = shard.sessions.find(id);
    if (it == shard.sessions.end()) return SessionNotFound(id);
    stored = it->second;
  }
  return *stored;  // the copy is made after the lock
}

absl::StatusOr<SessionRecord> MemoryStore::UpdateSession(std::string_view id,
                                                         const Mutator& mutate) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  if (!mutate) return InvalidError(fmt::format("session '{}': update without a mutator", id));
  SessionShard& shard = session_shards_[ShardOf(id)];
  for (int attempt = 0; attempt < kMaxUpdateAttempts; ++attempt) {
    UpdateBackOff(attempt);
    StoredSession read;
    {
      std::shared_lock lock(shard.mu);
      auto it = shard.sessions.find(id);
      if (it == shard.sessions.end()) return SessionNotFound(id);
      read = it->second;
    }
    SessionRecord copy = *read;
    const int64_t read_revision = copy.revision;
    // Caller code: no lock held, so it may call back into the store.
    XG2G_RETURN_IF_ERROR(mutate(copy));
    if (copy.session_id != id) {
      return InvalidError(fmt::format("session '{}': the mutator changed the session id to '{}'",
                                      id, copy.session_id));
    }
    std::unique_lock lock(shard.mu);
    auto it = shard.sessions.find(id);
    if (it == shard.sessions.end()) {
      return NotFoundError(fmt::format("session '{}' was deleted during the update", id));
    }
    if (it->second->revision != read_revision) continue;  // lost a race: mutate the fresh copy
    copy.revision = NextRevision();
    it->second = std::make_shared<const SessionRecord>(copy);
    return copy;
  }
  return ConflictError(fmt::format(
      "session '{}': the update lost to concurrent writes {} times in a row; nothing written",
      id, kMaxUpdateAttempts));
}

absl::Status MemoryStore::DeleteSession(std::string_view id) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  SessionShard& shard = session_shards_[ShardOf(id)];
  std::unique_lock lock(shard.mu);
  auto it = shard.sessions.find(id);
  if (it == shard.sessions.end()) return SessionNotFound(id);
  shard.sessions.erase(it);
  membership_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status MemoryStore::ScanSessions(const Visitor& visit) {
  if (!visit) return InvalidError("session scan without a visitor");
  std::vector<StoredSession> snapshot;
  {
    // All shards at once (ascending order, shared): a point-in-time snapshot.
    // Writers wait for the pointer copies only, never for the visitor.
    std::vector<std::shared_lock<std::shared_mutex>> locks;
    locks.reserve(kShardCount);
    size_t total = 0;
    for (SessionShard& shard : session_shards_) {
      locks.emplace_back(shard.mu);
      total += shard.sessions.size();
    }
    snapshot.reserve(total);
    for (SessionShard& shard : session_shards_) {
      for (const auto& [id, record] : shard.sessions) snapshot.push_back(record);
    }
  }
  for (const StoredSession& record : snapshot) {
    if (!visit(*record)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<SessionPage> MemoryStore::ListSessions(size_t offset, size_t limit) {
  if (limit == 0 || limit > kMaxPageLimit) {
    return InvalidError(
        fmt::format("limit must be between 1 and {}, got {}", kMaxPageLimit, limit));
  }
  using Iterator = OrderedMap<StoredSession>::const_iterator;
  struct Cursor {
    Iterator at;
    Iterator end;
  };
  // Min-heap on the id under each cursor: merges the sorted shards.
  const auto after = [](const Cursor& a, const Cursor& b) { return a.at->first > b.at->first; };

  SessionPage page;
  std::vector<StoredSession> found;  // copied into the page once the locks are gone
  std::vector<std::shared_lock<std::shared_mutex>> locks;
  locks.reserve(kShardCount);
  for (SessionShard& shard : session_shards_) {
    locks.emplace_back(shard.mu);
    page.total += shard.sessions.size();
  }
  if (offset >= page.total) return page;
  // With every shard locked no id comes or goes: when none has since the
  // last page ended, the walk resumes after that page's last id instead of
  // counting from the first (paging through the store stays linear).
  const uint64_t membership = membership_.load(std::memory_order_relaxed);
  size_t index = 0;
  std::string resume_after;
  {
    std::lock_guard lock(page_end_mu_);
    if (page_end_.has_value() && page_end_->membership == membership &&
        page_end_->next_offset <= offset) {
      index = page_end_->next_offset;
      resume_after = page_end_->last_id;
    }
  }
  std::vector<Cursor> heap;
  heap.reserve(kShardCount);
  for (SessionShard& shard : session_shards_) {
    const auto begin =
        index == 0 ? shard.sessions.cbegin() : shard.sessions.upper_bound(resume_after);
    if (begin != shard.sessions.cend()) heap.push_back({begin, shard.sessions.cend()});
  }
  found.reserve(std::min(limit, page.total - offset));
  std::make_heap(heap.begin(), heap.end(), after);
  while (!heap.empty() && found.size() < limit) {
    std::pop_heap(heap.begin(), heap.end(), after);
    Cursor& cursor = heap.back();
    if (index >= offset) found.push_back(cursor.at->second);
    ++index;
    if (++cursor.at == cursor.end) {
      heap.pop_back();
    } else {
      std::push_heap(heap.begin(), heap.end(), after);
    }
  }
  if (!found.empty()) {
    std::lock_guard lock(page_end_mu_);
    page_end_ = PageEnd{membership, offset + found.size(), found.back()->session_id};
  }
  locks.clear();
  page.sessions.reserve(found.size());
  for (const StoredSession& record : found) page.sessions.push_back(*record);
  return page;
}

// ---------------------------------------------------------- idempotency keys

absl::StatusOr<IdempotencyOutcome> MemoryStore::PutSessionWithIdempotency(
    const SessionRecord& record, std::string_view key, std::string_view fingerprint,
    int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  XG2G_RETURN_IF_ERROR(ValidateTtl("idempotency key", key, ttl_ms));
  if (absl::Status valid = ValidateSessionId(record.session_id); !valid.ok()) {
    return InvalidError(
        fmt::format("idempotency key '{}': {}", key, FromAbsl(valid.message())));
  }

  IdempotencyShard& keys = idempotency_shards_[ShardOf(key)];
  std::lock_guard key_lock(keys.mu);
  const int64_t now = NowMs();
  MaybeSweep(keys.entries, keys.sweep_at, kMinSweepSize,
             [now](const IdempotencyEntry& e) { return now >= e.expires_at_ms; });
  auto existing = keys.entries.find(key);
  if (existing != keys.entries.end() && now < existing->second.expires_at_ms) {
    IdempotencyOutcome outcome;
    outcome.existing = existing->second;
    return outcome;
  }

  // Everything that can throw (allocation) happens before the first write or
  // is undone, so the key and the session are stored together or not at all.
  IdempotencyEntry entry{record.session_id, std::string(fingerprint), DeadlineAfter(ttl_ms)};
  auto stored = std::make_shared<SessionRecord>(record);
  auto slot = keys.entries.insert_or_assign(std::string(key), std::move(entry)).first;
  try {
    SessionShard& sessions = session_shards_[ShardOf(record.session_id)];
    std::unique_lock session_lock(sessions.mu);  // lock order: key shard, then session shard
    stored->revision = NextRevision();
    if (sessions.sessions.insert_or_assign(record.session_id, std::move(stored)).second) {
      membership_.fetch_add(1, std::memory_order_relaxed);
    }
  } catch (...) {
    keys.entries.erase(slot);  // an expired entry it replaced counts as absent anyway
    throw;
  }
  IdempotencyOutcome outcome;
  outcome.stored = true;
  return outcome;
}

absl::StatusOr<IdempotencyEntry> MemoryStore::GetIdempotency(std::string_view key) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  IdempotencyShard& keys = idempotency_shards_[ShardOf(key)];
  std::lock_guard lock(keys.mu);
  auto it = keys.entries.find(key);
  if (it != keys.entries.end() && NowMs() >= it->second.expires_at_ms) {
    keys.entries.erase(it);
    it = keys.entries.end();
  }
  if (it == keys.entries.end()) {
    return IdempotencyNotFound(key);
  }
  return it->second;
}

absl::Status MemoryStore::DeleteIdempotency(std::string_view key) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  IdempotencyShard& keys = idempotency_shards_[ShardOf(key)];
  std::lock_guard lock(keys.mu);
  auto it = keys.entries.find(key);
  if (it == keys.entries.end()) {
    return IdempotencyNotFound(key);
  }
  const bool expired = NowMs() >= it->second.expires_at_ms;
  keys.entries.erase(it);
  if (expired) {
    return IdempotencyNotFound(key);
  }
  return absl::OkStatus();
}

// -------------------------------------------------------------------- leases

absl::StatusOr<LeaseGrant> MemoryStore::AcquireLease(std::string_view key, std::string_view owner,
                                                     int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  XG2G_RETURN_IF_ERROR(ValidateTtl("lease", key, ttl_ms));
  LeaseShard& shard = lease_shards_[ShardOf(key)];
  std::lock_guard lock(shard.mu);
  const int64_t now = NowMs();
  const Lease* held = nullptr;
  std::optional<LeaseGrant> grant =
      AcquireLocked(shard, key, owner, ttl_ms, now, /*may_renew=*/true, &held);
  if (!grant) {
    return BusyError(fmt::format("lease '{}' is held by '{}' for another {} ms", key, held->owner,
                                 held->expires_at_ms - now));
  }
  return *grant;
}

std::optional<LeaseGrant> MemoryStore::AcquireLocked(LeaseShard& shard, std::string_view key,
                                                     std::string_view owner, int64_t ttl_ms,
                                                     int64_t now, bool may_renew,
                                                     const Lease** busy) {
  MaybeSweep(shard.leases, shard.sweep_at, kMinSweepSize,
             [now](const Lease& lease) { return now >= lease.expires_at_ms; });
  auto it = shard.leases.find(ToAbsl(key));
  if (it != shard.leases.end() && now < it->second.expires_at_ms) {
    Lease& held = it->second;
    if (!may_renew || held.owner != owner) {
      if (busy != nullptr) *busy = &held;
      return std::nullopt;
    }
    held.expires_at_ms = DeadlineAfter(ttl_ms);  // the holder again: a renewal
    return LeaseGrant{held.fencing_token, held.expires_at_ms};
  }
  Lease lease{std::string(owner),
              last_fencing_token_.fetch_add(1, std::memory_order_relaxed) + 1,
              DeadlineAfter(ttl_ms)};
  const LeaseGrant grant{lease.fencing_token, lease.expires_at_ms};
  if (it != shard.leases.end()) {
    it->second = std::move(lease);
  } else {
    shard.leases.emplace(std::string(key), std::move(lease));
  }
  return grant;
}

absl::StatusOr<FirstLeaseGrant> MemoryStore::AcquireFirstFreeLease(
    std::span<const std::string_view> keys, std::string_view owner, int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(store_internal::ValidateFirstFreeArgs(keys, owner, ttl_ms));
  // Every lease shard locked at once, in index order (nothing else holds two),
  // so that the walk pays one lock per shard rather than one per key.
  std::array<std::unique_lock<std::mutex>, kShardCount> locks;
  for (size_t i = 0; i < kShardCount; ++i) {
    locks[i] = std::unique_lock(lease_shards_[i].mu);
  }
  const int64_t now = NowMs();
  for (size_t i = 0; i < keys.size(); ++i) {
    LeaseShard& shard = lease_shards_[ShardOf(keys[i])];
    // The analysis cannot see the locks taken in the loop above.
    std::optional<LeaseGrant> grant = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return AcquireLocked(shard, keys[i], owner, ttl_ms, now, /*may_renew=*/false, nullptr);
    }();
    if (grant) return FirstLeaseGrant{i, *grant};
  }
  return store_internal::NoFreeLease(keys.size());
}

absl::StatusOr<LeaseGrant> MemoryStore::RenewLease(std::string_view key, std::string_view owner,
                                                   int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  XG2G_RETURN_IF_ERROR(ValidateTtl("lease", key, ttl_ms));
  LeaseShard& shard = lease_shards_[ShardOf(key)];
  std::lock_guard lock(shard.mu);
  auto it = shard.leases.find(ToAbsl(key));
  if (it == shard.leases.end()) return LeaseNotHeld(key);
  if (NowMs() >= it->second.expires_at_ms) {
    shard.leases.erase(it);
    return LeaseNotHeld(key);
  }
  Lease& held = it->second;
  if (held.owner != owner) return LeaseHeldByOther(key, held.owner, owner);
  held.expires_at_ms = DeadlineAfter(ttl_ms);
  return LeaseGrant{held.fencing_token, held.expires_at_ms};
}

absl::Status MemoryStore::ReleaseLease(std::string_view key, std::string_view owner) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  LeaseShard& shard = lease_shards_[ShardOf(key)];
  std::lock_guard lock(shard.mu);
  auto it = shard.leases.find(ToAbsl(key));
  if (it == shard.leases.end()) return LeaseNotHeld(key);
  if (NowMs() >= it->second.expires_at_ms) {
    shard.leases.erase(it);
    return LeaseNotHeld(key);
  }
  if (it->second.owner != owner) return LeaseHeldByOther(key, it->second.owner, owner);
  shard.leases.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<LeaseInfo> MemoryStore::GetLease(std::string_view key) {
  if (key.empty()) return InvalidError("lease key is empty");
  LeaseShard& shard = lease_shards_[ShardOf(key)];
  std::lock_guard lock(shard.mu);
  auto it = shard.leases.find(ToAbsl(key));
  if (it == shard.leases.end()) return LeaseNotHeld(key);
  if (NowMs() >= it->second.expires_at_ms) {
    shard.leases.erase(it);
    return LeaseNotHeld(key);
  }
  const Lease& held = it->second;
  return LeaseInfo{std::string(key), held.owner, held.fencing_token, held.expires_at_ms};
}

absl::StatusOr<std::vector<LeaseInfo>> MemoryStore::ListLeases() {
  std::vector<LeaseInfo> leases;
  for (LeaseShard& shard : lease_shards_) {
    std::lock_guard lock(shard.mu);
    const int64_t now = NowMs();
    absl::erase_if(shard.leases,
                   [now](const auto& entry) { return now >= entry.second.expires_at_ms; });
    for (const auto& [key, lease] : shard.leases) {
      leases.push_back(LeaseInfo{key, lease.owner, lease.fencing_token, lease.expires_at_ms});
    }
  }
  std::sort(leases.begin(), leases.end(),
            [](const LeaseInfo& a, const LeaseInfo& b) { return a.key < b.key; });
  return leases;
}

}  // namespace xg2g

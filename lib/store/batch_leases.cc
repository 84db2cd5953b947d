// The defaults of the store's batch calls: AcquireFirstFreeLease (one
// listing of the leases, then AcquireLease on the keys it does not show held)
// RenewLeases and ReleaseLeases (RenewLease or ReleaseLease for each).
#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "lib/common/status.h"
#include "lib/store/backend_util.h"
#include "lib/store/store.h"

namespace xg2g {

absl::StatusOr<FirstLeaseGrant> Store::AcquireFirstFreeLease(std::span<const std::string_view> keys,
                                                             std::string_view owner,
                                                             int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(store_internal::ValidateFirstFreeArgs(keys, owner, ttl_ms));
  XG2G_ASSIGN_OR_RETURN(std::vector<LeaseInfo> leases, ListLeases());
  absl::flat_hash_set<std::string_view> held;
  const int64_t now = NowMs();
  for (const LeaseInfo& lease : leases) {
    if (lease.expires_at_ms > now) held.insert(lease.key);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (held.contains(keys[i])) continue;
    auto grant = AcquireLease(keys[i], owner, ttl_ms);
    if (grant.ok()) return FirstLeaseGrant{i, *grant};
    if (CodeOf(grant.status()) != ErrorCode::kBusy) return grant.status();
    // Taken since the listing: the next key.
  }
  return store_internal::NoFreeLease(keys.size());
}

absl::StatusOr<std::vector<absl::StatusOr<LeaseGrant>>> Store::RenewLeases(
    std::span<const LeaseRef> leases, int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(store_internal::ValidateRenewalsTtl(ttl_ms));
  std::vector<absl::StatusOr<LeaseGrant>> answers;
  answers.reserve(leases.size());
  for (const LeaseRef& lease : leases) {
    answers.push_back(RenewLease(lease.key, lease.owner, ttl_ms));
  }
  return answers;
}

absl::StatusOr<std::vector<absl::Status>> Store::ReleaseLeases(std::span<const LeaseRef> leases) {
  std::vector<absl::Status> answers;
  answers.reserve(leases.size());
  for (const LeaseRef& lease : leases) answers.push_back(ReleaseLease(lease.key, lease.owner));
  return answers;
}

}  // namespace xg2g

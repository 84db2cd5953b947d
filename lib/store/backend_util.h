// Argument checks, error messages and the retry pause that every store
// backend (memory, LMDB, Redis) shares, so that the three answer alike.
// Internal to lib/store.
#ifndef XG2G_LIB_STORE_BACKEND_UTIL_H_
#define XG2G_LIB_STORE_BACKEND_UTIL_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace xg2g::store_internal {

// `text` as a JSON string literal for a message, cut after 128 bytes ("...").
// Keys may hold any bytes: quoting keeps every message one readable line.
[[nodiscard]] std::string Quoted(std::string_view text);

// InvalidError for an empty lease key or owner.
[[nodiscard]] absl::Status ValidateLeaseArgs(std::string_view key, std::string_view owner);
// InvalidError unless ttl_ms > 0; `what` is "lease" or "idempotency key".
[[nodiscard]] absl::Status ValidateTtl(std::string_view what, std::string_view key,
                                       int64_t ttl_ms);
// The argument checks of AcquireFirstFreeLease: a non-empty list of
// non-empty keys, an owner and a positive ttl.
[[nodiscard]] absl::Status ValidateFirstFreeArgs(std::span<const std::string_view> keys,
                                                 std::string_view owner, int64_t ttl_ms);
// RenewLeases' check of its one ttl: InvalidError unless ttl_ms > 0.
[[nodiscard]] absl::Status ValidateRenewalsTtl(int64_t ttl_ms);
// AcquireFirstFreeLease's BusyError when none of `count` keys was free.
[[nodiscard]] absl::Status NoFreeLease(size_t count);
// InvalidError for an empty idempotency key.
[[nodiscard]] absl::Status ValidateIdempotencyKey(std::string_view key);

// The NotFound and Conflict answers of the Store contract.
[[nodiscard]] absl::Status SessionNotFound(std::string_view id);
[[nodiscard]] absl::Status IdempotencyNotFound(std::string_view key);
[[nodiscard]] absl::Status LeaseNotHeld(std::string_view key);
[[nodiscard]] absl::Status LeaseHeldByOther(std::string_view key, std::string_view holder,
                                            std::string_view owner);

// The pause before attempt `attempt` (0 is the first try) of an optimistic
// update that lost a race: none for the first try and the first retry, then
// yields, then a random sleep whose bound doubles up to 1 ms, so that
// contending writers stop meeting in lockstep.
void UpdateBackOff(int attempt);

}  // namespace xg2g::store_internal

#endif  // XG2G_LIB_STORE_BACKEND_UTIL_H_

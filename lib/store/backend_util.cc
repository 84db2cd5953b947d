#include "lib/store/backend_util.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "lib/common/json_writer.h"
#include "lib/common/status.h"

namespace xg2g::store_internal {

std::string Quoted(std::string_view text) {
  constexpr size_t kMaxQuoted = 128;
  std::string out = JsonQuote(text.substr(0, kMaxQuoted));
  if (text.size() > kMaxQuoted) out.insert(out.size() - 1, "...");
  return out;
}

absl::Status ValidateLeaseArgs(std::string_view key, std::string_view owner) {
  if (key.empty()) return InvalidError("lease key is empty");
  if (owner.empty()) return InvalidError(fmt::format("lease {}: owner is empty", Quoted(key)));
  return absl::OkStatus();
}

absl::Status ValidateTtl(std::string_view what, std::string_view key, int64_t ttl_ms) {
  if (ttl_ms <= 0) {
    return InvalidError(
        fmt::format("{} {}: ttl_ms must be > 0, got {}", what, Quoted(key), ttl_ms));
  }
  return absl::OkStatus();
}

absl::Status ValidateFirstFreeArgs(std::span<const std::string_view> keys, std::string_view owner,
                                   int64_t ttl_ms) {
  if (keys.empty()) return InvalidError("lease keys: the list is empty");
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty()) return InvalidError(fmt::format("lease keys: key #{} is empty", i + 1));
  }
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(keys.front(), owner));
  return ValidateTtl("lease", keys.front(), ttl_ms);
}

absl::Status ValidateRenewalsTtl(int64_t ttl_ms) {
  if (ttl_ms <= 0) return InvalidError(fmt::format("leases: ttl_ms must be > 0, got {}", ttl_ms));
  return absl::OkStatus();
}

// Held by anyone, the caller included: AcquireFirstFreeLease renews nothing.
absl::Status NoFreeLease(size_t count) {
  return BusyError(count == 1 ? std::string("the one lease asked for is held")
                              : fmt::format("all {} leases asked for are held", count));
}

absl::Status ValidateIdempotencyKey(std::string_view key) {
  if (key.empty()) return InvalidError("idempotency key is empty");
  return absl::OkStatus();
}

absl::Status SessionNotFound(std::string_view id) {
  return NotFoundError(fmt::format("session {} not found", Quoted(id)));
}

absl::Status IdempotencyNotFound(std::string_view key) {
  return NotFoundError(
      fmt::format("idempotency key {} not found (never stored or expired)", Quoted(key)));
}

absl::Status LeaseNotHeld(std::string_view key) {
  return NotFoundError(
      fmt::format("lease {} is not held (never acquired, released or expired)", Quoted(key)));
}

absl::Status LeaseHeldByOther(std::string_view key, std::string_view holder,
                              std::string_view owner) {
  return ConflictError(fmt::format("lease {} is held by {}, not by {}", Quoted(key),
                                   Quoted(holder), Quoted(owner)));
}

void UpdateBackOff(int attempt) {
  if (attempt < 2) return;
  if (attempt < 6) {
    std::this_thread::yield();
    return;
  }
  thread_local std::minstd_rand random(
      static_cast<uint32_t>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  const int64_t bound_us = std::min<int64_t>(1000, int64_t{8} << std::min(attempt - 6, 10));
  std::uniform_int_distribution<int64_t> pick(0, bound_us);
  std::this_thread::sleep_for(std::chrono::microseconds(pick(random)));
}

}  // namespace xg2g::store_internal

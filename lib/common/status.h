// Error codes and Status helpers shared by the whole core.
//
// Every fallible function in lib/ returns absl::Status or absl::StatusOr<T>.
// The C ABI needs a finer classification than absl's canonical codes (a busy
// lease is not the same as a conflicting update), so the exact ErrorCode rides
// along as a payload and CodeOf() reads it back. Thread-compatible: plain
// functions without shared state.
#ifndef XG2G_LIB_COMMON_STATUS_H_
#define XG2G_LIB_COMMON_STATUS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace xg2g {

// Debian's Abseil is built with its own string_view type (not an alias of
// std::string_view); the core speaks std::string_view and converts here.
inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view FromAbsl(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// Mirrors xg2g_status in the public header value for value (the C API layer
// static_asserts that they agree).
enum class ErrorCode : int {
  kOk = 0,
  kInvalid = -1,
  kNoMemory = -2,
  kVersion = -3,
  kNotFound = -4,
  kExists = -5,
  kConflict = -6,
  kBusy = -7,
  kState = -8,
  kUnavailable = -9,
  kCorrupt = -10,
  kStoreFull = -11,
  kTimeout = -12,
  kCancelled = -13,
  kIo = -14,
  kUnsupported = -15,
  kInternal = -16,
  kInFlight = -17,
  kCircuitOpen = -18,  // a circuit breaker fails fast (HTTP 503 CIRCUIT_OPEN)
};
// The most negative code (update when appending).
inline constexpr ErrorCode kLastErrorCode = ErrorCode::kCircuitOpen;

// Builds a Status carrying `code`; the canonical absl code is chosen so that
// code that only looks at absl codes still gets a sensible answer.
[[nodiscard]] absl::Status MakeError(ErrorCode code, std::string_view message);

// The ErrorCode of a Status: the payload if present, else derived from the
// canonical code. OK gives kOk.
[[nodiscard]] ErrorCode CodeOf(const absl::Status& status);

// Stable name ("XG2G_ENOTFOUND").
[[nodiscard]] std::string_view ErrorCodeName(ErrorCode code);

// The text of an errno value. Thread-safe, unlike std::strerror.
[[nodiscard]] std::string ErrnoText(int error);

inline absl::Status InvalidError(std::string_view m) { return MakeError(ErrorCode::kInvalid, m); }
inline absl::Status NotFoundError(std::string_view m) { return MakeError(ErrorCode::kNotFound, m); }
inline absl::Status ConflictError(std::string_view m) { return MakeError(ErrorCode::kConflict, m); }
inline absl::Status BusyError(std::string_view m) { return MakeError(ErrorCode::kBusy, m); }
inline absl::Status StateError(std::string_view m) { return MakeError(ErrorCode::kState, m); }
inline absl::Status UnavailableError(std::string_view m) { return MakeError(ErrorCode::kUnavailable, m); }
inline absl::Status CorruptError(std::string_view m) { return MakeError(ErrorCode::kCorrupt, m); }
inline absl::Status StoreFullError(std::string_view m) { return MakeError(ErrorCode::kStoreFull, m); }
inline absl::Status InternalError(std::string_view m) { return MakeError(ErrorCode::kInternal, m); }
inline absl::Status InFlightError(std::string_view m) { return MakeError(ErrorCode::kInFlight, m); }
inline absl::Status CircuitOpenError(std::string_view m) {
  return MakeError(ErrorCode::kCircuitOpen, m);
}

}  // namespace xg2g

#define XG2G_STATUS_CONCAT_INNER_(a, b) a##b
#define XG2G_STATUS_CONCAT_(a, b) XG2G_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define XG2G_RETURN_IF_ERROR(expr)                     \
  do {                                                 \
    ::absl::Status xg2g_status_tmp_ = (expr);          \
    if (!xg2g_status_tmp_.ok()) return xg2g_status_tmp_; \
  } while (0)

// `lhs = *expr` for an absl::StatusOr<T> expr, or returns its status.
#define XG2G_ASSIGN_OR_RETURN(lhs, expr) \
  XG2G_ASSIGN_OR_RETURN_IMPL_(XG2G_STATUS_CONCAT_(xg2g_statusor_, __LINE__), lhs, expr)
// `tmp` is a name being declared and `lhs` may be a declaration
// (`auto x`), so neither can be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define XG2G_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).status();    \
  lhs = std::move(*tmp)
// NOLINTEND(bugprone-macro-parentheses)

#endif  // XG2G_LIB_COMMON_STATUS_H_

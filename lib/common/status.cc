#include "lib/common/status.h"

#include <cstring>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace xg2g {
namespace {

constexpr std::string_view kPayloadUrl = "xg2g.dev/error-code";

// strerror_r comes in two flavours; one of these two overloads takes its result.
// The GNU one returns the message (not always in buf).
[[maybe_unused]] const char* StrerrorText(const char* message, const char* /*buf*/) {
  return message;
}
// The POSIX one returns 0 and fills buf.
[[maybe_unused]] const char* StrerrorText(int rc, const char* buf) {
  return rc == 0 ? buf : "unknown error";
}

absl::StatusCode CanonicalFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return absl::StatusCode::kOk;
    case ErrorCode::kInvalid: return absl::StatusCode::kInvalidArgument;
    case ErrorCode::kNoMemory: return absl::StatusCode::kResourceExhausted;
    case ErrorCode::kVersion: return absl::StatusCode::kInvalidArgument;
    case ErrorCode::kNotFound: return absl::StatusCode::kNotFound;
    case ErrorCode::kExists: return absl::StatusCode::kAlreadyExists;
    case ErrorCode::kConflict: return absl::StatusCode::kAborted;
    case ErrorCode::kBusy: return absl::StatusCode::kResourceExhausted;
    case ErrorCode::kState: return absl::StatusCode::kFailedPrecondition;
    case ErrorCode::kUnavailable: return absl::StatusCode::kUnavailable;
    case ErrorCode::kCorrupt: return absl::StatusCode::kDataLoss;
    case ErrorCode::kStoreFull: return absl::StatusCode::kResourceExhausted;
    case ErrorCode::kTimeout: return absl::StatusCode::kDeadlineExceeded;
    case ErrorCode::kCancelled: return absl::StatusCode::kCancelled;
    case ErrorCode::kIo: return absl::StatusCode::kInternal;
    case ErrorCode::kUnsupported: return absl::StatusCode::kUnimplemented;
    case ErrorCode::kInternal: return absl::StatusCode::kInternal;
    case ErrorCode::kInFlight: return absl::StatusCode::kAborted;
    case ErrorCode::kCircuitOpen: return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kInternal;
}

ErrorCode FromCanonical(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return ErrorCode::kOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return ErrorCode::kInvalid;
    case absl::StatusCode::kNotFound: return ErrorCode::kNotFound;
    case absl::StatusCode::kAlreadyExists: return ErrorCode::kExists;
    case absl::StatusCode::kAborted: return ErrorCode::kConflict;
    case absl::StatusCode::kFailedPrecondition: return ErrorCode::kState;
    case absl::StatusCode::kUnavailable: return ErrorCode::kUnavailable;
    case absl::StatusCode::kDataLoss: return ErrorCode::kCorrupt;
    case absl::StatusCode::kResourceExhausted: return ErrorCode::kStoreFull;
    case absl::StatusCode::kDeadlineExceeded: return ErrorCode::kTimeout;
    case absl::StatusCode::kCancelled: return ErrorCode::kCancelled;
    case absl::StatusCode::kUnimplemented: return ErrorCode::kUnsupported;
    default: return ErrorCode::kInternal;
  }
}

}  // namespace

absl::Status MakeError(ErrorCode code, std::string_view message) {
  if (code == ErrorCode::kOk) return absl::OkStatus();
  absl::Status status(CanonicalFor(code), ToAbsl(message));
  status.SetPayload(ToAbsl(kPayloadUrl), absl::Cord(std::to_string(static_cast<int>(code))));
  return status;
}

ErrorCode CodeOf(const absl::Status& status) {
  if (status.ok()) return ErrorCode::kOk;
  if (auto payload = status.GetPayload(ToAbsl(kPayloadUrl))) {
    int value = 0;
    if (absl::SimpleAtoi(payload->Flatten(), &value) &&
        value <= 0 && value >= static_cast<int>(kLastErrorCode)) {
      return static_cast<ErrorCode>(value);
    }
  }
  return FromCanonical(status.code());
}

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "XG2G_OK";
    case ErrorCode::kInvalid: return "XG2G_EINVAL";
    case ErrorCode::kNoMemory: return "XG2G_ENOMEM";
    case ErrorCode::kVersion: return "XG2G_EVERSION";
    case ErrorCode::kNotFound: return "XG2G_ENOTFOUND";
    case ErrorCode::kExists: return "XG2G_EEXISTS";
    case ErrorCode::kConflict: return "XG2G_ECONFLICT";
    case ErrorCode::kBusy: return "XG2G_EBUSY";
    case ErrorCode::kState: return "XG2G_ESTATE";
    case ErrorCode::kUnavailable: return "XG2G_EUNAVAILABLE";
    case ErrorCode::kCorrupt: return "XG2G_ECORRUPT";
    case ErrorCode::kStoreFull: return "XG2G_ESTOREFULL";
    case ErrorCode::kTimeout: return "XG2G_ETIMEOUT";
    case ErrorCode::kCancelled: return "XG2G_ECANCELLED";
    case ErrorCode::kIo: return "XG2G_EIO";
    case ErrorCode::kUnsupported: return "XG2G_EUNSUPPORTED";
    case ErrorCode::kInternal: return "XG2G_EINTERNAL";
    case ErrorCode::kInFlight: return "XG2G_EINFLIGHT";
    case ErrorCode::kCircuitOpen: return "XG2G_ECIRCUITOPEN";
  }
  return "XG2G_UNKNOWN";
}

std::string ErrnoText(int error) {
  char buf[256] = "";
  return StrerrorText(strerror_r(error, buf, sizeof buf), buf);
}

}  // namespace xg2g

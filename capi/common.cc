// Exported entry points shared by every module: status names, last error,
// memory, versions.
#include <cstdlib>

#include "capi/barrier.h"
#include "include/xg2g/xg2g.h"

namespace {

using xg2g::ErrorCode;

// The C enum and the core's ErrorCode must agree value for value.
static_assert(XG2G_OK == static_cast<int>(ErrorCode::kOk));
static_assert(XG2G_EINVAL == static_cast<int>(ErrorCode::kInvalid));
static_assert(XG2G_ENOMEM == static_cast<int>(ErrorCode::kNoMemory));
static_assert(XG2G_EVERSION == static_cast<int>(ErrorCode::kVersion));
static_assert(XG2G_ENOTFOUND == static_cast<int>(ErrorCode::kNotFound));
static_assert(XG2G_EEXISTS == static_cast<int>(ErrorCode::kExists));
static_assert(XG2G_ECONFLICT == static_cast<int>(ErrorCode::kConflict));
static_assert(XG2G_EBUSY == static_cast<int>(ErrorCode::kBusy));
static_assert(XG2G_ESTATE == static_cast<int>(ErrorCode::kState));
static_assert(XG2G_EUNAVAILABLE == static_cast<int>(ErrorCode::kUnavailable));
static_assert(XG2G_ECORRUPT == static_cast<int>(ErrorCode::kCorrupt));
static_assert(XG2G_ESTOREFULL == static_cast<int>(ErrorCode::kStoreFull));
static_assert(XG2G_ETIMEOUT == static_cast<int>(ErrorCode::kTimeout));
static_assert(XG2G_ECANCELLED == static_cast<int>(ErrorCode::kCancelled));
static_assert(XG2G_EIO == static_cast<int>(ErrorCode::kIo));
static_assert(XG2G_EUNSUPPORTED == static_cast<int>(ErrorCode::kUnsupported));
static_assert(XG2G_EINTERNAL == static_cast<int>(ErrorCode::kInternal));
static_assert(XG2G_EINFLIGHT == static_cast<int>(ErrorCode::kInFlight));
static_assert(XG2G_ECIRCUITOPEN == static_cast<int>(ErrorCode::kCircuitOpen));
static_assert(xg2g::kLastErrorCode == ErrorCode::kCircuitOpen);

}  // namespace

extern "C" {

const char* xg2g_status_str(xg2g_status status) {
  const int value = xg2g::capi::EnumBits(status);
  if (value > 0 || value < static_cast<int>(xg2g::kLastErrorCode)) return "XG2G_UNKNOWN";
  // Names are string literals: static storage, safe to hand out.
  return xg2g::ErrorCodeName(static_cast<ErrorCode>(value)).data();
}

const char* xg2g_last_error(void) { return xg2g::capi::LastError(); }

void xg2g_free(void* ptr) { std::free(ptr); }

void xg2g_version(int* major, int* minor, int* patch) {
  if (major != nullptr) *major = XG2G_VERSION_MAJOR;
  if (minor != nullptr) *minor = XG2G_VERSION_MINOR;
  if (patch != nullptr) *patch = XG2G_VERSION_PATCH;
}

const char* xg2g_version_string(void) { return XG2G_VERSION_STRING; }

xg2g_status xg2g_check_version(int major, int minor) {
  return xg2g::capi::Guard("xg2g_check_version", [&]() -> xg2g_status {
    if (major == XG2G_VERSION_MAJOR && minor >= 0 && minor <= XG2G_VERSION_MINOR) return XG2G_OK;
    return xg2g::capi::Fail(
        XG2G_EVERSION, std::string("xg2g_check_version: caller built for ") + std::to_string(major) +
                           "." + std::to_string(minor) + ", library is " XG2G_VERSION_STRING);
  });
}

}  // extern "C"

#include "capi/barrier.h"

#include <cstdlib>
#include <cstring>

namespace xg2g::capi {
namespace {

// The per-thread message behind xg2g_last_error(). A fixed buffer keeps the
// thread_local trivially destructible and the returned pointer stable.
constexpr size_t kMaxMessage = 1024;
thread_local char last_error[kMaxMessage] = "";

}  // namespace

void SetLastError(std::string_view message) {
  const size_t n = message.size() < kMaxMessage - 1 ? message.size() : kMaxMessage - 1;
  std::memcpy(last_error, message.data(), n);
  last_error[n] = '\0';
}

void ClearLastError() { last_error[0] = '\0'; }

const char* LastError() { return last_error; }

xg2g_status Fail(xg2g_status status, std::string_view message) {
  SetLastError(message);
  return status;
}

xg2g_status FromStatus(const absl::Status& status) {
  if (status.ok()) return XG2G_OK;
  const ErrorCode code = CodeOf(status);
  return Fail(static_cast<xg2g_status>(code), FromAbsl(status.message()));
}

char* DupString(std::string_view s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out == nullptr) throw std::bad_alloc();
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return out;
}

}  // namespace xg2g::capi

#include <string>

#include <fmt/format.h>
#include "lib/common/status.h"
#include "lib/session/session.h"

namespace xg2g {

bool IsValidSessionId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

absl::Status ValidateSessionId(std::string_view id) {
  if (IsValidSessionId(id)) return absl::OkStatus();
  if (id.empty()) return InvalidError("session id is empty");
  if (id.size() > 64) {
    return InvalidError(fmt::format("session id is {} characters long (at most 64)", id.size()));
  }
  return InvalidError("session id contains characters outside [A-Za-z0-9_-]");
}

}  // namespace xg2g

#include <array>
#include <string>

#include <fmt/format.h>
#include "lib/common/status.h"
#include "lib/session/session.h"

namespace xg2g {

namespace {

// Every store call checks its id: a table keeps that to one load per byte.
constexpr std::array<bool, 256> kIdChar = [] {
  std::array<bool, 256> table{};
  for (int c = 'a'; c <= 'z'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = '0'; c <= '9'; ++c) table[static_cast<size_t>(c)] = true;
  table['_'] = table['-'] = true;
  return table;
}();

}  // namespace

bool IsValidSessionId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  bool ok = true;
  for (char c : id) ok &= kIdChar[static_cast<unsigned char>(c)];
  return ok;
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

// Fuzz target for the token spec parser and the credential extraction
// (lib/auth/auth.cc).
//
// The input is split at NUL bytes: the token spec, then Authorization
// values, Cookie values and query tokens separated by 0x01 within each part.
// Properties: parsing never crashes; an error message never holds a token
// of the spec (the part left of an '=' in an entry, unless it looks like a
// scope itself); extracted credentials
// are a substring of what was offered; a usable credential is non-empty.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lib/auth/auth.h"
#include "lib/common/status.h"

namespace {

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "auth_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  if (s.empty()) return out;
  size_t pos = 0;
  while (true) {
    const size_t at = s.find(sep, pos);
    out.push_back(s.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) break;
    pos = at + 1;
  }
  return out;
}

bool Within(std::string_view part, std::string_view whole) {
  return part.empty() || (part.data() >= whole.data() &&
                          part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> parts = Split(input, '\0');
  const std::string_view spec = parts.empty() ? std::string_view() : parts[0];

  std::vector<std::string> warnings;
  auto set = xg2g::TokenSet::Parse(spec, &warnings);
  if (!set.ok()) {
    std::string message(xg2g::FromAbsl(set.status().message()));
    // The list of known scopes is fixed text, not input.
    constexpr std::string_view kKnown = "known: v3:read, v3:write, v3:admin, v3:*, *";
    if (const size_t at = message.find(kKnown); at != std::string::npos) message.erase(at, kKnown.size());
    for (std::string_view entry : Split(spec, ';')) {
      const size_t eq = entry.find('=');
      if (eq == std::string_view::npos) continue;  // no token in it
      std::string_view token = entry.substr(0, eq);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      // Short fragments occur in any message by chance, and a misspelt scope
      // ("v3:wirte") is quoted on purpose: only real tokens count.
      const bool scope_like = token.substr(0, 3) == "v3:";
      const bool valid = token.find_first_of(" \t,=;") == std::string_view::npos;
      if (token.size() >= 12 && valid && !scope_like && message.find(token) != std::string::npos) {
        Fail("a token in an error message", message);
      }
    }
  }

  const std::vector<std::string_view> authorization =
      Split(parts.size() > 1 ? parts[1] : std::string_view(), '\x01');
  const std::vector<std::string_view> cookies =
      Split(parts.size() > 2 ? parts[2] : std::string_view(), '\x01');
  const std::vector<std::string_view> query =
      Split(parts.size() > 3 ? parts[3] : std::string_view(), '\x01');
  for (bool allow : {false, true}) {
    const xg2g::Credentials c = xg2g::ExtractCredentials(authorization, cookies, query, allow);
    if (!Within(c.token, input)) Fail("a token from nowhere", c.token);
    if (c.malformed && !c.token.empty()) Fail("a malformed credential with a token", c.token);
    if (!c.malformed && c.source != xg2g::CredentialSource::kNone && c.token.empty()) {
      Fail("an empty usable token", xg2g::CredentialSourceName(c.source));
    }
    if (!allow && c.source == xg2g::CredentialSource::kQuery) Fail("query token not allowed", "");
    if (set.ok() && !c.malformed && !c.token.empty()) (void)set->Authenticate(c.token);
  }
  for (std::string_view cookie : cookies) {
    int count = 0;
    auto value = xg2g::FindCookie(cookie, xg2g::kSessionCookie, &count);
    if (value.has_value() != (count > 0)) Fail("cookie count disagrees", cookie);
    if (value && !Within(*value, cookie)) Fail("a cookie value from nowhere", *value);
  }
  return 0;
}

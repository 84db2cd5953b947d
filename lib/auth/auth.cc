#include "lib/auth/auth.h"

#include <algorithm>

#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/crypto/crypto.h"

namespace xg2g {
namespace {

constexpr size_t kShortToken = 16;
constexpr size_t kPrincipalIdLength = 16;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool ValidTokenChars(std::string_view token) {
  return std::none_of(token.begin(), token.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f || c == ' ' || c == '=' || c == ';' || c == ',';
  });
}

// Whether an unknown scope may be quoted in a message: only what looks like
// a misspelt scope ("v3:wirte"). Anything else may be a token in the wrong
// place ("v3:read=token" written the wrong way round, "a=v3:read,b=v3:write"
// with ',' for ';') and is never repeated.
bool LooksLikeScope(std::string_view s) {
  if (s.size() > 19 || s.substr(0, 3) != "v3:") return false;
  return std::all_of(s.begin() + 3, s.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '*'; });
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::optional<Scope> ParseScope(std::string_view text) {
  if (text == "v3:read") return Scope::kRead;
  if (text == "v3:write") return Scope::kWrite;
  if (text == "v3:admin" || text == "v3:*" || text == "*") return Scope::kAdmin;
  return std::nullopt;
}

std::string_view ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kNone: return "";
    case Scope::kRead: return "v3:read";
    case Scope::kWrite: return "v3:write";
    case Scope::kAdmin: return "v3:admin";
  }
  return "";
}

std::string PrincipalIdOf(std::string_view token) {
  // A digest of the stored digest, under its own label: stable, short, and
  // not the value the token set compares against.
  return Sha256Hex("xg2g principal\n" + Sha256Hex(token)).substr(0, kPrincipalIdLength);
}

absl::StatusOr<TokenSet> TokenSet::Parse(std::string_view spec,
                                         std::vector<std::string>* warnings) {
  TokenSet set;
  size_t pos = 0;
  int index = 0;
  while (pos <= spec.size()) {
    const size_t semicolon = std::min(spec.find(';', pos), spec.size());
    const std::string_view entry = Trim(spec.substr(pos, semicolon - pos));
    pos = semicolon + 1;
    ++index;
    if (entry.empty()) continue;  // "a=v3:read;" and the like
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) {
      return InvalidError(
          fmt::format("tokens: entry {} has no '=' (expected token=scope,scope)", index));
    }
    const std::string_view token = Trim(entry.substr(0, eq));
    if (token.empty()) return InvalidError(fmt::format("tokens: entry {} has an empty token", index));
    if (!ValidTokenChars(token)) {
      return InvalidError(fmt::format(
          "tokens: the token of entry {} contains white space, ',' or a control character", index));
    }
    const std::string_view scopes = Trim(entry.substr(eq + 1));
    if (scopes.empty()) return InvalidError(fmt::format("tokens: entry {} has no scopes", index));
    Scope best = Scope::kNone;
    size_t spos = 0;
    while (spos <= scopes.size()) {
      const size_t comma = std::min(scopes.find(',', spos), scopes.size());
      const std::string_view name = Trim(scopes.substr(spos, comma - spos));
      spos = comma + 1;
      if (name.empty()) {
        return InvalidError(fmt::format("tokens: entry {} has an empty scope", index));
      }
      const std::optional<Scope> scope = ParseScope(name);
      if (!scope) {
        constexpr std::string_view kKnown = "known: v3:read, v3:write, v3:admin, v3:*, *";
        if (LooksLikeScope(name)) {
          return InvalidError(fmt::format("tokens: entry {} has an unknown scope '{}' ({})", index,
                                          name, kKnown));
        }
        return InvalidError(fmt::format(
            "tokens: entry {} has an unknown scope (not shown: it does not look like one{}; {})",
            index, name.find('=') != std::string_view::npos ? ", and entries are separated by ';'"
                                                             : "",
            kKnown));
      }
      best = std::max(best, *scope);
    }
    Entry e;
    e.digest = Sha256Hex(token);
    for (const Entry& earlier : set.entries_) {
      if (earlier.digest == e.digest) {
        return InvalidError(fmt::format("tokens: entry {} repeats the token of an earlier entry",
                                        index));
      }
    }
    e.principal.id = Sha256Hex("xg2g principal\n" + e.digest).substr(0, kPrincipalIdLength);
    e.principal.scope = best;
    if (token.size() < kShortToken && warnings != nullptr) {
      warnings->push_back(fmt::format(
          "tokens: the token of entry {} is shorter than {} characters", index, kShortToken));
    }
    set.entries_.push_back(std::move(e));
  }
  return set;
}

std::optional<Principal> TokenSet::Authenticate(std::string_view token) const {
  if (entries_.empty()) return std::nullopt;
  const std::string digest = Sha256Hex(token);
  const Entry* match = nullptr;
  for (const Entry& entry : entries_) {
    // Every digest is compared; none is skipped after a match.
    const bool equal = ConstantTimeEquals(digest, entry.digest);
    match = equal ? &entry : match;
  }
  if (match == nullptr) return std::nullopt;
  return match->principal;
}

std::string_view CredentialSourceName(CredentialSource source) {
  switch (source) {
    case CredentialSource::kNone: return "none";
    case CredentialSource::kBearer: return "bearer";
    case CredentialSource::kCookie: return "cookie";
    case CredentialSource::kQuery: return "query";
  }
  return "none";
}

std::optional<std::string_view> FindCookie(std::string_view header, std::string_view name,
                                           int* count) {
  std::optional<std::string_view> found;
  int seen = 0;
  size_t pos = 0;
  while (pos <= header.size()) {
    const size_t semicolon = std::min(header.find(';', pos), header.size());
    const std::string_view pair = Trim(header.substr(pos, semicolon - pos));
    pos = semicolon + 1;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (Trim(pair.substr(0, eq)) != name) continue;
    std::string_view value = Trim(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (!found) found = value;
    ++seen;
  }
  if (count != nullptr) *count = seen;
  return found;
}

Credentials ExtractCredentials(std::span<const std::string_view> authorization,
                               std::span<const std::string_view> cookies,
                               std::span<const std::string_view> query_tokens,
                               bool allow_query_token) {
  Credentials c;
  auto malformed = [&c](CredentialSource source, std::string_view problem) {
    c.source = source;
    c.malformed = true;
    c.problem = problem;
    c.token = {};
    return c;
  };
  if (!authorization.empty()) {
    if (authorization.size() > 1) {
      return malformed(CredentialSource::kBearer, "more than one Authorization header");
    }
    const std::string_view value = Trim(authorization[0]);
    if (value.empty()) return malformed(CredentialSource::kBearer, "the Authorization header is empty");
    const size_t space = value.find_first_of(" \t");
    const std::string_view scheme = value.substr(0, space);
    if (!EqualsIgnoreCase(scheme, "Bearer")) {
      return malformed(CredentialSource::kBearer, "the Authorization header is not a Bearer token");
    }
    const std::string_view token =
        space == std::string_view::npos ? std::string_view() : Trim(value.substr(space));
    if (token.empty()) return malformed(CredentialSource::kBearer, "the bearer token is empty");
    if (token.find_first_of(" \t") != std::string_view::npos) {
      return malformed(CredentialSource::kBearer, "the bearer token contains white space");
    }
    c.source = CredentialSource::kBearer;
    c.token = token;
    return c;
  }
  int cookie_count = 0;
  std::string_view cookie;
  for (std::string_view header : cookies) {
    int n = 0;
    auto value = FindCookie(header, kSessionCookie, &n);
    if (value && cookie_count == 0) cookie = *value;
    cookie_count += n;
  }
  if (cookie_count > 1) {
    return malformed(CredentialSource::kCookie, "the xg2g_session cookie appears more than once");
  }
  if (cookie_count == 1) {
    if (cookie.empty()) return malformed(CredentialSource::kCookie, "the xg2g_session cookie is empty");
    c.source = CredentialSource::kCookie;
    c.token = cookie;
    return c;
  }
  if (allow_query_token && !query_tokens.empty()) {
    if (query_tokens.size() > 1) {
      return malformed(CredentialSource::kQuery, "the token query parameter appears more than once");
    }
    if (query_tokens[0].empty()) {
      return malformed(CredentialSource::kQuery, "the token query parameter is empty");
    }
    c.source = CredentialSource::kQuery;
    c.token = query_tokens[0];
    return c;
  }
  return c;
}

}  // namespace xg2g

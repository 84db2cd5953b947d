// API tokens, their scopes, and where a request's credentials come from
// (DESIGN.md §6).
//
// Tokens are configured as "token=scope,scope;token2=scope" and kept only as
// SHA-256 digests; a presented token is digested and compared with every
// configured digest in constant time. A token is never stored, logged or put
// in an error message: what identifies a caller is its principal id, a short
// digest.
//
// TokenSet is immutable after Parse (share a const one freely across
// threads); the free functions are pure and thread-safe.
#ifndef XG2G_LIB_AUTH_AUTH_H_
#define XG2G_LIB_AUTH_AUTH_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace xg2g {

// Scopes are ordered: a holder of v3:admin may do what v3:write and v3:read
// allow, a holder of v3:write what v3:read allows. "v3:*" and "*" grant all
// of them.
enum class Scope : int { kNone = 0, kRead = 1, kWrite = 2, kAdmin = 3 };

// "v3:read", "v3:write", "v3:admin"; "v3:*" and "*" give kAdmin. nullopt for
// anything else.
std::optional<Scope> ParseScope(std::string_view text);
std::string_view ScopeName(Scope scope);  // "v3:read", ...; kNone gives ""

// Who a token belongs to: the principal id (16 hex characters, stable for a
// token across restarts and never reversible to it) and its highest scope.
struct Principal {
  std::string id;
  Scope scope = Scope::kNone;
};

// The principal id of a token.
std::string PrincipalIdOf(std::string_view token);

class TokenSet {
 public:
  TokenSet() = default;

  // Parses "token=scope,scope;token2=scope". White space around entries,
  // tokens and scopes is ignored; "" (or only white space) is the empty set.
  // A token is a non-empty string without '=', ';', ',' or white space.
  // InvalidError naming the entry by position (never quoting a token) for:
  // an entry without '=', an empty token, a token with a forbidden
  // character, no scopes, an unknown scope (quoted), a token listed twice.
  // Tokens under 16 characters are accepted; each adds a line to `warnings`
  // (which may be null).
  static absl::StatusOr<TokenSet> Parse(std::string_view spec,
                                        std::vector<std::string>* warnings = nullptr);

  // The principal a token belongs to, or nullopt. The presented token is
  // digested once and compared with every configured digest, whether or not
  // an earlier one matched: the time taken depends only on the number of
  // tokens configured.
  std::optional<Principal> Authenticate(std::string_view token) const;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    std::string digest;  // SHA-256 of the token, hex
    Principal principal;
  };
  std::vector<Entry> entries_;
};

// Where the credentials of a request were found.
enum class CredentialSource { kNone, kBearer, kCookie, kQuery };
std::string_view CredentialSourceName(CredentialSource source);  // "bearer", ...

struct Credentials {
  CredentialSource source = CredentialSource::kNone;
  std::string_view token;  // borrowed from the request
  // True when credentials were offered but cannot be used: an Authorization
  // header that is empty, not "Bearer <token>" or repeated; an empty or
  // repeated xg2g_session cookie; an empty or repeated query token. Such a
  // request is refused (401), never passed on to the next source.
  bool malformed = false;
  std::string_view problem;  // why, for the error message (static text)
};

// The name of the session cookie.
inline constexpr std::string_view kSessionCookie = "xg2g_session";

// Finds the credentials in order: Authorization: Bearer, then the
// xg2g_session cookie, then (only with `allow_query_token`) the query
// parameter `token`. `authorization` and `cookies` are every value of those
// headers, in order; `query_tokens` every (percent-decoded) value of the
// `token` query parameter.
Credentials ExtractCredentials(std::span<const std::string_view> authorization,
                               std::span<const std::string_view> cookies,
                               std::span<const std::string_view> query_tokens,
                               bool allow_query_token);

// The value of cookie `name` in a Cookie header value ("a=b; name=v"): the
// first one, with surrounding double quotes removed. nullopt when absent;
// `count` (may be null) receives how many times it appears.
std::optional<std::string_view> FindCookie(std::string_view header, std::string_view name,
                                           int* count = nullptr);

}  // namespace xg2g

#endif  // XG2G_LIB_AUTH_AUTH_H_

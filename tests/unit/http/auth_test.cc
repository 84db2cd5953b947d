// Token specs, scopes, authentication and where credentials come from.
#include "lib/auth/auth.h"

#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "lib/common/status.h"

namespace xg2g {
namespace {

std::string Message(const absl::Status& s) { return std::string(FromAbsl(s.message())); }

TEST_CASE("scopes: read < write < admin, and the wildcards grant admin") {
  struct Case {
    std::string_view text;
    std::optional<Scope> want;
  };
  const Case cases[] = {
      {"v3:read", Scope::kRead},   {"v3:write", Scope::kWrite}, {"v3:admin", Scope::kAdmin},
      {"v3:*", Scope::kAdmin},     {"*", Scope::kAdmin},        {"V3:READ", std::nullopt},
      {"v3:", std::nullopt},       {"v2:read", std::nullopt},   {"", std::nullopt},
      {"admin", std::nullopt},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    CHECK(ParseScope(c.text) == c.want);
  }
  CHECK(Scope::kRead < Scope::kWrite);
  CHECK(Scope::kWrite < Scope::kAdmin);
}

TEST_CASE("token specs parse; bad entries are named by position and never quoted") {
  struct Case {
    std::string_view spec;
    std::string_view error;  // "" when valid
    size_t count = 0;
  };
  const Case cases[] = {
      {"", "", 0},
      {"   ", "", 0},
      {"alpha-token-0123456789=v3:read", "", 1},
      {" a-token-0123456789 = v3:read , v3:write ; b-token-0123456789=*", "", 2},
      {"a-token-0123456789=v3:read;", "", 1},
      {"a-token-0123456789", "tokens: entry 1 has no '=' (expected token=scope,scope)"},
      {"a-token-0123456789=v3:read;=v3:read", "tokens: entry 2 has an empty token"},
      {"a-token-0123456789=", "tokens: entry 1 has no scopes"},
      {"a-token-0123456789=v3:read,,v3:write", "tokens: entry 1 has an empty scope"},
      {"secret-token-0123456789=v3:root",
       "tokens: entry 1 has an unknown scope 'v3:root' (known: v3:read, v3:write, v3:admin, "
       "v3:*, *)"},
      {"secret-token-0123456789=v3:read=v3:write",
       "tokens: entry 1 has an unknown scope (not shown: it does not look like one, and entries "
       "are separated by ';'; known:"},
      {"a-token-0123456789=v3:read,b-secret-token-0123456789=v3:write",
       "entries are separated by ';'"},
      {"v3:read=secret-token-0123456789", "unknown scope (not shown"},
      {"two words-0123456789=v3:read",
       "tokens: the token of entry 1 contains white space, ',' or a control character"},
      {"a-token-0123456789=v3:read;a-token-0123456789=v3:admin",
       "tokens: entry 2 repeats the token of an earlier entry"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.spec);
    auto set = TokenSet::Parse(c.spec);
    if (c.error.empty()) {
      REQUIRE(set.ok());
      CHECK(set->size() == c.count);
    } else {
      REQUIRE_FALSE(set.ok());
      CHECK(CodeOf(set.status()) == ErrorCode::kInvalid);
      const std::string message = Message(set.status());
      CHECK(message.find(c.error) != std::string::npos);
      CHECK(message.find("secret-token") == std::string::npos);
      CHECK(message.find("a-token") == std::string::npos);
      CHECK(message.find("b-secret") == std::string::npos);
    }
  }
}

TEST_CASE("short tokens are accepted with a warning that does not quote them") {
  std::vector<std::string> warnings;
  auto set = TokenSet::Parse("long-enough-token-0123=v3:read;tiny=v3:admin", &warnings);
  REQUIRE(set.ok());
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] == "tokens: the token of entry 2 is shorter than 16 characters");
}

TEST_CASE("authentication finds the principal with the highest scope granted") {
  auto set = TokenSet::Parse(
      "reader-0123456789abcdef=v3:read;writer-0123456789abcdef=v3:read,v3:write;"
      "boss-0123456789abcdef=v3:*");
  REQUIRE(set.ok());
  auto reader = set->Authenticate("reader-0123456789abcdef");
  REQUIRE(reader.has_value());
  CHECK(reader->scope == Scope::kRead);
  CHECK(reader->id.size() == 16);
  CHECK(reader->id == PrincipalIdOf("reader-0123456789abcdef"));
  CHECK(reader->id.find("reader") == std::string::npos);
  auto writer = set->Authenticate("writer-0123456789abcdef");
  REQUIRE(writer.has_value());
  CHECK(writer->scope == Scope::kWrite);
  CHECK(writer->id != reader->id);
  auto boss = set->Authenticate("boss-0123456789abcdef");
  REQUIRE(boss.has_value());
  CHECK(boss->scope == Scope::kAdmin);

  CHECK_FALSE(set->Authenticate("reader-0123456789abcde").has_value());  // a prefix
  CHECK_FALSE(set->Authenticate("reader-0123456789abcdefX").has_value());
  CHECK_FALSE(set->Authenticate("").has_value());
  CHECK_FALSE(TokenSet().Authenticate("anything").has_value());
}

TEST_CASE("the principal id is stable and depends only on the token") {
  CHECK(PrincipalIdOf("token-a") == PrincipalIdOf("token-a"));
  CHECK(PrincipalIdOf("token-a") != PrincipalIdOf("token-b"));
  CHECK(PrincipalIdOf("token-a").size() == 16);
}

TEST_CASE("cookies: the named one, quotes removed, repeats counted") {
  int count = 0;
  CHECK(FindCookie("a=1; xg2g_session=tok; b=2", "xg2g_session", &count) == "tok");
  CHECK(count == 1);
  CHECK(FindCookie("xg2g_session=\"tok\"", "xg2g_session") == "tok");
  CHECK(FindCookie("xg2g_sessionx=tok; x_xg2g_session=t", "xg2g_session", &count) == std::nullopt);
  CHECK(count == 0);
  CHECK(FindCookie("xg2g_session=a; xg2g_session=b", "xg2g_session", &count) == "a");
  CHECK(count == 2);
  CHECK(FindCookie("xg2g_session=", "xg2g_session", &count) == "");
  CHECK(FindCookie("novalue; xg2g_session=v", "xg2g_session") == "v");
  CHECK(FindCookie("", "xg2g_session") == std::nullopt);
}

TEST_CASE("credentials come from bearer, then cookie, then (if allowed) the query") {
  using V = std::vector<std::string_view>;
  struct Case {
    std::string_view name;
    V authorization;
    V cookies;
    V query;
    bool allow_query;
    CredentialSource source;
    bool malformed;
    std::string_view token;
  };
  const std::vector<Case> cases = {
      {"nothing", {}, {}, {}, false, CredentialSource::kNone, false, ""},
      {"bearer", {"Bearer abc"}, {}, {}, false, CredentialSource::kBearer, false, "abc"},
      {"bearer, any case, extra spaces", {"  bearer   abc  "}, {}, {}, false,
       CredentialSource::kBearer, false, "abc"},
      {"bearer wins over cookie", {"Bearer abc"}, {"xg2g_session=def"}, {}, false,
       CredentialSource::kBearer, false, "abc"},
      {"an empty Authorization is a 401, not a fallthrough", {""}, {"xg2g_session=def"}, {},
       false, CredentialSource::kBearer, true, ""},
      {"Bearer without a token", {"Bearer"}, {"xg2g_session=def"}, {}, false,
       CredentialSource::kBearer, true, ""},
      {"Bearer with only spaces", {"Bearer    "}, {}, {}, false, CredentialSource::kBearer, true,
       ""},
      {"another scheme", {"Basic dXNlcjpwYXNz"}, {"xg2g_session=def"}, {}, false,
       CredentialSource::kBearer, true, ""},
      {"a token with a space", {"Bearer abc def"}, {}, {}, false, CredentialSource::kBearer, true,
       ""},
      {"two Authorization headers", {"Bearer a", "Bearer b"}, {}, {}, false,
       CredentialSource::kBearer, true, ""},
      {"cookie", {}, {"theme=dark; xg2g_session=def"}, {}, false, CredentialSource::kCookie,
       false, "def"},
      {"cookie in the second header", {}, {"theme=dark", "xg2g_session=def"}, {}, false,
       CredentialSource::kCookie, false, "def"},
      {"cookie wins over query", {}, {"xg2g_session=def"}, {"ghi"}, true,
       CredentialSource::kCookie, false, "def"},
      {"an empty cookie", {}, {"xg2g_session="}, {"ghi"}, true, CredentialSource::kCookie, true,
       ""},
      {"a repeated cookie", {}, {"xg2g_session=a", "xg2g_session=b"}, {}, false,
       CredentialSource::kCookie, true, ""},
      {"query only when allowed", {}, {}, {"ghi"}, false, CredentialSource::kNone, false, ""},
      {"query when allowed", {}, {}, {"ghi"}, true, CredentialSource::kQuery, false, "ghi"},
      {"an empty query token", {}, {}, {""}, true, CredentialSource::kQuery, true, ""},
      {"two query tokens", {}, {}, {"a", "b"}, true, CredentialSource::kQuery, true, ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const Credentials got = ExtractCredentials(c.authorization, c.cookies, c.query, c.allow_query);
    CHECK(got.source == c.source);
    CHECK(got.malformed == c.malformed);
    CHECK(got.token == c.token);
    if (got.malformed) CHECK_FALSE(got.problem.empty());
  }
}

}  // namespace
}  // namespace xg2g

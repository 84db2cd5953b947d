// The request target of an HTTP request ("/api/v3/sessions?offset=10"):
// path and query split, percent-decoding, query parameters.
//
// Pure functions, thread-safe.
#ifndef XG2G_LIB_HTTP_TARGET_H_
#define XG2G_LIB_HTTP_TARGET_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xg2g {

struct Target {
  std::string_view path;   // up to '?' or '#', not decoded
  std::string_view query;  // after '?', up to '#'; empty when absent
};

Target SplitTarget(std::string_view target);

// Decodes %XX escapes (and '+' as a space when `plus_is_space`). nullopt for
// a malformed escape or an encoded NUL.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space);

// "a=1&b=&c" -> {a,1},{b,""},{c,""}, names and values decoded (with '+' as
// a space). Empty pieces ("a=1&&b=2") are skipped. nullopt when a piece
// does not decode.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query);

}  // namespace xg2g

#endif  // XG2G_LIB_HTTP_TARGET_H_

// The one JSON string writer of the core: every JSON document the library
// writes (session records, audit lines, certificate reports) quotes its
// strings here, so that escaping and the handling of bytes that are not UTF-8
// are the same everywhere.
//
// The output is always valid JSON whatever bytes come in: a well-formed UTF-8
// sequence is copied, anything else (stray continuation byte, overlong form,
// surrogate, beyond U+10FFFF, cut short) becomes U+FFFD, one per offending
// byte. Thread-compatible: plain functions without shared state.
#ifndef XG2G_LIB_COMMON_JSON_WRITER_H_
#define XG2G_LIB_COMMON_JSON_WRITER_H_

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace xg2g {

// Quote and backslash are escaped, every control character is written as
// \u00XX, everything else (DEL and U+FFFD included) as it is.
// Appends `s` as a JSON string literal, quotes included.
void AppendJsonString(std::string& out, std::string_view s);
void AppendJsonString(fmt::memory_buffer& out, std::string_view s);

// `s` as a JSON string literal, quotes included.
[[nodiscard]] std::string JsonQuote(std::string_view s);

}  // namespace xg2g

#endif  // XG2G_LIB_COMMON_JSON_WRITER_H_

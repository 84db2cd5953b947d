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

enum class JsonStringStyle {
  // Quote and backslash escaped, every control character as \u00XX, DEL and
  // U+FFFD written as they are. Stored records use it (their golden files
  // depend on it byte for byte), and so does anything without a reason to
  // differ.
  kCompact,
  // For documents people read: \n, \r and \t as two-character escapes, DEL
  // as \u007f and U+FFFD as the escape \ufffd, so a replaced byte stands out.
  kReadable,
};

// Appends `s` as a JSON string literal, quotes included.
void AppendJsonString(std::string& out, std::string_view s,
                      JsonStringStyle style = JsonStringStyle::kCompact);
void AppendJsonString(fmt::memory_buffer& out, std::string_view s,
                      JsonStringStyle style = JsonStringStyle::kCompact);

// `s` as a JSON string literal, quotes included.
[[nodiscard]] std::string JsonQuote(std::string_view s,
                                    JsonStringStyle style = JsonStringStyle::kCompact);

}  // namespace xg2g

#endif  // XG2G_LIB_COMMON_JSON_WRITER_H_

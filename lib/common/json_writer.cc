#include "lib/common/json_writer.h"

#include <cstddef>
#include <iterator>

namespace xg2g {
namespace {

// Length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 when
// the bytes there are not one (stray continuation byte, overlong form,
// surrogate, beyond U+10FFFF, or cut short).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  }
  const auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b0 == 0xE0 && b1 < 0xA0) return 0;   // overlong
  if (b0 == 0xED && b1 >= 0xA0) return 0;  // UTF-16 surrogate
  if (b0 == 0xF0 && b1 < 0x90) return 0;   // overlong
  if (b0 == 0xF4 && b1 >= 0x90) return 0;  // beyond U+10FFFF
  return len;
}

template <typename Out>
void Append(Out& out, std::string_view text) {
  out.append(text.data(), text.data() + text.size());
}

// One implementation for both output types: each has push_back and
// append(first, last), and fmt can format into either.
template <typename Out>
void AppendJsonStringTo(Out& out, std::string_view s) {
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (const size_t n = Utf8SequenceLength(s, i); n != 0) {
      Append(out, s.substr(i, n));
      i += n;
    } else {
      Append(out, "\xEF\xBF\xBD");  // U+FFFD
      ++i;
    }
  }
  out.push_back('"');
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  AppendJsonStringTo(out, s);
}

void AppendJsonString(fmt::memory_buffer& out, std::string_view s) {
  AppendJsonStringTo(out, s);
}

std::string JsonQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  AppendJsonString(out, s);
  return out;
}

}  // namespace xg2g

// The shared JSON string writer: both styles, both output types, and the
// promise that the output is valid JSON whatever bytes come in.
#include "lib/common/json_writer.h"

#include <random>
#include <string>
#include <string_view>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <simdjson.h>

namespace xg2g {
namespace {

// The string a JSON string literal stands for; fails the test when `literal`
// is not one.
std::string Unquote(const std::string& literal) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE_MESSAGE(parser.parse(literal.data(), literal.size()).get(doc) == simdjson::SUCCESS,
                  literal);
  std::string_view value;
  REQUIRE_MESSAGE(doc.get_string().get(value) == simdjson::SUCCESS, literal);
  return std::string(value);
}

}  // namespace

TEST_SUITE("common") {

TEST_CASE("quote, backslash and every control character are escaped, backslash and every control character as \\u00XX") {
  const std::string in = std::string("a\"b\\c\n\r\t\x01\x1f") + '\0' + "\x7f" + "z";
  CHECK(JsonQuote(in) == "\"a\\\"b\\\\c\\u000a\\u000d\\u0009\\u0001\\u001f\\u0000\x7fz\"");
}

TEST_CASE("well-formed UTF-8 is copied as it is") {
  const std::string in = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xef\xbf\xbd";
  CHECK(JsonQuote(in) == "\"" + in + "\"");
}

TEST_CASE("each byte that is not part of well-formed UTF-8 becomes one U+FFFD") {
  // stray continuation, overlong 2- and 3-byte forms, surrogate, beyond
  // U+10FFFF, invalid lead bytes, and a sequence cut short by the end
  const std::string in = "\x80|\xc0\xaf|\xe0\x80\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xf8\xff|\xe2\x82";
  CHECK(JsonQuote(in) ==
        "\"\uFFFD|\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD\uFFFD|"
        "\uFFFD\uFFFD|\uFFFD\uFFFD\"");
}

TEST_CASE("the std::string and memory buffer writers append the same bytes") {
  const std::string in = std::string("q\"\\\n\x01\xc3\xa9\xff") + '\0';
  std::string s = "prefix:";
  AppendJsonString(s, in);
  fmt::memory_buffer buffer;
  buffer.append(std::string_view("prefix:"));
  AppendJsonString(buffer, in);
  CHECK(s == fmt::to_string(buffer));
  CHECK(s == "prefix:" + JsonQuote(in));
}

TEST_CASE("whatever bytes come in, the output is a valid JSON string that reads back") {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> length(0, 40);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 5000; ++round) {
    std::string in(static_cast<size_t>(length(random)), '\0');
    for (char& c : in) c = static_cast<char>(byte(random));
    const std::string quoted = JsonQuote(in);
    for (char c : quoted) REQUIRE(static_cast<unsigned char>(c) >= 0x20);
    const std::string back = Unquote(quoted);
    // Valid UTF-8 reads back exactly; anything else reads back with the
    // replacement characters, which are written as they are.
    if (simdjson::validate_utf8(in.data(), in.size())) CHECK(back == in);
    REQUIRE(JsonQuote(back) == quoted);
  }
}

}  // TEST_SUITE("common")

}  // namespace xg2g

// Addresses, CIDR blocks and lists: what parses, what matches, and that a bad
// entry is named.
#include "lib/ratelimit/ip.h"

#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "lib/common/status.h"

namespace xg2g {
namespace {

std::string Message(const absl::Status& s) { return std::string(FromAbsl(s.message())); }

TEST_CASE("address literals parse in their standard forms only") {
  struct Case {
    std::string_view text;
    bool ok;
    bool v4;
    std::string_view canonical;
  };
  const Case cases[] = {
      {"192.0.2.1", true, true, "192.0.2.1"},
      {"0.0.0.0", true, true, "0.0.0.0"},
      {"255.255.255.255", true, true, "255.255.255.255"},
      {"2001:db8::1", true, false, "2001:db8::1"},
      {"2001:DB8:0:0:0:0:0:1", true, false, "2001:db8::1"},
      {"::1", true, false, "::1"},
      {"::", true, false, "::"},
      {"::ffff:192.0.2.1", true, true, "192.0.2.1"},  // mapped: the IPv4 client
      {"256.0.0.1", false, false, ""},
      {"192.0.2", false, false, ""},
      {"192.0.2.1.5", false, false, ""},
      {"010.0.0.1", false, false, ""},  // leading zero: octal or decimal?
      {"192.0.2.1 ", false, false, ""},
      {"", false, false, ""},
      {"fe80::1%eth0", false, false, ""},  // zone ids are not client addresses
      {"2001:db8:::1", false, false, ""},
      {"localhost", false, false, ""},
      {"1.2.3.4/32", false, false, ""},
      {std::string_view("1.2.3.4\0", 8), false, false, ""},
      {"1111:2222:3333:4444:5555:6666:7777:8888:9999", false, false, ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto ip = ParseIp(c.text);
    CHECK(ip.has_value() == c.ok);
    if (ip && c.ok) {
      CHECK(ip->v4 == c.v4);
      CHECK(FormatIp(*ip) == c.canonical);
    }
  }
}

TEST_CASE("a peer or forwarded entry may carry a port") {
  struct Case {
    std::string_view text;
    std::string_view want;  // "" when refused
  };
  const Case cases[] = {
      {"192.0.2.1", "192.0.2.1"},
      {"192.0.2.1:8080", "192.0.2.1"},
      {"[2001:db8::1]:443", "2001:db8::1"},
      {"[2001:db8::1]", "2001:db8::1"},
      {"2001:db8::1", "2001:db8::1"},
      {"192.0.2.1:", ""},
      {"192.0.2.1:65536", ""},
      {"192.0.2.1:http", ""},
      {"[192.0.2.1]:80", ""},
      {"[2001:db8::1]80", ""},
      {"[2001:db8::1", ""},
      {"unknown", ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto ip = ParseIpWithOptionalPort(c.text);
    if (c.want.empty()) {
      CHECK_FALSE(ip.has_value());
    } else {
      REQUIRE(ip.has_value());
      CHECK(FormatIp(*ip) == c.want);
    }
  }
}

TEST_CASE("CIDR blocks parse, single addresses match exactly, bad ones are named") {
  struct Case {
    std::string_view text;
    std::string_view error;  // substring of the message; "" when valid
  };
  const Case cases[] = {
      {"10.0.0.0/8", ""},
      {"192.0.2.7", ""},
      {"0.0.0.0/0", ""},
      {"2001:db8::/32", ""},
      {"::/0", ""},
      {"2001:db8::1", ""},
      {"10.0.0.1/8", "'10.0.0.1/8' has host bits set below the prefix (did you mean 10.0.0.0/8?)"},
      {"2001:db8::1/32", "did you mean 2001:db8::/32?"},
      {"10.0.0.0/33", "'10.0.0.0/33': the prefix length must be a number from 0 to 32"},
      {"2001:db8::/129", "from 0 to 128"},
      {"10.0.0.0/", "prefix length"},
      {"10.0.0.0/08", "prefix length"},
      {"10.0.0.0/-1", "prefix length"},
      {"10.0.0.0/8/8", "prefix length"},
      {"10.0.0/8", "'10.0.0/8' is not an IP address or CIDR block"},
      {"example.org", "is not an IP address"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto cidr = ParseCidr(c.text);
    if (c.error.empty()) {
      CHECK(cidr.ok());
    } else {
      REQUIRE_FALSE(cidr.ok());
      CHECK(CodeOf(cidr.status()) == ErrorCode::kInvalid);
      CHECK(Message(cidr.status()).find(c.error) != std::string::npos);
    }
  }
}

TEST_CASE("blocks match their own family and prefix only") {
  struct Case {
    std::string_view block;
    std::string_view ip;
    bool match;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.255.1.2", true},
      {"10.0.0.0/8", "11.0.0.1", false},
      {"192.0.2.0/25", "192.0.2.127", true},
      {"192.0.2.0/25", "192.0.2.128", false},
      {"192.0.2.7", "192.0.2.7", true},
      {"192.0.2.7", "192.0.2.8", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "2001:db8::1", false},        // IPv4 blocks hold IPv4 only
      {"::/0", "192.0.2.1", false},               // and IPv6 blocks IPv6 only
      {"::/0", "2001:db8::1", true},
      {"2001:db8::/32", "2001:db8:ffff::1", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"2001:db8::1", "2001:db8::1", true},       // a single IPv6 address: exact
      {"2001:db8::1", "2001:db8::2", false},
      {"2001:db8::1", "2001:db8::1:0", false},
      {"192.0.2.7", "::ffff:192.0.2.7", true},    // the mapped spelling is the same client
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.block);
    CAPTURE(c.ip);
    auto cidr = ParseCidr(c.block);
    auto ip = ParseIp(c.ip);
    REQUIRE(cidr.ok());
    REQUIRE(ip.has_value());
    CHECK(cidr->Contains(*ip) == c.match);
  }
}

TEST_CASE("a list names itself and its first bad entry") {
  auto ok = IpList::Parse(" 10.0.0.0/8 , 192.0.2.7,2001:db8::/32 ", "trusted proxies");
  REQUIRE(ok.ok());
  CHECK(ok->size() == 3);
  CHECK(ok->Contains(*ParseIp("10.1.2.3")));
  CHECK(ok->Contains(*ParseIp("2001:db8::5")));
  CHECK_FALSE(ok->Contains(*ParseIp("192.0.2.8")));

  auto empty = IpList::Parse("  ", "allow-list");
  REQUIRE(empty.ok());
  CHECK(empty->empty());

  auto bad = IpList::Parse("10.0.0.0/8, 300.1.1.1, 192.0.2.7", "rate-limit allow-list");
  REQUIRE_FALSE(bad.ok());
  CHECK(Message(bad.status()) ==
        "rate-limit allow-list: '300.1.1.1' is not an IP address or CIDR block");

  auto hole = IpList::Parse("10.0.0.0/8,,192.0.2.7", "trusted proxies");
  REQUIRE_FALSE(hole.ok());
  CHECK(Message(hole.status()) == "trusted proxies: empty entry in the list");
}

}  // namespace
}  // namespace xg2g

// The client IP: the peer, or behind trusted proxies the right-most
// untrusted X-Forwarded-For entry.
#include "lib/ratelimit/client_ip.h"

#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

namespace xg2g {
namespace {

TEST_CASE("the client is the right-most untrusted hop behind trusted proxies") {
  auto trusted = IpList::Parse("10.0.0.0/8, 2001:db8:ffff::/48", "trusted proxies");
  REQUIRE(trusted.ok());
  struct Case {
    std::string_view name;
    std::string_view peer;
    std::vector<std::string_view> xff;
    std::string_view want;  // "" for no answer
  };
  const std::vector<Case> cases = {
      {"no proxy: the peer", "203.0.113.5", {}, "203.0.113.5"},
      {"an untrusted peer's header is ignored", "203.0.113.5", {"198.51.100.1"}, "203.0.113.5"},
      {"a trusted peer without the header: the peer", "10.0.0.1", {}, "10.0.0.1"},
      {"one proxy", "10.0.0.1", {"198.51.100.1"}, "198.51.100.1"},
      {"forged entries left of the real client are ignored", "10.0.0.1",
       {"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
      {"a chain of trusted proxies is skipped", "10.0.0.1", {"198.51.100.1, 10.0.0.2, 10.0.0.3"},
       "198.51.100.1"},
      {"several headers are one list, last header last", "10.0.0.1",
       {"1.1.1.1, 198.51.100.1", "10.0.0.9"}, "198.51.100.1"},
      {"all trusted: the left-most", "10.0.0.1", {"10.0.0.7, 10.0.0.8"}, "10.0.0.7"},
      {"garbage ends the walk at the last trusted hop", "10.0.0.1", {"198.51.100.1, unknown"},
       "10.0.0.1"},
      {"garbage left of the client does not matter", "10.0.0.1", {"unknown, 198.51.100.1"},
       "198.51.100.1"},
      {"an empty entry ends the walk", "10.0.0.1", {"198.51.100.1, , 10.0.0.2"}, "10.0.0.2"},
      {"an empty header: the peer", "10.0.0.1", {""}, "10.0.0.1"},
      {"entries with ports", "10.0.0.1", {"[2001:db8::7]:5000, 10.0.0.2:80"}, "2001:db8::7"},
      {"IPv6 proxies", "2001:db8:ffff::1", {"2001:db8::42"}, "2001:db8::42"},
      {"a mapped IPv4 entry is the IPv4 client", "10.0.0.1", {"::ffff:198.51.100.1"},
       "198.51.100.1"},
      {"the peer with a port", "[2001:db8::9]:4711", {"198.51.100.1"}, "2001:db8::9"},
      {"an unparseable peer: no answer", "unix:/run/xg2g.sock", {"198.51.100.1"}, ""},
      {"an empty peer: no answer", "", {}, ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto ip = ResolveClientIp(c.peer, c.xff, *trusted);
    if (c.want.empty()) {
      CHECK_FALSE(ip.has_value());
    } else {
      REQUIRE(ip.has_value());
      CHECK(FormatIp(*ip) == c.want);
    }
  }
}

TEST_CASE("without trusted proxies the header is never believed") {
  const IpList none;
  const std::vector<std::string_view> xff = {"198.51.100.1"};
  auto ip = ResolveClientIp("10.0.0.1", xff, none);
  REQUIRE(ip.has_value());
  CHECK(FormatIp(*ip) == "10.0.0.1");
}

}  // namespace
}  // namespace xg2g

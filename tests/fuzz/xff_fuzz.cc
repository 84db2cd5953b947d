// Fuzz target for the client IP resolver (lib/ratelimit/client_ip.cc).
//
// Input: lines. The first is the trusted-proxy list, the second the peer,
// every further line one X-Forwarded-For header value.
// Properties: no answer only when the peer does not parse; an untrusted peer
// is its own answer; a trusted peer's answer is the peer or an address
// written in one of the header values.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lib/ratelimit/client_ip.h"

namespace {

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "xff_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  if (lines.size() < 2) return 0;
  auto trusted = xg2g::IpList::Parse(lines[0], "trusted proxies");
  if (!trusted.ok()) return 0;
  const std::string_view peer = lines[1];
  const std::vector<std::string_view> xff(lines.begin() + 2, lines.end());

  const auto client = xg2g::ResolveClientIp(peer, xff, *trusted);
  const auto peer_ip = xg2g::ParseIpWithOptionalPort(Trim(peer));
  if (client.has_value() != peer_ip.has_value()) Fail("an answer without a peer", peer);
  if (!client) return 0;
  if (!trusted->Contains(*peer_ip)) {
    if (!(*client == *peer_ip)) Fail("an untrusted peer's header was believed", peer);
    return 0;
  }
  if (*client == *peer_ip) return 0;
  for (std::string_view value : xff) {
    size_t pos = 0;
    while (pos <= value.size()) {
      size_t comma = value.find(',', pos);
      if (comma == std::string_view::npos) comma = value.size();
      auto hop = xg2g::ParseIpWithOptionalPort(Trim(value.substr(pos, comma - pos)));
      if (hop && *hop == *client) return 0;
      pos = comma + 1;
    }
  }
  Fail("an answer that is neither the peer nor a header entry", peer);
}

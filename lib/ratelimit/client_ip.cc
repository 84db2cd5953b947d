#include "lib/ratelimit/client_ip.h"

namespace xg2g {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<IpAddress> ResolveClientIp(std::string_view peer,
                                         std::span<const std::string_view> forwarded_for,
                                         const IpList& trusted) {
  std::optional<IpAddress> client = ParseIpWithOptionalPort(Trim(peer));
  if (!client || trusted.empty() || !trusted.Contains(*client)) return client;
  // Right to left over every entry of every header, last header first; no
  // list is split up front, so a long forged prefix costs nothing.
  for (size_t h = forwarded_for.size(); h-- > 0;) {
    std::string_view value = forwarded_for[h];
    while (true) {
      const size_t comma = value.rfind(',');
      const std::string_view entry =
          Trim(comma == std::string_view::npos ? value : value.substr(comma + 1));
      auto hop = ParseIpWithOptionalPort(entry);
      if (!hop) return client;
      client = hop;
      if (!trusted.Contains(*hop)) return client;
      if (comma == std::string_view::npos) break;
      value = value.substr(0, comma);
    }
  }
  return client;
}

}  // namespace xg2g

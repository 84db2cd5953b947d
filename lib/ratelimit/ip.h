// IP addresses, CIDR blocks and lists of them (rate-limit allow-lists and
// trusted proxies, DESIGN.md §7).
//
// Value types, thread-compatible; an IpList is immutable once parsed, so a
// shared const one may be read from any number of threads.
#ifndef XG2G_LIB_RATELIMIT_IP_H_
#define XG2G_LIB_RATELIMIT_IP_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace xg2g {

// An IPv4 or IPv6 address. IPv4 addresses are kept IPv4-mapped
// (::ffff:a.b.c.d) in `bytes`, and an IPv4-mapped IPv6 literal is read as the
// IPv4 address it maps, so both spellings of one client are one address.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool v4 = false;

  bool operator==(const IpAddress&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const IpAddress& ip) {
    return H::combine(std::move(h), ip.bytes, ip.v4);
  }
};

// Parses an address literal: dotted IPv4 (four decimal parts, no leading
// zeros) or IPv6 (RFC 4291 text forms, no zone id). nullopt otherwise.
std::optional<IpAddress> ParseIp(std::string_view text);

// Like ParseIp, and also accepts the forms a peer or X-Forwarded-For entry
// may carry a port in: "192.0.2.1:8080", "[2001:db8::1]:8080",
// "[2001:db8::1]".
std::optional<IpAddress> ParseIpWithOptionalPort(std::string_view text);

// Canonical text: dotted IPv4, RFC 5952 IPv6.
std::string FormatIp(const IpAddress& ip);

// A block of addresses. A single address is a block of one (/32, /128).
// IPv4 blocks only contain IPv4 addresses and IPv6 blocks only IPv6 ones.
struct Cidr {
  IpAddress base;      // host bits are zero
  int prefix_len = 0;  // 0..32 for IPv4, 0..128 for IPv6

  bool Contains(const IpAddress& ip) const;
  bool operator==(const Cidr&) const = default;
};

// "192.0.2.0/24", "2001:db8::/32", or a single address ("192.0.2.7",
// "2001:db8::1", which match exactly). InvalidError naming the entry for
// anything else: a malformed address, a prefix length out of range or with
// leading zeros, or host bits set below the prefix ("192.0.2.1/24": the
// message names the block that was probably meant).
absl::StatusOr<Cidr> ParseCidr(std::string_view text);

// A list of blocks, from a comma-separated spec ("10.0.0.0/8, 192.0.2.7,
// 2001:db8::/32"). White space around entries is ignored; "" is an empty
// list. InvalidError naming the list (`what`, e.g. "trusted proxies") and the
// first bad entry (an empty entry included).
class IpList {
 public:
  IpList() = default;
  static absl::StatusOr<IpList> Parse(std::string_view spec, std::string_view what);

  bool Contains(const IpAddress& ip) const;
  bool empty() const { return blocks_.empty(); }
  size_t size() const { return blocks_.size(); }
  const std::vector<Cidr>& blocks() const { return blocks_; }

 private:
  std::vector<Cidr> blocks_;
};

}  // namespace xg2g

#endif  // XG2G_LIB_RATELIMIT_IP_H_

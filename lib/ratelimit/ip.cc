#include "lib/ratelimit/ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g {
namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Entries are quoted in messages; keep a hostile one from flooding them.
std::string Quoted(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "'";
  for (char c : s.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

}  // namespace

std::optional<IpAddress> ParseIp(std::string_view text) {
  // INET6_ADDRSTRLEN is 46 with the NUL: anything longer is not an address.
  char buffer[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buffer) return std::nullopt;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) return std::nullopt;

  IpAddress ip;
  if (text.find(':') == std::string_view::npos) {
    uint8_t v4[4];
    if (inet_pton(AF_INET, buffer, v4) != 1) return std::nullopt;
    std::memcpy(ip.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
    std::memcpy(ip.bytes.data() + 12, v4, 4);
    ip.v4 = true;
    return ip;
  }
  if (inet_pton(AF_INET6, buffer, ip.bytes.data()) != 1) return std::nullopt;
  ip.v4 = std::memcmp(ip.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
  return ip;
}

std::optional<IpAddress> ParseIpWithOptionalPort(std::string_view text) {
  if (auto ip = ParseIp(text)) return ip;
  auto valid_port = [](std::string_view port) {
    if (port.empty() || port.size() > 5) return false;
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    return ec == std::errc() && ptr == port.data() + port.size() && value <= 65535;
  };
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !valid_port(rest.substr(1)))) {
      return std::nullopt;
    }
    const std::string_view inner = text.substr(1, close - 1);
    if (inner.find(':') == std::string_view::npos) return std::nullopt;  // "[1.2.3.4]"
    return ParseIp(inner);
  }
  // "a.b.c.d:port": exactly one colon (more would be an IPv6 literal).
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  if (!valid_port(text.substr(colon + 1))) return std::nullopt;
  auto ip = ParseIp(text.substr(0, colon));
  if (!ip || !ip->v4) return std::nullopt;
  return ip;
}

std::string FormatIp(const IpAddress& ip) {
  char buffer[INET6_ADDRSTRLEN] = "";
  if (ip.v4) {
    inet_ntop(AF_INET, ip.bytes.data() + 12, buffer, sizeof buffer);
  } else {
    inet_ntop(AF_INET6, ip.bytes.data(), buffer, sizeof buffer);
  }
  return buffer;
}

bool Cidr::Contains(const IpAddress& ip) const {
  if (ip.v4 != base.v4) return false;
  // Compared in the 128-bit space: an IPv4 prefix sits behind the 96 mapped bits.
  const int bits = base.v4 ? prefix_len + 96 : prefix_len;
  const int whole = bits / 8;
  if (std::memcmp(ip.bytes.data(), base.bytes.data(), static_cast<size_t>(whole)) != 0) {
    return false;
  }
  const int rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[static_cast<size_t>(whole)] & mask) == (base.bytes[static_cast<size_t>(whole)] & mask);
}

absl::StatusOr<Cidr> ParseCidr(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  auto ip = ParseIp(address);
  if (!ip) {
    return InvalidError(fmt::format("{} is not an IP address or CIDR block", Quoted(text)));
  }
  Cidr cidr;
  cidr.base = *ip;
  const int max_len = ip->v4 ? 32 : 128;
  if (slash == std::string_view::npos) {
    cidr.prefix_len = max_len;
    return cidr;
  }
  const std::string_view len_text = text.substr(slash + 1);
  int len = -1;
  auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (len_text.empty() || len_text.size() > 3 || ec != std::errc() ||
      ptr != len_text.data() + len_text.size() || len < 0 || len > max_len ||
      (len_text.size() > 1 && len_text.front() == '0')) {
    return InvalidError(fmt::format("{}: the prefix length must be a number from 0 to {}",
                                    Quoted(text), max_len));
  }
  cidr.prefix_len = len;
  // Host bits below the prefix are most likely a typo: refuse, and say which
  // block was probably meant.
  Cidr masked = cidr;
  const int bits = ip->v4 ? len + 96 : len;
  for (int i = bits; i < 128; ++i) {
    masked.base.bytes[static_cast<size_t>(i / 8)] &= static_cast<uint8_t>(~(0x80 >> (i % 8)));
  }
  if (!(masked.base == cidr.base)) {
    return InvalidError(fmt::format("{} has host bits set below the prefix (did you mean {}/{}?)",
                                    Quoted(text), FormatIp(masked.base), len));
  }
  return cidr;
}

absl::StatusOr<IpList> IpList::Parse(std::string_view spec, std::string_view what) {
  IpList list;
  if (Trim(spec).empty()) return list;
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string_view entry = Trim(spec.substr(pos, comma - pos));
    if (entry.empty()) {
      return InvalidError(fmt::format("{}: empty entry in the list", what));
    }
    auto cidr = ParseCidr(entry);
    if (!cidr.ok()) {
      return InvalidError(fmt::format("{}: {}", what, FromAbsl(cidr.status().message())));
    }
    list.blocks_.push_back(*cidr);
    pos = comma + 1;
  }
  return list;
}

bool IpList::Contains(const IpAddress& ip) const {
  for (const Cidr& block : blocks_) {
    if (block.Contains(ip)) return true;
  }
  return false;
}

}  // namespace xg2g

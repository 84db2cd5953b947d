// Fuzz target for the address and CIDR parsers (lib/ratelimit/ip.cc).
//
// Properties: an address that parses prints canonically and parses back to
// itself; a block that parses contains its base, prints as base/len and
// parses back to itself; a list either fails naming the list, or holds as
// many blocks as it has entries.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lib/common/status.h"
#include "lib/ratelimit/ip.h"

namespace {

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "cidr_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  if (auto ip = xg2g::ParseIp(input)) {
    const std::string text = xg2g::FormatIp(*ip);
    auto again = xg2g::ParseIp(text);
    if (!again || !(*again == *ip)) Fail("an address does not round-trip", text);
  }
  if (auto ip = xg2g::ParseIpWithOptionalPort(input)) {
    auto again = xg2g::ParseIp(xg2g::FormatIp(*ip));
    if (!again || !(*again == *ip)) Fail("an address with port does not round-trip", input);
  }

  auto cidr = xg2g::ParseCidr(input);
  if (cidr.ok()) {
    if (!cidr->Contains(cidr->base)) Fail("a block does not contain its base", input);
    const std::string text =
        xg2g::FormatIp(cidr->base) + "/" + std::to_string(cidr->prefix_len);
    auto again = xg2g::ParseCidr(text);
    if (!again.ok() || !(*again == *cidr)) Fail("a block does not round-trip", text);
    const int max = cidr->base.v4 ? 32 : 128;
    if (cidr->prefix_len < 0 || cidr->prefix_len > max) Fail("prefix out of range", text);
  } else if (xg2g::CodeOf(cidr.status()) != xg2g::ErrorCode::kInvalid) {
    Fail("a parse error that is not EINVAL", input);
  }

  auto list = xg2g::IpList::Parse(input, "fuzz list");
  if (!list.ok()) {
    const std::string_view message = xg2g::FromAbsl(list.status().message());
    if (message.substr(0, 11) != "fuzz list: ") Fail("an error that does not name the list", message);
  } else {
    size_t entries = 0;
    bool blank = true;
    for (char c : input) {
      entries += c == ',';
      blank &= c == ' ' || c == '\t';
    }
    if (list->size() != (blank ? 0 : entries + 1)) Fail("list size differs from entries", input);
  }
  return 0;
}

// Which client a request comes from: the peer address, or, when the peer is
// a trusted proxy, the right-most X-Forwarded-For entry that is not one
// (DESIGN.md §7). The answer keys the rate limiter and the allow-list, and is
// what audit events name.
//
// Pure functions, thread-safe.
#ifndef XG2G_LIB_RATELIMIT_CLIENT_IP_H_
#define XG2G_LIB_RATELIMIT_CLIENT_IP_H_

#include <optional>
#include <span>
#include <string_view>

#include "lib/ratelimit/ip.h"

namespace xg2g {

// `peer` is the transport's peer address (a literal, optionally with a
// port); `forwarded_for` are the X-Forwarded-For header values in the order
// they arrived (several headers count as one list, joined by commas).
//
// - peer not parseable: nullopt (the caller treats the client as unknown).
// - peer not in `trusted`: the peer. X-Forwarded-For is ignored: anyone can
//   write it.
// - peer trusted: the entries are walked from the right. Each trusted entry
//   is one more proxy hop; the first entry that is not trusted is the
//   client. When every entry is trusted the left-most one is the client; with
//   no entries, the peer. An entry that is not an address (empty, "unknown",
//   garbage) ends the walk: nothing left of it can be believed, and the last
//   address reached (a trusted hop) is the answer.
std::optional<IpAddress> ResolveClientIp(std::string_view peer,
                                         std::span<const std::string_view> forwarded_for,
                                         const IpList& trusted);

}  // namespace xg2g

#endif  // XG2G_LIB_RATELIMIT_CLIENT_IP_H_

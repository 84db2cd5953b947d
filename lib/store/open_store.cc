// OpenStore: picks the backend from the URI's scheme.
//
// Error messages name the scheme or the offending part, never the whole URI:
// a Redis URI may carry a password.
#include <cctype>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/store/lmdb_store.h"
#include "lib/store/memory_store.h"
#include "lib/store/redis_store.h"
#include "lib/store/store.h"

namespace xg2g {
namespace {

using OpenResult = absl::StatusOr<std::unique_ptr<Store>>;

// `location` is what follows "scheme:" in the URI.
using Opener = OpenResult (*)(std::string_view scheme, std::string_view location, Clock* clock);

OpenResult OpenMemory(std::string_view scheme, std::string_view location, Clock* clock) {
  if (!location.empty()) {
    return InvalidError(fmt::format(
        "store URI: scheme '{}' takes nothing after the colon, got '{}' (write \"memory:\")",
        scheme, location));
  }
  return std::make_unique<MemoryStore>(clock);
}

// "lmdb:DIR[?sync=durable|nometasync|nosync&map_size_mb=N&max_map_size_mb=N]"
// (docs/lmdb.md). DIR is created 0700 when missing; relative to the working
// directory unless absolute.
OpenResult OpenLmdb(std::string_view /*scheme*/, std::string_view location, Clock* clock) {
  XG2G_ASSIGN_OR_RETURN(LmdbLocation parsed, ParseLmdbLocation(location));
  XG2G_ASSIGN_OR_RETURN(std::unique_ptr<LmdbStore> store,
                        LmdbStore::Open(parsed.dir, parsed.options, clock));
  return std::unique_ptr<Store>(std::move(store));
}

// "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P&pool=N&timeout_ms=N]"
// (docs/redis.md). The server's clock drives expiry: `clock` is not used.
OpenResult OpenRedis(std::string_view /*scheme*/, std::string_view location, Clock* /*clock*/) {
  XG2G_ASSIGN_OR_RETURN(RedisOptions options, ParseRedisLocation(location));
  XG2G_ASSIGN_OR_RETURN(std::unique_ptr<RedisStore> store, RedisStore::Open(options));
  return std::unique_ptr<Store>(std::move(store));
}

struct Backend {
  std::string_view scheme;  // lower case
  Opener open;              // null: a planned backend this build does not have yet
};

// Extension point: a new backend adds its scheme and opener here.
//   "lmdb:DIR[?...]" -> LmdbStore                  (the embedded default)
//   "redis://[:PASSWORD@]HOST:PORT/DB[?prefix=...]" -> OpenRedisStore(...)
//                  (the server's clock; `clock` is ignored)
constexpr Backend kBackends[] = {
    {"memory", &OpenMemory},
    {"lmdb", &OpenLmdb},
    {"redis", &OpenRedis},
};

bool IsSchemeStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool IsSchemeChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '-' || c == '.';
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenStore(std::string_view uri, Clock* clock) {
  if (uri.empty()) return InvalidError("store URI is empty (expected e.g. \"memory:\")");
  const size_t colon = uri.find(':');
  if (colon == std::string_view::npos) {
    return InvalidError("store URI has no scheme: expected SCHEME:..., e.g. \"memory:\"");
  }
  const std::string_view raw_scheme = uri.substr(0, colon);
  if (raw_scheme.empty()) return InvalidError("store URI has an empty scheme before ':'");
  if (!IsSchemeStart(raw_scheme.front())) {
    return InvalidError(
        fmt::format("store URI scheme '{}' must start with a letter", raw_scheme));
  }
  std::string scheme;
  scheme.reserve(raw_scheme.size());
  for (char c : raw_scheme) {
    if (!IsSchemeChar(c)) {
      return InvalidError(fmt::format(
          "store URI scheme '{}' contains characters outside [A-Za-z0-9+.-]", raw_scheme));
    }
    // Schemes are case-insensitive (RFC 3986 §3.1).
    scheme.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }

  const std::string_view location = uri.substr(colon + 1);
  for (const Backend& backend : kBackends) {
    if (backend.scheme != scheme) continue;
    if (backend.open == nullptr) {
      return MakeError(ErrorCode::kUnsupported,
                       fmt::format("store scheme '{}' is not available in this build", scheme));
    }
    return backend.open(scheme, location, clock);
  }
  return MakeError(ErrorCode::kUnsupported,
                   fmt::format("unknown store scheme '{}' (this build supports: memory, lmdb, redis)", scheme));
}

}  // namespace xg2g

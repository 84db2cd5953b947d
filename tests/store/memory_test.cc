// The contract suite on the memory backend, plus what only the memory backend
// promises (a point-in-time scan, saturating deadlines) and OpenStore's URI
// handling.
#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/store/memory_store.h"
#include "lib/store/store.h"
#include "tests/store/contract.h"

namespace xg2g::store_test {

const StoreBackend& BackendUnderTest() {
  static const StoreBackend* const backend = new StoreBackend{
      .name = "memory",
      .open = [](const OpenRequest& request) { return OpenStore("memory:", request.clock); },
      .takes_clock = true,
      .durable = false,
      .short_ttl_ms = 50,
  };
  return *backend;
}

namespace {

std::string CodeName(const absl::Status& status) {
  return std::string(ErrorCodeName(CodeOf(status)));
}

bool MessageHas(const absl::Status& status, std::string_view needle) {
  return FromAbsl(status.message()).find(needle) != std::string_view::npos;
}

}  // namespace

TEST_SUITE("store") {

TEST_CASE("OpenStore opens an empty memory store for \"memory:\" in any letter case") {
  for (std::string_view uri : {"memory:", "MEMORY:", "Memory:"}) {
    INFO("uri: ", std::string(uri));
    auto store = OpenStore(uri);
    REQUIRE(store.ok());
    REQUIRE(*store != nullptr);
    auto page = (*store)->ListSessions(0, 10);
    REQUIRE(page.ok());
    CHECK(page->total == 0);
  }
}

TEST_CASE("OpenStore rejects anything after \"memory:\" with EINVAL naming it") {
  for (std::string_view extra : {"x", "//", "/tmp/db", " "}) {
    auto store = OpenStore(fmt::format("memory:{}", extra));
    INFO("status: ", store.status().ToString());
    CHECK(CodeName(store.status()) == "XG2G_EINVAL");
    CHECK(MessageHas(store.status(), fmt::format("'{}'", extra)));
  }
}

TEST_CASE("OpenStore rejects an empty or malformed URI with EINVAL") {
  for (std::string_view uri : {"", "memory", ":", ":memory", "1mem:", "mem ory:", "me/m:x"}) {
    auto store = OpenStore(uri);
    INFO("uri: '", std::string(uri), "' status: ", store.status().ToString());
    CHECK(CodeName(store.status()) == "XG2G_EINVAL");
    CHECK(MessageHas(store.status(), "store URI"));
  }
}

TEST_CASE("OpenStore answers EUNSUPPORTED naming an unknown or not yet built scheme") {
  const std::map<std::string, std::string> cases = {
      {"ftp://example/store", "'ftp'"},
      {"postgres+ssl:whatever", "'postgres+ssl'"},
  };
  for (const auto& [uri, scheme] : cases) {
    auto store = OpenStore(uri);
    INFO("status: ", store.status().ToString());
    CHECK(CodeName(store.status()) == "XG2G_EUNSUPPORTED");
    CHECK(MessageHas(store.status(), scheme));
    CHECK_FALSE(MessageHas(store.status(), "s3cret"));  // never echo credentials
  }
  // Redis is built: a malformed redis URI (here its port) is EINVAL naming the
  // part, found before any connection and never echoing the password.
  auto redis = OpenStore("redis://:s3cret-pass@db.internal:63x79/0");
  INFO("status: ", redis.status().ToString());
  CHECK(CodeName(redis.status()) == "XG2G_EINVAL");
  CHECK(MessageHas(redis.status(), "'63x79'"));
  CHECK_FALSE(MessageHas(redis.status(), "s3cret"));
}

TEST_CASE("a memory store without a clock runs on the real monotonic clock") {
  auto store = OpenStore("memory:");
  REQUIRE(store.ok());
  const int64_t before = Clock::Real()->MonotonicMs();
  const int64_t now = (*store)->NowMs();
  const int64_t after = Clock::Real()->MonotonicMs();
  CHECK(now >= before);
  CHECK(now <= after);
}

TEST_CASE("a memory scan visits exactly the sessions present when it began, as they were") {
  FakeClock clock;
  MemoryStore store(&clock);
  for (int i = 0; i < 30; ++i) {
    REQUIRE(store.PutSession(SampleSession(fmt::format("s-{:02}", i))).ok());
  }
  std::map<std::string, SessionRecord> seen;
  bool first = true;
  absl::Status inner = absl::OkStatus();
  REQUIRE(store
              .ScanSessions([&](const SessionRecord& record) {
                if (first) {
                  first = false;
                  // Changes made after the snapshot: none of them shows.
                  for (int i = 0; i < 30 && inner.ok(); ++i) {
                    const std::string id = fmt::format("s-{:02}", i);
                    if (id == record.session_id) continue;
                    inner = i % 2 == 0 ? store.DeleteSession(id)
                                       : store.UpdateSession(id, [](SessionRecord& s) {
                                                return (s.reason_detail = "later", absl::OkStatus());
                                              }).status();
                  }
                  if (inner.ok()) inner = store.PutSession(SampleSession("added-later"));
                }
                seen.emplace(record.session_id, record);
                return true;
              })
              .ok());
  REQUIRE_MESSAGE(inner.ok(), inner.ToString());
  CHECK(seen.size() == 30);
  CHECK(seen.count("added-later") == 0);
  for (const auto& [id, record] : seen) {
    CHECK_MESSAGE(record.reason_detail == SampleSession(id).reason_detail, id);
  }
}

TEST_CASE("a memory store saturates a deadline instead of overflowing on a huge ttl") {
  FakeClock clock;
  MemoryStore store(&clock);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  auto grant = store.AcquireLease("forever", "owner", kMax);
  REQUIRE(grant.ok());
  CHECK(grant->expires_at_ms == kMax);
  clock.AdvanceMs(1'000'000'000);
  CHECK(store.RenewLease("forever", "owner", kMax).ok());

  auto outcome = store.PutSessionWithIdempotency(SampleSession("kept"), "key", "fp", kMax);
  REQUIRE(outcome.ok());
  auto entry = store.GetIdempotency("key");
  REQUIRE(entry.ok());
  CHECK(entry->expires_at_ms == kMax);
}

TEST_CASE("cleaning up expired keys and leases never drops a live one") {
  FakeClock clock;
  MemoryStore store(&clock);
  // Enough entries that every shard passes its clean-up threshold.
  constexpr int kEach = 1500 * static_cast<int>(MemoryStore::kShardCount) / 8;
  for (int i = 0; i < kEach; ++i) {
    REQUIRE(store
                .PutSessionWithIdempotency(SampleSession(fmt::format("short-{}", i)),
                                           fmt::format("short-{}", i), "fp", 1'000)
                .ok());
    REQUIRE(store
                .PutSessionWithIdempotency(SampleSession(fmt::format("long-{}", i)),
                                           fmt::format("long-{}", i), "fp", 1'000'000)
                .ok());
    REQUIRE(store.AcquireLease(fmt::format("short-{}", i), "owner", 1'000).ok());
    REQUIRE(store.AcquireLease(fmt::format("long-{}", i), "owner", 1'000'000).ok());
  }
  clock.AdvanceMs(1'000);
  for (int i = 0; i < kEach; ++i) {  // inserts that trigger the clean-up
    REQUIRE(store
                .PutSessionWithIdempotency(SampleSession(fmt::format("more-{}", i)),
                                           fmt::format("more-{}", i), "fp", 1'000'000)
                .ok());
    REQUIRE(store.AcquireLease(fmt::format("more-{}", i), "owner", 1'000'000).ok());
  }
  int live_keys = 0;
  int live_leases = 0;
  for (int i = 0; i < kEach; ++i) {
    live_keys += store.GetIdempotency(fmt::format("long-{}", i)).ok() ? 1 : 0;
    live_leases += store.RenewLease(fmt::format("long-{}", i), "owner", 1'000'000).ok() ? 1 : 0;
    CHECK_FALSE(store.GetIdempotency(fmt::format("short-{}", i)).ok());
  }
  CHECK(live_keys == kEach);
  CHECK(live_leases == kEach);
  auto leases = store.ListLeases();
  REQUIRE(leases.ok());
  CHECK(leases->size() == static_cast<size_t>(2 * kEach));
}

}  // TEST_SUITE("store")

}  // namespace xg2g::store_test

namespace xg2g::store_test {
namespace {

TEST_CASE("paging through the memory store gives every id once, in order, also when ids come and go between pages") {
  FakeClock clock;
  MemoryStore store(&clock);
  std::set<std::string> ids;
  auto put = [&](const std::string& id) {
    SessionRecord r;
    r.session_id = id;
    r.service_ref = "1:0:1:PAGE";
    REQUIRE(store.PutSession(r).ok());
    ids.insert(id);
  };
  for (int i = 0; i < 3'000; ++i) put(fmt::format("s{:05}", (i * 7919) % 10'000));
  // The page at `offset` as the ids now present say it must be.
  auto expected = [&](size_t offset, size_t limit) {
    std::vector<std::string> out;
    auto it = ids.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(std::min(offset, ids.size())));
    for (; it != ids.end() && out.size() < limit; ++it) out.push_back(*it);
    return out;
  };
  auto listed = [&](size_t offset, size_t limit) {
    auto page = store.ListSessions(offset, limit);
    REQUIRE(page.ok());
    CHECK(page->total == ids.size());
    std::vector<std::string> out;
    for (const SessionRecord& r : page->sessions) out.push_back(r.session_id);
    return out;
  };
  // Straight through, then again with ids added and removed between pages,
  // then pages asked out of order.
  for (size_t offset = 0; offset < ids.size(); offset += 250) {
    CHECK(listed(offset, 250) == expected(offset, 250));
  }
  for (size_t offset = 0, round = 0; offset < ids.size(); offset += 250, ++round) {
    CHECK(listed(offset, 250) == expected(offset, 250));
    if (round % 2 == 0) {
      put(fmt::format("a{:05}", round));  // sorts before every page so far
    } else {
      const std::string gone = *ids.begin();
      REQUIRE(store.DeleteSession(gone).ok());
      ids.erase(gone);
    }
  }
  for (size_t offset : {size_t{2'000}, size_t{500}, size_t{500}, size_t{2'999}, size_t{0}}) {
    CHECK(listed(offset, 100) == expected(offset, 100));
  }
}

}  // namespace
}  // namespace xg2g::store_test

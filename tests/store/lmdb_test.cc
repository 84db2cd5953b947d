// The contract suite on the LMDB backend, plus what only LMDB promises: the
// "lmdb:DIR" URI, one environment per directory per process, records that do
// not decode, refusing a newer store format, map growth and a full map, the
// sweeper, long keys and byte-exact strings, and clearing dead readers' slots.
#include "lib/store/lmdb_store.h"

#include <lmdb.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/store/store.h"
#include "tests/store/contract.h"
#include "tests/store/lmdb_test_util.h"
#include "tests/store/status_checks.h"

namespace xg2g::store_test {

const StoreBackend& BackendUnderTest() {
  static const StoreBackend* const backend = new StoreBackend{
      .name = "lmdb",
      .open =
          [](const OpenRequest& request) {
            return OpenStore("lmdb:" + request.scratch_dir, request.clock);
          },
      .takes_clock = true,
      .durable = true,
      .short_ttl_ms = 150,
  };
  return *backend;
}

namespace {

std::unique_ptr<LmdbStore> OpenLmdb(const std::string& dir, Clock* clock,
                                    const LmdbOptions& options = {}) {
  auto store = LmdbStore::Open(dir, options, clock);
  REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  return *std::move(store);
}

SessionRecord Session(std::string id) { return SampleSession(std::move(id)); }

}  // namespace

TEST_SUITE("store") {

// ------------------------------------------------------------------ the URI

TEST_CASE("OpenStore(\"lmdb:DIR\") creates DIR and its missing parents with mode 0700") {
  ScratchDir scratch;
  const std::string dir = scratch.path() + "/a/b/store";
  {
    auto store = OpenStore("lmdb:" + dir);
    REQUIRE_OK(store);
    REQUIRE_OK((*store)->PutSession(Session("kept")));
  }
  for (const std::string& made : {scratch.path() + "/a", scratch.path() + "/a/b", dir}) {
    struct stat st;
    REQUIRE(stat(made.c_str(), &st) == 0);
    CHECK_MESSAGE((st.st_mode & 0777) == 0700, made);
  }
  CHECK(std::filesystem::exists(dir + "/data.mdb"));
  auto again = OpenStore("LMDB:" + dir);
  REQUIRE_OK(again);
  CHECK((*again)->GetSession("kept").ok());
}

TEST_CASE("OpenStore(\"lmdb:...\") accepts sync and map size options") {
  ScratchDir scratch;
  int n = 0;
  for (std::string_view query :
       {"", "?sync=durable", "?sync=nometasync", "?sync=NOSYNC", "?map_size_mb=1",
        "?max_map_size_mb=2", "?map_size_mb=2&max_map_size_mb=16&sync=nosync", "?&sync=durable&",
        "?cache=0", "?cache=1&sync=nosync", "?group_commit=off", "?group_commit=on"}) {
    INFO("query: ", std::string(query));
    auto store = OpenStore(fmt::format("lmdb:{}/s{}{}", scratch.path(), n++, query));
    REQUIRE_OK(store);
    REQUIRE_OK((*store)->PutSession(Session("x")));
  }
  auto parsed = ParseLmdbLocation("/d?map_size_mb=8");
  REQUIRE_OK(parsed);
  CHECK(parsed->options.initial_map_bytes == uint64_t{8} << 20);
  CHECK(parsed->options.max_map_bytes == uint64_t{4096} << 20);
  parsed = ParseLmdbLocation("/d?max_map_size_mb=16");
  REQUIRE_OK(parsed);
  CHECK(parsed->options.initial_map_bytes == uint64_t{16} << 20);  // follows the maximum down
  CHECK(parsed->options.max_map_bytes == uint64_t{16} << 20);
  parsed = ParseLmdbLocation("/d?sync=nometasync");
  REQUIRE_OK(parsed);
  CHECK(parsed->options.sync == LmdbSync::kNoMetaSync);
  CHECK(parsed->dir == "/d");
  CHECK(parsed->options.cache_entries == LmdbOptions{}.cache_entries);
  parsed = ParseLmdbLocation("/d?cache=0");
  REQUIRE_OK(parsed);
  CHECK(parsed->options.cache_entries == 0);
  parsed = ParseLmdbLocation("/d?cache=100000");
  REQUIRE_OK(parsed);
  CHECK(parsed->options.cache_entries == 100'000);
  CHECK(parsed->options.group_commit);
  parsed = ParseLmdbLocation("/d?group_commit=off");
  REQUIRE_OK(parsed);
  CHECK_FALSE(parsed->options.group_commit);
}

TEST_CASE("OpenStore rejects a malformed lmdb location with EINVAL naming the part") {
  const std::map<std::string, std::string> cases = {
      {"lmdb:", "directory"},
      {"lmdb:?sync=durable", "directory"},
      {"lmdb:/tmp/lmdb-never-created?sync=sometimes", "sync"},
      {"lmdb:/tmp/lmdb-never-created?sync", "sync"},
      {"lmdb:/tmp/lmdb-never-created?cache_size=1", "cache_size"},
      {"lmdb:/tmp/lmdb-never-created?cache=-1", "cache"},
      {"lmdb:/tmp/lmdb-never-created?cache=many", "cache"},
      {"lmdb:/tmp/lmdb-never-created?cache=99999999999", "cache"},
      {"lmdb:/tmp/lmdb-never-created?cache=8&cache=8", "twice"},
      {"lmdb:/tmp/lmdb-never-created?map_size_mb=0", "map_size_mb"},
      {"lmdb:/tmp/lmdb-never-created?map_size_mb=-1", "map_size_mb"},
      {"lmdb:/tmp/lmdb-never-created?map_size_mb=1.5", "map_size_mb"},
      {"lmdb:/tmp/lmdb-never-created?max_map_size_mb=99999999999", "max_map_size_mb"},
      {"lmdb:/tmp/lmdb-never-created?map_size_mb=64&max_map_size_mb=8", "map_size_mb"},
      {"lmdb:/tmp/lmdb-never-created?sync=nosync&sync=durable", "twice"},
      {"lmdb:/tmp/lmdb-never-created?group_commit=maybe", "group_commit"},
  };
  for (const auto& [uri, needle] : cases) {
    INFO("uri: ", uri);
    auto store = OpenStore(uri);
    CHECK_ERROR(store, ErrorCode::kInvalid, needle);
  }
  CHECK_FALSE(std::filesystem::exists("/tmp/lmdb-never-created"));  // nothing created on a bad URI
}

TEST_CASE("opening a store where a file is in the way fails with EIO naming the path") {
  ScratchDir scratch;
  const std::string file = scratch.path() + "/plain-file";
  std::ofstream(file) << "not a directory";
  CHECK_ERROR(OpenStore("lmdb:" + file), ErrorCode::kIo, file);
  CHECK_ERROR(OpenStore("lmdb:" + file + "/below"), ErrorCode::kIo, "plain-file");
}

TEST_CASE("a data file that is not LMDB is refused with ECORRUPT") {
  ScratchDir scratch;
  std::ofstream(scratch.path() + "/data.mdb") << std::string(16384, 'x');
  CHECK_ERROR(OpenStore("lmdb:" + scratch.path()), ErrorCode::kCorrupt, "not an LMDB database");
}

TEST_CASE("an LMDB environment that another program wrote is refused with EINVAL") {
  ScratchDir scratch;
  RawLmdb raw(scratch.path());
  raw.Put(nullptr, "someone-elses-key", "value");
  raw.Close();
  CHECK_ERROR(OpenStore("lmdb:" + scratch.path()), ErrorCode::kInvalid, "not an xg2g store");
}

// --------------------------------------------------- one env per process

TEST_CASE("two stores on one directory in one process share the data and close independently") {
  ScratchDir scratch;
  FakeClock clock;
  auto first = OpenLmdb(scratch.path(), &clock);
  // Another spelling of the same directory is the same environment.
  auto second = OpenLmdb(scratch.path() + "/./", &clock);
  REQUIRE_OK(first->PutSession(Session("shared")));
  CHECK(second->GetSession("shared").ok());
  auto grant = second->AcquireLease("tuner:0", "a", 60'000);
  REQUIRE_OK(grant);
  CHECK_ERROR(first->AcquireLease("tuner:0", "b", 60'000), ErrorCode::kBusy, "tuner:0");
  first.reset();
  REQUIRE_OK(second->PutSession(Session("after-close")));
  auto third = OpenLmdb(scratch.path(), &clock);
  CHECK(third->GetSession("after-close").ok());
}

TEST_CASE("a second open with other options while the store is open is EINVAL") {
  ScratchDir scratch;
  auto first = OpenLmdb(scratch.path(), nullptr);
  LmdbOptions nosync;
  nosync.sync = LmdbSync::kNoSync;
  CHECK_ERROR(LmdbStore::Open(scratch.path(), nosync), ErrorCode::kInvalid, "sync=durable");
  first.reset();
  CHECK(LmdbStore::Open(scratch.path(), nosync).ok());  // closed: any options again
}

// ------------------------------------------------------ corrupt records

TEST_CASE("a session record that does not decode is ECORRUPT naming its key, never a crash") {
  ScratchDir scratch;
  FakeClock clock;
  {
    auto store = OpenLmdb(scratch.path(), &clock);
    for (int i = 0; i < 5; ++i) REQUIRE_OK(store->PutSession(Session(fmt::format("good-{}", i))));
    REQUIRE_OK(store->PutSession(Session("victim")));
  }
  {
    RawLmdb raw(scratch.path());
    raw.Put("sessions", "victim", "{\"sessionId\": \"victim\", \"revision\": tru");
    raw.Put("sessions", "good-2x", std::string("\x00\xff\xfe garbage", 11));
    raw.Put("sessions", "stolen", EncodeSession(Session("someone-else")));
  }
  auto store = OpenLmdb(scratch.path(), &clock);
  CHECK_ERROR(store->GetSession("victim"), ErrorCode::kCorrupt, "victim");
  CHECK_ERROR(store->GetSession("good-2x"), ErrorCode::kCorrupt, "good-2x");
  CHECK_ERROR(store->GetSession("stolen"), ErrorCode::kCorrupt, "someone-else");
  CHECK(store->GetSession("good-1").ok());

  bool mutated = false;
  CHECK_ERROR(store->UpdateSession("victim",
                                  [&](SessionRecord&) {
                                    mutated = true;
                                    return absl::OkStatus();
                                  }),
             ErrorCode::kCorrupt, "victim");
  CHECK_FALSE(mutated);
  CHECK_ERROR(store->ListSessions(0, 100), ErrorCode::kCorrupt, "good-2x");

  // A scan visits everything that decodes, then names what did not.
  std::set<std::string> seen;
  const absl::Status scanned = store->ScanSessions([&](const SessionRecord& record) {
    seen.insert(record.session_id);
    return true;
  });
  CHECK_ERROR(scanned, ErrorCode::kCorrupt, "3 record(s)");
  CHECK(MessageHas(scanned, "good-2x"));
  CHECK(seen == std::set<std::string>{"good-0", "good-1", "good-2", "good-3", "good-4"});

  auto report = store->CheckConsistency();
  REQUIRE_OK(report);
  CHECK(report->sessions == 8);
  CHECK(report->problems.size() == 3);

  // The way out: delete or overwrite the bad record.
  REQUIRE_OK(store->DeleteSession("good-2x"));
  REQUIRE_OK(store->DeleteSession("stolen"));
  REQUIRE_OK(store->PutSession(Session("victim")));
  CHECK(store->GetSession("victim").ok());
  auto page = store->ListSessions(0, 100);
  REQUIRE_OK(page);
  CHECK(page->sessions.size() == 6);
  report = store->CheckConsistency();
  REQUIRE_OK(report);
  CHECK(report->problems.empty());
}

TEST_CASE("idempotency and lease records that do not decode are ECORRUPT naming the key") {
  ScratchDir scratch;
  FakeClock clock;
  {
    auto store = OpenLmdb(scratch.path(), &clock);
    REQUIRE_OK(store->AcquireLease("tuner:ok", "a", 60'000));
  }
  {
    RawLmdb raw(scratch.path());
    raw.Put("idem", "key-bad", "[1,2,3]");
    raw.Put("leases", "tuner:bad", "{\"v\":1,\"owner\":\"a\",\"token\":\"seven\",\"expiresAtMs\":1}");
    raw.Put("leases", "tuner:nodeadline", "{\"v\":1,\"owner\":\"a\",\"token\":7}");
  }
  auto store = OpenLmdb(scratch.path(), &clock);
  CHECK_ERROR(store->GetIdempotency("key-bad"), ErrorCode::kCorrupt, "key-bad");
  CHECK_ERROR(store->PutSessionWithIdempotency(Session("s"), "key-bad", "fp", 60'000),
             ErrorCode::kCorrupt, "key-bad");
  CHECK_ERROR(store->GetSession("s"), ErrorCode::kNotFound, "s");  // nothing written
  CHECK_ERROR(store->AcquireLease("tuner:bad", "b", 60'000), ErrorCode::kCorrupt, "token");
  CHECK_ERROR(store->GetLease("tuner:nodeadline"), ErrorCode::kCorrupt, "tuner:nodeadline");
  CHECK_ERROR(store->ListLeases(), ErrorCode::kCorrupt, "tuner:");

  clock.AdvanceMs(120'000);
  auto swept = store->SweepExpired();
  REQUIRE_OK(swept);
  CHECK(swept->leases_removed == 1);  // tuner:ok expired; the bad ones stay for an operator
  CHECK(swept->corrupt_skipped == 3);

  REQUIRE_OK(store->DeleteIdempotency("key-bad"));  // deleting clears a bad record
  CHECK_ERROR(store->GetIdempotency("key-bad"), ErrorCode::kNotFound, "key-bad");
}

// ---------------------------------------------------------- format version

TEST_CASE("a store written by a newer incompatible version is refused and left untouched") {
  ScratchDir scratch;
  {
    auto store = OpenLmdb(scratch.path(), nullptr);
    REQUIRE_OK(store->PutSession(Session("from-the-future")));
  }
  const std::string future = "{\"format\":99,\"note\":\"a later layout\"}";
  {
    RawLmdb raw(scratch.path());
    raw.Put("meta", "format", future);
  }
  auto refused = OpenStore("lmdb:" + scratch.path());
  CHECK_ERROR(refused, ErrorCode::kVersion, "newer version");
  CHECK(MessageHas(refused.status(), "format 99"));
  CHECK(MessageHas(refused.status(), scratch.path()));
  RawLmdb raw(scratch.path());
  CHECK(raw.Get("meta", "format") == future);
  CHECK(raw.Get("sessions", "from-the-future").has_value());
}

TEST_CASE("a format record that does not decode or is missing is refused with ECORRUPT") {
  ScratchDir scratch;
  { auto store = OpenLmdb(scratch.path(), nullptr); }
  {
    RawLmdb raw(scratch.path());
    raw.Put("meta", "format", "format one");
  }
  CHECK_ERROR(OpenStore("lmdb:" + scratch.path()), ErrorCode::kCorrupt, "format");
  {
    RawLmdb raw(scratch.path());
    raw.Delete("meta", "format");
  }
  CHECK_ERROR(OpenStore("lmdb:" + scratch.path()), ErrorCode::kCorrupt, "'format' is missing");
}

// ------------------------------------------------------------- map size

TEST_CASE("the map grows as the data grows, up to the maximum") {
  ScratchDir scratch;
  LmdbOptions options;
  options.sync = LmdbSync::kNoSync;  // many writes; durability is not what is tested
  options.initial_map_bytes = uint64_t{1} << 20;
  options.max_map_bytes = uint64_t{64} << 20;
  auto store = OpenLmdb(scratch.path(), nullptr, options);
  auto before = store->MapInfo();
  REQUIRE_OK(before);
  CHECK(before->map_bytes == uint64_t{1} << 20);
  for (int i = 0; i < 6000; ++i) {
    SessionRecord record = Session(fmt::format("grow-{:05}", i));
    record.reason_detail = std::string(600, 'g');
    REQUIRE_OK(store->PutSession(record));
  }
  auto after = store->MapInfo();
  REQUIRE_OK(after);
  MESSAGE("map ", after->map_bytes, " bytes, file ", after->file_bytes, ", used ",
          after->used_bytes);
  CHECK(after->map_bytes > uint64_t{4} << 20);
  CHECK(after->map_bytes <= options.max_map_bytes);
  // Grown before it was full, not only when a write failed.
  CHECK(after->file_bytes < after->map_bytes);
  auto page = store->ListSessions(0, 1);
  REQUIRE_OK(page);
  CHECK(page->total == 6000);
}

TEST_CASE("a full map answers ESTOREFULL, keeps serving reads, and takes writes again after deletes") {
  ScratchDir scratch;
  FakeClock clock;
  LmdbOptions options;
  options.sync = LmdbSync::kNoSync;  // many writes; durability is not what is tested
  options.initial_map_bytes = uint64_t{1} << 20;
  options.max_map_bytes = uint64_t{1} << 20;
  auto store = OpenLmdb(scratch.path(), &clock, options);
  std::vector<std::string> stored;
  absl::Status full = absl::OkStatus();
  for (int i = 0; i < 100'000 && full.ok(); ++i) {
    SessionRecord record = Session(fmt::format("fill-{:06}", i));
    record.reason_detail = std::string(400, 'f');
    full = store->PutSession(record);
    if (full.ok()) stored.push_back(record.session_id);
  }
  INFO("stored ", stored.size(), " sessions; then: ", full.ToString());
  CHECK_ERROR(full, ErrorCode::kStoreFull, "is full");
  CHECK(MessageHas(full, scratch.path()));
  CHECK(MessageHas(full, "max_map_size_mb"));
  REQUIRE(stored.size() > 100);

  // It stays full (a smaller record may still fit in a gap)...
  SessionRecord big = Session("one-too-many");
  big.reason_detail = std::string(400, 'f');
  CHECK_ERROR(store->PutSession(big), ErrorCode::kStoreFull, "is full");
  CHECK_ERROR(store->PutSessionWithIdempotency(big, "k", "fp", 60'000), ErrorCode::kStoreFull,
             "is full");
  // ...and reads go on.
  auto got = store->GetSession(stored.front());
  REQUIRE_OK(got);
  auto page = store->ListSessions(0, 10);
  REQUIRE_OK(page);
  CHECK(page->total == stored.size());
  size_t scanned = 0;
  REQUIRE_OK(store->ScanSessions([&](const SessionRecord&) { return ++scanned, true; }));
  CHECK(scanned == stored.size());

  // Deletes work on a full store; then there is room again. (Space comes
  // back in whole pages: deleting every other record would free little.)
  for (size_t i = 0; i < stored.size() / 2; ++i) REQUIRE_OK(store->DeleteSession(stored[i]));
  REQUIRE_OK(store->PutSession(big));
  REQUIRE_OK(store->AcquireLease("tuner:full", "a", 60'000));
  REQUIRE_OK(store->PutSessionWithIdempotency(Session("one-more"), "k", "fp", 60'000));
  for (int i = 0; i < 50; ++i) REQUIRE_OK(store->PutSession(Session(fmt::format("again-{}", i))));
  auto info = store->MapInfo();
  REQUIRE_OK(info);
  CHECK(info->map_bytes <= options.max_map_bytes);
  auto report = store->CheckConsistency();
  REQUIRE_OK(report);
  CHECK(report->problems.empty());
}

TEST_CASE("a full store can be emptied completely and filled again") {
  ScratchDir scratch;
  LmdbOptions options;
  options.sync = LmdbSync::kNoSync;  // many writes; durability is not what is tested
  options.initial_map_bytes = options.max_map_bytes = uint64_t{1} << 20;
  auto store = OpenLmdb(scratch.path(), nullptr, options);
  for (int round = 0; round < 3; ++round) {
    INFO("round ", round);
    std::vector<std::string> stored;
    for (int i = 0;; ++i) {
      SessionRecord record = Session(fmt::format("r{}-{:06}", round, i));
      record.reason_detail = std::string(700, 'e');
      const absl::Status status = store->PutSession(record);
      if (!status.ok()) {
        CHECK_ERROR(status, ErrorCode::kStoreFull, "is full");
        break;
      }
      stored.push_back(record.session_id);
    }
    REQUIRE(stored.size() > 100);
    for (const std::string& id : stored) REQUIRE_OK(store->DeleteSession(id));
    auto page = store->ListSessions(0, 1);
    REQUIRE_OK(page);
    CHECK(page->total == 0);
  }
}

// ------------------------------------------------------------- the sweeper

TEST_CASE("the sweeper removes exactly the expired keys and leases") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  for (int i = 0; i < 300; ++i) {
    REQUIRE_OK(store->PutSessionWithIdempotency(Session(fmt::format("s-{}", i)),
                                                fmt::format("short-{}", i), "fp", 1'000));
    REQUIRE_OK(store->PutSessionWithIdempotency(Session(fmt::format("l-{}", i)),
                                                fmt::format("long-{}", i), "fp", 1'000'000));
    REQUIRE_OK(store->AcquireLease(fmt::format("short-{}", i), "o", 1'000));
    REQUIRE_OK(store->AcquireLease(fmt::format("long-{}", i), "o", 1'000'000));
  }
  auto nothing = store->SweepExpired();
  REQUIRE_OK(nothing);
  CHECK(nothing->idempotency_removed == 0);
  CHECK(nothing->leases_removed == 0);

  clock.AdvanceMs(1'000);
  auto swept = store->SweepExpired();
  REQUIRE_OK(swept);
  CHECK(swept->idempotency_removed == 300);
  CHECK(swept->leases_removed == 300);
  CHECK(swept->corrupt_skipped == 0);
  auto report = store->CheckConsistency();
  REQUIRE_OK(report);
  CHECK(report->idempotency_keys == 300);
  CHECK(report->leases == 300);
  CHECK(report->sessions == 600);  // sessions are never the sweeper's
  for (int i = 0; i < 300; ++i) {
    CHECK(store->GetIdempotency(fmt::format("long-{}", i)).ok());
  }
  auto leases = store->ListLeases();
  REQUIRE_OK(leases);
  CHECK(leases->size() == 300);
}

TEST_CASE("expired entries are swept without being asked once a table has doubled") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE_OK(store->AcquireLease(fmt::format("old-{}", i), "o", 1'000));
  }
  clock.AdvanceMs(1'000);
  for (int i = 0; i < 100; ++i) {
    REQUIRE_OK(store->AcquireLease(fmt::format("new-{}", i), "o", 1'000'000));
  }
  auto report = store->CheckConsistency();
  REQUIRE_OK(report);
  CHECK_MESSAGE(report->leases < 1000, "the insert that reached 1024 entries swept the expired ones");
  auto leases = store->ListLeases();
  REQUIRE_OK(leases);
  CHECK(leases->size() == 100);
}

// ------------------------------------------------------ keys and strings

TEST_CASE("keys longer than LMDB's key limit work and stay distinct") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  const std::string prefix = "service:" + std::string(600, 'x');
  const std::string a = prefix + "A";
  const std::string b = prefix + "B";
  auto grant_a = store->AcquireLease(a, "owner-a", 60'000);
  REQUIRE_OK(grant_a);
  auto grant_b = store->AcquireLease(b, "owner-b", 60'000);
  REQUIRE_OK(grant_b);
  CHECK_ERROR(store->AcquireLease(a, "owner-b", 60'000), ErrorCode::kBusy, "owner-a");
  auto info = store->GetLease(b);
  REQUIRE_OK(info);
  CHECK(info->key == b);
  CHECK(info->owner == "owner-b");
  auto leases = store->ListLeases();
  REQUIRE_OK(leases);
  REQUIRE(leases->size() == 2);
  CHECK(leases->at(0).key == a);
  CHECK(leases->at(1).key == b);
  REQUIRE_OK(store->ReleaseLease(a, "owner-a"));

  const std::string long_key = std::string(5000, 'k');
  REQUIRE_OK(store->PutSessionWithIdempotency(Session("long"), long_key, "fp", 60'000));
  auto entry = store->GetIdempotency(long_key);
  REQUIRE_OK(entry);
  CHECK(entry->session_id == "long");
  CHECK_ERROR(store->GetIdempotency(long_key + "!"), ErrorCode::kNotFound, "idempotency key");
  auto report = store->CheckConsistency();
  REQUIRE_OK(report);
  CHECK(report->problems.empty());
}

TEST_CASE("owners, fingerprints and keys that are not UTF-8 come back byte for byte") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  const std::string owner("own\xff\x00\xc3", 6);
  const std::string key("key\x80\"\n", 6);
  const std::string fingerprint("\xfe\xfd", 2);
  REQUIRE_OK(store->AcquireLease(key, owner, 60'000));
  auto info = store->GetLease(key);
  REQUIRE_OK(info);
  CHECK(info->owner == owner);
  REQUIRE_OK(store->RenewLease(key, owner, 60'000));
  CHECK_ERROR(store->RenewLease(key, std::string("own\xff", 4), 60'000), ErrorCode::kConflict,
             "held by");
  REQUIRE_OK(store->ReleaseLease(key, owner));

  REQUIRE_OK(store->PutSessionWithIdempotency(Session("bytes"), key, fingerprint, 60'000));
  auto entry = store->GetIdempotency(key);
  REQUIRE_OK(entry);
  CHECK(entry->fingerprint == fingerprint);
}

// ----------------------------------------------------- processes and time

TEST_CASE("deadlines are wall-clock Unix milliseconds from the clock the store was given") {
  ScratchDir scratch;
  FakeClock clock(1'800'000'000'000);
  auto store = OpenLmdb(scratch.path(), &clock);
  CHECK(store->NowMs() == 1'800'000'000'000);
  auto grant = store->AcquireLease("tuner:0", "a", 5'000);
  REQUIRE_OK(grant);
  CHECK(grant->expires_at_ms == 1'800'000'005'000);

  auto real = OpenLmdb(scratch.path() + "/real", nullptr);
  const int64_t before = Clock::Real()->NowUnixMs();
  const int64_t now = real->NowMs();
  CHECK(now >= before);
  CHECK(now <= Clock::Real()->NowUnixMs());
}

TEST_CASE("opening a store clears the reader slots that dead processes left behind") {
  ScratchDir scratch;
  { auto store = OpenLmdb(scratch.path(), nullptr); }
  // A holder keeps the environment open throughout, so that LMDB does not
  // simply reset the reader table when the next process opens it; when told,
  // it counts the dead readers that are left (its exit code).
  ChildProcess holder([&](const ChildProcess::Side& side) {
    RawLmdb raw(scratch.path());
    if (!raw.ok()) return 100;
    side.Ready();
    if (!side.AwaitGo()) return 100;
    return raw.StaleReaders();
  });
  REQUIRE(holder.AwaitReady());
  // A reader that dies without giving its slot back.
  ChildProcess dying([&](const ChildProcess::Side&) {
    RawLmdb raw(scratch.path());
    return raw.LeakReadTransaction() ? 0 : 100;
  });
  REQUIRE(dying.Wait() == 0);

  { auto store = OpenLmdb(scratch.path(), nullptr); }
  holder.Tell();
  CHECK_MESSAGE(holder.Wait() == 0, "opening the store should have cleared the dead reader's slot");
}

// ------------------------------------------------------ the session cache

namespace {

LmdbStore& AsLmdb(const std::unique_ptr<Store>& store) {
  auto* lmdb = dynamic_cast<LmdbStore*>(store.get());
  REQUIRE(lmdb != nullptr);
  return *lmdb;
}

// The stored bytes of session `id` with the first occurrence of `from`
// replaced by `to` (of the same length): a record of exactly the same size.
std::string SameSizeEdit(std::string bytes, std::string_view from, std::string_view to) {
  REQUIRE(from.size() == to.size());
  const size_t at = bytes.find(from);
  REQUIRE(at != std::string::npos);
  bytes.replace(at, from.size(), to);
  return bytes;
}

}  // namespace

TEST_CASE("a cached session rewritten through another store object is read back new") {
  ScratchDir scratch;
  FakeClock clock;
  auto reader = OpenLmdb(scratch.path(), &clock);
  auto writer = OpenLmdb(scratch.path(), &clock);  // same environment, a cache of its own
  REQUIRE_OK(reader->PutSession(Session("s1")));
  REQUIRE_OK(reader->GetSession("s1"));
  REQUIRE_OK(reader->GetSession("s1"));
  CHECK(reader->CacheStats().hits == 1);
  CHECK(reader->CacheStats().entries == 1);

  auto updated = writer->UpdateSession("s1", [](SessionRecord& record) {
    record.service_ref = "1:0:1:AAAA:1:1:C00000:0:0:0:";
    record.context_data["tuner_slot"] = "3";
    return absl::OkStatus();
  });
  REQUIRE_OK(updated);
  auto got = reader->GetSession("s1");
  REQUIRE_OK(got);
  CHECK(*got == *updated);
  CHECK(reader->CacheStats().hits == 1);  // the bytes differed: decoded, not served
  got = reader->GetSession("s1");
  REQUIRE_OK(got);
  CHECK(*got == *updated);
  CHECK(reader->CacheStats().hits == 2);  // and cached anew

  // A put of the same content still gets a new revision: new bytes.
  REQUIRE_OK(writer->PutSession(*updated));
  got = reader->GetSession("s1");
  REQUIRE_OK(got);
  CHECK(got->revision > updated->revision);
  REQUIRE_OK(writer->DeleteSession("s1"));
  CHECK_ERROR(reader->GetSession("s1"), ErrorCode::kNotFound, "s1");
}

TEST_CASE("a cached session rewritten by another process is read back new, even at the same size") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  REQUIRE_OK(store->PutSession(Session("s1")));
  REQUIRE_OK(store->PutSession(Session("s2")));
  const auto original = store->GetSession("s1");
  REQUIRE_OK(original);
  REQUIRE_OK(store->GetSession("s1"));
  REQUIRE(store->CacheStats().hits == 1);

  // Another process writes through the store: a new revision.
  ChildProcess updater([&](const ChildProcess::Side&) {
    auto child = LmdbStore::Open(scratch.path());
    if (!child.ok()) return 100;
    auto done = (*child)->UpdateSession("s1", [](SessionRecord& record) {
      record.reason_detail = "changed elsewhere";
      return absl::OkStatus();
    });
    return done.ok() ? 0 : 101;
  });
  REQUIRE(updater.Wait() == 0);
  auto got = store->GetSession("s1");
  REQUIRE_OK(got);
  CHECK(got->reason_detail == "changed elsewhere");
  CHECK(got->revision > original->revision);

  // Another process changes one byte of the value behind LMDB's back: same
  // size, same revision, only the bytes differ.
  REQUIRE_OK(store->GetSession("s2"));
  const uint64_t hits = store->CacheStats().hits;
  REQUIRE_OK(store->GetSession("s2"));
  REQUIRE(store->CacheStats().hits == hits + 1);
  ChildProcess editor([&](const ChildProcess::Side&) {
    RawLmdb raw(scratch.path());
    const std::optional<std::string> bytes = raw.Get("sessions", "s2");
    if (!raw.ok() || !bytes.has_value()) return 100;
    raw.Put("sessions", "s2", SameSizeEdit(*bytes, "daemon-a", "daemon-b"));
    return 0;
  });
  REQUIRE(editor.Wait() == 0);
  got = store->GetSession("s2");
  REQUIRE_OK(got);
  CHECK(got->context_data.at("owner") == "daemon-b");
  CHECK(store->CacheStats().hits == hits + 1);

  // And deleted by another process: gone, cache or not.
  ChildProcess deleter([&](const ChildProcess::Side&) {
    RawLmdb raw(scratch.path());
    if (!raw.ok()) return 100;
    raw.Delete("sessions", "s2");
    return 0;
  });
  REQUIRE(deleter.Wait() == 0);
  CHECK_ERROR(store->GetSession("s2"), ErrorCode::kNotFound, "s2");
}

TEST_CASE("a cached session overwritten with garbage is ECORRUPT naming its key, however read") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  REQUIRE_OK(store->PutSession(Session("victim")));
  REQUIRE_OK(store->PutSession(Session("bystander")));
  REQUIRE_OK(store->GetSession("victim"));
  REQUIRE_OK(store->GetSession("victim"));
  REQUIRE_OK(store->GetSession("bystander"));
  REQUIRE(store->CacheStats().hits == 1);
  REQUIRE(store->CacheStats().entries == 2);

  // Garbage of exactly the record's size (its first byte broken), then
  // garbage of another size.
  for (const bool same_size : {true, false}) {
    CAPTURE(same_size);
    ChildProcess vandal([&](const ChildProcess::Side&) {
      RawLmdb raw(scratch.path());
      const std::optional<std::string> bytes = raw.Get("sessions", "victim");
      if (!raw.ok() || !bytes.has_value()) return 100;
      std::string garbage = *bytes;
      if (same_size) {
        garbage[0] = 'X';
      } else {
        garbage = "{\"sessionId\":\"victim\",";
      }
      raw.Put("sessions", "victim", garbage);
      return 0;
    });
    REQUIRE(vandal.Wait() == 0);
    const uint64_t hits = store->CacheStats().hits;
    CHECK_ERROR(store->GetSession("victim"), ErrorCode::kCorrupt, "victim");
    CHECK_ERROR(store->GetSession("victim"), ErrorCode::kCorrupt, "victim");
    bool mutated = false;
    CHECK_ERROR(store->UpdateSession("victim",
                                    [&](SessionRecord&) {
                                      mutated = true;
                                      return absl::OkStatus();
                                    }),
               ErrorCode::kCorrupt, "victim");
    CHECK_FALSE(mutated);
    CHECK(store->CacheStats().hits == hits);  // never served from the cache
    CHECK(store->CacheStats().entries == 1);  // and the stale entry dropped
    CHECK_ERROR(store->ListSessions(0, 10), ErrorCode::kCorrupt, "victim");
    size_t visited = 0;
    CHECK_ERROR(store->ScanSessions([&](const SessionRecord&) { return ++visited, true; }),
               ErrorCode::kCorrupt, "victim");
    CHECK(visited == 1);
    CHECK(store->CacheStats().hits == hits + 2);  // the bystander, listed and scanned
    REQUIRE_OK(store->GetSession("bystander"));
  }

  // Put again, it reads (and caches) as before.
  REQUIRE_OK(store->PutSession(Session("victim")));
  REQUIRE_OK(store->GetSession("victim"));
  auto again = store->GetSession("victim");
  REQUIRE_OK(again);
  CHECK(again->reason_detail == Session("victim").reason_detail);
}

namespace {

// Leases tuner:0 .. tuner:<count - 1>, all held by `owner` for 30 s; their keys.
std::vector<std::string> AcquireTuners(Store& store, int count, std::string_view owner) {
  std::vector<std::string> keys;
  for (int i = 0; i < count; ++i) {
    keys.push_back(fmt::format("tuner:{}", i));
    REQUIRE_OK(store.AcquireLease(keys.back(), owner, 30'000));
  }
  return keys;
}

// Runs `call` on `store` and checks that it committed in exactly one write
// transaction; what `call` answered.
template <typename Call>
auto InOneCommit(LmdbStore& store, Call call) {
  const LmdbCommitStats before = store.CommitStats();
  auto result = call();
  const LmdbCommitStats after = store.CommitStats();
  CHECK(after.groups == before.groups + 1);
  CHECK(after.writes == before.writes + 1);
  return result;
}

}  // namespace

TEST_CASE("renewing many leases at once is one write transaction") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  const std::vector<std::string> keys = AcquireTuners(*store, 100, "daemon-a");
  std::vector<LeaseRef> leases;
  for (const std::string& key : keys) leases.push_back(LeaseRef{key, "daemon-a"});
  clock.AdvanceMs(1'000);
  auto answers = InOneCommit(*store, [&] { return store->RenewLeases(leases, 30'000); });
  REQUIRE_OK(answers);
  for (const auto& answer : *answers) {
    REQUIRE_OK(answer);
    CHECK(answer->expires_at_ms == store->NowMs() + 30'000);
  }
}

TEST_CASE("releasing many leases at once is one write transaction") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  const std::vector<std::string> keys = AcquireTuners(*store, 100, "daemon-a");
  std::vector<LeaseRef> leases;
  for (const std::string& key : keys) leases.push_back(LeaseRef{key, "daemon-a"});
  leases.push_back(LeaseRef{"tuner:none", "daemon-a"});  // answered NotFound, in the same commit
  auto answers = InOneCommit(*store, [&] { return store->ReleaseLeases(leases); });
  REQUIRE_OK(answers);
  REQUIRE(answers->size() == leases.size());
  for (size_t i = 0; i < keys.size(); ++i) REQUIRE_OK((*answers)[i]);
  CHECK_ERROR(answers->back(), ErrorCode::kNotFound, "tuner:none");
  auto left = store->ListLeases();
  REQUIRE_OK(left);
  CHECK(left->empty());
}

TEST_CASE("writes that wait for the writer lock are committed together, each on its own merits") {
  ScratchDir scratch;
  FakeClock clock;
  auto store = OpenLmdb(scratch.path(), &clock);
  REQUIRE_OK(store->PutSession(Session("warm-up")));

  // Another process holds LMDB's writer lock until told to let go.
  const std::string dir = scratch.path();
  ChildProcess holder([&dir](const ChildProcess::Side& side) {
    MDB_env* env = nullptr;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0 ||
        mdb_env_open(env, dir.c_str(), 0, 0600) != 0) {
      return 100;
    }
    MDB_txn* txn = nullptr;
    if (mdb_txn_begin(env, nullptr, 0, &txn) != 0) return 101;
    side.Ready();
    side.AwaitGo();
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return 0;
  });
  REQUIRE(holder.AwaitReady());

  // Eight writers: six sessions, and two deletes of sessions that do not
  // exist (they fail inside the write transaction: their nested transactions
  // are dropped, nothing else).
  constexpr int kWriters = 8;
  const LmdbCommitStats before = store->CommitStats();
  std::vector<absl::Status> results(kWriters);
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] {
      results[i] = i < 6 ? store->PutSession(Session(fmt::format("w{}", i)))
                         : store->DeleteSession(fmt::format("missing-{}", i));
    });
  }
  // The first writer waits for the lock with the group it took; every later
  // one queues behind it.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    const LmdbCommitStats now = store->CommitStats();
    if (now.running + now.queued == kWriters) break;
    if (std::chrono::steady_clock::now() >= give_up) {
      MESSAGE("running ", now.running, ", queued ", now.queued);
      holder.Tell();
      for (std::thread& t : writers) t.join();
      FAIL("the writers never all waited for the lock");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  holder.Tell();
  for (std::thread& t : writers) t.join();
  REQUIRE(holder.Wait() == 0);

  for (int i = 0; i < 6; ++i) REQUIRE_OK(results[i]);
  for (int i = 6; i < kWriters; ++i) {
    CHECK_ERROR(results[i], ErrorCode::kNotFound, fmt::format("missing-{}", i));
  }
  const LmdbCommitStats after = store->CommitStats();
  CHECK(after.writes - before.writes == 6);
  // The group that waited and the one queued behind it (one of them may have
  // held only a failed delete, which commits nothing): six writes in at most
  // two transactions.
  CHECK(after.groups - before.groups >= 1);
  CHECK(after.groups - before.groups <= 2);
  CHECK(after.running == 0);
  CHECK(after.queued == 0);
  for (int i = 0; i < 6; ++i) REQUIRE_OK(store->GetSession(fmt::format("w{}", i)));
  REQUIRE_OK(store->GetSession("warm-up"));
}

TEST_CASE("group_commit=off commits every write on its own") {
  ScratchDir scratch;
  auto store = OpenStore(fmt::format("lmdb:{}?group_commit=off", scratch.path()));
  REQUIRE_OK(store);
  auto& lmdb = dynamic_cast<LmdbStore&>(**store);
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i) {
    writers.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) {
        if (!lmdb.PutSession(Session(fmt::format("t{}-{}", i, j))).ok()) failed.fetch_add(1);
      }
    });
  }
  for (std::thread& t : writers) t.join();
  CHECK(failed.load() == 0);
  CHECK(lmdb.CommitStats().groups == 0);
  auto page = lmdb.ListSessions(0, 100);
  REQUIRE_OK(page);
  CHECK(page->total == 40);
}

TEST_CASE("the session cache never holds more entries than its bound") {
  ScratchDir scratch;
  FakeClock clock;
  for (const size_t bound : {size_t{1}, size_t{5}, size_t{16}, size_t{37}}) {
    CAPTURE(bound);
    LmdbOptions options;
    options.cache_entries = bound;
    auto store = OpenLmdb(fmt::format("{}/bound-{}", scratch.path(), bound), &clock, options);
    CHECK(store->CacheStats().capacity == bound);
    constexpr int kSessions = 120;
    for (int i = 0; i < kSessions; ++i) {
      REQUIRE_OK(store->PutSession(Session(fmt::format("s{:03}", i))));
    }
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < kSessions; ++i) {
        const std::string id = fmt::format("s{:03}", (i * 7 + round) % kSessions);
        auto got = store->GetSession(id);
        REQUIRE_OK(got);
        CHECK(got->session_id == id);
        CHECK(store->CacheStats().entries <= bound);
      }
      // Updates and scans read through the cache too; a scan adds nothing.
      REQUIRE_OK(store->UpdateSession("s000", [](SessionRecord& record) {
        record.reason_detail = "touched";
        return absl::OkStatus();
      }));
      const size_t before = store->CacheStats().entries;
      size_t visited = 0;
      REQUIRE_OK(store->ScanSessions([&](const SessionRecord&) { return ++visited, true; }));
      CHECK(visited == kSessions);
      CHECK(store->CacheStats().entries == before);
    }
    CHECK(store->CacheStats().entries > 0);
    // A session read over and over is soon cached, and stays.
    const uint64_t hits = store->CacheStats().hits;
    for (int i = 0; i < 30; ++i) REQUIRE_OK(store->GetSession("s042"));
    CHECK(store->CacheStats().hits >= hits + 28);
    CHECK(store->CacheStats().entries <= bound);
  }
}

TEST_CASE("cache=0 turns the session cache off; everything reads as before") {
  ScratchDir scratch;
  FakeClock clock;
  auto opened = OpenStore(fmt::format("lmdb:{}?cache=0", scratch.path()), &clock);
  REQUIRE_OK(opened);
  LmdbStore& store = AsLmdb(*opened);
  auto writer = OpenLmdb(scratch.path(), &clock);
  for (int i = 0; i < 10; ++i) REQUIRE_OK(store.PutSession(Session(fmt::format("s{}", i))));
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i) REQUIRE_OK(store.GetSession(fmt::format("s{}", i)));
  }
  REQUIRE_OK(writer->UpdateSession("s3", [](SessionRecord& record) {
    record.reason_detail = "new";
    return absl::OkStatus();
  }));
  auto got = store.GetSession("s3");
  REQUIRE_OK(got);
  CHECK(got->reason_detail == "new");
  REQUIRE_OK(store.UpdateSession("s3", [](SessionRecord& record) {
    record.reason_detail = "newer";
    return absl::OkStatus();
  }));
  got = writer->GetSession("s3");
  REQUIRE_OK(got);
  CHECK(got->reason_detail == "newer");
  auto page = store.ListSessions(0, 100);
  REQUIRE_OK(page);
  CHECK(page->sessions.size() == 10);
  const LmdbCacheStats stats = store.CacheStats();
  CHECK(stats.capacity == 0);
  CHECK(stats.entries == 0);
  CHECK(stats.hits == 0);
  CHECK(stats.misses == 0);
  // The default is on.
  CHECK(writer->CacheStats().capacity == LmdbOptions{}.cache_entries);
  CHECK(LmdbOptions{}.cache_entries > 0);
}

TEST_CASE("threads that read and end do not use up the reader table") {
  // Each thread keeps a reader slot parked while it lives; one that ends
  // gives it back. More threads than the table has slots read in turn.
  ScratchDir scratch;
  auto store = OpenLmdb(scratch.path(), nullptr);
  REQUIRE_OK(store->PutSession(Session("s")));
  std::atomic<int> failed{0};
  for (int batch = 0; batch < 130; ++batch) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        if (!store->GetSession("s").ok()) failed.fetch_add(1);
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  CHECK(failed.load() == 0);
  // A thread that outlives the store it read from, and one that reads a store
  // opened again on the same directory.
  std::atomic<int> step{0};
  std::unique_ptr<LmdbStore> reopened;
  std::thread lingering([&] {
    if (!store->GetSession("s").ok()) failed.fetch_add(1);
    step = 1;
    while (step.load() != 2) std::this_thread::yield();
    if (!reopened->GetSession("s").ok()) failed.fetch_add(1);
  });
  while (step.load() != 1) std::this_thread::yield();
  store.reset();
  reopened = OpenLmdb(scratch.path(), nullptr);
  step = 2;
  lingering.join();
  CHECK(failed.load() == 0);
  CHECK(reopened->GetSession("s").ok());
}

}  // TEST_SUITE("store")

TEST_SUITE("concurrency") {

TEST_CASE("the map grows while readers, writers and the sweeper run on other threads") {
  ScratchDir scratch;
  FakeClock clock;
  LmdbOptions options;
  options.sync = LmdbSync::kNoSync;  // many writes; durability is not what is tested
  options.initial_map_bytes = uint64_t{1} << 20;
  options.max_map_bytes = uint64_t{256} << 20;
  auto store = OpenLmdb(scratch.path(), &clock, options);
  constexpr int kWriters = 4;
  constexpr int kEach = 1500;
  std::atomic<int> errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        SessionRecord record = Session(fmt::format("w{}-{:05}", t, i));
        record.reason_detail = std::string(500, 'c');
        if (!store->PutSession(record).ok()) errors.fetch_add(1);
        if (!store->AcquireLease(fmt::format("w{}-{}", t, i % 50), "o", 1'000).ok()) {
          errors.fetch_add(1);
        }
      }
    });
  }
  std::thread reader([&] {
    while (!stop.load()) {
      size_t seen = 0;
      if (!store->ScanSessions([&](const SessionRecord&) { return ++seen, true; }).ok()) {
        errors.fetch_add(1);
      }
      if (!store->ListLeases().ok()) errors.fetch_add(1);
    }
  });
  std::thread sweeper([&] {
    while (!stop.load()) {
      if (!store->SweepExpired().ok()) errors.fetch_add(1);
      if (!store->MapInfo().ok()) errors.fetch_add(1);
    }
  });
  for (std::thread& writer : writers) writer.join();
  stop = true;
  reader.join();
  sweeper.join();
  CHECK(errors.load() == 0);
  auto page = store->ListSessions(0, 1);
  REQUIRE_OK(page);
  CHECK(page->total == static_cast<size_t>(kWriters * kEach));
  auto info = store->MapInfo();
  REQUIRE_OK(info);
  CHECK(info->map_bytes > options.initial_map_bytes);
  auto report = store->CheckConsistency();
  REQUIRE_OK(report);
  CHECK(report->problems.empty());
}

TEST_CASE("threads filling and emptying a full store all get ESTOREFULL or success, never worse") {
  ScratchDir scratch;
  LmdbOptions options;
  options.sync = LmdbSync::kNoSync;  // many writes; durability is not what is tested
  options.initial_map_bytes = options.max_map_bytes = uint64_t{1} << 20;
  auto store = OpenLmdb(scratch.path(), nullptr, options);
  std::atomic<int> wrong{0};
  std::atomic<int> full{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::string> mine;
      for (int i = 0; i < 1500; ++i) {
        SessionRecord record = Session(fmt::format("t{}-{:05}", t, i));
        record.reason_detail = std::string(300, 'x');
        const absl::Status status = store->PutSession(record);
        if (status.ok()) {
          mine.push_back(record.session_id);
        } else if (CodeOf(status) == ErrorCode::kStoreFull) {
          full.fetch_add(1);
          // Make room from the oldest of this thread's own.
          for (size_t k = 0; k < mine.size() / 2; ++k) {
            if (!store->DeleteSession(mine[k]).ok()) wrong.fetch_add(1);
          }
          mine.erase(mine.begin(), mine.begin() + static_cast<long>(mine.size() / 2));
        } else {
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(wrong.load() == 0);
  CHECK(full.load() > 0);
  auto report = store->CheckConsistency();
  REQUIRE_OK(report);
  CHECK(report->problems.empty());
}

TEST_CASE("readers with a small session cache never see a record older than one they saw") {
  ScratchDir scratch;
  LmdbOptions options;
  options.sync = LmdbSync::kNoSync;  // many writes; durability is not what is tested
  options.initial_map_bytes = uint64_t{1} << 20;  // grows while they read
  options.max_map_bytes = uint64_t{256} << 20;
  options.cache_entries = 6;
  auto store = OpenLmdb(scratch.path(), nullptr, options);
  LmdbOptions other_options = options;
  other_options.cache_entries = 3;
  auto other = OpenLmdb(scratch.path(), nullptr, other_options);  // its own cache
  constexpr int kSessions = 12;
  for (int i = 0; i < kSessions; ++i) {
    REQUIRE_OK(store->PutSession(Session(fmt::format("c{:02}", i))));
  }
  std::atomic<int> errors{0};
  std::atomic<int> stale{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  // Writers: bump a counter kept in two places of the record.
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      LmdbStore& target = w == 0 ? *store : *other;
      for (int i = 0; i < 300; ++i) {
        auto done = target.UpdateSession(fmt::format("c{:02}", (i * 5 + w) % kSessions),
                                         [](SessionRecord& record) {
                                           std::string& n = record.context_data["n"];
                                           n = std::to_string((n.empty() ? 0 : std::stoi(n)) + 1);
                                           record.reason_detail = n;
                                           return absl::OkStatus();
                                         });
        if (!done.ok()) errors.fetch_add(1);
      }
    });
  }
  // Something that makes the map grow meanwhile.
  threads.emplace_back([&] {
    for (int i = 0; i < 600 && !stop.load(); ++i) {
      SessionRecord filler = Session(fmt::format("f{:04}", i));
      filler.reason_detail = std::string(2000, 'f');
      if (!other->PutSession(filler).ok()) errors.fetch_add(1);
    }
  });
  // Readers, through both store objects.
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      LmdbStore& source = r == 0 ? *other : *store;
      std::map<std::string, int64_t> last_revision;
      while (!stop.load()) {
        for (int i = 0; i < kSessions; ++i) {
          const std::string id = fmt::format("c{:02}", (i + r) % kSessions);
          auto got = source.GetSession(id);
          if (!got.ok()) {
            errors.fetch_add(1);
            continue;
          }
          // Every field from one and the same write.
          const auto n = got->context_data.find("n");
          const std::string expected_detail =
              n == got->context_data.end() ? Session(id).reason_detail : n->second;
          if (got->session_id != id || got->reason_detail != expected_detail) {
            errors.fetch_add(1);
          }
          if (got->revision < last_revision[id]) stale.fetch_add(1);
          last_revision[id] = got->revision;
        }
      }
    });
  }
  for (size_t t = 0; t < 3; ++t) threads[t].join();  // the writers and the filler
  stop = true;
  for (size_t t = 3; t < threads.size(); ++t) threads[t].join();
  CHECK(errors.load() == 0);
  CHECK(stale.load() == 0);
  CHECK(store->CacheStats().entries <= 6);
  CHECK(other->CacheStats().entries <= 3);
  CHECK(store->CacheStats().hits + other->CacheStats().hits > 0);
  int64_t total = 0;
  for (int i = 0; i < kSessions; ++i) {
    auto got = store->GetSession(fmt::format("c{:02}", i));
    REQUIRE_OK(got);
    total += std::stoi(got->context_data["n"]);
  }
  CHECK(total == 600);  // no update lost
  auto info = store->MapInfo();
  REQUIRE_OK(info);
  CHECK(info->map_bytes > options.initial_map_bytes);
}

}  // TEST_SUITE("concurrency")

}  // namespace xg2g::store_test

// Store::Check's default (lib/store/check.cc) over a store that keeps
// changing while it is read, and over one whose listing really disagrees
// with its records.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/common/clock.h"
#include "lib/store/memory_store.h"
#include "lib/store/store.h"

namespace xg2g {
namespace {

SessionRecord Session(std::string id) {
  SessionRecord record;
  record.session_id = std::move(id);
  record.service_ref = "1:0:19:2B66:3F3:1:C00000:0:0:0:";
  record.state = SessionState::kNew;
  return record;
}

// Forwards to a memory store, so that Check() is the Store default. While a
// scan runs it can add a session (another writer at work), and its listing
// can report `total_offset` more sessions than there are.
class TestStore final : public Store {
 public:
  explicit TestStore(Clock* clock) : inner_(clock) {}

  int writes_during_scan = 0;  // scans that still add a session
  size_t total_offset = 0;
  int scans = 0;

  absl::Status PutSession(const SessionRecord& r) override { return inner_.PutSession(r); }
  absl::StatusOr<SessionRecord> GetSession(std::string_view id) override {
    return inner_.GetSession(id);
  }
  absl::StatusOr<SessionRecord> UpdateSession(std::string_view id, const Mutator& m) override {
    return inner_.UpdateSession(id, m);
  }
  absl::Status DeleteSession(std::string_view id) override { return inner_.DeleteSession(id); }
  absl::Status ScanSessions(const Visitor& visit) override {
    ++scans;
    bool wrote = false;
    return inner_.ScanSessions([&](const SessionRecord& record) {
      if (!wrote && writes_during_scan > 0) {
        --writes_during_scan;
        wrote = true;
        // Behind the scan's position, so this scan misses it. The visitor may
        // call back into the store (the Store contract).
        REQUIRE(inner_.PutSession(Session(fmt::format("a-written-during-scan-{}", scans))).ok());
      }
      return visit(record);
    });
  }
  absl::StatusOr<SessionPage> ListSessions(size_t offset, size_t limit) override {
    absl::StatusOr<SessionPage> page = inner_.ListSessions(offset, limit);
    if (page.ok()) page->total += total_offset;
    return page;
  }
  absl::StatusOr<IdempotencyOutcome> PutSessionWithIdempotency(const SessionRecord& r,
                                                               std::string_view key,
                                                               std::string_view fingerprint,
                                                               int64_t ttl_ms) override {
    return inner_.PutSessionWithIdempotency(r, key, fingerprint, ttl_ms);
  }
  absl::StatusOr<IdempotencyEntry> GetIdempotency(std::string_view key) override {
    return inner_.GetIdempotency(key);
  }
  absl::Status DeleteIdempotency(std::string_view key) override {
    return inner_.DeleteIdempotency(key);
  }
  absl::StatusOr<LeaseGrant> AcquireLease(std::string_view key, std::string_view owner,
                                          int64_t ttl_ms) override {
    return inner_.AcquireLease(key, owner, ttl_ms);
  }
  absl::StatusOr<LeaseGrant> RenewLease(std::string_view key, std::string_view owner,
                                        int64_t ttl_ms) override {
    return inner_.RenewLease(key, owner, ttl_ms);
  }
  absl::Status ReleaseLease(std::string_view key, std::string_view owner) override {
    return inner_.ReleaseLease(key, owner);
  }
  absl::StatusOr<LeaseInfo> GetLease(std::string_view key) override {
    return inner_.GetLease(key);
  }
  absl::StatusOr<std::vector<LeaseInfo>> ListLeases() override { return inner_.ListLeases(); }
  int64_t NowMs() const override { return inner_.NowMs(); }

 private:
  MemoryStore inner_;
};

TEST_CASE("a store that holds still and adds up is consistent") {
  FakeClock clock;
  TestStore store(&clock);
  for (int i = 0; i < 5; ++i) REQUIRE(store.PutSession(Session(fmt::format("s{}", i))).ok());
  REQUIRE(store.AcquireLease("tuner:0", "daemon-1", 30'000).ok());
  absl::StatusOr<StoreCheckReport> report = store.Check();
  REQUIRE(report.ok());
  CHECK(report->problems.empty());
  CHECK(report->sessions == 5);
  CHECK(report->leases == 1);
}

TEST_CASE("sessions written while the check reads are not reported as a problem") {
  FakeClock clock;
  TestStore store(&clock);
  for (int i = 0; i < 5; ++i) REQUIRE(store.PutSession(Session(fmt::format("s{}", i))).ok());
  store.writes_during_scan = 100;  // every scan sees another writer
  absl::StatusOr<StoreCheckReport> report = store.Check();
  REQUIRE(report.ok());
  const std::string first = report->problems.empty() ? "" : report->problems.front();
  INFO(first);
  CHECK(report->problems.empty());
  CHECK(store.scans == 3);  // tried again, then gave up on the counts

  store.writes_during_scan = 1;  // one writer, then the store holds still
  report = store.Check();
  REQUIRE(report.ok());
  CHECK(report->problems.empty());
  CHECK(report->sessions == 5 + 3 + 1);
}

TEST_CASE("a listing that disagrees with the records on every attempt is a problem") {
  FakeClock clock;
  TestStore store(&clock);
  for (int i = 0; i < 3; ++i) REQUIRE(store.PutSession(Session(fmt::format("s{}", i))).ok());
  store.total_offset = 2;  // an index entry without its record, say
  absl::StatusOr<StoreCheckReport> report = store.Check();
  REQUIRE(report.ok());
  REQUIRE(report->problems.size() == 1);
  CHECK(report->problems[0] == "the listing counts 5 sessions, a scan found 3");
}

}  // namespace
}  // namespace xg2g

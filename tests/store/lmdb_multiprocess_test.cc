// Several processes on one LMDB store (DESIGN.md §3): forked children race
// for one lease and one idempotency key per round. Exactly one wins each
// round, fencing tokens strictly increase across processes, and they keep
// increasing after every process has closed the store and new ones open it.
// Also: a map one process grows is adopted by another that has the store open.
//
// Time is a clock in shared memory that every process reads, so a lease can
// be made to expire for all of them at once without waiting.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/store/lmdb_store.h"
#include "lib/store/store.h"
#include "tests/store/contract.h"
#include "tests/store/lmdb_test_util.h"

namespace xg2g::store_test {
namespace {

constexpr int kProcesses = 6;
constexpr int kRounds = 40;
constexpr int kGenerations = 2;
constexpr int64_t kLeaseTtlMs = 10'000;
constexpr int64_t kKeyTtlMs = 1'000'000'000;

struct Outcome {
  uint64_t token = 0;        // 0: not granted
  int code = 0;              // the ErrorCode of the acquire
  bool key_stored = false;   // this process's idempotent put stored its session
  char key_session[32] = {};  // the session id the key names
  int key_code = 0;
};

// Lives in a MAP_SHARED mapping: only lock-free atomics and plain data.
struct Shared {
  std::atomic<int64_t> now_ms{1'700'000'000'000};
  std::atomic<int> arrived{0};
  std::atomic<int> generation{0};
  std::atomic<int> aborted{0};
  Outcome outcomes[kGenerations][kRounds][kProcesses];
};
static_assert(std::atomic<int64_t>::is_always_lock_free);
static_assert(std::atomic<int>::is_always_lock_free);

// Every process reads the one clock in shared memory.
class SharedClock final : public Clock {
 public:
  explicit SharedClock(std::atomic<int64_t>* now) : now_(now) {}
  int64_t NowUnixMs() const override { return now_->load(std::memory_order_acquire); }
  int64_t MonotonicMs() const override { return now_->load(std::memory_order_acquire); }
  void AdvanceMs(int64_t ms) { now_->fetch_add(ms, std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t>* now_;
};

class SharedMemory {
 public:
  SharedMemory() {
    void* memory = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(memory != MAP_FAILED);
    shared_ = new (memory) Shared;
  }
  ~SharedMemory() {
    shared_->~Shared();
    munmap(shared_, sizeof(Shared));
  }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  Shared& operator*() const { return *shared_; }
  Shared* operator->() const { return shared_; }

 private:
  Shared* shared_;
};

// A barrier for `parties` processes. False when some process gave up (or
// nobody came within a minute): the caller stops, and so does everyone.
bool Arrive(Shared& shared, int parties) {
  const int generation = shared.generation.load(std::memory_order_acquire);
  if (shared.arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == parties) {
    shared.arrived.store(0, std::memory_order_relaxed);
    shared.generation.fetch_add(1, std::memory_order_acq_rel);
    return true;
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (shared.generation.load(std::memory_order_acquire) == generation) {
    if (shared.aborted.load(std::memory_order_acquire) != 0) return false;
    if (std::chrono::steady_clock::now() > give_up) {
      shared.aborted.store(1, std::memory_order_release);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));  // polling, not waiting out time
  }
  return shared.aborted.load(std::memory_order_acquire) == 0;
}

// One racing process: opens the store itself (after the fork) and plays
// every round. Its exit code says whether it got through.
int Racer(const std::string& dir, Shared& shared, int generation, int index) {
  SharedClock clock(&shared.now_ms);
  auto opened = OpenStore("lmdb:" + dir, &clock);
  if (!opened.ok()) {
    shared.aborted.store(1);
    return 10;
  }
  std::unique_ptr<Store> store = *std::move(opened);
  const std::string owner = fmt::format("process-{}", index);
  for (int round = 0; round < kRounds; ++round) {
    if (!Arrive(shared, kProcesses)) return 11;
    Outcome& outcome = shared.outcomes[generation][round][index];
    auto grant = store->AcquireLease("tuner:0", owner, kLeaseTtlMs);
    outcome.code = static_cast<int>(CodeOf(grant.status()));
    if (grant.ok()) outcome.token = grant->fencing_token;

    const std::string mine = fmt::format("g{}-r{}-p{}", generation, round, index);
    SessionRecord record = SampleSession(mine);
    auto put = store->PutSessionWithIdempotency(record, fmt::format("key-{}-{}", generation, round),
                                                "fp", kKeyTtlMs);
    outcome.key_code = static_cast<int>(CodeOf(put.status()));
    if (put.ok()) {
      outcome.key_stored = put->stored;
      const std::string& named = put->stored ? mine : put->existing.session_id;
      named.copy(outcome.key_session, sizeof(outcome.key_session) - 1);
    }
    if (!Arrive(shared, kProcesses)) return 12;
    // The winner frees the lease for the next round: by release, or by
    // letting it expire on everyone's clock.
    if (grant.ok()) {
      if (round % 2 == 0) {
        if (!store->ReleaseLease("tuner:0", owner).ok()) return 13;
      } else {
        clock.AdvanceMs(kLeaseTtlMs);
      }
    }
  }
  return 0;
}

}  // namespace

TEST_SUITE("multiprocess") {

TEST_CASE("processes racing for one lease: one winner a round, tokens rising across restarts") {
  ScratchDir scratch;
  SharedMemory shared;
  uint64_t last_token = 0;
  for (int generation = 0; generation < kGenerations; ++generation) {
    INFO("generation ", generation);
    {
      std::vector<std::unique_ptr<ChildProcess>> racers;
      for (int index = 0; index < kProcesses; ++index) {
        racers.push_back(std::make_unique<ChildProcess>([&](const ChildProcess::Side&) {
          return Racer(scratch.path(), *shared, generation, index);
        }));
      }
      for (int index = 0; index < kProcesses; ++index) {
        CHECK_MESSAGE(racers[index]->Wait() == 0, "racer ", index, " failed");
      }
    }
    REQUIRE(shared->aborted.load() == 0);

    int bad_rounds = 0;
    for (int round = 0; round < kRounds; ++round) {
      const auto& outcomes = shared->outcomes[generation][round];
      std::vector<int> winners;
      std::vector<int> key_winners;
      int wrong = 0;
      for (int index = 0; index < kProcesses; ++index) {
        const Outcome& outcome = outcomes[index];
        if (outcome.token != 0) {
          winners.push_back(index);
        } else if (outcome.code != static_cast<int>(ErrorCode::kBusy)) {
          ++wrong;
        }
        if (outcome.key_code != 0) ++wrong;
        if (outcome.key_stored) key_winners.push_back(index);
      }
      bool good = winners.size() == 1 && key_winners.size() == 1 && wrong == 0;
      if (good) {
        const uint64_t token = outcomes[winners.front()].token;
        good = token > last_token;
        last_token = std::max(last_token, token);
        const std::string stored = outcomes[key_winners.front()].key_session;
        for (int index = 0; index < kProcesses; ++index) {
          good = good && stored == outcomes[index].key_session;
        }
      }
      if (!good) {
        ++bad_rounds;
        MESSAGE("round ", round, ": ", winners.size(), " lease winners, ", key_winners.size(),
                " key winners, ", wrong, " unexpected errors; last token ", last_token);
      }
    }
    CHECK(bad_rounds == 0);

    // Every racer has closed the store: a new process (this one) carries on
    // from the persistent counter.
    SharedClock clock(&shared->now_ms);
    auto store = OpenStore("lmdb:" + scratch.path(), &clock);
    REQUIRE(store.ok());
    auto grant = (*store)->AcquireLease("tuner:0", "parent", kLeaseTtlMs);
    REQUIRE_MESSAGE(grant.ok(), grant.status().ToString());
    CHECK(grant->fencing_token > last_token);
    last_token = grant->fencing_token;
    REQUIRE((*store)->ReleaseLease("tuner:0", "parent").ok());
    auto page = (*store)->ListSessions(0, 1);
    REQUIRE(page.ok());
    CHECK(page->total == static_cast<size_t>((generation + 1) * kRounds));
    auto store_check = dynamic_cast<LmdbStore*>(store->get())->CheckConsistency();
    REQUIRE(store_check.ok());
    CHECK(store_check->problems.empty());
  }
}

TEST_CASE("a map another process grew is adopted by a process that has the store open") {
  ScratchDir scratch;
  LmdbOptions options;
  options.sync = LmdbSync::kNoSync;  // many writes; durability is not what is tested
  options.initial_map_bytes = uint64_t{1} << 20;
  options.max_map_bytes = uint64_t{256} << 20;
  auto opened = LmdbStore::Open(scratch.path(), options);
  REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
  std::unique_ptr<LmdbStore> store = *std::move(opened);
  REQUIRE(store->PutSession(SampleSession("before")).ok());
  auto before = store->MapInfo();
  REQUIRE(before.ok());

  // The child opens the directory itself (never the parent's environment).
  constexpr int kSessions = 8000;
  ChildProcess grower([&](const ChildProcess::Side&) {
    auto child_store = LmdbStore::Open(scratch.path(), options);
    if (!child_store.ok()) return 10;
    for (int i = 0; i < kSessions; ++i) {
      SessionRecord record = SampleSession(fmt::format("grown-{:05}", i));
      record.reason_detail = std::string(500, 'g');
      if (!(*child_store)->PutSession(record).ok()) return 11;
    }
    return 0;
  });
  REQUIRE(grower.Wait() == 0);

  // The data is now far past this process's map: reading it needs the larger map.
  auto page = store->ListSessions(0, kMaxPageLimit);
  REQUIRE_MESSAGE(page.ok(), page.status().ToString());
  CHECK(page->total == kSessions + 1);
  auto last = store->GetSession(fmt::format("grown-{:05}", kSessions - 1));
  REQUIRE_MESSAGE(last.ok(), last.status().ToString());
  REQUIRE(store->PutSession(SampleSession("after")).ok());
  auto after = store->MapInfo();
  REQUIRE(after.ok());
  CHECK(after->map_bytes > before->map_bytes);
  CHECK(after->file_bytes > before->map_bytes);
}

}  // TEST_SUITE("multiprocess")

}  // namespace xg2g::store_test

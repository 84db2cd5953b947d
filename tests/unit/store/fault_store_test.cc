// The fault-injecting store wrapper over the memory store: what it forwards,
// what it fails, that a failed call leaves the inner store untouched, how it
// counts, and that modes may change while other threads call.
#include "lib/store/fault_store.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/store/memory_store.h"

namespace xg2g {
namespace {

constexpr int64_t kTtl = 60'000;

SessionRecord Session(std::string id) {
  SessionRecord record;
  record.session_id = std::move(id);
  record.service_ref = "1:0:19:2B66:3F3:1:C00000:0:0:0:";
  record.state = SessionState::kNew;
  return record;
}

std::string Message(const absl::Status& status) { return std::string(FromAbsl(status.message())); }

template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

// Checks that `status` is the injected fault for call #n of `method`.
void CheckInjected(const absl::Status& status, std::string_view method, int64_t n) {
  INFO("status: ", status.ToString());
  CHECK(CodeOf(status) == ErrorCode::kUnavailable);
  CHECK(Message(status) == fmt::format("injected fault: {} call #{}", method, n));
}

// One call of every method, each as (name, call). Runs against whatever
// the inner store holds; the answers themselves do not matter here.
struct NamedCall {
  std::string name;
  std::function<absl::Status(Store&)> call;
};

std::vector<NamedCall> EveryMethod() {
  return {
      {"PutSession", [](Store& s) { return s.PutSession(Session("p")); }},
      {"GetSession", [](Store& s) { return StatusOf(s.GetSession("p")); }},
      {"UpdateSession",
       [](Store& s) {
         return StatusOf(s.UpdateSession("p", [](SessionRecord& r) {
           r.reason_detail = "updated";
           return absl::OkStatus();
         }));
       }},
      {"DeleteSession", [](Store& s) { return s.DeleteSession("gone"); }},
      {"ScanSessions", [](Store& s) { return s.ScanSessions([](const SessionRecord&) { return true; }); }},
      {"ListSessions", [](Store& s) { return StatusOf(s.ListSessions(0, 10)); }},
      {"PutSessionWithIdempotency",
       [](Store& s) { return StatusOf(s.PutSessionWithIdempotency(Session("k"), "key", "fp", kTtl)); }},
      {"GetIdempotency", [](Store& s) { return StatusOf(s.GetIdempotency("key")); }},
      {"DeleteIdempotency", [](Store& s) { return s.DeleteIdempotency("other-key"); }},
      {"AcquireLease", [](Store& s) { return StatusOf(s.AcquireLease("tuner:0", "me", kTtl)); }},
      {"RenewLease", [](Store& s) { return StatusOf(s.RenewLease("tuner:0", "me", kTtl)); }},
      {"ReleaseLease", [](Store& s) { return s.ReleaseLease("tuner:1", "me"); }},
      {"GetLease", [](Store& s) { return StatusOf(s.GetLease("tuner:0")); }},
      {"ListLeases", [](Store& s) { return StatusOf(s.ListLeases()); }},
      {"AcquireFirstFreeLease",
       [](Store& s) {
         const std::vector<std::string_view> keys = {"tuner:0", "tuner:2"};
         return StatusOf(s.AcquireFirstFreeLease(keys, "me", kTtl));
       }},
      {"RenewLeases",
       [](Store& s) {
         const std::vector<LeaseRef> leases = {{"tuner:0", "me"}, {"tuner:1", "me"}};
         auto answers = s.RenewLeases(leases, kTtl);
         if (!answers.ok()) return answers.status();
         for (const auto& answer : *answers) {
           if (!answer.ok()) return answer.status();
         }
         return absl::OkStatus();
       }},
      {"ReleaseLeases",
       [](Store& s) {
         const std::vector<LeaseRef> leases = {{"tuner:0", "me"}, {"tuner:1", "me"}};
         auto answers = s.ReleaseLeases(leases);
         if (!answers.ok()) return answers.status();
         for (const absl::Status& answer : *answers) {
           if (!answer.ok()) return answer;
         }
         return absl::OkStatus();
       }},
  };
}

// What a caller can see of a store: sessions, one key, the leases.
std::string Snapshot(Store& store) {
  std::string out;
  auto page = store.ListSessions(0, kMaxPageLimit);
  REQUIRE(page.ok());
  for (const SessionRecord& r : page->sessions) {
    out += fmt::format("session {} rev {} detail '{}'\n", r.session_id, r.revision, r.reason_detail);
  }
  auto key = store.GetIdempotency("key");
  out += key.ok() ? fmt::format("key -> {}\n", key->session_id) : "no key\n";
  auto leases = store.ListLeases();
  REQUIRE(leases.ok());
  for (const LeaseInfo& l : *leases) {
    out += fmt::format("lease {} {} {} {}\n", l.key, l.owner, l.fencing_token, l.expires_at_ms);
  }
  return out;
}

// A small start-like scenario: several calls, each of which must succeed.
absl::Status Scenario(Store& store) {
  XG2G_ASSIGN_OR_RETURN(IdempotencyOutcome outcome,
                        store.PutSessionWithIdempotency(Session("s1"), "key", "fp", kTtl));
  if (!outcome.stored) return InternalError("key already there");
  XG2G_ASSIGN_OR_RETURN(LeaseGrant grant, store.AcquireLease("tuner:0", "s1", kTtl));
  XG2G_RETURN_IF_ERROR(StatusOf(store.UpdateSession("s1", [&](SessionRecord& r) {
    r.state = SessionState::kStarting;
    r.context_data["fencing_token"] = std::to_string(grant.fencing_token);
    return absl::OkStatus();
  })));
  return StatusOf(store.GetSession("s1"));
}

}  // namespace

TEST_SUITE("store") {

TEST_CASE("with no fault every call reaches the inner store and is counted in order") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  CHECK(store.mode() == FaultInjectingStore::Mode::kNone);
  REQUIRE(store.PutSession(Session("a")).ok());
  CHECK(inner.GetSession("a").ok());
  auto grant = store.AcquireLease("tuner:0", "a", kTtl);
  REQUIRE(grant.ok());
  auto lease = store.GetLease("tuner:0");
  REQUIRE(lease.ok());
  CHECK(lease->fencing_token == grant->fencing_token);
  CHECK(store.GetSession("missing").status().code() == inner.GetSession("missing").status().code());
  CHECK(store.NowMs() == inner.NowMs());

  CHECK(store.Calls() ==
        std::vector<std::string>{"PutSession", "AcquireLease", "GetLease", "GetSession"});
  CHECK(store.CallCount() == 4);
  CHECK(store.CallsSinceReset() == 4);
  CHECK(store.CallCount("AcquireLease") == 1);
  CHECK(store.CallCount("GetSession") == 1);
  CHECK(store.CallCount("ListLeases") == 0);
  CHECK(store.CallCount("NoSuchMethod") == 0);
  CHECK(store.FaultsInjected() == 0);
}

TEST_CASE("resetting the call counters keeps the lifetime total and the mode") {
  MemoryStore inner;
  FaultInjectingStore store(&inner);
  store.FailNthCall(3);
  CHECK(store.ListLeases().ok());
  CHECK(store.ListLeases().ok());
  store.ResetCalls();
  CHECK(store.CallsSinceReset() == 0);
  CHECK(store.Calls().empty());
  CHECK(store.CallCount("ListLeases") == 0);
  CHECK(store.CallCount() == 2);
  CheckInjected(store.ListLeases().status(), "ListLeases", 3);
  CHECK(store.CallsSinceReset() == 1);
  CHECK(store.CallCount() == 3);
}

TEST_CASE("failing the N-th call fails only that call, naming the method and the number") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  REQUIRE(store.PutSession(Session("before")).ok());  // before the mode: not numbered
  store.FailNthCall(2);
  CHECK(store.GetSession("before").ok());                                  // #1
  CheckInjected(store.PutSession(Session("second")), "PutSession", 2);     // #2
  CHECK(store.PutSession(Session("third")).ok());                          // #3
  CHECK(store.GetSession("before").ok());                                  // #4
  CHECK(inner.GetSession("second").status().code() == absl::StatusCode::kNotFound);
  CHECK(inner.GetSession("third").ok());
  CHECK(store.FaultsInjected() == 1);
}

TEST_CASE("setting a mode restarts the numbering of calls") {
  MemoryStore inner;
  FaultInjectingStore store(&inner);
  store.FailNthCall(2);
  CHECK(store.ListLeases().ok());
  store.FailNthCall(2);  // again: the next call is #1
  CHECK(store.ListLeases().ok());
  CheckInjected(store.ListLeases().status(), "ListLeases", 2);
  store.FailNone();
  for (int i = 0; i < 5; ++i) CHECK(store.ListLeases().ok());
}

TEST_CASE("failing from the N-th call on fails it and every call after it") {
  MemoryStore inner;
  FaultInjectingStore store(&inner);
  store.FailFromNthCall(3);
  CHECK(store.PutSession(Session("one")).ok());
  CHECK(store.PutSession(Session("two")).ok());
  CheckInjected(store.PutSession(Session("three")), "PutSession", 3);
  CheckInjected(store.GetSession("one").status(), "GetSession", 4);
  CheckInjected(store.ListLeases().status(), "ListLeases", 5);
  CHECK(store.FaultsInjected() == 3);
  CHECK(inner.GetSession("two").ok());
  CHECK_FALSE(inner.GetSession("three").ok());
}

TEST_CASE("a number below 1 is taken as the first call") {
  MemoryStore inner;
  FaultInjectingStore store(&inner);
  store.FailNthCall(0);
  CheckInjected(store.ListLeases().status(), "ListLeases", 1);
  CHECK(store.ListLeases().ok());
  store.FailFromNthCall(-5);
  CheckInjected(store.ListLeases().status(), "ListLeases", 1);
}

TEST_CASE("failing every write fails each writing method, leaves the store as it was, and lets reads through") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  // Something for every write to change if it got through.
  REQUIRE(inner.PutSession(Session("p")).ok());
  REQUIRE(inner.PutSession(Session("gone")).ok());
  REQUIRE(inner.PutSessionWithIdempotency(Session("other"), "other-key", "fp", kTtl).ok());
  REQUIRE(inner.AcquireLease("tuner:0", "me", kTtl).ok());
  REQUIRE(inner.AcquireLease("tuner:1", "me", kTtl).ok());
  const std::string before = Snapshot(inner);

  store.FailWrites();
  int64_t n = 0;
  int writes = 0;
  for (const NamedCall& c : EveryMethod()) {
    ++n;
    INFO("method: ", c.name);
    const absl::Status status = c.call(store);
    if (FaultInjectingStore::IsWriteMethod(c.name)) {
      ++writes;
      CheckInjected(status, c.name, n);
    } else {
      CHECK(CodeOf(status) != ErrorCode::kUnavailable);
    }
  }
  CHECK(writes == 11);
  CHECK(store.FaultsInjected() == 11);
  CHECK(Snapshot(inner) == before);
  CHECK(inner.GetIdempotency("other-key").ok());
}

TEST_CASE("the write methods are exactly the eleven that change the store") {
  for (std::string_view name : {"PutSession", "UpdateSession", "DeleteSession",
                                "PutSessionWithIdempotency", "DeleteIdempotency", "AcquireLease",
                                "AcquireFirstFreeLease", "RenewLease", "RenewLeases",
                                "ReleaseLease", "ReleaseLeases"}) {
    CHECK_MESSAGE(FaultInjectingStore::IsWriteMethod(name), std::string(name));
  }
  for (std::string_view name : {"GetSession", "ScanSessions", "ListSessions", "GetIdempotency",
                                "GetLease", "ListLeases", "NowMs", "Unknown"}) {
    CHECK_FALSE_MESSAGE(FaultInjectingStore::IsWriteMethod(name), std::string(name));
  }
}

TEST_CASE("failing every call fails every method, reads included, and nothing reaches the inner store") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  REQUIRE(inner.PutSession(Session("p")).ok());
  const std::string before = Snapshot(inner);
  bool visited = false;
  store.FailAll();
  int64_t n = 0;
  for (const NamedCall& c : EveryMethod()) {
    INFO("method: ", c.name);
    CheckInjected(c.call(store), c.name, ++n);
  }
  CheckInjected(store.ScanSessions([&](const SessionRecord&) { return visited = true; }),
                "ScanSessions", ++n);
  CHECK_FALSE(visited);
  CHECK(Snapshot(inner) == before);
  CHECK(store.CallCount() == n);
  CHECK(store.FaultsInjected() == n);
}

TEST_CASE("failing after a delay lets calls through until the clock reaches the deadline") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  store.FailAfterDelay(1'000);
  CHECK(store.PutSession(Session("early")).ok());  // #1
  clock.AdvanceMs(999);
  CHECK(store.GetSession("early").ok());  // #2
  clock.AdvanceMs(1);
  CheckInjected(store.GetSession("early").status(), "GetSession", 3);
  CheckInjected(store.PutSession(Session("late")), "PutSession", 4);
  clock.AdvanceMs(1'000'000);
  CheckInjected(store.ListLeases().status(), "ListLeases", 5);
  CHECK_FALSE(inner.GetSession("late").ok());
  store.FailNone();
  CHECK(store.PutSession(Session("late")).ok());
}

TEST_CASE("failing after a huge delay never overflows into failing at once") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  store.FailAfterDelay(std::numeric_limits<int64_t>::max());
  clock.AdvanceMs(1'000'000'000);
  CHECK(store.ListLeases().ok());
  store.FailAfterDelay(0);
  CheckInjected(store.ListLeases().status(), "ListLeases", 1);
}

TEST_CASE("failing one method fails every call of it and only it; an unknown name changes nothing") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  REQUIRE(inner.PutSession(Session("p")).ok());
  REQUIRE(inner.AcquireLease("tuner:0", "me", kTtl).ok());
  REQUIRE(inner.AcquireLease("tuner:1", "me", kTtl).ok());
  REQUIRE(store.FailMethod("ReleaseLeases").ok());
  CHECK(store.mode() == FaultInjectingStore::Mode::kFailMethod);
  int64_t n = 0;
  for (const NamedCall& c : EveryMethod()) {
    ++n;
    INFO("method: ", c.name);
    const absl::Status status = c.call(store);
    if (c.name == "ReleaseLeases") {
      CheckInjected(status, c.name, n);
    } else {
      CHECK(CodeOf(status) != ErrorCode::kUnavailable);
    }
  }
  CHECK(store.FaultsInjected() == 1);
  CHECK(inner.GetLease("tuner:0").ok());  // the refused release changed nothing

  const absl::Status unknown = store.FailMethod("ReleaseEverything");
  CHECK(CodeOf(unknown) == ErrorCode::kInvalid);
  CHECK(FromAbsl(unknown.message()).find("ReleaseEverything") != std::string_view::npos);
  CHECK(store.mode() == FaultInjectingStore::Mode::kFailMethod);
  const std::vector<LeaseRef> both = {{"tuner:0", "me"}};
  CHECK(CodeOf(store.ReleaseLeases(both).status()) == ErrorCode::kUnavailable);
}

TEST_CASE("a call hook sees every call's method before it is failed or forwarded, and may call back in") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  std::vector<std::string> seen;
  std::vector<bool> stored_when_seen;  // whether "p" was in the inner store then
  store.SetCallHook([&](std::string_view method) {
    seen.emplace_back(method);
    stored_when_seen.push_back(inner.GetSession("p").ok());
    (void)store.CallCount();  // the wrapper's lock is not held here
  });
  REQUIRE(store.PutSession(Session("p")).ok());
  REQUIRE(store.FailMethod("GetSession").ok());
  CHECK(CodeOf(store.GetSession("p").status()) == ErrorCode::kUnavailable);  // failed, still seen
  CHECK(seen == std::vector<std::string>{"PutSession", "GetSession"});
  CHECK(stored_when_seen == std::vector<bool>{false, true});
  CHECK(store.CallCount() == 2);  // the hook's own reads of the wrapper are not calls

  store.SetCallHook(nullptr);
  store.FailNone();
  REQUIRE(store.GetSession("p").ok());
  CHECK(seen.size() == 2);
}

TEST_CASE("failing at random fails about the set share of calls, the same ones for the same seed") {
  FakeClock clock;
  MemoryStore inner(&clock);
  FaultInjectingStore store(&inner, &clock);
  REQUIRE(store.PutSession(Session("p")).ok());
  // Which of `calls` GetSession calls fail, as a string of 'x' and '.'.
  auto pattern = [&](double probability, uint64_t seed, int calls) {
    store.FailRandomly(probability, seed);
    CHECK(store.mode() == FaultInjectingStore::Mode::kFailRandomly);
    std::string out;
    for (int i = 1; i <= calls; ++i) {
      const absl::Status status = store.GetSession("p").status();
      if (status.ok()) {
        out += '.';
      } else {
        CheckInjected(status, "GetSession", i);
        out += 'x';
      }
    }
    return out;
  };
  constexpr int kCalls = 4'000;
  const std::string quarter = pattern(0.25, 7, kCalls);
  const auto failed = std::count(quarter.begin(), quarter.end(), 'x');
  // 1,000 expected; the standard deviation is about 27.
  CHECK(failed > 850);
  CHECK(failed < 1'150);
  CHECK(pattern(0.25, 7, kCalls) == quarter);  // the same seed, the same faults
  CHECK(pattern(0.25, 8, kCalls) != quarter);
  CHECK(pattern(0.0, 7, 500) == std::string(500, '.'));
  CHECK(pattern(-1.0, 7, 100) == std::string(100, '.'));
  CHECK(pattern(1.0, 7, 500) == std::string(500, 'x'));
  CHECK(pattern(2.0, 7, 100) == std::string(100, 'x'));
  store.FailNone();
  CHECK(inner.GetSession("p").ok());  // nothing failed reached the inner store
  CHECK(store.GetSession("p").ok());
}

TEST_CASE("a failed update never runs the mutator and leaves the record as it was") {
  MemoryStore inner;
  FaultInjectingStore store(&inner);
  REQUIRE(store.PutSession(Session("u")).ok());
  auto before = inner.GetSession("u");
  REQUIRE(before.ok());
  store.FailNthCall(1);
  bool ran = false;
  auto result = store.UpdateSession("u", [&](SessionRecord& r) {
    ran = true;
    r.reason_detail = "half written";
    return absl::OkStatus();
  });
  CheckInjected(result.status(), "UpdateSession", 1);
  CHECK_FALSE(ran);
  auto after = inner.GetSession("u");
  REQUIRE(after.ok());
  CHECK(*after == *before);
}

TEST_CASE("mutators and visitors may call back into the wrapper") {
  MemoryStore inner;
  FaultInjectingStore store(&inner);
  REQUIRE(store.PutSession(Session("a")).ok());
  REQUIRE(store.PutSession(Session("b")).ok());
  auto updated = store.UpdateSession("a", [&](SessionRecord& r) -> absl::Status {
    XG2G_ASSIGN_OR_RETURN(SessionRecord other, store.GetSession("b"));
    r.reason_detail = "saw " + other.session_id;
    return absl::OkStatus();
  });
  REQUIRE(updated.ok());
  CHECK(updated->reason_detail == "saw b");
  int visits = 0;
  REQUIRE(store
              .ScanSessions([&](const SessionRecord& r) {
                ++visits;
                return store.GetSession(r.session_id).ok();
              })
              .ok());
  CHECK(visits == 2);
  CHECK(store.Calls() == std::vector<std::string>{"PutSession", "PutSession", "UpdateSession",
                                                  "GetSession", "ScanSessions", "GetSession",
                                                  "GetSession"});
}

TEST_CASE("a scenario's calls can be counted and then failed one by one, each leaving nothing behind") {
  // The pattern the engine's tests follow: count the calls of a clean run,
  // then fail each of them in turn on a fresh store.
  int64_t calls = 0;
  {
    MemoryStore inner;
    FaultInjectingStore store(&inner);
    REQUIRE(Scenario(store).ok());
    calls = store.CallsSinceReset();
    CHECK(store.Calls() == std::vector<std::string>{"PutSessionWithIdempotency", "AcquireLease",
                                                    "UpdateSession", "GetSession"});
  }
  REQUIRE(calls == 4);
  for (int64_t n = 1; n <= calls; ++n) {
    INFO("failing call #", n);
    FakeClock clock;
    MemoryStore inner(&clock);
    FaultInjectingStore store(&inner, &clock);
    store.FailNthCall(n);
    const absl::Status status = Scenario(store);
    CHECK(CodeOf(status) == ErrorCode::kUnavailable);
    CHECK(Message(status).find(fmt::format("call #{}", n)) != std::string::npos);
    CHECK(store.CallsSinceReset() == n);  // the scenario stopped at the fault
    CHECK(store.FaultsInjected() == 1);
  }
  // Failing a call past the end fails nothing.
  MemoryStore inner;
  FaultInjectingStore store(&inner);
  store.FailNthCall(calls + 1);
  CHECK(Scenario(store).ok());
}

TEST_CASE("the mode may change while many threads call: every call is forwarded or failed, and the counts add up") {
  MemoryStore inner;
  FaultInjectingStore store(&inner);
  constexpr int kThreads = 8;
  constexpr int kEach = 2000;
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> other_errors{0};
  std::atomic<bool> done{false};
  std::barrier start(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = fmt::format("t{}", t);
      const std::string key = fmt::format("lease-{}", t);
      start.arrive_and_wait();
      for (int i = 0; i < kEach; ++i) {
        absl::Status status;
        switch (i % 4) {
          case 0: status = store.PutSession(Session(id)); break;
          case 1: status = StatusOf(store.GetSession(id)); break;
          case 2: status = StatusOf(store.AcquireLease(key, id, kTtl)); break;
          default: status = StatusOf(store.GetLease(key)); break;
        }
        if (CodeOf(status) == ErrorCode::kUnavailable) {
          failed.fetch_add(1);
        } else if (!status.ok() && CodeOf(status) != ErrorCode::kNotFound) {
          other_errors.fetch_add(1);
        }
      }
    });
  }
  std::thread switcher([&] {
    start.arrive_and_wait();
    for (int round = 0; !done.load(); ++round) {
      switch (round % 5) {
        case 0: store.FailNone(); break;
        case 1: store.FailNthCall(3); break;
        case 2: store.FailWrites(); break;
        case 3: store.FailAll(); break;
        default: store.FailFromNthCall(50); break;
      }
      std::this_thread::yield();
    }
  });
  for (std::thread& thread : threads) thread.join();
  done = true;
  switcher.join();
  CHECK(other_errors.load() == 0);
  CHECK(store.CallCount() == int64_t{kThreads} * kEach);
  CHECK(store.CallsSinceReset() == int64_t{kThreads} * kEach);
  CHECK(store.FaultsInjected() == failed.load());
  CHECK(store.CallCount("PutSession") + store.CallCount("GetSession") +
            store.CallCount("AcquireLease") + store.CallCount("GetLease") ==
        int64_t{kThreads} * kEach);
}

}  // TEST_SUITE("store")

}  // namespace xg2g

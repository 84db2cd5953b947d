// Store faults at random under load (concurrency suite, TSan in CI): many
// clients start, replay, read and stop sessions through the handler while the
// store fails a share of its calls at random and the engine's own thread
// (here a poller) runs the simulated pipeline's reports, heartbeats, sweeps and the retries of undone steps.
//
// What must hold:
// - every answer is the one its request may get, and every store failure is
//   503 SERVICE_UNAVAILABLE with Retry-After;
// - a start answered 503 leaves nothing behind: no session for its service,
//   no lease, and its idempotency key is free again (a retry is not a replay);
// - no two live sessions ever hold the same tuner slot, and no fencing token
//   is granted twice for one slot;
// - once the store is healthy and the engine's retries have run (undo steps
//   and host reports alike), every session started is STOPPED, no lease is
//   left, and the store passes its consistency check.
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/engine/simulated_pipeline.h"
#include "lib/http/handler.h"
#include "tests/unit/http/http_test_util.h"

namespace xg2g {
namespace {

using testing::Fixture;
using testing::Get;
using testing::kReadToken;
using testing::kWriteToken;
using testing::Post;
using testing::StartBody;
using testing::StopBody;

// Problems found on worker threads, reported on the test's thread (doctest's
// assertions are not meant for other threads).
class Problems {
 public:
  void Add(std::string problem) {
    std::lock_guard<std::mutex> lock(mu_);
    if (list_.size() < 20) list_.push_back(std::move(problem));
    ++count_;
  }
  size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  std::string Summary() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const std::string& p : list_) out += p + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> list_;
  size_t count_ = 0;
};

std::string HeaderOf(const HttpResponse& r, std::string_view name) {
  for (const auto& [key, value] : r.headers) {
    if (key == name) return value;
  }
  return "";
}

// Checks a 503 is the store-failure answer; anything else is a problem.
void Check503(const HttpResponse& r, std::string_view what, Problems& problems) {
  testing::Json json(r.body);
  if (json.String("code") != "SERVICE_UNAVAILABLE" || HeaderOf(r, "Retry-After").empty()) {
    problems.Add(fmt::format("{}: 503 without the store-failure answer: {}", what, r.body));
  }
}

// Two live sessions on one slot, or a fencing token granted twice for one
// slot. `sessions` must be one snapshot of the store.
void CheckSlots(const std::vector<SessionRecord>& sessions,
                std::map<int, std::map<uint64_t, std::string>>& granted, Problems& problems) {
  std::map<std::string, std::string> live_by_slot;
  for (const SessionRecord& s : sessions) {
    auto slot = s.context_data.find("tuner_slot");
    auto token = s.context_data.find("fencing_token");
    if (slot == s.context_data.end() || token == s.context_data.end()) continue;
    auto [at, fresh] = granted[std::stoi(slot->second)].emplace(std::stoull(token->second),
                                                                s.session_id);
    if (!fresh && at->second != s.session_id) {
      problems.Add(fmt::format("tuner {} fencing token {} granted to {} and {}", slot->second,
                               token->second, at->second, s.session_id));
    }
    if (IsTerminal(s.state)) continue;
    auto [other, first] = live_by_slot.emplace(slot->second, s.session_id);
    if (!first) {
      problems.Add(fmt::format("tuner {} held by live sessions {} and {}", slot->second,
                               other->second, s.session_id));
    }
  }
}

TEST_SUITE("concurrency") {
  TEST_CASE("random store faults under load: 503 for every failure, nothing half-done, no double lease") {
    Fixture::Options options;
    options.fault_store = true;
    options.tuner_slots = "0-63";
    // Ready and stopped reports come back in the engine's next turn.
    auto pipeline = std::make_shared<SimulatedPipeline>();
    options.pipeline = pipeline;
    Fixture f(options);
    pipeline->Attach(f.engine.get());
    constexpr int kWorkers = 4;
    constexpr int kRounds = 120;  // about half the starts meet a fault
    constexpr double kFaultShare = 0.05;
    f.faults->FailRandomly(kFaultShare, /*seed=*/20261127);

    Problems problems;
    std::atomic<bool> done{false};
    std::atomic<int> accepted{0}, replays{0}, failed_starts{0}, busy{0}, failed_other{0};
    std::mutex mu;
    std::vector<std::pair<std::string, std::string>> failed;  // (service, key) answered 503
    std::set<std::string> started;                           // ids answered 202
    std::map<int, std::map<uint64_t, std::string>> granted;  // slot -> token -> id

    // The engine's thread: the clock moves 100 ms per turn, so reports,
    // heartbeats, sweeps and retries of undone steps all run during the load. Between
    // turns it checks a snapshot of the store for double leases.
    std::thread poller([&] {
      for (int turn = 0; !done.load(); ++turn) {
        f.clock.AdvanceMs(100);
        f.engine->Poll();
        if (turn % 8 == 0) {
          auto page = f.store->ListSessions(0, kMaxPageLimit);  // one snapshot, no faults
          if (page.ok()) CheckSlots(page->sessions, granted, problems);
        }
        std::this_thread::yield();
      }
    });

    std::vector<std::thread> workers;
    for (int t = 0; t < kWorkers; ++t) {
      workers.emplace_back([&, t] {
        const std::string peer = fmt::format("198.51.100.{}", t + 1);
        for (int i = 0; i < kRounds; ++i) {
          const std::string service = fmt::format("1:0:1:FAULT:{}:{}:0:0:0:0:", t, i);
          const std::string key = fmt::format("key-{}-{}", t, i);
          auto start = [&] {
            return f.Do(Post("/api/v3/intents", StartBody(service))
                            .Bearer(kWriteToken).Header("Idempotency-Key", key).From(peer));
          };
          HttpResponse r = start();
          if (r.status == 503) {
            Check503(r, "start", problems);
            failed_starts.fetch_add(1);
            std::lock_guard<std::mutex> lock(mu);
            failed.emplace_back(service, key);
            continue;
          }
          if (r.status == 409) {  // every slot held: lease releases still being retried
            if (testing::Json(r.body).String("code") != "LEASE_BUSY") {
              problems.Add(fmt::format("start: 409 but not LEASE_BUSY: {}", r.body));
            }
            busy.fetch_add(1);
            continue;
          }
          if (r.status != 202) {
            problems.Add(fmt::format("start: {} {}", r.status, r.body));
            continue;
          }
          accepted.fetch_add(1);
          const std::string id = testing::Json(r.body).String("sessionId");
          {
            std::lock_guard<std::mutex> lock(mu);
            started.insert(id);
          }
          // A retry of the same request: the same session, or a store failure.
          if (i % 3 == 0) {
            const HttpResponse again = start();
            if (again.status == 503) {
              Check503(again, "replay", problems);
              failed_other.fetch_add(1);
            } else if (again.status != 202 || testing::Json(again.body).String("sessionId") != id ||
                       again.body.find("\"replay\":true") == std::string::npos) {
              problems.Add(fmt::format("replay of {}: {} {}", id, again.status, again.body));
            } else {
              replays.fetch_add(1);
            }
          }
          const HttpResponse read = f.Do(Get("/api/v3/sessions/" + id).Bearer(kReadToken).From(peer));
          if (read.status == 503) {
            Check503(read, "read", problems);
            failed_other.fetch_add(1);
          } else if (read.status != 200 || testing::Json(read.body).String("sessionId") != id) {
            problems.Add(fmt::format("read of {}: {} {}", id, read.status, read.body));
          }
          // Stop until the store lets it through (bounded).
          bool stopped = false;
          for (int attempt = 0; attempt < 100 && !stopped; ++attempt) {
            const HttpResponse stop =
                f.Do(Post("/api/v3/intents", StopBody(id)).Bearer(kWriteToken).From(peer));
            if (stop.status == 202) {
              stopped = true;
            } else if (stop.status == 503) {
              Check503(stop, "stop", problems);
              failed_other.fetch_add(1);
            } else {
              problems.Add(fmt::format("stop of {}: {} {}", id, stop.status, stop.body));
              break;
            }
          }
          if (!stopped) problems.Add(fmt::format("stop of {} never went through", id));
        }
      });
    }
    for (auto& w : workers) w.join();
    done.store(true);
    poller.join();

    INFO(problems.Summary());
    CHECK(problems.count() == 0);
    MESSAGE(fmt::format("{} accepted, {} replays, {} starts and {} other requests answered 503, "
                        "{} busy, {} faults injected",
                        accepted.load(), replays.load(), failed_starts.load(), failed_other.load(),
                        busy.load(), f.faults->FaultsInjected()));
    // The run did what it is for: faults hit starts and the rest.
    CHECK(accepted.load() > kWorkers * kRounds / 5);
    CHECK(failed_starts.load() > 0);
    CHECK(failed_other.load() > 0);

    // The store is healthy again; two sweeps retry every undone step.
    f.faults->FailNone();
    for (int turn = 0; turn < 2; ++turn) {
      f.clock.AdvanceMs(1'000);
      f.engine->Poll();
    }
    // Nothing is left of a failed start; every session started has ended (a
    // stopped report the store failed was retried by the engine); no lease is
    // left. A start answered 409 leaves its session FAILED (R_LEASE_BUSY).
    auto page = f.store->ListSessions(0, kMaxPageLimit);
    REQUIRE(page.ok());
    REQUIRE(page->total < kMaxPageLimit);  // one page holds them all
    CheckSlots(page->sessions, granted, problems);
    CHECK(problems.count() == 0);
    std::set<std::string> services;
    size_t busy_sessions = 0;
    for (const SessionRecord& s : page->sessions) {
      services.insert(s.service_ref);
      INFO("session ", s.session_id, " in ", StateName(s.state), " ", ReasonName(s.reason));
      if (started.count(s.session_id) == 0) {
        CHECK(s.state == SessionState::kFailed);
        CHECK(s.reason == Reason::kLeaseBusy);
        ++busy_sessions;
        continue;
      }
      CHECK(s.state == SessionState::kStopped);
    }
    CHECK(busy_sessions <= static_cast<size_t>(busy.load()));
    CHECK(page->sessions.size() == started.size() + busy_sessions);
    auto leases = f.store->ListLeases();
    REQUIRE(leases.ok());
    for (const LeaseInfo& lease : *leases) MESSAGE("lease ", lease.key, " held by ", lease.owner);
    CHECK(leases->empty());
    auto check = f.store->Check();
    REQUIRE(check.ok());
    for (const std::string& problem : check->problems) MESSAGE("store check: ", problem);
    CHECK(check->problems.empty());
    // Failed starts' keys were deleted again: only the accepted ones remain.
    if (check->idempotency_keys >= 0) {
      CHECK(static_cast<size_t>(check->idempotency_keys) == started.size());
    }

    // Each failed start left its key free: the same request now starts anew.
    int retried = 0;
    for (const auto& [service, key] : failed) {
      if (retried == 20) break;
      CHECK(services.count(service) == 0);
      const HttpResponse r = f.Do(Post("/api/v3/intents", StartBody(service))
                                      .Bearer(kWriteToken).Header("Idempotency-Key", key));
      REQUIRE(r.status == 202);
      CHECK(r.body.find("\"replay\":false") != std::string::npos);
      const std::string id = testing::Json(r.body).String("sessionId");
      REQUIRE(f.Do(Post("/api/v3/intents", StopBody(id)).Bearer(kWriteToken)).status == 202);
      ++retried;
    }
    CHECK(retried > 0);
  }
}

}  // namespace
}  // namespace xg2g

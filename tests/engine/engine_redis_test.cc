// The engine on the Redis store: three engines, each with a store handle of
// its own (as three daemons on three machines would have), on one
// redis-server this binary starts itself (tests/store/redis_server.h). What
// only a shared store can show: races between engines for one tuner, a stop
// sent to an engine that does not drive the session, and a server crash in
// the middle of a load of starts and stops. The races are in
// TEST_SUITE("concurrency"); everything here runs under TSan in CI.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/engine/engine.h"
#include "lib/session/session.h"
#include "lib/store/store.h"
#include "tests/store/redis_server.h"

namespace xg2g {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using store_test::RedisServer;

constexpr std::string_view kService = "1:0:19:2B66:3F3:1:C00000:0:0:0:";

#define REQUIRE_OK(expr)                                                   \
  do {                                                                     \
    const absl::Status require_status_ = (expr);                           \
    REQUIRE_MESSAGE(require_status_.ok(), require_status_.ToString());     \
  } while (0)

int64_t ElapsedMs(steady_clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - since).count();
}

// Polls `done` with backoff until it holds or `bound` passes.
bool WaitFor(const std::function<bool()>& done, milliseconds bound) {
  const auto give_up = steady_clock::now() + bound;
  auto pause = milliseconds(1);
  while (!done()) {
    if (steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(20));
  }
  return true;
}

std::unique_ptr<Store> OpenRedis(const std::string& uri) {
  auto store = OpenStore(uri);
  REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  return *std::move(store);
}

SessionRecord Get(Store& store, const std::string& id) {
  auto record = store.GetSession(id);
  REQUIRE_MESSAGE(record.ok(), record.status().ToString());
  return *record;
}

// A host pipeline that records the commands it gets. With an engine attached
// it behaves like a well-behaved host: it reports ready from Start and
// stopped from Stop, and when the store is away it tries again a little later
// on the engine's thread (bounded), as a real host would.
class HostPipeline final : public Pipeline {
 public:
  void Attach(Engine* engine) { engine_.store(engine, std::memory_order_release); }

  absl::Status Tune(const PipelineCommand& command) override {
    std::lock_guard lock(mu_);
    tuned_.push_back(command);
    if (on_tune_) on_tune_(command);
    return absl::OkStatus();
  }
  absl::Status Start(const PipelineCommand& command) override {
    Report(command, /*stopped=*/false, 0);
    return absl::OkStatus();
  }
  void Stop(const PipelineCommand& command) override {
    {
      std::lock_guard lock(mu_);
      stopped_.push_back(command);
      if (on_stop_) on_stop_(command);
    }
    Report(command, /*stopped=*/true, 0);
  }

  // Called under the pipeline's lock, on the engine's thread.
  void OnTune(std::function<void(const PipelineCommand&)> fn) {
    std::lock_guard lock(mu_);
    on_tune_ = std::move(fn);
  }
  void OnStop(std::function<void(const PipelineCommand&)> fn) {
    std::lock_guard lock(mu_);
    on_stop_ = std::move(fn);
  }

  std::vector<PipelineCommand> Tuned() {
    std::lock_guard lock(mu_);
    return tuned_;
  }
  std::vector<PipelineCommand> Stopped() {
    std::lock_guard lock(mu_);
    return stopped_;
  }

 private:
  void Report(const PipelineCommand& command, bool stopped, int attempt) {
    Engine* engine = engine_.load(std::memory_order_acquire);
    if (engine == nullptr) return;
    const absl::Status status = stopped
                                    ? engine->ReportStopped(command.session_id, command.fencing_token)
                                    : engine->ReportReady(command.session_id, command.fencing_token);
    if (CodeOf(status) == ErrorCode::kUnavailable && attempt < 200) {
      engine->RunAfter(50, [this, command, stopped, attempt] {
        Report(command, stopped, attempt + 1);
      });
    }
  }

  std::atomic<Engine*> engine_{nullptr};
  std::mutex mu_;
  std::vector<PipelineCommand> tuned_;
  std::vector<PipelineCommand> stopped_;
  std::function<void(const PipelineCommand&)> on_tune_;
  std::function<void(const PipelineCommand&)> on_stop_;
};

// One daemon: its own store handle on the shared server, its engine and its
// host pipeline.
struct Node {
  std::unique_ptr<Store> store;
  std::shared_ptr<HostPipeline> pipeline;
  std::unique_ptr<Engine> engine;
};

// Three nodes on `uri`. With `attach`, each pipeline reports back to its
// engine by itself.
std::vector<Node> ThreeNodes(const std::string& uri, EngineOptions options, Clock* clock,
                             bool attach) {
  std::vector<Node> nodes(3);
  for (int i = 0; i < 3; ++i) {
    Node& node = nodes[i];
    node.store = OpenRedis(uri);
    node.pipeline = std::make_shared<HostPipeline>();
    options.owner_id = fmt::format("engine-{}", i);
    auto engine = Engine::Create(options, node.store.get(), clock, node.pipeline, nullptr);
    REQUIRE_MESSAGE(engine.ok(), engine.status().ToString());
    node.engine = *std::move(engine);
    if (attach) node.pipeline->Attach(node.engine.get());
  }
  return nodes;
}

StartRequest Request(std::string_view service = kService) {
  StartRequest request;
  request.service_ref = std::string(service);
  request.principal = "p-1";
  return request;
}

}  // namespace

TEST_SUITE("store") {

TEST_CASE("a stop sent to any of three engines on one Redis stops the session another one drives") {
  auto server = RedisServer::Start();
  REQUIRE_OK(server.status());
  EngineOptions options;
  options.tuner_slots = {0, 1, 2};
  options.heartbeat_ms = 50;  // the owner notices a stop within one beat
  std::vector<Node> nodes = ThreeNodes((*server)->Uri("?prefix=xg2g:eng:cross:"), options,
                                       Clock::Real(), /*attach=*/true);

  // Engine i drives service i; engine i+1 stops it.
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto started = nodes[i].engine->Start(Request(fmt::format("1:0:1:CROSS{}", i)));
    REQUIRE_OK(started.status());
    ids.push_back(started->session_id);
  }
  Store& observer = *nodes[0].store;
  for (const std::string& id : ids) {
    INFO("session ", id);
    REQUIRE(WaitFor([&] { return Get(observer, id).state == SessionState::kReady; },
                    milliseconds(10'000)));
  }
  for (int i = 0; i < 3; ++i) {
    const int stopper = (i + 1) % 3;
    INFO("owner engine-", i, ", stopped through engine-", stopper);
    auto stopped = nodes[stopper].engine->Stop(ids[i]);
    REQUIRE_OK(stopped.status());
    CHECK(stopped->state == SessionState::kStopping);
  }
  for (int i = 0; i < 3; ++i) {
    INFO("session ", ids[i], " of engine-", i);
    CHECK(WaitFor([&] { return Get(observer, ids[i]).state == SessionState::kStopped; },
                  milliseconds(10'000)));
    const SessionRecord record = Get(observer, ids[i]);
    CHECK(record.reason == Reason::kClientStop);
    CHECK(record.context_data.at("owner") == fmt::format("engine-{}", i));
    // Only the owner's host was told to stop, once, with its own token.
    const std::vector<PipelineCommand> stops = nodes[i].pipeline->Stopped();
    REQUIRE(stops.size() == 1);
    CHECK(stops[0].session_id == ids[i]);
    CHECK(stops[0].fencing_token == std::stoull(record.context_data.at("fencing_token")));
  }
  // Every lease went back.
  auto leases = observer.ListLeases();
  REQUIRE_OK(leases.status());
  CHECK(leases->empty());
  for (Node& node : nodes) CHECK(node.engine->Stats().stop_intents == 1);
}

TEST_CASE("a redis crash under a load of starts and stops on three engines loses nothing acknowledged") {
  RedisServer::Options aof;
  aof.appendonly = true;  // appendfsync always
  auto started_server = RedisServer::Start(aof);
  REQUIRE_OK(started_server.status());
  RedisServer& server = **started_server;
  constexpr int64_t kTimeoutMs = 300;
  constexpr int kSlots = 4;
  constexpr int kServices = 6;
  constexpr int kWorkers = 6;
  const std::string uri =
      server.Uri(fmt::format("?prefix=xg2g:eng:crash:&timeout_ms={}&pool=4", kTimeoutMs));

  // The hosts' shared view of the tuners: which session's pipeline runs on
  // each slot. A tune on a slot whose pipeline was not stopped is a slot held
  // twice. (Declared before the engines: their shutdown still stops hosts.)
  std::mutex board_mu;
  std::array<std::string, kSlots> board;
  std::atomic<int> double_holds{0};

  EngineOptions options;
  options.tuner_slots = {0, 1, 2, 3};
  options.heartbeat_ms = 50;
  options.sweep_interval_ms = 200;  // retries of undo steps that failed while the server was away
  std::vector<Node> nodes = ThreeNodes(uri, options, Clock::Real(), /*attach=*/true);
  for (Node& node : nodes) {
    node.pipeline->OnTune([&](const PipelineCommand& c) {
      std::lock_guard lock(board_mu);
      if (c.slot < 0 || c.slot >= kSlots) {
        double_holds.fetch_add(1);
        return;
      }
      if (!board[c.slot].empty() && board[c.slot] != c.session_id) {
        double_holds.fetch_add(1);
        MESSAGE("slot ", c.slot, " tuned for ", c.session_id, " while ", board[c.slot], " runs");
      }
      board[c.slot] = c.session_id;
    });
    node.pipeline->OnStop([&](const PipelineCommand& c) {
      std::lock_guard lock(board_mu);
      if (c.slot >= 0 && c.slot < kSlots && board[c.slot] == c.session_id) board[c.slot].clear();
    });
  }

  // 0 before the kill, 1 while down, 2 once the restarted server answered.
  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  std::atomic<int> ok_before{0}, ok_after{0}, unavailable{0}, busy{0}, wrong{0};
  std::atomic<int64_t> slowest_ms{0};
  struct Acked {
    std::string id;
    int phase_begin;
    int phase_end;
  };
  std::mutex acked_mu;
  std::vector<Acked> acked_starts;
  std::vector<std::string> acked_stops;

  const auto timed = [&](steady_clock::time_point start) {
    const int64_t took = ElapsedMs(start);
    int64_t seen = slowest_ms.load();
    while (took > seen && !slowest_ms.compare_exchange_weak(seen, took)) {
    }
  };
  const auto judge = [&](const absl::Status& status) {
    if (status.ok()) {
      (phase.load() == 0 ? ok_before : ok_after).fetch_add(1);
    } else if (CodeOf(status) == ErrorCode::kUnavailable) {
      unavailable.fetch_add(1);
      // What a client does with a 503: wait a little before trying again.
      std::this_thread::sleep_for(milliseconds(1));
    } else if (CodeOf(status) == ErrorCode::kBusy) {
      busy.fetch_add(1);
    } else {
      wrong.fetch_add(1);
      MESSAGE("unexpected: ", status.ToString());
    }
  };

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      std::minstd_rand random(static_cast<uint32_t>(w + 1));
      std::vector<std::string> running;  // started by this worker, not yet stopped
      for (int i = 0; i < 100'000 && !stop.load(); ++i) {
        if (!running.empty()) {
          // Stop the oldest through any engine: mostly one that does not
          // drive it.
          const std::string id = running.front();
          const auto start = steady_clock::now();
          auto stopped = nodes[random() % 3].engine->Stop(id);
          timed(start);
          judge(stopped.status());
          if (stopped.ok()) {
            running.erase(running.begin());
            std::lock_guard lock(acked_mu);
            acked_stops.push_back(id);
          }
        }
        StartRequest request = Request(fmt::format("1:0:1:LOAD{}", random() % kServices));
        if (i % 2 == 0) request.idempotency_key = fmt::format("w{}-{}", w, i);
        const int phase_begin = phase.load();
        const auto start = steady_clock::now();
        auto started = nodes[random() % 3].engine->Start(request);
        timed(start);
        judge(started.status());
        if (started.ok()) {
          running.push_back(started->session_id);
          std::lock_guard lock(acked_mu);
          acked_starts.push_back({started->session_id, phase_begin, phase.load()});
        }
      }
    });
  }
  const auto join = [&] {
    stop = true;
    for (std::thread& t : workers) t.join();
    workers.clear();
  };
  const auto wait_or_fail = [&](const std::function<bool()>& done, const char* what) {
    if (!WaitFor(done, milliseconds(60'000))) {
      join();
      FAIL(what);
    }
  };

  const auto began = steady_clock::now();
  wait_or_fail([&] { return ok_before.load() >= 100; }, "no progress before the kill");
  const int64_t load_ms = ElapsedMs(began);
  phase = 1;
  server.Kill();
  const auto killed = steady_clock::now();
  wait_or_fail([&] { return unavailable.load() >= 50; },
               "calls did not fail while the server was down");
  const absl::Status restarted = server.Restart();
  const auto back = steady_clock::now();
  phase = 2;
  if (!restarted.ok()) {
    join();
    FAIL(restarted.ToString());
  }
  wait_or_fail([&] { return ok_after.load() >= 1; },
               "the same engines did not recover after the restart");
  const int64_t recovery_ms = ElapsedMs(back);
  wait_or_fail([&] { return ok_after.load() >= 100; },
               "the same engines made no progress after the restart");
  join();

  MESSAGE("ok before the kill: ", ok_before.load(), " (in ", load_ms, " ms), unavailable: ",
          unavailable.load(), ", busy: ", busy.load(), ", ok after: ", ok_after.load(),
          "; down for ", std::chrono::duration_cast<milliseconds>(back - killed).count(),
          " ms, first success ", recovery_ms, " ms after the restart; acknowledged starts: ",
          acked_starts.size(), ", stops: ", acked_stops.size(), ", slowest call: ",
          slowest_ms.load(), " ms (store timeout ", kTimeoutMs, " ms)");
  CHECK(wrong.load() == 0);
  CHECK(double_holds.load() == 0);
  // A dead server refuses connections at once and a loading one answers
  // LOADING: an engine call fails well within one store timeout, and never
  // waits for more than one.
  CHECK(slowest_ms.load() < kTimeoutMs + 1'000);

  // Nothing acknowledged is lost: every started session exists, every
  // acknowledged stop shows, and tokens granted after the restart are greater
  // than those granted before it, slot by slot.
  Store& check = *nodes[0].store;
  std::array<uint64_t, kSlots> max_before{};
  std::array<uint64_t, kSlots> min_after{};
  min_after.fill(std::numeric_limits<uint64_t>::max());
  int lost = 0;
  for (const Acked& a : acked_starts) {
    auto record = check.GetSession(a.id);
    if (!record.ok()) {
      ++lost;
      MESSAGE("acknowledged start lost: ", a.id, ": ", record.status().ToString());
      continue;
    }
    const int slot = std::stoi(record->context_data.at("tuner_slot"));
    const uint64_t token = std::stoull(record->context_data.at("fencing_token"));
    REQUIRE(slot >= 0);
    REQUIRE(slot < kSlots);
    if (a.phase_end == 0) max_before[slot] = std::max(max_before[slot], token);
    if (a.phase_begin == 2) min_after[slot] = std::min(min_after[slot], token);
  }
  for (const std::string& id : acked_stops) {
    auto record = check.GetSession(id);
    if (!record.ok()) {
      ++lost;
      continue;
    }
    INFO("stopped session ", id, " is ", StateName(record->state));
    CHECK((record->state == SessionState::kStopping || IsTerminal(record->state)));
  }
  CHECK(lost == 0);
  CHECK(acked_starts.size() >= 20);
  for (int slot = 0; slot < kSlots; ++slot) {
    INFO("slot ", slot, ": last token before the kill ", max_before[slot],
         ", first after the restart ", min_after[slot]);
    if (min_after[slot] == std::numeric_limits<uint64_t>::max()) continue;
    CHECK(min_after[slot] > max_before[slot]);
  }
}

}  // TEST_SUITE("store")

TEST_SUITE("concurrency") {

TEST_CASE("three engines on one Redis: 100 concurrent starts for one service with one slot make one lease") {
  auto server = RedisServer::Start();
  REQUIRE_OK(server.status());
  // The engines' own clock only drives heartbeats and deadlines; it moves by
  // hand so that each round's teardown happens exactly when the test says.
  // Lease expiry is the server's clock, far away with the default ttl.
  FakeClock clock;
  EngineOptions options;
  options.tuner_slots = {0};
  options.background = false;
  // A generous store timeout: this case is about races, not outages, and 100
  // threads queue for the pools' connections on a slow (sanitized) build.
  std::vector<Node> nodes =
      ThreeNodes((*server)->Uri("?prefix=xg2g:eng:race:&pool=16&timeout_ms=20000"), options,
                 &clock, /*attach=*/false);

  constexpr int kThreads = 100;
  constexpr int kRounds = 3;
  uint64_t last_token = 0;
  size_t tunes = 0;
  for (int round = 0; round < kRounds; ++round) {
    INFO("round ", round);
    std::vector<absl::StatusOr<StartResult>> results(kThreads, InternalError("did not run"));
    std::vector<std::string> busy_ids(kThreads);
    std::barrier sync(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        sync.arrive_and_wait();
        results[t] = nodes[t % 3].engine->Start(Request(), &busy_ids[t]);
      });
    }
    for (std::thread& thread : threads) thread.join();

    std::vector<int> winners;
    int busy = 0;
    for (int t = 0; t < kThreads; ++t) {
      if (results[t].ok()) {
        winners.push_back(t);
      } else if (CodeOf(results[t].status()) == ErrorCode::kBusy) {
        ++busy;
      } else {
        MESSAGE("thread ", t, ": ", results[t].status().ToString());
      }
    }
    REQUIRE(winners.size() == 1);
    CHECK(busy == kThreads - 1);
    const int owner = winners.front() % 3;
    const std::string winner = results[winners.front()]->session_id;
    CHECK(results[winners.front()]->state == SessionState::kStarting);
    // Every busy answer names the one active session, and each loser's own
    // session ended FAILED / R_LEASE_BUSY.
    for (int t = 0; t < kThreads; ++t) {
      if (t == winners.front()) continue;
      CHECK(busy_ids[t] == winner);
    }
    int failed_busy = 0;
    REQUIRE_OK(nodes[0].store->ScanSessions([&](const SessionRecord& record) {
      failed_busy += record.state == SessionState::kFailed && record.reason == Reason::kLeaseBusy;
      return true;
    }));
    CHECK(failed_busy == (kThreads - 1) * (round + 1));

    // One lease of each kind, seen alike through every handle, both held by
    // the winner, with a token greater than any earlier round's.
    for (Node& node : nodes) {
      auto leases = node.store->ListLeases();
      REQUIRE_OK(leases.status());
      REQUIRE(leases->size() == 2);
      for (const LeaseInfo& lease : *leases) {
        CHECK(lease.owner == winner);
        CHECK((lease.key == "tuner:0" || lease.key == "service:" + std::string(kService)));
      }
    }
    auto tuner = nodes[0].store->GetLease("tuner:0");
    REQUIRE_OK(tuner.status());
    CHECK(tuner->fencing_token > last_token);
    last_token = tuner->fencing_token;

    // Exactly one host in the whole cluster is told to tune, with that token.
    for (Node& node : nodes) node.engine->Poll();
    ++tunes;
    size_t tuned = 0;
    for (Node& node : nodes) tuned += node.pipeline->Tuned().size();
    REQUIRE(tuned == tunes);
    const PipelineCommand command = nodes[owner].pipeline->Tuned().back();
    CHECK(command.session_id == winner);
    CHECK(command.slot == 0);
    CHECK(command.fencing_token == tuner->fencing_token);
    REQUIRE_OK(nodes[owner].engine->ReportReady(winner, command.fencing_token));

    // A stop through an engine that does not drive it: the owner tears down
    // on its next heartbeat, and both leases go back for the next round.
    const int stopper = (owner + 1 + round % 2) % 3;
    const size_t owner_stops = nodes[owner].pipeline->Stopped().size();
    const size_t stopper_stops = nodes[stopper].pipeline->Stopped().size();
    auto stopped = nodes[stopper].engine->Stop(winner);
    REQUIRE_OK(stopped.status());
    CHECK(stopped->state == SessionState::kStopping);
    nodes[stopper].engine->Poll();
    CHECK(nodes[stopper].pipeline->Stopped().size() == stopper_stops);
    clock.AdvanceMs(options.heartbeat_ms);
    for (Node& node : nodes) node.engine->Poll();
    REQUIRE(nodes[owner].pipeline->Stopped().size() == owner_stops + 1);
    REQUIRE_OK(nodes[owner].engine->ReportStopped(winner, command.fencing_token));
    CHECK(Get(*nodes[stopper].store, winner).state == SessionState::kStopped);
    auto leases = nodes[stopper].store->ListLeases();
    REQUIRE_OK(leases.status());
    CHECK(leases->empty());
  }
}

}  // TEST_SUITE("concurrency")

}  // namespace xg2g

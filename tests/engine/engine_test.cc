// The engine against the memory store with a fake clock: intents, leases,
// idempotency, deadlines, recovery, store faults. Concurrency cases are in
// TEST_SUITE("concurrency") and run under TSan in CI.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/engine/engine.h"
#include "lib/engine/simulated_pipeline.h"
#include "lib/observe/audit.h"
#include "lib/store/fault_store.h"
#include "lib/store/store.h"
#include "tests/engine/recording_pipeline.h"

namespace xg2g {
namespace {

// A host pipeline that records every command and reports nothing by itself.
using testing::RecordingPipeline;

// Collects audit lines.
struct AuditLines {
  std::mutex mu;
  std::vector<std::string> lines;
  std::shared_ptr<AuditSink> Sink() {
    return std::make_shared<CallbackAuditSink>([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu);
      lines.emplace_back(line);
    });
  }
  size_t Count(std::string_view needle) {
    std::lock_guard<std::mutex> lock(mu);
    size_t n = 0;
    for (const auto& line : lines) n += line.find(needle) != std::string::npos;
    return n;
  }
};

EngineOptions ManualOptions(std::vector<int> slots = {0, 1, 2, 3}) {
  EngineOptions options;
  options.tuner_slots = std::move(slots);
  options.owner_id = "engine-a";
  options.background = false;
  options.heartbeat_ms = 10'000;
  options.lease_ttl_ms = 30'000;
  options.sweep_interval_ms = 1'000;
  return options;
}

// A store, a clock, a pipeline and an engine on them.
struct Fixture {
  explicit Fixture(EngineOptions options = ManualOptions(), Store* shared_store = nullptr)
      : clock(1'800'000'000'000) {
    if (shared_store == nullptr) {
      auto opened = OpenStore("memory:", &clock);
      REQUIRE(opened.ok());
      owned_store = std::move(*opened);
      store = owned_store.get();
    } else {
      store = shared_store;
    }
    pipeline = std::make_shared<RecordingPipeline>();
    auto created = Engine::Create(options, store, &clock, pipeline, audit.Sink());
    REQUIRE_MESSAGE(created.ok(), std::string(FromAbsl(created.status().message())));
    engine = std::move(*created);
  }

  StartRequest Request(std::string service = "1:0:19:2B66:3F3:1:C00000:0:0:0:") {
    StartRequest r;
    r.service_ref = std::move(service);
    r.principal = "p-1";
    return r;
  }

  SessionRecord Get(const std::string& id) {
    auto record = store->GetSession(id);
    REQUIRE(record.ok());
    return *record;
  }

  void Advance(int64_t ms) {
    clock.AdvanceMs(ms);
    engine->Poll();
  }

  FakeClock clock;
  std::unique_ptr<Store> owned_store;
  Store* store = nullptr;
  std::shared_ptr<RecordingPipeline> pipeline;
  AuditLines audit;
  std::unique_ptr<Engine> engine;
};

size_t LeaseCount(Store* store) {
  auto leases = store->ListLeases();
  REQUIRE(leases.ok());
  return leases->size();
}

TEST_CASE("slot specs parse ranges and lists and name the bad part") {
  CHECK(*ParseSlotSpec("0-3") == std::vector<int>{0, 1, 2, 3});
  CHECK(*ParseSlotSpec("0,2,5") == std::vector<int>{0, 2, 5});
  CHECK(*ParseSlotSpec("0") == std::vector<int>{0});
  CHECK(*ParseSlotSpec("0-1,4") == std::vector<int>{0, 1, 4});
  for (const char* bad : {"", ",", "0,", "a", "3-1", "0,0", "1-2,2", "-1", "0-", "99999", " 1"}) {
    auto parsed = ParseSlotSpec(bad);
    CHECK_MESSAGE(CodeOf(parsed.status()) == ErrorCode::kInvalid, bad);
  }
  CHECK(FromAbsl(ParseSlotSpec("0,x7").status().message()).find("'x7'") != std::string_view::npos);
  CHECK(FromAbsl(ParseSlotSpec("3-1").status().message()).find("'3-1'") != std::string_view::npos);
}

TEST_CASE("an engine refuses options that cannot work") {
  FakeClock clock;
  auto store = OpenStore("memory:", &clock);
  REQUIRE(store.ok());
  EngineOptions options = ManualOptions();
  options.heartbeat_ms = options.lease_ttl_ms;
  CHECK(CodeOf(Engine::Create(options, store->get(), &clock, nullptr, nullptr).status()) ==
        ErrorCode::kInvalid);
  options = ManualOptions({});
  CHECK(CodeOf(Engine::Create(options, store->get(), &clock, nullptr, nullptr).status()) ==
        ErrorCode::kInvalid);
  CHECK(CodeOf(Engine::Create(ManualOptions(), nullptr, &clock, nullptr, nullptr).status()) ==
        ErrorCode::kInvalid);
}

TEST_CASE("a start takes the first free slot, records slot and token, then tunes and starts once") {
  Fixture f;
  auto started = f.engine->Start(f.Request());
  REQUIRE(started.ok());
  CHECK(started->state == SessionState::kStarting);
  CHECK_FALSE(started->replay);
  CHECK_FALSE(started->correlation_id.empty());
  SessionRecord record = f.Get(started->session_id);
  CHECK(record.state == SessionState::kStarting);
  CHECK(record.context_data["tuner_slot"] == "0");
  CHECK(record.context_data["owner"] == "engine-a");
  CHECK(std::stoull(record.context_data["fencing_token"]) > 0);
  CHECK(record.principal == "p-1");
  CHECK(f.pipeline->Tunes() == 0);  // host calls run on the engine's turn, not the caller's
  f.engine->Poll();
  REQUIRE(f.pipeline->Tunes() == 1);
  CHECK(f.pipeline->tuned[0].slot == 0);
  CHECK(f.pipeline->tuned[0].fencing_token == std::stoull(record.context_data["fencing_token"]));
  CHECK(f.pipeline->started.size() == 1);

  REQUIRE(f.engine->ReportReady(started->session_id, f.pipeline->tuned[0].fencing_token).ok());
  CHECK(f.Get(started->session_id).state == SessionState::kReady);
  CHECK(f.audit.Count("\"session_start\"") == 1);

  // The next service gets the next slot.
  auto second = f.engine->Start(f.Request("1:0:1:AAAA"));
  REQUIRE(second.ok());
  CHECK(f.Get(second->session_id).context_data["tuner_slot"] == "1");
}

TEST_CASE("bad start requests are invalid, name the field and store nothing") {
  Fixture f;
  StartRequest r = f.Request("");
  auto status = f.engine->Start(r).status();
  CHECK(CodeOf(status) == ErrorCode::kInvalid);
  CHECK(FromAbsl(status.message()).find("serviceRef") != std::string_view::npos);
  r = f.Request();
  r.profile = "bad profile";
  CHECK(FromAbsl(f.engine->Start(r).status().message()).find("profile") != std::string_view::npos);
  r = f.Request();
  r.idempotency_key = "has space";
  CHECK(FromAbsl(f.engine->Start(r).status().message()).find("idempotencyKey") !=
        std::string_view::npos);
  r = f.Request();
  r.correlation_id = std::string(200, 'c');
  CHECK(FromAbsl(f.engine->Start(r).status().message()).find("correlationId") !=
        std::string_view::npos);
  r = f.Request();
  r.params[""] = "x";
  CHECK(CodeOf(f.engine->Start(r).status()) == ErrorCode::kInvalid);
  CHECK(f.store->ListSessions(0, 10)->total == 0);
  CHECK(LeaseCount(f.store) == 0);
}

TEST_CASE("a second start for an active service is busy and names the active session") {
  Fixture f;
  auto first = f.engine->Start(f.Request());
  REQUIRE(first.ok());
  std::string busy_id;
  auto second = f.engine->Start(f.Request(), &busy_id);
  REQUIRE(CodeOf(second.status()) == ErrorCode::kBusy);
  CHECK(busy_id == first->session_id);
  CHECK(FromAbsl(second.status().message()).find(first->session_id) != std::string_view::npos);
  CHECK(f.engine->Stats().busy == 1);
  CHECK(LeaseCount(f.store) == 2);  // the first session's service and tuner leases only
}

TEST_CASE("no free tuner fails the new session with R_LEASE_BUSY and keeps no lease for it") {
  Fixture f(ManualOptions({0}));
  auto first = f.engine->Start(f.Request("1:0:1:A"));
  REQUIRE(first.ok());
  auto second = f.engine->Start(f.Request("1:0:1:B"));
  REQUIRE(CodeOf(second.status()) == ErrorCode::kBusy);
  CHECK(FromAbsl(second.status().message()).find("no free tuner") != std::string_view::npos);
  auto page = f.store->ListSessions(0, 10);
  REQUIRE(page.ok());
  REQUIRE(page->total == 2);
  int failed_busy = 0;
  for (const auto& s : page->sessions) {
    failed_busy += s.state == SessionState::kFailed && s.reason == Reason::kLeaseBusy;
  }
  CHECK(failed_busy == 1);
  CHECK(LeaseCount(f.store) == 2);
  CHECK(f.store->GetLease("service:1:0:1:B").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("an idempotent retry replays the first session; another request with the key conflicts") {
  Fixture f;
  StartRequest r = f.Request();
  r.idempotency_key = "key-1";
  r.params = {{"b", "2"}, {"a", "1"}};
  auto first = f.engine->Start(r);
  REQUIRE(first.ok());
  r.correlation_id = "another-correlation";  // not part of the fingerprint
  auto again = f.engine->Start(r);
  REQUIRE(again.ok());
  CHECK(again->replay);
  CHECK(again->session_id == first->session_id);
  CHECK(f.engine->Stats().replays == 1);

  StartRequest other = r;
  other.profile = "hd";
  CHECK(CodeOf(f.engine->Start(other).status()) == ErrorCode::kConflict);
  other = r;
  other.params["a"] = "changed";
  CHECK(CodeOf(f.engine->Start(other).status()) == ErrorCode::kConflict);

  // The key is scoped to the principal: another principal starts its own.
  StartRequest stranger = f.Request("1:0:1:OTHER");
  stranger.idempotency_key = "key-1";
  stranger.principal = "p-2";
  auto theirs = f.engine->Start(stranger);
  REQUIRE(theirs.ok());
  CHECK_FALSE(theirs->replay);
  f.engine->Poll();
  CHECK(f.pipeline->Tunes() == 2);
}

TEST_CASE("a key whose first session is still NEW is in flight and names that session") {
  Fixture f;
  StartRequest r = f.Request();
  r.idempotency_key = "slow";
  auto probe = f.engine->Start(r);
  REQUIRE(probe.ok());
  // Put the record back into the state a concurrent first request is in
  // between storing the session and taking its leases.
  REQUIRE(f.store->UpdateSession(probe->session_id, [](SessionRecord& s) {
                   s.state = SessionState::kNew;  // as if still being created
                   return absl::OkStatus();
                 })
              .ok());
  std::string related;
  auto retry = f.engine->Start(r, &related);
  CHECK(CodeOf(retry.status()) == ErrorCode::kInFlight);
  CHECK(related == probe->session_id);
}

TEST_CASE("a stop of a NEW session ends it at once; STARTING and READY go through STOPPING") {
  Fixture f;
  // READY -> STOPPING -> host stop -> STOPPED, leases released.
  auto started = f.engine->Start(f.Request());
  REQUIRE(started.ok());
  f.engine->Poll();
  const uint64_t token = f.pipeline->tuned.at(0).fencing_token;
  REQUIRE(f.engine->ReportReady(started->session_id, token).ok());
  auto stopped = f.engine->Stop(started->session_id);
  REQUIRE(stopped.ok());
  CHECK(stopped->state == SessionState::kStopping);
  f.engine->Poll();
  CHECK(f.pipeline->Stops() == 1);
  REQUIRE(f.engine->ReportStopped(started->session_id, token).ok());
  SessionRecord record = f.Get(started->session_id);
  CHECK(record.state == SessionState::kStopped);
  CHECK(record.reason == Reason::kClientStop);
  CHECK(LeaseCount(f.store) == 0);
  CHECK(f.audit.Count("\"session_stop\"") == 1);

  // Stop twice is harmless and answers the current state.
  auto twice = f.engine->Stop(started->session_id);
  REQUIRE(twice.ok());
  CHECK(twice->state == SessionState::kStopped);
  CHECK(f.pipeline->Stops() == 1);

  // A NEW session (created outside the engine) stops without the host.
  SessionRecord fresh;
  fresh.session_id = "fresh";
  fresh.service_ref = "1:0:1:NEW";
  REQUIRE(f.store->PutSession(fresh).ok());
  auto stop_new = f.engine->Stop("fresh");
  REQUIRE(stop_new.ok());
  CHECK(stop_new->state == SessionState::kStopped);

  CHECK(CodeOf(f.engine->Stop("no-such-session").status()) == ErrorCode::kNotFound);
  CHECK(CodeOf(f.engine->Stop("../bad").status()) == ErrorCode::kInvalid);
}

TEST_CASE("a stop's reason survives a later failure report") {
  Fixture f;
  auto started = f.engine->Start(f.Request());
  REQUIRE(started.ok());
  f.engine->Poll();
  const uint64_t token = f.pipeline->tuned.at(0).fencing_token;
  REQUIRE(f.engine->ReportReady(started->session_id, token).ok());
  REQUIRE(f.engine->Stop(started->session_id).ok());
  REQUIRE(f.engine->ReportFailed(started->session_id, token, Reason::kProcessEnded, "killed").ok());
  SessionRecord record = f.Get(started->session_id);
  CHECK(record.state == SessionState::kStopped);
  CHECK(record.reason == Reason::kClientStop);
  CHECK(LeaseCount(f.store) == 0);
}

TEST_CASE("host failures and stale reports") {
  Fixture f;
  f.pipeline->tune_result = absl::UnavailableError("no signal");
  auto started = f.engine->Start(f.Request());
  REQUIRE(started.ok());
  f.engine->Poll();
  SessionRecord record = f.Get(started->session_id);
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kTuneFailed);
  CHECK(record.reason_detail == "no signal");
  CHECK(LeaseCount(f.store) == 0);
  CHECK(f.pipeline->started.empty());

  f.pipeline->tune_result = absl::OkStatus();
  auto next = f.engine->Start(f.Request());
  REQUIRE(next.ok());
  f.engine->Poll();
  const uint64_t token = f.pipeline->tuned.back().fencing_token;
  CHECK(CodeOf(f.engine->ReportReady(next->session_id, token + 1)) == ErrorCode::kConflict);
  CHECK(f.Get(next->session_id).state == SessionState::kStarting);
  // A pipeline that ends on its own fails the session.
  REQUIRE(f.engine->ReportReady(next->session_id, token).ok());
  REQUIRE(f.engine->ReportStopped(next->session_id, token).ok());
  record = f.Get(next->session_id);
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kProcessEnded);
}

TEST_CASE("deadlines: STARTING times out, idle READY stops, STOPPING ends, retention deletes") {
  EngineOptions options = ManualOptions();
  options.start_deadline_ms = 5'000;
  options.stop_deadline_ms = 7'000;
  options.idle_timeout_ms = 20'000;
  options.retention_ms = 60'000;
  Fixture f(options);

  auto stuck = f.engine->Start(f.Request("1:0:1:STUCK"));
  REQUIRE(stuck.ok());
  f.engine->Poll();
  f.Advance(4'000);
  CHECK(f.Get(stuck->session_id).state == SessionState::kStarting);
  f.Advance(2'000);
  SessionRecord record = f.Get(stuck->session_id);
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kTuneTimeout);
  CHECK(f.pipeline->Stops() == 1);  // the host is told to give up
  CHECK(LeaseCount(f.store) == 0);

  auto idle = f.engine->Start(f.Request("1:0:1:IDLE"));
  REQUIRE(idle.ok());
  f.engine->Poll();
  const uint64_t token = f.pipeline->tuned.back().fencing_token;
  REQUIRE(f.engine->ReportReady(idle->session_id, token).ok());
  f.Advance(15'000);
  REQUIRE(f.engine->Touch(idle->session_id).ok());  // activity pushes the idle deadline
  f.Advance(15'000);
  CHECK(f.Get(idle->session_id).state == SessionState::kReady);
  f.Advance(6'000);
  record = f.Get(idle->session_id);
  CHECK(record.state == SessionState::kStopping);
  CHECK(record.reason == Reason::kIdleTimeout);
  CHECK(f.pipeline->Stops() == 2);
  // The host never confirms: the stop deadline ends it.
  f.Advance(8'000);
  record = f.Get(idle->session_id);
  CHECK(record.state == SessionState::kStopped);
  CHECK(record.reason == Reason::kIdleTimeout);
  CHECK(LeaseCount(f.store) == 0);

  // Terminal sessions go after the retention period.
  f.Advance(61'000);
  CHECK(CodeOf(f.store->GetSession(stuck->session_id).status()) == ErrorCode::kNotFound);
  CHECK(CodeOf(f.store->GetSession(idle->session_id).status()) == ErrorCode::kNotFound);
  CHECK(f.engine->Stats().retention_deletes == 2);
  CHECK(f.engine->Stats().deadline_expiries >= 3);
}

TEST_CASE("a NEW session past its deadline fails with R_TUNE_TIMEOUT") {
  Fixture f;
  SessionRecord orphan;
  orphan.session_id = "orphan";
  orphan.service_ref = "1:0:1:ORPHAN";
  orphan.deadline_unix_ms = f.clock.NowUnixMs() + 1'000;
  REQUIRE(f.store->PutSession(orphan).ok());
  f.Advance(2'000);
  SessionRecord record = f.Get("orphan");
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kTuneTimeout);
}

TEST_CASE("a lost lease fails the session with R_LEASE_EXPIRED and stops the host") {
  Fixture f;
  auto started = f.engine->Start(f.Request());
  REQUIRE(started.ok());
  f.engine->Poll();
  REQUIRE(f.engine->ReportReady(started->session_id, f.pipeline->tuned[0].fencing_token).ok());
  // Someone else's view of the world: the tuner lease is gone.
  REQUIRE(f.store->ReleaseLease("tuner:0", started->session_id).ok());
  f.Advance(10'000);  // one heartbeat
  SessionRecord record = f.Get(started->session_id);
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kLeaseExpired);
  CHECK(f.pipeline->Stops() == 1);
  CHECK(f.engine->Stats().lease_losses == 1);
  CHECK(LeaseCount(f.store) == 0);
}

TEST_CASE("heartbeats keep leases alive past their ttl") {
  Fixture f;
  auto started = f.engine->Start(f.Request());
  REQUIRE(started.ok());
  f.engine->Poll();
  REQUIRE(f.engine->ReportReady(started->session_id, f.pipeline->tuned[0].fencing_token).ok());
  for (int i = 0; i < 10; ++i) f.Advance(10'000);  // 100 s, lease ttl 30 s
  CHECK(f.Get(started->session_id).state == SessionState::kReady);
  CHECK(LeaseCount(f.store) == 2);
}

TEST_CASE("any engine can stop a session another engine drives") {
  FakeClock shared_clock;
  auto store = OpenStore("memory:", &shared_clock);
  REQUIRE(store.ok());
  EngineOptions a_options = ManualOptions();
  Fixture a(a_options, store->get());
  EngineOptions b_options = ManualOptions();
  b_options.owner_id = "engine-b";
  Fixture b(b_options, store->get());

  auto started = a.engine->Start(a.Request());
  REQUIRE(started.ok());
  a.engine->Poll();
  const uint64_t token = a.pipeline->tuned.at(0).fencing_token;
  REQUIRE(a.engine->ReportReady(started->session_id, token).ok());

  auto stopped = b.engine->Stop(started->session_id);
  REQUIRE(stopped.ok());
  CHECK(stopped->state == SessionState::kStopping);
  b.engine->Poll();
  CHECK(b.pipeline->Stops() == 0);  // b does not drive it
  CHECK(a.pipeline->Stops() == 0);
  a.Advance(10'000);  // a's next heartbeat sees the stop
  CHECK(a.pipeline->Stops() == 1);
  REQUIRE(a.engine->ReportStopped(started->session_id, token).ok());
  CHECK(a.Get(started->session_id).state == SessionState::kStopped);
}

TEST_CASE("start-up recovery fails sessions whose lease is gone, or re-queues them") {
  FakeClock clock;
  auto store = OpenStore("memory:", &clock);
  REQUIRE(store.ok());
  // Left behind by a process that died: STARTING and READY without leases.
  for (const auto& [id, state] :
       {std::pair<std::string, SessionState>{"dead-starting", SessionState::kStarting},
        {"dead-ready", SessionState::kReady}}) {
    SessionRecord r;
    r.session_id = id;
    r.service_ref = "1:0:1:" + id;
    r.state = state;
    r.context_data["tuner_slot"] = "1";
    r.context_data["owner"] = "engine-gone";
    REQUIRE((*store)->PutSession(r).ok());
  }
  SUBCASE("failed") {
    Fixture f(ManualOptions(), store->get());
    CHECK(f.engine->Stats().recovered == 2);
    for (const char* id : {"dead-starting", "dead-ready"}) {
      SessionRecord r = f.Get(id);
      CHECK(r.state == SessionState::kFailed);
      CHECK(r.reason == Reason::kLeaseExpired);
    }
    f.engine->Poll();
    CHECK(f.pipeline->Tunes() == 0);
  }
  SUBCASE("re-queued") {
    EngineOptions options = ManualOptions();
    options.requeue_on_recovery = true;
    Fixture f(options, store->get());
    CHECK(f.engine->Stats().recovered == 2);
    SessionRecord again = f.Get("dead-starting");
    CHECK(again.state == SessionState::kStarting);
    CHECK(again.context_data["owner"] == "engine-a");
    CHECK(f.store->GetLease("tuner:0")->owner == "dead-starting");
    CHECK(f.Get("dead-ready").state == SessionState::kFailed);
    f.engine->Poll();
    CHECK(f.pipeline->Tunes() == 1);
  }
}

TEST_CASE("a live session of another engine is left alone by recovery") {
  FakeClock clock;
  auto store = OpenStore("memory:", &clock);
  REQUIRE(store.ok());
  EngineOptions a_options = ManualOptions();
  Fixture a(a_options, store->get());
  auto started = a.engine->Start(a.Request());
  REQUIRE(started.ok());
  EngineOptions b_options = ManualOptions();
  b_options.owner_id = "engine-b";
  Fixture b(b_options, store->get());
  CHECK(b.engine->Stats().recovered == 0);
  CHECK(b.Get(started->session_id).state == SessionState::kStarting);
}

TEST_CASE("destroying the engine drains: sessions end and leases are released") {
  FakeClock clock;
  auto store = OpenStore("memory:", &clock);
  REQUIRE(store.ok());
  std::string ready_id, starting_id;
  auto pipeline = std::make_shared<RecordingPipeline>();
  {
    auto engine = Engine::Create(ManualOptions(), store->get(), &clock, pipeline, nullptr);
    REQUIRE(engine.ok());
    StartRequest r;
    r.service_ref = "1:0:1:R";
    auto ready = (*engine)->Start(r);
    REQUIRE(ready.ok());
    (*engine)->Poll();
    REQUIRE((*engine)->ReportReady(ready->session_id, pipeline->tuned[0].fencing_token).ok());
    r.service_ref = "1:0:1:S";
    auto starting = (*engine)->Start(r);
    REQUIRE(starting.ok());
    ready_id = ready->session_id;
    starting_id = starting->session_id;
  }
  CHECK((*store)->GetSession(ready_id)->state == SessionState::kStopped);
  CHECK((*store)->GetSession(starting_id)->state == SessionState::kCancelled);
  CHECK(pipeline->Stops() == 1);  // only the one the host had started
  CHECK((*store)->ListLeases()->empty());
}

TEST_CASE("the simulated pipeline drives a session to READY and back to STOPPED") {
  FakeClock clock;
  auto store = OpenStore("memory:", &clock);
  REQUIRE(store.ok());
  SimulatedPipelineOptions sim;
  sim.tune_delay_ms = 300;
  sim.ready_delay_ms = 200;
  sim.stop_delay_ms = 100;
  auto pipeline = std::make_shared<SimulatedPipeline>(sim);
  auto engine = Engine::Create(ManualOptions(), store->get(), &clock, pipeline, nullptr);
  REQUIRE(engine.ok());
  pipeline->Attach(engine->get());
  StartRequest r;
  r.service_ref = "1:0:1:SIM";
  auto started = (*engine)->Start(r);
  REQUIRE(started.ok());
  (*engine)->Poll();
  clock.AdvanceMs(400);
  (*engine)->Poll();
  CHECK((*store)->GetSession(started->session_id)->state == SessionState::kStarting);
  clock.AdvanceMs(100);
  (*engine)->Poll();
  CHECK((*store)->GetSession(started->session_id)->state == SessionState::kReady);
  REQUIRE((*engine)->Stop(started->session_id).ok());
  (*engine)->Poll();
  clock.AdvanceMs(100);
  (*engine)->Poll();
  CHECK((*store)->GetSession(started->session_id)->state == SessionState::kStopped);
  CHECK(pipeline->tune_calls() == 1);
  CHECK(pipeline->stop_calls() == 1);
}

// An engine on a memory store behind the fault-injecting wrapper, with a
// recording pipeline and a fake clock.
struct FaultyFixture {
  explicit FaultyFixture(std::vector<int> slots) {
    REQUIRE(opened.ok());
    inner = opened->get();
    auto created = Engine::Create(ManualOptions(std::move(slots)), &faults, &clock, pipeline,
                                  nullptr);
    REQUIRE(created.ok());
    engine = std::move(*created);
  }
  FakeClock clock;
  absl::StatusOr<std::unique_ptr<Store>> opened = OpenStore("memory:", &clock);
  Store* inner = nullptr;
  FaultInjectingStore faults{opened.ok() ? opened->get() : nullptr, &clock};
  std::shared_ptr<RecordingPipeline> pipeline = std::make_shared<RecordingPipeline>();
  std::unique_ptr<Engine> engine;

  // Starts one more session, on `service`; its stored record.
  SessionRecord StartOne(std::string service) {
    StartRequest r;
    r.service_ref = std::move(service);
    auto started = engine->Start(r);
    REQUIRE(started.ok());
    auto record = inner->GetSession(started->session_id);
    REQUIRE(record.ok());
    return *record;
  }

  // Starts `count` sessions, each on a service of its own; their ids.
  std::vector<std::string> StartServices(int count, std::string_view prefix) {
    std::vector<std::string> ids;
    StartRequest r;
    for (int i = 0; i < count; ++i) {
      r.service_ref = fmt::format("1:0:1:{}{}", prefix, i);
      auto started = engine->Start(r);
      REQUIRE(started.ok());
      ids.push_back(started->session_id);
    }
    return ids;
  }
};

TEST_CASE("a store failure at any step of a start leaves nothing behind") {
  FaultyFixture f({0, 1});

  StartRequest r;
  r.service_ref = "1:0:1:FAULT";
  r.principal = "p";
  r.idempotency_key = "k";

  size_t tunes = 0;
  // A successful start, run through to the end and removed again.
  auto cycle = [&](const std::string& id) {
    f.engine->Poll();
    ++tunes;
    REQUIRE(f.pipeline->Tunes() == tunes);
    REQUIRE(f.engine->Stop(id).ok());
    f.engine->Poll();
    REQUIRE(f.engine->ReportStopped(id, f.pipeline->tuned.back().fencing_token).ok());
    REQUIRE(f.inner->DeleteSession(id).ok());
    REQUIRE(f.inner->ListLeases()->empty());
  };

  // Count the store calls of a clean start.
  f.faults.ResetCalls();
  auto clean = f.engine->Start(r);
  REQUIRE(clean.ok());
  const int64_t calls = f.faults.CallsSinceReset();
  REQUIRE(calls >= 4);
  cycle(clean->session_id);

  int run = 0;
  auto expect_nothing_left = [&](const char* mode, int64_t n) {
    INFO(mode << " n=" << n);
    CHECK(f.inner->ListSessions(0, 1000)->total == 0);
    CHECK(f.inner->ListLeases()->empty());
    f.engine->Poll();
    CHECK(f.pipeline->Tunes() == tunes);  // no host call for a failed start
  };
  for (int64_t n = 1; n <= calls; ++n) {
    StartRequest attempt = r;
    attempt.idempotency_key = "k" + std::to_string(++run);
    f.faults.FailNthCall(n);
    auto result = f.engine->Start(attempt);
    CHECK_MESSAGE(CodeOf(result.status()) == ErrorCode::kUnavailable, "fail call " << n);
    f.faults.FailNone();
    expect_nothing_left("fail-nth", n);
    // The key is free again: the same request now succeeds and is not a replay.
    auto retry = f.engine->Start(attempt);
    REQUIRE(retry.ok());
    CHECK_FALSE(retry->replay);
    cycle(retry->session_id);
  }
  for (int64_t n = 1; n <= calls; ++n) {
    // The store goes down at call n and stays down: the undo fails too and is
    // retried once the store is back.
    StartRequest attempt = r;
    attempt.idempotency_key = "down" + std::to_string(n);
    f.faults.FailFromNthCall(n);
    CHECK(CodeOf(f.engine->Start(attempt).status()) == ErrorCode::kUnavailable);
    f.faults.FailNone();
    f.clock.AdvanceMs(1'000);  // the sweeper's turn retries the undo
    f.engine->Poll();
    expect_nothing_left("fail-from-nth", n);
  }
  f.faults.FailWrites();
  CHECK(CodeOf(f.engine->Start(r).status()) == ErrorCode::kUnavailable);
  f.faults.FailNone();
  expect_nothing_left("fail-writes", 0);
  f.faults.FailAfterDelay(50);
  f.clock.AdvanceMs(50);
  CHECK(CodeOf(f.engine->Start(r).status()) == ErrorCode::kUnavailable);
  f.faults.FailNone();
  expect_nothing_left("fail-after-delay", 0);
  CHECK(f.engine->Stats().store_failures >= static_cast<uint64_t>(2 * calls + 2));
}

TEST_CASE("a start takes the first free tuner slot in one store step, with no listing and no busy slot tried") {
  FaultyFixture f({0, 1, 2, 3, 4, 5, 6, 7});
  const std::vector<std::string> ids = f.StartServices(6, "SCAN");
  REQUIRE(f.engine->Stop(ids[2]).ok());  // slot 2 free again, 6 and 7 never taken
  f.faults.ResetCalls();
  const SessionRecord next = f.StartOne("1:0:1:SCAN-NEXT");
  CHECK(next.context_data.at("tuner_slot") == "2");
  CHECK(f.faults.CallCount("AcquireFirstFreeLease") == 1);
  CHECK(f.faults.CallCount("ListLeases") == 0);
  CHECK(f.faults.CallCount("AcquireLease") == 1);  // the service lease only
}

TEST_CASE("a heartbeat renews the leases of every live session in one store call; a lost one fails its session") {
  FaultyFixture f({0, 1, 2});
  const std::vector<std::string> ids = f.StartServices(3, "BEAT");
  f.engine->Poll();  // the host starts them
  auto before = f.inner->GetLease("tuner:1");
  REQUIRE(before.ok());
  // The second session's tuner lease goes behind its back.
  REQUIRE(f.inner->ReleaseLease("tuner:1", ids[1]).ok());
  f.faults.ResetCalls();
  f.clock.AdvanceMs(10'000);  // the heartbeat interval
  f.engine->Poll();
  CHECK(f.faults.CallCount("RenewLeases") == 1);
  CHECK(f.faults.CallCount("RenewLease") == 0);
  for (int i : {0, 2}) {
    auto lease = f.inner->GetLease(fmt::format("tuner:{}", i));
    REQUIRE(lease.ok());
    CHECK(lease->owner == ids[i]);
    CHECK(lease->expires_at_ms > before->expires_at_ms);  // renewed
    auto record = f.inner->GetSession(ids[i]);
    REQUIRE(record.ok());
    CHECK_FALSE(IsTerminal(record->state));
  }
  auto lost = f.inner->GetSession(ids[1]);
  REQUIRE(lost.ok());
  CHECK(lost->state == SessionState::kFailed);
  CHECK(f.engine->Stats().lease_losses == 1);
}

TEST_CASE("an ended session's two leases are released in one store call; a refused one is retried") {
  FaultyFixture f({0, 1, 2, 3});
  const std::vector<std::string> ids = f.StartServices(3, "BATCH");
  f.engine->Poll();  // the host starts them
  REQUIRE(f.pipeline->tuned.size() == 3);
  for (const PipelineCommand& command : f.pipeline->tuned) {
    REQUIRE(f.engine->ReportReady(command.session_id, command.fencing_token).ok());
    REQUIRE(f.engine->Stop(command.session_id).ok());  // STOPPING; the host is told next turn
  }
  f.engine->Poll();  // the host stops them
  REQUIRE(f.pipeline->stopped.size() == 3);
  REQUIRE(f.inner->ListLeases()->size() == 6);
  f.faults.ResetCalls();
  for (const PipelineCommand& command : f.pipeline->stopped) {
    REQUIRE(f.engine->ReportStopped(command.session_id, command.fencing_token).ok());
  }
  for (const std::string& id : ids) {
    CHECK(f.inner->GetSession(id)->state == SessionState::kStopped);
  }
  CHECK(f.faults.CallCount("ReleaseLeases") == 3);
  CHECK(f.faults.CallCount("ReleaseLease") == 0);
  CHECK(f.inner->ListLeases()->empty());

  // A release the store refused is retried on the sweeper's turn, one lease
  // at a time. (A stop before the host started it ends the session at once.)
  const SessionRecord late = f.StartOne("1:0:1:BATCH-LATE");
  REQUIRE(f.faults.FailMethod("ReleaseLeases").ok());
  const int64_t faults_before = f.faults.FaultsInjected();
  REQUIRE(f.engine->Stop(late.session_id).ok());
  CHECK(f.faults.FaultsInjected() == faults_before + 1);
  CHECK(f.inner->GetSession(late.session_id)->state == SessionState::kStopped);
  CHECK(f.inner->ListLeases()->size() == 2);
  f.faults.FailNone();
  f.faults.ResetCalls();
  f.clock.AdvanceMs(1'000);
  f.engine->Poll();
  CHECK(f.faults.CallCount("ReleaseLease") == 2);
  CHECK(f.inner->ListLeases()->empty());
}

TEST_CASE("an ended session is no longer counted by the time its tuner slot is free in the store") {
  FaultyFixture f({0, 1});
  const std::vector<std::string> ids = f.StartServices(2, "ORDER");
  REQUIRE(f.engine->Stats().active_sessions == 2);
  std::vector<uint64_t> counted;  // what the engine counts as each release starts
  f.faults.SetCallHook([&](std::string_view method) {
    if (method == "ReleaseLeases") counted.push_back(f.engine->Stats().active_sessions);
  });
  // Stopped before the host started them: each ends at once.
  REQUIRE(f.engine->Stop(ids[0]).ok());
  REQUIRE(f.engine->Stop(ids[1]).ok());
  f.faults.SetCallHook(nullptr);
  CHECK(counted == std::vector<uint64_t>{1, 0});
  CHECK(f.inner->ListLeases()->empty());
}

TEST_CASE("a slot taken over from a session of this engine fails that session and stops it before the new tune") {
  FaultyFixture f({0, 1});
  const std::vector<std::string> ids = f.StartServices(2, "OVER");
  f.engine->Poll();  // the host starts both
  REQUIRE(f.pipeline->tuned.size() == 2);
  // Past the lease ttl with no heartbeat in between: both tuner leases have
  // run out in the store while the host still runs both sessions.
  f.clock.AdvanceMs(31'000);
  const SessionRecord third = f.StartOne("1:0:1:OVER-THIRD");
  CHECK(third.context_data.at("tuner_slot") == "0");
  CHECK(f.engine->Stats().active_sessions == 2);
  CHECK(f.engine->Stats().lease_losses == 1);
  auto lost = f.inner->GetSession(ids[0]);
  REQUIRE(lost.ok());
  CHECK(lost->state == SessionState::kFailed);
  CHECK(lost->reason == Reason::kLeaseExpired);
  auto lease = f.inner->GetLease("tuner:0");
  REQUIRE(lease.ok());
  CHECK(lease->owner == third.session_id);
  f.engine->Poll();  // (its heartbeat finds the other lease run out too)
  const std::vector<std::string>& order = f.pipeline->order;
  const auto stop = std::find(order.begin(), order.end(), "stop " + ids[0]);
  const auto tune = std::find(order.begin(), order.end(), "tune " + third.session_id);
  CHECK(stop != order.end());
  CHECK(tune != order.end());
  CHECK(stop < tune);
}

TEST_CASE("a heartbeat the store failed is tried again within a second, so two bad beats lose no lease") {
  FaultyFixture f({0, 1});
  const std::vector<std::string> ids = f.StartServices(2, "RETRY");
  f.engine->Poll();  // the host starts them; the first beat renews at t=0
  REQUIRE(f.pipeline->tuned.size() == 2);
  for (const auto& command : f.pipeline->tuned) {
    REQUIRE(f.engine->ReportReady(command.session_id, command.fencing_token).ok());
  }
  auto before = f.inner->GetLease("tuner:0");
  REQUIRE(before.ok());
  // A good beat is not repeated before its interval.
  f.faults.ResetCalls();
  f.clock.AdvanceMs(1'000);
  f.engine->Poll();
  CHECK(f.faults.CallCount("RenewLeases") == 0);

  // The store fails everything from just before the next beat until 25 s
  // past the last renewal: the beats at 10 s and 20 s both fail.
  f.faults.FailAll();
  for (int second = 2; second <= 25; ++second) {
    f.clock.AdvanceMs(1'000);
    f.engine->Poll();
  }
  const int64_t failed_beats = f.faults.CallCount("RenewLeases");
  f.faults.FailNone();
  f.faults.ResetCalls();
  f.clock.AdvanceMs(1'000);  // 26 s: before the 30 s ttl runs out
  f.engine->Poll();
  // Beats were retried while the store was down (none of them reached
  // RenewLeases: the reads before it failed), and once it is back the next
  // retry renews both sessions' leases.
  CHECK(failed_beats == 0);
  CHECK(f.faults.CallCount("GetSession") >= 2);
  CHECK(f.faults.CallCount("RenewLeases") == 1);
  for (int i : {0, 1}) {
    auto lease = f.inner->GetLease(fmt::format("tuner:{}", i));
    REQUIRE(lease.ok());
    CHECK(lease->owner == ids[i]);
    CHECK(lease->expires_at_ms > before->expires_at_ms);
    auto record = f.inner->GetSession(ids[i]);
    REQUIRE(record.ok());
    CHECK(record->state == SessionState::kReady);
  }
  CHECK(f.engine->Stats().lease_losses == 0);

  // A failed renewal call itself is retried the same way.
  f.faults.ResetCalls();
  f.clock.AdvanceMs(10'000);  // the next beat: two reads, then the renewal fails
  f.faults.FailNthCall(3);
  const int64_t faults_before = f.faults.FaultsInjected();
  f.engine->Poll();
  CHECK(f.faults.Calls().at(2) == "RenewLeases");
  CHECK(f.faults.FaultsInjected() == faults_before + 1);
  f.clock.AdvanceMs(1'000);
  f.engine->Poll();
  CHECK(f.faults.CallCount("RenewLeases") == 2);
  auto after = f.inner->GetLease("tuner:1");
  REQUIRE(after.ok());
  CHECK(after->expires_at_ms == f.clock.MonotonicMs() + 30'000);
}

TEST_CASE("slots this engine's sessions hold are not asked for; one whose lease was lost is found by the listing") {
  FaultyFixture f({0, 1});
  const std::vector<std::string> ids = f.StartServices(2, "LOCAL");
  // Slot 0's lease goes behind the engine's back (released elsewhere): the
  // engine still counts its session on it.
  REQUIRE(f.inner->ReleaseLease("tuner:0", ids[0]).ok());
  f.faults.ResetCalls();
  const SessionRecord next = f.StartOne("1:0:1:LOCAL-NEXT");
  CHECK(next.context_data.at("tuner_slot") == "0");
  // Both slots are held here, so the store was not asked for a free one;
  // the listing found slot 0 free.
  CHECK(f.faults.CallCount("AcquireFirstFreeLease") == 0);
  CHECK(f.faults.CallCount("ListLeases") == 1);
  auto lease = f.inner->GetLease("tuner:0");
  REQUIRE(lease.ok());
  CHECK(lease->owner == next.session_id);
  // The session that lost it is failed and no longer counted here.
  CHECK(f.inner->GetSession(ids[0])->state == SessionState::kFailed);
  CHECK(f.engine->Stats().active_sessions == 2);
}

TEST_CASE("a session that has ended but not yet released its leases does not block a start") {
  Fixture f(ManualOptions({0}));
  auto first = f.engine->Start(f.Request());
  REQUIRE(first.ok());
  // The moment between a session's terminal write and its lease releases,
  // held open: the record says STOPPED, both leases still name it.
  auto end = [&](const std::string& id) {
    REQUIRE(f.store
                ->UpdateSession(id,
                                [](SessionRecord& r) {
                                  r.state = SessionState::kStopped;
                                  return absl::OkStatus();
                                })
                .ok());
    REQUIRE(f.store->ListLeases()->size() == 2);
  };
  end(first->session_id);
  // The same service again: its lease and the only tuner are taken over.
  auto again = f.engine->Start(f.Request());
  REQUIRE_MESSAGE(again.ok(), again.status().ToString());
  CHECK(f.Get(again->session_id).context_data.at("tuner_slot") == "0");
  auto leases = f.store->ListLeases();
  REQUIRE(leases.ok());
  for (const LeaseInfo& lease : *leases) CHECK(lease.owner == again->session_id);
  CHECK(f.engine->Stats().active_sessions == 1);  // the ended one is let go

  // Another service while the only tuner's holder has ended.
  end(again->session_id);
  auto other = f.engine->Start(f.Request("1:0:19:OTHER:0:0:0:0:0:0:"));
  REQUIRE_MESSAGE(other.ok(), other.status().ToString());
  // A live holder still blocks: busy, naming it.
  std::string busy;
  auto refused = f.engine->Start(f.Request("1:0:19:THIRD:0:0:0:0:0:0:"), &busy);
  CHECK(CodeOf(refused.status()) == ErrorCode::kBusy);
  auto same = f.engine->Start(f.Request("1:0:19:OTHER:0:0:0:0:0:0:"), &busy);
  CHECK(CodeOf(same.status()) == ErrorCode::kBusy);
  CHECK(busy == other->session_id);
  // The ended sessions' own releases, when they come, change nothing.
  f.engine->Poll();
  CHECK(f.store->ReleaseLease("tuner:0", first->session_id).ok() == false);
  CHECK(f.store->GetLease("tuner:0")->owner == other->session_id);
}

TEST_CASE("a timer set while the engine's thread waits runs without waiting out the idle wait") {
  EngineOptions options;
  options.tuner_slots = {0};
  options.owner_id = "engine-t";
  options.lease_ttl_ms = 1'200'000;
  options.heartbeat_ms = 600'000;  // nothing else due: the thread waits its longest
  options.sweep_interval_ms = 600'000;
  auto store = OpenStore("memory:");
  REQUIRE(store.ok());
  auto engine = Engine::Create(options, store->get(), nullptr, nullptr, nullptr);
  REQUIRE_MESSAGE(engine.ok(), engine.status().ToString());
  std::mutex mu;
  std::condition_variable cv;
  int ran = 0;
  auto mark = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++ran;
    cv.notify_all();
  };
  for (int round = 1; round <= 5; ++round) {
    (*engine)->RunAfter(0, mark);
    std::unique_lock<std::mutex> lock(mu);
    // The idle wait is a second; a timer due now must not wait for it.
    CHECK(cv.wait_for(lock, std::chrono::milliseconds(700), [&] { return ran == round; }));
  }
}

TEST_CASE("a host report the store could not take is retried by the engine at the next sweep") {
  FaultyFixture f({0});
  StartRequest r;
  r.service_ref = "1:0:1:RETRY";
  auto started = f.engine->Start(r);
  REQUIRE(started.ok());
  const std::string id = started->session_id;
  f.engine->Poll();
  REQUIRE(f.pipeline->Tunes() == 1);
  const uint64_t token = f.pipeline->tuned[0].fencing_token;
  auto state = [&] { return f.inner->GetSession(id)->state; };

  // The ready report meets a store that fails writes: the host hears
  // EUNAVAILABLE, and the engine records READY itself once the store is back.
  f.faults.FailWrites();
  CHECK(CodeOf(f.engine->ReportReady(id, token)) == ErrorCode::kUnavailable);
  CHECK(state() == SessionState::kStarting);
  f.clock.AdvanceMs(1'000);
  f.engine->Poll();  // still failing: kept for the next sweep
  CHECK(state() == SessionState::kStarting);
  f.faults.FailNone();
  f.clock.AdvanceMs(1'000);
  f.engine->Poll();
  CHECK(state() == SessionState::kReady);

  // The same for the stopped report: STOPPED and the leases released at the
  // next sweep, not at the stop deadline.
  REQUIRE(f.engine->Stop(id).ok());
  f.engine->Poll();
  REQUIRE(f.pipeline->Stops() == 1);
  f.faults.FailWrites();
  CHECK(CodeOf(f.engine->ReportStopped(id, token)) == ErrorCode::kUnavailable);
  CHECK(state() == SessionState::kStopping);
  CHECK(f.inner->ListLeases()->size() == 2);
  f.faults.FailNone();
  f.clock.AdvanceMs(1'000);
  f.engine->Poll();
  CHECK(state() == SessionState::kStopped);
  CHECK(f.inner->ListLeases()->empty());

  // A retry the host made itself meanwhile leaves the engine's nothing to do.
  r.service_ref = "1:0:1:RETRY2";
  auto second = f.engine->Start(r);
  REQUIRE(second.ok());
  f.engine->Poll();
  REQUIRE(f.pipeline->Tunes() == 2);
  const uint64_t token2 = f.pipeline->tuned[1].fencing_token;
  f.faults.FailWrites();
  CHECK(CodeOf(f.engine->ReportReady(second->session_id, token2)) == ErrorCode::kUnavailable);
  f.faults.FailNone();
  REQUIRE(f.engine->ReportReady(second->session_id, token2).ok());
  f.faults.ResetCalls();
  f.clock.AdvanceMs(1'000);
  f.engine->Poll();
  CHECK(f.inner->GetSession(second->session_id)->state == SessionState::kReady);
  const int64_t updates = f.faults.CallCount("UpdateSession");
  f.clock.AdvanceMs(1'000);
  f.engine->Poll();
  CHECK(f.faults.CallCount("UpdateSession") == updates);  // the retry ran once, then was dropped
}

TEST_SUITE("concurrency") {
  TEST_CASE("ten concurrent starts for one service with one slot: one lease, one tune") {
    Fixture f(ManualOptions({0}));
    std::atomic<int> ok{0}, busy{0}, other{0};
    std::barrier sync(10);
    std::vector<std::thread> threads;
    for (int i = 0; i < 10; ++i) {
      threads.emplace_back([&] {
        sync.arrive_and_wait();
        auto result = f.engine->Start(f.Request());
        if (result.ok()) {
          ok++;
        } else if (CodeOf(result.status()) == ErrorCode::kBusy) {
          busy++;
        } else {
          other++;
        }
      });
    }
    for (auto& t : threads) t.join();
    f.engine->Poll();
    CHECK(ok == 1);
    CHECK(busy == 9);
    CHECK(other == 0);
    CHECK(f.pipeline->Tunes() == 1);
    CHECK(LeaseCount(f.store) == 2);
  }

  TEST_CASE("ten concurrent starts for ten services with four slots: four distinct slots") {
    Fixture f(ManualOptions({0, 1, 2, 3}));
    std::atomic<int> busy{0};
    std::mutex mu;
    std::vector<std::string> winners;
    std::barrier sync(10);
    std::vector<std::thread> threads;
    for (int i = 0; i < 10; ++i) {
      threads.emplace_back([&, i] {
        sync.arrive_and_wait();
        auto result = f.engine->Start(f.Request("1:0:1:S" + std::to_string(i)));
        if (result.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          winners.push_back(result->session_id);
        } else if (CodeOf(result.status()) == ErrorCode::kBusy) {
          busy++;
        }
      });
    }
    for (auto& t : threads) t.join();
    REQUIRE(winners.size() == 4);
    CHECK(busy == 6);
    std::set<std::string> slots;
    for (const auto& id : winners) slots.insert(f.Get(id).context_data["tuner_slot"]);
    CHECK(slots == std::set<std::string>{"0", "1", "2", "3"});
    f.engine->Poll();
    CHECK(f.pipeline->Tunes() == 4);
  }

  TEST_CASE("two concurrent starts with one idempotency key: one session, one tune, one id") {
    for (int round = 0; round < 50; ++round) {
      Fixture f;
      StartRequest r = f.Request();
      r.idempotency_key = "same";
      std::string ids[2];
      std::string related[2];
      absl::Status statuses[2];
      std::barrier sync(2);
      std::vector<std::thread> threads;
      for (int i = 0; i < 2; ++i) {
        threads.emplace_back([&, i] {
          sync.arrive_and_wait();
          auto result = f.engine->Start(r, &related[i]);
          statuses[i] = result.status();
          if (result.ok()) ids[i] = result->session_id;
        });
      }
      for (auto& t : threads) t.join();
      f.engine->Poll();
      CHECK(f.pipeline->Tunes() == 1);
      CHECK(f.store->ListSessions(0, 10)->total == 1);
      // Either both got it (one as a replay) or the second saw it in flight;
      // both callers learn the same session id.
      for (int i = 0; i < 2; ++i) {
        const bool in_flight = CodeOf(statuses[i]) == ErrorCode::kInFlight;
        CHECK((statuses[i].ok() || in_flight));
        if (in_flight) ids[i] = related[i];
      }
      CHECK(ids[0] == ids[1]);
      CHECK_FALSE(ids[0].empty());
    }
  }

  TEST_CASE("64 threads over 1000 rounds racing for one slot: exactly one winner each round") {
    Fixture f(ManualOptions({0}));
    constexpr int kThreads = 64;
    constexpr int kRounds = 1000;
    std::atomic<int> winners{0};
    std::atomic<int> errors{0};
    std::atomic<int> bad_rounds{0};
    std::string winner_id;
    size_t rounds_done = 0;
    std::barrier round_end(kThreads, [&]() noexcept {
      // Runs once per round, on one thread, while the others wait: the
      // winner's host is told to tune exactly once, then the session is
      // stopped and its leases freed for the next round.
      ++rounds_done;
      if (winners.load() != 1 || winner_id.empty()) {
        bad_rounds++;
      } else {
        f.engine->Poll();
        if (f.pipeline->Tunes() != rounds_done) bad_rounds++;
        (void)f.engine->Stop(winner_id);
        f.engine->Poll();
        const uint64_t token = f.pipeline->tuned.back().fencing_token;
        if (!f.engine->ReportStopped(winner_id, token).ok()) bad_rounds++;
      }
      winner_id.clear();
      winners = 0;
    });
    std::mutex mu;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int round = 0; round < kRounds; ++round) {
          auto result = f.engine->Start(f.Request());
          if (result.ok()) {
            winners++;
            std::lock_guard<std::mutex> lock(mu);
            winner_id = result->session_id;
          } else if (CodeOf(result.status()) != ErrorCode::kBusy) {
            errors++;
          }
          round_end.arrive_and_wait();
        }
        (void)t;
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(bad_rounds == 0);
    CHECK(errors == 0);
    CHECK(f.pipeline->Tunes() == kRounds);
    CHECK(f.pipeline->Stops() == kRounds);
    CHECK(LeaseCount(f.store) == 0);
  }

  TEST_CASE("a background engine runs host calls and reports from other threads") {
    EngineOptions options = ManualOptions();
    options.background = true;
    FakeClock clock;
    auto store = OpenStore("memory:", &clock);
    REQUIRE(store.ok());
    auto pipeline = std::make_shared<SimulatedPipeline>();
    auto engine = Engine::Create(options, store->get(), Clock::Real(), pipeline, nullptr);
    REQUIRE(engine.ok());
    pipeline->Attach(engine->get());
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        StartRequest r;
        r.service_ref = "1:0:1:BG" + std::to_string(i);
        auto started = (*engine)->Start(r);
        if (started.ok()) ok++;
      });
    }
    for (auto& t : threads) t.join();
    CHECK(ok == 4);
    // Wait (bounded) for the engine's thread to bring all four to READY.
    const int64_t give_up = Clock::Real()->MonotonicMs() + 10'000;
    int ready = 0;
    while (Clock::Real()->MonotonicMs() < give_up) {
      ready = 0;
      (void)(*store)->ScanSessions([&](const SessionRecord& s) {
        ready += s.state == SessionState::kReady;
        return true;
      });
      if (ready == 4) break;
      std::this_thread::yield();
    }
    CHECK(ready == 4);
    engine->reset();  // drains: all four end
    int ended = 0;
    (void)(*store)->ScanSessions([&](const SessionRecord& s) {
      ended += IsTerminal(s.state);
      return true;
    });
    CHECK(ended == 4);
  }
}

}  // namespace
}  // namespace xg2g

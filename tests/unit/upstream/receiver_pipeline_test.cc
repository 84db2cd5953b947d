// The receiver pipeline inside a manual-clock engine, against the in-process
// receiver: tune through the receiver, then the host's callbacks; every
// failure kind ends the session with its reason.
#include <doctest/doctest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/engine/engine.h"
#include "lib/store/store.h"
#include "lib/upstream/receiver_pipeline.h"
#include "tests/engine/recording_pipeline.h"
#include "tests/unit/upstream/fake_receiver_api.h"

namespace xg2g {
namespace {

constexpr const char* kRef = "1:0:19:283D:3FB:1:C00000:0:0:0:";
constexpr const char* kOther = "1:0:19:2B66:3F3:1:C00000:0:0:0:";

// The host's transcoder: records its calls; reports nothing by itself.
using HostPipeline = testing::RecordingPipeline;

struct Fixture {
  explicit Fixture(bool with_host = true, int max_bad = 4, int64_t tune_timeout_ms = 5'000)
      : clock(1'800'000'000'000) {
    auto opened = OpenStore("memory:", &clock);
    REQUIRE(opened.ok());
    store = std::move(*opened);
    receiver = std::make_shared<FakeReceiverApi>();
    if (with_host) host = std::make_shared<HostPipeline>();
    ReceiverPipelineOptions options;
    options.tune.poll_interval_ms = 100;
    options.tune.poll_jitter_ms = 0;
    options.tune.max_bad_polls = max_bad;
    options.tune_timeout_ms = tune_timeout_ms;
    pipeline = std::make_shared<ReceiverPipeline>(receiver, host, options, &clock);
    EngineOptions eo;
    eo.tuner_slots = {0, 1};
    eo.owner_id = "engine-r";
    eo.background = false;
    auto created = Engine::Create(eo, store.get(), &clock, pipeline, nullptr);
    REQUIRE(created.ok());
    engine = std::move(*created);
    pipeline->Attach(engine.get());
  }

  std::string Start(const std::string& ref = kRef) {
    StartRequest r;
    r.service_ref = ref;
    auto started = engine->Start(r);
    REQUIRE(started.ok());
    engine->Poll();  // the engine's turn: Tune (the zap) and Start
    return started->session_id;
  }
  void Advance(int64_t ms) {
    clock.AdvanceMs(ms);
    engine->Poll();
  }
  SessionRecord Get(const std::string& id) {
    auto record = store->GetSession(id);
    REQUIRE(record.ok());
    return *record;
  }

  FakeClock clock;
  std::unique_ptr<Store> store;
  std::shared_ptr<FakeReceiverApi> receiver;
  std::shared_ptr<HostPipeline> host;
  std::shared_ptr<ReceiverPipeline> pipeline;
  std::unique_ptr<Engine> engine;
};

TEST_CASE("a start zaps, waits for two confirming polls, then runs the host's tune and start") {
  Fixture f;
  const std::string id = f.Start();
  CHECK(f.receiver->zaps.load() == 1);
  CHECK(f.host->tuned.empty());  // not before the receiver confirmed
  f.Advance(100);                // first poll
  CHECK(f.host->tuned.empty());
  CHECK(f.Get(id).state == SessionState::kStarting);
  f.Advance(100);  // second poll: confirmed
  REQUIRE(f.host->tuned.size() == 1);
  REQUIRE(f.host->started.size() == 1);
  CHECK(f.host->started[0].session_id == id);
  CHECK(f.host->started[0].service_ref == kRef);
  CHECK(f.Get(id).state == SessionState::kStarting);  // the host reports ready itself
  REQUIRE(f.engine->ReportReady(id, f.host->started[0].fencing_token).ok());
  CHECK(f.Get(id).state == SessionState::kReady);
  auto stats = f.pipeline->Stats();
  CHECK(stats.tunes == 1);
  CHECK(stats.confirmed == 1);
  CHECK(stats.polls == 2);

  // Polling stopped with the confirmation.
  f.Advance(1000);
  CHECK(f.pipeline->Stats().polls == 2);

  // A stop goes to the host, which reports stopped.
  REQUIRE(f.engine->Stop(id).ok());
  f.engine->Poll();
  REQUIRE(f.host->stopped.size() == 1);
  REQUIRE(f.engine->ReportStopped(id, f.host->stopped[0].fencing_token).ok());
  CHECK(f.Get(id).state == SessionState::kStopped);
}

TEST_CASE("without host callbacks the confirmed tune makes the session ready") {
  Fixture f(/*with_host=*/false);
  const std::string id = f.Start();
  f.Advance(100);
  f.Advance(100);
  CHECK(f.Get(id).state == SessionState::kReady);
  REQUIRE(f.engine->Stop(id).ok());
  f.engine->Poll();
  CHECK(f.Get(id).state == SessionState::kStopped);  // the pipeline reported stopped itself
}

TEST_CASE("a refused zap fails the session with R_TUNE_FAILED and never starts the host") {
  Fixture f;
  f.receiver->SetRefuseZap(true);
  const std::string id = f.Start();
  SessionRecord record = f.Get(id);
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kTuneFailed);
  CHECK(record.reason_detail.find("zap failed") != std::string::npos);
  CHECK(f.host->tuned.empty());
}

TEST_CASE("another service on the receiver fails the session with R_TUNE_FAILED") {
  Fixture f(true, /*max_bad=*/3);
  f.receiver->SetSticky(true);
  f.receiver->SetCurrent(kOther);
  const std::string id = f.Start();
  for (int i = 0; i < 3; ++i) f.Advance(100);
  SessionRecord record = f.Get(id);
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kTuneFailed);
  CHECK(record.reason_detail.find(kOther) != std::string::npos);
  CHECK(f.host->tuned.empty());
}

TEST_CASE("no signal lock fails the session with R_TUNE_FAILED") {
  Fixture f(true, 2);
  f.receiver->SetLocked(false);
  const std::string id = f.Start();
  f.Advance(100);
  f.Advance(100);
  SessionRecord record = f.Get(id);
  CHECK(record.reason == Reason::kTuneFailed);
  CHECK(record.reason_detail.find("no signal lock") != std::string::npos);
}

TEST_CASE("an unreachable receiver fails the session with R_TUNE_FAILED") {
  Fixture f(true, 2);
  const std::string id = f.Start();
  f.receiver->SetError(UnavailableError("connection refused"));
  f.Advance(100);
  f.Advance(100);
  SessionRecord record = f.Get(id);
  CHECK(record.reason == Reason::kTuneFailed);
  CHECK(record.reason_detail.find("connection refused") != std::string::npos);
}

TEST_CASE("a tune not confirmed by its deadline fails with R_TUNE_TIMEOUT") {
  Fixture f(true, /*max_bad=*/0, /*tune_timeout_ms=*/450);
  f.receiver->SetLocked(false);
  const std::string id = f.Start();
  for (int i = 0; i < 5; ++i) f.Advance(100);
  SessionRecord record = f.Get(id);
  CHECK(record.state == SessionState::kFailed);
  CHECK(record.reason == Reason::kTuneTimeout);
  CHECK(record.reason_detail.find("not confirmed within") != std::string::npos);
  CHECK(record.reason_detail.find("no signal lock") != std::string::npos);
}

TEST_CASE("a stop while tuning ends the polls, skips the host and stops the session") {
  Fixture f;
  f.receiver->SetLocked(false);
  const std::string id = f.Start();
  f.Advance(100);
  REQUIRE(f.engine->Stop(id).ok());
  f.engine->Poll();
  CHECK(f.Get(id).state == SessionState::kStopped);
  const uint64_t polls = f.pipeline->Stats().polls;
  f.receiver->SetLocked(true);
  for (int i = 0; i < 5; ++i) f.Advance(100);
  CHECK(f.pipeline->Stats().polls <= polls + 1);
  CHECK(f.host->tuned.empty());
  CHECK(f.host->stopped.empty());
}

TEST_CASE("the host's failures keep their reasons") {
  SUBCASE("host tune") {
    Fixture f;
    f.host->tune_result = UnavailableError("no transcoder");
    const std::string id = f.Start();
    f.Advance(100);
    f.Advance(100);
    CHECK(f.Get(id).reason == Reason::kTuneFailed);
    CHECK(f.Get(id).reason_detail == "no transcoder");
  }
  SUBCASE("host start") {
    Fixture f;
    f.host->start_result = UnavailableError("ffmpeg missing");
    const std::string id = f.Start();
    f.Advance(100);
    f.Advance(100);
    CHECK(f.Get(id).reason == Reason::kFfmpegStartFailed);
  }
}

TEST_CASE("a slot whose session failed without a stop serves the next session") {
  Fixture f;
  f.host->start_result = UnavailableError("ffmpeg missing");
  const std::string first = f.Start();
  f.Advance(100);
  f.Advance(100);
  REQUIRE(f.Get(first).state == SessionState::kFailed);  // no Stop comes for it
  f.host->start_result = absl::OkStatus();
  const std::string second = f.Start(kOther);
  f.Advance(100);
  f.Advance(100);
  REQUIRE(f.host->started.size() == 2);
  CHECK(f.host->started[1].session_id == second);
  CHECK(f.host->started[1].slot == f.host->started[0].slot);
  REQUIRE(f.engine->ReportReady(second, f.host->started[1].fencing_token).ok());
  REQUIRE(f.engine->Stop(second).ok());
  f.engine->Poll();
  CHECK(f.host->stopped.size() == 1);  // the host was started for it: its stop goes there
}

TEST_CASE("two sessions on two slots each get their own confirmation") {
  Fixture f(/*with_host=*/false);
  const std::string a = f.Start(kRef);
  // The second zap changes what plays: the first session sees another
  // service from now on and, with max_bad_polls 4, fails after four polls.
  const std::string b = f.Start(kOther);
  for (int i = 0; i < 4; ++i) f.Advance(100);
  CHECK(f.Get(b).state == SessionState::kReady);
  CHECK(f.Get(a).state == SessionState::kFailed);
  CHECK(f.Get(a).reason == Reason::kTuneFailed);
}

TEST_CASE("destroying the engine while a tune is pending is clean") {
  Fixture f;
  f.receiver->SetLocked(false);
  const std::string id = f.Start();
  f.Advance(100);
  f.engine.reset();
  auto record = f.store->GetSession(id);
  REQUIRE(record.ok());
  CHECK(record->state == SessionState::kCancelled);
}

TEST_CASE("receiver pipeline options out of range are EINVAL") {
  ReceiverPipelineOptions o;
  CHECK(ValidateReceiverPipelineOptions(o).ok());
  o.tune_timeout_ms = 0;
  CHECK(CodeOf(ValidateReceiverPipelineOptions(o)) == ErrorCode::kInvalid);
}

}  // namespace
}  // namespace xg2g

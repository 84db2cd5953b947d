#include "tests/store/contract.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g::store_test {
namespace {

bool RealTimeForced() {
  const char* value = std::getenv("XG2G_STORE_TEST_CLOCK");
  return value != nullptr && std::string_view(value) == "real";
}

std::string MakeScratchDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "xg2g-store-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

std::atomic<int> next_test_number{0};

}  // namespace

StoreHarness::StoreHarness()
    : backend_(BackendUnderTest()), fake_time_(backend_.takes_clock && !RealTimeForced()) {
  request_.clock = fake_time_ ? &clock_ : nullptr;
  request_.scratch_dir = MakeScratchDir();
  request_.unique_name = fmt::format("t{}-{}", getpid(), next_test_number.fetch_add(1));
  REQUIRE_MESSAGE(!request_.scratch_dir.empty(), "cannot create a scratch directory");
  Open(/*reopen=*/false);
}

StoreHarness::~StoreHarness() {
  store_.reset();
  if (!request_.scratch_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(request_.scratch_dir, ignored);
  }
}

void StoreHarness::Open(bool reopen) {
  request_.reopen = reopen;
  auto store = backend_.open(request_);
  if (!store.ok() || *store == nullptr) {
    // The destructor does not run when the constructor throws: clean up here.
    std::error_code ignored;
    std::filesystem::remove_all(request_.scratch_dir, ignored);
    request_.scratch_dir.clear();
  }
  REQUIRE_MESSAGE(store.ok(), "opening the " << backend_.name << " store failed: "
                                             << store.status().ToString());
  REQUIRE(*store != nullptr);
  store_ = std::move(*store);
}

int64_t StoreHarness::ShortTtlMs() const {
  // With a fake clock any value costs nothing; a realistic one keeps the
  // arithmetic honest.
  return fake_time_ ? 30'000 : backend_.short_ttl_ms;
}

void StoreHarness::AdvanceTo(int64_t deadline_ms) {
  if (fake_time_) {
    const int64_t now = store().NowMs();
    if (deadline_ms > now) clock_.AdvanceMs(deadline_ms - now);
    REQUIRE(store().NowMs() >= deadline_ms);
    return;
  }
  // Real time: the behaviour under test is about time passing, so wait,
  // polling the store's own clock (which may not be this machine's).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (store().NowMs() < deadline_ms) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < give_up,
                    "the store's clock did not reach " << deadline_ms << " within 60 s");
    const int64_t left = deadline_ms - store().NowMs();
    std::this_thread::sleep_for(std::chrono::milliseconds(std::clamp<int64_t>(left, 1, 10)));
  }
}

bool StoreHarness::Reopen() {
  if (!backend_.durable) return false;
  store_.reset();
  Open(/*reopen=*/true);
  return true;
}

SessionRecord SampleSession(std::string id) {
  SessionRecord record;
  record.session_id = std::move(id);
  record.service_ref = "1:0:19:2B66:3F3:1:C00000:0:0:0:";
  record.profile.name = "hd-llhls";
  record.profile.llhls = true;
  record.profile.dvr_window_sec = 2700;
  record.state = SessionState::kStarting;
  record.pipeline_state = PipelineState::kTuning;
  record.reason = Reason::kNone;
  record.reason_detail = "tuning \"slot\" 2 \xc3\xa9\xe2\x82\xac";
  record.correlation_id = "corr-0001";
  record.created_at_unix = 1'700'000'000;
  record.updated_at_unix = 1'700'000'005;
  record.expires_at_unix = 1'700'003'600;
  record.context_data = {{"client_ip", "2001:db8::7"}, {"tuner_slot", "2"}, {"owner", "daemon-a"}};
  record.principal = "3f1c0a9e";
  return record;
}

}  // namespace xg2g::store_test

// The stable names of states, reasons, pipeline states and events: metrics,
// clients and stored records depend on them, so they are spelled out here.
#include <doctest/doctest.h>

#include <array>
#include <string_view>

#include "lib/session/session.h"

namespace xg2g {
namespace {

constexpr std::array<std::string_view, 8> kStates = {
    "NEW", "STARTING", "READY", "DRAINING", "STOPPING", "FAILED", "CANCELLED", "STOPPED"};

constexpr std::array<std::string_view, 16> kReasons = {
    "R_NONE",
    "R_UNKNOWN",
    "R_BAD_REQUEST",
    "R_NOT_FOUND",
    "R_LEASE_BUSY",
    "R_TUNE_TIMEOUT",
    "R_LEASE_EXPIRED",
    "R_TUNE_FAILED",
    "R_INVARIANT_VIOLATION",
    "R_FFMPEG_START_FAILED",
    "R_PROCESS_ENDED",
    "R_PACKAGER_FAILED",
    "R_CANCELLED",
    "R_IDLE_TIMEOUT",
    "R_CLIENT_STOP",
    "R_UPSTREAM_CORRUPT",
};

constexpr std::array<std::string_view, 7> kPipelineStates = {
    "IDLE", "TUNING", "STARTING", "RUNNING", "STOPPING", "STOPPED", "FAILED"};

constexpr std::array<std::string_view, 11> kEvents = {
    "LEASES_ACQUIRED", "HOST_READY", "DRAIN",    "STOP",         "HOST_STOPPED", "HOST_FAILED",
    "LEASE_LOST",      "NO_TUNER",   "DEADLINE", "IDLE_TIMEOUT", "CANCEL"};

TEST_CASE("the name tables have one entry per enum value") {
  CHECK(kStates.size() == static_cast<size_t>(kSessionStateCount));
  CHECK(kReasons.size() == static_cast<size_t>(kReasonCount));
  CHECK(kPipelineStates.size() == static_cast<size_t>(kPipelineStateCount));
  CHECK(kEvents.size() == static_cast<size_t>(kSessionEventCount));
}

TEST_CASE("every state has its stable name and parses back from it") {
  for (size_t i = 0; i < kStates.size(); ++i) {
    const auto state = static_cast<SessionState>(i);
    CHECK(StateName(state) == kStates[i]);
    const std::optional<SessionState> parsed = ParseState(kStates[i]);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == state);
  }
}

TEST_CASE("every reason has its stable R_ name and parses back from it") {
  for (size_t i = 0; i < kReasons.size(); ++i) {
    const auto reason = static_cast<Reason>(i);
    CHECK(ReasonName(reason) == kReasons[i]);
    const std::optional<Reason> parsed = ParseReason(kReasons[i]);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == reason);
  }
}

TEST_CASE("every pipeline state has its name and parses back from it") {
  for (size_t i = 0; i < kPipelineStates.size(); ++i) {
    const auto state = static_cast<PipelineState>(i);
    CHECK(PipelineStateName(state) == kPipelineStates[i]);
    const std::optional<PipelineState> parsed = ParsePipelineState(kPipelineStates[i]);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == state);
  }
}

TEST_CASE("every event has its name") {
  for (size_t i = 0; i < kEvents.size(); ++i) {
    CHECK(EventName(static_cast<SessionEvent>(i)) == kEvents[i]);
  }
}

TEST_CASE("names are matched exactly: case, padding and prefixes do not parse") {
  for (std::string_view bad : {"ready", "Ready", " READY", "READY ", "READ", "READYY", ""}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseState(bad).has_value());
  }
  for (std::string_view bad : {"LEASE_BUSY", "r_lease_busy", "R_", "R_LEASE_BUSY\n", ""}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseReason(bad).has_value());
  }
  CHECK_FALSE(ParsePipelineState("running").has_value());
  CHECK_FALSE(ParseState(std::string_view("NEW\0", 4)).has_value());
}

TEST_CASE("values outside the enums get a fallback name instead of reading out of bounds") {
  CHECK(StateName(static_cast<SessionState>(8)) == "UNKNOWN");
  CHECK(StateName(static_cast<SessionState>(-1)) == "UNKNOWN");
  CHECK(ReasonName(static_cast<Reason>(16)) == "R_UNKNOWN");
  CHECK(ReasonName(static_cast<Reason>(-7)) == "R_UNKNOWN");
  CHECK(PipelineStateName(static_cast<PipelineState>(7)) == "UNKNOWN");
  CHECK(EventName(static_cast<SessionEvent>(11)) == "UNKNOWN");
}

TEST_CASE("exactly FAILED, CANCELLED and STOPPED are terminal") {
  for (size_t i = 0; i < kStates.size(); ++i) {
    const bool terminal =
        kStates[i] == "FAILED" || kStates[i] == "CANCELLED" || kStates[i] == "STOPPED";
    CAPTURE(kStates[i]);
    CHECK(IsTerminal(static_cast<SessionState>(i)) == terminal);
  }
  CHECK_FALSE(IsTerminal(static_cast<SessionState>(99)));
}

}  // namespace
}  // namespace xg2g

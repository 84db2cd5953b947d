// The session state machine: every (state, event) pair against a table
// written out here independently of lib/session/session.cc, the
// first-meaningful-reason rule, and what ApplyEvent does to a record.
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <string_view>

#include "lib/common/status.h"
#include "lib/session/session.h"

namespace xg2g {
namespace {

using S = SessionState;
using E = SessionEvent;
using R = Reason;

// Expected outcome of one cell, as text:
//   "-"             illegal: StateError
//   "="             allowed but nothing changes
//   "TO"            moves to TO; proposes the reported reason when it is not R_NONE
//   "TO *"          moves to TO; proposes the reported reason, R_UNKNOWN when none is reported
//   "TO R_X"        moves to TO; proposes R_X whatever is reported
// Columns in event order: LEASES_ACQUIRED, HOST_READY, DRAIN, STOP, HOST_STOPPED, HOST_FAILED,
// LEASE_LOST, NO_TUNER, DEADLINE, IDLE_TIMEOUT, CANCEL.
constexpr std::array<std::array<std::string_view, 11>, 8> kExpected = {{
    /* NEW */
    {"STARTING", "-", "-", "STOPPED R_CLIENT_STOP", "-", "FAILED *", "FAILED R_LEASE_EXPIRED",
     "FAILED R_LEASE_BUSY", "FAILED R_TUNE_TIMEOUT", "-", "CANCELLED R_CANCELLED"},
    /* STARTING */
    {"-", "READY", "-", "STOPPING R_CLIENT_STOP", "-", "FAILED *", "FAILED R_LEASE_EXPIRED", "-",
     "FAILED R_TUNE_TIMEOUT", "-", "CANCELLED R_CANCELLED"},
    /* READY */
    {"-", "-", "DRAINING", "STOPPING R_CLIENT_STOP", "-", "FAILED *", "FAILED R_LEASE_EXPIRED", "-",
     "-", "STOPPING R_IDLE_TIMEOUT", "-"},
    /* DRAINING */
    {"-", "-", "-", "STOPPING R_CLIENT_STOP", "STOPPED", "FAILED *", "FAILED R_LEASE_EXPIRED", "-",
     "STOPPING R_IDLE_TIMEOUT", "-", "-"},
    /* STOPPING */
    {"-", "-", "-", "=", "STOPPED", "STOPPED *", "STOPPED R_LEASE_EXPIRED", "-",
     "STOPPED R_IDLE_TIMEOUT", "-", "-"},
    /* FAILED */
    {"-", "-", "-", "=", "-", "-", "-", "-", "-", "-", "-"},
    /* CANCELLED */
    {"-", "-", "-", "=", "-", "-", "-", "-", "-", "-", "-"},
    /* STOPPED */
    {"-", "-", "-", "=", "-", "-", "-", "-", "-", "-", "-"},
}};

constexpr std::array<std::string_view, 8> kStateText = {
    "NEW", "STARTING", "READY", "DRAINING", "STOPPING", "FAILED", "CANCELLED", "STOPPED"};
constexpr std::array<std::string_view, 11> kEventText = {
    "LEASES_ACQUIRED", "HOST_READY", "DRAIN",    "STOP",         "HOST_STOPPED", "HOST_FAILED",
    "LEASE_LOST",      "NO_TUNER",   "DEADLINE", "IDLE_TIMEOUT", "CANCEL"};

S StateFromText(std::string_view text) {
  for (size_t i = 0; i < kStateText.size(); ++i) {
    if (kStateText[i] == text) return static_cast<S>(i);
  }
  FAIL("no state named ", std::string(text));
  return S::kNew;
}

// The reason the record should carry afterwards: a proposal only replaces
// R_NONE, or R_UNKNOWN when it says more.
R Resolve(R current, R proposed) {
  if (proposed == R::kNone) return current;
  if (current == R::kNone) return proposed;
  if (current == R::kUnknown && proposed != R::kUnknown) return proposed;
  return current;
}

struct Expected {
  bool allowed = false;
  bool changed = false;
  S to = S::kNew;
  R reason = R::kNone;
};

Expected ExpectedFor(S from, E event, R current, R reported) {
  const std::string_view cell = kExpected[static_cast<size_t>(from)][static_cast<size_t>(event)];
  if (cell == "-") return {};
  if (cell == "=") return {.allowed = true, .changed = false, .to = from, .reason = current};
  const size_t space = cell.find(' ');
  const S to = StateFromText(cell.substr(0, space));
  R proposed = reported;
  if (space != std::string_view::npos) {
    const std::string_view suffix = cell.substr(space + 1);
    if (suffix == "*") {
      proposed = reported == R::kNone ? R::kUnknown : reported;
    } else {
      const std::optional<R> fixed = ParseReason(suffix);
      REQUIRE(fixed.has_value());
      proposed = *fixed;
    }
  }
  return {.allowed = true, .changed = true, .to = to, .reason = Resolve(current, proposed)};
}

constexpr std::array<R, 4> kSampleCurrent = {R::kNone, R::kUnknown, R::kClientStop, R::kTuneFailed};
constexpr std::array<R, 4> kSampleReported = {R::kNone, R::kUnknown, R::kProcessEnded,
                                              R::kUpstreamCorrupt};

TEST_CASE("every state and event pair behaves as the expected transition table says") {
  int checked = 0;
  for (int s = 0; s < kSessionStateCount; ++s) {
    for (int e = 0; e < kSessionEventCount; ++e) {
      for (R current : kSampleCurrent) {
        for (R reported : kSampleReported) {
          const auto from = static_cast<S>(s);
          const auto event = static_cast<E>(e);
          CAPTURE(kStateText[static_cast<size_t>(s)]);
          CAPTURE(kEventText[static_cast<size_t>(e)]);
          CAPTURE(ReasonName(current));
          CAPTURE(ReasonName(reported));
          const Expected want = ExpectedFor(from, event, current, reported);
          const absl::StatusOr<Transition> got = NextState(from, event, current, reported);
          if (!want.allowed) {
            REQUIRE_FALSE(got.ok());
            CHECK(CodeOf(got.status()) == ErrorCode::kState);
            const std::string message(FromAbsl(got.status().message()));
            CHECK(message.find(kStateText[static_cast<size_t>(s)]) != std::string::npos);
            CHECK(message.find(kEventText[static_cast<size_t>(e)]) != std::string::npos);
          } else {
            REQUIRE(got.ok());
            CHECK(got->to == want.to);
            CHECK(got->changed == want.changed);
            CHECK(got->reason == want.reason);
          }
          ++checked;
        }
      }
    }
  }
  CHECK(checked == 8 * 11 * 4 * 4);
}

TEST_CASE("the expected table agrees with IsTerminal: only STOP is allowed on a finished session") {
  for (int s = 0; s < kSessionStateCount; ++s) {
    const auto state = static_cast<S>(s);
    for (int e = 0; e < kSessionEventCount; ++e) {
      const auto event = static_cast<E>(e);
      const absl::StatusOr<Transition> got = NextState(state, event, R::kNone, R::kNone);
      if (IsTerminal(state)) {
        CAPTURE(StateName(state));
        CAPTURE(EventName(event));
        CHECK(got.ok() == (event == E::kStop));
        if (got.ok()) CHECK_FALSE(got->changed);
      }
    }
  }
}

TEST_CASE("a stop's reason survives a later failure report") {
  SessionRecord record;
  record.state = S::kReady;
  REQUIRE(ApplyEvent(record, E::kStop, R::kNone, "", 10).ok());
  CHECK(record.state == S::kStopping);
  CHECK(record.reason == R::kClientStop);
  REQUIRE(ApplyEvent(record, E::kHostFailed, R::kProcessEnded, "exit 1", 11).ok());
  CHECK(record.state == S::kStopped);
  CHECK(record.reason == R::kClientStop);
  CHECK(record.reason_detail.empty());
}

TEST_CASE("a lease lost while stopping finishes the stop and keeps the stop's reason") {
  SessionRecord record;
  record.state = S::kReady;
  REQUIRE(ApplyEvent(record, E::kIdleTimeout, R::kNone, "idle 60s", 10).ok());
  REQUIRE(ApplyEvent(record, E::kLeaseLost, R::kNone, "renewal failed", 11).ok());
  CHECK(record.state == S::kStopped);
  CHECK(record.reason == R::kIdleTimeout);
  CHECK(record.reason_detail == "idle 60s");
}

TEST_CASE("a stopping session past its deadline is stopped with the stop's reason") {
  SessionRecord record;
  record.state = S::kStarting;
  REQUIRE(ApplyEvent(record, E::kStop, R::kNone, "", 1).ok());
  REQUIRE(ApplyEvent(record, E::kDeadline, R::kNone, "", 2).ok());
  CHECK(record.state == S::kStopped);
  CHECK(record.reason == R::kClientStop);
}

TEST_CASE("a stopping session without a reason takes the deadline's R_IDLE_TIMEOUT") {
  SessionRecord record;
  record.state = S::kStopping;
  REQUIRE(ApplyEvent(record, E::kDeadline, R::kNone, "stop deadline", 2).ok());
  CHECK(record.state == S::kStopped);
  CHECK(record.reason == R::kIdleTimeout);
  CHECK(record.reason_detail == "stop deadline");
}

TEST_CASE(
    "a host failure without a reason becomes R_UNKNOWN, a later specific reason replaces it") {
  const absl::StatusOr<Transition> unknown =
      NextState(S::kReady, E::kHostFailed, R::kNone, R::kNone);
  REQUIRE(unknown.ok());
  CHECK(unknown->reason == R::kUnknown);
  // R_UNKNOWN is not meaningful: a specific reason replaces it ...
  const absl::StatusOr<Transition> specific =
      NextState(S::kStopping, E::kHostFailed, R::kUnknown, R::kPackagerFailed);
  REQUIRE(specific.ok());
  CHECK(specific->reason == R::kPackagerFailed);
  // ... but another R_UNKNOWN does not.
  SessionRecord record;
  record.state = S::kStopping;
  record.reason = R::kUnknown;
  record.reason_detail = "first";
  REQUIRE(ApplyEvent(record, E::kHostFailed, R::kNone, "second", 5).ok());
  CHECK(record.reason == R::kUnknown);
  CHECK(record.reason_detail == "first");
}

TEST_CASE("a host report without a reason of its own carries the reported one") {
  SessionRecord record;
  record.state = S::kDraining;
  REQUIRE(ApplyEvent(record, E::kHostStopped, R::kProcessEnded, "stream ended", 7).ok());
  CHECK(record.state == S::kStopped);
  CHECK(record.reason == R::kProcessEnded);
  CHECK(record.reason_detail == "stream ended");

  SessionRecord quiet;
  quiet.state = S::kDraining;
  REQUIRE(ApplyEvent(quiet, E::kHostStopped, R::kNone, "ignored", 7).ok());
  CHECK(quiet.reason == R::kNone);
  CHECK(quiet.reason_detail.empty());
}

TEST_CASE("events with a reason of their own ignore the reported one") {
  const absl::StatusOr<Transition> busy = NextState(S::kNew, E::kNoTuner, R::kNone, R::kTuneFailed);
  REQUIRE(busy.ok());
  CHECK(busy->reason == R::kLeaseBusy);
  const absl::StatusOr<Transition> stop = NextState(S::kReady, E::kStop, R::kNone, R::kTuneFailed);
  REQUIRE(stop.ok());
  CHECK(stop->reason == R::kClientStop);
}

TEST_CASE("ApplyEvent walks a session through its whole life") {
  SessionRecord record;
  record.created_at_unix = 100;
  record.updated_at_unix = 100;
  REQUIRE(ApplyEvent(record, E::kLeasesAcquired, R::kNone, "", 101).ok());
  CHECK(record.state == S::kStarting);
  CHECK(record.updated_at_unix == 101);
  REQUIRE(ApplyEvent(record, E::kHostReady, R::kNone, "", 102).ok());
  CHECK(record.state == S::kReady);
  CHECK(record.pipeline_state == PipelineState::kRunning);
  REQUIRE(ApplyEvent(record, E::kDrain, R::kNone, "", 103).ok());
  CHECK(record.state == S::kDraining);
  REQUIRE(ApplyEvent(record, E::kStop, R::kNone, "by user", 104).ok());
  CHECK(record.state == S::kStopping);
  CHECK(record.reason == R::kClientStop);
  CHECK(record.reason_detail == "by user");
  REQUIRE(ApplyEvent(record, E::kHostStopped, R::kNone, "", 105).ok());
  CHECK(record.state == S::kStopped);
  CHECK(record.pipeline_state == PipelineState::kStopped);
  CHECK(record.reason == R::kClientStop);
  CHECK(record.updated_at_unix == 105);
  CHECK(record.created_at_unix == 100);
}

TEST_CASE("a host failure marks the pipeline failed, a lost lease leaves it to the engine") {
  SessionRecord failed;
  failed.state = S::kReady;
  failed.pipeline_state = PipelineState::kRunning;
  REQUIRE(ApplyEvent(failed, E::kHostFailed, R::kFfmpegStartFailed, "exit 1", 9).ok());
  CHECK(failed.state == S::kFailed);
  CHECK(failed.pipeline_state == PipelineState::kFailed);
  CHECK(failed.reason == R::kFfmpegStartFailed);
  CHECK(failed.reason_detail == "exit 1");

  SessionRecord lost;
  lost.state = S::kReady;
  lost.pipeline_state = PipelineState::kRunning;
  REQUIRE(ApplyEvent(lost, E::kLeaseLost, R::kNone, "", 9).ok());
  CHECK(lost.state == S::kFailed);
  CHECK(lost.reason == R::kLeaseExpired);
  CHECK(lost.pipeline_state == PipelineState::kRunning);
}

TEST_CASE("a repeated stop leaves the record exactly as it was") {
  for (S state : {S::kStopping, S::kFailed, S::kCancelled, S::kStopped}) {
    CAPTURE(StateName(state));
    SessionRecord record;
    record.state = state;
    record.reason = R::kTuneFailed;
    record.reason_detail = "detail";
    record.updated_at_unix = 50;
    const SessionRecord before = record;
    REQUIRE(ApplyEvent(record, E::kStop, R::kNone, "again", 60).ok());
    CHECK(record == before);
  }
}

TEST_CASE("an illegal event is ESTATE and changes nothing") {
  SessionRecord record;
  record.state = S::kFailed;
  record.reason = R::kLeaseBusy;
  record.updated_at_unix = 5;
  const SessionRecord before = record;
  const absl::Status status = ApplyEvent(record, E::kHostReady, R::kNone, "", 6);
  CHECK(CodeOf(status) == ErrorCode::kState);
  CHECK(record == before);
}

TEST_CASE("values outside the enums and times before 1970 are EINVAL, not a table lookup") {
  CHECK(CodeOf(NextState(static_cast<S>(8), E::kStop, R::kNone, R::kNone).status()) ==
        ErrorCode::kInvalid);
  CHECK(CodeOf(NextState(S::kNew, static_cast<E>(11), R::kNone, R::kNone).status()) ==
        ErrorCode::kInvalid);
  CHECK(CodeOf(NextState(S::kNew, static_cast<E>(-1), R::kNone, R::kNone).status()) ==
        ErrorCode::kInvalid);
  CHECK(CodeOf(NextState(S::kNew, E::kStop, static_cast<R>(16), R::kNone).status()) ==
        ErrorCode::kInvalid);
  CHECK(CodeOf(NextState(S::kNew, E::kStop, R::kNone, static_cast<R>(-2)).status()) ==
        ErrorCode::kInvalid);
  SessionRecord record;
  const SessionRecord before = record;
  CHECK(CodeOf(ApplyEvent(record, E::kStop, R::kNone, "", -1)) == ErrorCode::kInvalid);
  CHECK(record == before);
}

}  // namespace
}  // namespace xg2g

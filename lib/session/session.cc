// Names of states, reasons, pipeline states and events, and the one
// transition table (DESIGN.md §2). Every state change in the library is a
// lookup in kTransitions below; nothing else decides whether a session may
// move.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/session/session.h"

namespace xg2g {
namespace {

constexpr std::array<std::string_view, kSessionStateCount> kStateNames = {
    "NEW", "STARTING", "READY", "DRAINING", "STOPPING", "FAILED", "CANCELLED", "STOPPED",
};

constexpr std::array<std::string_view, kReasonCount> kReasonNames = {
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

constexpr std::array<std::string_view, kPipelineStateCount> kPipelineStateNames = {
    "IDLE", "TUNING", "STARTING", "RUNNING", "STOPPING", "STOPPED", "FAILED",
};

constexpr std::array<std::string_view, kSessionEventCount> kEventNames = {
    "LEASES_ACQUIRED", "HOST_READY", "DRAIN",    "STOP",         "HOST_STOPPED", "HOST_FAILED",
    "LEASE_LOST",      "NO_TUNER",   "DEADLINE", "IDLE_TIMEOUT", "CANCEL",
};

template <typename Enum, size_t N>
std::string_view NameOf(const std::array<std::string_view, N>& names, Enum value,
                        std::string_view fallback) {
  const int index = static_cast<int>(value);
  if (index < 0 || static_cast<size_t>(index) >= N) return fallback;
  return names[static_cast<size_t>(index)];
}

template <typename Enum, size_t N>
std::optional<Enum> ParseName(const std::array<std::string_view, N>& names, std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<Enum>(i);
  }
  return std::nullopt;
}

template <typename Enum>
constexpr bool InRange(Enum value, int count) {
  const int index = static_cast<int>(value);
  return index >= 0 && index < count;
}

// Where the reason a transition proposes comes from. The proposal only
// becomes the record's reason under the first-meaningful-reason rule
// (ResolveReason).
enum class ReasonSource : uint8_t {
  kReported,           // the caller's reported reason, when it is not R_NONE
  kReportedOrUnknown,  // the caller's reported reason; R_UNKNOWN when it is R_NONE
  kFixed,              // the cell's own reason; the reported one is ignored
};

enum class CellKind : uint8_t {
  kIllegal,    // StateError
  kUnchanged,  // allowed, but the record stays as it is (a stop of a finished session)
  kMove,       // the record moves to `to`
};

// One cell of the table: what `event` does to a session in one state.
struct Cell {
  CellKind kind = CellKind::kIllegal;
  SessionState to = SessionState::kNew;
  ReasonSource source = ReasonSource::kReported;
  Reason reason = Reason::kNone;  // for ReasonSource::kFixed
  // The host's own reports also say what its pipeline does now; the engine
  // owns pipelineState otherwise (docs/session-model.md).
  bool sets_pipeline = false;
  PipelineState pipeline = PipelineState::kIdle;
};

constexpr Cell Illegal() { return Cell{}; }
constexpr Cell Unchanged() { return Cell{.kind = CellKind::kUnchanged}; }
// A move that proposes the reported reason (if any).
constexpr Cell To(SessionState to) {
  return Cell{.kind = CellKind::kMove, .to = to, .source = ReasonSource::kReported};
}
// A move that proposes its own reason.
constexpr Cell To(SessionState to, Reason reason) {
  return Cell{.kind = CellKind::kMove, .to = to, .source = ReasonSource::kFixed, .reason = reason};
}
// The host's reports: the pipeline state follows what the host says.
constexpr Cell HostSays(Cell cell, PipelineState pipeline) {
  cell.sets_pipeline = true;
  cell.pipeline = pipeline;
  return cell;
}
constexpr Cell HostFailed(SessionState to) {
  return HostSays(
      Cell{.kind = CellKind::kMove, .to = to, .source = ReasonSource::kReportedOrUnknown},
      PipelineState::kFailed);
}

using S = SessionState;
using R = Reason;
using P = PipelineState;

// THE transition table: rows are states, columns events, both in enum order.
// Any change here must be mirrored in docs/session-model.md and in the
// independently written expectation in tests/unit/session/transition_test.cc.
constexpr std::array<std::array<Cell, kSessionEventCount>, kSessionStateCount> kTransitions = {{
    // NEW
    {{
        To(S::kStarting),                  // LEASES_ACQUIRED
        Illegal(),                         // HOST_READY
        Illegal(),                         // DRAIN
        To(S::kStopped, R::kClientStop),   // STOP
        Illegal(),                         // HOST_STOPPED
        HostFailed(S::kFailed),            // HOST_FAILED
        To(S::kFailed, R::kLeaseExpired),  // LEASE_LOST
        To(S::kFailed, R::kLeaseBusy),     // NO_TUNER
        To(S::kFailed, R::kTuneTimeout),   // DEADLINE
        Illegal(),                         // IDLE_TIMEOUT
        To(S::kCancelled, R::kCancelled),  // CANCEL
    }},
    // STARTING
    {{
        Illegal(),                             // LEASES_ACQUIRED
        HostSays(To(S::kReady), P::kRunning),  // HOST_READY
        Illegal(),                             // DRAIN
        To(S::kStopping, R::kClientStop),      // STOP
        Illegal(),                             // HOST_STOPPED
        HostFailed(S::kFailed),                // HOST_FAILED
        To(S::kFailed, R::kLeaseExpired),      // LEASE_LOST
        Illegal(),                             // NO_TUNER
        To(S::kFailed, R::kTuneTimeout),       // DEADLINE
        Illegal(),                             // IDLE_TIMEOUT
        To(S::kCancelled, R::kCancelled),      // CANCEL
    }},
    // READY
    {{
        Illegal(),                          // LEASES_ACQUIRED
        Illegal(),                          // HOST_READY
        To(S::kDraining),                   // DRAIN
        To(S::kStopping, R::kClientStop),   // STOP
        Illegal(),                          // HOST_STOPPED
        HostFailed(S::kFailed),             // HOST_FAILED
        To(S::kFailed, R::kLeaseExpired),   // LEASE_LOST
        Illegal(),                          // NO_TUNER
        Illegal(),                          // DEADLINE (READY's deadline is the idle timeout)
        To(S::kStopping, R::kIdleTimeout),  // IDLE_TIMEOUT
        Illegal(),                          // CANCEL
    }},
    // DRAINING
    {{
        Illegal(),                               // LEASES_ACQUIRED
        Illegal(),                               // HOST_READY
        Illegal(),                               // DRAIN
        To(S::kStopping, R::kClientStop),        // STOP
        HostSays(To(S::kStopped), P::kStopped),  // HOST_STOPPED
        HostFailed(S::kFailed),                  // HOST_FAILED
        To(S::kFailed, R::kLeaseExpired),        // LEASE_LOST
        Illegal(),                               // NO_TUNER
        To(S::kStopping, R::kIdleTimeout),       // DEADLINE
        Illegal(),                               // IDLE_TIMEOUT
        Illegal(),                               // CANCEL
    }},
    // STOPPING: the session is already on its way out; failures finish the
    // teardown and the stop's reason stays (first meaningful reason wins).
    {{
        Illegal(),                               // LEASES_ACQUIRED
        Illegal(),                               // HOST_READY
        Illegal(),                               // DRAIN
        Unchanged(),                             // STOP (a repeated stop)
        HostSays(To(S::kStopped), P::kStopped),  // HOST_STOPPED
        HostFailed(S::kStopped),                 // HOST_FAILED
        To(S::kStopped, R::kLeaseExpired),       // LEASE_LOST
        Illegal(),                               // NO_TUNER
        To(S::kStopped, R::kIdleTimeout),        // DEADLINE
        Illegal(),                               // IDLE_TIMEOUT
        Illegal(),                               // CANCEL
    }},
    // FAILED (terminal)
    {{Illegal(), Illegal(), Illegal(), Unchanged(), Illegal(), Illegal(), Illegal(), Illegal(),
      Illegal(), Illegal(), Illegal()}},
    // CANCELLED (terminal)
    {{Illegal(), Illegal(), Illegal(), Unchanged(), Illegal(), Illegal(), Illegal(), Illegal(),
      Illegal(), Illegal(), Illegal()}},
    // STOPPED (terminal)
    {{Illegal(), Illegal(), Illegal(), Unchanged(), Illegal(), Illegal(), Illegal(), Illegal(),
      Illegal(), Illegal(), Illegal()}},
}};

constexpr bool IsTerminalIndex(int state) {
  return state == static_cast<int>(S::kFailed) || state == static_cast<int>(S::kCancelled) ||
         state == static_cast<int>(S::kStopped);
}

// Invariants of the table, checked by the compiler: nothing leaves a terminal
// state, nothing moves to NEW, and a move always changes the state.
constexpr bool TableIsSound() {
  for (int s = 0; s < kSessionStateCount; ++s) {
    for (int e = 0; e < kSessionEventCount; ++e) {
      const Cell& cell = kTransitions[static_cast<size_t>(s)][static_cast<size_t>(e)];
      if (cell.kind != CellKind::kMove) continue;
      if (IsTerminalIndex(s)) return false;
      if (cell.to == S::kNew) return false;
      if (static_cast<int>(cell.to) == s) return false;
      if (cell.source == ReasonSource::kFixed && cell.reason == R::kNone) return false;
    }
  }
  return true;
}
static_assert(TableIsSound(), "the session transition table breaks an invariant");

// The first meaningful reason wins: a proposal only replaces R_NONE, or
// R_UNKNOWN when the proposal says more than that.
constexpr bool Replaces(Reason current, Reason proposed) {
  if (proposed == R::kNone) return false;
  if (current == R::kNone) return true;
  return current == R::kUnknown && proposed != R::kUnknown;
}

Reason Proposal(const Cell& cell, Reason reported) {
  switch (cell.source) {
    case ReasonSource::kReported: return reported;
    case ReasonSource::kReportedOrUnknown: return reported == R::kNone ? R::kUnknown : reported;
    case ReasonSource::kFixed: return cell.reason;
  }
  return R::kNone;
}

// NextState plus what ApplyEvent needs to know beyond it.
struct Outcome {
  Transition transition{.to = SessionState::kNew, .reason = Reason::kNone, .changed = false};
  bool reason_set = false;  // this event supplied the record's reason
  std::optional<PipelineState> pipeline;
};

absl::StatusOr<Outcome> Decide(SessionState from, SessionEvent event, Reason current,
                               Reason reported) {
  if (!InRange(from, kSessionStateCount)) {
    return InvalidError(fmt::format("unknown session state {}", static_cast<int>(from)));
  }
  if (!InRange(event, kSessionEventCount)) {
    return InvalidError(fmt::format("unknown session event {}", static_cast<int>(event)));
  }
  if (!InRange(current, kReasonCount)) {
    return InvalidError(fmt::format("unknown current reason {}", static_cast<int>(current)));
  }
  if (!InRange(reported, kReasonCount)) {
    return InvalidError(fmt::format("unknown reported reason {}", static_cast<int>(reported)));
  }
  const Cell& cell = kTransitions[static_cast<size_t>(from)][static_cast<size_t>(event)];
  switch (cell.kind) {
    case CellKind::kIllegal:
      return StateError(
          fmt::format("event {} is not allowed in state {}", EventName(event), StateName(from)));
    case CellKind::kUnchanged: {
      Outcome unchanged;
      unchanged.transition = Transition{.to = from, .reason = current, .changed = false};
      return unchanged;
    }
    case CellKind::kMove: break;
  }
  const Reason proposed = Proposal(cell, reported);
  Outcome outcome;
  outcome.reason_set = Replaces(current, proposed);
  outcome.transition =
      Transition{.to = cell.to, .reason = outcome.reason_set ? proposed : current, .changed = true};
  if (cell.sets_pipeline) outcome.pipeline = cell.pipeline;
  return outcome;
}

}  // namespace

std::string_view StateName(SessionState state) { return NameOf(kStateNames, state, "UNKNOWN"); }

std::optional<SessionState> ParseState(std::string_view name) {
  return ParseName<SessionState>(kStateNames, name);
}

std::string_view ReasonName(Reason reason) { return NameOf(kReasonNames, reason, "R_UNKNOWN"); }

std::optional<Reason> ParseReason(std::string_view name) {
  return ParseName<Reason>(kReasonNames, name);
}

std::string_view PipelineStateName(PipelineState state) {
  return NameOf(kPipelineStateNames, state, "UNKNOWN");
}

std::optional<PipelineState> ParsePipelineState(std::string_view name) {
  return ParseName<PipelineState>(kPipelineStateNames, name);
}

std::string_view EventName(SessionEvent event) { return NameOf(kEventNames, event, "UNKNOWN"); }

bool IsTerminal(SessionState state) { return IsTerminalIndex(static_cast<int>(state)); }

absl::StatusOr<Transition> NextState(SessionState from, SessionEvent event, Reason current,
                                     Reason reported) {
  XG2G_ASSIGN_OR_RETURN(const Outcome outcome, Decide(from, event, current, reported));
  return outcome.transition;
}

absl::Status ApplyEvent(SessionRecord& record, SessionEvent event, Reason reported,
                        std::string_view detail, int64_t now_unix) {
  if (now_unix < 0) {
    return InvalidError(fmt::format("event time {} is before 1970", now_unix));
  }
  XG2G_ASSIGN_OR_RETURN(const Outcome outcome,
                        Decide(record.state, event, record.reason, reported));
  if (!outcome.transition.changed) return absl::OkStatus();
  record.state = outcome.transition.to;
  record.reason = outcome.transition.reason;
  if (outcome.reason_set) record.reason_detail = std::string(detail);
  if (outcome.pipeline.has_value()) record.pipeline_state = *outcome.pipeline;
  record.updated_at_unix = now_unix;
  return absl::OkStatus();
}

}  // namespace xg2g

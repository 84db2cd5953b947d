// The session record, its states and reason codes, and the one transition
// table through which a state may change (DESIGN.md §2).
//
// SessionRecord is a value type (thread-compatible). The transition functions
// are pure and thread-safe.
#ifndef XG2G_LIB_SESSION_SESSION_H_
#define XG2G_LIB_SESSION_SESSION_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace xg2g {

// Values equal xg2g_session_state in the public header.
enum class SessionState : int {
  kNew = 0,
  kStarting = 1,
  kReady = 2,
  kDraining = 3,
  kStopping = 4,
  kFailed = 5,
  kCancelled = 6,
  kStopped = 7,
};
inline constexpr int kSessionStateCount = 8;

// Values equal xg2g_reason in the public header. Names are stable strings.
enum class Reason : int {
  kNone = 0,
  kUnknown = 1,
  kBadRequest = 2,
  kNotFound = 3,
  kLeaseBusy = 4,
  kTuneTimeout = 5,
  kLeaseExpired = 6,
  kTuneFailed = 7,
  kInvariantViolation = 8,
  kFfmpegStartFailed = 9,
  kProcessEnded = 10,
  kPackagerFailed = 11,
  kCancelled = 12,
  kIdleTimeout = 13,
  kClientStop = 14,
  kUpstreamCorrupt = 15,
};
inline constexpr int kReasonCount = 16;

// Values equal xg2g_session_event in the public header.
enum class SessionEvent : int {
  kLeasesAcquired = 0,
  kHostReady = 1,
  kDrain = 2,
  kStop = 3,
  kHostStopped = 4,
  kHostFailed = 5,
  kLeaseLost = 6,
  kNoTuner = 7,
  kDeadline = 8,
  kIdleTimeout = 9,
  kCancel = 10,
};
inline constexpr int kSessionEventCount = 11;

// What the host's media pipeline is doing for the session.
enum class PipelineState : int {
  kIdle = 0,
  kTuning = 1,
  kStarting = 2,
  kRunning = 3,
  kStopping = 4,
  kStopped = 5,
  kFailed = 6,
};
inline constexpr int kPipelineStateCount = 7;

std::string_view StateName(SessionState state);           // "READY"
std::optional<SessionState> ParseState(std::string_view name);
std::string_view ReasonName(Reason reason);                // "R_LEASE_BUSY"
std::optional<Reason> ParseReason(std::string_view name);
std::string_view PipelineStateName(PipelineState state);   // "RUNNING"
std::optional<PipelineState> ParsePipelineState(std::string_view name);
std::string_view EventName(SessionEvent event);            // "STOP"
bool IsTerminal(SessionState state);

struct Profile {
  std::string name = "default";
  bool llhls = false;
  int64_t dvr_window_sec = 0;
  bool operator==(const Profile&) const = default;
};

// Current record schema written by EncodeSession; older ones still decode.
inline constexpr int kSessionSchemaVersion = 1;

struct SessionRecord {
  // Client-visible fields; JSON names in DESIGN.md §2 (never renamed).
  std::string session_id;                           // "sessionId"
  std::string service_ref;                          // "serviceRef"
  Profile profile;                                  // "profile"
  SessionState state = SessionState::kNew;          // "state"
  PipelineState pipeline_state = PipelineState::kIdle;  // "pipelineState"
  Reason reason = Reason::kNone;                    // "reason"
  std::string reason_detail;                        // "reasonDetail"
  std::string correlation_id;                       // "correlationId"
  int64_t created_at_unix = 0;                      // "createdAtUnix"
  int64_t updated_at_unix = 0;                      // "updatedAtUnix"
  int64_t expires_at_unix = 0;                      // "expiresAtUnix"
  std::map<std::string, std::string> context_data;  // "contextData"

  // Engine additions.
  std::string principal;  // "principal": digest of the principal that asked
  // "revision": bumped by the store on every write; compare-and-set key.
  int64_t revision = 0;
  // "deadlineUnixMs": when the current state's deadline passes (Unix ms; 0 =
  // none). Set by the engine on every transition; for terminal sessions it is
  // the end of their retention.
  int64_t deadline_unix_ms = 0;

  bool operator==(const SessionRecord&) const = default;
};

// True when `id` matches ^[A-Za-z0-9_-]{1,64}$ (ids that come from outside).
bool IsValidSessionId(std::string_view id);

// InvalidError naming the id unless IsValidSessionId(id).
absl::Status ValidateSessionId(std::string_view id);

// The outcome of one transition-table lookup.
struct Transition {
  SessionState to;
  Reason reason;     // the reason the record will carry afterwards
  bool changed;      // false when the event leaves the record as it is
};

// Looks up (from, event) in the transition table (docs/session-model.md).
// `reported` is the reason the caller reports: HOST_FAILED proposes it
// (R_UNKNOWN when R_NONE), events without a reason of their own propose it
// when it is not R_NONE, the others propose their own and ignore it.
// `current` is the record's reason now: a proposal only replaces R_NONE, or
// R_UNKNOWN with something more specific (the first meaningful reason wins).
// StateError naming the state and event when the pair is not allowed;
// InvalidError for a value outside the enums.
absl::StatusOr<Transition> NextState(SessionState from, SessionEvent event, Reason current,
                                     Reason reported);

// Applies NextState to the record: state, reason, updatedAtUnix (`now_unix`,
// not negative), reasonDetail (only when this event's reason was adopted), and
// pipelineState for the host's own reports (HOST_READY -> RUNNING,
// HOST_STOPPED -> STOPPED, HOST_FAILED -> FAILED). A transition with
// changed == false and every error leave the record untouched.
absl::Status ApplyEvent(SessionRecord& record, SessionEvent event, Reason reported,
                        std::string_view detail, int64_t now_unix);

// JSON codec (simdjson to read, fmt to write; format and versioning rules in
// docs/session-model.md). Encoding is deterministic. Decoding never throws and
// never crashes: malformed input is CorruptError naming the offending field,
// a record from a newer schemaVersion is CorruptError saying so. Thread-safe.
std::string EncodeSession(const SessionRecord& record);
absl::StatusOr<SessionRecord> DecodeSession(std::string_view json);

}  // namespace xg2g

#endif  // XG2G_LIB_SESSION_SESSION_H_

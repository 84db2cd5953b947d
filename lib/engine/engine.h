// The engine: turns start/stop intents into sessions and keeps them
// consistent under retries, races and failures (DESIGN.md §2, §4).
//
// Thread-safe: any number of threads may call Start/Stop/Report* at once.
// The engine owns one background thread (unless Options::background is false,
// in which case the caller drives it with Poll()); host pipeline callbacks run
// on that thread (or inside Poll()), never while an engine lock is held.
#ifndef XG2G_LIB_ENGINE_ENGINE_H_
#define XG2G_LIB_ENGINE_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/clock.h"
#include "lib/observe/audit.h"
#include "lib/session/session.h"
#include "lib/store/store.h"

namespace xg2g {

// Parses a tuner slot spec: "0-3", "0,2,5", "0" (one slot numbered 0),
// mixtures ("0-1,4"). Slots are 0..1023, listed once. InvalidError naming the
// bad part for empty specs, bad numbers, reversed ranges and duplicates.
absl::StatusOr<std::vector<int>> ParseSlotSpec(std::string_view spec);

// What the host is told to do for a session.
struct PipelineCommand {
  std::string session_id;
  std::string service_ref;
  std::string profile;
  int slot = -1;
  uint64_t fencing_token = 0;
};

// The host's media pipeline. Calls are made on the engine's thread, one at a
// time. A non-OK status from Tune or Start fails the session (R_TUNE_FAILED /
// R_FFMPEG_START_FAILED, the status message as detail). The host reports
// progress back with Engine::ReportReady/ReportFailed/ReportStopped, from any
// thread, at any later time (also from inside a callback).
class Pipeline {
 public:
  virtual ~Pipeline() = default;
  virtual absl::Status Tune(const PipelineCommand& command) = 0;
  virtual absl::Status Start(const PipelineCommand& command) = 0;
  virtual void Stop(const PipelineCommand& command) = 0;
};

struct StartRequest {
  std::string service_ref;
  std::string profile;    // empty means "default"
  std::string principal;  // who asks (a digest); scopes the idempotency key
  std::string idempotency_key;  // optional
  std::string correlation_id;   // optional; not part of the fingerprint
  std::map<std::string, std::string> params;
};

struct StartResult {
  std::string session_id;
  SessionState state = SessionState::kNew;
  std::string correlation_id;
  bool replay = false;
};

struct StopResult {
  std::string session_id;
  SessionState state = SessionState::kNew;
};

// Counters (monotonic since the engine was created).
struct EngineStats {
  uint64_t start_intents = 0;
  uint64_t stop_intents = 0;
  uint64_t replays = 0;
  uint64_t busy = 0;             // starts answered with the busy error
  uint64_t store_failures = 0;   // starts/stops answered with EUNAVAILABLE
  uint64_t lease_losses = 0;
  uint64_t transitions = 0;
  uint64_t deadline_expiries = 0;
  uint64_t recovered = 0;        // sessions failed or re-queued at start-up
  uint64_t retention_deletes = 0;
  uint64_t active_sessions = 0;  // sessions this engine drives right now (gauge)
};

struct EngineOptions {
  std::vector<int> tuner_slots = {0, 1, 2, 3};
  std::string owner_id;  // this engine's identity; empty: a random one
  int64_t lease_ttl_ms = 30'000;
  int64_t heartbeat_ms = 10'000;
  int64_t start_deadline_ms = 30'000;  // NEW + STARTING
  int64_t stop_deadline_ms = 60'000;   // STOPPING (and DRAINING)
  int64_t idle_timeout_ms = 0;         // READY without Touch(); 0 = off
  int64_t retention_ms = 86'400'000;   // terminal sessions are deleted after it
  int64_t idempotency_ttl_ms = 600'000;
  int64_t sweep_interval_ms = 1'000;
  bool requeue_on_recovery = false;  // recovery re-acquires leases instead of failing
  bool background = true;  // false: no thread; the caller runs Poll()
};

class Engine {
 public:
  // `store`, `clock` (null: real), `pipeline` (null: none; sessions stay
  // STARTING until their deadline) and `audit` (null: no audit) must outlive
  // the engine. Runs start-up recovery before returning.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(EngineOptions options, Store* store,
                                                        Clock* clock,
                                                        std::shared_ptr<Pipeline> pipeline,
                                                        std::shared_ptr<AuditSink> audit);
  ~Engine();  // stops the thread; pending host calls are dropped, leases expire

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Errors: InvalidError (bad request, names the field); ConflictError (the
  // idempotency key was used with another request: HTTP 422); InFlightError
  // (the key's first request is still being created: HTTP 409;
  // `busy_session_id` receives that request's session id); BusyError (service
  // already active -- the message and `busy_session_id` name the active
  // session -- or no free tuner: HTTP 409); UnavailableError (the store
  // failed: nothing was left behind).
  absl::StatusOr<StartResult> Start(const StartRequest& request,
                                    std::string* busy_session_id = nullptr);
  absl::StatusOr<StopResult> Stop(std::string_view session_id);

  // Host reports. A report the store cannot take now (EUNAVAILABLE, returned
  // to the host) is also retried by the engine at each sweep until the store
  // takes it or the session has moved on; the host need not retry.
  absl::Status ReportReady(std::string_view session_id, uint64_t fencing_token);
  absl::Status ReportFailed(std::string_view session_id, uint64_t fencing_token, Reason reason,
                            std::string_view detail);
  absl::Status ReportStopped(std::string_view session_id, uint64_t fencing_token);
  // Marks activity on a READY session (pushes its idle deadline).
  absl::Status Touch(std::string_view session_id);

  // Runs `fn` on the engine's thread (or in Poll()) once `delay_ms` have
  // passed on the engine's clock. Dropped if the engine is destroyed first.
  void RunAfter(int64_t delay_ms, std::function<void()> fn);

  // Runs what is due now: queued host calls, timers, the heartbeat, the
  // sweeper. Called by the background thread; call it yourself when
  // EngineOptions::background is false.
  void Poll();

  EngineStats Stats() const;
  const std::string& owner_id() const { return options_.owner_id; }
  Clock* clock() const { return clock_; }
  // The store the engine works on (borrowed; the HTTP handler reads sessions
  // through it).
  Store* store() const { return store_; }

 private:
  // A session this engine drives: its host pipeline lives in this process.
  struct LocalSession {
    PipelineCommand command;
    bool host_started = false;  // Tune was called
    bool stop_sent = false;     // Stop was queued
  };

  Engine(EngineOptions options, Store* store, Clock* clock, std::shared_ptr<Pipeline> pipeline,
         std::shared_ptr<AuditSink> audit);

  int64_t NowMs() const { return clock_->NowUnixMs(); }
  int64_t DeadlineFor(SessionState state, int64_t now_ms) const;
  // UpdateSession + ApplyEvent + deadline; counts the transition. Returns the
  // stored record; `changed` (if given) says whether the state changed.
  absl::StatusOr<SessionRecord> Transition(std::string_view id, SessionEvent event, Reason reason,
                                           std::string_view detail,
                                           const std::function<void(SessionRecord&)>& extra = {},
                                           bool* changed = nullptr);
  // A start has just taken over `slot`'s tuner lease: the sessions this
  // engine still drives on it lost their lease. Each is failed (lease lost),
  // stopped on the host and forgotten here, so the engine never counts more
  // sessions than slots. Called without mu_.
  void LetGoOfSlot(int slot);
  // local_ changes go through these two (with mu_ held), which keep
  // local_slot_users_ in step.
  void AddLocal(const std::string& id, const PipelineCommand& command);
  void EraseLocal(const std::string& id);
  // The tuner lease keys, in slot order, minus the slots this engine's own
  // sessions hold: those are busy whatever the store says, unless a lease
  // was lost, and then the store's listing (the second pass) finds them.
  std::vector<std::string_view> FreeSlotCandidates(std::vector<size_t>& index_of);
  // The leases held now (unexpired), key -> holder, from one listing.
  absl::StatusOr<absl::flat_hash_map<std::string, std::string>> HeldLeases();
  // For a lease that was busy: when its holder has ended (terminal or gone)
  // and its own release has not come yet, releases it on the holder's behalf
  // (owner-checked: nothing is released if the holder changed meanwhile).
  // True when the key may be free now.
  bool ReleaseIfEnded(const std::string& key, const std::string& holder);
  // Queues `step` for Poll to retry at each sweep until it is OK, not found,
  // a conflict, or a state error (the session moved on meanwhile).
  void QueueRetry(std::function<absl::Status()> step);
  // Runs a host report; when the store was unavailable the report is also
  // queued to be retried (QueueRetry), so that a session is not left waiting
  // for its deadline. The first answer goes back to the host.
  absl::Status Retried(std::function<absl::Status()> report);
  // Undo of a failed start; steps that fail are queued for Poll to retry.
  void RollBack(const std::vector<std::function<absl::Status()>>& undo);
  void Enqueue(std::function<void()> task);
  void RunHostStart(const PipelineCommand& command);
  // Tells the host to stop a session this engine drives; one the host never
  // started ends here and then, and its final record comes back.
  std::optional<SessionRecord> QueueHostStop(const std::string& session_id);
  // Releases the session's leases and forgets it locally.
  void Finish(const SessionRecord& record);
  // Both of the session's leases in one ReleaseLeases call (one commit on
  // LMDB); a release the store refused is retried on the sweeper's turns.
  void ReleaseLeases(const SessionRecord& record);
  absl::Status CheckToken(std::string_view session_id, uint64_t fencing_token);
  // False when the store failed a read or a renewal: the beat is tried again
  // after a second (at most its interval) rather than a whole interval later.
  bool Heartbeat();
  void Sweep();
  void Recover();
  void Drain();
  void Audit(std::string_view type, std::string_view outcome, const std::string& principal,
             const std::string& session_id, std::string detail);
  void Loop();

  EngineOptions options_;
  // The lease key of each of options_.tuner_slots, in the same order.
  std::vector<std::string> tuner_keys_;
  Store* store_;
  Clock* clock_;
  std::shared_ptr<Pipeline> pipeline_;
  std::shared_ptr<AuditSink> audit_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool shutting_down_ = false;                     // guarded by mu_
  std::deque<std::function<void()>> tasks_;        // guarded by mu_
  std::multimap<int64_t, std::function<void()>> timers_;  // monotonic due -> fn; mu_
  std::map<std::string, LocalSession> local_;      // guarded by mu_
  // How many of local_ hold each tuner slot (by slot number): a start passes
  // these over without asking the store (see FreeSlotCandidates).
  std::vector<uint16_t> local_slot_users_;         // guarded by mu_
  std::vector<std::function<absl::Status()>> cleanups_;  // guarded by mu_
  int64_t next_heartbeat_ms_ = 0;                  // monotonic; guarded by mu_
  int64_t next_sweep_ms_ = 0;                      // monotonic; guarded by mu_
  std::mutex poll_mu_;  // one Poll at a time
  std::thread thread_;

  struct Counters {
    std::atomic<uint64_t> start_intents{0}, stop_intents{0}, replays{0}, busy{0},
        store_failures{0}, lease_losses{0}, transitions{0}, deadline_expiries{0}, recovered{0},
        retention_deletes{0};
  };
  mutable Counters counters_;
};

}  // namespace xg2g

#endif  // XG2G_LIB_ENGINE_ENGINE_H_

#include "lib/engine/engine.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "absl/container/flat_hash_map.h"

#include "lib/common/status.h"
#include "lib/crypto/crypto.h"

namespace xg2g {
namespace {

constexpr int kMaxSlot = 1023;
constexpr size_t kMaxServiceRef = 512;
constexpr size_t kMaxProfile = 64;
constexpr size_t kMaxPrincipal = 256;
constexpr size_t kMaxIdempotencyKey = 256;
constexpr size_t kMaxCorrelationId = 128;
constexpr size_t kMaxParams = 64;
constexpr size_t kMaxParamKey = 64;
constexpr size_t kMaxParamValue = 1024;
// A heartbeat the store failed is tried again this soon (or a whole interval
// later, if the interval is shorter).
constexpr int64_t kHeartbeatRetryMs = 1'000;

int64_t HeartbeatRetryMs(const EngineOptions& options) {
  return std::min(options.heartbeat_ms, kHeartbeatRetryMs);
}

std::string ServiceLeaseKey(std::string_view service_ref) {
  return fmt::format("service:{}", service_ref);
}
std::string TunerLeaseKey(int slot) { return fmt::format("tuner:{}", slot); }

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

bool AllOf(std::string_view s, bool (*pred)(char)) {
  return std::all_of(s.begin(), s.end(), pred);
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

absl::Status ValidateStart(const StartRequest& r) {
  if (r.service_ref.empty()) return InvalidError("serviceRef is missing");
  if (r.service_ref.size() > kMaxServiceRef) {
    return InvalidError(fmt::format("serviceRef is longer than {} bytes", kMaxServiceRef));
  }
  if (HasControl(r.service_ref)) return InvalidError("serviceRef contains control characters");
  if (r.profile.size() > kMaxProfile || !AllOf(r.profile, IsNameChar)) {
    return InvalidError(
        fmt::format("profile must be at most {} characters of [A-Za-z0-9._-]", kMaxProfile));
  }
  if (r.principal.size() > kMaxPrincipal || HasControl(r.principal)) {
    return InvalidError("principal is too long or contains control characters");
  }
  if (r.idempotency_key.size() > kMaxIdempotencyKey ||
      !AllOf(r.idempotency_key, [](char c) { return c > 0x20 && c < 0x7f; })) {
    return InvalidError(fmt::format(
        "idempotencyKey must be at most {} printable ASCII characters without spaces",
        kMaxIdempotencyKey));
  }
  if (r.correlation_id.size() > kMaxCorrelationId || !AllOf(r.correlation_id, IsNameChar)) {
    return InvalidError(fmt::format("correlationId must be at most {} characters of [A-Za-z0-9._-]",
                                    kMaxCorrelationId));
  }
  if (r.params.size() > kMaxParams) {
    return InvalidError(fmt::format("params has more than {} entries", kMaxParams));
  }
  for (const auto& [key, value] : r.params) {
    if (key.empty() || key.size() > kMaxParamKey || HasControl(key)) {
      return InvalidError(fmt::format("params: a key is empty, longer than {} bytes or contains "
                                      "control characters",
                                      kMaxParamKey));
    }
    if (value.size() > kMaxParamValue) {
      return InvalidError(fmt::format("params.{} is longer than {} bytes", key, kMaxParamValue));
    }
  }
  return absl::OkStatus();
}

// The request's identity for idempotency: type, serviceRef, profile, params
// (in key order) and the principal; length-prefixed so no two requests share
// an encoding. The correlation id is deliberately left out.
std::string Fingerprint(const StartRequest& r, std::string_view profile) {
  std::string canonical = "stream.start";
  auto add = [&canonical](std::string_view s) {
    canonical += fmt::format("|{}:{}", s.size(), s);
  };
  add(r.service_ref);
  add(profile);
  add(r.principal);
  canonical += fmt::format("|{}", r.params.size());
  for (const auto& [key, value] : r.params) {
    add(key);
    add(value);
  }
  return Sha256Hex(canonical);
}

// Store key of an idempotency key: scoped to the principal.
std::string ScopedIdempotencyKey(std::string_view principal, std::string_view key) {
  return fmt::format("{}:{}", Sha256Hex(principal).substr(0, 32), key);
}

absl::Status WithContext(const absl::Status& status, std::string_view what) {
  if (status.ok()) return status;
  return MakeError(CodeOf(status), fmt::format("{}: {}", what, FromAbsl(status.message())));
}

int SlotOf(const SessionRecord& record) {
  auto it = record.context_data.find("tuner_slot");
  if (it == record.context_data.end()) return -1;
  int slot = -1;
  const auto* begin = it->second.data();
  const auto* end = begin + it->second.size();
  auto [ptr, ec] = std::from_chars(begin, end, slot);
  if (ec != std::errc() || ptr != end) return -1;
  return slot;
}

uint64_t TokenOf(const SessionRecord& record) {
  auto it = record.context_data.find("fencing_token");
  if (it == record.context_data.end()) return 0;
  uint64_t token = 0;
  const auto* begin = it->second.data();
  const auto* end = begin + it->second.size();
  auto [ptr, ec] = std::from_chars(begin, end, token);
  if (ec != std::errc() || ptr != end) return 0;
  return token;
}

PipelineCommand CommandOf(const SessionRecord& record) {
  return PipelineCommand{record.session_id, record.service_ref, record.profile.name,
                         SlotOf(record), TokenOf(record)};
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseSlotSpec(std::string_view spec) {
  if (spec.empty()) return InvalidError("tuner slots: the spec is empty");
  std::vector<int> slots;
  std::set<int> seen;
  auto parse_number = [](std::string_view text, int& out) {
    if (text.empty() || text.size() > 4) return false;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size() && out >= 0 && out <= kMaxSlot;
  };
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string_view part = spec.substr(pos, comma - pos);
    if (part.empty()) {
      return InvalidError(fmt::format("tuner slots: empty entry in '{}'", spec));
    }
    int first = 0;
    int last = 0;
    const size_t dash = part.find('-');
    const bool ok = dash == std::string_view::npos
                        ? parse_number(part, first) && (last = first, true)
                        : parse_number(part.substr(0, dash), first) &&
                              parse_number(part.substr(dash + 1), last);
    if (!ok) {
      return InvalidError(fmt::format(
          "tuner slots: '{}' is not a slot number (0-{}) or a range of them", part, kMaxSlot));
    }
    if (last < first) {
      return InvalidError(fmt::format("tuner slots: range '{}' runs backwards", part));
    }
    for (int slot = first; slot <= last; ++slot) {
      if (!seen.insert(slot).second) {
        return InvalidError(fmt::format("tuner slots: slot {} is listed twice ('{}')", slot, part));
      }
      slots.push_back(slot);
    }
    pos = comma + 1;
  }
  return slots;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(EngineOptions options, Store* store,
                                                       Clock* clock,
                                                       std::shared_ptr<Pipeline> pipeline,
                                                       std::shared_ptr<AuditSink> audit) {
  if (store == nullptr) return InvalidError("engine: store is null");
  if (options.tuner_slots.empty()) return InvalidError("engine: no tuner slots configured");
  if (options.lease_ttl_ms <= 0) return InvalidError("engine: lease ttl must be > 0");
  if (options.heartbeat_ms <= 0 || options.heartbeat_ms >= options.lease_ttl_ms) {
    return InvalidError(fmt::format("engine: heartbeat ({} ms) must be > 0 and shorter than the "
                                    "lease ttl ({} ms)",
                                    options.heartbeat_ms, options.lease_ttl_ms));
  }
  for (const auto& [name, value] :
       {std::pair<const char*, int64_t>{"start deadline", options.start_deadline_ms},
        {"stop deadline", options.stop_deadline_ms},
        {"retention", options.retention_ms},
        {"idempotency ttl", options.idempotency_ttl_ms},
        {"sweep interval", options.sweep_interval_ms}}) {
    if (value <= 0) return InvalidError(fmt::format("engine: {} must be > 0", name));
  }
  if (options.idle_timeout_ms < 0) return InvalidError("engine: idle timeout must be >= 0");
  if (options.owner_id.empty()) options.owner_id = "engine-" + RandomHex(8);
  if (clock == nullptr) clock = Clock::Real();
  std::unique_ptr<Engine> engine(
      new Engine(std::move(options), store, clock, std::move(pipeline), std::move(audit)));
  engine->Recover();
  if (engine->options_.background) {
    engine->thread_ = std::thread([e = engine.get()] { e->Loop(); });
  }
  return engine;
}

Engine::Engine(EngineOptions options, Store* store, Clock* clock,
               std::shared_ptr<Pipeline> pipeline, std::shared_ptr<AuditSink> audit)
    : options_(std::move(options)),
      store_(store),
      clock_(clock),
      pipeline_(std::move(pipeline)),
      audit_(std::move(audit)) {
  local_slot_users_.assign(kMaxSlot + 1, 0);
  tuner_keys_.reserve(options_.tuner_slots.size());
  for (int slot : options_.tuner_slots) tuner_keys_.push_back(TunerLeaseKey(slot));
  const int64_t now = clock_->MonotonicMs();
  next_heartbeat_ms_ = now + options_.heartbeat_ms;
  next_sweep_ms_ = now + options_.sweep_interval_ms;
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutting_down_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  Drain();
}

int64_t Engine::DeadlineFor(SessionState state, int64_t now_ms) const {
  switch (state) {
    case SessionState::kNew:
    case SessionState::kStarting: return now_ms + options_.start_deadline_ms;
    case SessionState::kReady:
      return options_.idle_timeout_ms > 0 ? now_ms + options_.idle_timeout_ms : 0;
    case SessionState::kDraining:
    case SessionState::kStopping: return now_ms + options_.stop_deadline_ms;
    case SessionState::kFailed:
    case SessionState::kCancelled:
    case SessionState::kStopped: return now_ms + options_.retention_ms;
  }
  return 0;
}

absl::StatusOr<SessionRecord> Engine::Transition(
    std::string_view id, SessionEvent event, Reason reason, std::string_view detail,
    const std::function<void(SessionRecord&)>& extra, bool* changed_out) {
  bool changed = false;
  auto stored = store_->UpdateSession(id, [&](SessionRecord& record) -> absl::Status {
    const SessionState before = record.state;
    const int64_t now = NowMs();
    XG2G_RETURN_IF_ERROR(ApplyEvent(record, event, reason, detail, now / 1000));
    changed = record.state != before;
    if (changed) record.deadline_unix_ms = DeadlineFor(record.state, now);
    if (extra) extra(record);
    return absl::OkStatus();
  });
  if (stored.ok() && changed) counters_.transitions.fetch_add(1, std::memory_order_relaxed);
  if (changed_out != nullptr) *changed_out = stored.ok() && changed;
  return stored;
}

void Engine::RollBack(const std::vector<std::function<absl::Status()>>& undo) {
  // Newest first: leases before the records that name them.
  for (size_t i = undo.size(); i-- > 0;) {
    const std::function<absl::Status()>& step = undo[i];
    absl::Status status = step();
    if (!status.ok() && CodeOf(status) != ErrorCode::kNotFound) {
      std::lock_guard<std::mutex> lock(mu_);
      cleanups_.push_back(step);
    }
  }
}

absl::StatusOr<StartResult> Engine::Start(const StartRequest& request,
                                          std::string* busy_session_id) {
  counters_.start_intents.fetch_add(1, std::memory_order_relaxed);
  if (busy_session_id != nullptr) busy_session_id->clear();
  XG2G_RETURN_IF_ERROR(ValidateStart(request));

  const int64_t now = NowMs();
  SessionRecord record;
  record.session_id = NewSessionId();
  record.service_ref = request.service_ref;
  if (!request.profile.empty()) record.profile.name = request.profile;
  record.principal = request.principal;
  // Without one from the client, the session id's first half correlates the
  // logs well enough and costs no second trip to the random generator.
  record.correlation_id = request.correlation_id.empty() ? record.session_id.substr(0, 16)
                                                         : request.correlation_id;
  record.created_at_unix = record.updated_at_unix = now / 1000;
  record.deadline_unix_ms = DeadlineFor(SessionState::kNew, now);
  record.context_data["owner"] = options_.owner_id;

  auto store_failed = [this](const absl::Status& status, std::string_view step) {
    counters_.store_failures.fetch_add(1, std::memory_order_relaxed);
    return WithContext(status, fmt::format("start: {}", step));
  };

  std::vector<std::function<absl::Status()>> undo;
  const std::string id = record.session_id;
  if (!request.idempotency_key.empty()) {
    const std::string key = ScopedIdempotencyKey(request.principal, request.idempotency_key);
    const std::string fingerprint = Fingerprint(request, record.profile.name);
    auto outcome = store_->PutSessionWithIdempotency(record, key, fingerprint,
                                                     options_.idempotency_ttl_ms);
    if (!outcome.ok()) return store_failed(outcome.status(), "storing the session");
    if (!outcome->stored) {
      if (outcome->existing.fingerprint != fingerprint) {
        return ConflictError(fmt::format(
            "idempotency key '{}' was first used with a different request (session {})",
            request.idempotency_key, outcome->existing.session_id));
      }
      auto existing = store_->GetSession(outcome->existing.session_id);
      if (!existing.ok() && CodeOf(existing.status()) != ErrorCode::kNotFound) {
        return store_failed(existing.status(), "reading the replayed session");
      }
      if (existing.ok() && existing->state == SessionState::kNew) {
        if (busy_session_id != nullptr) *busy_session_id = outcome->existing.session_id;
        return InFlightError(fmt::format(
            "idempotency key '{}': the first request (session {}) is still being created",
            request.idempotency_key, outcome->existing.session_id));
      }
      counters_.replays.fetch_add(1, std::memory_order_relaxed);
      StartResult replay;
      replay.session_id = outcome->existing.session_id;
      replay.state = existing.ok() ? existing->state : SessionState::kStopped;
      replay.correlation_id = existing.ok() ? existing->correlation_id : "";
      replay.replay = true;
      Audit("session_start", "replay", request.principal, replay.session_id, "");
      return replay;
    }
    undo.emplace_back([this, key] { return store_->DeleteIdempotency(key); });
  } else {
    absl::Status put = store_->PutSession(record);
    if (!put.ok()) return store_failed(put, "storing the session");
  }
  undo.insert(undo.begin(), [this, id] { return store_->DeleteSession(id); });

  // Fails the new session as busy. A store failure here is a store failure of
  // the whole start: everything is undone.
  auto answer_busy = [&](const std::string& message) -> absl::Status {
    auto failed = Transition(id, SessionEvent::kNoTuner, Reason::kLeaseBusy, message);
    if (!failed.ok()) {
      RollBack(undo);
      return store_failed(failed.status(), "recording the busy answer");
    }
    counters_.busy.fetch_add(1, std::memory_order_relaxed);
    Audit("session_start", "busy", request.principal, id, message);
    return BusyError(message);
  };

  // One active session per service.
  const std::string service_key = ServiceLeaseKey(record.service_ref);
  auto service_lease = store_->AcquireLease(service_key, id, options_.lease_ttl_ms);
  std::string active;
  if (!service_lease.ok() && CodeOf(service_lease.status()) == ErrorCode::kBusy) {
    auto holder = store_->GetLease(service_key);
    if (holder.ok()) active = holder->owner;
    if (!holder.ok() ? CodeOf(holder.status()) == ErrorCode::kNotFound
                     : ReleaseIfEnded(service_key, active)) {
      service_lease = store_->AcquireLease(service_key, id, options_.lease_ttl_ms);
      if (!service_lease.ok()) {  // taken again meanwhile: name the new holder
        auto again = store_->GetLease(service_key);
        active = again.ok() ? again->owner : "";
      }
    }
  }
  if (!service_lease.ok()) {
    if (CodeOf(service_lease.status()) != ErrorCode::kBusy) {
      RollBack(undo);
      return store_failed(service_lease.status(), "taking the service lease");
    }
    if (busy_session_id != nullptr) *busy_session_id = active;
    return answer_busy(fmt::format("service '{}' is already active in session {}",
                                   record.service_ref, active.empty() ? "(unknown)" : active));
  }
  undo.emplace_back([this, service_key, id] { return store_->ReleaseLease(service_key, id); });

  // The first free tuner slot wins: the store finds it (one step, not one
  // try per busy slot: a round trip each on Redis). When none is free, a
  // second pass lists the leases and frees the slots of sessions that have
  // ended but not yet released them (the listed holder is checked; the
  // release is owner-checked, so a stale listing frees nothing it should not).
  int slot = -1;
  uint64_t token = 0;
  auto take = [&](size_t index, uint64_t fencing_token) {
    slot = options_.tuner_slots[index];
    token = fencing_token;
    undo.emplace_back(
        [this, key = tuner_keys_[index], id] { return store_->ReleaseLease(key, id); });
  };
  std::vector<size_t> index_of;
  const std::vector<std::string_view> candidates = FreeSlotCandidates(index_of);
  auto first = candidates.empty()
                   ? absl::StatusOr<FirstLeaseGrant>(BusyError("every slot is held here"))
                   : store_->AcquireFirstFreeLease(candidates, id, options_.lease_ttl_ms);
  if (first.ok()) {
    take(index_of[first->index], first->grant.fencing_token);
  } else if (CodeOf(first.status()) != ErrorCode::kBusy) {
    RollBack(undo);
    return store_failed(first.status(), "taking a tuner lease");
  } else {
    auto held = HeldLeases();
    if (!held.ok()) {
      RollBack(undo);
      return store_failed(held.status(), "listing the leases");
    }
    for (size_t i = 0; i < tuner_keys_.size(); ++i) {
      const std::string& key = tuner_keys_[i];
      const auto holder = held->find(key);
      if (holder != held->end() && !ReleaseIfEnded(key, holder->second)) continue;
      auto grant = store_->AcquireLease(key, id, options_.lease_ttl_ms);
      if (grant.ok()) {
        take(i, grant->fencing_token);
        LetGoOfSlot(slot);
        break;
      }
      if (CodeOf(grant.status()) != ErrorCode::kBusy) {
        RollBack(undo);
        return store_failed(grant.status(), fmt::format("taking tuner lease {}", key));
      }
    }
  }
  if (slot < 0) {
    absl::Status released = store_->ReleaseLease(service_key, id);
    if (!released.ok()) {
      RollBack(undo);
      return store_failed(released, "releasing the service lease");
    }
    undo.pop_back();  // the service lease is gone already
    return answer_busy(
        fmt::format("no free tuner: all {} slots are busy", options_.tuner_slots.size()));
  }

  auto starting = Transition(id, SessionEvent::kLeasesAcquired, Reason::kNone, "",
                             [&](SessionRecord& r) {
                               r.context_data["tuner_slot"] = std::to_string(slot);
                               r.context_data["fencing_token"] = std::to_string(token);
                               r.context_data["owner"] = options_.owner_id;
                             });
  if (!starting.ok()) {
    RollBack(undo);
    return store_failed(starting.status(), "recording the leases");
  }

  const PipelineCommand command = CommandOf(*starting);
  {
    std::lock_guard<std::mutex> lock(mu_);
    AddLocal(id, command);
  }
  Enqueue([this, command] { RunHostStart(command); });
  Audit("session_start", "ok", request.principal, id,
        fmt::format("service {} on tuner {}", record.service_ref, slot));
  return StartResult{id, starting->state, starting->correlation_id, false};
}

absl::StatusOr<absl::flat_hash_map<std::string, std::string>> Engine::HeldLeases() {
  XG2G_ASSIGN_OR_RETURN(std::vector<LeaseInfo> leases, store_->ListLeases());
  absl::flat_hash_map<std::string, std::string> held;
  const int64_t now = store_->NowMs();
  for (LeaseInfo& lease : leases) {
    if (lease.expires_at_ms > now) held.emplace(std::move(lease.key), std::move(lease.owner));
  }
  return held;
}

bool Engine::ReleaseIfEnded(const std::string& key, const std::string& holder) {
  auto session = store_->GetSession(holder);
  if (session.ok() ? !IsTerminal(session->state)
                   : CodeOf(session.status()) != ErrorCode::kNotFound) {
    return false;  // live, or the store cannot say: the lease stands
  }
  // Owner-checked: releases nothing if the holder changed meanwhile.
  const absl::Status released = store_->ReleaseLease(key, holder);
  return released.ok() || CodeOf(released) == ErrorCode::kNotFound ||
         CodeOf(released) == ErrorCode::kConflict;
}

void Engine::Enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_all();
}

void Engine::RunAfter(int64_t delay_ms, std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutting_down_) return;
    timers_.emplace(clock_->MonotonicMs() + std::max<int64_t>(delay_ms, 0), std::move(fn));
  }
  cv_.notify_all();
}

void Engine::RunHostStart(const PipelineCommand& command) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = local_.find(command.session_id);
    if (it == local_.end() || it->second.stop_sent) return;  // stopped before we got here
    it->second.host_started = true;
  }
  if (!pipeline_) return;
  absl::Status tuned = pipeline_->Tune(command);
  if (!tuned.ok()) {
    (void)ReportFailed(command.session_id, command.fencing_token, Reason::kTuneFailed,
                       FromAbsl(tuned.message()));
    return;
  }
  absl::Status started = pipeline_->Start(command);
  if (!started.ok()) {
    (void)ReportFailed(command.session_id, command.fencing_token, Reason::kFfmpegStartFailed,
                       FromAbsl(started.message()));
  }
}

std::optional<SessionRecord> Engine::QueueHostStop(const std::string& session_id) {
  PipelineCommand command;
  bool send = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = local_.find(session_id);
    if (it == local_.end() || it->second.stop_sent) return std::nullopt;
    it->second.stop_sent = true;
    send = it->second.host_started;
    command = it->second.command;
  }
  if (!send) {
    // The host never heard of it: the teardown is done already.
    auto end = [this, session_id]() -> absl::StatusOr<SessionRecord> {
      auto stopped = Transition(session_id, SessionEvent::kHostStopped, Reason::kNone, "");
      if (stopped.ok()) Finish(*stopped);
      return stopped;
    };
    auto stopped = end();
    if (!stopped.ok()) {
      if (CodeOf(stopped.status()) == ErrorCode::kUnavailable) {
        QueueRetry([end] { return end().status(); });
      }
      return std::nullopt;
    }
    return *stopped;
  }
  Enqueue([this, command] {
    if (pipeline_) pipeline_->Stop(command);
  });
  return std::nullopt;
}

void Engine::ReleaseLeases(const SessionRecord& record) {
  const std::string service_key = ServiceLeaseKey(record.service_ref);
  const int slot = SlotOf(record);
  const std::string tuner_key = slot >= 0 ? TunerLeaseKey(slot) : std::string();
  std::vector<LeaseRef> refs = {{service_key, record.session_id}};
  if (slot >= 0) refs.push_back(LeaseRef{tuner_key, record.session_id});
  auto answers = store_->ReleaseLeases(refs);
  const bool answered = answers.ok() && answers->size() == refs.size();
  for (size_t i = 0; i < refs.size(); ++i) {
    const absl::Status released = answered ? (*answers)[i] : answers.status();
    if (!released.ok() && CodeOf(released) != ErrorCode::kNotFound &&
        CodeOf(released) != ErrorCode::kConflict) {
      // Retried one by one on the sweeper's turns until the store takes it.
      std::lock_guard<std::mutex> lock(mu_);
      cleanups_.emplace_back([this, key = std::string(refs[i].key), owner = record.session_id] {
        return store_->ReleaseLease(key, owner);
      });
    }
  }
}

void Engine::Finish(const SessionRecord& record) {
  // Forgotten here before its slot is free in the store: a start that takes
  // the slot the moment it is released never finds it still counted here.
  {
    std::lock_guard<std::mutex> lock(mu_);
    EraseLocal(record.session_id);
  }
  ReleaseLeases(record);
}

void Engine::LetGoOfSlot(int slot) {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (slot < 0 || slot > kMaxSlot || local_slot_users_[slot] == 0) return;
    for (const auto& [id, local] : local_) {
      if (local.command.slot == slot) ids.push_back(id);
    }
  }
  for (const std::string& id : ids) {
    // Its lease ran out or it has ended: failed as the next heartbeat would
    // fail it (a no-op for an ended one), stopped on the host (queued ahead
    // of the new session's tune) and forgotten here.
    bool changed = false;
    auto failed = Transition(id, SessionEvent::kLeaseLost, Reason::kLeaseExpired,
                             "its tuner lease was taken over", {}, &changed);
    if (changed) counters_.lease_losses.fetch_add(1, std::memory_order_relaxed);
    QueueHostStop(id);
    if (failed.ok()) {
      Finish(*failed);  // its tuner lease is not its own any more: released only if it were
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      EraseLocal(id);
    }
  }
}

void Engine::AddLocal(const std::string& id, const PipelineCommand& command) {
  EraseLocal(id);  // a session registered again keeps one count, on its new slot
  local_.emplace(id, LocalSession{command, false, false});
  if (command.slot >= 0 && command.slot <= kMaxSlot) ++local_slot_users_[command.slot];
}

void Engine::EraseLocal(const std::string& id) {
  auto it = local_.find(id);
  if (it == local_.end()) return;
  const int slot = it->second.command.slot;
  if (slot >= 0 && slot <= kMaxSlot && local_slot_users_[slot] > 0) --local_slot_users_[slot];
  local_.erase(it);
}

std::vector<std::string_view> Engine::FreeSlotCandidates(std::vector<size_t>& index_of) {
  std::vector<std::string_view> keys;
  keys.reserve(tuner_keys_.size());
  index_of.clear();
  index_of.reserve(tuner_keys_.size());
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < tuner_keys_.size(); ++i) {
    if (local_slot_users_[options_.tuner_slots[i]] != 0) continue;
    keys.push_back(tuner_keys_[i]);
    index_of.push_back(i);
  }
  return keys;
}

absl::Status Engine::CheckToken(std::string_view session_id, uint64_t fencing_token) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(session_id));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = local_.find(std::string(session_id));
  if (it == local_.end()) {
    return NotFoundError(fmt::format("session {} is not driven by this engine", session_id));
  }
  if (it->second.command.fencing_token != fencing_token) {
    return ConflictError(fmt::format("session {}: stale fencing token {} (current {})", session_id,
                                     fencing_token, it->second.command.fencing_token));
  }
  return absl::OkStatus();
}

void Engine::QueueRetry(std::function<absl::Status()> step) {
  std::lock_guard<std::mutex> lock(mu_);
  cleanups_.emplace_back([step = std::move(step)] {
    absl::Status status = step();
    // The session moved on meanwhile (a deadline, a stop): nothing to record.
    return CodeOf(status) == ErrorCode::kState ? absl::OkStatus() : status;
  });
}

absl::Status Engine::Retried(std::function<absl::Status()> report) {
  absl::Status status = report();
  if (CodeOf(status) == ErrorCode::kUnavailable) QueueRetry(std::move(report));
  return status;
}

absl::Status Engine::ReportReady(std::string_view session_id, uint64_t fencing_token) {
  return Retried([this, id = std::string(session_id), fencing_token] {
    XG2G_RETURN_IF_ERROR(CheckToken(id, fencing_token));
    return Transition(id, SessionEvent::kHostReady, Reason::kNone, "").status();
  });
}

absl::Status Engine::ReportFailed(std::string_view session_id, uint64_t fencing_token,
                                  Reason reason, std::string_view detail) {
  return Retried([this, id = std::string(session_id), fencing_token, reason,
                  detail = std::string(detail)] {
    XG2G_RETURN_IF_ERROR(CheckToken(id, fencing_token));
    auto failed = Transition(id, SessionEvent::kHostFailed, reason, detail);
    if (!failed.ok()) return failed.status();
    if (IsTerminal(failed->state)) Finish(*failed);
    return absl::OkStatus();
  });
}

absl::Status Engine::ReportStopped(std::string_view session_id, uint64_t fencing_token) {
  return Retried([this, id = std::string(session_id), fencing_token] {
    XG2G_RETURN_IF_ERROR(CheckToken(id, fencing_token));
    auto stopped = Transition(id, SessionEvent::kHostStopped, Reason::kNone, "");
    if (!stopped.ok() && CodeOf(stopped.status()) == ErrorCode::kState) {
      // The pipeline ended without being asked to: that is a failure.
      stopped = Transition(id, SessionEvent::kHostFailed, Reason::kProcessEnded,
                           "the pipeline stopped on its own");
    }
    if (!stopped.ok()) return stopped.status();
    if (IsTerminal(stopped->state)) Finish(*stopped);
    return absl::OkStatus();
  });
}

absl::Status Engine::Touch(std::string_view session_id) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(session_id));
  if (options_.idle_timeout_ms <= 0) return absl::OkStatus();
  auto touched = store_->UpdateSession(session_id, [&](SessionRecord& record) -> absl::Status {
    if (record.state != SessionState::kReady) {
      return StateError(fmt::format("session {} is {}, not READY", session_id,
                                    StateName(record.state)));
    }
    record.deadline_unix_ms = NowMs() + options_.idle_timeout_ms;
    return absl::OkStatus();
  });
  return touched.status();
}

absl::StatusOr<StopResult> Engine::Stop(std::string_view session_id) {
  counters_.stop_intents.fetch_add(1, std::memory_order_relaxed);
  XG2G_RETURN_IF_ERROR(ValidateSessionId(session_id));
  auto stopped = Transition(session_id, SessionEvent::kStop, Reason::kClientStop, "");
  if (!stopped.ok()) {
    if (CodeOf(stopped.status()) == ErrorCode::kUnavailable) {
      counters_.store_failures.fetch_add(1, std::memory_order_relaxed);
    }
    return WithContext(stopped.status(), "stop");
  }
  const std::string id(session_id);
  if (IsTerminal(stopped->state)) {
    // NEW -> STOPPED (or already over): nothing runs, only leases may remain.
    Finish(*stopped);
  } else if (stopped->state == SessionState::kStopping) {
    // A no-op unless this engine drives it; ends it here if the host never
    // started it.
    if (auto ended = QueueHostStop(id)) stopped = std::move(*ended);
  }
  Audit("session_stop", "ok", stopped->principal, id,
        fmt::format("state {}", StateName(stopped->state)));
  return StopResult{id, stopped->state};
}

bool Engine::Heartbeat() {
  struct Renewal {
    std::string id, service_key, tuner_key;
  };
  std::vector<Renewal> live;
  std::vector<std::string> ids;
  bool complete = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, local] : local_) ids.push_back(id);
  }
  for (const std::string& id : ids) {
    auto record = store_->GetSession(id);
    if (!record.ok()) {
      if (CodeOf(record.status()) == ErrorCode::kNotFound) {
        // Deleted behind our back: the pipeline has no session any more.
        QueueHostStop(id);
        std::lock_guard<std::mutex> lock(mu_);
        EraseLocal(id);
      }
      complete = false;  // store trouble: the beat is tried again soon
      continue;
    }
    if (IsTerminal(record->state)) {
      QueueHostStop(id);
      Finish(*record);
      continue;
    }
    if (record->state == SessionState::kStopping) QueueHostStop(id);
    live.push_back(Renewal{id, ServiceLeaseKey(record->service_ref),
                           TunerLeaseKey(SlotOf(*record))});
  }
  if (live.empty()) return complete;

  // Every lease of every live session renewed in one store call (one write
  // transaction and one sync on LMDB, instead of two per session).
  std::vector<LeaseRef> refs;
  refs.reserve(2 * live.size());
  for (const Renewal& r : live) {
    refs.push_back(LeaseRef{r.service_key, r.id});
    refs.push_back(LeaseRef{r.tuner_key, r.id});
  }
  auto renewed = store_->RenewLeases(refs, options_.lease_ttl_ms);
  if (!renewed.ok() || renewed->size() != refs.size()) return false;
  for (size_t i = 0; i < live.size(); ++i) {
    bool lost = false;
    for (size_t j = 2 * i; j < 2 * i + 2; ++j) {
      const absl::StatusOr<LeaseGrant>& answer = (*renewed)[j];
      if (answer.ok()) continue;
      const ErrorCode code = CodeOf(answer.status());
      if (code == ErrorCode::kNotFound || code == ErrorCode::kConflict) {
        lost = true;
      } else {
        complete = false;  // this one is renewed on the retry
      }
    }
    if (!lost) continue;
    const std::string& id = live[i].id;
    // Counted only when it changed the session: a stop on another thread may
    // have ended it and released its leases since it was read above.
    bool changed = false;
    auto failed = Transition(id, SessionEvent::kLeaseLost, Reason::kLeaseExpired,
                             "a lease renewal failed", {}, &changed);
    if (changed) counters_.lease_losses.fetch_add(1, std::memory_order_relaxed);
    QueueHostStop(id);
    if (failed.ok()) Finish(*failed);
  }
  return complete;
}

void Engine::Sweep() {
  const int64_t now = NowMs();
  std::vector<std::string> due;
  absl::Status scanned = store_->ScanSessions([&](const SessionRecord& record) {
    if (record.deadline_unix_ms != 0 && record.deadline_unix_ms <= now) {
      due.push_back(record.session_id);
    }
    return true;
  });
  if (!scanned.ok()) return;  // next sweep

  for (const std::string& id : due) {
    auto record = store_->GetSession(id);
    if (!record.ok() || record->deadline_unix_ms == 0 || record->deadline_unix_ms > NowMs()) {
      continue;
    }
    if (IsTerminal(record->state)) {
      if (store_->DeleteSession(id).ok()) {
        counters_.retention_deletes.fetch_add(1, std::memory_order_relaxed);
      }
      continue;
    }
    const SessionEvent event = record->state == SessionState::kReady ? SessionEvent::kIdleTimeout
                                                                     : SessionEvent::kDeadline;
    auto next = Transition(id, event, Reason::kNone,
                           fmt::format("{} deadline passed", StateName(record->state)));
    if (!next.ok()) continue;
    counters_.deadline_expiries.fetch_add(1, std::memory_order_relaxed);
    if (IsTerminal(next->state)) {
      QueueHostStop(id);
      Finish(*next);
    } else if (next->state == SessionState::kStopping) {
      QueueHostStop(id);
    }
  }
}

void Engine::Recover() {
  std::vector<SessionRecord> candidates;
  absl::Status scanned = store_->ScanSessions([&](const SessionRecord& record) {
    if (record.state != SessionState::kNew && !IsTerminal(record.state)) {
      candidates.push_back(record);
    }
    return true;
  });
  if (!scanned.ok()) return;  // the sweeper's deadlines still apply

  for (const SessionRecord& record : candidates) {
    const auto owner = record.context_data.find("owner");
    const bool ours = owner != record.context_data.end() && owner->second == options_.owner_id;
    auto lease = store_->GetLease(TunerLeaseKey(SlotOf(record)));
    const bool lease_gone = !lease.ok() || lease->owner != record.session_id;
    // A session of ours from an earlier run lost its pipeline with that run.
    if (!lease_gone && !ours) continue;

    if (options_.requeue_on_recovery && record.state == SessionState::kStarting) {
      // Re-queue: take the leases again and start the host pipeline anew.
      ReleaseLeases(record);
      auto service = store_->AcquireLease(ServiceLeaseKey(record.service_ref), record.session_id,
                                          options_.lease_ttl_ms);
      int slot = -1;
      uint64_t token = 0;
      if (service.ok()) {
        const std::vector<std::string_view> keys(tuner_keys_.begin(), tuner_keys_.end());
        auto first = store_->AcquireFirstFreeLease(keys, record.session_id,
                                                   options_.lease_ttl_ms);
        if (first.ok()) {
          slot = options_.tuner_slots[first->index];
          token = first->grant.fencing_token;
        }
      }
      if (slot >= 0) {
        auto requeued = store_->UpdateSession(record.session_id, [&](SessionRecord& r) {
          if (r.state != SessionState::kStarting) return StateError("no longer STARTING");
          r.context_data["tuner_slot"] = std::to_string(slot);
          r.context_data["fencing_token"] = std::to_string(token);
          r.context_data["owner"] = options_.owner_id;
          r.deadline_unix_ms = DeadlineFor(SessionState::kStarting, NowMs());
          return absl::OkStatus();
        });
        if (requeued.ok()) {
          counters_.recovered.fetch_add(1, std::memory_order_relaxed);
          const PipelineCommand command = CommandOf(*requeued);
          {
            std::lock_guard<std::mutex> lock(mu_);
            AddLocal(record.session_id, command);
          }
          Enqueue([this, command] { RunHostStart(command); });
          continue;
        }
      }
      // Could not re-queue: fail it like any other.
    }
    auto failed = Transition(record.session_id, SessionEvent::kLeaseLost, Reason::kLeaseExpired,
                             "recovered at start-up: its lease or pipeline is gone");
    if (failed.ok()) {
      counters_.recovered.fetch_add(1, std::memory_order_relaxed);
      ReleaseLeases(*failed);
    }
  }
}

void Engine::Drain() {
  std::map<std::string, LocalSession> local;
  {
    std::lock_guard<std::mutex> lock(mu_);
    local.swap(local_);
    local_slot_users_.assign(kMaxSlot + 1, 0);
    tasks_.clear();
    timers_.clear();
  }
  for (const auto& [id, session] : local) {
    if (session.host_started && !session.stop_sent && pipeline_) pipeline_->Stop(session.command);
    auto record = store_->GetSession(id);
    if (!record.ok()) continue;
    absl::StatusOr<SessionRecord> ended = *record;
    if (record->state == SessionState::kNew || record->state == SessionState::kStarting) {
      ended = Transition(id, SessionEvent::kCancel, Reason::kCancelled, "engine shut down");
    } else if (!IsTerminal(record->state)) {
      ended = Transition(id, SessionEvent::kStop, Reason::kClientStop, "engine shut down");
      if (ended.ok() && !IsTerminal(ended->state)) {
        ended = Transition(id, SessionEvent::kHostStopped, Reason::kNone, "");
      }
    }
    if (ended.ok()) ReleaseLeases(*ended);
  }
}

void Engine::Poll() {
  std::lock_guard<std::mutex> poll_lock(poll_mu_);
  std::deque<std::function<void()>> tasks;
  std::vector<std::function<void()>> timers;
  std::vector<std::function<absl::Status()>> cleanups;
  bool heartbeat = false;
  bool sweep = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks.swap(tasks_);
    const int64_t now = clock_->MonotonicMs();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      timers.push_back(std::move(timers_.begin()->second));
      timers_.erase(timers_.begin());
    }
    if (now >= next_heartbeat_ms_) {
      heartbeat = true;
      next_heartbeat_ms_ = now + options_.heartbeat_ms;
    }
    if (now >= next_sweep_ms_) {
      sweep = true;
      next_sweep_ms_ = now + options_.sweep_interval_ms;
      cleanups.swap(cleanups_);
    }
  }
  for (auto& task : tasks) task();
  for (auto& timer : timers) timer();
  for (auto& cleanup : cleanups) {
    absl::Status status = cleanup();
    if (!status.ok() && CodeOf(status) != ErrorCode::kNotFound &&
        CodeOf(status) != ErrorCode::kConflict) {
      std::lock_guard<std::mutex> lock(mu_);
      cleanups_.push_back(std::move(cleanup));
    }
  }
  if (heartbeat && !Heartbeat()) {
    // One failed store call must not cost a whole interval: with the default
    // 10 s beat and 30 s ttl, two missed beats in a row would lose every lease.
    std::lock_guard<std::mutex> lock(mu_);
    next_heartbeat_ms_ = std::min(next_heartbeat_ms_,
                                  clock_->MonotonicMs() + HeartbeatRetryMs(options_));
  }
  if (sweep) Sweep();
  // Host calls queued by the heartbeat or the sweeper run in the same Poll.
  std::deque<std::function<void()>> more;
  {
    std::lock_guard<std::mutex> lock(mu_);
    more.swap(tasks_);
  }
  for (auto& task : more) task();
}

void Engine::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutting_down_) {
    lock.unlock();
    Poll();
    lock.lock();
    if (shutting_down_ || !tasks_.empty()) continue;
    int64_t next = std::min(next_heartbeat_ms_, next_sweep_ms_);
    if (!timers_.empty()) next = std::min(next, timers_.begin()->first);
    const int64_t wait_ms = std::clamp<int64_t>(next - clock_->MonotonicMs(), 1, 1000);
    // A timer added meanwhile (RunAfter) that is due before `next` ends the
    // wait too.
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this, next] {
      return shutting_down_ || !tasks_.empty() ||
             (!timers_.empty() && timers_.begin()->first < next);
    });
  }
}

void Engine::Audit(std::string_view type, std::string_view outcome, const std::string& principal,
                   const std::string& session_id, std::string detail) {
  if (!audit_) return;
  AuditEvent event;
  event.type = std::string(type);
  event.time_unix_ms = NowMs();
  event.route = "engine";
  event.outcome = std::string(outcome);
  event.principal_digest = principal;
  event.session_id = session_id;
  event.detail = std::move(detail);
  audit_->Emit(event);
}

EngineStats Engine::Stats() const {
  EngineStats stats;
  stats.start_intents = counters_.start_intents.load();
  stats.stop_intents = counters_.stop_intents.load();
  stats.replays = counters_.replays.load();
  stats.busy = counters_.busy.load();
  stats.store_failures = counters_.store_failures.load();
  stats.lease_losses = counters_.lease_losses.load();
  stats.transitions = counters_.transitions.load();
  stats.deadline_expiries = counters_.deadline_expiries.load();
  stats.recovered = counters_.recovered.load();
  stats.retention_deletes = counters_.retention_deletes.load();
  std::lock_guard<std::mutex> lock(mu_);
  stats.active_sessions = local_.size();
  return stats;
}

}  // namespace xg2g

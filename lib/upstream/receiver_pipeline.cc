#include "lib/upstream/receiver_pipeline.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g {

absl::Status ValidateReceiverPipelineOptions(const ReceiverPipelineOptions& options) {
  XG2G_RETURN_IF_ERROR(ValidateTuneOptions(options.tune));
  if (options.tune_timeout_ms < 1) {
    return InvalidError(fmt::format("receiver pipeline: tune_timeout_ms must be >= 1, got {}",
                                    options.tune_timeout_ms));
  }
  return absl::OkStatus();
}

ReceiverPipeline::ReceiverPipeline(std::shared_ptr<ReceiverApi> receiver,
                                   std::shared_ptr<Pipeline> host, ReceiverPipelineOptions options,
                                   Clock* clock)
    : receiver_(std::move(receiver)),
      host_(std::move(host)),
      options_(options),
      clock_(clock != nullptr ? clock : Clock::Real()),
      rng_(std::random_device{}()) {}

ReceiverPipeline::~ReceiverPipeline() = default;

void ReceiverPipeline::Attach(Engine* engine) {
  std::vector<std::pair<int, int64_t>> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    engine_ = engine;
    held.swap(held_);
  }
  if (engine == nullptr) return;
  // RunAfter takes the engine's lock: never under ours.
  for (const auto& [slot, delay] : held) {
    engine->RunAfter(delay, [this, slot = slot] { PollSlot(slot); });
  }
}

void ReceiverPipeline::ScheduleLocked(int slot, int64_t delay_ms) {
  scheduled_.insert(slot);
  if (engine_ == nullptr) {
    held_.emplace_back(slot, delay_ms);
    return;
  }
  // Engine::RunAfter takes only the engine's timer lock and never calls back
  // into the pipeline, so calling it under mu_ cannot deadlock.
  engine_->RunAfter(delay_ms, [this, slot] { PollSlot(slot); });
}

absl::Status ReceiverPipeline::Tune(const PipelineCommand& command) {
  tunes_.fetch_add(1, std::memory_order_relaxed);
  ReceiverCallOptions call;
  call.timeout_ms = options_.tune_timeout_ms;
  absl::Status zapped = receiver_->Zap(command.service_ref, call);
  if (!zapped.ok()) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    // The engine fails the session with R_TUNE_FAILED and this message.
    return MakeError(CodeOf(zapped), fmt::format("tune of '{}' on slot {}: zap failed: {}",
                                                 command.service_ref, command.slot,
                                                 FromAbsl(zapped.message())));
  }
  const int64_t now = clock_->MonotonicMs();
  std::lock_guard<std::mutex> lock(mu_);
  // The slot's lease is exclusive: an earlier session on it is over, even if
  // it ended without a Stop (a failure report). Forget it.
  for (auto it = active_.begin(); it != active_.end();) {
    it = (it->second.command.slot == command.slot || it->first == command.session_id)
             ? active_.erase(it)
             : std::next(it);
  }
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    it = (it->second.command.slot == command.slot || it->first == command.session_id)
             ? jobs_.erase(it)
             : std::next(it);
  }
  jobs_.emplace(command.session_id,
                Job{command, TuneProgress(command.service_ref, command.slot, options_.tune), now,
                    now + options_.tune_timeout_ms, false});
  // The first poll comes one interval after the zap: at once, the receiver
  // would still show what it played before.
  if (!scheduled_.contains(command.slot)) {
    ScheduleLocked(command.slot, JitteredPause(options_.tune, rng_));
  }
  return absl::OkStatus();
}

absl::Status ReceiverPipeline::Start(const PipelineCommand& command) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(command.session_id);
  if (it != jobs_.end()) it->second.start_wanted = true;
  return absl::OkStatus();
}

void ReceiverPipeline::PollSlot(int slot) {
  std::vector<std::pair<PipelineCommand, absl::Status>> failures;
  std::vector<PipelineCommand> ready;
  int64_t longest = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = clock_->MonotonicMs();
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      Job& job = it->second;
      if (job.command.slot != slot) {
        ++it;
        continue;
      }
      if (now >= job.deadline_ms) {
        failures.emplace_back(job.command, job.progress.Timeout(now - job.started_ms));
        it = jobs_.erase(it);
        continue;
      }
      longest = std::max(longest, job.deadline_ms - now);
      ++it;
    }
    if (longest == 0) scheduled_.erase(slot);  // nothing left to poll for
  }

  if (longest > 0) {
    ReceiverCallOptions call;
    call.timeout_ms = longest;
    const TuneObservation observation = PollReceiver(*receiver_, call);
    polls_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    bool pending = false;
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      Job& job = it->second;
      if (job.command.slot != slot) {
        ++it;
        continue;
      }
      switch (job.progress.Observe(observation)) {
        case TuneProgress::Verdict::kReady:
          if (job.start_wanted) ready.push_back(job.command);
          active_[job.command.session_id] = Active{job.command, false};
          it = jobs_.erase(it);
          continue;
        case TuneProgress::Verdict::kFailed:
          failures.emplace_back(job.command, job.progress.Failure());
          it = jobs_.erase(it);
          continue;
        case TuneProgress::Verdict::kPending:
          pending = true;
          ++it;
          continue;
      }
    }
    if (pending) {
      ScheduleLocked(slot, JitteredPause(options_.tune, rng_));
    } else {
      scheduled_.erase(slot);
    }
  }

  for (const auto& [command, status] : failures) Fail(command, status);
  for (const PipelineCommand& command : ready) {
    confirmed_.fetch_add(1, std::memory_order_relaxed);
    RunHost(command);
  }
}

void ReceiverPipeline::Fail(const PipelineCommand& command, const absl::Status& status) {
  failed_.fetch_add(1, std::memory_order_relaxed);
  Engine* engine = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    engine = engine_;
  }
  if (engine == nullptr) return;
  // Refused when the session moved on meanwhile (stopped, deadline): stale.
  (void)engine->ReportFailed(command.session_id, command.fencing_token, TuneFailureReason(status),
                             FromAbsl(status.message()));
}

void ReceiverPipeline::RunHost(const PipelineCommand& command) {
  Engine* engine = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    engine = engine_;
  }
  if (engine == nullptr) return;
  if (!host_) {
    (void)engine->ReportReady(command.session_id, command.fencing_token);
    return;
  }
  const absl::Status tuned = host_->Tune(command);
  if (!tuned.ok()) {
    (void)engine->ReportFailed(command.session_id, command.fencing_token, Reason::kTuneFailed,
                               FromAbsl(tuned.message()));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_.find(command.session_id);
    if (it == active_.end()) return;  // stopped meanwhile
    it->second.host_started = true;
  }
  const absl::Status started = host_->Start(command);
  if (!started.ok()) {
    (void)engine->ReportFailed(command.session_id, command.fencing_token,
                               Reason::kFfmpegStartFailed, FromAbsl(started.message()));
  }
}

void ReceiverPipeline::Stop(const PipelineCommand& command) {
  bool host_started = false;
  Engine* engine = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.erase(command.session_id);  // its polls end with the next round
    auto it = active_.find(command.session_id);
    if (it != active_.end()) {
      host_started = it->second.host_started;
      active_.erase(it);
    }
    engine = engine_;
  }
  if (host_started && host_) {
    host_->Stop(command);  // the host reports stopped
    return;
  }
  if (engine != nullptr) (void)engine->ReportStopped(command.session_id, command.fencing_token);
}

ReceiverPipelineStats ReceiverPipeline::Stats() const {
  ReceiverPipelineStats stats;
  stats.tunes = tunes_.load(std::memory_order_relaxed);
  stats.confirmed = confirmed_.load(std::memory_order_relaxed);
  stats.failed = failed_.load(std::memory_order_relaxed);
  stats.polls = polls_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace xg2g

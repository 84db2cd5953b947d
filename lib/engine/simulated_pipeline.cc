#include "lib/engine/simulated_pipeline.h"

#include <limits>
#include <string>
#include <utility>

#include "lib/common/status.h"

namespace xg2g {
namespace {

int64_t SaturatingAdd(int64_t a, int64_t b) {
  if (b > 0 && a > std::numeric_limits<int64_t>::max() - b) {
    return std::numeric_limits<int64_t>::max();
  }
  return a + b;
}

int64_t NonNegative(int64_t ms) { return ms < 0 ? 0 : ms; }

}  // namespace

SimulatedPipeline::SimulatedPipeline(SimulatedPipelineOptions options)
    : options_(options) {}

void SimulatedPipeline::Attach(Engine* engine) {
  std::vector<Pending> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    engine_ = engine;
    held.swap(pending_);
  }
  // Scheduled outside the lock: RunAfter takes the engine's own locks.
  if (engine == nullptr) return;
  for (const Pending& p : held) ScheduleOn(engine, p.kind, p.command);
}

absl::Status SimulatedPipeline::Tune(const PipelineCommand& command) {
  tune_calls_.fetch_add(1, std::memory_order_acq_rel);
  if (options_.fail_tune) {
    return UnavailableError("simulated pipeline: tune of '" + command.service_ref +
                            "' failed (fail_tune is set)");
  }
  return absl::OkStatus();
}

absl::Status SimulatedPipeline::Start(const PipelineCommand& command) {
  start_calls_.fetch_add(1, std::memory_order_acq_rel);
  if (options_.fail_start) {
    return UnavailableError("simulated pipeline: start of session '" + command.session_id +
                            "' failed (fail_start is set)");
  }
  Schedule(Kind::kReady, command);
  return absl::OkStatus();
}

void SimulatedPipeline::Stop(const PipelineCommand& command) {
  stop_calls_.fetch_add(1, std::memory_order_acq_rel);
  Schedule(Kind::kStopped, command);
}

void SimulatedPipeline::Schedule(Kind kind, const PipelineCommand& command) {
  Engine* engine = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (engine_ == nullptr) {
      pending_.push_back(Pending{kind, command});
      return;
    }
    engine = engine_;
  }
  ScheduleOn(engine, kind, command);
}

void SimulatedPipeline::ScheduleOn(Engine* engine, Kind kind, const PipelineCommand& command) const {
  // The timers run on the engine's thread and are dropped with the engine, so
  // `engine` is alive whenever one of them runs. A report the engine refuses
  // (the session was stopped or failed meanwhile, a newer lease) is simply
  // stale: a real pipeline would drop it too.
  if (kind == Kind::kStopped) {
    engine->RunAfter(NonNegative(options_.stop_delay_ms), [engine, command] {
      (void)engine->ReportStopped(command.session_id, command.fencing_token);
    });
    return;
  }
  const int64_t ready_after =
      SaturatingAdd(NonNegative(options_.tune_delay_ms), NonNegative(options_.ready_delay_ms));
  const int64_t fail_after = options_.fail_after_ready_ms;
  engine->RunAfter(ready_after, [engine, command, fail_after] {
    if (!engine->ReportReady(command.session_id, command.fencing_token).ok()) return;
    if (fail_after <= 0) return;
    engine->RunAfter(fail_after, [engine, command] {
      (void)engine->ReportFailed(command.session_id, command.fencing_token,
                                 Reason::kProcessEnded, "simulated process ended");
    });
  });
}

}  // namespace xg2g

// A media pipeline that only pretends: it answers the engine's tune, start
// and stop commands after configurable delays on the engine's clock, and can
// be told to fail. The tests and the examples use it where a real host would
// drive a receiver and a transcoder.
//
// Thread-safe: the engine may call it from its thread while other threads
// read the counters. Reports go back through Engine::RunAfter, so they arrive
// on the engine's thread (or inside Poll()) once the engine's clock has
// moved far enough; nothing here sleeps.
#ifndef XG2G_LIB_ENGINE_SIMULATED_PIPELINE_H_
#define XG2G_LIB_ENGINE_SIMULATED_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "lib/engine/engine.h"

namespace xg2g {

struct SimulatedPipelineOptions {
  // Time between Start and the ready report is tune_delay_ms + ready_delay_ms:
  // the simulated tuner locks, then the simulated transcoder produces output.
  int64_t tune_delay_ms = 0;
  int64_t ready_delay_ms = 0;
  // Time between Stop and the stopped report.
  int64_t stop_delay_ms = 0;
  // Tune fails (the engine fails the session with R_TUNE_FAILED).
  bool fail_tune = false;
  // Start fails (the engine fails the session with R_FFMPEG_START_FAILED).
  bool fail_start = false;
  // > 0: this long after the ready report the "process" ends and the
  // pipeline reports R_PROCESS_ENDED. 0: it runs until stopped.
  int64_t fail_after_ready_ms = 0;
};

class SimulatedPipeline final : public Pipeline {
 public:
  explicit SimulatedPipeline(SimulatedPipelineOptions options = {});
  ~SimulatedPipeline() override = default;

  SimulatedPipeline(const SimulatedPipeline&) = delete;
  SimulatedPipeline& operator=(const SimulatedPipeline&) = delete;

  // Connects the pipeline to the engine it reports to. The engine is created
  // with the pipeline, so this comes right after Engine::Create; commands the
  // engine sent before (start-up recovery on a background thread) are held
  // and scheduled here. `engine` must outlive the pipeline's use by it (the
  // engine drops pending timers when it is destroyed).
  void Attach(Engine* engine);

  absl::Status Tune(const PipelineCommand& command) override;
  absl::Status Start(const PipelineCommand& command) override;
  void Stop(const PipelineCommand& command) override;

  // How often the engine called each command (failed calls included).
  int tune_calls() const { return tune_calls_.load(std::memory_order_acquire); }
  int start_calls() const { return start_calls_.load(std::memory_order_acquire); }
  int stop_calls() const { return stop_calls_.load(std::memory_order_acquire); }

  const SimulatedPipelineOptions& options() const { return options_; }

 private:
  enum class Kind { kReady, kStopped };
  struct Pending {
    Kind kind = Kind::kReady;
    PipelineCommand command;
  };

  // Schedules the report for `command` on the attached engine, or holds it
  // until Attach when there is none yet.
  void Schedule(Kind kind, const PipelineCommand& command);
  void ScheduleOn(Engine* engine, Kind kind, const PipelineCommand& command) const;

  const SimulatedPipelineOptions options_;
  std::atomic<int> tune_calls_{0};
  std::atomic<int> start_calls_{0};
  std::atomic<int> stop_calls_{0};

  std::mutex mu_;
  Engine* engine_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<Pending> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace xg2g

#endif  // XG2G_LIB_ENGINE_SIMULATED_PIPELINE_H_

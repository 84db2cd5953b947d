// A media pipeline that tunes through the receiver before the host's own
// transcoder runs (docs/receiver.md):
//
//   engine Tune  -> zap (/api/zap) and start polling the slot
//   engine Start -> remembered; nothing else happens yet
//   tune ready   -> the host's tune, then its start (the host then reports
//                   ready itself); without host callbacks the pipeline
//                   reports ready once the tune is confirmed
//   tune failed  -> the session fails: R_TUNE_TIMEOUT at the tune deadline,
//                   R_TUNE_FAILED for a refused zap, a receiver that does not
//                   answer or whose breaker is open, another service, no lock
//   engine Stop  -> polling ends; the host's stop when the host was started,
//                   else the pipeline reports stopped itself
//
// Nothing blocks the engine for longer than one receiver call: the polls run
// as engine timers (RunAfter), so they happen on the engine's thread (or
// inside Poll() in manual clock mode) and follow the engine's clock. Tunes of
// the same slot share one poll loop.
//
// Thread-safe; the engine calls it from its thread (or from the thread that
// destroys it, for the final stops).
#ifndef XG2G_LIB_UPSTREAM_RECEIVER_PIPELINE_H_
#define XG2G_LIB_UPSTREAM_RECEIVER_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lib/common/clock.h"
#include "lib/engine/engine.h"
#include "lib/upstream/receiver_client.h"
#include "lib/upstream/tune.h"

namespace xg2g {

struct ReceiverPipelineOptions {
  TuneOptions tune;
  int64_t tune_timeout_ms = 15'000;  // zap to confirmed lock (>= 1)
};

[[nodiscard]] absl::Status ValidateReceiverPipelineOptions(const ReceiverPipelineOptions& options);

struct ReceiverPipelineStats {
  uint64_t tunes = 0;      // zaps sent
  uint64_t confirmed = 0;  // tunes that became ready
  uint64_t failed = 0;     // tunes that failed (zap, timeout, wrong service, no lock, ...)
  uint64_t polls = 0;      // polls of the receiver (shared by the tunes of a slot)
};

class ReceiverPipeline final : public Pipeline {
 public:
  // `receiver` is shared with whoever else uses the client. `host` may be
  // null (the tune alone makes the session ready). `clock` must be the
  // engine's clock and outlive the pipeline.
  ReceiverPipeline(std::shared_ptr<ReceiverApi> receiver, std::shared_ptr<Pipeline> host,
                   ReceiverPipelineOptions options, Clock* clock);
  ~ReceiverPipeline() override;
  ReceiverPipeline(const ReceiverPipeline&) = delete;
  ReceiverPipeline& operator=(const ReceiverPipeline&) = delete;

  // Connects the pipeline to its engine (right after Engine::Create, as the
  // simulated pipeline); polls asked for before are scheduled then.
  void Attach(Engine* engine);

  absl::Status Tune(const PipelineCommand& command) override;
  absl::Status Start(const PipelineCommand& command) override;
  void Stop(const PipelineCommand& command) override;

  [[nodiscard]] ReceiverPipelineStats Stats() const;

 private:
  struct Job {
    PipelineCommand command;
    TuneProgress progress;
    int64_t started_ms = 0;
    int64_t deadline_ms = 0;
    bool start_wanted = false;
  };
  struct Active {
    PipelineCommand command;
    bool host_started = false;
  };

  void ScheduleLocked(int slot, int64_t delay_ms);
  void PollSlot(int slot);
  void RunHost(const PipelineCommand& command);
  void Fail(const PipelineCommand& command, const absl::Status& status);

  const std::shared_ptr<ReceiverApi> receiver_;
  const std::shared_ptr<Pipeline> host_;
  const ReceiverPipelineOptions options_;
  Clock* const clock_;

  mutable std::mutex mu_;
  Engine* engine_ = nullptr;                 // guarded by mu_
  std::map<std::string, Job> jobs_;          // tunes being confirmed, by session id; mu_
  std::map<std::string, Active> active_;     // confirmed tunes, by session id; mu_
  std::set<int> scheduled_;                  // slots with a poll timer pending; mu_
  std::vector<std::pair<int, int64_t>> held_;  // polls asked for before Attach; mu_
  std::mt19937 rng_;                         // mu_

  std::atomic<uint64_t> tunes_{0}, confirmed_{0}, failed_{0}, polls_{0};
};

}  // namespace xg2g

#endif  // XG2G_LIB_UPSTREAM_RECEIVER_PIPELINE_H_

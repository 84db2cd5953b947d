// A host pipeline for tests: records every command the engine sends and
// answers Tune and Start with a result the test sets. Thread-safe; read the
// vectors while the engine is idle, or through the counting helpers.
#ifndef XG2G_TESTS_ENGINE_RECORDING_PIPELINE_H_
#define XG2G_TESTS_ENGINE_RECORDING_PIPELINE_H_

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lib/engine/engine.h"

namespace xg2g::testing {

class RecordingPipeline final : public Pipeline {
 public:
  absl::Status Tune(const PipelineCommand& command) override {
    std::lock_guard<std::mutex> lock(mu_);
    tuned.push_back(command);
    order.push_back("tune " + command.session_id);
    return tune_result;
  }
  absl::Status Start(const PipelineCommand& command) override {
    std::lock_guard<std::mutex> lock(mu_);
    started.push_back(command);
    return start_result;
  }
  void Stop(const PipelineCommand& command) override {
    std::lock_guard<std::mutex> lock(mu_);
    stopped.push_back(command);
    order.push_back("stop " + command.session_id);
  }
  size_t Tunes() {
    std::lock_guard<std::mutex> lock(mu_);
    return tuned.size();
  }
  size_t Stops() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped.size();
  }

  std::mutex mu_;
  std::vector<PipelineCommand> tuned, started, stopped;
  std::vector<std::string> order;  // "tune <id>" and "stop <id>", as they came
  absl::Status tune_result = absl::OkStatus();
  absl::Status start_result = absl::OkStatus();
};

}  // namespace xg2g::testing

#endif  // XG2G_TESTS_ENGINE_RECORDING_PIPELINE_H_

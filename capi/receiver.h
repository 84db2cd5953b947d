// The receiver part of an engine configuration (xg2g_config_set_receiver)
// and how xg2g_engine_create turns it into a pipeline (capi/receiver.cc).
#ifndef XG2G_CAPI_RECEIVER_H_
#define XG2G_CAPI_RECEIVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "lib/common/clock.h"
#include "lib/engine/engine.h"
#include "lib/upstream/receiver_client.h"
#include "lib/upstream/receiver_pipeline.h"

namespace xg2g::capi {

struct ReceiverConfig {
  ReceiverOptions client;
  ReceiverPipelineOptions pipeline;
};

// A receiver pipeline around `host` (null: none) for one engine, with its own
// client and breaker; `clock` null is the real clock. Breaker state changes go
// to stderr unless `quiet` (manual clock mode). Attach it to the engine once
// it exists.
absl::StatusOr<std::shared_ptr<ReceiverPipeline>> MakeReceiverPipeline(
    const ReceiverConfig& config, std::shared_ptr<Pipeline> host, Clock* clock, bool quiet);

}  // namespace xg2g::capi

#endif  // XG2G_CAPI_RECEIVER_H_

// The session record the store benchmarks write and read: the size of what
// the engine stores for a running session (547 bytes encoded).
#ifndef XG2G_TESTS_BENCH_BENCH_RECORD_H_
#define XG2G_TESTS_BENCH_BENCH_RECORD_H_

#include <string>
#include <utility>

#include "lib/session/session.h"

namespace xg2g::bench {

inline SessionRecord BenchRecord(std::string id) {
  SessionRecord r;
  r.session_id = std::move(id);
  r.service_ref = "1:0:19:283D:3FB:1:C00000:0:0:0:";
  r.profile.name = "default";
  r.state = SessionState::kReady;
  r.pipeline_state = PipelineState::kRunning;
  r.correlation_id = "0123456789abcdef0123456789abcdef";
  r.created_at_unix = 1'800'000'000;
  r.updated_at_unix = 1'800'000'005;
  r.expires_at_unix = 1'800'003'600;
  r.principal = "f3a9c2d17b5e4a6c8d9e0f1a2b3c4d5e";
  r.deadline_unix_ms = 1'800'000'030'000;
  r.context_data["owner"] = "engine-0123456789abcdef";
  r.context_data["tuner_slot"] = "0";
  r.context_data["fencing_token"] = "12345";
  return r;
}

}  // namespace xg2g::bench

#endif  // XG2G_TESTS_BENCH_BENCH_RECORD_H_

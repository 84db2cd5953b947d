// Handle structs behind the opaque C types. Each wraps one core object.
#ifndef XG2G_CAPI_HANDLES_H_
#define XG2G_CAPI_HANDLES_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "capi/barrier.h"
#include "include/xg2g/xg2g.h"
#include "lib/common/clock.h"
#include "lib/engine/engine.h"
#include "lib/engine/simulated_pipeline.h"
#include "lib/observe/audit.h"
#include "lib/session/session.h"
#include "lib/store/store.h"

struct xg2g_session {
  xg2g::SessionRecord rep;
};

struct xg2g_session_list {
  std::vector<xg2g_session> items;
};

struct xg2g_store {
  std::unique_ptr<xg2g::Store> rep;
};

struct xg2g_lease_list {
  std::vector<xg2g::LeaseInfo> items;
  int64_t now_ms = 0;  // the store's clock when listed
};

struct xg2g_store_report {
  xg2g::StoreCheckReport rep;
};

namespace xg2g::capi {

struct ReceiverConfig;  // capi/receiver.h

// A host's (fn, user_data, destroy) registration; `fn` is one callback or a
// table of them. Shared by everything that may call it (a config and the
// engines or handlers made from it); `destroy(user_data)` runs once, when the
// last holder lets go, so never while a call can run.
template <typename Fn>
struct HostCallback {
  Fn fn{};
  void* user_data = nullptr;
  void (*destroy)(void*) = nullptr;

  HostCallback() = default;
  HostCallback(const HostCallback&) = delete;
  HostCallback& operator=(const HostCallback&) = delete;
  ~HostCallback() {
    if (destroy != nullptr) destroy(user_data);
  }
};

using HostPipelineCallbacks = HostCallback<xg2g_pipeline_callbacks>;
using HostAuditCallback = HostCallback<xg2g_audit_fn>;

// The body of every set_*_callback entry point: behind the barrier of
// `function`, `body(holder)` gets a new holder of user_data and destroy
// (fn still unset) and either keeps it (moving it away, then returning
// XG2G_OK) or lets it go. Ownership of user_data passes in whatever happens:
// a holder let go runs destroy, and when not even the holder could be made,
// destroy runs here.
template <typename Fn, typename Body>
xg2g_status RegisterHostCallback(const char* function, void* user_data, void (*destroy)(void*),
                                 Body&& body) {
  std::shared_ptr<HostCallback<Fn>> holder;
  const xg2g_status status = Guard(function, [&]() -> xg2g_status {
    holder = std::make_shared<HostCallback<Fn>>();
    holder->user_data = user_data;
    holder->destroy = destroy;
    return body(holder);
  });
  if (holder == nullptr && status != XG2G_OK && destroy != nullptr) destroy(user_data);
  return status;
}

// The audit sink a config asks for: the host's callback when one is set,
// else a JSON-lines file at `path` when it is not empty, else null (the
// caller's default). XG2G_EIO naming the file when it cannot be opened.
xg2g_status MakeAuditSink(const char* function, const std::shared_ptr<HostAuditCallback>& callback,
                          const std::string& path, std::shared_ptr<xg2g::AuditSink>* out);

// The body of the engine and HTTP configs' set_audit_callback: a host
// callback replaces the audit path and any earlier callback; fn NULL leaves
// neither (no audit).
template <typename Config>
xg2g_status SetAuditCallback(const char* function, Config* cfg, xg2g_audit_fn fn,
                             void* user_data, void (*destroy)(void*)) {
  return RegisterHostCallback<xg2g_audit_fn>(
      function, user_data, destroy, [&](auto& holder) -> xg2g_status {
        XG2G_CAPI_REQUIRE(cfg, function);
        cfg->audit_path.clear();
        cfg->audit_callback.reset();
        if (fn == nullptr) return XG2G_OK;
        holder->fn = fn;
        cfg->audit_callback = std::move(holder);
        return XG2G_OK;
      });
}

}  // namespace xg2g::capi

// Plain data: xg2g_engine_create copies what it needs (the callback
// registrations by shared reference).
struct xg2g_config {
  enum class PipelineKind { kNone, kHost, kSimulated };

  xg2g::EngineOptions options;
  bool manual_clock = false;
  int64_t manual_clock_start_unix_ms = 0;
  PipelineKind pipeline_kind = PipelineKind::kNone;
  std::shared_ptr<xg2g::capi::HostPipelineCallbacks> host_pipeline;
  xg2g::SimulatedPipelineOptions simulated;
  std::shared_ptr<xg2g::capi::HostAuditCallback> audit_callback;  // wins over audit_path
  std::string audit_path;
  // Tune through a receiver before the pipeline above (capi/receiver.cc); null: none.
  std::shared_ptr<const xg2g::capi::ReceiverConfig> receiver;
};

// Member order is destruction order in reverse: the engine goes first (its
// thread joined, its pipeline drained), then what it borrowed.
struct xg2g_engine {
  std::unique_ptr<xg2g::FakeClock> manual_clock;  // null unless in manual clock mode
  std::shared_ptr<xg2g::Pipeline> pipeline;
  std::shared_ptr<xg2g::AuditSink> audit;
  std::unique_ptr<xg2g::Engine> rep;
  // Serialises xg2g_engine_poll / xg2g_engine_advance_clock so that a clock
  // step and the Poll that follows it are one unit.
  std::mutex poll_mu;
};

#endif  // XG2G_CAPI_HANDLES_H_

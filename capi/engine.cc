// C entry points of the engine and its configuration
// (include/xg2g/xg2g_engine.h).
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "capi/barrier.h"
#include "capi/handles.h"
#include "capi/receiver.h"
#include "lib/common/status.h"

namespace {

using xg2g::capi::Fail;
using xg2g::capi::FromStatus;
using xg2g::capi::Guard;
using xg2g::capi::SavedLastError;

static_assert(XG2G_SESSION_ID_SIZE == 65, "session ids are at most 64 characters");
static_assert(XG2G_CORRELATION_ID_SIZE == 129, "correlation ids are at most 128 bytes");

constexpr size_t kMaxOwnerId = 128;

// The engine whose Poll runs on this thread right now (manual clock mode):
// its callbacks must not poll it again (the engine's poll lock is not
// recursive) -- they get XG2G_ESTATE instead of a deadlock.
thread_local const xg2g_engine* polling_engine = nullptr;

class PollScope {
 public:
  explicit PollScope(const xg2g_engine* engine) : previous_(polling_engine) {
    polling_engine = engine;
  }
  ~PollScope() { polling_engine = previous_; }
  PollScope(const PollScope&) = delete;
  PollScope& operator=(const PollScope&) = delete;

 private:
  const xg2g_engine* previous_;
};

// Names the function in a core error so the caller sees where it came from.
absl::Status Prefixed(std::string_view function, const absl::Status& status) {
  if (status.ok()) return status;
  return xg2g::MakeError(xg2g::CodeOf(status), std::string(function) + ": " +
                                                   std::string(xg2g::FromAbsl(status.message())));
}

xg2g_status UnknownVersion(const char* function, const char* what, unsigned int version,
                           unsigned int known) {
  return Fail(XG2G_EVERSION, std::string(function) + ": unknown " + what + " " +
                                 std::to_string(version) + " (this library knows " +
                                 std::to_string(known) + ")");
}

template <size_t N>
bool CopyTo(char (&dst)[N], std::string_view s) {
  if (s.size() >= N) return false;
  std::memcpy(dst, s.data(), s.size());
  dst[s.size()] = '\0';
  return true;
}

std::string OrEmpty(const char* s) { return s == nullptr ? std::string() : std::string(s); }

// The xg2g_pipeline_command view of a core command; borrows its strings.
xg2g_pipeline_command CommandView(const xg2g::PipelineCommand& command) {
  return xg2g_pipeline_command{command.session_id.c_str(), command.service_ref.c_str(),
                               command.profile.c_str(), command.slot, command.fencing_token};
}

// A host callback's failure as a core status. The message is what the
// callback left in this thread's last error, else one naming the callback.
absl::Status CallbackFailure(xg2g_status rc, const char* which, std::string message) {
  const int value = static_cast<int>(rc);
  const bool known = value < 0 && value >= static_cast<int>(xg2g::kLastErrorCode);
  if (message.empty()) {
    message = std::string("host ") + which + " callback returned " +
              (known ? std::string(xg2g_status_str(rc)) : "status " + std::to_string(value));
  }
  return xg2g::MakeError(known ? static_cast<xg2g::ErrorCode>(value) : xg2g::ErrorCode::kInternal,
                         message);
}

// xg2g::Pipeline over the host's C callbacks.
class HostPipeline final : public xg2g::Pipeline {
 public:
  explicit HostPipeline(std::shared_ptr<xg2g::capi::HostPipelineCallbacks> host)
      : host_(std::move(host)) {}

  absl::Status Tune(const xg2g::PipelineCommand& command) override {
    return Call(host_->fn.tune, "tune", command);
  }
  absl::Status Start(const xg2g::PipelineCommand& command) override {
    return Call(host_->fn.start, "start", command);
  }
  void Stop(const xg2g::PipelineCommand& command) override {
    if (host_->fn.stop == nullptr) return;
    const xg2g_pipeline_command view = CommandView(command);
    SavedLastError saved;
    host_->fn.stop(&view, host_->user_data);
  }

 private:
  using Fn = xg2g_status (*)(const xg2g_pipeline_command*, void*);

  absl::Status Call(Fn fn, const char* which, const xg2g::PipelineCommand& command) {
    if (fn == nullptr) return absl::OkStatus();
    const xg2g_pipeline_command view = CommandView(command);
    SavedLastError saved;
    xg2g::capi::ClearLastError();
    const xg2g_status rc = fn(&view, host_->user_data);
    if (rc == XG2G_OK) return absl::OkStatus();
    return CallbackFailure(rc, which, xg2g::capi::LastError());
  }

  std::shared_ptr<xg2g::capi::HostPipelineCallbacks> host_;
};

xg2g_status RequireConfig(const xg2g_config* cfg, const char* function) {
  if (cfg == nullptr) return Fail(XG2G_EINVAL, std::string(function) + ": cfg is NULL");
  return XG2G_OK;
}

// Shared body of the millisecond setters: `minimum` is 0 or 1.
template <typename Apply>
xg2g_status SetMs(const char* function, xg2g_config* cfg, int64_t ms, int64_t minimum,
                  Apply apply) {
  return Guard(function, [&]() -> xg2g_status {
    if (const xg2g_status rc = RequireConfig(cfg, function); rc != XG2G_OK) return rc;
    if (ms < minimum) {
      return Fail(XG2G_EINVAL, std::string(function) + ": ms must be " +
                                   (minimum > 0 ? "> 0" : ">= 0") + ", got " + std::to_string(ms));
    }
    apply(cfg->options, ms);
    return XG2G_OK;
  });
}

void CopyStats(xg2g_engine_stats* out, const xg2g::EngineStats& s) {
  out->start_intents = s.start_intents;
  out->stop_intents = s.stop_intents;
  out->replays = s.replays;
  out->busy = s.busy;
  out->store_failures = s.store_failures;
  out->lease_losses = s.lease_losses;
  out->transitions = s.transitions;
  out->deadline_expiries = s.deadline_expiries;
  out->recovered = s.recovered;
  out->retention_deletes = s.retention_deletes;
  out->active_sessions = s.active_sessions;
}

xg2g_status RequireSessionId(const char* session_id, const char* function) {
  if (session_id == nullptr) {
    return Fail(XG2G_EINVAL, std::string(function) + ": session_id is NULL");
  }
  return XG2G_OK;
}

}  // namespace

xg2g_status xg2g::capi::MakeAuditSink(const char* function,
                                      const std::shared_ptr<HostAuditCallback>& callback,
                                      const std::string& path,
                                      std::shared_ptr<xg2g::AuditSink>* out) {
  out->reset();
  if (callback != nullptr) {
    *out = std::make_shared<xg2g::CallbackAuditSink>([host = callback](std::string_view json) {
      const std::string line(json);
      SavedLastError saved;
      host->fn(line.c_str(), host->user_data);
    });
    return XG2G_OK;
  }
  if (path.empty()) return XG2G_OK;
  errno = 0;
  auto sink = std::make_shared<xg2g::JsonLinesAuditSink>(path);
  const int error = errno;
  if (!sink->ok()) {
    const std::string why = error != 0 ? xg2g::ErrnoText(error) : "open failed";
    return Fail(XG2G_EIO, std::string(function) + ": cannot open the audit file '" + path +
                              "': " + why);
  }
  *out = std::move(sink);
  return XG2G_OK;
}

extern "C" {

// ---------------------------------------------------------------------------
// Struct initialisers

xg2g_status xg2g_pipeline_callbacks_init(xg2g_pipeline_callbacks* cbs, unsigned int version) {
  return Guard("xg2g_pipeline_callbacks_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(cbs, "xg2g_pipeline_callbacks_init");
    if (version != XG2G_PIPELINE_CALLBACKS_VERSION) {
      return UnknownVersion("xg2g_pipeline_callbacks_init", "version", version,
                            XG2G_PIPELINE_CALLBACKS_VERSION);
    }
    *cbs = xg2g_pipeline_callbacks XG2G_PIPELINE_CALLBACKS_INIT;
    return XG2G_OK;
  });
}

xg2g_status xg2g_simulated_pipeline_options_init(xg2g_simulated_pipeline_options* opts,
                                                 unsigned int version) {
  return Guard("xg2g_simulated_pipeline_options_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(opts, "xg2g_simulated_pipeline_options_init");
    if (version != XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION) {
      return UnknownVersion("xg2g_simulated_pipeline_options_init", "version", version,
                            XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION);
    }
    *opts = xg2g_simulated_pipeline_options XG2G_SIMULATED_PIPELINE_OPTIONS_INIT;
    return XG2G_OK;
  });
}

xg2g_status xg2g_start_request_init(xg2g_start_request* req, unsigned int version) {
  return Guard("xg2g_start_request_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(req, "xg2g_start_request_init");
    if (version != XG2G_START_REQUEST_VERSION) {
      return UnknownVersion("xg2g_start_request_init", "version", version,
                            XG2G_START_REQUEST_VERSION);
    }
    *req = xg2g_start_request XG2G_START_REQUEST_INIT;
    return XG2G_OK;
  });
}

xg2g_status xg2g_start_result_init(xg2g_start_result* res, unsigned int version) {
  return Guard("xg2g_start_result_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(res, "xg2g_start_result_init");
    if (version != XG2G_START_RESULT_VERSION) {
      return UnknownVersion("xg2g_start_result_init", "version", version,
                            XG2G_START_RESULT_VERSION);
    }
    *res = xg2g_start_result XG2G_START_RESULT_INIT;
    return XG2G_OK;
  });
}

xg2g_status xg2g_stop_result_init(xg2g_stop_result* res, unsigned int version) {
  return Guard("xg2g_stop_result_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(res, "xg2g_stop_result_init");
    if (version != XG2G_STOP_RESULT_VERSION) {
      return UnknownVersion("xg2g_stop_result_init", "version", version, XG2G_STOP_RESULT_VERSION);
    }
    *res = xg2g_stop_result XG2G_STOP_RESULT_INIT;
    return XG2G_OK;
  });
}

xg2g_status xg2g_engine_stats_init(xg2g_engine_stats* stats, unsigned int version) {
  return Guard("xg2g_engine_stats_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(stats, "xg2g_engine_stats_init");
    if (version != XG2G_ENGINE_STATS_VERSION) {
      return UnknownVersion("xg2g_engine_stats_init", "version", version,
                            XG2G_ENGINE_STATS_VERSION);
    }
    *stats = xg2g_engine_stats XG2G_ENGINE_STATS_INIT;
    return XG2G_OK;
  });
}

// ---------------------------------------------------------------------------
// Configuration

xg2g_status xg2g_config_create(xg2g_config** out) {
  return Guard("xg2g_config_create", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_config_create");
    *out = nullptr;
    *out = new xg2g_config();
    return XG2G_OK;
  });
}

void xg2g_config_destroy(xg2g_config* cfg) { delete cfg; }

xg2g_status xg2g_config_set_tuner_slots(xg2g_config* cfg, const char* spec) {
  return Guard("xg2g_config_set_tuner_slots", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_config_set_tuner_slots";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    XG2G_CAPI_REQUIRE(spec, kFn);
    auto slots = xg2g::ParseSlotSpec(spec);
    if (!slots.ok()) return FromStatus(Prefixed(kFn, slots.status()));
    cfg->options.tuner_slots = std::move(*slots);
    return XG2G_OK;
  });
}

xg2g_status xg2g_config_set_owner_id(xg2g_config* cfg, const char* owner_id) {
  return Guard("xg2g_config_set_owner_id", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_config_set_owner_id";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    XG2G_CAPI_REQUIRE(owner_id, kFn);
    const std::string_view id(owner_id);
    if (id.size() > kMaxOwnerId) {
      return Fail(XG2G_EINVAL, std::string(kFn) + ": owner_id is longer than " +
                                   std::to_string(kMaxOwnerId) + " characters");
    }
    for (const char c : id) {
      if (c <= 0x20 || c >= 0x7f) {
        return Fail(XG2G_EINVAL, std::string(kFn) +
                                     ": owner_id may only hold printable ASCII without white "
                                     "space");
      }
    }
    cfg->options.owner_id = std::string(id);
    return XG2G_OK;
  });
}

xg2g_status xg2g_config_set_lease_ttl_ms(xg2g_config* cfg, int64_t ms) {
  return SetMs("xg2g_config_set_lease_ttl_ms", cfg, ms, 1,
               [](xg2g::EngineOptions& o, int64_t v) { o.lease_ttl_ms = v; });
}

xg2g_status xg2g_config_set_heartbeat_ms(xg2g_config* cfg, int64_t ms) {
  return SetMs("xg2g_config_set_heartbeat_ms", cfg, ms, 1,
               [](xg2g::EngineOptions& o, int64_t v) { o.heartbeat_ms = v; });
}

xg2g_status xg2g_config_set_start_deadline_ms(xg2g_config* cfg, int64_t ms) {
  return SetMs("xg2g_config_set_start_deadline_ms", cfg, ms, 1,
               [](xg2g::EngineOptions& o, int64_t v) { o.start_deadline_ms = v; });
}

xg2g_status xg2g_config_set_stop_deadline_ms(xg2g_config* cfg, int64_t ms) {
  return SetMs("xg2g_config_set_stop_deadline_ms", cfg, ms, 1,
               [](xg2g::EngineOptions& o, int64_t v) { o.stop_deadline_ms = v; });
}

xg2g_status xg2g_config_set_idle_timeout_ms(xg2g_config* cfg, int64_t ms) {
  return SetMs("xg2g_config_set_idle_timeout_ms", cfg, ms, 0,
               [](xg2g::EngineOptions& o, int64_t v) { o.idle_timeout_ms = v; });
}

xg2g_status xg2g_config_set_retention_ms(xg2g_config* cfg, int64_t ms) {
  return SetMs("xg2g_config_set_retention_ms", cfg, ms, 1,
               [](xg2g::EngineOptions& o, int64_t v) { o.retention_ms = v; });
}

xg2g_status xg2g_config_set_idempotency_ttl_ms(xg2g_config* cfg, int64_t ms) {
  return SetMs("xg2g_config_set_idempotency_ttl_ms", cfg, ms, 1,
               [](xg2g::EngineOptions& o, int64_t v) { o.idempotency_ttl_ms = v; });
}

xg2g_status xg2g_config_set_requeue_on_recovery(xg2g_config* cfg, int enabled) {
  return Guard("xg2g_config_set_requeue_on_recovery", [&]() -> xg2g_status {
    if (const xg2g_status rc = RequireConfig(cfg, "xg2g_config_set_requeue_on_recovery");
        rc != XG2G_OK) {
      return rc;
    }
    cfg->options.requeue_on_recovery = enabled != 0;
    return XG2G_OK;
  });
}

xg2g_status xg2g_config_set_manual_clock(xg2g_config* cfg, int64_t start_unix_ms) {
  return Guard("xg2g_config_set_manual_clock", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_config_set_manual_clock";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    if (start_unix_ms <= 0) {
      return Fail(XG2G_EINVAL, std::string(kFn) + ": start_unix_ms must be > 0, got " +
                                   std::to_string(start_unix_ms));
    }
    cfg->manual_clock = true;
    cfg->manual_clock_start_unix_ms = start_unix_ms;
    return XG2G_OK;
  });
}

xg2g_status xg2g_config_set_pipeline(xg2g_config* cfg, const xg2g_pipeline_callbacks* cbs,
                                     void* user_data, void (*destroy)(void*)) {
  constexpr const char* kFn = "xg2g_config_set_pipeline";
  return xg2g::capi::RegisterHostCallback<xg2g_pipeline_callbacks>(
      kFn, user_data, destroy, [&](auto& holder) -> xg2g_status {
        if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
        if (cbs != nullptr && cbs->version != XG2G_PIPELINE_CALLBACKS_VERSION) {
          return UnknownVersion(kFn, "cbs->version", cbs->version,
                                XG2G_PIPELINE_CALLBACKS_VERSION);
        }
        if (cbs == nullptr) {
          cfg->pipeline_kind = xg2g_config::PipelineKind::kNone;
          cfg->host_pipeline.reset();
          return XG2G_OK;
        }
        holder->fn = *cbs;
        cfg->pipeline_kind = xg2g_config::PipelineKind::kHost;
        cfg->host_pipeline = std::move(holder);
        return XG2G_OK;
      });
}

xg2g_status xg2g_config_use_simulated_pipeline(xg2g_config* cfg,
                                               const xg2g_simulated_pipeline_options* opts) {
  return Guard("xg2g_config_use_simulated_pipeline", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_config_use_simulated_pipeline";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    xg2g::SimulatedPipelineOptions options;
    if (opts != nullptr) {
      if (opts->version != XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION) {
        return UnknownVersion(kFn, "opts->version", opts->version,
                              XG2G_SIMULATED_PIPELINE_OPTIONS_VERSION);
      }
      options.tune_delay_ms = opts->tune_delay_ms;
      options.ready_delay_ms = opts->ready_delay_ms;
      options.stop_delay_ms = opts->stop_delay_ms;
      options.fail_tune = opts->fail_tune != 0;
      options.fail_start = opts->fail_start != 0;
      options.fail_after_ready_ms = opts->fail_after_ready_ms;
    }
    cfg->simulated = options;
    cfg->pipeline_kind = xg2g_config::PipelineKind::kSimulated;
    cfg->host_pipeline.reset();
    return XG2G_OK;
  });
}

xg2g_status xg2g_config_set_audit_callback(xg2g_config* cfg, xg2g_audit_fn fn, void* user_data,
                                           void (*destroy)(void*)) {
  return xg2g::capi::SetAuditCallback("xg2g_config_set_audit_callback", cfg, fn, user_data,
                                      destroy);
}

xg2g_status xg2g_config_set_audit_path(xg2g_config* cfg, const char* path) {
  return Guard("xg2g_config_set_audit_path", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_config_set_audit_path";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    XG2G_CAPI_REQUIRE(path, kFn);
    if (path[0] == '\0') return Fail(XG2G_EINVAL, std::string(kFn) + ": path is empty");
    cfg->audit_path = path;
    cfg->audit_callback.reset();
    return XG2G_OK;
  });
}

// ---------------------------------------------------------------------------
// Engine

xg2g_status xg2g_engine_create(xg2g_engine** out, const xg2g_config* cfg, xg2g_store* store) {
  return Guard("xg2g_engine_create", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_create";
    XG2G_CAPI_REQUIRE(out, kFn);
    *out = nullptr;
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    XG2G_CAPI_REQUIRE(store, kFn);

    auto handle = std::make_unique<xg2g_engine>();
    xg2g::EngineOptions options = cfg->options;
    xg2g::Clock* clock = nullptr;
    if (cfg->manual_clock) {
      handle->manual_clock = std::make_unique<xg2g::FakeClock>(cfg->manual_clock_start_unix_ms);
      clock = handle->manual_clock.get();
      options.background = false;
    }

    std::shared_ptr<xg2g::SimulatedPipeline> simulated;
    switch (cfg->pipeline_kind) {
      case xg2g_config::PipelineKind::kNone:
        break;
      case xg2g_config::PipelineKind::kHost:
        handle->pipeline = std::make_shared<HostPipeline>(cfg->host_pipeline);
        break;
      case xg2g_config::PipelineKind::kSimulated:
        simulated = std::make_shared<xg2g::SimulatedPipeline>(cfg->simulated);
        handle->pipeline = simulated;
        break;
    }
    // A receiver tunes first; the pipeline chosen above runs once it has.
    std::shared_ptr<xg2g::ReceiverPipeline> receiver;
    if (cfg->receiver != nullptr) {
      auto wrapped = xg2g::capi::MakeReceiverPipeline(*cfg->receiver, handle->pipeline, clock,
                                                      cfg->manual_clock);
      if (!wrapped.ok()) return FromStatus(Prefixed(kFn, wrapped.status()));
      receiver = std::move(*wrapped);
      handle->pipeline = receiver;
    }

    if (const xg2g_status rc = xg2g::capi::MakeAuditSink(kFn, cfg->audit_callback,
                                                         cfg->audit_path, &handle->audit);
        rc != XG2G_OK) {
      return rc;
    }
    if (handle->audit == nullptr && !cfg->manual_clock) {
      handle->audit = std::make_shared<xg2g::JsonLinesAuditSink>(stderr);
    }

    auto engine = xg2g::Engine::Create(std::move(options), store->rep.get(), clock,
                                       handle->pipeline, handle->audit);
    if (!engine.ok()) return FromStatus(Prefixed(kFn, engine.status()));
    handle->rep = std::move(*engine);
    if (simulated != nullptr) simulated->Attach(handle->rep.get());
    if (receiver != nullptr) receiver->Attach(handle->rep.get());
    *out = handle.release();
    return XG2G_OK;
  });
}

// Destructors are noexcept: nothing can escape into C from here.
void xg2g_engine_destroy(xg2g_engine* engine) { delete engine; }

xg2g_status xg2g_engine_start(xg2g_start_result* out, xg2g_engine* engine,
                              const xg2g_start_request* req) {
  return Guard("xg2g_engine_start", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_start";
    XG2G_CAPI_REQUIRE(out, kFn);
    if (out->version != XG2G_START_RESULT_VERSION) {
      return UnknownVersion(kFn, "out->version", out->version, XG2G_START_RESULT_VERSION);
    }
    *out = xg2g_start_result XG2G_START_RESULT_INIT;
    XG2G_CAPI_REQUIRE(engine, kFn);
    XG2G_CAPI_REQUIRE(req, kFn);
    if (req->version != XG2G_START_REQUEST_VERSION) {
      return UnknownVersion(kFn, "req->version", req->version, XG2G_START_REQUEST_VERSION);
    }
    if (req->service_ref == nullptr) {
      return Fail(XG2G_EINVAL, std::string(kFn) + ": req->service_ref is NULL");
    }

    xg2g::StartRequest request;
    request.service_ref = req->service_ref;
    request.profile = OrEmpty(req->profile);
    request.principal = OrEmpty(req->principal);
    request.idempotency_key = OrEmpty(req->idempotency_key);
    request.correlation_id = OrEmpty(req->correlation_id);
    if (req->param_count > 0) {
      if (req->params == nullptr) {
        return Fail(XG2G_EINVAL, std::string(kFn) + ": req->params is NULL but param_count is " +
                                     std::to_string(req->param_count));
      }
      if (req->param_count > SIZE_MAX / 2) {
        return Fail(XG2G_EINVAL, std::string(kFn) + ": req->param_count is too large");
      }
      for (size_t i = 0; i < req->param_count; ++i) {
        const char* key = req->params[2 * i];
        const char* value = req->params[2 * i + 1];
        if (key == nullptr || value == nullptr) {
          return Fail(XG2G_EINVAL, std::string(kFn) + ": req->params pair " + std::to_string(i) +
                                       " has a NULL " + (key == nullptr ? "key" : "value"));
        }
        if (!request.params.emplace(key, value).second) {
          return Fail(XG2G_EINVAL,
                      std::string(kFn) + ": req->params lists key '" + key + "' twice");
        }
      }
    }

    std::string busy_session_id;
    auto result = engine->rep->Start(request, &busy_session_id);
    if (!result.ok()) {
      const xg2g::ErrorCode code = xg2g::CodeOf(result.status());
      if (code == xg2g::ErrorCode::kBusy || code == xg2g::ErrorCode::kInFlight) {
        (void)CopyTo(out->busy_session_id, busy_session_id);
      }
      return FromStatus(Prefixed(kFn, result.status()));
    }
    if (!CopyTo(out->session_id, result->session_id) ||
        !CopyTo(out->correlation_id, result->correlation_id)) {
      *out = xg2g_start_result XG2G_START_RESULT_INIT;
      return Fail(XG2G_EINTERNAL, std::string(kFn) + ": the session id or correlation id '" +
                                      result->session_id + "' does not fit the result");
    }
    out->state = static_cast<xg2g_session_state>(result->state);
    out->replay = result->replay ? 1 : 0;
    return XG2G_OK;
  });
}

xg2g_status xg2g_engine_stop(xg2g_stop_result* out, xg2g_engine* engine,
                             const char* session_id) {
  return Guard("xg2g_engine_stop", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_stop";
    if (out != nullptr) {
      if (out->version != XG2G_STOP_RESULT_VERSION) {
        return UnknownVersion(kFn, "out->version", out->version, XG2G_STOP_RESULT_VERSION);
      }
      *out = xg2g_stop_result XG2G_STOP_RESULT_INIT;
    }
    XG2G_CAPI_REQUIRE(engine, kFn);
    if (const xg2g_status rc = RequireSessionId(session_id, kFn); rc != XG2G_OK) return rc;
    auto result = engine->rep->Stop(session_id);
    if (!result.ok()) return FromStatus(Prefixed(kFn, result.status()));
    if (out != nullptr) {
      if (!CopyTo(out->session_id, result->session_id)) {
        *out = xg2g_stop_result XG2G_STOP_RESULT_INIT;
        return Fail(XG2G_EINTERNAL, std::string(kFn) + ": the session id does not fit the result");
      }
      out->state = static_cast<xg2g_session_state>(result->state);
    }
    return XG2G_OK;
  });
}

xg2g_status xg2g_engine_report_ready(xg2g_engine* engine, const char* session_id,
                                     uint64_t fencing_token) {
  return Guard("xg2g_engine_report_ready", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_report_ready";
    XG2G_CAPI_REQUIRE(engine, kFn);
    if (const xg2g_status rc = RequireSessionId(session_id, kFn); rc != XG2G_OK) return rc;
    return FromStatus(Prefixed(kFn, engine->rep->ReportReady(session_id, fencing_token)));
  });
}

xg2g_status xg2g_engine_report_failed(xg2g_engine* engine, const char* session_id,
                                      uint64_t fencing_token, xg2g_reason reason,
                                      const char* detail) {
  const int value = xg2g::capi::EnumBits(reason);
  return Guard("xg2g_engine_report_failed", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_report_failed";
    XG2G_CAPI_REQUIRE(engine, kFn);
    if (const xg2g_status rc = RequireSessionId(session_id, kFn); rc != XG2G_OK) return rc;
    if (value < 0 || value >= xg2g::kReasonCount) {
      return Fail(XG2G_EINVAL,
                  std::string(kFn) + ": reason " + std::to_string(value) + " is not an xg2g_reason");
    }
    return FromStatus(Prefixed(
        kFn, engine->rep->ReportFailed(session_id, fencing_token, static_cast<xg2g::Reason>(value),
                                       detail == nullptr ? std::string_view() : detail)));
  });
}

xg2g_status xg2g_engine_report_stopped(xg2g_engine* engine, const char* session_id,
                                       uint64_t fencing_token) {
  return Guard("xg2g_engine_report_stopped", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_report_stopped";
    XG2G_CAPI_REQUIRE(engine, kFn);
    if (const xg2g_status rc = RequireSessionId(session_id, kFn); rc != XG2G_OK) return rc;
    return FromStatus(Prefixed(kFn, engine->rep->ReportStopped(session_id, fencing_token)));
  });
}

xg2g_status xg2g_engine_touch(xg2g_engine* engine, const char* session_id) {
  return Guard("xg2g_engine_touch", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_touch";
    XG2G_CAPI_REQUIRE(engine, kFn);
    if (const xg2g_status rc = RequireSessionId(session_id, kFn); rc != XG2G_OK) return rc;
    return FromStatus(Prefixed(kFn, engine->rep->Touch(session_id)));
  });
}

xg2g_status xg2g_engine_poll(xg2g_engine* engine) {
  return Guard("xg2g_engine_poll", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_poll";
    XG2G_CAPI_REQUIRE(engine, kFn);
    if (engine->manual_clock == nullptr) return XG2G_OK;  // the engine's thread does it
    if (polling_engine == engine) {
      return Fail(XG2G_ESTATE, std::string(kFn) + ": called from inside a callback of the engine");
    }
    std::lock_guard<std::mutex> lock(engine->poll_mu);
    PollScope scope(engine);
    engine->rep->Poll();
    return XG2G_OK;
  });
}

xg2g_status xg2g_engine_advance_clock(xg2g_engine* engine, int64_t ms) {
  return Guard("xg2g_engine_advance_clock", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_advance_clock";
    XG2G_CAPI_REQUIRE(engine, kFn);
    if (ms < 0) {
      return Fail(XG2G_EINVAL, std::string(kFn) + ": ms must be >= 0, got " + std::to_string(ms));
    }
    if (engine->manual_clock == nullptr) {
      return Fail(XG2G_EINVAL, std::string(kFn) +
                                   ": the engine uses the real clock (see "
                                   "xg2g_config_set_manual_clock)");
    }
    if (polling_engine == engine) {
      return Fail(XG2G_ESTATE, std::string(kFn) + ": called from inside a callback of the engine");
    }
    std::lock_guard<std::mutex> lock(engine->poll_mu);
    PollScope scope(engine);
    engine->manual_clock->AdvanceMs(ms);
    engine->rep->Poll();
    return XG2G_OK;
  });
}

xg2g_status xg2g_engine_get_stats(xg2g_engine_stats* out, xg2g_engine* engine) {
  return Guard("xg2g_engine_get_stats", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_engine_get_stats";
    XG2G_CAPI_REQUIRE(out, kFn);
    if (out->version != XG2G_ENGINE_STATS_VERSION) {
      return UnknownVersion(kFn, "out->version", out->version, XG2G_ENGINE_STATS_VERSION);
    }
    *out = xg2g_engine_stats XG2G_ENGINE_STATS_INIT;
    XG2G_CAPI_REQUIRE(engine, kFn);
    CopyStats(out, engine->rep->Stats());
    return XG2G_OK;
  });
}

}  // extern "C"

// C entry points of the receiver client, readiness waits, cancel tokens and
// the engine's receiver pipeline (include/xg2g/xg2g_receiver.h).
#include "capi/receiver.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "capi/barrier.h"
#include "capi/handles.h"
#include "include/xg2g/xg2g.h"
#include "lib/common/status.h"
#include "lib/upstream/cancel.h"
#include "lib/upstream/circuit_breaker.h"
#include "lib/upstream/readiness.h"
#include "lib/upstream/tune.h"

struct xg2g_cancel_token {
  xg2g::CancelToken rep;
};

namespace {

using xg2g::capi::Fail;
using xg2g::capi::FromStatus;
using xg2g::capi::Guard;
using xg2g::capi::SavedLastError;

static_assert(XG2G_BREAKER_CLOSED == static_cast<int>(xg2g::BreakerState::kClosed));
static_assert(XG2G_BREAKER_HALF_OPEN == static_cast<int>(xg2g::BreakerState::kHalfOpen));
static_assert(XG2G_BREAKER_OPEN == static_cast<int>(xg2g::BreakerState::kOpen));

// The host's log callback (capi/handles.h: destroy runs when the last holder
// lets go, so never while a call of `fn` is running).
using HostLogCallback = xg2g::capi::HostCallback<xg2g_receiver_log_fn>;

// Where a receiver's breaker reports: the host's callback when set, else stderr.
class LogSlot {
 public:
  void Set(std::shared_ptr<HostLogCallback> callback) {
    std::shared_ptr<HostLogCallback> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old = std::exchange(callback_, std::move(callback));
    }
    // `old` is released here, outside the lock (its destroy is host code).
  }
  void Emit(const xg2g::BreakerStateChange& change) {
    std::shared_ptr<HostLogCallback> callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      callback = callback_;
    }
    if (callback == nullptr) {
      stderr_(change);
      return;
    }
    const std::string line = xg2g::BreakerStateChangeJson(change);
    SavedLastError saved;
    callback->fn(line.c_str(), callback->user_data);
  }

 private:
  std::mutex mu_;
  std::shared_ptr<HostLogCallback> callback_;  // guarded by mu_
  const xg2g::BreakerLogFn stderr_ = xg2g::StderrBreakerLog();
};

std::string OrEmpty(const char* s) { return s == nullptr ? std::string() : std::string(s); }

xg2g_status UnknownVersion(const char* function, const char* what, unsigned int version,
                           unsigned int known) {
  return Fail(XG2G_EVERSION, std::string(function) + ": unknown " + what + " " +
                                 std::to_string(version) + " (this library knows " +
                                 std::to_string(known) + ")");
}

absl::Status Prefixed(std::string_view function, const absl::Status& status) {
  if (status.ok()) return status;
  return xg2g::MakeError(xg2g::CodeOf(status), std::string(function) + ": " +
                                                   std::string(xg2g::FromAbsl(status.message())));
}

// The core configuration from the C options; EVERSION/EINVAL via Fail().
xg2g_status ToConfig(const char* function, const char* base_url, const xg2g_receiver_options* opts,
                     xg2g::capi::ReceiverConfig* out) {
  xg2g_receiver_options o = XG2G_RECEIVER_OPTIONS_INIT;
  if (opts != nullptr) {
    if (opts->version != XG2G_RECEIVER_OPTIONS_VERSION) {
      return UnknownVersion(function, "opts->version", opts->version,
                            XG2G_RECEIVER_OPTIONS_VERSION);
    }
    o = *opts;
  }
  xg2g::capi::ReceiverConfig config;
  config.client.base_url = OrEmpty(base_url);
  config.client.username = OrEmpty(o.username);
  config.client.password = OrEmpty(o.password);
  config.client.connect_timeout_ms = o.connect_timeout_ms;
  config.client.request_timeout_ms = o.request_timeout_ms;
  config.client.breaker_name =
      (o.breaker_name == nullptr || o.breaker_name[0] == '\0') ? "receiver" : o.breaker_name;
  config.client.breaker.failure_threshold = o.breaker_failure_threshold;
  config.client.breaker.open_timeout_ms = o.breaker_open_timeout_ms;
  config.client.breaker.half_open_max_probes = o.breaker_half_open_probes;
  config.client.breaker.half_open_success_threshold = o.breaker_half_open_successes;
  config.pipeline.tune.poll_interval_ms = o.poll_interval_ms;
  config.pipeline.tune.poll_jitter_ms = o.poll_jitter_ms;
  config.pipeline.tune.required_polls = o.required_polls;
  config.pipeline.tune.max_bad_polls = o.max_bad_polls;
  config.pipeline.tune_timeout_ms = o.tune_timeout_ms;
  absl::Status valid = xg2g::ValidateReceiverOptions(config.client);
  if (valid.ok()) valid = xg2g::ValidateReceiverPipelineOptions(config.pipeline);
  if (!valid.ok()) return FromStatus(Prefixed(function, valid));
  *out = std::move(config);
  return XG2G_OK;
}

xg2g_status ToWaitOptions(const char* function, const xg2g_wait_options* opts,
                          xg2g::WaitOptions* out) {
  xg2g_wait_options o = XG2G_WAIT_OPTIONS_INIT;
  if (opts != nullptr) {
    if (opts->version != XG2G_WAIT_OPTIONS_VERSION) {
      return UnknownVersion(function, "opts->version", opts->version, XG2G_WAIT_OPTIONS_VERSION);
    }
    o = *opts;
  }
  out->timeout_ms = o.timeout_ms;
  out->initial_backoff_ms = o.initial_backoff_ms;
  out->max_backoff_ms = o.max_backoff_ms;
  out->attempt_timeout_ms = o.attempt_timeout_ms;
  out->verify_tls = o.skip_tls_verify == 0;
  absl::Status valid = xg2g::ValidateWaitOptions(*out);
  if (!valid.ok()) return FromStatus(Prefixed(function, valid));
  return XG2G_OK;
}

const xg2g::CancelToken* TokenOf(const xg2g_cancel_token* token) {
  return token == nullptr ? nullptr : &token->rep;
}

}  // namespace

struct xg2g_receiver {
  std::shared_ptr<LogSlot> log = std::make_shared<LogSlot>();
  std::unique_ptr<xg2g::ReceiverClient> client;
  std::unique_ptr<xg2g::TuneWaiter> waiter;  // uses client: declared after it
};

namespace {

template <typename Wait>
xg2g_status TuneCall(const char* function, xg2g_reason* out_reason, xg2g_receiver* receiver,
                     const char* service_ref, int64_t timeout_ms, Wait wait) {
  if (out_reason != nullptr) *out_reason = XG2G_R_NONE;
  return Guard(function, [&]() -> xg2g_status {
    // Argument errors are the caller's: R_TUNE_FAILED would be a lie, R_NONE stays.
    XG2G_CAPI_REQUIRE(receiver, function);
    XG2G_CAPI_REQUIRE(service_ref, function);
    if (timeout_ms < 1) {
      return Fail(XG2G_EINVAL, std::string(function) + ": timeout_ms must be >= 1, got " +
                                   std::to_string(timeout_ms));
    }
    const absl::Status result = wait();
    if (out_reason != nullptr) {
      *out_reason = static_cast<xg2g_reason>(xg2g::TuneFailureReason(result));
    }
    return FromStatus(Prefixed(function, result));
  });
}

}  // namespace

namespace xg2g::capi {

absl::StatusOr<std::shared_ptr<ReceiverPipeline>> MakeReceiverPipeline(
    const ReceiverConfig& config, std::shared_ptr<Pipeline> host, Clock* clock, bool quiet) {
  XG2G_ASSIGN_OR_RETURN(
      std::unique_ptr<ReceiverClient> client,
      ReceiverClient::Create(config.client, clock, quiet ? BreakerLogFn{} : StderrBreakerLog()));
  return std::make_shared<ReceiverPipeline>(std::shared_ptr<ReceiverApi>(std::move(client)),
                                            std::move(host), config.pipeline, clock);
}

}  // namespace xg2g::capi

extern "C" {

// ---------------------------------------------------------------------------
// Cancel tokens

xg2g_status xg2g_cancel_token_create(xg2g_cancel_token** out) {
  return Guard("xg2g_cancel_token_create", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_cancel_token_create");
    *out = nullptr;
    *out = new xg2g_cancel_token();
    return XG2G_OK;
  });
}

void xg2g_cancel_token_destroy(xg2g_cancel_token* token) { delete token; }

void xg2g_cancel_token_cancel(xg2g_cancel_token* token) {
  if (token == nullptr) return;
  try {
    token->rep.Cancel();  // wakes waits; nothing in it throws, but nothing may cross into C
  } catch (...) {
  }
}

int xg2g_cancel_token_is_cancelled(const xg2g_cancel_token* token) {
  return token != nullptr && token->rep.cancelled() ? 1 : 0;
}

// ---------------------------------------------------------------------------
// Readiness waits

xg2g_status xg2g_wait_options_init(xg2g_wait_options* opts, unsigned int version) {
  return Guard("xg2g_wait_options_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(opts, "xg2g_wait_options_init");
    if (version != XG2G_WAIT_OPTIONS_VERSION) {
      return UnknownVersion("xg2g_wait_options_init", "version", version,
                            XG2G_WAIT_OPTIONS_VERSION);
    }
    *opts = xg2g_wait_options XG2G_WAIT_OPTIONS_INIT;
    return XG2G_OK;
  });
}

xg2g_status xg2g_wait_http_ready(const char* url, const xg2g_wait_options* opts,
                                 xg2g_cancel_token* cancel) {
  return Guard("xg2g_wait_http_ready", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_wait_http_ready";
    XG2G_CAPI_REQUIRE(url, kFn);
    xg2g::WaitOptions options;
    if (const xg2g_status rc = ToWaitOptions(kFn, opts, &options); rc != XG2G_OK) return rc;
    return FromStatus(Prefixed(kFn, xg2g::WaitForHttpReady(url, options, TokenOf(cancel))));
  });
}

xg2g_status xg2g_wait_tcp_ready(const char* host, int port, const xg2g_wait_options* opts,
                                xg2g_cancel_token* cancel) {
  return Guard("xg2g_wait_tcp_ready", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_wait_tcp_ready";
    XG2G_CAPI_REQUIRE(host, kFn);
    xg2g::WaitOptions options;
    if (const xg2g_status rc = ToWaitOptions(kFn, opts, &options); rc != XG2G_OK) return rc;
    return FromStatus(Prefixed(kFn, xg2g::WaitForTcpReady(host, port, options, TokenOf(cancel))));
  });
}

// ---------------------------------------------------------------------------
// Receiver client

xg2g_status xg2g_receiver_options_init(xg2g_receiver_options* opts, unsigned int version) {
  return Guard("xg2g_receiver_options_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(opts, "xg2g_receiver_options_init");
    if (version != XG2G_RECEIVER_OPTIONS_VERSION) {
      return UnknownVersion("xg2g_receiver_options_init", "version", version,
                            XG2G_RECEIVER_OPTIONS_VERSION);
    }
    *opts = xg2g_receiver_options XG2G_RECEIVER_OPTIONS_INIT;
    return XG2G_OK;
  });
}

xg2g_status xg2g_receiver_create(xg2g_receiver** out, const char* base_url,
                                 const xg2g_receiver_options* opts) {
  return Guard("xg2g_receiver_create", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_receiver_create";
    XG2G_CAPI_REQUIRE(out, kFn);
    *out = nullptr;
    XG2G_CAPI_REQUIRE(base_url, kFn);
    xg2g::capi::ReceiverConfig config;
    if (const xg2g_status rc = ToConfig(kFn, base_url, opts, &config); rc != XG2G_OK) return rc;
    auto handle = std::make_unique<xg2g_receiver>();
    auto client = xg2g::ReceiverClient::Create(
        config.client, nullptr,
        [log = handle->log](const xg2g::BreakerStateChange& change) { log->Emit(change); });
    if (!client.ok()) return FromStatus(Prefixed(kFn, client.status()));
    handle->client = std::move(*client);
    handle->waiter = std::make_unique<xg2g::TuneWaiter>(handle->client.get(), config.pipeline.tune);
    *out = handle.release();
    return XG2G_OK;
  });
}

void xg2g_receiver_destroy(xg2g_receiver* receiver) { delete receiver; }

xg2g_status xg2g_receiver_set_log_callback(xg2g_receiver* receiver, xg2g_receiver_log_fn fn,
                                           void* user_data, void (*destroy)(void*)) {
  constexpr const char* kFn = "xg2g_receiver_set_log_callback";
  return xg2g::capi::RegisterHostCallback<xg2g_receiver_log_fn>(
      kFn, user_data, destroy, [&](auto& holder) -> xg2g_status {
        XG2G_CAPI_REQUIRE(receiver, kFn);
        if (fn == nullptr) {
          receiver->log->Set(nullptr);
          return XG2G_OK;  // `holder` is let go: destroy runs now
        }
        holder->fn = fn;
        receiver->log->Set(std::move(holder));
        return XG2G_OK;
      });
}

xg2g_status xg2g_receiver_zap(xg2g_receiver* receiver, const char* service_ref) {
  return Guard("xg2g_receiver_zap", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_receiver_zap";
    XG2G_CAPI_REQUIRE(receiver, kFn);
    XG2G_CAPI_REQUIRE(service_ref, kFn);
    return FromStatus(Prefixed(kFn, receiver->client->Zap(service_ref)));
  });
}

xg2g_status xg2g_receiver_get_current(char** out, xg2g_receiver* receiver) {
  if (out != nullptr) *out = nullptr;
  return Guard("xg2g_receiver_get_current", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_receiver_get_current";
    XG2G_CAPI_REQUIRE(out, kFn);
    XG2G_CAPI_REQUIRE(receiver, kFn);
    auto current = receiver->client->GetCurrent();
    if (!current.ok()) return FromStatus(Prefixed(kFn, current.status()));
    *out = xg2g::capi::DupString(current->service_ref);
    return XG2G_OK;
  });
}

xg2g_status xg2g_receiver_get_signal(xg2g_signal* out, xg2g_receiver* receiver) {
  return Guard("xg2g_receiver_get_signal", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_receiver_get_signal";
    XG2G_CAPI_REQUIRE(out, kFn);
    if (out->version != XG2G_SIGNAL_VERSION) {
      return UnknownVersion(kFn, "out->version", out->version, XG2G_SIGNAL_VERSION);
    }
    *out = xg2g_signal XG2G_SIGNAL_INIT;
    XG2G_CAPI_REQUIRE(receiver, kFn);
    auto signal = receiver->client->GetSignal();
    if (!signal.ok()) return FromStatus(Prefixed(kFn, signal.status()));
    auto put = [&](const std::optional<double>& value, double& field, unsigned int bit) {
      if (!value.has_value()) return;
      field = *value;
      out->known |= bit;
    };
    put(signal->snr_percent, out->snr_percent, XG2G_SIGNAL_SNR);
    put(signal->snr_db, out->snr_db, XG2G_SIGNAL_SNR_DB);
    put(signal->agc_percent, out->agc_percent, XG2G_SIGNAL_AGC);
    put(signal->ber, out->ber, XG2G_SIGNAL_BER);
    out->locked = signal->locked ? 1 : 0;
    out->in_standby = signal->in_standby ? 1 : 0;
    return XG2G_OK;
  });
}

xg2g_status xg2g_receiver_ping(xg2g_receiver* receiver) {
  return Guard("xg2g_receiver_ping", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_receiver_ping";
    XG2G_CAPI_REQUIRE(receiver, kFn);
    return FromStatus(Prefixed(kFn, receiver->client->About().status()));
  });
}

xg2g_status xg2g_receiver_wait_tuned(xg2g_reason* out_reason, xg2g_receiver* receiver, int slot,
                                     const char* service_ref, int64_t timeout_ms,
                                     xg2g_cancel_token* cancel) {
  return TuneCall("xg2g_receiver_wait_tuned", out_reason, receiver, service_ref, timeout_ms, [&] {
    return receiver->waiter->WaitTuned(slot, service_ref, timeout_ms, TokenOf(cancel));
  });
}

xg2g_status xg2g_receiver_tune(xg2g_reason* out_reason, xg2g_receiver* receiver, int slot,
                               const char* service_ref, int64_t timeout_ms,
                               xg2g_cancel_token* cancel) {
  return TuneCall("xg2g_receiver_tune", out_reason, receiver, service_ref, timeout_ms, [&] {
    return receiver->waiter->Tune(slot, service_ref, timeout_ms, TokenOf(cancel));
  });
}

xg2g_breaker_state xg2g_receiver_get_breaker_state(xg2g_receiver* receiver) {
  if (receiver == nullptr) return XG2G_BREAKER_CLOSED;
  try {
    return static_cast<xg2g_breaker_state>(receiver->client->breaker().state());
  } catch (...) {
    return XG2G_BREAKER_CLOSED;  // only a log hook could throw; nothing crosses into C
  }
}

xg2g_status xg2g_circuit_breaker_get_metrics(char** out) {
  if (out != nullptr) *out = nullptr;
  return Guard("xg2g_circuit_breaker_get_metrics", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_circuit_breaker_get_metrics");
    std::string text;
    xg2g::AppendCircuitBreakerMetrics(text);
    *out = xg2g::capi::DupString(text);
    return XG2G_OK;
  });
}

// ---------------------------------------------------------------------------
// Engine configuration

xg2g_status xg2g_config_set_receiver(xg2g_config* cfg, const char* base_url,
                                     const xg2g_receiver_options* opts) {
  return Guard("xg2g_config_set_receiver", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_config_set_receiver";
    XG2G_CAPI_REQUIRE(cfg, kFn);
    if (base_url == nullptr || base_url[0] == '\0') {
      if (opts != nullptr && opts->version != XG2G_RECEIVER_OPTIONS_VERSION) {
        return UnknownVersion(kFn, "opts->version", opts->version, XG2G_RECEIVER_OPTIONS_VERSION);
      }
      cfg->receiver.reset();
      return XG2G_OK;
    }
    auto config = std::make_shared<xg2g::capi::ReceiverConfig>();
    if (const xg2g_status rc = ToConfig(kFn, base_url, opts, config.get()); rc != XG2G_OK) {
      return rc;
    }
    cfg->receiver = std::move(config);
    return XG2G_OK;
  });
}

}  // extern "C"

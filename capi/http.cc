// C entry points of the v3 HTTP handler (include/xg2g/xg2g_http.h).
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "capi/barrier.h"
#include "capi/handles.h"
#include "include/xg2g/xg2g_http.h"
#include "lib/auth/auth.h"
#include "lib/common/status.h"
#include "lib/http/handler.h"
#include "lib/ratelimit/ip.h"

static_assert(XG2G_HTTP_MAX_BODY_SIZE == xg2g::kMaxBodyBytes, "the header and the core agree");

namespace {

using xg2g::capi::Fail;
using xg2g::capi::FromStatus;
using xg2g::capi::Guard;
using xg2g::capi::SavedLastError;

constexpr int64_t kMaxBurst = 1'000'000'000;
constexpr size_t kReasonSize = 256;

// A host's readiness check registration, shared like the audit callback.
using HostReadiness = xg2g::capi::HostCallback<xg2g_http_ready_fn>;

}  // namespace

// Plain data: xg2g_http_handler_create / _reload copy what they need (the
// callback registrations by shared reference).
struct xg2g_http_config {
  xg2g::TokenSet tokens;
  std::vector<std::string> token_warnings;
  bool allow_query_tokens = false;
  xg2g::RateLimitParams rate_limit;
  xg2g::IpList allow_list;
  xg2g::IpList trusted_proxies;
  xg2g::Scope metrics_scope = xg2g::Scope::kNone;
  std::shared_ptr<xg2g::capi::HostAuditCallback> audit_callback;  // wins over audit_path
  std::string audit_path;
  std::shared_ptr<HostReadiness> readiness;
  std::string warnings;  // what xg2g_http_config_get_warnings returns

  // Rebuilds `warnings` after a setter changed what they depend on.
  void UpdateWarnings() {
    std::string text;
    for (const std::string& w : token_warnings) {
      text += w;
      text += '\n';
    }
    if (allow_query_tokens) {
      text += "query tokens are on: ?token= is deprecated, and every use is audited\n";
    }
    warnings = std::move(text);
  }

  xg2g::HttpPolicy Policy() const {
    xg2g::HttpPolicy policy;
    policy.tokens = tokens;
    policy.allow_query_tokens = allow_query_tokens;
    policy.rate_limit = rate_limit;
    policy.allow_list = allow_list;
    policy.trusted_proxies = trusted_proxies;
    policy.metrics_scope = metrics_scope;
    return policy;
  }
};

// The handler goes first (member order reversed), then what it borrowed.
struct xg2g_http_handler {
  std::shared_ptr<xg2g::AuditSink> audit;
  std::shared_ptr<HostReadiness> readiness;
  std::unique_ptr<xg2g::HttpHandler> rep;
};

struct xg2g_http_response {
  xg2g::HttpResponse rep;
};

namespace {

xg2g_status RequireConfig(const xg2g_http_config* cfg, const char* function) {
  if (cfg == nullptr) return Fail(XG2G_EINVAL, std::string(function) + ": cfg is NULL");
  return XG2G_OK;
}

absl::Status Prefixed(std::string_view function, const absl::Status& status) {
  if (status.ok()) return status;
  return xg2g::MakeError(xg2g::CodeOf(status), std::string(function) + ": " +
                                                   std::string(xg2g::FromAbsl(status.message())));
}

// Shared body of the two IP-list setters.
xg2g_status SetIpList(const char* function, xg2g_http_config* cfg, const char* spec,
                      std::string_view what, xg2g::IpList xg2g_http_config::*member) {
  return Guard(function, [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(cfg, function);
    XG2G_CAPI_REQUIRE(spec, function);
    auto list = xg2g::IpList::Parse(spec, what);
    if (!list.ok()) return FromStatus(Prefixed(function, list.status()));
    cfg->*member = std::move(*list);
    return XG2G_OK;
  });
}

xg2g::ReadinessCheck ReadinessOf(std::shared_ptr<HostReadiness> host) {
  if (host == nullptr || host->fn == nullptr) return {};
  return [host = std::move(host)]() -> absl::Status {
    char reason[kReasonSize] = "";
    SavedLastError saved;
    const xg2g_status rc = host->fn(reason, sizeof reason, host->user_data);
    if (rc == XG2G_OK) return absl::OkStatus();
    reason[sizeof reason - 1] = '\0';
    std::string message = reason;
    if (message.empty()) message = std::string("check returned ") + xg2g_status_str(rc);
    return xg2g::UnavailableError(message);
  };
}

}  // namespace

extern "C" {

// ---------------------------------------------------------------------------
// Configuration

xg2g_status xg2g_http_config_create(xg2g_http_config** out) {
  return Guard("xg2g_http_config_create", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_http_config_create");
    *out = nullptr;
    *out = new xg2g_http_config();
    return XG2G_OK;
  });
}

void xg2g_http_config_destroy(xg2g_http_config* cfg) { delete cfg; }

xg2g_status xg2g_http_config_set_tokens(xg2g_http_config* cfg, const char* spec) {
  return Guard("xg2g_http_config_set_tokens", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_http_config_set_tokens";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    XG2G_CAPI_REQUIRE(spec, kFn);
    std::vector<std::string> warnings;
    auto tokens = xg2g::TokenSet::Parse(spec, &warnings);
    if (!tokens.ok()) return FromStatus(Prefixed(kFn, tokens.status()));
    cfg->tokens = std::move(*tokens);
    cfg->token_warnings = std::move(warnings);
    cfg->UpdateWarnings();
    return XG2G_OK;
  });
}

xg2g_status xg2g_http_config_set_allow_query_tokens(xg2g_http_config* cfg, int enabled) {
  return Guard("xg2g_http_config_set_allow_query_tokens", [&]() -> xg2g_status {
    if (const xg2g_status rc = RequireConfig(cfg, "xg2g_http_config_set_allow_query_tokens");
        rc != XG2G_OK) {
      return rc;
    }
    cfg->allow_query_tokens = enabled != 0;
    cfg->UpdateWarnings();
    return XG2G_OK;
  });
}

xg2g_status xg2g_http_config_set_rate_limit(xg2g_http_config* cfg, double rate_per_sec,
                                            int64_t burst) {
  return Guard("xg2g_http_config_set_rate_limit", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_http_config_set_rate_limit";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    if (!std::isfinite(rate_per_sec) || rate_per_sec < 0) {
      return Fail(XG2G_EINVAL, std::string(kFn) +
                                   ": rate_per_sec must be a finite number >= 0 (0 turns rate "
                                   "limiting off)");
    }
    if (burst < 1 || burst > kMaxBurst) {
      return Fail(XG2G_EINVAL, std::string(kFn) + ": burst must be between 1 and " +
                                   std::to_string(kMaxBurst) + ", got " + std::to_string(burst));
    }
    cfg->rate_limit.rate = rate_per_sec;
    cfg->rate_limit.burst = burst;
    return XG2G_OK;
  });
}

xg2g_status xg2g_http_config_set_rate_limit_max_clients(xg2g_http_config* cfg,
                                                        size_t max_clients) {
  return Guard("xg2g_http_config_set_rate_limit_max_clients", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_http_config_set_rate_limit_max_clients";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    if (max_clients < 1) return Fail(XG2G_EINVAL, std::string(kFn) + ": max_clients must be >= 1");
    cfg->rate_limit.max_clients = max_clients;
    return XG2G_OK;
  });
}

xg2g_status xg2g_http_config_set_allow_list(xg2g_http_config* cfg, const char* spec) {
  return SetIpList("xg2g_http_config_set_allow_list", cfg, spec, "rate-limit allow-list",
                   &xg2g_http_config::allow_list);
}

xg2g_status xg2g_http_config_set_trusted_proxies(xg2g_http_config* cfg, const char* spec) {
  return SetIpList("xg2g_http_config_set_trusted_proxies", cfg, spec, "trusted proxies",
                   &xg2g_http_config::trusted_proxies);
}

xg2g_status xg2g_http_config_set_metrics_scope(xg2g_http_config* cfg, const char* scope) {
  return Guard("xg2g_http_config_set_metrics_scope", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_http_config_set_metrics_scope";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    XG2G_CAPI_REQUIRE(scope, kFn);
    if (scope[0] == '\0') {
      cfg->metrics_scope = xg2g::Scope::kNone;
      return XG2G_OK;
    }
    const std::optional<xg2g::Scope> parsed = xg2g::ParseScope(scope);
    if (!parsed) {
      return Fail(XG2G_EINVAL, std::string(kFn) + ": unknown scope '" +
                                   std::string(std::string_view(scope).substr(0, 32)) +
                                   "' (known: v3:read, v3:write, v3:admin, v3:*, *)");
    }
    cfg->metrics_scope = *parsed;
    return XG2G_OK;
  });
}

xg2g_status xg2g_http_config_set_audit_callback(xg2g_http_config* cfg, xg2g_audit_fn fn,
                                                void* user_data, void (*destroy)(void*)) {
  return xg2g::capi::SetAuditCallback("xg2g_http_config_set_audit_callback", cfg, fn, user_data,
                                      destroy);
}

xg2g_status xg2g_http_config_set_audit_path(xg2g_http_config* cfg, const char* path) {
  return Guard("xg2g_http_config_set_audit_path", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_http_config_set_audit_path";
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    XG2G_CAPI_REQUIRE(path, kFn);
    if (path[0] == '\0') return Fail(XG2G_EINVAL, std::string(kFn) + ": path is empty");
    cfg->audit_path = path;
    cfg->audit_callback.reset();
    return XG2G_OK;
  });
}

xg2g_status xg2g_http_config_set_readiness_check(xg2g_http_config* cfg, xg2g_http_ready_fn fn,
                                                 void* user_data, void (*destroy)(void*)) {
  constexpr const char* kFn = "xg2g_http_config_set_readiness_check";
  return xg2g::capi::RegisterHostCallback<xg2g_http_ready_fn>(
      kFn, user_data, destroy, [&](auto& holder) -> xg2g_status {
        if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
        cfg->readiness.reset();
        if (fn == nullptr) return XG2G_OK;
        holder->fn = fn;
        cfg->readiness = std::move(holder);
        return XG2G_OK;
      });
}

const char* xg2g_http_config_get_warnings(const xg2g_http_config* cfg) {
  return cfg == nullptr ? "" : cfg->warnings.c_str();
}

// ---------------------------------------------------------------------------
// Handler

xg2g_status xg2g_http_handler_create(xg2g_http_handler** out, xg2g_engine* engine,
                                     const xg2g_http_config* cfg) {
  return Guard("xg2g_http_handler_create", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_http_handler_create";
    XG2G_CAPI_REQUIRE(out, kFn);
    *out = nullptr;
    XG2G_CAPI_REQUIRE(engine, kFn);
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;

    auto handle = std::make_unique<xg2g_http_handler>();
    if (const xg2g_status rc = xg2g::capi::MakeAuditSink(kFn, cfg->audit_callback,
                                                         cfg->audit_path, &handle->audit);
        rc != XG2G_OK) {
      return rc;
    }
    if (handle->audit == nullptr) {
      handle->audit = std::make_shared<xg2g::JsonLinesAuditSink>(stderr);
    }
    handle->readiness = cfg->readiness;

    xg2g::HttpHandlerOptions options;
    options.audit = handle->audit;
    options.readiness = ReadinessOf(cfg->readiness);
    auto handler = xg2g::HttpHandler::Create(engine->rep.get(), cfg->Policy(), std::move(options));
    if (!handler.ok()) return FromStatus(Prefixed(kFn, handler.status()));
    handle->rep = std::move(*handler);
    *out = handle.release();
    return XG2G_OK;
  });
}

xg2g_status xg2g_http_handler_reload(xg2g_http_handler* handler, const xg2g_http_config* cfg) {
  return Guard("xg2g_http_handler_reload", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_http_handler_reload";
    XG2G_CAPI_REQUIRE(handler, kFn);
    if (const xg2g_status rc = RequireConfig(cfg, kFn); rc != XG2G_OK) return rc;
    handler->rep->Reload(cfg->Policy());
    return XG2G_OK;
  });
}

void xg2g_http_handler_destroy(xg2g_http_handler* handler) { delete handler; }

xg2g_status xg2g_http_request_init(xg2g_http_request* req, unsigned int version) {
  return Guard("xg2g_http_request_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(req, "xg2g_http_request_init");
    if (version != XG2G_HTTP_REQUEST_VERSION) {
      return Fail(XG2G_EVERSION, "xg2g_http_request_init: unknown version " +
                                     std::to_string(version) + " (this library knows " +
                                     std::to_string(XG2G_HTTP_REQUEST_VERSION) + ")");
    }
    *req = xg2g_http_request XG2G_HTTP_REQUEST_INIT;
    return XG2G_OK;
  });
}

xg2g_status xg2g_http_handler_handle(xg2g_http_response** out, xg2g_http_handler* handler,
                                     const xg2g_http_request* req) {
  return Guard("xg2g_http_handler_handle", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_http_handler_handle";
    XG2G_CAPI_REQUIRE(out, kFn);
    *out = nullptr;
    XG2G_CAPI_REQUIRE(handler, kFn);
    XG2G_CAPI_REQUIRE(req, kFn);
    if (req->version != XG2G_HTTP_REQUEST_VERSION) {
      return Fail(XG2G_EVERSION, std::string(kFn) + ": unknown req->version " +
                                     std::to_string(req->version) + " (this library knows " +
                                     std::to_string(XG2G_HTTP_REQUEST_VERSION) + ")");
    }
    if (req->method == nullptr) return Fail(XG2G_EINVAL, std::string(kFn) + ": req->method is NULL");
    if (req->target == nullptr) return Fail(XG2G_EINVAL, std::string(kFn) + ": req->target is NULL");
    if (req->header_count > 0 && req->headers == nullptr) {
      return Fail(XG2G_EINVAL, std::string(kFn) + ": req->headers is NULL but header_count is " +
                                   std::to_string(req->header_count));
    }
    if (req->body_size > 0 && req->body == nullptr) {
      return Fail(XG2G_EINVAL, std::string(kFn) + ": req->body is NULL but body_size is " +
                                   std::to_string(req->body_size));
    }
    // Views over the caller's memory; a small request needs no allocation.
    constexpr size_t kInline = 32;
    xg2g::HttpHeader inline_headers[kInline];
    std::vector<xg2g::HttpHeader> many;
    xg2g::HttpHeader* headers = inline_headers;
    if (req->header_count > kInline) {
      many.resize(req->header_count);
      headers = many.data();
    }
    for (size_t i = 0; i < req->header_count; ++i) {
      const xg2g_http_header& h = req->headers[i];
      if (h.name == nullptr || h.value == nullptr) {
        return Fail(XG2G_EINVAL, std::string(kFn) + ": req->headers[" + std::to_string(i) +
                                     "] has a NULL " + (h.name == nullptr ? "name" : "value"));
      }
      headers[i] = xg2g::HttpHeader{h.name, h.value};
    }
    xg2g::HttpRequest request;
    request.method = req->method;
    request.target = req->target;
    request.headers = std::span<const xg2g::HttpHeader>(headers, req->header_count);
    request.body = req->body_size > 0 ? std::string_view(req->body, req->body_size)
                                      : std::string_view();
    request.peer = req->peer_ip != nullptr ? std::string_view(req->peer_ip) : std::string_view();
    auto response = std::make_unique<xg2g_http_response>();
    response->rep = handler->rep->Handle(request);
    *out = response.release();
    return XG2G_OK;
  });
}

int xg2g_http_response_get_status(const xg2g_http_response* resp) {
  return resp == nullptr ? 0 : resp->rep.status;
}

size_t xg2g_http_response_get_header_count(const xg2g_http_response* resp) {
  return resp == nullptr ? 0 : resp->rep.headers.size();
}

const char* xg2g_http_response_get_header_name(const xg2g_http_response* resp, size_t index) {
  if (resp == nullptr || index >= resp->rep.headers.size()) return nullptr;
  return resp->rep.headers[index].first.c_str();
}

const char* xg2g_http_response_get_header_value(const xg2g_http_response* resp, size_t index) {
  if (resp == nullptr || index >= resp->rep.headers.size()) return nullptr;
  return resp->rep.headers[index].second.c_str();
}

const char* xg2g_http_response_get_header(const xg2g_http_response* resp, const char* name) {
  if (resp == nullptr || name == nullptr) return nullptr;
  const std::string* value = resp->rep.Header(name);
  return value == nullptr ? nullptr : value->c_str();
}

const char* xg2g_http_response_get_body(const xg2g_http_response* resp, size_t* size) {
  if (resp == nullptr) {
    if (size != nullptr) *size = 0;
    return "";
  }
  if (size != nullptr) *size = resp->rep.body.size();
  return resp->rep.body.c_str();
}

void xg2g_http_response_destroy(xg2g_http_response* resp) { delete resp; }

}  // extern "C"

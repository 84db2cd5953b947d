#include "lib/http/handler.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <exception>
#include <iterator>
#include <optional>

#include <fmt/format.h>

#include "lib/common/json_writer.h"
#include "lib/common/status.h"
#include "lib/crypto/crypto.h"
#include "lib/http/intent_body.h"
#include "lib/http/target.h"
#include "lib/ratelimit/client_ip.h"

namespace xg2g {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kRateLimitPolicyName = "\"per-client\"";
constexpr int64_t kBusyRetryAfterSeconds = 5;
constexpr int64_t kInFlightRetryAfterSeconds = 1;
constexpr int64_t kUnavailableRetryAfterSeconds = 5;
constexpr size_t kDefaultLimit = 100;
constexpr uint64_t kMaxOffset = 1'000'000'000;
constexpr size_t kMaxRequestId = 128;
constexpr int64_t kMaxBurst = 1'000'000'000;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// Every value of header `name`, in order. Requests carry a handful of
// headers: a linear scan beats any index.
struct HeaderValues {
  std::string_view values[4];
  std::vector<std::string_view> more;  // beyond four
  size_t count = 0;

  void Add(std::string_view v) {
    if (count < 4) {
      values[count] = v;
    } else {
      if (more.empty()) more.assign(values, values + 4);
      more.push_back(v);
    }
    ++count;
  }
  std::span<const std::string_view> span() const {
    if (count <= 4) return std::span<const std::string_view>(values, count);
    return std::span<const std::string_view>(more);
  }
};

HeaderValues FindHeaders(std::span<const HttpHeader> headers, std::string_view name) {
  HeaderValues out;
  for (const HttpHeader& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) out.Add(h.value);
  }
  return out;
}

std::string_view MethodLabel(std::string_view method) {
  for (std::string_view known : {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                                 "CONNECT", "TRACE"}) {
    if (method == known) return known;
  }
  return "OTHER";
}

std::string_view StatusLabel(int status, char (&buffer)[8]) {
  auto [ptr, ec] = std::to_chars(buffer, buffer + sizeof buffer, status);
  if (ec != std::errc()) return "0";
  return std::string_view(buffer, static_cast<size_t>(ptr - buffer));
}

bool IsRequestIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// The field an engine validation error is about: its messages start with it.
std::string_view FieldOfEngineError(std::string_view message) {
  for (std::string_view field :
       {"serviceRef", "profile", "principal", "idempotencyKey", "correlationId", "params"}) {
    if (message.substr(0, field.size()) == field) return field;
  }
  return {};
}

// {"field":"<name>"} or "" for none.
std::string FieldDetails(std::string_view field) {
  if (field.empty()) return {};
  std::string out = "{\"field\":";
  AppendJsonString(out, field);
  out += '}';
  return out;
}

std::string SessionIdDetails(std::string_view session_id) {
  if (session_id.empty()) return {};
  std::string out = "{\"sessionId\":";
  AppendJsonString(out, session_id);
  out += '}';
  return out;
}

void AppendKey(std::string& out, std::string_view key, bool& first) {
  if (!first) out += ',';
  first = false;
  out += '"';
  out += key;  // our own names: nothing to escape
  out += "\":";
}

void AppendSessionJson(std::string& out, const SessionRecord& r) {
  bool first = true;
  out += '{';
  AppendKey(out, "sessionId", first);
  AppendJsonString(out, r.session_id);
  AppendKey(out, "serviceRef", first);
  AppendJsonString(out, r.service_ref);
  AppendKey(out, "profile", first);
  out += "{\"name\":";
  AppendJsonString(out, r.profile.name);
  out += ",\"llhls\":";
  out += r.profile.llhls ? "true" : "false";
  fmt::format_to(std::back_inserter(out), ",\"dvrWindowSec\":{}}}", r.profile.dvr_window_sec);
  AppendKey(out, "state", first);
  AppendJsonString(out, StateName(r.state));
  AppendKey(out, "pipelineState", first);
  AppendJsonString(out, PipelineStateName(r.pipeline_state));
  AppendKey(out, "reason", first);
  AppendJsonString(out, ReasonName(r.reason));
  AppendKey(out, "reasonDetail", first);
  AppendJsonString(out, r.reason_detail);
  AppendKey(out, "correlationId", first);
  AppendJsonString(out, r.correlation_id);
  fmt::format_to(std::back_inserter(out),
                 ",\"createdAtUnix\":{},\"updatedAtUnix\":{},\"expiresAtUnix\":{}",
                 r.created_at_unix, r.updated_at_unix, r.expires_at_unix);
  AppendKey(out, "contextData", first);
  out += '{';
  bool first_context = true;
  for (const auto& [key, value] : r.context_data) {
    if (!first_context) out += ',';
    first_context = false;
    AppendJsonString(out, key);
    out += ':';
    AppendJsonString(out, value);
  }
  out += "}}";
}

// A decimal query value: digits only, no sign, no leading '+', at most
// `max`. nullopt otherwise.
std::optional<uint64_t> ParseDecimal(std::string_view text, uint64_t max) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value > max) return std::nullopt;
  return value;
}

std::string_view IntentTypeName(IntentType type) {
  return type == IntentType::kStart ? "start" : "stop";
}

}  // namespace

// Everything one request carries through the steps.
struct HttpHandler::Context {
  explicit Context(const HttpRequest& r) : request(r) {}

  const HttpRequest& request;
  std::shared_ptr<const HttpPolicy> policy;
  Route route = Route::kUnmatched;
  std::string_view route_label = "unmatched";
  std::string_view path;
  std::string_view query;
  std::string request_id;
  std::optional<IpAddress> client;
  std::string principal;  // the principal id once authenticated
  CredentialSource source = CredentialSource::kNone;
  bool head = false;

  // Query parameters, parsed once on first use. nullopt: malformed.
  const std::optional<std::vector<std::pair<std::string, std::string>>>& Query() {
    if (!query_parsed) {
      query_params = ParseQuery(query);
      query_parsed = true;
    }
    return query_params;
  }
  bool query_parsed = false;
  std::optional<std::vector<std::pair<std::string, std::string>>> query_params;
};

const std::string* HttpResponse::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return &v;
  }
  return nullptr;
}

bool IsValidRequestId(std::string_view id) {
  return !id.empty() && id.size() <= kMaxRequestId && std::all_of(id.begin(), id.end(), IsRequestIdChar);
}

std::string SessionJson(const SessionRecord& record) {
  std::string out;
  out.reserve(384);
  AppendSessionJson(out, record);
  return out;
}

absl::StatusOr<HttpPolicy> ParseHttpPolicy(std::string_view tokens, bool allow_query_tokens,
                                           double rate, int64_t burst, std::string_view allow_list,
                                           std::string_view trusted_proxies,
                                           std::string_view metrics_scope,
                                           std::vector<std::string>* warnings) {
  HttpPolicy policy;
  XG2G_ASSIGN_OR_RETURN(policy.tokens, TokenSet::Parse(tokens, warnings));
  policy.allow_query_tokens = allow_query_tokens;
  if (allow_query_tokens && warnings != nullptr) {
    warnings->push_back("query tokens are on: ?token= is deprecated, and every use is audited");
  }
  if (!std::isfinite(rate) || rate < 0) {
    return InvalidError(fmt::format("rate limit: the rate must be >= 0 requests per second "
                                    "(0 turns rate limiting off), got {}",
                                    rate));
  }
  if (rate > 0 && (burst < 1 || burst > kMaxBurst)) {
    return InvalidError(
        fmt::format("rate limit: the burst must be between 1 and {}, got {}", kMaxBurst, burst));
  }
  policy.rate_limit.rate = rate;
  policy.rate_limit.burst = std::max<int64_t>(burst, 1);
  XG2G_ASSIGN_OR_RETURN(policy.allow_list, IpList::Parse(allow_list, "rate-limit allow-list"));
  XG2G_ASSIGN_OR_RETURN(policy.trusted_proxies, IpList::Parse(trusted_proxies, "trusted proxies"));
  if (!metrics_scope.empty()) {
    const std::optional<Scope> scope = ParseScope(metrics_scope);
    if (!scope) {
      return InvalidError(fmt::format(
          "metrics scope: unknown scope {} (known: v3:read, v3:write, v3:admin, v3:*, *)",
          JsonQuote(metrics_scope.substr(0, 32))));
    }
    policy.metrics_scope = *scope;
  }
  return policy;
}

// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<HttpHandler>> HttpHandler::Create(Engine* engine, HttpPolicy policy,
                                                                 HttpHandlerOptions options) {
  if (engine == nullptr) return InvalidError("http handler: engine is null");
  if (engine->store() == nullptr) return InvalidError("http handler: the engine has no store");
  if (!(policy.rate_limit.rate >= 0) || policy.rate_limit.burst < 1 ||
      policy.rate_limit.max_clients < 1) {
    return InvalidError("http handler: the rate limit needs rate >= 0, burst >= 1, max clients >= 1");
  }
  return std::unique_ptr<HttpHandler>(new HttpHandler(engine, std::move(policy), std::move(options)));
}

HttpHandler::HttpHandler(Engine* engine, HttpPolicy policy, HttpHandlerOptions options)
    : engine_(engine),
      store_(engine->store()),
      clock_(options.clock != nullptr ? options.clock : engine->clock()),
      audit_(std::move(options.audit)),
      readiness_(std::move(options.readiness)),
      breakers_(options.breakers),
      metrics_(std::make_unique<MetricsRegistry>()),
      policy_(std::make_shared<const HttpPolicy>(std::move(policy))),
      request_id_prefix_(RandomHex(8)) {
  MetricsRegistry& m = *metrics_;
  request_duration_ = m.AddHistogramFamily(
      "xg2g_v3_http_request_duration_seconds",
      "Time to answer a v3 API request, by method, route template and status.",
      {"method", "route", "status"}, LatencyBuckets());
  in_flight_ = m.AddGauge("xg2g_v3_http_requests_in_flight", "v3 API requests being answered now.");
  intents_ = m.AddCounterFamily("xg2g_v3_intents_total",
                                "Intents received over HTTP, by type (start, stop) and outcome.",
                                {"type", "outcome"});
  auth_failures_ = m.AddCounterFamily(
      "xg2g_v3_auth_failures_total",
      "Requests refused by auth: missing, malformed or invalid credentials (401), too few "
      "scopes (403).",
      {"reason"});
  for (std::string_view reason : {"missing", "malformed", "invalid", "forbidden"}) {
    auth_failures_->With({reason});
  }
  rate_limited_ = m.AddCounterFamily("xg2g_v3_rate_limit_rejections_total",
                                     "Requests refused with 429 by the per-client rate limit.",
                                     {"route"});
  query_tokens_ = m.AddCounter("xg2g_v3_query_token_uses_total",
                               "Requests that authenticated with the deprecated ?token= parameter.");
  encode_errors_ = m.AddCounter(
      "xg2g_v3_http_response_encode_errors_total",
      "Responses whose body could not be built; each was answered with a 500 instead.");
  reloads_ = m.AddCounter("xg2g_v3_config_reloads_total", "Configuration reloads applied.");
  m.AddCallback("xg2g_v3_rate_limit_clients", "Clients with a rate-limit bucket now.",
                MetricType::kGauge, [this] { return static_cast<double>(limiter_.Size()); });
  m.AddCallback("xg2g_v3_rate_limit_evictions_total",
                "Rate-limit buckets evicted before they were full again (table at capacity).",
                MetricType::kCounter, [this] { return static_cast<double>(limiter_.Evictions()); });

  struct EngineMetric {
    const char* name;
    const char* help;
    uint64_t EngineStats::*field;
    MetricType type;
  };
  static constexpr EngineMetric kEngineMetrics[] = {
      {"xg2g_engine_start_intents_total", "Start intents the engine received.",
       &EngineStats::start_intents, MetricType::kCounter},
      {"xg2g_engine_stop_intents_total", "Stop intents the engine received.",
       &EngineStats::stop_intents, MetricType::kCounter},
      {"xg2g_engine_replays_total", "Starts answered from an idempotency key.",
       &EngineStats::replays, MetricType::kCounter},
      {"xg2g_engine_busy_total", "Starts answered busy (service active or no free tuner).",
       &EngineStats::busy, MetricType::kCounter},
      {"xg2g_engine_store_failures_total", "Starts and stops that failed because the store did.",
       &EngineStats::store_failures, MetricType::kCounter},
      {"xg2g_engine_lease_losses_total", "Sessions failed because a lease renewal failed.",
       &EngineStats::lease_losses, MetricType::kCounter},
      {"xg2g_engine_transitions_total", "Session state changes made by the engine.",
       &EngineStats::transitions, MetricType::kCounter},
      {"xg2g_engine_deadline_expiries_total", "Sessions moved on by a deadline.",
       &EngineStats::deadline_expiries, MetricType::kCounter},
      {"xg2g_engine_recovered_sessions_total", "Sessions failed or re-queued at start-up.",
       &EngineStats::recovered, MetricType::kCounter},
      {"xg2g_engine_retention_deletes_total", "Terminal sessions deleted after retention.",
       &EngineStats::retention_deletes, MetricType::kCounter},
      {"xg2g_engine_active_sessions", "Sessions this engine drives now.",
       &EngineStats::active_sessions, MetricType::kGauge},
  };
  for (const EngineMetric& metric : kEngineMetrics) {
    m.AddCallback(metric.name, metric.help, metric.type, [engine = engine_, field = metric.field] {
      return static_cast<double>(engine->Stats().*field);
    });
  }
}

HttpHandler::~HttpHandler() = default;

std::shared_ptr<const HttpPolicy> HttpHandler::policy() const {
  std::shared_lock<std::shared_mutex> lock(policy_mu_);
  return policy_;
}

void HttpHandler::Reload(HttpPolicy policy) {
  const std::string detail = fmt::format(
      "tokens={} query_tokens={} rate={} burst={} max_clients={} allow_list={} "
      "trusted_proxies={} metrics_scope={}",
      policy.tokens.size(), policy.allow_query_tokens ? "on" : "off", policy.rate_limit.rate,
      policy.rate_limit.burst, policy.rate_limit.max_clients, policy.allow_list.size(),
      policy.trusted_proxies.size(),
      policy.metrics_scope == Scope::kNone ? "none" : ScopeName(policy.metrics_scope));
  auto fresh = std::make_shared<const HttpPolicy>(std::move(policy));
  {
    std::unique_lock<std::shared_mutex> lock(policy_mu_);
    policy_.swap(fresh);
  }
  // The old policy is released here, outside the lock.
  fresh.reset();
  reloads_->Inc();
  if (audit_) {
    AuditEvent event;
    event.type = "config_reload";
    event.time_unix_ms = clock_->NowUnixMs();
    event.route = "config";
    event.outcome = "ok";
    event.detail = detail;
    audit_->Emit(event);
  }
}

std::string HttpHandler::NewRequestId() {
  const uint64_t n = request_counter_.fetch_add(1, std::memory_order_relaxed);
  std::string id;
  id.reserve(request_id_prefix_.size() + 17);
  id += request_id_prefix_;
  id += '-';
  fmt::format_to(std::back_inserter(id), "{:x}", n);
  return id;
}

void HttpHandler::Audit(const Context& ctx, std::string_view type, std::string_view outcome,
                        std::string_view session_id, std::string detail) {
  if (!audit_) return;
  AuditEvent event;
  event.type = std::string(type);
  event.time_unix_ms = clock_->NowUnixMs();
  if (ctx.client) event.client_ip = FormatIp(*ctx.client);
  event.route = std::string(ctx.route_label);
  event.outcome = std::string(outcome);
  event.principal_digest = ctx.principal;
  event.session_id = std::string(session_id);
  event.detail = std::move(detail);
  audit_->Emit(event);
}

void HttpHandler::CountIntent(std::string_view type, std::string_view outcome) {
  intents_->With({type, outcome})->Inc();
}

void HttpHandler::Error(Context& ctx, HttpResponse& response, int status, std::string_view code,
                        std::string_view message, std::string_view details_json) {
  response.status = status;
  std::string& out = response.body;
  out.clear();
  out.reserve(96 + message.size() + details_json.size());
  out += "{\"code\":";
  AppendJsonString(out, code);
  out += ",\"message\":";
  AppendJsonString(out, message);
  out += ",\"request_id\":";
  AppendJsonString(out, ctx.request_id);
  if (!details_json.empty()) {
    out += ",\"details\":";
    out += details_json;
  }
  out += '}';
  response.headers.emplace_back("Content-Type", kJson);
}

HttpResponse HttpHandler::Handle(const HttpRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  // Counted down however Handle ends (also by an exception escaping it).
  struct InFlight {
    explicit InFlight(Gauge* g) : gauge(g) { gauge->Add(1); }
    ~InFlight() { gauge->Add(-1); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    Gauge* gauge;
  } in_flight(in_flight_);
  Context ctx(request);
  HttpResponse response;
  response.headers.reserve(12);

  const HeaderValues ids = FindHeaders(request.headers, "X-Request-ID");
  ctx.request_id = ids.count == 1 && IsValidRequestId(ids.values[0]) ? std::string(ids.values[0])
                                                                      : NewRequestId();
  try {
    Dispatch(ctx, response);
  } catch (const std::exception&) {
    // Building the answer failed (in practice: out of memory). Never a
    // truncated body: a fresh 500 instead, counted.
    encode_errors_->Inc();
    response = HttpResponse();
    Error(ctx, response, 500, "INTERNAL_SERVER_ERROR", "the response could not be built");
  }

  auto& h = response.headers;
  h.emplace_back("X-Request-ID", ctx.request_id);
  h.emplace_back("X-Content-Type-Options", "nosniff");
  h.emplace_back("X-Frame-Options", "DENY");
  h.emplace_back("Referrer-Policy", "no-referrer");
  h.emplace_back("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  h.emplace_back("Cache-Control", "no-store");
  if (ctx.head) response.body.clear();

  char status_buffer[8];
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  request_duration_
      ->With({MethodLabel(request.method), ctx.route_label,
              StatusLabel(response.status, status_buffer)})
      ->Observe(seconds);
  return response;
}

void HttpHandler::Dispatch(Context& ctx, HttpResponse& response) {
  const HttpRequest& request = ctx.request;
  const Target target = SplitTarget(request.target);
  ctx.path = target.path;
  ctx.query = target.query;

  // 1. Route match.
  std::string_view allowed = "GET, HEAD";
  constexpr std::string_view kSessionsPrefix = "/api/v3/sessions/";
  if (ctx.path == "/api/v3/intents") {
    ctx.route = Route::kIntents;
    ctx.route_label = "/api/v3/intents";
    allowed = "POST";
  } else if (ctx.path == "/api/v3/sessions") {
    ctx.route = Route::kSessions;
    ctx.route_label = "/api/v3/sessions";
  } else if (ctx.path.size() > kSessionsPrefix.size() &&
             ctx.path.substr(0, kSessionsPrefix.size()) == kSessionsPrefix &&
             ctx.path.find('/', kSessionsPrefix.size()) == std::string_view::npos) {
    ctx.route = Route::kSession;
    ctx.route_label = "/api/v3/sessions/{id}";
  } else if (ctx.path == "/healthz") {
    ctx.route = Route::kHealthz;
    ctx.route_label = "/healthz";
  } else if (ctx.path == "/readyz") {
    ctx.route = Route::kReadyz;
    ctx.route_label = "/readyz";
  } else if (ctx.path == "/metrics") {
    ctx.route = Route::kMetrics;
    ctx.route_label = "/metrics";
  } else {
    Error(ctx, response, 404, "NOT_FOUND", "no such route");
    return;
  }
  const bool is_post_route = ctx.route == Route::kIntents;
  const bool method_ok = is_post_route ? request.method == "POST"
                                       : (request.method == "GET" || request.method == "HEAD");
  if (!method_ok) {
    Error(ctx, response, 405, "METHOD_NOT_ALLOWED",
          fmt::format("{} allows {}", ctx.route_label, allowed));
    response.headers.emplace_back("Allow", allowed);
    return;
  }
  ctx.head = request.method == "HEAD";

  ctx.policy = policy();
  const HttpPolicy& policy = *ctx.policy;
  const HeaderValues forwarded = FindHeaders(request.headers, "X-Forwarded-For");
  ctx.client = ResolveClientIp(request.peer, forwarded.span(), policy.trusted_proxies);

  if (ctx.route == Route::kHealthz) {
    response.body = "{\"status\":\"ok\"}";
    response.headers.emplace_back("Content-Type", kJson);
    return;
  }
  if (ctx.route == Route::kReadyz) {
    HandleReadyz(ctx, response);
    return;
  }
  if (ctx.route == Route::kMetrics) {
    if (policy.metrics_scope != Scope::kNone && !Authorize(ctx, policy.metrics_scope, response)) {
      return;
    }
    response.body = metrics_->Render();
    if (breakers_ != nullptr) AppendCircuitBreakerMetrics(response.body, breakers_->Snapshots());
    response.headers.emplace_back("Content-Type", kPrometheusContentType);
    return;
  }

  // 2. Rate limit (API routes). The unknown client (a peer that is not an
  // address) shares one bucket: it is limited, never exempt.
  const RateLimitParams& limits = policy.rate_limit;
  if (limits.rate > 0 && !(ctx.client && policy.allow_list.Contains(*ctx.client))) {
    const IpAddress key = ctx.client.value_or(IpAddress{});
    const RateLimitDecision decision = limiter_.Take(key, clock_->MonotonicMs(), limits);
    const int64_t window =
        std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(limits.burst) /
                                                            limits.rate)));
    std::string policy_header = fmt::format("{};q={};w={}", kRateLimitPolicyName, limits.burst, window);
    std::string limit_header =
        fmt::format("{};r={};t={}", kRateLimitPolicyName, decision.remaining, decision.reset_seconds);
    if (!decision.allowed) {
      rate_limited_->With({ctx.route_label})->Inc();
      Audit(ctx, "rate_limited", "denied", {},
            fmt::format("retry after {} s", decision.retry_after_seconds));
      Error(ctx, response, 429, "RATE_LIMIT_EXCEEDED",
            fmt::format("too many requests: retry after {} s", decision.retry_after_seconds));
      response.headers.emplace_back("Retry-After", std::to_string(decision.retry_after_seconds));
    }
    response.headers.emplace_back("RateLimit-Policy", std::move(policy_header));
    response.headers.emplace_back("RateLimit", std::move(limit_header));
    if (!decision.allowed) return;
  }

  // 3. Auth.
  static constexpr Scope kRequired[] = {Scope::kNone, Scope::kWrite, Scope::kAdmin, Scope::kRead};
  const Scope required = kRequired[static_cast<int>(ctx.route) < 4 ? static_cast<int>(ctx.route) : 0];
  if (!Authorize(ctx, required, response)) return;

  switch (ctx.route) {
    case Route::kIntents:
      HandleIntent(ctx, response);
      return;
    case Route::kSession:
      HandleGetSession(ctx, response);
      return;
    case Route::kSessions:
      HandleListSessions(ctx, response);
      return;
    default:
      Error(ctx, response, 500, "INTERNAL_SERVER_ERROR", "unrouted request");
      return;
  }
}

bool HttpHandler::Authorize(Context& ctx, Scope required, HttpResponse& response) {
  const HttpPolicy& policy = *ctx.policy;
  const HttpRequest& request = ctx.request;
  const HeaderValues authorization = FindHeaders(request.headers, "Authorization");
  const HeaderValues cookies = FindHeaders(request.headers, "Cookie");
  std::vector<std::string_view> query_tokens;
  if (policy.allow_query_tokens && !ctx.query.empty() && authorization.count == 0) {
    if (const auto& params = ctx.Query()) {
      for (const auto& [name, value] : *params) {
        if (name == "token") query_tokens.push_back(value);
      }
    }
  }
  const Credentials credentials = ExtractCredentials(authorization.span(), cookies.span(),
                                                     query_tokens, policy.allow_query_tokens);
  ctx.source = credentials.source;

  auto refuse = [&](int status, std::string_view reason, std::string message,
                    std::string_view challenge) {
    auth_failures_->With({reason})->Inc();
    Audit(ctx, "auth_failure", "denied", {},
          fmt::format("{} ({})", message, CredentialSourceName(credentials.source)));
    Error(ctx, response, status, status == 401 ? "UNAUTHORIZED" : "FORBIDDEN", message);
    response.headers.emplace_back("WWW-Authenticate", challenge);
    return false;
  };
  if (credentials.source == CredentialSource::kQuery) {
    // Every use, valid or not, is counted and audited.
    query_tokens_->Inc();
    Audit(ctx, "deprecated_query_token", "warning", {},
          "the ?token= query parameter is deprecated: use Authorization: Bearer");
  }
  if (credentials.malformed) {
    return refuse(401, "malformed", fmt::format("invalid credentials: {}", credentials.problem),
                  "Bearer realm=\"xg2g\", error=\"invalid_request\"");
  }
  if (credentials.source == CredentialSource::kNone) {
    return refuse(401, "missing",
                  "missing credentials: send Authorization: Bearer <token>", "Bearer realm=\"xg2g\"");
  }
  const std::optional<Principal> principal = policy.tokens.Authenticate(credentials.token);
  if (!principal) {
    return refuse(401, "invalid", "invalid credentials: the token is not valid",
                  "Bearer realm=\"xg2g\", error=\"invalid_token\"");
  }
  ctx.principal = principal->id;
  if (principal->scope < required) {
    return refuse(403, "forbidden",
                  fmt::format("this route needs scope {}", ScopeName(required)),
                  fmt::format("Bearer realm=\"xg2g\", error=\"insufficient_scope\", scope=\"{}\"",
                              ScopeName(required)));
  }
  Audit(ctx, "auth_success", "ok", {}, std::string(CredentialSourceName(credentials.source)));
  return true;
}

void HttpHandler::HandleIntent(Context& ctx, HttpResponse& response) {
  const HttpRequest& request = ctx.request;
  // 4. Body size.
  if (request.body.size() > kMaxBodyBytes) {
    CountIntent("unknown", "too_large");
    Error(ctx, response, 413, "PAYLOAD_TOO_LARGE",
          fmt::format("the body is larger than {} bytes", kMaxBodyBytes));
    return;
  }
  // 5. Validation.
  auto invalid = [&](std::string_view type, std::string_view field, const std::string& message) {
    CountIntent(type, "invalid");
    Error(ctx, response, 400, "INVALID_INPUT", message, FieldDetails(field));
  };
  if (ctx.source == CredentialSource::kCookie) {
    // A browser sends the cookie by itself: a cross-site form can post
    // text/plain with it, but not application/json without CORS consent.
    const HeaderValues type = FindHeaders(request.headers, "Content-Type");
    const std::string_view media =
        type.count == 1 ? type.values[0].substr(0, type.values[0].find(';')) : std::string_view();
    std::string_view trimmed = media;
    while (!trimmed.empty() && trimmed.back() == ' ') trimmed.remove_suffix(1);
    if (!EqualsIgnoreCase(trimmed, "application/json")) {
      invalid("unknown", "Content-Type",
              "a request authenticated by cookie must send Content-Type: application/json");
      return;
    }
  }
  BodyError body_error;
  const std::optional<IntentBody> body = ParseIntentBody(request.body, &body_error);
  if (!body) {
    invalid("unknown", body_error.field, body_error.message);
    return;
  }
  const std::string_view type = IntentTypeName(body->type);

  if (body->type == IntentType::kStop) {
    const std::string& id = *body->session_id;
    if (!IsValidSessionId(id)) {
      invalid(type, "sessionId", "sessionId must be 1-64 characters of [A-Za-z0-9_-]");
      return;
    }
    auto stopped = engine_->Stop(id);
    if (!stopped.ok()) {
      const ErrorCode code = CodeOf(stopped.status());
      if (code == ErrorCode::kNotFound) {
        CountIntent(type, "not_found");
        Audit(ctx, "session_stop", "not_found", id);
        Error(ctx, response, 404, "SESSION_NOT_FOUND", fmt::format("session {} does not exist", id));
      } else if (code == ErrorCode::kUnavailable) {
        CountIntent(type, "unavailable");
        Audit(ctx, "session_stop", "unavailable", id);
        Error(ctx, response, 503, "SERVICE_UNAVAILABLE",
              "the session store is unavailable; nothing was changed");
        response.headers.emplace_back("Retry-After", std::to_string(kUnavailableRetryAfterSeconds));
      } else if (code == ErrorCode::kInvalid) {
        invalid(type, "sessionId", std::string(FromAbsl(stopped.status().message())));
      } else {
        CountIntent(type, "error");
        Audit(ctx, "session_stop", "error", id, std::string(FromAbsl(stopped.status().message())));
        Error(ctx, response, 500, "INTERNAL_SERVER_ERROR", "the stop failed");
      }
      return;
    }
    CountIntent(type, "accepted");
    Audit(ctx, "session_stop", "ok", id, fmt::format("state {}", StateName(stopped->state)));
    response.status = 202;
    std::string& out = response.body;
    out = "{\"sessionId\":";
    AppendJsonString(out, stopped->session_id);
    out += ",\"state\":";
    AppendJsonString(out, StateName(stopped->state));
    out += '}';
    response.headers.emplace_back("Content-Type", kJson);
    return;
  }

  // A start.
  const HeaderValues key_headers = FindHeaders(request.headers, "Idempotency-Key");
  if (key_headers.count > 1) {
    invalid(type, "Idempotency-Key", "the Idempotency-Key header appears more than once");
    return;
  }
  StartRequest start;
  if (key_headers.count == 1) {
    const std::string_view header_key = key_headers.values[0];
    if (header_key.empty()) {
      invalid(type, "Idempotency-Key", "the Idempotency-Key header is empty");
      return;
    }
    if (body->idempotency_key && !body->idempotency_key->empty() &&
        *body->idempotency_key != header_key) {
      invalid(type, "idempotencyKey",
              "the Idempotency-Key header and the body's idempotencyKey differ");
      return;
    }
    start.idempotency_key = std::string(header_key);
  } else if (body->idempotency_key) {
    start.idempotency_key = *body->idempotency_key;
  }
  start.service_ref = *body->service_ref;
  if (body->profile) start.profile = *body->profile;
  start.principal = ctx.principal;
  if (body->correlation_id) start.correlation_id = *body->correlation_id;
  start.params = body->params;

  std::string busy_session;
  auto started = engine_->Start(start, &busy_session);
  if (!started.ok()) {
    const ErrorCode code = CodeOf(started.status());
    const std::string message(FromAbsl(started.status().message()));
    switch (code) {
      case ErrorCode::kInvalid:
        invalid(type, FieldOfEngineError(message), message);
        return;
      case ErrorCode::kBusy:
        CountIntent(type, "busy");
        Audit(ctx, "session_start", "busy", busy_session, message);
        Error(ctx, response, 409, "LEASE_BUSY", message, SessionIdDetails(busy_session));
        response.headers.emplace_back("Retry-After", std::to_string(kBusyRetryAfterSeconds));
        return;
      case ErrorCode::kInFlight:
        CountIntent(type, "in_flight");
        Audit(ctx, "session_start", "in_flight", busy_session, message);
        Error(ctx, response, 409, "IDEMPOTENCY_IN_FLIGHT", message, SessionIdDetails(busy_session));
        response.headers.emplace_back("Retry-After", std::to_string(kInFlightRetryAfterSeconds));
        return;
      case ErrorCode::kConflict:
        CountIntent(type, "key_reused");
        Audit(ctx, "session_start", "key_reused", {}, message);
        Error(ctx, response, 422, "IDEMPOTENCY_KEY_REUSED", message, FieldDetails("idempotencyKey"));
        return;
      case ErrorCode::kUnavailable:
        CountIntent(type, "unavailable");
        Audit(ctx, "session_start", "unavailable", {}, message);
        Error(ctx, response, 503, "SERVICE_UNAVAILABLE",
              "the session store is unavailable; nothing was created");
        response.headers.emplace_back("Retry-After", std::to_string(kUnavailableRetryAfterSeconds));
        return;
      default:
        CountIntent(type, "error");
        Audit(ctx, "session_start", "error", {}, message);
        Error(ctx, response, 500, "INTERNAL_SERVER_ERROR", "the start failed");
        return;
    }
  }
  CountIntent(type, started->replay ? "replay" : "accepted");
  Audit(ctx, "session_start", started->replay ? "replay" : "ok", started->session_id,
        fmt::format("service {}", start.service_ref));
  response.status = 202;
  std::string& out = response.body;
  out.reserve(160);
  out = "{\"sessionId\":";
  AppendJsonString(out, started->session_id);
  out += ",\"state\":";
  AppendJsonString(out, StateName(started->state));
  out += ",\"correlationId\":";
  AppendJsonString(out, started->correlation_id);
  out += started->replay ? ",\"replay\":true}" : ",\"replay\":false}";
  response.headers.emplace_back("Content-Type", kJson);
}

void HttpHandler::HandleGetSession(Context& ctx, HttpResponse& response) {
  constexpr size_t kPrefix = std::string_view("/api/v3/sessions/").size();
  const std::optional<std::string> id = PercentDecode(ctx.path.substr(kPrefix), false);
  if (!id || !IsValidSessionId(*id)) {
    Error(ctx, response, 400, "INVALID_INPUT",
          "the session id must be 1-64 characters of [A-Za-z0-9_-]", FieldDetails("sessionId"));
    return;
  }
  auto record = store_->GetSession(*id);
  if (!record.ok()) {
    const ErrorCode code = CodeOf(record.status());
    if (code == ErrorCode::kNotFound) {
      Error(ctx, response, 404, "SESSION_NOT_FOUND", fmt::format("session {} does not exist", *id));
    } else if (code == ErrorCode::kUnavailable) {
      Error(ctx, response, 503, "SERVICE_UNAVAILABLE", "the session store is unavailable");
      response.headers.emplace_back("Retry-After", std::to_string(kUnavailableRetryAfterSeconds));
    } else {
      Error(ctx, response, 500, "INTERNAL_SERVER_ERROR",
            fmt::format("session {} could not be read", *id));
    }
    return;
  }
  response.status = 200;
  response.body.reserve(384);
  AppendSessionJson(response.body, *record);
  response.headers.emplace_back("Content-Type", kJson);
}

void HttpHandler::HandleListSessions(Context& ctx, HttpResponse& response) {
  const auto& params = ctx.Query();
  if (!params) {
    Error(ctx, response, 400, "INVALID_INPUT", "the query string is malformed",
          FieldDetails("query"));
    return;
  }
  uint64_t offset = 0;
  uint64_t limit = kDefaultLimit;
  bool seen_offset = false;
  bool seen_limit = false;
  for (const auto& [name, value] : *params) {
    const bool is_offset = name == "offset";
    if (!is_offset && name != "limit") continue;  // others (cache busters, token) are ignored
    bool& seen = is_offset ? seen_offset : seen_limit;
    if (seen) {
      Error(ctx, response, 400, "INVALID_INPUT", fmt::format("{} is given more than once", name),
            FieldDetails(name));
      return;
    }
    seen = true;
    const std::optional<uint64_t> number =
        ParseDecimal(value, is_offset ? kMaxOffset : kMaxPageLimit);
    if (!number || (!is_offset && *number == 0)) {
      Error(ctx, response, 400, "INVALID_INPUT",
            is_offset ? fmt::format("offset must be an integer from 0 to {}", kMaxOffset)
                      : fmt::format("limit must be an integer from 1 to {}", kMaxPageLimit),
            FieldDetails(name));
      return;
    }
    (is_offset ? offset : limit) = *number;
  }
  auto page = store_->ListSessions(offset, limit);
  if (!page.ok()) {
    const ErrorCode code = CodeOf(page.status());
    Audit(ctx, "admin_action", "error", {}, fmt::format("list sessions offset={} limit={}", offset, limit));
    if (code == ErrorCode::kUnavailable) {
      Error(ctx, response, 503, "SERVICE_UNAVAILABLE", "the session store is unavailable");
      response.headers.emplace_back("Retry-After", std::to_string(kUnavailableRetryAfterSeconds));
    } else {
      Error(ctx, response, 500, "INTERNAL_SERVER_ERROR", "the sessions could not be listed");
    }
    return;
  }
  Audit(ctx, "admin_action", "ok", {},
        fmt::format("list sessions offset={} limit={} count={}", offset, limit, page->sessions.size()));
  std::string& out = response.body;
  out.reserve(64 + page->sessions.size() * 384);
  out = "{\"sessions\":[";
  bool first = true;
  for (const SessionRecord& record : page->sessions) {
    if (!first) out += ',';
    first = false;
    AppendSessionJson(out, record);
  }
  fmt::format_to(std::back_inserter(out),
                 "],\"pagination\":{{\"offset\":{},\"limit\":{},\"total\":{},\"count\":{}}}}}",
                 offset, limit, page->total, page->sessions.size());
  response.status = 200;
  response.headers.emplace_back("Content-Type", kJson);
}

void HttpHandler::HandleReadyz(Context& ctx, HttpResponse& response) {
  // The store answers when a read of a key that never exists comes back
  // "not found"; any other failure means it does not.
  std::string store_state = "ok";
  auto probe = store_->GetSession("readyz-probe");
  if (!probe.ok() && CodeOf(probe.status()) != ErrorCode::kNotFound) {
    store_state = std::string(ErrorCodeName(CodeOf(probe.status())));
  }
  std::string receiver_state = "not configured";
  if (readiness_) {
    absl::Status ready;
    try {
      ready = readiness_();
    } catch (...) {
      ready = InternalError("the readiness check threw");
    }
    receiver_state = ready.ok() ? "ok" : std::string(FromAbsl(ready.message()));
    if (receiver_state.empty()) receiver_state = "not ready";
  }
  const bool ready = store_state == "ok" && (receiver_state == "ok" || receiver_state == "not configured");
  std::string checks = "{\"store\":";
  AppendJsonString(checks, store_state);
  checks += ",\"receiver\":";
  AppendJsonString(checks, receiver_state);
  checks += '}';
  if (!ready) {
    std::string message = "not ready:";
    if (store_state != "ok") message += " store " + store_state;
    if (receiver_state != "ok" && receiver_state != "not configured") {
      message += store_state != "ok" ? ";" : "";
      message += " receiver " + receiver_state;
    }
    Error(ctx, response, 503, "SERVICE_UNAVAILABLE", message, checks);
    response.headers.emplace_back("Retry-After", std::to_string(kUnavailableRetryAfterSeconds));
    return;
  }
  response.status = 200;
  response.body = "{\"status\":\"ready\",\"checks\":" + checks + "}";
  response.headers.emplace_back("Content-Type", kJson);
}

}  // namespace xg2g

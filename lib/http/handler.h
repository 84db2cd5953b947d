// The transport-free v3 HTTP API (DESIGN.md §5-7, CONTRACT.md): a request
// goes in, a response comes out; any HTTP server can mount it.
//
// Routes: POST /api/v3/intents (v3:write), GET /api/v3/sessions/{id}
// (v3:read), GET /api/v3/sessions (v3:admin), GET /healthz, GET /readyz,
// GET /metrics (open, or the configured scope). Every request goes through
// the same steps in the order CONTRACT.md fixes: route match (404, 405) ->
// rate limit (429) -> auth (401, 403) -> body size (413) -> validation (400)
// -> the operation. A request refused at any step before the operation
// never reaches the store.
//
// Thread-safe: Handle() may run on any number of threads at once, and
// Reload() may swap the policy (tokens, limits, lists) while they run; each
// request sees one policy from start to end. The handler holds no lock while
// it calls the engine, the store, the audit sink or the readiness check.
#ifndef XG2G_LIB_HTTP_HANDLER_H_
#define XG2G_LIB_HTTP_HANDLER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/auth/auth.h"
#include "lib/common/clock.h"
#include "lib/engine/engine.h"
#include "lib/observe/audit.h"
#include "lib/observe/metrics.h"
#include "lib/ratelimit/ip.h"
#include "lib/ratelimit/limiter.h"
#include "lib/upstream/circuit_breaker.h"

namespace xg2g {

// Bodies above this are refused with 413.
inline constexpr size_t kMaxBodyBytes = 1 << 20;

struct HttpHeader {
  std::string_view name;
  std::string_view value;
};

// Borrowed views: valid for the duration of Handle().
struct HttpRequest {
  std::string_view method;
  std::string_view target;  // path and query as sent: "/api/v3/sessions?limit=10"
  std::span<const HttpHeader> headers;
  std::string_view body;
  std::string_view peer;    // the transport's peer address (a port may follow)
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first header called `name` (case-insensitive), or null.
  const std::string* Header(std::string_view name) const;
};

// What a configuration reload replaces, all at once.
struct HttpPolicy {
  TokenSet tokens;
  bool allow_query_tokens = false;
  RateLimitParams rate_limit;  // rate <= 0 turns rate limiting off
  IpList allow_list;           // never rate limited
  IpList trusted_proxies;      // whose X-Forwarded-For is believed
  Scope metrics_scope = Scope::kNone;  // kNone: /metrics needs no token
};

// The receiver (or any other host) readiness check: OK when ready, else a
// status whose message says why not.
using ReadinessCheck = std::function<absl::Status()>;

struct HttpHandlerOptions {
  std::shared_ptr<AuditSink> audit;  // null: no audit
  ReadinessCheck readiness;          // null: only the store is checked
  Clock* clock = nullptr;  // null: the engine's clock (rate limits, audit times)
  // Circuit breakers whose series /metrics appends (state and trips per
  // breaker name); null: none. Must outlive the handler.
  const CircuitBreakerRegistry* breakers = &CircuitBreakerRegistry::Default();
};

class HttpHandler {
 public:
  // `engine` must outlive the handler; it answers intents, and its store
  // answers reads and readiness.
  static absl::StatusOr<std::unique_ptr<HttpHandler>> Create(Engine* engine, HttpPolicy policy,
                                                             HttpHandlerOptions options);
  ~HttpHandler();
  HttpHandler(const HttpHandler&) = delete;
  HttpHandler& operator=(const HttpHandler&) = delete;

  // Answers one request. Never throws: an unexpected failure is a 500 with
  // the error JSON (only running out of memory while building that may
  // escape as std::bad_alloc).
  HttpResponse Handle(const HttpRequest& request);

  // Replaces the policy atomically for the requests that start afterwards
  // (requests in flight finish under the old one); rate-limit buckets are
  // kept and follow the new rate and burst. Emits a config_reload audit event
  // describing the new policy (counts, never tokens).
  void Reload(HttpPolicy policy);

  // The registry /metrics serves. Other components may register their own
  // metrics here (their callbacks must stay valid while the handler lives).
  MetricsRegistry& metrics() { return *metrics_; }

 private:
  struct Context;
  enum class Route { kUnmatched, kIntents, kSessions, kSession, kHealthz, kReadyz, kMetrics };

  HttpHandler(Engine* engine, HttpPolicy policy, HttpHandlerOptions options);
  std::shared_ptr<const HttpPolicy> policy() const;

  void Dispatch(Context& ctx, HttpResponse& response);
  bool Authorize(Context& ctx, Scope required, HttpResponse& response);
  void HandleIntent(Context& ctx, HttpResponse& response);
  void HandleGetSession(Context& ctx, HttpResponse& response);
  void HandleListSessions(Context& ctx, HttpResponse& response);
  void HandleReadyz(Context& ctx, HttpResponse& response);
  static void Error(Context& ctx, HttpResponse& response, int status, std::string_view code,
                    std::string_view message, std::string_view details_json = {});
  void Audit(const Context& ctx, std::string_view type, std::string_view outcome,
             std::string_view session_id = {}, std::string detail = {});
  void CountIntent(std::string_view type, std::string_view outcome);
  std::string NewRequestId();

  Engine* const engine_;
  Store* const store_;
  Clock* const clock_;
  const std::shared_ptr<AuditSink> audit_;
  const ReadinessCheck readiness_;
  const CircuitBreakerRegistry* const breakers_;
  const std::unique_ptr<MetricsRegistry> metrics_;

  // Read by every request, written by Reload: readers share the lock.
  mutable std::shared_mutex policy_mu_;
  std::shared_ptr<const HttpPolicy> policy_;  // guarded by policy_mu_

  RateLimiter limiter_;
  const std::string request_id_prefix_;
  std::atomic<uint64_t> request_counter_{0};

  // Metrics (owned by metrics_).
  Family<Histogram>* request_duration_;
  Gauge* in_flight_;
  Family<Counter>* intents_;
  Family<Counter>* auth_failures_;
  Family<Counter>* rate_limited_;
  Counter* query_tokens_;
  Counter* encode_errors_;
  Counter* reloads_;
};

// Helpers shared with the C API and the tests.

// Builds a policy from the configuration strings (CONTRACT.md's variables):
// each part is checked, and the first error names the part and the entry.
// Warnings (short tokens, query tokens on) are appended to `warnings`.
absl::StatusOr<HttpPolicy> ParseHttpPolicy(std::string_view tokens, bool allow_query_tokens,
                                           double rate, int64_t burst, std::string_view allow_list,
                                           std::string_view trusted_proxies,
                                           std::string_view metrics_scope,
                                           std::vector<std::string>* warnings = nullptr);

// True for an X-Request-ID worth echoing: 1-128 of [A-Za-z0-9._-].
bool IsValidRequestId(std::string_view id);

// The client JSON of a session (DESIGN.md §2 names).
std::string SessionJson(const SessionRecord& record);

}  // namespace xg2g

#endif  // XG2G_LIB_HTTP_HANDLER_H_

// The client of an Enigma2 receiver's OpenWebIF HTTP API: zap to a service,
// read the current service, read the signal (docs/receiver.md).
//
// Every call goes through the client's circuit breaker, so a receiver that
// keeps failing is not called again until the breaker's open timeout passes
// (calls fail fast with kCircuitOpen meanwhile). Calls have their own
// timeouts (connect and whole request), optional basic auth, and reuse
// connections: the client keeps a small pool of libcurl handles, each with
// its keep-alive connection.
//
// Error mapping: no answer / connection refused / HTTP 5xx -> kUnavailable,
// no answer in time -> kTimeout, an answer that is not the expected JSON ->
// kCorrupt (all three count as breaker failures); HTTP 401/403 -> kInvalid
// (check the credentials), another 4xx -> kInvalid, a refused zap ->
// kInvalid (the receiver is up: not a breaker failure); a caller's cancel ->
// kCancelled. Messages name the endpoint and never the password.
//
// Thread-safe: any number of threads may call at once.
#ifndef XG2G_LIB_UPSTREAM_RECEIVER_CLIENT_H_
#define XG2G_LIB_UPSTREAM_RECEIVER_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/clock.h"
#include "lib/upstream/cancel.h"
#include "lib/upstream/circuit_breaker.h"
#include "lib/upstream/http_fetch.h"
#include "lib/upstream/openwebif.h"

namespace xg2g {

// Per-call overrides.
struct ReceiverCallOptions {
  int64_t timeout_ms = 0;                // > 0: at most this long (the client's own request
                                         // timeout still applies when shorter)
  const CancelToken* cancel = nullptr;   // ends the call early with kCancelled
};

// What the tune readiness and the receiver pipeline need from a receiver; an
// interface so that they can run against an in-process fake in unit tests.
// Implementations are thread-safe.
class ReceiverApi {
 public:
  virtual ~ReceiverApi() = default;
  virtual absl::Status Zap(std::string_view service_ref, const ReceiverCallOptions& call = {}) = 0;
  virtual absl::StatusOr<CurrentService> GetCurrent(const ReceiverCallOptions& call = {}) = 0;
  virtual absl::StatusOr<SignalInfo> GetSignal(const ReceiverCallOptions& call = {}) = 0;
};

struct ReceiverOptions {
  std::string base_url;        // "http://192.168.1.20" (a path prefix is kept)
  std::string username;        // basic auth when not empty
  std::string password;
  int64_t connect_timeout_ms = 2'000;
  int64_t request_timeout_ms = 5'000;
  std::string breaker_name = "receiver";  // the `name` label of the breaker metrics
  CircuitBreakerOptions breaker;
  int max_idle_connections = 4;  // idle handles (and their connections) kept
};

// InvalidError naming the first bad option (the URL included).
[[nodiscard]] absl::Status ValidateReceiverOptions(const ReceiverOptions& options);

struct ReceiverStats {
  uint64_t requests = 0;            // HTTP requests sent
  uint64_t failures = 0;            // requests that failed (transport, 5xx, bad JSON)
  uint64_t connections_opened = 0;  // new TCP connections (the rest reused one)
};

class ReceiverClient final : public ReceiverApi {
 public:
  // `clock` null: real. `log` receives the breaker's state changes (null: not
  // logged). `registry` lists the breaker for metrics (null: nowhere).
  static absl::StatusOr<std::unique_ptr<ReceiverClient>> Create(
      ReceiverOptions options, Clock* clock = nullptr, BreakerLogFn log = StderrBreakerLog(),
      CircuitBreakerRegistry* registry = &CircuitBreakerRegistry::Default());
  ~ReceiverClient() override;

  // GET /api/zap?sRef=REF: OK when the receiver answers {"result": true}.
  absl::Status Zap(std::string_view service_ref, const ReceiverCallOptions& call = {}) override;
  // GET /api/getcurrent: the service playing now ("" ref when none).
  absl::StatusOr<CurrentService> GetCurrent(const ReceiverCallOptions& call = {}) override;
  // GET /api/signal.
  absl::StatusOr<SignalInfo> GetSignal(const ReceiverCallOptions& call = {}) override;
  // GET /api/about: the box and the service playing now (a cheap liveness check).
  absl::StatusOr<AboutAnswer> About(const ReceiverCallOptions& call = {});

  CircuitBreaker& breaker() { return breaker_; }
  const ReceiverOptions& options() const { return options_; }
  [[nodiscard]] ReceiverStats Stats() const;

 private:
  ReceiverClient(ReceiverOptions options, Clock* clock, BreakerLogFn log,
                 CircuitBreakerRegistry* registry);

  // GET base_url + path (+ query) through the breaker; `parse` reads a 2xx
  // body (its errors count as breaker failures).
  template <typename T, typename Parse>
  absl::StatusOr<T> Call(std::string_view path,
                         const std::vector<std::pair<std::string, std::string>>& query,
                         const ReceiverCallOptions& call, Parse parse);
  absl::StatusOr<HttpResponse> Fetch(const std::string& url, const ReceiverCallOptions& call);
  std::unique_ptr<CurlSession> TakeSession();
  void ReturnSession(std::unique_ptr<CurlSession> session);

  const ReceiverOptions options_;
  CircuitBreaker breaker_;

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<CurlSession>> idle_;  // guarded by pool_mu_

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> connections_opened_{0};
};

}  // namespace xg2g

#endif  // XG2G_LIB_UPSTREAM_RECEIVER_CLIENT_H_

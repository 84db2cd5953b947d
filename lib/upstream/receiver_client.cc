#include "lib/upstream/receiver_client.h"

#include <algorithm>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g {
namespace {

absl::Status HttpStatusError(std::string_view path, long status) {  // NOLINT(runtime/int)
  if (status == 401 || status == 403) {
    return InvalidError(fmt::format(
        "receiver {}: HTTP {} (the receiver wants other credentials: check the user name and "
        "password)",
        path, status));
  }
  if (status >= 500) {
    return UnavailableError(fmt::format("receiver {}: HTTP {}", path, status));
  }
  return InvalidError(fmt::format("receiver {}: HTTP {}", path, status));
}

}  // namespace

absl::Status ValidateReceiverOptions(const ReceiverOptions& o) {
  absl::StatusOr<std::string> url = BuildUrl(o.base_url, "/api/about");
  if (!url.ok()) {
    return InvalidError(fmt::format("receiver URL: {}", FromAbsl(url.status().message())));
  }
  if (o.connect_timeout_ms < 1) {
    return InvalidError(
        fmt::format("receiver: connect_timeout_ms must be >= 1, got {}", o.connect_timeout_ms));
  }
  if (o.request_timeout_ms < 1) {
    return InvalidError(
        fmt::format("receiver: request_timeout_ms must be >= 1, got {}", o.request_timeout_ms));
  }
  if (o.breaker_name.empty()) return InvalidError("receiver: breaker_name is empty");
  if (o.max_idle_connections < 0) {
    return InvalidError(fmt::format("receiver: max_idle_connections must be >= 0, got {}",
                                    o.max_idle_connections));
  }
  return ValidateCircuitBreakerOptions(o.breaker);
}

absl::StatusOr<std::unique_ptr<ReceiverClient>> ReceiverClient::Create(
    ReceiverOptions options, Clock* clock, BreakerLogFn log, CircuitBreakerRegistry* registry) {
  XG2G_RETURN_IF_ERROR(ValidateReceiverOptions(options));
  return std::unique_ptr<ReceiverClient>(
      new ReceiverClient(std::move(options), clock, std::move(log), registry));
}

ReceiverClient::ReceiverClient(ReceiverOptions options, Clock* clock, BreakerLogFn log,
                               CircuitBreakerRegistry* registry)
    : options_(std::move(options)),
      breaker_(options_.breaker_name, options_.breaker, clock, std::move(log), registry) {}

ReceiverClient::~ReceiverClient() = default;

std::unique_ptr<CurlSession> ReceiverClient::TakeSession() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!idle_.empty()) {
      std::unique_ptr<CurlSession> session = std::move(idle_.back());
      idle_.pop_back();
      return session;
    }
  }
  return std::make_unique<CurlSession>();
}

void ReceiverClient::ReturnSession(std::unique_ptr<CurlSession> session) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (static_cast<int>(idle_.size()) < options_.max_idle_connections) {
    idle_.push_back(std::move(session));
  }
}

absl::StatusOr<HttpResponse> ReceiverClient::Fetch(const std::string& url,
                                                   const ReceiverCallOptions& call) {
  HttpFetchOptions fetch;
  fetch.connect_timeout_ms = options_.connect_timeout_ms;
  fetch.timeout_ms = call.timeout_ms > 0 ? std::min(call.timeout_ms, options_.request_timeout_ms)
                                        : options_.request_timeout_ms;
  fetch.connect_timeout_ms = std::min(fetch.connect_timeout_ms, fetch.timeout_ms);
  fetch.username = options_.username;
  fetch.password = options_.password;
  fetch.cancel = call.cancel;
  std::unique_ptr<CurlSession> session = TakeSession();
  const uint64_t before = session->connections_opened();
  absl::StatusOr<HttpResponse> response = session->Get(url, fetch);
  requests_.fetch_add(1, std::memory_order_relaxed);
  connections_opened_.fetch_add(session->connections_opened() - before, std::memory_order_relaxed);
  ReturnSession(std::move(session));
  return response;
}

template <typename T, typename Parse>
absl::StatusOr<T> ReceiverClient::Call(std::string_view path,
                                       const std::vector<std::pair<std::string, std::string>>& query,
                                       const ReceiverCallOptions& call, Parse parse) {
  XG2G_ASSIGN_OR_RETURN(const std::string url, BuildUrl(options_.base_url, path, query));
  absl::StatusOr<T> result = breaker_.Run([&]() -> absl::StatusOr<T> {
    XG2G_ASSIGN_OR_RETURN(HttpResponse response, Fetch(url, call));
    if (response.status < 200 || response.status >= 300) {
      return HttpStatusError(path, response.status);
    }
    return parse(response.body);
  });
  if (!result.ok() && ClassifyResult(result.status()) == CallOutcome::kFailure) {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
  return result;
}

absl::Status ReceiverClient::Zap(std::string_view service_ref, const ReceiverCallOptions& call) {
  if (service_ref.empty()) return InvalidError("receiver zap: the service ref is empty");
  const std::string ref(service_ref);
  absl::StatusOr<bool> done = Call<bool>(
      "/api/zap", {{"sRef", ref}}, call, [&](const std::string& body) -> absl::StatusOr<bool> {
        XG2G_ASSIGN_OR_RETURN(ZapAnswer answer, ParseZapAnswer(body));
        if (!answer.result) {
          // The receiver is up and said no (an unknown ref, a locked
          // service): not a breaker failure.
          return InvalidError(fmt::format("the receiver refused to zap to '{}': {}", ref,
                                          answer.message.empty() ? "no reason given"
                                                                 : answer.message));
        }
        return true;
      });
  return done.status();
}

absl::StatusOr<CurrentService> ReceiverClient::GetCurrent(const ReceiverCallOptions& call) {
  return Call<CurrentService>("/api/getcurrent", {}, call,
                              [](const std::string& body) { return ParseCurrentService(body); });
}

absl::StatusOr<SignalInfo> ReceiverClient::GetSignal(const ReceiverCallOptions& call) {
  return Call<SignalInfo>("/api/signal", {}, call,
                          [](const std::string& body) { return ParseSignalInfo(body); });
}

absl::StatusOr<AboutAnswer> ReceiverClient::About(const ReceiverCallOptions& call) {
  return Call<AboutAnswer>("/api/about", {}, call,
                           [](const std::string& body) { return ParseAboutAnswer(body); });
}

ReceiverStats ReceiverClient::Stats() const {
  ReceiverStats stats;
  stats.requests = requests_.load(std::memory_order_relaxed);
  stats.failures = failures_.load(std::memory_order_relaxed);
  stats.connections_opened = connections_opened_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace xg2g

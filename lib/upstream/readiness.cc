#include "lib/upstream/readiness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/upstream/http_fetch.h"

namespace xg2g {
namespace {

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Errno(int error) { return ErrnoText(error); }

// One connect to one resolved address, bounded by timeout_ms and woken by
// `wake` (an eventfd a Cancel() writes to).
absl::Status ConnectOnce(const addrinfo& ai, const std::string& where, int64_t timeout_ms,
                         int wake, const CancelToken* cancel) {
  Fd sock(::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (sock.get() < 0) {
    return MakeError(ErrorCode::kIo, fmt::format("socket for {}: {}", where, Errno(errno)));
  }
  if (::connect(sock.get(), ai.ai_addr, ai.ai_addrlen) == 0) return absl::OkStatus();
  if (errno != EINPROGRESS) {
    return UnavailableError(fmt::format("connect to {}: {}", where, Errno(errno)));
  }
  pollfd fds[2] = {{sock.get(), POLLOUT, 0}, {wake, POLLIN, 0}};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      return MakeError(ErrorCode::kTimeout,
                       fmt::format("connect to {}: no answer within {} ms", where, timeout_ms));
    }
    const int n = ::poll(fds, wake >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left, 60'000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return MakeError(ErrorCode::kIo, fmt::format("poll for {}: {}", where, Errno(errno)));
    }
    if (cancel != nullptr && cancel->cancelled()) {
      return MakeError(ErrorCode::kCancelled, fmt::format("connect to {}: cancelled", where));
    }
    if (n > 0 && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) break;
  }
  int error = 0;
  socklen_t len = sizeof error;
  if (::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
  if (error != 0) return UnavailableError(fmt::format("connect to {}: {}", where, Errno(error)));
  return absl::OkStatus();
}

std::string AddressText(const addrinfo& ai, int port) {
  char text[INET6_ADDRSTRLEN] = {0};
  const void* addr = ai.ai_family == AF_INET6
                         ? static_cast<const void*>(
                               &reinterpret_cast<const sockaddr_in6*>(ai.ai_addr)->sin6_addr)
                         : static_cast<const void*>(
                               &reinterpret_cast<const sockaddr_in*>(ai.ai_addr)->sin_addr);
  if (::inet_ntop(ai.ai_family, addr, text, sizeof text) == nullptr) return "?";
  return ai.ai_family == AF_INET6 ? fmt::format("[{}]:{}", text, port)
                                  : fmt::format("{}:{}", text, port);
}

absl::Status TcpProbe(const std::string& host, int port, int64_t timeout_ms,
                      const CancelToken* cancel) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    return UnavailableError(fmt::format("resolve '{}': {}", host, ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(list, &::freeaddrinfo);

  Fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  CancelToken::Subscription subscription;
  if (cancel != nullptr && wake.get() >= 0) {
    const int fd = wake.get();
    subscription = cancel->OnCancel([fd] {
      const uint64_t one = 1;
      (void)!::write(fd, &one, sizeof one);
    });
  }
  absl::Status last = UnavailableError(fmt::format("'{}' resolved to no address", host));
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    last = ConnectOnce(*ai, AddressText(*ai, port), timeout_ms, wake.get(), cancel);
    if (last.ok() || CodeOf(last) == ErrorCode::kCancelled) return last;
  }
  return last;
}

}  // namespace

absl::Status ValidateWaitOptions(const WaitOptions& o) {
  if (o.timeout_ms < 1) {
    return InvalidError(fmt::format("wait: timeout_ms must be >= 1, got {}", o.timeout_ms));
  }
  if (o.initial_backoff_ms < 1) {
    return InvalidError(
        fmt::format("wait: initial_backoff_ms must be >= 1, got {}", o.initial_backoff_ms));
  }
  if (o.max_backoff_ms < o.initial_backoff_ms) {
    return InvalidError(fmt::format("wait: max_backoff_ms ({}) must be >= initial_backoff_ms ({})",
                                    o.max_backoff_ms, o.initial_backoff_ms));
  }
  if (o.attempt_timeout_ms < 1) {
    return InvalidError(
        fmt::format("wait: attempt_timeout_ms must be >= 1, got {}", o.attempt_timeout_ms));
  }
  return absl::OkStatus();
}

bool WaitUntilOrCancelled(int64_t until_monotonic_ms, const CancelToken* cancel, Clock* clock) {
  if (clock == nullptr) clock = Clock::Real();
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  CancelToken::Subscription subscription;
  if (cancel != nullptr) {
    subscription = cancel->OnCancel([&] {
      std::lock_guard<std::mutex> lock(mu);
      woken = true;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    if (woken) return true;
    const int64_t left = until_monotonic_ms - clock->MonotonicMs();
    if (left <= 0) return false;
    // A clock that is not the real one (a test's) may move on its own
    // schedule: look at it again at least every 10 ms.
    const int64_t slice = clock == Clock::Real() ? left : std::min<int64_t>(left, 10);
    cv.wait_for(lock, std::chrono::milliseconds(slice));
  }
}

absl::Status WaitUntilReady(std::string_view what, const ReadinessProbe& probe,
                            const WaitOptions& options, const CancelToken* cancel, Clock* clock) {
  XG2G_RETURN_IF_ERROR(ValidateWaitOptions(options));
  if (clock == nullptr) clock = Clock::Real();
  const int64_t start = clock->MonotonicMs();
  const int64_t deadline = start + options.timeout_ms;
  int64_t backoff = options.initial_backoff_ms;
  int attempts = 0;
  std::string last_error = "no attempt was made";

  auto cancelled = [&] {
    return MakeError(ErrorCode::kCancelled,
                     fmt::format("waiting for {}: cancelled after {} ms and {} attempt(s); last "
                                 "error: {}",
                                 what, clock->MonotonicMs() - start, attempts, last_error));
  };
  for (;;) {
    if (cancel != nullptr && cancel->cancelled()) return cancelled();
    const int64_t now = clock->MonotonicMs();
    if (now >= deadline) {
      return MakeError(ErrorCode::kTimeout,
                       fmt::format("waited {} ms for {} ({} attempt(s)); last error: {}",
                                   now - start, what, attempts, last_error));
    }
    const int64_t budget = std::min(options.attempt_timeout_ms, deadline - now);
    const absl::Status attempt = probe(budget);
    ++attempts;
    if (attempt.ok()) return absl::OkStatus();
    if (CodeOf(attempt) == ErrorCode::kCancelled) return cancelled();
    // An attempt the overall deadline cut short that merely ran out of time
    // says less than the error before it ("refused" beats "no answer in 1 ms").
    const bool cut_short = budget < options.attempt_timeout_ms &&
                           CodeOf(attempt) == ErrorCode::kTimeout && attempts > 1;
    if (!cut_short) last_error = std::string(FromAbsl(attempt.message()));
    const int64_t wake = std::min(clock->MonotonicMs() + backoff, deadline);
    if (WaitUntilOrCancelled(wake, cancel, clock)) return cancelled();
    backoff = std::min(options.max_backoff_ms, backoff * 2);
  }
}

absl::Status WaitForHttpReady(std::string_view url, const WaitOptions& options,
                              const CancelToken* cancel, Clock* clock) {
  const std::string target(url);
  // Checked up front: a malformed URL would never become ready.
  XG2G_ASSIGN_OR_RETURN(std::string checked, BuildUrl(target, ""));
  (void)checked;
  CurlSession session;
  const std::string what = RedactUrl(target);
  return WaitUntilReady(
      what,
      [&](int64_t timeout_ms) -> absl::Status {
        HttpFetchOptions fetch;
        fetch.connect_timeout_ms = timeout_ms;
        fetch.timeout_ms = timeout_ms;
        fetch.cancel = cancel;
        fetch.verify_tls = options.verify_tls;
        absl::StatusOr<HttpResponse> response = session.Get(target, fetch);
        if (!response.ok()) return response.status();
        if (response->status >= 200 && response->status < 300) return absl::OkStatus();
        return UnavailableError(fmt::format("GET {}: HTTP status {}", what, response->status));
      },
      options, cancel, clock);
}

absl::Status WaitForTcpReady(std::string_view host, int port, const WaitOptions& options,
                             const CancelToken* cancel, Clock* clock) {
  if (host.empty()) return InvalidError("wait: the host is empty");
  if (port < 1 || port > 65535) {
    return InvalidError(fmt::format("wait: the port must be 1..65535, got {}", port));
  }
  const std::string target(host);
  const std::string what = target.find(':') != std::string::npos
                               ? fmt::format("tcp://[{}]:{}", target, port)
                               : fmt::format("tcp://{}:{}", target, port);
  return WaitUntilReady(
      what,
      [&](int64_t timeout_ms) { return TcpProbe(target, port, timeout_ms, cancel); }, options,
      cancel, clock);
}

}  // namespace xg2g

// Cancel tokens and the readiness waits (TCP here, on 127.0.0.1 with ports
// the kernel picks; HTTP against a live server is in the integration suite).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "lib/common/clock.h"
#include "lib/common/status.h"
#include "lib/upstream/cancel.h"
#include "lib/upstream/http_fetch.h"
#include "lib/upstream/readiness.h"

namespace xg2g {
namespace {

bool Has(const absl::Status& s, std::string_view text) {
  return FromAbsl(s.message()).find(text) != std::string_view::npos;
}

// A TCP socket bound to 127.0.0.1 on a spare port. Until Listen() a connect
// is refused; after it, accepted by the kernel's backlog.
class Port {
 public:
  Port() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~Port() { ::close(fd_); }
  void Listen() { REQUIRE(::listen(fd_, 16) == 0); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

WaitOptions Fast(int64_t timeout_ms) {
  WaitOptions o;
  o.timeout_ms = timeout_ms;
  o.initial_backoff_ms = 10;
  o.max_backoff_ms = 40;
  o.attempt_timeout_ms = 500;
  return o;
}

int64_t ElapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}

TEST_CASE("a cancel token runs its subscribers once and wakes later subscribers at once") {
  CancelToken token;
  int runs = 0;
  {
    CancelToken::Subscription sub = token.OnCancel([&] { ++runs; });
    CancelToken::Subscription gone = token.OnCancel([&] { runs += 100; });
    gone.Reset();
    CHECK_FALSE(token.cancelled());
    token.Cancel();
    token.Cancel();
  }
  CHECK(token.cancelled());
  CHECK(runs == 1);
  CancelToken::Subscription late = token.OnCancel([&] { ++runs; });
  CHECK(runs == 2);
}

TEST_CASE("WaitUntilReady answers at once when the first attempt succeeds") {
  int attempts = 0;
  absl::Status s = WaitUntilReady(
      "thing", [&](int64_t) { ++attempts; return absl::OkStatus(); }, Fast(1000));
  CHECK(s.ok());
  CHECK(attempts == 1);
}

TEST_CASE("WaitUntilReady backs off between attempts and succeeds once the probe does") {
  std::vector<std::chrono::steady_clock::time_point> at;
  WaitOptions o = Fast(10'000);
  o.initial_backoff_ms = 20;
  o.max_backoff_ms = 80;
  absl::Status s = WaitUntilReady(
      "thing",
      [&](int64_t) {
        at.push_back(std::chrono::steady_clock::now());
        return at.size() < 5 ? UnavailableError("not yet") : absl::OkStatus();
      },
      o);
  CHECK(s.ok());
  REQUIRE(at.size() == 5);
  auto gap = [&](size_t i) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at[i] - at[i - 1]).count();
  };
  // 20, 40, 80, 80 ms, less up to 1 ms: the clock counts whole milliseconds.
  CHECK(gap(1) >= 19);
  CHECK(gap(2) >= 39);
  CHECK(gap(3) >= 79);
  CHECK(gap(4) >= 79);
  CHECK(gap(4) < 1000);
}

TEST_CASE("WaitUntilReady times out naming the thing, the attempts and the last error") {
  int attempts = 0;
  absl::Status s = WaitUntilReady(
      "the widget",
      [&](int64_t timeout_ms) {
        CHECK(timeout_ms <= 500);
        return UnavailableError("attempt " + std::to_string(++attempts) + " refused");
      },
      Fast(150));
  CHECK(CodeOf(s) == ErrorCode::kTimeout);
  CHECK(Has(s, "for the widget"));
  CHECK(Has(s, "attempt(s)"));
  CHECK(Has(s, "last error: attempt " + std::to_string(attempts) + " refused"));
  CHECK(attempts >= 2);
}

TEST_CASE("an attempt the deadline cut short that only timed out keeps the error before it") {
  // A probe that is refused whenever it has its full budget and times out
  // when the overall deadline leaves it less: the answer names the refusal.
  int full = 0, short_budget = 0;
  absl::Status s = WaitUntilReady(
      "the widget",
      [&](int64_t timeout_ms) -> absl::Status {
        if (timeout_ms < 500) {
          ++short_budget;
          return MakeError(ErrorCode::kTimeout, "no answer within " + std::to_string(timeout_ms));
        }
        ++full;
        return UnavailableError("refused");
      },
      Fast(520));
  CHECK(CodeOf(s) == ErrorCode::kTimeout);
  REQUIRE(full >= 1);
  REQUIRE(short_budget >= 1);
  CHECK(Has(s, "last error: refused"));
  // A lone attempt is reported whatever it says: there is nothing better.
  s = WaitUntilReady(
      "the widget",
      [&](int64_t timeout_ms) {
        return MakeError(ErrorCode::kTimeout, "no answer within " + std::to_string(timeout_ms));
      },
      Fast(100));
  CHECK(Has(s, "last error: no answer within"));
}

TEST_CASE("wait options out of range are EINVAL naming the option") {
  WaitOptions o = Fast(100);
  o.max_backoff_ms = 1;
  absl::Status s = WaitUntilReady("x", [](int64_t) { return absl::OkStatus(); }, o);
  CHECK(CodeOf(s) == ErrorCode::kInvalid);
  CHECK(Has(s, "max_backoff_ms"));
  CHECK(CodeOf(WaitForTcpReady("127.0.0.1", 0, Fast(100))) == ErrorCode::kInvalid);
  CHECK(CodeOf(WaitForTcpReady("", 80, Fast(100))) == ErrorCode::kInvalid);
  CHECK(CodeOf(WaitForHttpReady("ftp://127.0.0.1/", Fast(100))) == ErrorCode::kInvalid);
  CHECK(CodeOf(WaitForHttpReady("not a url", Fast(100))) == ErrorCode::kInvalid);
}

TEST_CASE("a TCP wait is ready at once when the port listens") {
  Port port;
  port.Listen();
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = WaitForTcpReady("127.0.0.1", port.port(), Fast(5000));
  CHECK(s.ok());
  CHECK(ElapsedMs(start) < 1000);
}

TEST_CASE("a TCP wait becomes ready when the listener starts after a delay") {
  Port port;
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the scenario: a slow start
    port.Listen();
  });
  absl::Status s = WaitForTcpReady("127.0.0.1", port.port(), Fast(10'000));
  late.join();
  CHECK(s.ok());
}

TEST_CASE("a TCP wait that never gets an answer times out with the last error") {
  Port port;  // bound, never listening: refused
  absl::Status s = WaitForTcpReady("127.0.0.1", port.port(), Fast(200));
  CHECK(CodeOf(s) == ErrorCode::kTimeout);
  CHECK(Has(s, "tcp://127.0.0.1:" + std::to_string(port.port())));
  INFO(FromAbsl(s.message()));
  CHECK(Has(s, "Connection refused"));
}

TEST_CASE("a TCP wait is cancelled from another thread while waiting") {
  Port port;
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.Cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  WaitOptions o = Fast(20'000);
  o.max_backoff_ms = 5'000;  // long pauses: only the token can end them early
  o.initial_backoff_ms = 5'000;
  absl::Status s = WaitForTcpReady("127.0.0.1", port.port(), o, &cancel);
  canceller.join();
  CHECK(CodeOf(s) == ErrorCode::kCancelled);
  INFO(FromAbsl(s.message()));
  CHECK(Has(s, "Connection refused"));
  CHECK(ElapsedMs(start) < 3000);
}

TEST_CASE("a wait with a token cancelled beforehand makes no attempt") {
  CancelToken cancel;
  cancel.Cancel();
  int attempts = 0;
  absl::Status s = WaitUntilReady(
      "x", [&](int64_t) { ++attempts; return absl::OkStatus(); }, Fast(1000), &cancel);
  CHECK(CodeOf(s) == ErrorCode::kCancelled);
  CHECK(attempts == 0);
}

TEST_CASE("an HTTP wait on a closed port times out naming the URL and the curl error") {
  Port port;
  const std::string url = "http://127.0.0.1:" + std::to_string(port.port()) + "/healthz";
  absl::Status s = WaitForHttpReady(url, Fast(200));
  CHECK(CodeOf(s) == ErrorCode::kTimeout);
  CHECK(Has(s, url));
  CHECK(Has(s, "connect"));
}

TEST_CASE("an HTTP wait is cancelled from another thread while waiting") {
  Port port;
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.Cancel();
  });
  WaitOptions o = Fast(20'000);
  o.initial_backoff_ms = 5'000;
  o.max_backoff_ms = 5'000;
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = WaitForHttpReady(
      "http://127.0.0.1:" + std::to_string(port.port()) + "/", o, &cancel);
  canceller.join();
  CHECK(CodeOf(s) == ErrorCode::kCancelled);
  CHECK(ElapsedMs(start) < 3000);
}

TEST_CASE("an HTTP request in flight is woken by a cancel") {
  Port port;
  port.Listen();  // accepts into the backlog but never answers
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.Cancel();
  });
  CurlSession session;
  HttpFetchOptions fetch;
  fetch.timeout_ms = 20'000;
  fetch.cancel = &cancel;
  const auto start = std::chrono::steady_clock::now();
  auto r = session.Get("http://127.0.0.1:" + std::to_string(port.port()) + "/", fetch);
  canceller.join();
  CHECK(CodeOf(r.status()) == ErrorCode::kCancelled);
  CHECK(ElapsedMs(start) < 3000);
}

TEST_CASE("an HTTP request that gets no answer times out with ETIMEOUT") {
  Port port;
  port.Listen();
  CurlSession session;
  HttpFetchOptions fetch;
  fetch.timeout_ms = 150;
  auto r = session.Get("http://127.0.0.1:" + std::to_string(port.port()) + "/", fetch);
  CHECK(CodeOf(r.status()) == ErrorCode::kTimeout);
}

TEST_CASE("URLs are built with encoded queries and shown without credentials") {
  auto url = BuildUrl("http://box:8080", "/api/zap", {{"sRef", "1:0:19:283D:3FB:1:C00000:0:0:0:"}});
  REQUIRE(url.ok());
  CHECK(*url == "http://box:8080/api/zap?sRef=1%3a0%3a19%3a283D%3a3FB%3a1%3aC00000%3a0%3a0%3a0%3a");
  auto prefixed = BuildUrl("https://box/owif/", "/api/signal");
  REQUIRE(prefixed.ok());
  CHECK(*prefixed == "https://box/owif/api/signal");
  CHECK(CodeOf(BuildUrl("box:80", "/x").status()) == ErrorCode::kInvalid);
  CHECK(CodeOf(BuildUrl("", "/x").status()) == ErrorCode::kInvalid);
  CHECK(RedactUrl("http://root:s3cret@box:80/api") == "http://box:80/api");
  CHECK(RedactUrl("http://box/api") == "http://box/api");
}

}  // namespace
}  // namespace xg2g

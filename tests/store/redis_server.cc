#include "tests/store/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g::store_test {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A port the kernel just handed out for 127.0.0.1 and that nothing listens on
// now. Redis cannot bind port 0 itself, so the port is read from a socket
// bound to 0 and closed again.
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  if (!ok) return InternalError("cannot bind a socket to 127.0.0.1:0");
  return static_cast<int>(ntohs(addr.sin_port));
}

// Reaps `pid` if it has exited; true when it has.
bool Reaped(pid_t pid) {
  int status = 0;
  const pid_t r = waitpid(pid, &status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD);
}

// Waits up to `bound` for `pid` to exit, polling with backoff.
bool WaitExit(pid_t pid, milliseconds bound) {
  const auto give_up = steady_clock::now() + bound;
  auto pause = milliseconds(1);
  while (!Reaped(pid)) {
    if (steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(50));
  }
  return true;
}

}  // namespace

RedisServer::RedisServer(std::string dir, Options options)
    : dir_(std::move(dir)), options_(std::move(options)) {}

RedisServer::~RedisServer() {
  Stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(Options options) {
  std::string pattern = "/tmp/redis-xg2g-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) return InternalError("cannot create a directory");
  std::unique_ptr<RedisServer> server(new RedisServer(pattern, std::move(options)));
  absl::Status last = InternalError("not started");
  for (int attempt = 0; attempt < 5; ++attempt) {
    XG2G_ASSIGN_OR_RETURN(server->port_, FreePort());
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

std::string RedisServer::Uri(std::string_view query) const {
  return fmt::format("redis://127.0.0.1:{}/0{}", port_, query);
}

absl::Status RedisServer::Launch() {
  std::vector<std::string> args = {
      "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
      "--save", "", "--daemonize", "no", "--dir", dir_,
      "--logfile", dir_ + "/redis.log", "--protected-mode", "yes",
      "--appendonly", options_.appendonly ? "yes" : "no"};
  if (options_.appendonly) {
    args.insert(args.end(), {"--appendfsync", "always"});
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const std::string log = dir_ + "/stdout.log";

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return InternalError("fork() failed");
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    execvp("redis-server", argv.data());
    _exit(127);
  }
  pid_ = pid;
  absl::Status ready = WaitReady();
  if (!ready.ok()) Stop();
  return ready;
}

absl::Status RedisServer::WaitReady() {
  const auto give_up = steady_clock::now() + std::chrono::seconds(20);
  auto pause = milliseconds(1);
  for (;;) {
    if (Reaped(pid_)) {
      pid_ = -1;
      return UnavailableError(fmt::format("redis-server on port {} exited at start (see {})",
                                          port_, dir_));
    }
    absl::StatusOr<RedisReplyPtr> pong = Command({"PING"});
    if (pong.ok()) {
      const std::string_view text((*pong)->str ? (*pong)->str : "", (*pong)->len);
      // A server started with --requirepass answers NOAUTH: it is up.
      if (((*pong)->type == REDIS_REPLY_STATUS && text == "PONG") ||
          ((*pong)->type == REDIS_REPLY_ERROR && text.starts_with("NOAUTH"))) {
        return absl::OkStatus();
      }
    }
    if (steady_clock::now() >= give_up) {
      return UnavailableError(fmt::format("redis-server on port {} did not answer PING", port_));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(50));
  }
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);  // a paused server cannot act on SIGTERM
  kill(pid_, SIGTERM);
  if (!WaitExit(pid_, std::chrono::seconds(10))) {
    kill(pid_, SIGKILL);
    WaitExit(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  WaitExit(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

absl::Status RedisServer::Restart() {
  Stop();
  return Launch();
}

void RedisServer::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void RedisServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

absl::StatusOr<RedisReplyPtr> RedisServer::Command(const std::vector<std::string>& args) const {
  const timeval tv{2, 0};
  redisContext* ctx = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (ctx == nullptr) return InternalError("out of memory");
  std::unique_ptr<redisContext, void (*)(redisContext*)> owned(ctx, &redisFree);
  if (ctx->err != 0) return UnavailableError(ctx->errstr);
  redisSetTimeout(ctx, tv);
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lens.push_back(arg.size());
  }
  void* reply = redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
  if (reply == nullptr) return UnavailableError(ctx->errstr);
  return RedisReplyPtr(static_cast<redisReply*>(reply));
}

RedisServer& SharedRedisServer() {
  static std::unique_ptr<RedisServer> server;  // stopped at exit
  if (server == nullptr) {
    auto started = RedisServer::Start();
    if (!started.ok()) {
      // Nothing of the binary can run without it; no test framework is
      // assumed here (the benchmark links this file too).
      fmt::print(stderr, "cannot start redis-server: {}\n", started.status().ToString());
      std::exit(1);
    }
    server = *std::move(started);
  }
  return *server;
}

}  // namespace xg2g::store_test

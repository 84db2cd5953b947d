// A private redis-server for the tests: started by the test binary itself on
// 127.0.0.1 on a spare port, with its own directory under /tmp, and stopped by
// its pid. Nothing else on the machine is touched.
//
// Not thread-safe: start, stop, pause and restart a server from one thread
// (the test's). The child is started with PR_SET_PDEATHSIG so that it dies
// with the thread that started it even when the test binary is killed.
#ifndef XG2G_TESTS_STORE_REDIS_SERVER_H_
#define XG2G_TESTS_STORE_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/store/redis_pool.h"

namespace xg2g::store_test {

class RedisServer {
 public:
  struct Options {
    bool appendonly = false;              // appendonly yes, appendfsync always
    std::vector<std::string> extra_args;  // more "--name value" pairs
  };

  // Picks a free port, starts the server and waits (bounded, polling with
  // backoff) until it answers PING. Retries on another port when the server
  // exits at once (the port was taken in between).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RedisServer>> Start(Options options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RedisServer>> Start() {
    return Start(Options{});
  }

  // Stops the server (SIGTERM, then SIGKILL after a bound) and removes its
  // directory.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  bool running() const { return pid_ > 0; }

  // "redis://127.0.0.1:PORT/0" followed by `query` ("?prefix=...").
  std::string Uri(std::string_view query = "") const;

  // SIGKILL, reaped: the server is gone at once, as in a crash.
  void Kill();
  // Starts it again on the same port and directory (an append-only file is
  // read back) and waits until it answers.
  [[nodiscard]] absl::Status Restart();
  // SIGSTOP / SIGCONT: a server that accepts connections and never answers.
  void Pause();
  void Resume();

  // One command on a fresh connection of its own (for setting up and
  // inspecting what the store wrote). Error replies come back as replies.
  [[nodiscard]] absl::StatusOr<RedisReplyPtr> Command(const std::vector<std::string>& args) const;

 private:
  RedisServer(std::string dir, Options options);
  absl::Status Launch();
  // Waits until PING answers PONG; an error if the child exits first or the
  // bound passes.
  absl::Status WaitReady();
  void Stop();

  const std::string dir_;
  const Options options_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// The server shared by the cases of one test binary: started on first use,
// stopped at exit. Each case keeps to its own key prefix. When it cannot be
// started the process exits with status 1 and the reason on stderr.
RedisServer& SharedRedisServer();

}  // namespace xg2g::store_test

#endif  // XG2G_TESTS_STORE_REDIS_SERVER_H_

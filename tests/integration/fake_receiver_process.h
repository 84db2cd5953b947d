// Starts tests/integration/fake_receiver.py on 127.0.0.1 (a port the kernel
// picks), reads the port it prints, and stops it by pid. The interpreter and
// the script come from the build (XG2G_PYTHON, XG2G_FAKE_RECEIVER).
#ifndef XG2G_TESTS_INTEGRATION_FAKE_RECEIVER_PROCESS_H_
#define XG2G_TESTS_INTEGRATION_FAKE_RECEIVER_PROCESS_H_

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <simdjson.h>

#include "lib/upstream/http_fetch.h"

extern char** environ;

namespace xg2g::testing {

class FakeReceiverProcess {
 public:
  explicit FakeReceiverProcess(std::vector<std::string> flags = {}) {
    std::vector<std::string> args = {XG2G_PYTHON, XG2G_FAKE_RECEIVER};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      throw std::runtime_error("cannot start " + args[0]);
    }
    // The port line, within 20 s (a bounded wait on the pipe, not a sleep).
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (line.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      pollfd p{out[0], POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      char buf[64];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    port_ = std::atoi(line.c_str());
    if (port_ <= 0) {
      Stop();
      throw std::runtime_error("the fake receiver printed no port: '" + line + "'");
    }
  }
  ~FakeReceiverProcess() { Stop(); }
  FakeReceiverProcess(const FakeReceiverProcess&) = delete;
  FakeReceiverProcess& operator=(const FakeReceiverProcess&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // GET on the admin API (switches, stats); the body.
  std::string Admin(const std::string& path_and_query) {
    HttpFetchOptions options;
    options.timeout_ms = 5'000;
    auto response = admin_.Get(url() + path_and_query, options);
    if (!response.ok() || response->status != 200) {
      throw std::runtime_error("fake receiver admin call failed: " + path_and_query);
    }
    return response->body;
  }
  // A number from /admin/stats ("connections", "api_requests", "zaps").
  int64_t Stat(const std::string& key) {
    const std::string body = Admin("/admin/stats");
    simdjson::dom::parser parser;
    int64_t value = 0;
    if (parser.parse(body).at_key(key).get_int64().get(value) != simdjson::SUCCESS) {
      throw std::runtime_error("no stat " + key + " in " + body);
    }
    return value;
  }

  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  CurlSession admin_;
};

}  // namespace xg2g::testing

#endif  // XG2G_TESTS_INTEGRATION_FAKE_RECEIVER_PROCESS_H_

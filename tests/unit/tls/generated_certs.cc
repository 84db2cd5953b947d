#include "tests/unit/tls/generated_certs.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

extern char** environ;

namespace xg2g::testing {
namespace {

// Runs `sh make-fixtures.sh DIR` (openssl from PATH); the script's output goes
// to `log`. Returns an empty string on success, else what went wrong.
std::string RunScript(const std::string& dir, const std::string& log) {
  const std::string script = std::string(XG2G_TEST_DATA_DIR) + "/tls/make-fixtures.sh";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv;
  std::string sh = "sh";
  std::string script_arg = script;
  std::string dir_arg = dir;
  argv.push_back(sh.data());
  argv.push_back(script_arg.data());
  argv.push_back(dir_arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "sh", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return "cannot start sh: " + std::string(std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return "waitpid: " + std::string(std::strerror(errno));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  std::ifstream in(log);
  std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return script + " failed (is the openssl program installed?):\n" + output;
}

// The generated directory, or why there is none; removed at exit.
struct Generated {
  std::string dir;
  std::string error;

  Generated() {
    std::error_code ec;
    std::string pattern = (std::filesystem::temp_directory_path(ec) / "xg2g-tls-XXXXXX").string();
    if (ec) pattern = "/tmp/xg2g-tls-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      error = "mkdtemp: " + std::string(std::strerror(errno));
      return;
    }
    dir = pattern;
    // The log lives next to the directory, not in it, so it lists no file.
    const std::string log = dir + ".log";
    error = RunScript(dir, log);
    std::filesystem::remove(log, ec);
  }
  ~Generated() {
    if (dir.empty()) return;
    std::error_code ec;
    // The tests make some files unreadable; the directory itself stays ours.
    std::filesystem::remove_all(dir, ec);
  }
  Generated(const Generated&) = delete;
  Generated& operator=(const Generated&) = delete;
};

const Generated& Get() {
  static const Generated generated;
  return generated;
}

}  // namespace

const std::string& GeneratedCertDir() {
  const Generated& g = Get();
  if (!g.error.empty()) FAIL(g.error);
  return g.dir;
}

std::string GeneratedCert(std::string_view name) {
  return GeneratedCertDir() + "/" + std::string(name);
}

std::string ReadGeneratedCert(std::string_view name) {
  const std::string path = GeneratedCert(name);
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace xg2g::testing

// Helpers of the LMDB store tests: scratch directories, raw LMDB access to a
// store's files (to plant records the store would never write), and child
// processes. Header-only; each test binary includes it once per file.
#ifndef XG2G_TESTS_STORE_LMDB_TEST_UTIL_H_
#define XG2G_TESTS_STORE_LMDB_TEST_UTIL_H_

#include <lmdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <doctest/doctest.h>

namespace xg2g::store_test {

// A fresh directory under the temp directory ("lmdb-test-XXXXXX"), removed
// with everything in it when the object goes.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "lmdb-test-XXXXXX").string();
    REQUIRE_MESSAGE(mkdtemp(pattern.data()) != nullptr, "cannot create a scratch directory");
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The store's environment opened with liblmdb directly. LMDB forbids one
// environment open twice in a process: no store may be open on the directory
// in this process meanwhile. Failures end the test (or, in a child, make
// the calls report false).
class RawLmdb {
 public:
  explicit RawLmdb(const std::string& dir) {
    ok_ = mdb_env_create(&env_) == 0 && mdb_env_set_maxdbs(env_, 8) == 0 &&
          mdb_env_open(env_, dir.c_str(), 0, 0600) == 0;
  }
  ~RawLmdb() { Close(); }
  RawLmdb(const RawLmdb&) = delete;
  RawLmdb& operator=(const RawLmdb&) = delete;

  bool ok() const { return ok_; }

  void Close() {
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = nullptr;
  }

  // `db` null: the main database.
  void Put(const char* db, std::string_view key, std::string_view value) {
    Write(db, [&](MDB_txn* txn, MDB_dbi dbi) {
      MDB_val k{key.size(), const_cast<char*>(key.data())};
      MDB_val v{value.size(), const_cast<char*>(value.data())};
      return mdb_put(txn, dbi, &k, &v, 0);
    });
  }

  void Delete(const char* db, std::string_view key) {
    Write(db, [&](MDB_txn* txn, MDB_dbi dbi) {
      MDB_val k{key.size(), const_cast<char*>(key.data())};
      return mdb_del(txn, dbi, &k, nullptr);
    });
  }

  std::optional<std::string> Get(const char* db, std::string_view key) {
    REQUIRE(ok_);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn) == 0);
    MDB_dbi dbi = 0;
    std::optional<std::string> out;
    if (mdb_dbi_open(txn, db, 0, &dbi) == 0) {
      MDB_val k{key.size(), const_cast<char*>(key.data())};
      MDB_val v;
      if (mdb_get(txn, dbi, &k, &v) == 0) {
        out = std::string(static_cast<const char*>(v.mv_data), v.mv_size);
      }
    }
    mdb_txn_abort(txn);
    return out;
  }

  // Begins a read transaction and never ends it: its reader slot stays taken
  // until the process is gone (and then until someone clears it).
  bool LeakReadTransaction() {
    MDB_txn* txn = nullptr;
    return ok_ && mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn) == 0;
  }

  // Reader slots of dead processes (clearing them as it counts).
  int StaleReaders() {
    int dead = -1;
    if (!ok_ || mdb_reader_check(env_, &dead) != 0) return 100;
    return dead;
  }

 private:
  void Write(const char* db, const std::function<int(MDB_txn*, MDB_dbi)>& op) {
    REQUIRE(ok_);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env_, nullptr, 0, &txn) == 0);
    MDB_dbi dbi = 0;
    const int open_rc = mdb_dbi_open(txn, db, db != nullptr ? MDB_CREATE : 0, &dbi);
    const int rc = open_rc == 0 ? op(txn, dbi) : open_rc;
    if (rc != 0) mdb_txn_abort(txn);
    REQUIRE_MESSAGE(rc == 0, mdb_strerror(rc));
    REQUIRE(mdb_txn_commit(txn) == 0);
  }

  MDB_env* env_ = nullptr;
  bool ok_ = false;
};

// A forked child running `body(side)`; its return value is the exit code.
// The child never returns into the test framework: it ends with _exit().
class ChildProcess {
 public:
  // The child's end of the two pipes between it and the parent.
  class Side {
   public:
    Side(int to_parent, int from_parent) : to_parent_(to_parent), from_parent_(from_parent) {}
    // Tells the parent that the child is set up (AwaitReady returns).
    void Ready() const {
      const char byte = 'r';
      [[maybe_unused]] const ssize_t n = write(to_parent_, &byte, 1);
    }
    // Waits for the parent's Tell(); false when the parent went away.
    bool AwaitGo() const {
      char byte = 0;
      return read(from_parent_, &byte, 1) == 1;
    }

   private:
    int to_parent_;
    int from_parent_;
  };

  explicit ChildProcess(const std::function<int(const Side&)>& body) {
    int up[2];
    int down[2];
    REQUIRE(pipe(up) == 0);
    REQUIRE(pipe(down) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      close(up[0]);
      close(down[1]);
      int code = 101;
      try {
        code = body(Side(up[1], down[0]));
      } catch (...) {
        code = 102;
      }
      _exit(code);
    }
    close(up[1]);
    close(down[0]);
    from_child_ = up[0];
    to_child_ = down[1];
  }

  ~ChildProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (from_child_ >= 0) close(from_child_);
    if (to_child_ >= 0) close(to_child_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // True once the child called Ready(); false if it ended or took over a minute.
  bool AwaitReady() {
    pollfd fd{from_child_, POLLIN, 0};
    if (poll(&fd, 1, 60'000) != 1) return false;
    char byte = 0;
    return read(from_child_, &byte, 1) == 1;
  }

  void Tell() {
    const char byte = 'g';
    [[maybe_unused]] const ssize_t n = write(to_child_, &byte, 1);
  }

  // The child's exit code; -signal when a signal ended it.
  int Wait() {
    if (pid_ <= 0) return exit_code_;
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return exit_code_;
  }

 private:
  pid_t pid_ = 0;
  int from_child_ = -1;
  int to_child_ = -1;
  int exit_code_ = -1;
};

}  // namespace xg2g::store_test

#endif  // XG2G_TESTS_STORE_LMDB_TEST_UTIL_H_

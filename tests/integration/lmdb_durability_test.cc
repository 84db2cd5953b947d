// Durability of the LMDB store under kill -9 (DESIGN.md §3, issue 4).
//
// One binary, two roles:
//
//   lmdb_durability_test [--rounds N] [--seed S] [--dir DIR] [--keep]
//       The driver. Under DIR (default: a fresh directory under $TMPDIR or
//       /tmp, removed after a pass):
//       - fresh-0 .. fresh-9: each new store gets a writer killed at a random
//         point of its start-up (while the store is being created), then a
//         second writer that must open what the first left and write;
//       - store: the writer runs N times (default 100) on one store and is
//         killed with SIGKILL at a random point of each round (one round in
//         ten during start-up, the others 5-50 ms into writing).
//       Then it checks each store: every acknowledged write is there and
//       intact, nothing is there that was never written, the file's B-trees
//       walk end to end, scans and listings agree, the store's own
//       CheckConsistency finds nothing, and the lease's fencing tokens kept
//       increasing across every restart. A failure prints the seed
//       (--seed replays the same kill delays) and keeps the stores.
//
//   lmdb_durability_test writer URI ROUND
//       The writer. Opens URI (durable by default), takes the lease
//       "durability" as owner "writer-ROUND", then puts, updates and deletes
//       sessions until it is killed. For each operation it prints one line
//       before the call ("begin put ID") and one after the call returned OK
//       ("ok put ID"). Each line is a single write(2) of at most PIPE_BUF
//       bytes, so a kill never leaves half a line: an "ok" line the driver
//       reads is an acknowledged write.
//
// What the store may hold for a session after a kill: the state of its last
// acknowledged operation, or, for the one operation that had begun but not
// been acknowledged when the writer died, the state after that operation
// (a write the kill interrupted may land or not, but never half). Records are
// derived from their ids (MakeRecord), so every field is checked.
//
// The checks can fail: after the real check, the driver checks the same store
// against three doctored logs (an acknowledged put that never happened, an
// acknowledged update the record lacks, a fencing token that did not
// increase) and fails if any of them passes.
//
// kill -9 ends the process, not the machine: the kernel still writes what the
// process handed it. This test proves crash consistency of the process
// (interrupted transactions, stale reader slots, a half-done open); it cannot
// tell the durable sync mode from the no-sync one. Power loss is not tested.
#include <fcntl.h>
#include <lmdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/status.h"
#include "lib/session/session.h"
#include "lib/store/lmdb_store.h"
#include "lib/store/store.h"

namespace xg2g {
namespace {

constexpr std::string_view kLeaseKey = "durability";
// Short: the next round's writer waits out the lease a killed writer held.
constexpr int64_t kLeaseTtlMs = 20;
// Bounds. A writer never runs out of work before it is killed (a round lasts
// at most 50 ms); the waits only bound a broken store.
constexpr int kMaxOpsPerRound = 200'000;
constexpr int kMaxLeaseAttempts = 5'000;  // 1 ms apart
constexpr int kReadyTimeoutMs = 10'000;
constexpr int kDrainTimeoutMs = 10'000;
// A lease release and re-acquire every so many sessions.
constexpr int kLeaseEvery = 4;
// Rounds killed at a random point of start-up (open, reader check, first
// lease, first writes) instead of while writing: one in kEarlyKillOneIn, at
// most kEarlyKillMaxUs after the spawn (a writer is ready after about 5 ms).
constexpr int kEarlyKillOneIn = 10;
constexpr int kEarlyKillMaxUs = 8'000;
// Fresh store directories, each killed during its creation and reopened.
constexpr int kFreshStores = 10;
// Fewer acknowledged puts than this in a whole run proves nothing.
constexpr int kMinAckedPuts = 20;

// ---------------------------------------------------------------------------
// Records derived from their ids.

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

SessionRecord MakeRecord(std::string_view id) {
  const uint64_t h = Fnv1a(id);
  SessionRecord r;
  r.session_id = std::string(id);
  r.service_ref = fmt::format("1:0:19:{:X}:{:X}:1:C00000:0:0:0:", h & 0xffff, (h >> 16) & 0xffff);
  r.profile.name = (h & 1) != 0 ? "hd" : "default";
  r.profile.llhls = (h & 2) != 0;
  r.profile.dvr_window_sec = static_cast<int64_t>(h % 3600);
  r.correlation_id = fmt::format("{:016x}", h);
  r.created_at_unix = 1'700'000'000 + static_cast<int64_t>(h % 1'000'000);
  r.updated_at_unix = r.created_at_unix;
  r.expires_at_unix = r.created_at_unix + 3600;
  r.principal = fmt::format("p-{:08x}", h >> 32);
  r.deadline_unix_ms = r.created_at_unix * 1000 + 30'000;
  r.context_data["digest"] = fmt::format("{:016x}", h ^ 0x9e3779b97f4a7c15ULL);
  // A length that varies with the id, so records are not all one size.
  r.context_data["pad"] = std::string(16 + h % 97, static_cast<char>('a' + h % 26));
  return r;
}

// What the writer's update does (the mutator and the checker share it).
void ApplyUpdate(SessionRecord& r) {
  r.state = SessionState::kStarting;
  r.pipeline_state = PipelineState::kTuning;
  r.updated_at_unix += 7;
  r.context_data["step"] = "1";
}

SessionRecord MakeUpdatedRecord(std::string_view id) {
  SessionRecord r = MakeRecord(id);
  ApplyUpdate(r);
  return r;
}

std::string SessionId(int round, int index) { return fmt::format("r{:03d}-{:06d}", round, index); }

// ---------------------------------------------------------------------------
// The writer.

// One line, one write(2): the driver never sees half of it.
void Emit(const std::string& line) {
  const std::string out = line + "\n";
  const char* p = out.data();
  size_t left = out.size();
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::_Exit(4);  // the driver is gone: nothing left to prove
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

int WriterFail(std::string_view what, const absl::Status& status) {
  fmt::print(stderr, "writer: {}: {} ({})\n", what, FromAbsl(status.message()),
             ErrorCodeName(CodeOf(status)));
  return 3;
}

// A killed writer of an earlier round may still hold the lease until its TTL
// runs out; wait for that, boundedly.
absl::StatusOr<uint64_t> AcquireWithRetry(Store& store, std::string_view owner) {
  absl::Status last;
  for (int attempt = 0; attempt < kMaxLeaseAttempts; ++attempt) {
    auto grant = store.AcquireLease(kLeaseKey, owner, kLeaseTtlMs);
    if (grant.ok()) return grant->fencing_token;
    if (CodeOf(grant.status()) != ErrorCode::kBusy) return grant.status();
    last = grant.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return MakeError(ErrorCode::kTimeout,
                   fmt::format("lease still busy after {} attempts: {}", kMaxLeaseAttempts,
                               FromAbsl(last.message())));
}

int RunWriter(std::string_view uri, int round) {
  auto opened = OpenStore(uri);
  if (!opened.ok()) return WriterFail("open", opened.status());
  Store& store = **opened;
  const std::string owner = fmt::format("writer-{}", round);

  auto take_lease = [&]() -> absl::Status {
    Emit("begin lease");
    XG2G_ASSIGN_OR_RETURN(const uint64_t token, AcquireWithRetry(store, owner));
    Emit(fmt::format("ok lease {}", token));
    return absl::OkStatus();
  };

  if (absl::Status s = take_lease(); !s.ok()) return WriterFail("first lease", s);
  Emit("ready");

  for (int i = 0; i < kMaxOpsPerRound; ++i) {
    const std::string id = SessionId(round, i);
    Emit("begin put " + id);
    if (absl::Status s = store.PutSession(MakeRecord(id)); !s.ok()) {
      return WriterFail("put " + id, s);
    }
    Emit("ok put " + id);

    // Kills come early (a durable write costs milliseconds), so the
    // schedule mixes every kind of write into the first few sessions.
    if (i % 2 == 1) {
      Emit("begin update " + id);
      auto updated = store.UpdateSession(id, [](SessionRecord& r) {
        ApplyUpdate(r);
        return absl::OkStatus();
      });
      if (!updated.ok()) return WriterFail("update " + id, updated.status());
      Emit("ok update " + id);
    }

    if (i % 3 == 2) {
      const std::string victim = SessionId(round, i - 2);
      Emit("begin delete " + victim);
      if (absl::Status s = store.DeleteSession(victim); !s.ok()) {
        return WriterFail("delete " + victim, s);
      }
      Emit("ok delete " + victim);
    }

    if (i % kLeaseEvery == kLeaseEvery - 1) {
      Emit("begin release");
      const absl::Status released = store.ReleaseLease(kLeaseKey, owner);
      if (released.ok()) {
        Emit("ok release");
      } else if (CodeOf(released) == ErrorCode::kNotFound) {
        Emit("expired lease");  // the short TTL ran out first: fine
      } else {
        return WriterFail("release", released);
      }
      if (absl::Status s = take_lease(); !s.ok()) return WriterFail("lease", s);
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------
// What the writers said, and what the store must therefore hold.

enum class Shape { kAbsent, kPut, kUpdated };

std::string_view ShapeName(Shape s) {
  switch (s) {
    case Shape::kAbsent:
      return "absent";
    case Shape::kPut:
      return "as put";
    case Shape::kUpdated:
      return "as updated";
  }
  return "?";
}

struct RoundLog {
  int round = 0;
  std::vector<std::string> lines;  // complete lines only
};

struct Expectation {
  Shape acked = Shape::kAbsent;
  std::optional<Shape> in_flight;  // begun, not acknowledged, writer killed
};

struct Expected {
  std::map<std::string, Expectation> sessions;  // every id a writer ever began to put
  std::vector<uint64_t> tokens;                 // acknowledged grants, in order
  int acked_puts = 0;
  int acked_updates = 0;
  int acked_deletes = 0;
};

std::vector<std::string_view> Words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < line.size()) {
    const size_t space = line.find(' ', pos);
    const size_t end = space == std::string_view::npos ? line.size() : space;
    if (end > pos) out.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

absl::StatusOr<Expected> ReadLogs(const std::vector<RoundLog>& logs) {
  Expected ex;
  for (const RoundLog& log : logs) {
    // The operation begun and not yet acknowledged: (op, id).
    std::optional<std::pair<std::string, std::string>> open;
    for (const std::string& line : log.lines) {
      const auto w = Words(line);
      auto bad = [&](std::string_view why) {
        return InternalError(
            fmt::format("round {}: writer line '{}': {}", log.round, line, why));
      };
      if (w.empty()) return bad("empty");
      if (w[0] == "ready" || w[0] == "expired") {
        open.reset();
        continue;
      }
      if (w.size() < 2) return bad("too short");
      const std::string op(w[1]);
      if (w[0] == "begin") {
        if (op == "lease" || op == "release") {
          open.reset();
          continue;
        }
        if (w.size() != 3) return bad("expected 'begin OP ID'");
        const std::string id(w[2]);
        if (op == "put") ex.sessions.try_emplace(id);
        if (!ex.sessions.contains(id)) return bad("an operation on an id never put");
        open = std::make_pair(op, id);
      } else if (w[0] == "ok") {
        if (op == "lease") {
          if (w.size() != 3) return bad("expected 'ok lease TOKEN'");
          uint64_t token = 0;
          const std::string text(w[2]);
          char* end = nullptr;
          errno = 0;
          token = std::strtoull(text.c_str(), &end, 10);
          if (errno != 0 || end == text.c_str() || *end != '\0') return bad("bad token");
          ex.tokens.push_back(token);
          continue;
        }
        if (op == "release") continue;
        if (w.size() != 3) return bad("expected 'ok OP ID'");
        const std::string id(w[2]);
        if (!open || open->first != op || open->second != id) {
          return bad("acknowledges an operation that was not begun");
        }
        open.reset();
        Expectation& e = ex.sessions[id];
        if (op == "put") {
          e.acked = Shape::kPut;
          ++ex.acked_puts;
        } else if (op == "update") {
          e.acked = Shape::kUpdated;
          ++ex.acked_updates;
        } else if (op == "delete") {
          e.acked = Shape::kAbsent;
          ++ex.acked_deletes;
        } else {
          return bad("unknown operation");
        }
      } else {
        return bad("unknown line");
      }
    }
    if (open) {
      const auto& [op, id] = *open;
      ex.sessions[id].in_flight =
          op == "put" ? Shape::kPut : op == "update" ? Shape::kUpdated : Shape::kAbsent;
    }
  }
  return ex;
}

// ---------------------------------------------------------------------------
// The checks.

struct Failures {
  std::vector<std::string> items;
  void Add(std::string what) { items.push_back(std::move(what)); }
  bool empty() const { return items.empty(); }
};

// Which shape a stored record has, or an error when it is neither (a torn or
// foreign record).
absl::StatusOr<Shape> Classify(const SessionRecord& got) {
  SessionRecord plain = got;
  plain.revision = 0;
  if (plain == MakeRecord(got.session_id)) return Shape::kPut;
  if (plain == MakeUpdatedRecord(got.session_id)) return Shape::kUpdated;
  return CorruptError(fmt::format("session '{}' matches neither the put nor the updated record "
                                  "derived from its id (encoded: {})",
                                  got.session_id, EncodeSession(got)));
}

// Walks every B-tree in the environment with liblmdb directly, read-only:
// each database's entries end to end (a damaged page is an error here), and
// mdb_stat's count agrees with the walk. Must not run while this process has
// the same environment open through the store (LMDB forbids opening one
// environment twice in a process).
void WalkLmdbFile(const std::string& dir, bool verbose, Failures& failures) {
  MDB_env* env = nullptr;
  auto fail = [&](std::string_view what, int rc) {
    failures.Add(fmt::format("raw LMDB walk: {}: {}", what, mdb_strerror(rc)));
  };
  int rc = mdb_env_create(&env);
  if (rc != 0) return fail("env create", rc);
  std::unique_ptr<MDB_env, void (*)(MDB_env*)> env_guard(env, mdb_env_close);
  if ((rc = mdb_env_set_maxdbs(env, 128)) != 0) return fail("set maxdbs", rc);
  if ((rc = mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0600)) != 0) return fail("open", rc);
  MDB_txn* txn = nullptr;
  if ((rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn)) != 0) return fail("txn", rc);
  std::unique_ptr<MDB_txn, void (*)(MDB_txn*)> txn_guard(txn, mdb_txn_abort);

  auto walk = [&](MDB_dbi dbi, const std::string& name) -> size_t {
    MDB_cursor* cursor = nullptr;
    int r = mdb_cursor_open(txn, dbi, &cursor);
    if (r != 0) {
      fail("cursor on " + name, r);
      return 0;
    }
    size_t count = 0;
    MDB_val key, val;
    for (r = mdb_cursor_get(cursor, &key, &val, MDB_FIRST); r == 0;
         r = mdb_cursor_get(cursor, &key, &val, MDB_NEXT)) {
      ++count;
    }
    if (r != MDB_NOTFOUND) fail(fmt::format("walking '{}' after {} entries", name, count), r);
    mdb_cursor_close(cursor);
    MDB_stat st;
    if ((r = mdb_stat(txn, dbi, &st)) != 0) {
      fail("stat " + name, r);
    } else if (st.ms_entries != count) {
      failures.Add(fmt::format("raw LMDB walk: database '{}' says {} entries, the walk found {}",
                               name, st.ms_entries, count));
    }
    return count;
  };

  // The main database holds the named databases' names (and maybe plain
  // keys: opening one of those as a database gives MDB_INCOMPATIBLE).
  std::vector<std::string> names;
  {
    MDB_dbi main_dbi = 0;
    if ((rc = mdb_dbi_open(txn, nullptr, 0, &main_dbi)) != 0) return fail("main dbi", rc);
    walk(main_dbi, "(main)");
    MDB_cursor* cursor = nullptr;
    if ((rc = mdb_cursor_open(txn, main_dbi, &cursor)) != 0) return fail("main cursor", rc);
    MDB_val key, val;
    for (rc = mdb_cursor_get(cursor, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &val, MDB_NEXT)) {
      names.emplace_back(static_cast<const char*>(key.mv_data), key.mv_size);
    }
    mdb_cursor_close(cursor);
  }
  std::string summary;
  for (const std::string& name : names) {
    if (name.find('\0') != std::string::npos) continue;
    MDB_dbi dbi = 0;
    rc = mdb_dbi_open(txn, name.c_str(), 0, &dbi);
    if (rc == MDB_INCOMPATIBLE) continue;
    if (rc != 0) {
      fail("open database '" + name + "'", rc);
      continue;
    }
    const size_t n = walk(dbi, name);
    summary += fmt::format(" {}={}", name, n);
  }
  if (verbose) fmt::print("raw LMDB walk: {} named database(s):{}\n", names.size(), summary);
}

// Everything the store must answer about the logged rounds.
Failures CheckStore(Store& store, const Expected& ex, bool quiet) {
  Failures failures;

  // 1. Every id: its record is one of the allowed shapes, and intact.
  for (const auto& [id, e] : ex.sessions) {
    auto got = store.GetSession(id);
    std::optional<Shape> shape;
    if (got.ok()) {
      auto classified = Classify(*got);
      if (!classified.ok()) {
        failures.Add(std::string(FromAbsl(classified.status().message())));
        continue;
      }
      shape = *classified;
    } else if (CodeOf(got.status()) == ErrorCode::kNotFound) {
      shape = Shape::kAbsent;
    } else {
      failures.Add(fmt::format("GetSession('{}'): {} ({})", id,
                               FromAbsl(got.status().message()),
                               ErrorCodeName(CodeOf(got.status()))));
      continue;
    }
    if (*shape == e.acked || (e.in_flight && *shape == *e.in_flight)) continue;
    failures.Add(fmt::format("session '{}' is {}; its last acknowledged write left it {}{}", id,
                             ShapeName(*shape), ShapeName(e.acked),
                             e.in_flight ? fmt::format(" (or {} by the write the kill "
                                                       "interrupted)",
                                                       ShapeName(*e.in_flight))
                                         : std::string()));
  }

  // 2. A full scan: every record decodes, is intact and was written by a
  // writer; no id twice.
  std::vector<std::string> scanned;
  const absl::Status scan = store.ScanSessions([&](const SessionRecord& r) {
    scanned.push_back(r.session_id);
    if (!ex.sessions.contains(r.session_id)) {
      failures.Add(fmt::format("scan found session '{}' that no writer began", r.session_id));
    } else if (auto c = Classify(r); !c.ok()) {
      failures.Add(std::string(FromAbsl(c.status().message())));
    }
    return true;
  });
  if (!scan.ok()) {
    failures.Add(fmt::format("ScanSessions: {} ({})", FromAbsl(scan.message()),
                             ErrorCodeName(CodeOf(scan))));
  }
  std::sort(scanned.begin(), scanned.end());
  if (std::adjacent_find(scanned.begin(), scanned.end()) != scanned.end()) {
    failures.Add("scan visited a session twice");
  }

  // 3. Listing in pages: the same ids in byte order, and the same total.
  std::vector<std::string> listed;
  size_t total = 0;
  for (size_t offset = 0, pages = 0; pages <= ex.sessions.size() / 100 + 1; ++pages) {
    auto page = store.ListSessions(offset, 100);
    if (!page.ok()) {
      failures.Add(fmt::format("ListSessions({}, 100): {}", offset,
                               FromAbsl(page.status().message())));
      break;
    }
    total = page->total;
    for (const SessionRecord& r : page->sessions) listed.push_back(r.session_id);
    if (page->sessions.empty()) break;
    offset += page->sessions.size();
  }
  if (total != scanned.size()) {
    failures.Add(fmt::format("ListSessions total {} != {} sessions scanned", total,
                             scanned.size()));
  }
  if (listed != scanned) {
    failures.Add(fmt::format("ListSessions pages list {} ids, the scan {}; they differ",
                             listed.size(), scanned.size()));
  }

  // 4. Fencing tokens: strictly increasing across rounds, and the next grant
  // (by a new owner, once the last writer's lease ran out) is higher still.
  for (size_t i = 1; i < ex.tokens.size(); ++i) {
    if (ex.tokens[i] <= ex.tokens[i - 1]) {
      failures.Add(fmt::format("fencing token {} (grant #{}) is not above the previous {}",
                               ex.tokens[i], i, ex.tokens[i - 1]));
    }
  }
  auto next = AcquireWithRetry(store, "durability-checker");
  if (!next.ok()) {
    failures.Add(fmt::format("checker's lease: {}", FromAbsl(next.status().message())));
  } else {
    if (!ex.tokens.empty() && *next <= ex.tokens.back()) {
      failures.Add(fmt::format("after the restarts the lease was granted with token {}, not "
                               "above the last acknowledged {}",
                               *next, ex.tokens.back()));
    }
    if (absl::Status s = store.ReleaseLease(kLeaseKey, "durability-checker");
        !s.ok() && CodeOf(s) != ErrorCode::kNotFound) {
      failures.Add(fmt::format("checker's release: {}", FromAbsl(s.message())));
    }
  }

  if (!quiet) {
    fmt::print("store: {} sessions present ({} ids written), {} acknowledged grants\n",
               scanned.size(), ex.sessions.size(), ex.tokens.size());
  }
  return failures;
}

// The store's own consistency check, and its counters against the logs.
void CheckConsistency(LmdbStore& store, const Expected& ex, bool verbose, Failures& failures) {
  auto report = store.CheckConsistency();
  if (!report.ok()) {
    failures.Add(fmt::format("CheckConsistency: {} ({})", FromAbsl(report.status().message()),
                             ErrorCodeName(CodeOf(report.status()))));
    return;
  }
  for (const std::string& problem : report->problems) {
    failures.Add("CheckConsistency: " + problem);
  }
  auto page = store.ListSessions(0, 1);
  if (page.ok() && page->total != report->sessions) {
    failures.Add(fmt::format("CheckConsistency counted {} sessions, ListSessions {}",
                             report->sessions, page->total));
  }
  if (!ex.tokens.empty() && report->last_fencing_token < ex.tokens.back()) {
    failures.Add(fmt::format("the store's fencing counter {} is below the acknowledged token {}",
                             report->last_fencing_token, ex.tokens.back()));
  }
  if (!verbose) return;
  fmt::print("consistency check: {} sessions, {} idempotency keys, {} leases, revision {}, "
             "fencing token {}, {} problem(s)\n",
             report->sessions, report->idempotency_keys, report->leases,
             report->last_revision, report->last_fencing_token, report->problems.size());
}

// ---------------------------------------------------------------------------
// The driver.

struct Options {
  int rounds = 100;
  uint64_t seed = 0;
  bool seed_given = false;
  std::string dir;
  bool keep = false;
};

std::string SelfPath() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the writer's stdout
};

absl::StatusOr<Child> Spawn(const std::string& self, const std::string& uri, int round) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return InternalError(fmt::format("pipe: {}", strerror(errno)));
  const std::string round_text = std::to_string(round);
  const pid_t pid = ::fork();
  if (pid < 0) return InternalError(fmt::format("fork: {}", strerror(errno)));
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);  // dup2 clears CLOEXEC on the copy
    char* argv[] = {const_cast<char*>(self.c_str()), const_cast<char*>("writer"),
                    const_cast<char*>(uri.c_str()), const_cast<char*>(round_text.c_str()),
                    nullptr};
    ::execv(self.c_str(), argv);
    std::_Exit(127);
  }
  ::close(fds[1]);
  return Child{pid, fds[0]};
}

// Reads what is available (waiting at most timeout_ms) into `buffer`, moving
// complete lines to `lines`. False at end of file.
bool ReadSome(int fd, int timeout_ms, std::string& buffer, std::vector<std::string>& lines) {
  pollfd p{fd, POLLIN, 0};
  const int ready = ::poll(&p, 1, timeout_ms);
  if (ready <= 0) return true;
  char chunk[4096];
  const ssize_t n = ::read(fd, chunk, sizeof chunk);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  buffer.append(chunk, static_cast<size_t>(n));
  size_t nl;
  while ((nl = buffer.find('\n')) != std::string::npos) {
    lines.push_back(buffer.substr(0, nl));
    buffer.erase(0, nl + 1);
  }
  return true;
}

enum class Ending { kKilledWriting, kKilledEarly, kExited };

struct RoundOutcome {
  RoundLog log;
  Ending ending = Ending::kKilledWriting;
};

// Runs one writer on `uri`. early: kill `delay_us` after the spawn, wherever
// the writer is (start-up included); otherwise wait until it is ready (store
// open, lease taken) and kill it `delay_us` later. An error when the writer
// ends by itself with a failure or never becomes ready.
absl::StatusOr<RoundOutcome> RunRound(const std::string& self, const std::string& uri, int round,
                                      bool early, int delay_us) {
  using Clock = std::chrono::steady_clock;
  XG2G_ASSIGN_OR_RETURN(const Child child, Spawn(self, uri, round));
  RoundOutcome outcome;
  outcome.log.round = round;
  std::vector<std::string>& lines = outcome.log.lines;
  std::string buffer;
  bool open = true;
  bool never_ready = false;
  Clock::time_point kill_at = Clock::now() + std::chrono::microseconds(delay_us);
  if (!early) {
    const auto give_up = Clock::now() + std::chrono::milliseconds(kReadyTimeoutMs);
    auto is_ready = [&] { return std::find(lines.begin(), lines.end(), "ready") != lines.end(); };
    while (open && !is_ready() && Clock::now() < give_up) {
      open = ReadSome(child.out, 10, buffer, lines);
    }
    never_ready = !is_ready();
    kill_at = Clock::now() + std::chrono::microseconds(delay_us);
  }
  // Keep reading while the writer writes, so it never blocks on a full pipe.
  while (open && !never_ready) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - Clock::now()).count();
    if (left <= 0) break;
    open = ReadSome(child.out, static_cast<int>(left), buffer, lines);
  }
  ::kill(child.pid, SIGKILL);
  const auto drain_until = Clock::now() + std::chrono::milliseconds(kDrainTimeoutMs);
  while (open && Clock::now() < drain_until) open = ReadSome(child.out, 100, buffer, lines);
  ::close(child.out);
  int status = 0;
  while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  // A partial last line (none is expected) is not an acknowledgement.
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    return InternalError(fmt::format("round {}: the writer failed by itself (exit {})", round,
                                     WEXITSTATUS(status)));
  }
  if (never_ready) {
    return InternalError(fmt::format("round {}: the writer did not open the store and take the "
                                     "lease within {} ms",
                                     round, kReadyTimeoutMs));
  }
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
    outcome.ending = early ? Ending::kKilledEarly : Ending::kKilledWriting;
  } else if (WIFEXITED(status)) {
    outcome.ending = Ending::kExited;
  } else {
    return InternalError(fmt::format("round {}: the writer ended with status {:#x}", round,
                                     status));
  }
  return outcome;
}

// Every check of one store directory against the writers' logs. Self-tests:
// the doctored logs that must fail.
void VerifyStore(const std::string& dir, const std::vector<RoundLog>& logs, bool self_tests,
                 bool verbose, std::string_view label, Failures& failures) {
  Failures found;
  auto expected = ReadLogs(logs);
  if (!expected.ok()) {
    failures.Add(fmt::format("{}: {}", label, FromAbsl(expected.status().message())));
    return;
  }
  if (verbose) {
    fmt::print("acknowledged: {} puts, {} updates, {} deletes, {} lease grants\n",
               expected->acked_puts, expected->acked_updates, expected->acked_deletes,
               expected->tokens.size());
  }
  if (self_tests && expected->acked_puts < kMinAckedPuts) {
    found.Add(fmt::format("only {} acknowledged puts in {} rounds: too few to prove anything",
                          expected->acked_puts, logs.size()));
  }
  WalkLmdbFile(dir, verbose, found);
  {
    // The class itself, not OpenStore: its own consistency check is wanted.
    auto store = LmdbStore::Open(dir);
    if (!store.ok()) {
      found.Add(fmt::format("reopening the store: {} ({})", FromAbsl(store.status().message()),
                            ErrorCodeName(CodeOf(store.status()))));
    } else {
      for (auto& f : CheckStore(**store, *expected, !verbose).items) found.Add(std::move(f));
      CheckConsistency(**store, *expected, verbose, found);
      if (self_tests) {
        Expected missing = *expected;
        missing.sessions["r999-never-written"].acked = Shape::kPut;
        if (CheckStore(**store, missing, /*quiet=*/true).empty()) {
          found.Add("self-test: an acknowledged put that never happened went unnoticed");
        }
        Expected stale = *expected;
        for (auto& [id, e] : stale.sessions) {
          if (e.acked == Shape::kPut && !e.in_flight) {
            e.acked = Shape::kUpdated;  // the store holds the put: must be noticed
            break;
          }
        }
        if (CheckStore(**store, stale, /*quiet=*/true).empty()) {
          found.Add("self-test: a record without its acknowledged update went unnoticed");
        }
        Expected backwards = *expected;
        const uint64_t last = backwards.tokens.empty() ? 0 : backwards.tokens.back();
        backwards.tokens.push_back(last);
        backwards.tokens.push_back(last);
        if (CheckStore(**store, backwards, /*quiet=*/true).empty()) {
          found.Add("self-test: a fencing token that did not increase went unnoticed");
        }
      }
    }
  }
  for (auto& f : found.items) failures.Add(fmt::format("{}: {}", label, f));
}

int RunDriver(const Options& opt) {
  const std::string self = SelfPath();
  if (self.empty()) {
    fmt::print(stderr, "cannot find this program's path in /proc/self/exe\n");
    return 2;
  }
  std::string root = opt.dir;
  if (root.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        fmt::format("{}/xg2g-lmdb-durability-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp");
    if (::mkdtemp(tmpl.data()) == nullptr) {
      fmt::print(stderr, "mkdtemp {}: {}\n", tmpl, strerror(errno));
      return 2;
    }
    root = tmpl;
  }
  const uint64_t seed = opt.seed_given ? opt.seed : std::random_device{}();
  fmt::print("directory {}  rounds {}  seed {} (rerun with --seed {})\n", root, opt.rounds, seed,
             seed);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> write_us(5'000, 50'000);
  std::uniform_int_distribution<int> early_us(0, kEarlyKillMaxUs);
  std::uniform_int_distribution<int> one_in(1, kEarlyKillOneIn);
  Failures failures;
  auto give_up = [&](const absl::Status& status) {
    fmt::print(stderr, "FAILED: {}; stores kept under {} (seed {})\n",
               FromAbsl(status.message()), root, seed);
    return 1;
  };

  // 1. Crashes while a store is being created: each fresh directory gets a
  // writer killed at a random point of its start-up, then one that must open
  // what it left and write.
  for (int k = 0; k < kFreshStores; ++k) {
    const std::string dir = fmt::format("{}/fresh-{}", root, k);
    std::vector<RoundLog> logs;
    auto first = RunRound(self, "lmdb:" + dir, 0, /*early=*/true, early_us(rng));
    if (!first.ok()) return give_up(first.status());
    logs.push_back(std::move(first->log));
    auto second = RunRound(self, "lmdb:" + dir, 1, /*early=*/false, write_us(rng) / 10);
    if (!second.ok()) return give_up(second.status());
    logs.push_back(std::move(second->log));
    VerifyStore(dir, logs, /*self_tests=*/false, /*verbose=*/false,
                fmt::format("fresh store {}", k), failures);
  }
  fmt::print("{} fresh stores: killed during creation, reopened, written, checked\n",
             kFreshStores);

  // 2. One store, killed again and again.
  const std::string dir = root + "/store";
  std::vector<RoundLog> logs;
  int killed_writing = 0, killed_early = 0, exited = 0;
  for (int round = 0; round < opt.rounds; ++round) {
    const bool early = one_in(rng) == 1;
    auto outcome = RunRound(self, "lmdb:" + dir, round, early,
                            early ? early_us(rng) : write_us(rng));
    if (!outcome.ok()) return give_up(outcome.status());
    switch (outcome->ending) {
      case Ending::kKilledWriting:
        ++killed_writing;
        break;
      case Ending::kKilledEarly:
        ++killed_early;
        break;
      case Ending::kExited:
        ++exited;
        break;
    }
    logs.push_back(std::move(outcome->log));
  }
  fmt::print("rounds: {} killed while writing, {} killed at a random point of start-up, {} "
             "ended by themselves\n",
             killed_writing, killed_early, exited);
  VerifyStore(dir, logs, /*self_tests=*/true, /*verbose=*/true, "store", failures);

  if (!failures.empty()) {
    fmt::print(stderr, "FAILED: {} problem(s); stores kept under {} (seed {})\n",
               failures.items.size(), root, seed);
    const size_t shown = std::min<size_t>(failures.items.size(), 30);
    for (size_t i = 0; i < shown; ++i) fmt::print(stderr, "  {}\n", failures.items[i]);
    return 1;
  }
  fmt::print("OK: every acknowledged write survived {} kills intact\n",
             killed_writing + killed_early + 2 * kFreshStores);
  if (opt.dir.empty() && !opt.keep) {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
  return 0;
}

int Usage() {
  fmt::print(stderr,
             "usage: lmdb_durability_test [--rounds N] [--seed S] [--dir DIR] [--keep]\n"
             "       lmdb_durability_test writer URI ROUND\n");
  return 2;
}

}  // namespace
}  // namespace xg2g

int main(int argc, char** argv) {
  using namespace xg2g;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "writer") {
    if (args.size() != 3) return Usage();
    return RunWriter(args[1], std::atoi(std::string(args[2]).c_str()));
  }
  Options opt;
  for (size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      return i + 1 < args.size() ? std::string(args[++i]) : std::string();
    };
    if (args[i] == "--rounds") {
      opt.rounds = std::atoi(value().c_str());
      if (opt.rounds <= 0 || opt.rounds > 100'000) return Usage();
    } else if (args[i] == "--seed") {
      const std::string v = value();
      if (v.empty()) return Usage();
      opt.seed = std::strtoull(v.c_str(), nullptr, 10);
      opt.seed_given = true;
    } else if (args[i] == "--dir") {
      opt.dir = value();
      if (opt.dir.empty()) return Usage();
    } else if (args[i] == "--keep") {
      opt.keep = true;
    } else {
      return Usage();
    }
  }
  return RunDriver(opt);
}

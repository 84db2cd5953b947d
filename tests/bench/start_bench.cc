// Durable starts per second on the LMDB store with many clients at once, the
// way a gateway sees them: each client starts a session (session and
// idempotency key, service lease, tuner lease, the STARTING record: four
// durable writes) and stops it again (three more), over as many tuner slots
// as clients, with group commit on and off, beside raw LMDB durable puts one
// and 100 per transaction, all in the same run. A start is counted with its
// stop: the rate is of whole start+stop cycles.
//
// The engine takes the first free tuner slot, so starts alone cannot run for
// long: the slots fill. The start-only rows therefore make the writes of a
// start through the store, each start with its own lease key as if every
// start had a tuner of its own: the session and its idempotency key (one
// call), the tuner lease, and the STARTING record (three durable writes).
//
// Usage: start_bench [--dir DIR] [--clients N] [--starts N] [--repeat N]
//   --dir      where the stores go (default: a new directory under $TMPDIR
//              or /tmp, removed afterwards; put it on the disk the store
//              will live on: fsync is what is measured)
//   --clients  threads starting at once (64)
//   --starts   starts per configuration and run (6400)
//   --repeat   runs per configuration, the fastest kept (3)
// Never pass/fail: prints numbers and ratios; exits non-zero only when a
// call fails.
#include <lmdb.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "absl/status/status.h"
#include "lib/common/status.h"
#include "lib/engine/engine.h"
#include "lib/store/lmdb_store.h"
#include "lib/store/store.h"
#include "tests/bench/bench_record.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string dir;
  int clients = 64;
  int starts = 6400;
  int repeat = 3;
};

[[noreturn]] void Die(std::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "start_bench: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               status.ToString().c_str());
  std::exit(1);
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Runs `per_client(client, index)` `total` times spread over `clients`
// threads; returns calls per second.
template <typename Fn>
double Spread(int clients, int total, Fn per_client) {
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = next.fetch_add(1); i < total; i = next.fetch_add(1)) per_client(c, i);
    });
  }
  for (std::thread& t : threads) t.join();
  return total / Seconds(start);
}

// Start+stop cycles through an engine on lmdb:DIR, each start for its own
// service and with an idempotency key as the HTTP API would pass; one tuner
// slot per client, the first free one taken as always.
struct StartRun {
  double per_second = 0;
  xg2g::LmdbCommitStats commits;
};

std::unique_ptr<xg2g::Store> OpenLmdb(const std::string& dir, bool group_commit) {
  auto opened = xg2g::OpenStore(
      fmt::format("lmdb:{}?group_commit={}", dir, group_commit ? "on" : "off"));
  if (!opened.ok()) Die("open store", opened.status());
  return std::move(*opened);
}

xg2g::LmdbCommitStats CommitsOf(xg2g::Store& store) {
  auto* lmdb = dynamic_cast<xg2g::LmdbStore*>(&store);
  return lmdb != nullptr ? lmdb->CommitStats() : xg2g::LmdbCommitStats{};
}

StartRun Starts(const Options& opt, const std::string& dir, bool group_commit) {
  std::unique_ptr<xg2g::Store> store = OpenLmdb(dir, group_commit);
  xg2g::EngineOptions options;
  options.background = false;
  options.owner_id = "bench";
  options.tuner_slots.clear();
  for (int slot = 0; slot < opt.clients; ++slot) options.tuner_slots.push_back(slot);
  auto created = xg2g::Engine::Create(options, store.get(), nullptr, nullptr, nullptr);
  if (!created.ok()) Die("engine", created.status());
  std::unique_ptr<xg2g::Engine> engine = std::move(*created);
  static std::atomic<int> run{0};
  const int this_run = run.fetch_add(1);
  const double rate = Spread(opt.clients, opt.starts, [&](int, int i) {
    xg2g::StartRequest request;
    request.service_ref = fmt::format("1:0:19:{:X}:{:X}:1:C00000:0:0:0:", this_run + 1, i + 1);
    request.principal = "bench";
    request.idempotency_key = fmt::format("r{}-{}", this_run, i);
    auto started = engine->Start(request);
    if (!started.ok()) Die("start", started.status());
    auto stopped = engine->Stop(started->session_id);
    if (!stopped.ok()) Die("stop", stopped.status());
  });
  return StartRun{rate, CommitsOf(*store)};
}

// Starts alone through the store on lmdb:DIR (see the top of the file).
StartRun StoreStarts(const Options& opt, const std::string& dir, bool group_commit) {
  std::unique_ptr<xg2g::Store> store = OpenLmdb(dir, group_commit);
  constexpr int64_t kTtlMs = 30'000;
  const double rate = Spread(opt.clients, opt.starts, [&](int, int i) {
    const std::string id = fmt::format("s{:08}", i);
    xg2g::SessionRecord record = xg2g::bench::BenchRecord(id);
    record.state = xg2g::SessionState::kNew;
    auto stored = store->PutSessionWithIdempotency(record, fmt::format("bench/k{}", i), "fp", kTtlMs);
    if (!stored.ok()) Die("store the session", stored.status());
    auto lease = store->AcquireLease(fmt::format("tuner:{}", i), id, kTtlMs);
    if (!lease.ok()) Die("take the lease", lease.status());
    auto starting = store->UpdateSession(id, [&](xg2g::SessionRecord& r) {
      r.state = xg2g::SessionState::kStarting;
      r.context_data["tuner_slot"] = std::to_string(i);
      r.context_data["fencing_token"] = std::to_string(lease->fencing_token);
      return absl::OkStatus();
    });
    if (!starting.ok()) Die("record STARTING", starting.status());
  });
  return StartRun{rate, CommitsOf(*store)};
}

// Raw LMDB durable puts of a 547-byte value from the same number of threads:
// `batch` puts per write transaction.
double RawPuts(const Options& opt, const std::string& dir, int batch) {
  std::filesystem::create_directories(dir);
  MDB_env* env = nullptr;
  if (mdb_env_create(&env) != 0 || mdb_env_set_mapsize(env, size_t{1} << 30) != 0 ||
      mdb_env_open(env, dir.c_str(), 0, 0600) != 0) {
    Die("raw lmdb", xg2g::InternalError(dir));
  }
  MDB_dbi dbi = 0;
  MDB_txn* open_txn = nullptr;
  if (mdb_txn_begin(env, nullptr, 0, &open_txn) != 0 ||
      mdb_dbi_open(open_txn, nullptr, 0, &dbi) != 0 || mdb_txn_commit(open_txn) != 0) {
    Die("raw lmdb", xg2g::InternalError(dir));
  }
  const std::string value(547, 'v');
  const int total = opt.starts * 7;  // a start and its stop write seven records
  const int transactions = (total + batch - 1) / batch;
  const double rate = Spread(opt.clients, transactions, [&](int, int t) {
    MDB_txn* txn = nullptr;
    if (mdb_txn_begin(env, nullptr, 0, &txn) != 0) Die("raw begin", xg2g::InternalError(dir));
    for (int k = 0; k < batch; ++k) {
      const std::string key = fmt::format("k{:08}-{:03}", t, k);
      MDB_val kv{key.size(), const_cast<char*>(key.data())};
      MDB_val vv{value.size(), const_cast<char*>(value.data())};
      if (mdb_put(txn, dbi, &kv, &vv, 0) != 0) Die("raw put", xg2g::InternalError(dir));
    }
    if (mdb_txn_commit(txn) != 0) Die("raw commit", xg2g::InternalError(dir));
  });
  mdb_env_close(env);
  return rate * batch;  // records per second
}

int Usage() {
  std::fprintf(stderr,
               "usage: start_bench [--dir DIR] [--clients N] [--starts N] [--repeat N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const bool has_value = i + 1 < args.size();
    auto number = [&](int& out, int low, int high) {
      if (!has_value) return false;
      out = std::atoi(std::string(args[++i]).c_str());
      return out >= low && out <= high;
    };
    if (args[i] == "--dir" && has_value) {
      opt.dir = std::string(args[++i]);
    } else if (args[i] == "--clients") {
      if (!number(opt.clients, 1, 1024)) return Usage();
    } else if (args[i] == "--starts") {
      if (!number(opt.starts, 100, 1'000'000)) return Usage();
    } else if (args[i] == "--repeat") {
      if (!number(opt.repeat, 1, 20)) return Usage();
    } else {
      return Usage();
    }
  }
  bool own_dir = false;
  if (opt.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/xg2g-start-bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return Usage();
    opt.dir = pattern;
    own_dir = true;
  }

  fmt::print("durable starts on the LMDB store, {} clients at once, {} starts per run, best of {}\n",
             opt.clients, opt.starts, opt.repeat);
  fmt::print("dir {}\n", opt.dir);
  double best_on = 0, best_off = 0, raw_one = 0, raw_batched = 0;
  double store_on = 0, store_off = 0;
  xg2g::LmdbCommitStats commits, store_commits;
  for (int r = 0; r < opt.repeat; ++r) {
    // Each side right after the other, so that load on the machine hits both.
    const std::string base = fmt::format("{}/run{}", opt.dir, r);
    const StartRun on = Starts(opt, base + "-grouped", true);
    if (on.per_second > best_on) {
      best_on = on.per_second;
      commits = on.commits;
    }
    best_off = std::max(best_off, Starts(opt, base + "-single", false).per_second);
    const StartRun alone = StoreStarts(opt, base + "-alone-grouped", true);
    if (alone.per_second > store_on) {
      store_on = alone.per_second;
      store_commits = alone.commits;
    }
    store_off = std::max(store_off, StoreStarts(opt, base + "-alone-single", false).per_second);
    raw_one = std::max(raw_one, RawPuts(opt, base + "-raw1", 1));
    raw_batched = std::max(raw_batched, RawPuts(opt, base + "-raw100", 100));
  }
  fmt::print("{}\n", std::string(72, '-'));
  fmt::print("{:<44} {:>12}\n", "", "per second");
  fmt::print("{:<44} {:>12.0f}\n", "starts (+stops), group commit on (default)", best_on);
  fmt::print("{:<44} {:>12.0f}\n", "starts (+stops), group commit off", best_off);
  fmt::print("{:<44} {:>12.0f}\n", "starts alone (store), group commit on", store_on);
  fmt::print("{:<44} {:>12.0f}\n", "starts alone (store), group commit off", store_off);
  fmt::print("{:<44} {:>12.0f}\n", "raw durable puts, 1 per transaction", raw_one);
  fmt::print("{:<44} {:>12.0f}\n", "raw durable puts, 100 per transaction", raw_batched);
  fmt::print("{}\n", std::string(72, '-'));
  auto per_sync = [](std::string_view what, const xg2g::LmdbCommitStats& stats) {
    if (stats.groups == 0) return;
    fmt::print("group commit, {}: {} writes in {} transactions ({:.1f} per fsync)\n", what,
               stats.writes, stats.groups, static_cast<double>(stats.writes) / stats.groups);
  };
  per_sync("start+stop cycles", commits);
  per_sync("starts alone", store_commits);
  fmt::print("group commit on / off: cycles {:.2f}x, starts alone {:.2f}x\n",
             best_off > 0 ? best_on / best_off : 0.0, store_off > 0 ? store_on / store_off : 0.0);
  fmt::print("starts alone: {:.0f} durable writes/s (three per start), {:.2f} of raw puts at 100 "
             "per transaction\n",
             3 * store_on, raw_batched > 0 ? 3 * store_on / raw_batched : 0.0);
  fmt::print("target (issue 9): >= 5000 durable starts/s at 64 clients: starts alone {:.0f} ({}); "
             "start+stop cycles {:.0f}\n",
             store_on, store_on >= 5000 ? "met" : "MISSED", best_on);
  if (own_dir) std::filesystem::remove_all(opt.dir);
  return 0;
}

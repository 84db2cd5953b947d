// The soak: the engine and the v3 HTTP handler in-process, on the memory
// store and on an LMDB store in a temporary directory at the same time, with
// lifetimes of a second or two, driven for --seconds from a few threads:
//
//   workers (allow-listed addresses) cycle over their own service refs:
//     start with a fresh Idempotency-Key (202), replay it (202, same session,
//     "replay":true), more starts for the busy service (409 LEASE_BUSY
//     naming the session), the key with another request (422), bad bodies
//     (400), a bad and a missing token (401), a read-only token (403), a read
//     of the session (200), a replay of an earlier cycle's key (202, same
//     session), a stop of an unknown session (404); then either stop (202,
//     twice) or leave the session to the idle timeout and the sweeper;
//   a flood thread per store sends from ever new client addresses (directly
//     and through a trusted proxy's X-Forwarded-For) until each is refused
//     with 429, so that the rate-limit table would grow without its bound;
//   a sampler reads, every second, the resident memory (/proc/self/statm)
//     and, per store, the rate-limit table, the idempotency keys, the
//     sessions, the leases and the engine's active sessions, and checks each
//     against its bound, derived from the configuration below.
//
// Every answer is checked against what its step must get; a mismatch, a
// bound exceeded or a session that outlives its deadlines fails the run.
// The resident-memory slope after warm-up (least squares over the samples
// after the first --warmup fraction) is printed, with that of its anonymous
// part; the latter fails the run only above --max-rss-slope KiB/min (a gross
// leak, not noise; the rest is mostly LMDB's mapped file), only in runs of 100 s
// or more (shorter ones are all warm-up), and never under a sanitizer (whose
// allocator keeps freed memory in quarantine).
//
// Usage: soak [--seconds S] [--max-cycles N] [--stores memory,lmdb]
//             [--warmup F] [--max-rss-slope KIB_PER_MIN] [--flood-rate N]
//             [--verbose]
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "lib/engine/engine.h"
#include "lib/engine/simulated_pipeline.h"
#include "lib/http/handler.h"
#include "lib/observe/audit.h"
#include "lib/store/lmdb_store.h"
#include "lib/store/memory_store.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define XG2G_SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define XG2G_SOAK_SANITIZED 1
#endif
#endif
#ifndef XG2G_SOAK_SANITIZED
#define XG2G_SOAK_SANITIZED 0
#endif

namespace {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

constexpr std::string_view kWriterToken = "soak-writer-token-0123456789abcdef";
constexpr std::string_view kReaderToken = "soak-reader-token-0123456789abcdef";
constexpr std::string_view kBadToken = "soak-unknown-token-0123456789abcdef";
// Workers send from here (allow-listed: never rate limited); the flood's
// proxy sends from the trusted range.
constexpr std::string_view kAllowList = "10.0.0.0/8";
constexpr std::string_view kTrustedProxies = "192.0.2.0/24";

// ---------------------------------------------------------------------------
// The configuration. Every bound the sampler checks is derived from it.

struct SoakConfig {
  // Engine lifetimes: every session ends and is deleted within
  // SessionLifetimeMs() of its creation.
  int64_t lease_ttl_ms = 3000;
  int64_t heartbeat_ms = 500;
  int64_t start_deadline_ms = 2000;
  int64_t stop_deadline_ms = 2000;
  int64_t idle_timeout_ms = 1000;
  int64_t retention_ms = 1000;
  int64_t idempotency_ttl_ms = 2000;
  int64_t sweep_interval_ms = 100;
  // Simulated pipeline: start -> ready, stop -> stopped.
  int64_t ready_delay_ms = 10;
  int64_t stop_delay_ms = 10;
  // Rate limit (per client address) and the table's bound.
  double rate = 2;
  int64_t burst = 3;
  size_t max_clients = 2048;
  // Load.
  int workers = 2;               // per store
  int services_per_worker = 24;  // one tuner slot each
  int recent_keys = 16;          // a worker replays keys of its last cycles
  int busy_starts = 6;           // second starts per cycle (each a FAILED session and a key)
  // How late the sweeper and the sampler may run on a loaded machine: added
  // to every time window a bound is computed over.
  int64_t grace_ms = 2000;

  int slots() const { return workers * services_per_worker; }
  // Creation to deletion, worst case: NEW/STARTING until the start deadline,
  // READY until the idle timeout, STOPPING until the stop deadline, then
  // retention; each step seen by a sweep up to one interval late.
  int64_t SessionLifetimeMs() const {
    return start_deadline_ms + idle_timeout_ms + stop_deadline_ms + retention_ms +
           4 * sweep_interval_ms;
  }
};

xg2g::EngineOptions EngineOptionsOf(const SoakConfig& c, std::string_view name) {
  xg2g::EngineOptions o;
  o.tuner_slots.clear();
  for (int slot = 0; slot < c.slots(); ++slot) o.tuner_slots.push_back(slot);
  o.owner_id = fmt::format("soak-{}", name);
  o.lease_ttl_ms = c.lease_ttl_ms;
  o.heartbeat_ms = c.heartbeat_ms;
  o.start_deadline_ms = c.start_deadline_ms;
  o.stop_deadline_ms = c.stop_deadline_ms;
  o.idle_timeout_ms = c.idle_timeout_ms;
  o.retention_ms = c.retention_ms;
  o.idempotency_ttl_ms = c.idempotency_ttl_ms;
  o.sweep_interval_ms = c.sweep_interval_ms;
  return o;
}

// ---------------------------------------------------------------------------
// Failure reporting: the first few messages are kept and every thread stops.

std::atomic<bool> g_stop{false};
std::atomic<uint64_t> g_failures{0};
std::mutex g_fail_mu;
std::vector<std::string> g_fail_messages;  // guarded by g_fail_mu

void Fail(std::string message) {
  g_failures.fetch_add(1);
  g_stop.store(true);
  std::lock_guard<std::mutex> lock(g_fail_mu);
  if (g_fail_messages.size() < 20) g_fail_messages.push_back(std::move(message));
}

// ---------------------------------------------------------------------------
// Counts per 100 ms since the start, for "how many were created in the last
// W ms" (rounded outwards: an upper bound).

class Timeline {
 public:
  explicit Timeline(TimePoint origin, int64_t max_ms)
      : origin_(origin), buckets_(static_cast<size_t>(max_ms / kBucketMs + 2)) {}

  void Add(TimePoint at) {
    buckets_[Index(MsSince(at))].fetch_add(1, std::memory_order_relaxed);
  }
  // Events stamped in [now - window_ms, now], whole buckets.
  uint64_t InWindow(TimePoint now, int64_t window_ms) const {
    const int64_t end = MsSince(now);
    uint64_t total = 0;
    for (size_t i = Index(end - window_ms); i <= Index(end); ++i) {
      total += buckets_[i].load(std::memory_order_relaxed);
    }
    return total;
  }
  uint64_t Total() const {
    uint64_t total = 0;
    for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
    return total;
  }

 private:
  static constexpr int64_t kBucketMs = 100;
  int64_t MsSince(TimePoint t) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - origin_).count();
  }
  size_t Index(int64_t ms) const {
    const int64_t i = std::clamp<int64_t>(ms / kBucketMs, 0,
                                          static_cast<int64_t>(buckets_.size()) - 1);
    return static_cast<size_t>(i);
  }
  TimePoint origin_;
  std::vector<std::atomic<uint64_t>> buckets_;
};

// A size over time (resident memory, a file).
struct RssSample {
  double seconds;
  double kib;
};

// ---------------------------------------------------------------------------
// One engine + handler on one store.

struct Peak {
  uint64_t value = 0;
  uint64_t bound_then = 0;  // the bound when the peak was seen
  void See(uint64_t v, uint64_t bound) {
    if (v >= value) {
      value = v;
      bound_then = bound;
    }
  }
};

struct World {
  std::string name;
  const SoakConfig* config = nullptr;
  std::filesystem::path dir;  // LMDB only
  std::unique_ptr<xg2g::Store> store;
  xg2g::MemoryStore* memory = nullptr;
  xg2g::LmdbStore* lmdb = nullptr;
  std::shared_ptr<xg2g::SimulatedPipeline> pipeline;
  std::unique_ptr<xg2g::Engine> engine;
  std::unique_ptr<xg2g::HttpHandler> handler;
  std::atomic<uint64_t> audit_bytes{0};

  // Stamped when the answer that created them arrived.
  std::unique_ptr<Timeline> sessions_created;
  std::unique_ptr<Timeline> keys_created;
  // The most idempotency keys alive at once (an upper bound, from the
  // stamps): the stores drop expired keys once a table doubles.
  std::atomic<uint64_t> live_keys_peak{0};

  std::atomic<uint64_t> cycles{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> flood_clients{0};
  std::atomic<uint64_t> expired_by_sweeper{0};
  std::atomic<uint64_t> lease_release_waits{0};  // a start met a finished session's lease
  std::atomic<uint64_t> late_answers{0};         // tolerated because the machine was slow
  std::array<std::atomic<uint64_t>, 600> by_status{};

  // How the sessions the workers started ended ("STATE/REASON" -> count), as
  // read back before a service is used again.
  std::mutex ends_mu;
  std::map<std::string, uint64_t> ends;  // guarded by ends_mu

  Peak sessions, keys, clients, leases, active;  // sampler thread only
  std::vector<RssSample> lmdb_file;               // KiB of the data file; sampler only
  uint64_t lmdb_used_peak_kib = 0;
};

std::string_view JsonString(std::string_view body, std::string_view name) {
  const std::string needle = fmt::format("\"{}\":\"", name);
  const size_t at = body.find(needle);
  if (at == std::string_view::npos) return {};
  const size_t begin = at + needle.size();
  const size_t end = body.find('"', begin);
  if (end == std::string_view::npos) return {};
  return body.substr(begin, end - begin);
}

bool IsTerminal(std::string_view state) {
  return state == "STOPPED" || state == "FAILED" || state == "CANCELLED";
}

struct Call {
  std::string_view method = "POST";
  std::string_view target = "/api/v3/intents";
  std::string_view body;
  std::string_view token;          // empty: none
  std::string_view peer = "10.0.0.1";
  std::string_view forwarded_for;  // empty: none
  std::string_view idempotency_key;
};

xg2g::HttpResponse Send(World& w, const Call& call) {
  std::string authorization;
  xg2g::HttpHeader headers[5];
  size_t n = 0;
  headers[n++] = {"Content-Type", "application/json"};
  if (!call.token.empty()) {
    authorization = fmt::format("Bearer {}", call.token);
    headers[n++] = {"Authorization", authorization};
  }
  if (!call.forwarded_for.empty()) headers[n++] = {"X-Forwarded-For", call.forwarded_for};
  if (!call.idempotency_key.empty()) headers[n++] = {"Idempotency-Key", call.idempotency_key};
  xg2g::HttpRequest request;
  request.method = call.method;
  request.target = call.target;
  request.headers = std::span<const xg2g::HttpHeader>(headers, n);
  request.body = call.body;
  request.peer = call.peer;
  xg2g::HttpResponse response = w.handler->Handle(request);
  w.requests.fetch_add(1, std::memory_order_relaxed);
  w.by_status[static_cast<size_t>(std::clamp(response.status, 0, 599))].fetch_add(
      1, std::memory_order_relaxed);
  return response;
}

// True when `r` is `status` with error code `code` (empty: any); else fails
// the run naming the step.
bool Expect(const World& w, std::string_view step, const xg2g::HttpResponse& r, int status,
            std::string_view code = {}) {
  if (r.status == status && (code.empty() || JsonString(r.body, "code") == code)) return true;
  Fail(fmt::format("[{}] {}: expected {} {}, got {}: {}", w.name, step, status, code, r.status,
                   r.body.substr(0, 300)));
  return false;
}

std::string StartBody(std::string_view service) {
  return fmt::format(R"({{"type":"stream.start","serviceRef":"{}"}})", service);
}
std::string StopBody(std::string_view id) {
  return fmt::format(R"({{"type":"stream.stop","sessionId":"{}"}})", id);
}

int64_t MsBetween(TimePoint a, TimePoint b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

// ---------------------------------------------------------------------------
// A worker: its own service refs, so that every answer is predictable.

class Worker {
 public:
  Worker(World& w, int index, std::atomic<int64_t>& cycles_left)
      : w_(w), c_(*w.config), index_(index), cycles_left_(cycles_left), rng_(index * 7919 + 17) {
    peer_ = fmt::format("10.0.{}.{}", w.name == "memory" ? 1 : 2, index + 1);
    for (int i = 0; i < c_.services_per_worker; ++i) {
      services_.push_back(Service{fmt::format("1:0:19:{:X}:{:X}:1:C00000:0:0:0:", index + 1, i + 1),
                                  {}, false, {}});
    }
  }

  void Run() {
    size_t next = 0;
    size_t busy_in_a_row = 0;
    while (!g_stop.load()) {
      Service& service = services_[next];
      next = (next + 1) % services_.size();
      if (!IsFree(service)) {
        // Its session is still ending (stop, idle timeout). When none is
        // free, rejections meanwhile.
        if (++busy_in_a_row >= services_.size()) {
          busy_in_a_row = 0;
          Rejections(service.ref);
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        continue;
      }
      busy_in_a_row = 0;
      if (cycles_left_.fetch_sub(1) <= 0) return;
      Cycle(service);
      w_.cycles.fetch_add(1, std::memory_order_relaxed);
    }
  }

 private:
  struct Service {
    std::string ref;
    std::string session;  // the last session started for it
    bool left_to_expire = false;
    TimePoint started;
  };
  struct RecentKey {
    std::string key;
    std::string service;
    std::string session;
    TimePoint sent;
  };

  std::string NewKey() { return fmt::format("soak-{}-{}-{}", w_.name, index_, ++key_counter_); }

  Call Base() const {
    Call call;
    call.peer = peer_;
    call.token = kWriterToken;
    return call;
  }

  void CountSession(TimePoint at) { w_.sessions_created->Add(at); }
  void CountKey(TimePoint at) { w_.keys_created->Add(at); }

  // Whether the service's last session has ended; fails the run when it
  // outlives its deadlines.
  bool IsFree(const Service& service) {
    if (service.session.empty()) return true;
    const TimePoint now = SteadyClock::now();
    // A stopped session ends within a few ms; one left to expire not before
    // its idle timeout: no need to ask before.
    if (service.left_to_expire && MsBetween(service.started, now) < c_.idle_timeout_ms) return false;
    Call get = Base();
    get.method = "GET";
    get.token = kReaderToken;
    get.body = {};
    const std::string target = "/api/v3/sessions/" + service.session;
    get.target = target;
    const xg2g::HttpResponse r = Send(w_, get);
    // 404: ended and already deleted after retention.
    if (r.status != 404 && !Expect(w_, "read the last session of a service", r, 200)) return false;
    const std::string_view state = JsonString(r.body, "state");
    if (r.status == 404 || IsTerminal(state)) {
      if (service.left_to_expire) {
        w_.expired_by_sweeper.fetch_add(1, std::memory_order_relaxed);
      }
      const std::string end = r.status == 404 ? std::string("deleted")
                                              : fmt::format("{}/{}", state,
                                                            JsonString(r.body, "reason"));
      std::lock_guard<std::mutex> lock(w_.ends_mu);
      ++w_.ends[end];
      return true;
    }
    const int64_t age = MsBetween(service.started, now);
    if (age > c_.SessionLifetimeMs() + c_.grace_ms) {
      Fail(fmt::format("[{}] session {} is still {} {} ms after its start (deadlines allow {} ms)",
                       w_.name, service.session, state, age, c_.SessionLifetimeMs()));
    }
    return false;
  }

  // A start for a free service, with a fresh key: 202. A 409 naming the
  // service's previous (ended) session means its lease is being released
  // right now: try again shortly.
  std::optional<std::pair<std::string, std::string>> StartFresh(Service& service,
                                                                const std::string& body) {
    const TimePoint first = SteadyClock::now();
    while (!g_stop.load()) {
      const std::string key = NewKey();
      Call start = Base();
      start.body = body;
      start.idempotency_key = key;
      const xg2g::HttpResponse r = Send(w_, start);
      const TimePoint at = SteadyClock::now();
      if (r.status == 202) {
        CountSession(at);
        CountKey(at);
        if (JsonString(r.body, "sessionId").empty() ||
            r.body.find("\"replay\":false") == std::string::npos) {
          Fail(fmt::format("[{}] start: 202 without a fresh session: {}", w_.name, r.body));
          return std::nullopt;
        }
        return std::make_pair(std::string(JsonString(r.body, "sessionId")), key);
      }
      // The service's last session has ended, but its leases are released
      // one after the other: for a moment the service lease is still held
      // (409 naming that session) or, once it is released, the tuner lease
      // is ("no free tuner": there is one slot per service, so any other
      // holder is on its way out too).
      const std::string_view holder = JsonString(r.body, "sessionId");
      if (r.status == 409 && JsonString(r.body, "code") == "LEASE_BUSY" &&
          !service.session.empty() && (holder == service.session || holder.empty()) &&
          MsBetween(first, at) < c_.stop_deadline_ms + c_.grace_ms) {
        CountSession(at);  // the refused start is recorded as a FAILED session
        CountKey(at);
        w_.lease_release_waits.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      Expect(w_, "start a free service", r, 202);
      return std::nullopt;
    }
    return std::nullopt;
  }

  void Cycle(Service& service) {
    const std::string body = StartBody(service.ref);
    const TimePoint sent = SteadyClock::now();
    auto started = StartFresh(service, body);
    if (!started) return;
    const auto& [id, key] = *started;
    service.session = id;
    service.started = sent;
    service.left_to_expire = false;

    // The replay: the same session while the key lives (it was written after
    // `sent`, so it certainly lives until sent + ttl).
    {
      Call replay = Base();
      replay.body = body;
      replay.idempotency_key = key;
      const xg2g::HttpResponse r = Send(w_, replay);
      if (!CheckReplay(r, id, sent, service)) return;
    }

    // Second starts for the busy service: 409 naming the session (each
    // refused start is kept as a FAILED session under its own key).
    for (int attempt = 0; attempt < c_.busy_starts; ++attempt) {
      Call second = Base();
      second.body = body;
      const std::string key2 = NewKey();
      second.idempotency_key = key2;
      const xg2g::HttpResponse r = Send(w_, second);
      const TimePoint at = SteadyClock::now();
      if (r.status == 409 && JsonString(r.body, "code") == "LEASE_BUSY") {
        CountSession(at);
        CountKey(at);
        if (JsonString(r.body, "sessionId") != id) {
          Fail(fmt::format("[{}] busy start names {} instead of the active session {}: {}",
                           w_.name, JsonString(r.body, "sessionId"), id, r.body));
          return;
        }
      } else if (r.status == 202) {
        // Only if the first session has ended already (a very slow machine).
        CountSession(at);
        CountKey(at);
        if (!FirstHasEnded(id)) {
          Fail(fmt::format("[{}] a second start for the active service {} got 202: {}", w_.name,
                           service.ref, r.body));
          return;
        }
        w_.late_answers.fetch_add(1, std::memory_order_relaxed);
        service.session = std::string(JsonString(r.body, "sessionId"));
        service.started = sent;
        service.left_to_expire = true;
        return;
      } else {
        Expect(w_, "a second start for a busy service", r, 409, "LEASE_BUSY");
        return;
      }
    }

    // The key with another request: 422.
    {
      Call other = Base();
      const std::string other_body = StartBody(service.ref + "1");
      other.body = other_body;
      other.idempotency_key = key;
      const xg2g::HttpResponse r = Send(w_, other);
      if (MsBetween(sent, SteadyClock::now()) < c_.idempotency_ttl_ms) {
        if (!Expect(w_, "a key with another request", r, 422, "IDEMPOTENCY_KEY_REUSED")) return;
      } else if (r.status == 202 || r.status == 409) {
        // The key had expired: that was a start of its own.
        w_.late_answers.fetch_add(1, std::memory_order_relaxed);
        const TimePoint at = SteadyClock::now();
        CountSession(at);
        CountKey(at);
        if (r.status == 202) StopNow(std::string(JsonString(r.body, "sessionId")));
      }
    }

    Rejections(service.ref);

    // A read of the session.
    {
      const xg2g::HttpResponse r = ReadSession(id);
      if (!Expect(w_, "read a session", r, 200)) return;
      if (JsonString(r.body, "sessionId") != id) {
        Fail(fmt::format("[{}] read {}: got {}", w_.name, id, r.body.substr(0, 300)));
        return;
      }
    }

    // A replay of an earlier cycle's key.
    if (!recent_.empty()) {
      const RecentKey& old = recent_[std::uniform_int_distribution<size_t>(0, recent_.size() - 1)(rng_)];
      if (MsBetween(old.sent, SteadyClock::now()) < c_.idempotency_ttl_ms / 2) {
        Call replay = Base();
        const std::string old_body = StartBody(old.service);
        replay.body = old_body;
        replay.idempotency_key = old.key;
        const xg2g::HttpResponse r = Send(w_, replay);
        if (MsBetween(old.sent, SteadyClock::now()) < c_.idempotency_ttl_ms) {
          if (!Expect(w_, "replay an earlier cycle's key", r, 202)) return;
          if (JsonString(r.body, "sessionId") != old.session ||
              r.body.find("\"replay\":true") == std::string::npos) {
            Fail(fmt::format("[{}] replay of {} (session {}) got {}", w_.name, old.key, old.session,
                             r.body));
            return;
          }
        } else {
          LateReplay(r);
        }
      }
    }
    recent_.push_back(RecentKey{key, service.ref, id, sent});
    while (recent_.size() > static_cast<size_t>(c_.recent_keys)) recent_.pop_front();

    // A stop of a session that does not exist: 404.
    {
      Call stop = Base();
      const std::string stop_body = StopBody(fmt::format("soak{}x{}", index_, key_counter_));
      stop.body = stop_body;
      if (!Expect(w_, "stop an unknown session", Send(w_, stop), 404, "SESSION_NOT_FOUND")) return;
    }

    // Stop (two cycles in three), or leave it to the idle timeout.
    if (++cycle_ % 3 == 0) {
      service.left_to_expire = true;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      Call stop = Base();
      const std::string stop_body = StopBody(id);
      stop.body = stop_body;
      const xg2g::HttpResponse r = Send(w_, stop);
      if (!Expect(w_, i == 0 ? "stop" : "a second stop", r, 202)) return;
      const std::string_view state = JsonString(r.body, "state");
      // The first stop records STOPPING (or STOPPED); a session the sweeper
      // or a failure ended first keeps its terminal state.
      if (state != "STOPPING" && !IsTerminal(state)) {
        Fail(fmt::format("[{}] stop of {} answered state {}", w_.name, id, state));
        return;
      }
    }
  }

  bool CheckReplay(const xg2g::HttpResponse& r, const std::string& id, TimePoint sent,
                   Service& service) {
    if (MsBetween(sent, SteadyClock::now()) >= c_.idempotency_ttl_ms) {
      LateReplay(r);
      if (r.status == 202 && JsonString(r.body, "sessionId") != id) {
        service.session = std::string(JsonString(r.body, "sessionId"));
        service.left_to_expire = true;
      }
      return false;
    }
    if (!Expect(w_, "replay", r, 202)) return false;
    if (JsonString(r.body, "sessionId") != id || r.body.find("\"replay\":true") == std::string::npos) {
      Fail(fmt::format("[{}] replay of session {} got {}", w_.name, id, r.body));
      return false;
    }
    return true;
  }

  // A replay that arrived after its key's lifetime may have started anew.
  void LateReplay(const xg2g::HttpResponse& r) {
    w_.late_answers.fetch_add(1, std::memory_order_relaxed);
    if (r.body.find("\"replay\":false") != std::string::npos || r.status == 409) {
      const TimePoint at = SteadyClock::now();
      CountSession(at);
      CountKey(at);
    }
  }

  // GET /api/v3/sessions/{id} with the read-only token.
  xg2g::HttpResponse ReadSession(const std::string& id) {
    Call get = Base();
    get.method = "GET";
    get.token = kReaderToken;
    const std::string target = "/api/v3/sessions/" + id;
    get.target = target;
    return Send(w_, get);
  }

  bool FirstHasEnded(const std::string& id) {
    const xg2g::HttpResponse r = ReadSession(id);
    return r.status == 404 || IsTerminal(JsonString(r.body, "state"));
  }

  void StopNow(const std::string& id) {
    Call stop = Base();
    const std::string stop_body = StopBody(id);
    stop.body = stop_body;
    (void)Send(w_, stop);
  }

  // Refused before the store: 400, 401 (bad and missing token), 403.
  void Rejections(const std::string& service_ref) {
    const std::string body = StartBody(service_ref);
    {
      Call bad = Base();
      const std::string bad_body = fmt::format(
          R"({{"type":"stream.start","serviceRef":"{}","unknownField":1}})", service_ref);
      bad.body = bad_body;
      if (!Expect(w_, "a body with an unknown field", Send(w_, bad), 400, "INVALID_INPUT")) return;
      bad.body = R"({"type":"stream.start","serviceRef":)";
      if (!Expect(w_, "a truncated body", Send(w_, bad), 400, "INVALID_INPUT")) return;
    }
    {
      Call unauthorised = Base();
      unauthorised.body = body;
      unauthorised.token = kBadToken;
      if (!Expect(w_, "an unknown token", Send(w_, unauthorised), 401, "UNAUTHORIZED")) return;
      unauthorised.token = {};
      if (!Expect(w_, "no token", Send(w_, unauthorised), 401, "UNAUTHORIZED")) return;
    }
    {
      Call forbidden = Base();
      forbidden.body = body;
      forbidden.token = kReaderToken;
      Expect(w_, "a start with a read-only token", Send(w_, forbidden), 403, "FORBIDDEN");
    }
  }

  World& w_;
  const SoakConfig& c_;
  const int index_;
  std::atomic<int64_t>& cycles_left_;
  std::mt19937 rng_;
  std::string peer_;
  std::vector<Service> services_;
  std::deque<RecentKey> recent_;
  uint64_t key_counter_ = 0;
  uint64_t cycle_ = 0;
};

// ---------------------------------------------------------------------------
// The flood: ever new client addresses, each until it is refused with 429.

void Flood(World& w, double clients_per_second) {
  const SoakConfig& c = *w.config;
  const int world_tag = w.name == "memory" ? 1 : 2;
  const TimePoint begin = SteadyClock::now();
  uint64_t n = 0;
  while (!g_stop.load()) {
    ++n;
    // Pace: client n starts no earlier than n / clients_per_second.
    const auto due = begin + std::chrono::microseconds(
                                 static_cast<int64_t>(static_cast<double>(n) * 1e6 / clients_per_second));
    if (due > SteadyClock::now()) std::this_thread::sleep_until(due);
    const std::string ip = fmt::format("2001:db8:{:x}:{:x}::{:x}", world_tag, (n >> 16) & 0xffff,
                                       n & 0xffff);
    Call call;
    call.method = "GET";
    const std::string target = fmt::format("/api/v3/sessions/soakflood{}", n);
    call.target = target;
    std::string peer;
    if (n % 2 == 0) {
      call.peer = ip;
    } else {
      peer = fmt::format("192.0.2.{}", 1 + n % 200);  // a trusted proxy
      call.peer = peer;
      call.forwarded_for = ip;
    }
    // A fresh address has a full bucket: `burst` requests pass (the first
    // with a bad token: a 401 takes a token too), then 429 -- unless the
    // bucket refilled meanwhile, which the rate bounds.
    const TimePoint first = SteadyClock::now();
    int64_t sent = 0;
    bool limited = false;
    while (!g_stop.load()) {
      call.token = sent == 0 ? kBadToken : kReaderToken;
      const xg2g::HttpResponse r = Send(w, call);
      ++sent;
      if (r.status == 429) {
        const std::string* retry = r.Header("Retry-After");
        if (sent <= c.burst || retry == nullptr || std::atoi(retry->c_str()) < 1 ||
            r.Header("RateLimit") == nullptr || r.Header("RateLimit-Policy") == nullptr ||
            JsonString(r.body, "code") != "RATE_LIMIT_EXCEEDED") {
          Fail(fmt::format("[{}] flood client {}: request {} got a bad 429: {}", w.name, ip, sent,
                           r.body));
        }
        limited = true;
        break;
      }
      if (!Expect(w, "flood (within the burst)", r, sent == 1 ? 401 : 404)) break;
      const double refilled =
          c.rate * static_cast<double>(MsBetween(first, SteadyClock::now())) / 1000.0;
      if (static_cast<double>(sent) > static_cast<double>(c.burst) + std::ceil(refilled) + 1) {
        Fail(fmt::format("[{}] flood client {}: {} requests passed a bucket of {} at {}/s", w.name,
                         ip, sent, c.burst, c.rate));
        break;
      }
    }
    if (limited) w.flood_clients.fetch_add(1, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------
// Sampling.

uint64_t ResidentKiB() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

// The anonymous part of it (heap, stacks): what a leak grows. The rest is
// mapped files, here mostly the LMDB data file's pages.
uint64_t AnonymousKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::strtoull(line.c_str() + 8, nullptr, 10);
  }
  return 0;
}

// A value from the handler's /metrics (what an operator would scrape).
std::optional<double> Metric(World& w, std::string_view name) {
  Call call;
  call.method = "GET";
  call.target = "/metrics";
  call.peer = "127.0.0.1";
  const xg2g::HttpResponse r = Send(w, call);
  if (r.status != 200) return std::nullopt;
  const std::string line = fmt::format("\n{} ", name);
  const size_t at = r.body.find(line);
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(r.body.c_str() + at + line.size(), nullptr);
}

std::vector<RssSample> After(const std::vector<RssSample>& samples, double seconds) {
  std::vector<RssSample> out;
  for (const auto& s : samples) {
    if (s.seconds >= seconds) out.push_back(s);
  }
  return out;
}

// Checks every observable size of `w` against its bound at time `now`.
void SampleWorld(World& w, TimePoint now, bool verbose, double t) {
  const SoakConfig& c = *w.config;
  const uint64_t in_flight = static_cast<uint64_t>(c.workers);  // one request per worker

  // Rate-limit table: at most max_clients buckets.
  const std::optional<double> clients = Metric(w, "xg2g_v3_rate_limit_clients");
  if (!clients) {
    Fail(fmt::format("[{}] /metrics has no xg2g_v3_rate_limit_clients", w.name));
    return;
  }
  const uint64_t clients_now = static_cast<uint64_t>(*clients);
  w.clients.See(clients_now, c.max_clients);
  if (clients_now > c.max_clients) {
    Fail(fmt::format("[{}] rate-limit table holds {} clients, configured bound {}", w.name,
                     clients_now, c.max_clients));
  }

  // Sessions: each is deleted within its lifetime of the answer that
  // created it, so at most those created in that window (and one per worker
  // in flight) exist.
  auto page = w.store->ListSessions(0, 1);
  if (!page.ok()) {
    Fail(fmt::format("[{}] listing sessions: {}", w.name, page.status().ToString()));
    return;
  }
  const uint64_t sessions_now = page->total;
  const uint64_t sessions_bound =
      w.sessions_created->InWindow(now, c.SessionLifetimeMs() + c.grace_ms) + in_flight;
  w.sessions.See(sessions_now, sessions_bound);
  if (sessions_now > sessions_bound) {
    Fail(fmt::format("[{}] {} sessions in the store, but only {} were created within a "
                     "session's lifetime ({} ms + {} ms grace)",
                     w.name, sessions_now, sessions_bound, c.SessionLifetimeMs(), c.grace_ms));
  }

  // Idempotency keys: the live ones (created within the key TTL) and the
  // expired ones a table keeps until it doubles since its last clean-up:
  // at most max(floor, 2 x the most live keys) per table, where the memory
  // store has one table per shard and LMDB one.
  const uint64_t live_now =
      w.keys_created->InWindow(now, c.idempotency_ttl_ms + c.grace_ms) + in_flight;
  uint64_t live_peak = std::max(w.live_keys_peak.load(), live_now);
  w.live_keys_peak.store(live_peak);
  uint64_t keys_now = 0;
  uint64_t keys_bound = 0;
  if (w.memory != nullptr) {
    keys_now = w.memory->IdempotencyEntryCount();
    keys_bound = xg2g::MemoryStore::kShardCount * xg2g::MemoryStore::kMinSweepSize +
                 2 * live_peak + in_flight;
  } else {
    auto report = w.lmdb->CheckConsistency();
    if (!report.ok()) {
      Fail(fmt::format("[{}] LMDB check: {}", w.name, report.status().ToString()));
      return;
    }
    if (!report->problems.empty()) {
      Fail(fmt::format("[{}] LMDB check: {}", w.name, report->problems.front()));
    }
    keys_now = report->idempotency_keys;
    auto map = w.lmdb->MapInfo();
    if (!map.ok()) {
      Fail(fmt::format("[{}] LMDB map info: {}", w.name, map.status().ToString()));
      return;
    }
    w.lmdb_file.push_back(RssSample{t, static_cast<double>(map->file_bytes / 1024)});
    w.lmdb_used_peak_kib = std::max<uint64_t>(w.lmdb_used_peak_kib, map->used_bytes / 1024);
    // lmdb_store.cc sweeps once the key table reaches 1024 entries, then at
    // twice what a sweep left.
    constexpr uint64_t kLmdbSweepFloor = 1024;
    keys_bound = std::max(kLmdbSweepFloor, 2 * live_peak) + in_flight;
  }
  w.keys.See(keys_now, keys_bound);
  if (keys_now > keys_bound) {
    Fail(fmt::format("[{}] {} idempotency keys stored, bound {} (at most {} alive at once)",
                     w.name, keys_now, keys_bound, live_peak));
  }

  // Leases: a service lease per active service, a tuner lease per slot.
  auto leases = w.store->ListLeases();
  if (!leases.ok()) {
    Fail(fmt::format("[{}] listing leases: {}", w.name, leases.status().ToString()));
    return;
  }
  const uint64_t leases_bound = static_cast<uint64_t>(2 * c.slots());
  w.leases.See(leases->size(), leases_bound);
  if (leases->size() > leases_bound) {
    Fail(fmt::format("[{}] {} leases held, bound {} ({} services, {} tuner slots)", w.name,
                     leases->size(), leases_bound, c.slots(), c.slots()));
  }

  // The engine's local sessions: one per tuner slot at most.
  const uint64_t active = w.engine->Stats().active_sessions;
  w.active.See(active, static_cast<uint64_t>(c.slots()));
  if (active > static_cast<uint64_t>(c.slots())) {
    Fail(fmt::format("[{}] the engine drives {} sessions with {} tuner slots", w.name, active,
                     c.slots()));
  }

  if (verbose) {
    std::printf("  %6.1f s [%s] clients %llu/%zu sessions %llu/%llu keys %llu/%llu leases %zu "
                "active %llu\n",
                t, w.name.c_str(), static_cast<unsigned long long>(clients_now), c.max_clients,
                static_cast<unsigned long long>(sessions_now),
                static_cast<unsigned long long>(sessions_bound),
                static_cast<unsigned long long>(keys_now),
                static_cast<unsigned long long>(keys_bound), leases->size(),
                static_cast<unsigned long long>(active));
    if (!w.lmdb_file.empty()) std::printf("         lmdb file %.0f KiB\n", w.lmdb_file.back().kib);
  }
}

// Least-squares slope of kib over seconds, in KiB per minute.
double SlopeKiBPerMinute(const std::vector<RssSample>& samples) {
  if (samples.size() < 2) return 0;
  double mt = 0;
  double mk = 0;
  for (const auto& s : samples) {
    mt += s.seconds;
    mk += s.kib;
  }
  mt /= static_cast<double>(samples.size());
  mk /= static_cast<double>(samples.size());
  double num = 0;
  double den = 0;
  for (const auto& s : samples) {
    num += (s.seconds - mt) * (s.kib - mk);
    den += (s.seconds - mt) * (s.seconds - mt);
  }
  return den > 0 ? num / den * 60.0 : 0;
}

// ---------------------------------------------------------------------------

absl::Status Build(World& w, const SoakConfig& c, TimePoint origin, int64_t max_ms) {
  w.config = &c;
  w.sessions_created = std::make_unique<Timeline>(origin, max_ms);
  w.keys_created = std::make_unique<Timeline>(origin, max_ms);
  if (w.name == "memory") {
    auto store = std::make_unique<xg2g::MemoryStore>();
    w.memory = store.get();
    w.store = std::move(store);
  } else {
    std::error_code ec;
    const auto base = std::filesystem::temp_directory_path(ec);
    if (ec) return absl::InternalError("no temporary directory");
    std::string pattern = (base / "xg2g-soak-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    w.dir = pattern;
    xg2g::LmdbOptions options;
    options.sync = xg2g::LmdbSync::kNoSync;  // leaks and bounds, not durability, are tested
    auto store = xg2g::LmdbStore::Open((w.dir / "store").string(), options);
    if (!store.ok()) return store.status();
    w.lmdb = store->get();
    w.store = std::move(*store);
  }
  xg2g::SimulatedPipelineOptions pipeline_options;
  pipeline_options.ready_delay_ms = c.ready_delay_ms;
  pipeline_options.stop_delay_ms = c.stop_delay_ms;
  w.pipeline = std::make_shared<xg2g::SimulatedPipeline>(pipeline_options);
  auto audit = std::make_shared<xg2g::CallbackAuditSink>(
      [&w](std::string_view json) { w.audit_bytes.fetch_add(json.size(), std::memory_order_relaxed); });
  auto engine = xg2g::Engine::Create(EngineOptionsOf(c, w.name), w.store.get(), nullptr,
                                     w.pipeline, audit);
  if (!engine.ok()) return engine.status();
  w.engine = std::move(*engine);
  w.pipeline->Attach(w.engine.get());
  auto policy = xg2g::ParseHttpPolicy(
      fmt::format("{}=v3:write;{}=v3:read", kWriterToken, kReaderToken), false, c.rate, c.burst,
      kAllowList, kTrustedProxies, "");
  if (!policy.ok()) return policy.status();
  policy->rate_limit.max_clients = c.max_clients;
  xg2g::HttpHandlerOptions options;
  options.audit = audit;
  auto handler = xg2g::HttpHandler::Create(w.engine.get(), std::move(*policy), std::move(options));
  if (!handler.ok()) return handler.status();
  w.handler = std::move(*handler);
  return absl::OkStatus();
}

void Teardown(World& w) {
  w.handler.reset();
  w.engine.reset();
  w.pipeline.reset();
  w.store.reset();
  if (!w.dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(w.dir, ec);
  }
}

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: soak [--seconds S] [--max-cycles N] [--stores memory,lmdb] [--warmup F]\n"
               "            [--max-rss-slope KIB_PER_MIN] [--flood-rate CLIENTS_PER_S] [--verbose]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 120;
  int64_t max_cycles = 100'000'000;
  std::string stores = "memory,lmdb";
  double warmup = 0.2;
  // A leak of ~100 bytes per request at this soak's request rate grows
  // resident memory by several MiB per minute; allocator noise after
  // warm-up stays far below.
  double max_rss_slope = 8192;
  // Faster than the table can forget drained clients (max_clients per
  // burst / rate seconds), so that it fills and evicts.
  double flood_rate = 2000;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage();
      return argv[++i];
    };
    if (arg == "--seconds") {
      seconds = std::atof(value());
    } else if (arg == "--max-cycles") {
      max_cycles = std::atoll(value());
    } else if (arg == "--stores") {
      stores = value();
    } else if (arg == "--warmup") {
      warmup = std::atof(value());
    } else if (arg == "--max-rss-slope") {
      max_rss_slope = std::atof(value());
    } else if (arg == "--flood-rate") {
      flood_rate = std::atof(value());
    } else if (arg == "--verbose") {
      verbose = true;
    } else {
      Usage();
    }
  }
  if (!(seconds > 0) || max_cycles < 1 || !(warmup >= 0 && warmup < 1) || !(flood_rate > 0)) {
    Usage();
  }

  const SoakConfig config;
  const TimePoint origin = SteadyClock::now();
  const int64_t max_ms = static_cast<int64_t>(seconds * 1000) + 600'000;  // teardown margin

  std::vector<std::unique_ptr<World>> worlds;
  for (std::string_view name : {"memory", "lmdb"}) {
    if (stores.find(name) == std::string::npos) continue;
    auto w = std::make_unique<World>();
    w->name = std::string(name);
    if (absl::Status built = Build(*w, config, origin, max_ms); !built.ok()) {
      std::fprintf(stderr, "soak: setting up the %s world: %s\n", w->name.c_str(),
                   built.ToString().c_str());
      return 2;
    }
    worlds.push_back(std::move(w));
  }
  if (worlds.empty()) Usage();

  std::printf("soak: %.0f s on %s; %s build\n", seconds, stores.c_str(),
              XG2G_SOAK_SANITIZED ? "sanitizer" : "plain");
  std::printf("  lifetimes: key ttl %lld ms, idle %lld ms, retention %lld ms, lease ttl %lld ms, "
              "sweep %lld ms; a session lives at most %lld ms\n",
              static_cast<long long>(config.idempotency_ttl_ms),
              static_cast<long long>(config.idle_timeout_ms),
              static_cast<long long>(config.retention_ms),
              static_cast<long long>(config.lease_ttl_ms),
              static_cast<long long>(config.sweep_interval_ms),
              static_cast<long long>(config.SessionLifetimeMs()));
  std::printf("  rate limit %.0f/s burst %lld, table bound %zu clients; %d workers x %d services "
              "and one flood (%.0f new clients/s) per store\n",
              config.rate, static_cast<long long>(config.burst), config.max_clients, config.workers,
              config.services_per_worker, flood_rate);
  std::fflush(stdout);

  // Workers count down a shared budget of cycles: a bound on the run
  // besides time.
  std::atomic<int64_t> cycles_left{max_cycles};
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Worker>> workers;
  for (auto& w : worlds) {
    for (int i = 0; i < config.workers; ++i) {
      workers.push_back(std::make_unique<Worker>(*w, i, cycles_left));
    }
  }
  for (auto& worker : workers) threads.emplace_back([&worker] { worker->Run(); });
  for (auto& w : worlds) threads.emplace_back([&w, flood_rate] { Flood(*w, flood_rate); });

  std::vector<RssSample> rss;
  std::vector<RssSample> anon;
  const TimePoint end = origin + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  TimePoint next_sample = origin;
  // At least one sample, also when a worker failed at once.
  for (bool first = true; first || !g_stop.load(); first = false) {
    const TimePoint now = SteadyClock::now();
    const double t = std::chrono::duration<double>(now - origin).count();
    rss.push_back(RssSample{t, static_cast<double>(ResidentKiB())});
    anon.push_back(RssSample{t, static_cast<double>(AnonymousKiB())});
    for (auto& w : worlds) SampleWorld(*w, now, verbose, t);
    if (verbose) {
      std::printf("  %6.1f s rss %.0f KiB (anonymous %.0f KiB)\n", t, rss.back().kib,
                  anon.back().kib);
      std::fflush(stdout);
    }
    if (now >= end || cycles_left.load() <= 0) break;
    next_sample += std::chrono::seconds(1);
    std::this_thread::sleep_until(std::min(next_sample, end));
  }
  g_stop.store(true);
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - origin).count();

  // The report.
  const std::vector<RssSample> settled = After(rss, warmup * elapsed);
  const double slope = SlopeKiBPerMinute(settled);
  const double anon_slope = SlopeKiBPerMinute(After(anon, warmup * elapsed));
  double peak_rss = 0;
  for (const auto& s : rss) peak_rss = std::max(peak_rss, s.kib);
  double peak_anon = 0;
  for (const auto& s : anon) peak_anon = std::max(peak_anon, s.kib);
  std::printf("\nsoak: ran %.1f s\n", elapsed);
  for (auto& w : worlds) {
    const auto stats = w->engine->Stats();
    std::printf("[%s] %llu cycles, %llu requests (", w->name.c_str(),
                static_cast<unsigned long long>(w->cycles.load()),
                static_cast<unsigned long long>(w->requests.load()));
    bool first = true;
    for (size_t s = 0; s < w->by_status.size(); ++s) {
      if (const uint64_t n = w->by_status[s].load(); n > 0) {
        std::printf("%s%zu: %llu", first ? "" : ", ", s, static_cast<unsigned long long>(n));
        first = false;
      }
    }
    std::printf(")\n");
    std::printf("  sessions created %llu, keys created %llu, flood clients refused %llu, "
                "left to expire and ended by the sweeper %llu\n",
                static_cast<unsigned long long>(w->sessions_created->Total()),
                static_cast<unsigned long long>(w->keys_created->Total()),
                static_cast<unsigned long long>(w->flood_clients.load()),
                static_cast<unsigned long long>(w->expired_by_sweeper.load()));
    std::printf("  engine: %llu starts, %llu stops, %llu replays, %llu busy, %llu deadline "
                "expiries, %llu retention deletes, %llu lease losses, %llu store failures\n",
                static_cast<unsigned long long>(stats.start_intents),
                static_cast<unsigned long long>(stats.stop_intents),
                static_cast<unsigned long long>(stats.replays),
                static_cast<unsigned long long>(stats.busy),
                static_cast<unsigned long long>(stats.deadline_expiries),
                static_cast<unsigned long long>(stats.retention_deletes),
                static_cast<unsigned long long>(stats.lease_losses),
                static_cast<unsigned long long>(stats.store_failures));
    {
      std::lock_guard<std::mutex> lock(w->ends_mu);
      std::printf("  sessions ended as");
      for (const auto& [end, n] : w->ends) {
        std::printf(" %s %llu;", end.c_str(), static_cast<unsigned long long>(n));
      }
      std::printf("\n");
    }
    std::printf("  rate-limit evictions %.0f, lease-release waits %llu, late answers tolerated "
                "%llu, audit %llu bytes\n",
                Metric(*w, "xg2g_v3_rate_limit_evictions_total").value_or(-1),
                static_cast<unsigned long long>(w->lease_release_waits.load()),
                static_cast<unsigned long long>(w->late_answers.load()),
                static_cast<unsigned long long>(w->audit_bytes.load()));
    auto peak = [](const char* what, const Peak& p) {
      std::printf("  peak %-22s %8llu (bound then %llu)\n", what,
                  static_cast<unsigned long long>(p.value),
                  static_cast<unsigned long long>(p.bound_then));
    };
    peak("rate-limit clients", w->clients);
    peak("sessions in the store", w->sessions);
    peak("idempotency keys", w->keys);
    peak("leases", w->leases);
    peak("engine active sessions", w->active);
    if (!w->lmdb_file.empty()) {
      std::printf("  LMDB data file: first %.0f KiB, last %.0f KiB, slope after warm-up %+.1f "
                  "KiB/min; pages in use at most %llu KiB\n",
                  w->lmdb_file.front().kib, w->lmdb_file.back().kib,
                  SlopeKiBPerMinute(After(w->lmdb_file, warmup * elapsed)),
                  static_cast<unsigned long long>(w->lmdb_used_peak_kib));
    }
  }
  std::printf("rss: first %.0f KiB, last %.0f KiB, peak %.0f KiB; slope after %.0f%% warm-up: "
              "%+.1f KiB/min over %zu samples\n",
              rss.front().kib, rss.back().kib, peak_rss, warmup * 100, slope, settled.size());
  std::printf("  of which anonymous (heap, stacks; the rest is mostly LMDB's mapped file): "
              "first %.0f KiB, last %.0f KiB, peak %.0f KiB, slope %+.1f KiB/min\n",
              anon.front().kib, anon.back().kib, peak_anon, anon_slope);
  // A short run is all warm-up: the stores' key tables (up to
  // MemoryStore::kShardCount x kMinSweepSize expired keys before the first
  // clean-up) and LMDB's file fill for the first half minute or so.
  constexpr double kMinSecondsForSlopeVerdict = 100;
  // Judged on anonymous memory (heap, stacks): the rest of the resident set
  // is mostly LMDB's mapped data file, which grows in steps with no leak.
  if (!XG2G_SOAK_SANITIZED && elapsed >= kMinSecondsForSlopeVerdict && max_rss_slope > 0 &&
      anon_slope > max_rss_slope) {
    Fail(fmt::format("anonymous memory grows by {:.0f} KiB/min after warm-up (limit {:.0f}; "
                     "resident set {:+.0f} KiB/min)",
                     anon_slope, max_rss_slope, slope));
  }

  for (auto& w : worlds) Teardown(*w);
  workers.clear();

  if (g_failures.load() > 0) {
    std::lock_guard<std::mutex> lock(g_fail_mu);
    std::printf("\nsoak: FAILED (%llu failures)\n", static_cast<unsigned long long>(g_failures.load()));
    for (const auto& m : g_fail_messages) std::printf("  %s\n", m.c_str());
    return 1;
  }
  std::printf("soak: passed\n");
  return 0;
}

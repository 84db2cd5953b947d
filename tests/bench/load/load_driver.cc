// load_driver: an HTTP/1.1 keep-alive load client for the daemon benchmark
// (tests/bench/load/run). N connections, each with exactly one request in
// flight, on one epoll loop per thread; every request's latency is kept per
// route label and reported as JSON on stdout.
//
// Plans (--plan):
//   get      GET --path on every request (the fixed-answer baseline).
//   seed     POST stream.start for services PREFIX0, PREFIX1, ... (one each,
//            --max-requests of them); the session ids go to --out-ids.
//   mix      with probability --read-fraction a GET /api/v3/sessions/{id} of
//            an id from --ids, else a start of a fresh service followed, on
//            the same connection, by the stop of the session it created.
// --scan-connections K adds K connections that page through
// GET /api/v3/sessions?offset=O&limit=--scan-limit over and over; each pass
// over the whole listing is one "full scan" whose duration is reported too.
//
// Bounded by --seconds (measurement time after --warmup) and --max-requests.
// Exit codes: 0 ran (whatever the statuses), 1 a connection could not be made
// or failed outright, 2 bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 64;
  int threads = 1;
  double seconds = 10;
  double warmup = 0;
  uint64_t max_requests = 100'000'000;
  std::string plan = "get";
  std::string path = "/";
  std::string token;
  std::string ids_path;
  std::string out_ids_path;
  std::string prefix = "1:0:1:bench:";
  double read_fraction = 0.9;
  int scan_connections = 0;
  int scan_limit = 1000;
  int max_pairs = 1 << 30;
  uint64_t seed = 1;
};

// Route labels: fixed, so that results merge across threads by index.
enum Route { kGet, kRead, kStart, kStop, kScanPage, kRouteCount };
constexpr const char* kRouteNames[kRouteCount] = {
    "GET fixed", "GET /api/v3/sessions/{id}", "POST /api/v3/intents start",
    "POST /api/v3/intents stop", "GET /api/v3/sessions?limit (scan page)"};

struct RouteStats {
  std::vector<uint32_t> latency_us;  // one entry per measured request
  std::map<int, uint64_t> statuses;
};

struct Results {
  RouteStats routes[kRouteCount];
  std::vector<double> full_scan_ms;  // durations of complete passes over the listing
  uint64_t io_errors = 0;            // a request lost to a reset or early close
  uint64_t reconnects = 0;
  uint64_t parse_errors = 0;
  uint64_t connect_failures = 0;
  uint64_t unanswered = 0;  // requests still without an answer at the hard stop
  std::vector<std::string> new_ids;  // seed plan
  std::vector<std::string> sample_errors;

  void Merge(Results& other) {
    for (int r = 0; r < kRouteCount; ++r) {
      auto& mine = routes[r];
      auto& theirs = other.routes[r];
      mine.latency_us.insert(mine.latency_us.end(), theirs.latency_us.begin(),
                             theirs.latency_us.end());
      for (const auto& [status, n] : theirs.statuses) mine.statuses[status] += n;
    }
    full_scan_ms.insert(full_scan_ms.end(), other.full_scan_ms.begin(), other.full_scan_ms.end());
    io_errors += other.io_errors;
    reconnects += other.reconnects;
    parse_errors += other.parse_errors;
    connect_failures += other.connect_failures;
    unanswered += other.unanswered;
    new_ids.insert(new_ids.end(), other.new_ids.begin(), other.new_ids.end());
    for (auto& e : other.sample_errors) {
      if (sample_errors.size() < 10) sample_errors.push_back(std::move(e));
    }
  }
};

// One parsed response, or "need more bytes".
struct Response {
  int status = 0;
  std::string_view body;
  size_t consumed = 0;  // bytes of the buffer this response took
  bool close = false;   // Connection: close
};

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

enum class ParseResult { kNeedMore, kDone, kBad };

// Parses one response at the start of `in` (status line, headers,
// Content-Length or chunked body); the driver sends no HEAD. A chunked body
// is decoded into `scratch`.
ParseResult ParseResponse(std::string_view in, Response* out, std::string* scratch) {
  const size_t header_end = in.find("\r\n\r\n");
  if (header_end == std::string_view::npos) {
    return in.size() > 64 * 1024 ? ParseResult::kBad : ParseResult::kNeedMore;
  }
  std::string_view head = in.substr(0, header_end);
  const size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") return ParseResult::kBad;
  const size_t sp = status_line.find(' ');
  if (sp == std::string_view::npos || sp + 4 > status_line.size()) return ParseResult::kBad;
  int status = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    if (status_line[i] < '0' || status_line[i] > '9') return ParseResult::kBad;
    status = status * 10 + (status_line[i] - '0');
  }
  long long content_length = -1;
  bool chunked = false;
  bool close = status_line.substr(0, 8) == "HTTP/1.0";
  std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? "" : rest.substr(eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (IEquals(name, "content-length")) {
      content_length = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return ParseResult::kBad;
        content_length = content_length * 10 + (c - '0');
      }
    } else if (IEquals(name, "transfer-encoding")) {
      chunked = value.find("chunked") != std::string_view::npos;
    } else if (IEquals(name, "connection")) {
      close = IEquals(value, "close");
    }
  }
  const size_t body_start = header_end + 4;
  out->status = status;
  out->close = close;
  if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
    out->body = {};
    out->consumed = body_start;
    return ParseResult::kDone;
  }
  if (chunked) {
    scratch->clear();
    size_t pos = body_start;
    for (;;) {
      const size_t eol = in.find("\r\n", pos);
      if (eol == std::string_view::npos) return ParseResult::kNeedMore;
      size_t size = 0;
      for (size_t i = pos; i < eol; ++i) {
        const char c = in[i];
        if (c == ';') break;
        int digit = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
        if (digit < 0) return ParseResult::kBad;
        size = size * 16 + static_cast<size_t>(digit);
        if (size > (1u << 30)) return ParseResult::kBad;
      }
      pos = eol + 2;
      if (size == 0) {
        // Trailers (if any) end with an empty line.
        const size_t end = in.find("\r\n", pos);
        if (end == std::string_view::npos) return ParseResult::kNeedMore;
        if (end != pos) {
          const size_t trailers_end = in.find("\r\n\r\n", pos);
          if (trailers_end == std::string_view::npos) return ParseResult::kNeedMore;
          pos = trailers_end + 4;
        } else {
          pos = end + 2;
        }
        out->body = *scratch;
        out->consumed = pos;
        return ParseResult::kDone;
      }
      if (in.size() < pos + size + 2) return ParseResult::kNeedMore;
      scratch->append(in.substr(pos, size));
      pos += size + 2;
    }
  }
  if (content_length < 0) return ParseResult::kBad;  // the daemon and nginx always send one
  if (in.size() < body_start + static_cast<size_t>(content_length)) return ParseResult::kNeedMore;
  out->body = in.substr(body_start, static_cast<size_t>(content_length));
  out->consumed = body_start + static_cast<size_t>(content_length);
  return ParseResult::kDone;
}

// The string value of "key":"..." in a small JSON document; empty if absent.
std::string JsonString(std::string_view body, std::string_view key) {
  const std::string needle = fmt::format("\"{}\":\"", key);
  const size_t at = body.find(needle);
  if (at == std::string_view::npos) return "";
  const size_t start = at + needle.size();
  const size_t end = body.find('"', start);
  if (end == std::string_view::npos) return "";
  return std::string(body.substr(start, end - start));
}

long long JsonInt(std::string_view body, std::string_view key) {
  const std::string needle = fmt::format("\"{}\":", key);
  const size_t at = body.find(needle);
  if (at == std::string_view::npos) return -1;
  long long value = 0;
  size_t i = at + needle.size();
  if (i >= body.size() || body[i] < '0' || body[i] > '9') return -1;
  for (; i < body.size() && body[i] >= '0' && body[i] <= '9'; ++i) value = value * 10 + (body[i] - '0');
  return value;
}

struct Shared {
  const Options* options;
  std::vector<std::string> ids;
  std::atomic<uint64_t> issued{0};      // requests sent, all threads (bounded by max_requests)
  std::atomic<uint64_t> seed_next{0};   // seed plan: next service number
  std::atomic<uint64_t> churn_next{0};  // mix plan: next fresh service number
  std::atomic<int> pairs_open{0};       // mix plan: starts whose stop has not been answered
  Clock::time_point measure_from;       // end of warm-up
  Clock::time_point stop_at;            // no new request after this
  sockaddr_in addr{};
};

enum class Role { kLoad, kScan };

struct Connection {
  int fd = -1;
  Role role = Role::kLoad;
  std::string out;        // bytes still to write
  size_t out_pos = 0;
  std::string in;         // bytes read, not yet parsed
  Route route = kGet;     // of the request in flight
  bool in_flight = false;
  Clock::time_point sent;
  std::string pending_stop;  // mix plan: the session to stop next
  size_t scan_offset = 0;
  Clock::time_point scan_started;
  bool idle = false;      // finished: nothing more to send
  bool stop_owed = false;    // a start of this connection holds a pair slot
  bool closing_pair = false; // the request in flight is the pair's stop
  bool waiting = false;      // to send when a pair slot frees up
};

class Worker {
 public:
  Worker(Shared* shared, int index, int load_connections, int scan_connections)
      : shared_(shared), options_(*shared->options), rng_(options_.seed * 7919 + index),
        load_count_(load_connections), scan_count_(scan_connections) {}

  void Run() {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    conns_.resize(static_cast<size_t>(load_count_ + scan_count_));
    for (size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].role = static_cast<int>(i) < load_count_ ? Role::kLoad : Role::kScan;
      if (!Connect(conns_[i], i)) {
        ++results_.connect_failures;
        conns_[i].idle = true;
        continue;
      }
      SendNext(conns_[i]);
    }
    std::vector<epoll_event> events(256);
    const auto hard_stop = shared_->stop_at + std::chrono::seconds(30);
    while (true) {
      size_t busy = 0;
      for (const auto& c : conns_) busy += (c.in_flight || !c.idle) ? 1 : 0;
      if (busy == 0) break;
      const auto now = Clock::now();
      if (now >= hard_stop) break;  // answers that never come: stop waiting
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 100);
      for (int e = 0; e < n; ++e) {
        Connection& c = conns_[events[e].data.u64];
        if (events[e].events & EPOLLOUT) Flush(c);
        if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) Read(c);
      }
      // Connections waiting for a pair slot try again; past the deadline
      // the ones without a request close.
      const bool over = Clock::now() >= shared_->stop_at;
      for (auto& c : conns_) {
        if (c.waiting && !c.idle) {
          c.waiting = false;
          SendNext(c);
        }
        if (over && !c.in_flight && !c.idle && !c.waiting) Retire(c);
      }
    }
    for (auto& c : conns_) {
      if (c.in_flight) {
        ++results_.unanswered;
        Note(fmt::format("{} unanswered {} s after the end", kRouteNames[c.route],
                         std::chrono::duration_cast<std::chrono::seconds>(Clock::now() -
                                                                          shared_->stop_at)
                             .count()));
      }
      if (c.fd >= 0) close(c.fd);
      c.fd = -1;
    }
    close(epoll_);
  }

  Results& results() { return results_; }

 private:
  bool Connect(Connection& c, size_t index) {
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return false;
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // A blocking connect on loopback is immediate; non-blocking afterwards.
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&shared_->addr), sizeof shared_->addr) != 0) {
      Note(fmt::format("connect: {}", std::strerror(errno)));
      close(c.fd);
      c.fd = -1;
      return false;
    }
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = index;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
    c.in.clear();
    c.out.clear();
    c.out_pos = 0;
    return true;
  }

  void Note(std::string message) {
    if (results_.sample_errors.size() < 10) results_.sample_errors.push_back(std::move(message));
  }

  void Retire(Connection& c) {
    c.idle = true;
    if (c.fd >= 0) {
      epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
      c.fd = -1;
    }
  }

  std::string Request(std::string_view method, std::string_view target, std::string_view body) {
    std::string r = fmt::format("{} {} HTTP/1.1\r\nHost: {}:{}\r\n", method, target, options_.host,
                                options_.port);
    if (!options_.token.empty()) r += fmt::format("Authorization: Bearer {}\r\n", options_.token);
    if (!body.empty() || method == "POST") {
      r += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
    }
    r += "\r\n";
    r += body;
    return r;
  }

  // Chooses and sends the connection's next request, or retires it.
  void SendNext(Connection& c) {
    const auto now = Clock::now();
    // A stop owed by a start is sent whatever the deadline and budget: the
    // load itself leaves no session running.
    if (!c.pending_stop.empty()) {
      c.route = kStop;
      c.closing_pair = true;
      c.stop_owed = false;
      std::string request = Request(
          "POST", "/api/v3/intents",
          fmt::format(R"({{"type":"stream.stop","sessionId":"{}"}})", c.pending_stop));
      c.pending_stop.clear();
      Send(c, std::move(request));
      return;
    }
    if (c.stop_owed) {  // the start failed: there is nothing to stop, the pair is over
      c.stop_owed = false;
      shared_->pairs_open.fetch_sub(1, std::memory_order_relaxed);
    }
    if (now >= shared_->stop_at ||
        shared_->issued.load(std::memory_order_relaxed) >= options_.max_requests) {
      Retire(c);
      return;
    }
    if (c.role == Role::kScan) {
      if (c.scan_offset == 0) c.scan_started = now;
      c.route = kScanPage;
      Count();
      Send(c, Request("GET",
                      fmt::format("/api/v3/sessions?offset={}&limit={}", c.scan_offset,
                                  options_.scan_limit),
                      ""));
    } else if (options_.plan == "get") {
      c.route = kGet;
      Count();
      Send(c, Request("GET", options_.path, ""));
    } else if (options_.plan == "seed") {
      const uint64_t n = shared_->seed_next.fetch_add(1, std::memory_order_relaxed);
      if (n >= options_.max_requests) {
        Retire(c);
        return;
      }
      c.route = kStart;
      Count();
      Send(c, Request("POST", "/api/v3/intents",
                      fmt::format(R"({{"type":"stream.start","serviceRef":"{}{}"}})", options_.prefix, n)));
    } else if (uniform_(rng_) >= options_.read_fraction && TakePair()) {
      const uint64_t n = shared_->churn_next.fetch_add(1, std::memory_order_relaxed);
      c.stop_owed = true;
      c.route = kStart;
      Count();
      Send(c, Request("POST", "/api/v3/intents",
                      fmt::format(R"({{"type":"stream.start","serviceRef":"{}{}"}})", options_.prefix, n)));
    } else if (!shared_->ids.empty()) {
      // A read; also when --max-pairs pairs are open already (tuner slots
      // are a bounded resource: more would answer 409 LEASE_BUSY).
      std::uniform_int_distribution<size_t> pick(0, shared_->ids.size() - 1);
      c.route = kRead;
      Count();
      Send(c, Request("GET", "/api/v3/sessions/" + shared_->ids[pick(rng_)], ""));
    } else {
      c.waiting = true;  // nothing to read (a fill): wait for a pair slot
    }
  }

  void Count() { shared_->issued.fetch_add(1, std::memory_order_relaxed); }

  void Send(Connection& c, std::string request) {
    c.out = std::move(request);
    c.out_pos = 0;
    c.in_flight = true;
    c.sent = Clock::now();
    Flush(c);
  }

  bool TakePair() {
    if (shared_->pairs_open.fetch_add(1, std::memory_order_relaxed) < options_.max_pairs) return true;
    shared_->pairs_open.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }

  void Flush(Connection& c) {
    while (c.fd >= 0 && c.out_pos < c.out.size()) {
      const ssize_t n = send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_pos += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      Fail(c, fmt::format("send: {}", std::strerror(errno)));
      return;
    }
    if (c.fd < 0) return;
    epoll_event ev{};
    ev.events = EPOLLIN | (c.out_pos < c.out.size() ? EPOLLOUT : 0u);
    ev.data.u64 = static_cast<uint64_t>(&c - conns_.data());
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  // The request in flight is lost: count it, reconnect and go on.
  void Fail(Connection& c, std::string why) {
    if (c.in_flight) ++results_.io_errors;
    Note(std::move(why));
    c.in_flight = false;
    c.pending_stop.clear();
    if (c.stop_owed || c.closing_pair) shared_->pairs_open.fetch_sub(1, std::memory_order_relaxed);
    c.stop_owed = c.closing_pair = false;
    Reconnect(c, Clock::now() < shared_->stop_at);
  }

  // Closes the connection and, when `go_on`, opens it again and sends its
  // next request; otherwise (or when it cannot connect) it stays idle.
  void Reconnect(Connection& c, bool go_on) {
    epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
    if (!go_on) {
      c.idle = true;
      return;
    }
    ++results_.reconnects;
    if (!Connect(c, static_cast<size_t>(&c - conns_.data()))) {
      ++results_.connect_failures;
      c.idle = true;
      return;
    }
    SendNext(c);
  }

  void Read(Connection& c) {
    char buf[16384];
    bool eof = false;
    while (c.fd >= 0) {
      const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof buf) break;
        continue;
      }
      if (n == 0) {
        eof = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Fail(c, fmt::format("recv: {}", std::strerror(errno)));
      return;
    }
    if (c.fd < 0) return;
    while (c.in_flight && !c.in.empty()) {
      Response response;
      const ParseResult parsed = ParseResponse(c.in, &response, &scratch_);
      if (parsed == ParseResult::kNeedMore) break;
      if (parsed == ParseResult::kBad) {
        ++results_.parse_errors;
        Fail(c, "unparsable response: " + c.in.substr(0, 80));
        return;
      }
      Complete(c, response);
      c.in.erase(0, response.consumed);
      if (response.close) {
        eof = true;
        break;
      }
      if (c.fd < 0) return;
      SendNext(c);
      if (c.fd < 0) return;
    }
    if (eof && c.fd >= 0) {
      if (c.in_flight) {
        Fail(c, "connection closed with a request in flight");
      } else if (!c.idle) {
        // Closed between requests (Connection: close): reconnect.
        Reconnect(c, Clock::now() < shared_->stop_at || !c.pending_stop.empty());
      }
    }
  }

  void Complete(Connection& c, const Response& r) {
    const auto now = Clock::now();
    c.in_flight = false;
    const bool measured = c.sent >= shared_->measure_from;
    RouteStats& stats = results_.routes[c.route];
    if (measured) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent).count();
      stats.latency_us.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
      stats.statuses[r.status]++;
    }
    if (r.status < 200 || r.status >= 300) {
      Note(fmt::format("{} answered {}: {}", kRouteNames[c.route], r.status,
                       std::string(r.body.substr(0, 160))));
    }
    if (c.closing_pair) {
      c.closing_pair = false;
      shared_->pairs_open.fetch_sub(1, std::memory_order_relaxed);
    }
    if (c.route == kStart && r.status == 202) {
      std::string id = JsonString(r.body, "sessionId");
      if (options_.plan == "mix") c.pending_stop = id;
      if (!id.empty() && !options_.out_ids_path.empty()) results_.new_ids.push_back(std::move(id));
    } else if (c.route == kScanPage) {
      const long long total = JsonInt(r.body, "total");
      const long long count = JsonInt(r.body, "count");
      c.scan_offset += static_cast<size_t>(std::max<long long>(count, 0));
      if (r.status != 200 || count <= 0 || total < 0 ||
          c.scan_offset >= static_cast<size_t>(total)) {
        if (r.status == 200) {  // a pass begun in the warm-up counts too
          results_.full_scan_ms.push_back(
              std::chrono::duration<double, std::milli>(now - c.scan_started).count());
        }
        c.scan_offset = 0;
      }
    }
  }

  Shared* shared_;
  const Options& options_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  int load_count_, scan_count_;
  int epoll_ = -1;
  std::vector<Connection> conns_;
  std::string scratch_;
  Results results_;
};

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)] / 1000.0;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
}

void Usage(FILE* to) {
  std::fprintf(to,
               "usage: load_driver --port P [--host 127.0.0.1] [--connections N] [--threads T]\n"
               "         [--seconds S] [--warmup S] [--max-requests M] [--seed N]\n"
               "         [--plan get|seed|mix] [--path /x] [--token T] [--ids FILE]\n"
               "         [--out-ids FILE] [--prefix SERVICE_PREFIX] [--read-fraction F]\n"
               "         [--scan-connections K] [--scan-limit L] [--max-pairs K]\n"
               "Prints one JSON document: per route count, req/s, p50/p99/p99.9 (ms) and\n"
               "statuses; io errors, reconnects and full-scan durations.\n");
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help") {
      Usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    try {
      if (arg == "--host") o->host = v;
      else if (arg == "--port") o->port = std::stoi(v);
      else if (arg == "--connections") o->connections = std::stoi(v);
      else if (arg == "--threads") o->threads = std::stoi(v);
      else if (arg == "--seconds") o->seconds = std::stod(v);
      else if (arg == "--warmup") o->warmup = std::stod(v);
      else if (arg == "--max-requests") o->max_requests = std::stoull(v);
      else if (arg == "--plan") o->plan = v;
      else if (arg == "--path") o->path = v;
      else if (arg == "--token") o->token = v;
      else if (arg == "--ids") o->ids_path = v;
      else if (arg == "--out-ids") o->out_ids_path = v;
      else if (arg == "--prefix") o->prefix = v;
      else if (arg == "--read-fraction") o->read_fraction = std::stod(v);
      else if (arg == "--scan-connections") o->scan_connections = std::stoi(v);
      else if (arg == "--scan-limit") o->scan_limit = std::stoi(v);
      else if (arg == "--seed") o->seed = std::stoull(v);
      else if (arg == "--max-pairs") o->max_pairs = std::stoi(v);
      else return false;
    } catch (const std::exception&) {
      return false;
    }
  }
  return o->port > 0 && o->connections >= 0 && o->threads >= 1 && o->seconds > 0 &&
         o->warmup >= 0 && o->scan_connections >= 0 && o->scan_limit >= 1 && o->max_pairs >= 1 &&
         (o->plan == "get" || o->plan == "seed" || o->plan == "mix") &&
         o->connections + o->scan_connections > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) {
    Usage(stderr);
    return 2;
  }
  Shared shared;
  shared.options = &options;
  shared.addr.sin_family = AF_INET;
  shared.addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (inet_pton(AF_INET, options.host.c_str(), &shared.addr.sin_addr) != 1) {
    std::fprintf(stderr, "load_driver: --host must be an IPv4 address\n");
    return 2;
  }
  if (!options.ids_path.empty()) {
    std::ifstream in(options.ids_path);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) shared.ids.push_back(line);
    }
    if (shared.ids.empty()) {
      std::fprintf(stderr, "load_driver: no ids in %s\n", options.ids_path.c_str());
      return 2;
    }
  }
  if (options.plan == "mix" && shared.ids.empty() && options.read_fraction > 0) {
    std::fprintf(stderr, "load_driver: the mix plan reads sessions: give --ids\n");
    return 2;
  }

  const auto begin = Clock::now();
  shared.measure_from = begin + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(options.warmup));
  shared.stop_at = shared.measure_from + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(options.seconds));
  const int threads = std::min(options.threads, std::max(1, options.connections));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    const int load = options.connections / threads + (t < options.connections % threads ? 1 : 0);
    const int scan = options.scan_connections / threads + (t < options.scan_connections % threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(&shared, t, load, scan));
  }
  std::vector<std::thread> running;
  for (auto& w : workers) running.emplace_back([&w] { w->Run(); });
  for (auto& t : running) t.join();
  const auto end = Clock::now();

  Results all;
  for (auto& w : workers) all.Merge(w->results());
  // Requests are counted from the end of the warm-up to the last answer.
  const double measured_s =
      std::max(1e-9, std::chrono::duration<double>(std::min(end, shared.stop_at) - shared.measure_from).count());

  if (!options.out_ids_path.empty()) {
    std::ofstream out(options.out_ids_path);
    for (const auto& id : all.new_ids) out << id << '\n';
  }

  std::string json = fmt::format("{{\"plan\":\"{}\",\"connections\":{},\"scan_connections\":{},"
                                 "\"threads\":{},\"seconds\":{:.3f},\"routes\":{{",
                                 options.plan, options.connections, options.scan_connections,
                                 threads, measured_s);
  bool first = true;
  for (int r = 0; r < kRouteCount; ++r) {
    RouteStats& s = all.routes[r];
    if (s.latency_us.empty()) continue;
    std::sort(s.latency_us.begin(), s.latency_us.end());
    uint64_t non2xx = 0;
    std::string statuses;
    for (const auto& [status, n] : s.statuses) {
      if (status < 200 || status >= 300) non2xx += n;
      statuses += fmt::format("{}\"{}\":{}", statuses.empty() ? "" : ",", status, n);
    }
    double sum = 0;
    for (uint32_t v : s.latency_us) sum += v;
    json += fmt::format(
        "{}\"{}\":{{\"count\":{},\"rps\":{:.1f},\"mean_ms\":{:.3f},\"p50_ms\":{:.3f},"
        "\"p99_ms\":{:.3f},\"p999_ms\":{:.3f},\"max_ms\":{:.3f},\"non_2xx\":{},"
        "\"statuses\":{{{}}}}}",
        first ? "" : ",", kRouteNames[r], s.latency_us.size(),
        static_cast<double>(s.latency_us.size()) / measured_s,
        sum / static_cast<double>(s.latency_us.size()) / 1000.0, Percentile(s.latency_us, 0.50),
        Percentile(s.latency_us, 0.99), Percentile(s.latency_us, 0.999),
        s.latency_us.back() / 1000.0, non2xx, statuses);
    first = false;
  }
  std::string scans;
  for (double ms : all.full_scan_ms) scans += fmt::format("{}{:.1f}", scans.empty() ? "" : ",", ms);
  std::string samples;
  for (const auto& e : all.sample_errors) {
    samples += fmt::format("{}\"{}\"", samples.empty() ? "" : ",", JsonEscape(e));
  }
  json += fmt::format("}},\"full_scans_ms\":[{}],\"io_errors\":{},\"reconnects\":{},"
                      "\"parse_errors\":{},\"connect_failures\":{},\"unanswered\":{},\"new_ids\":{},"
                      "\"sample_errors\":[{}]}}",
                      scans, all.io_errors, all.reconnects, all.parse_errors,
                      all.connect_failures, all.unanswered, all.new_ids.size(), samples);
  std::printf("%s\n", json.c_str());
  const bool broken = all.connect_failures > 0 || all.parse_errors > 0;
  return broken ? 1 : 0;
}

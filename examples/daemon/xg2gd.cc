// xg2gd: the example daemon. Serves libxg2g's v3 HTTP handler over
// libmicrohttpd, using only the public C header and libxg2g.so.
//
// Configuration: environment variables (docs/daemon.md, `xg2gd --help`), over
// an optional JSON file (--config FILE, the same keys in lower case without
// the XG2G_ prefix). Everything is checked before the listener opens; a bad
// value stops the daemon with one line naming it and exit code 2.
//
// Signals: SIGTERM/SIGINT stop accepting, let requests in flight finish,
// stop the engine, close the store and exit 0. SIGHUP re-reads the
// configuration and reloads tokens, rate limits and allow-lists into the
// live handler (audited as config_reload) without dropping connections.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <xg2g/xg2g.h>

#include "settings.h"

namespace {

using xg2gd::Settings;

// ---------------------------------------------------------------------------
// Logging: one line per event on stderr, filtered by XG2G_LOG_LEVEL.

int g_log_level = 1;  // 0 debug, 1 info, 2 warn, 3 error

void Log(int level, const std::string& message) {
  static const char* const kNames[] = {"debug", "info", "warn", "error"};
  if (level < g_log_level) return;
  char when[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::fprintf(stderr, "%s xg2gd %s: %s\n", when, kNames[level], message.c_str());
}

std::string LibError(const char* step, xg2g_status rc) {
  return std::string(step) + ": " + xg2g_last_error() + " (" + xg2g_status_str(rc) + ")";
}

// ---------------------------------------------------------------------------
// What the daemon runs: store, engine, handler, listener.

// Threads that answer the slow requests (writes, listings: see Slow) on a
// store whose writes block (a durable LMDB commit waits for the disk).
// libmicrohttpd keeps a connection on one of its threads for good, so a slow
// request answered there would hold up every other connection of that
// thread; handed over here, the connection is suspended meanwhile and its
// thread goes on serving the others (reads of one session).
class Workers {
 public:
  void Start(unsigned int count) {
    for (unsigned int i = 0; i < count; ++i) threads_.emplace_back([this] { Run(); });
  }
  // False once Stop has begun: the caller answers the request itself.
  bool Submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || threads_.empty()) return false;
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
    return true;
  }
  // Runs what was submitted, then joins the threads.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping, nothing left
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

struct Daemon {
  Settings settings;
  std::string config_path;  // --config, re-read on SIGHUP
  xg2g_store* store = nullptr;
  xg2g_engine* engine = nullptr;
  xg2g_http_handler* handler = nullptr;
  MHD_Daemon* http = nullptr;
  std::string tls_cert_pem, tls_key_pem;

  // Requests between arrival and completion: counted without a lock (every
  // request passes here twice); `mu` and `idle` wake the shutdown when the
  // count reaches zero.
  std::atomic<int> in_flight{0};
  std::mutex mu;
  std::condition_variable idle;
  // Set when the store's writes block (LMDB): writes and listings are
  // answered by `workers` (see Slow).
  bool hand_over_slow = false;
  Workers workers;
  std::atomic<bool> closing{false};
};

// One request while libmicrohttpd delivers it.
struct Request {
  Daemon* daemon = nullptr;
  std::string target;  // the raw request target: path and query
  std::string body;
  bool counted = false;
  bool headers_seen = false;  // the first handler call (headers only) is over
  // A request handed to the workers: what they need of it, copied while the
  // connection was ours, and their answer, read back after the resume.
  std::vector<std::pair<std::string, std::string>> header_copies;
  std::string method, peer;
  xg2g_http_response* answer = nullptr;
  xg2g_status answer_rc = XG2G_OK;
  std::string answer_error;  // the workers' LibError when answer_rc is not OK
  bool handed_over = false;
  bool answer_here = false;  // the workers were stopping: answered on this thread
};

// libmicrohttpd hands over the raw request line's URI here, before it parses
// it: the handler wants the target exactly as sent (its own query parsing).
void* OnUri(void* cls, const char* uri, MHD_Connection*) {
  auto* daemon = static_cast<Daemon*>(cls);
  auto* request = new Request;
  request->daemon = daemon;
  request->target = uri ? uri : "";
  const int in_flight = daemon->in_flight.fetch_add(1) + 1;
  request->counted = true;
  // The count only: the target may carry a query token.
  if (g_log_level == 0) Log(0, "request arrived (" + std::to_string(in_flight) + " in flight)");
  return request;
}

void OnCompleted(void* cls, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  auto* daemon = static_cast<Daemon*>(cls);
  auto* request = static_cast<Request*>(*con_cls);
  *con_cls = nullptr;
  if (request == nullptr) return;
  bool counted = request->counted;
  // A worker's answer that was never sent (the client went away first).
  if (request->answer != nullptr) xg2g_http_response_destroy(request->answer);
  delete request;
  if (!counted) return;
  if (daemon->in_flight.fetch_sub(1) == 1) {
    // Under the lock, so that a shutdown between its check and its wait
    // cannot miss the wake-up.
    std::lock_guard<std::mutex> lock(daemon->mu);
    daemon->idle.notify_all();
  }
}

MHD_Result CollectHeader(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* headers = static_cast<std::vector<xg2g_http_header>*>(cls);
  headers->push_back(xg2g_http_header{key, value ? value : ""});
  return MHD_YES;
}

std::string PeerIp(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "";
  char text[INET6_ADDRSTRLEN] = "";
  const sockaddr* addr = info->client_addr;
  if (addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, text, sizeof text);
  } else if (addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], text, sizeof text);
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    }
  }
  return text;
}

MHD_Result Plain(MHD_Connection* connection, unsigned int status, const char* text) {
  MHD_Response* response =
      MHD_create_response_from_buffer(std::strlen(text), const_cast<char*>(text), MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(response, "Content-Type", "text/plain");
  MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

// Requests that may hold their thread for long on a store whose calls
// block: writes (every method but GET and HEAD) and session listings (a page
// reads up to 1,000 records).
bool Slow(const char* method, const std::string& target) {
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) return true;
  const std::string_view path = std::string_view(target).substr(0, target.find('?'));
  return path == "/api/v3/sessions" || path == "/api/v3/sessions/";
}

// The library's answer to one request.
xg2g_status Handle(Daemon* daemon, const char* method, const Request& request,
                   const std::vector<xg2g_http_header>& headers, const std::string& peer,
                   xg2g_http_response** answer) {
  xg2g_http_request req = XG2G_HTTP_REQUEST_INIT;
  req.method = method;
  req.target = request.target.c_str();
  req.headers = headers.data();
  req.header_count = headers.size();
  req.body = request.body.data();
  req.body_size = request.body.size();
  req.peer_ip = peer.c_str();
  return xg2g_http_handler_handle(answer, daemon->handler, &req);
}

// The access handler. libmicrohttpd calls it first with the headers (we
// answer nothing yet, so keep-alive and "100 Continue" work), then with each
// piece of the body, then once more with none: that call answers.
MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char*, const char* method,
                     const char*, const char* upload_data, size_t* upload_data_size,
                     void** con_cls) {
  auto* daemon = static_cast<Daemon*>(cls);
  auto* request = static_cast<Request*>(*con_cls);
  if (request == nullptr) return MHD_NO;  // OnUri always runs first
  if (!request->headers_seen) {
    request->headers_seen = true;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    // Keep at most one byte past the limit: the handler answers 413 for it.
    size_t room = XG2G_HTTP_MAX_BODY_SIZE + 1 - std::min<size_t>(request->body.size(),
                                                                 XG2G_HTTP_MAX_BODY_SIZE + 1);
    request->body.append(upload_data, std::min(room, *upload_data_size));
    *upload_data_size = 0;
    return MHD_YES;
  }

  xg2g_http_response* answer = nullptr;
  xg2g_status rc = XG2G_OK;
  if (request->handed_over) {
    // Called again after the workers answered and resumed the connection.
    answer = std::exchange(request->answer, nullptr);
    rc = request->answer_rc;
  } else if (daemon->hand_over_slow && !request->answer_here && Slow(method, request->target)) {
    std::vector<xg2g_http_header> found;
    MHD_get_connection_values(connection, MHD_HEADER_KIND, &CollectHeader, &found);
    for (const xg2g_http_header& h : found) request->header_copies.emplace_back(h.name, h.value);
    request->method = method;
    request->peer = PeerIp(connection);
    request->handed_over = true;
    MHD_suspend_connection(connection);
    const bool queued = daemon->workers.Submit([daemon, request, connection] {
      std::vector<xg2g_http_header> headers;
      headers.reserve(request->header_copies.size());
      for (const auto& [name, value] : request->header_copies) {
        headers.push_back(xg2g_http_header{name.c_str(), value.c_str()});
      }
      request->answer_rc = Handle(daemon, request->method.c_str(), *request, headers,
                                  request->peer, &request->answer);
      if (request->answer_rc != XG2G_OK) {
        request->answer_error = LibError("handle request", request->answer_rc);
      }
      MHD_resume_connection(connection);  // the handler runs again and sends it
    });
    if (queued) return MHD_YES;
    // Shutting down: answered here once libmicrohttpd calls again.
    request->handed_over = false;
    request->answer_here = true;
    MHD_resume_connection(connection);
    return MHD_YES;
  } else {
    std::vector<xg2g_http_header> headers;
    MHD_get_connection_values(connection, MHD_HEADER_KIND, &CollectHeader, &headers);
    rc = Handle(daemon, method, *request, headers, PeerIp(connection), &answer);
  }
  if (rc != XG2G_OK) {
    Log(3, request->handed_over ? request->answer_error : LibError("handle request", rc));
    return Plain(connection, 500, "internal error\n");
  }
  size_t size = 0;
  const char* body = xg2g_http_response_get_body(answer, &size);
  MHD_Response* response =
      MHD_create_response_from_buffer(size, const_cast<char*>(body), MHD_RESPMEM_MUST_COPY);
  for (size_t i = 0, n = xg2g_http_response_get_header_count(answer); i < n; ++i) {
    MHD_add_response_header(response, xg2g_http_response_get_header_name(answer, i),
                            xg2g_http_response_get_header_value(answer, i));
  }
  if (daemon->closing.load()) MHD_add_response_header(response, "Connection", "close");
  const unsigned int status = static_cast<unsigned int>(xg2g_http_response_get_status(answer));
  xg2g_http_response_destroy(answer);
  MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

// ---------------------------------------------------------------------------
// Start-up and reload.

xg2g_status ReceiverReady(char* reason, size_t reason_size, void* user_data) {
  xg2g_status rc = xg2g_receiver_ping(static_cast<xg2g_receiver*>(user_data));
  if (rc != XG2G_OK) std::snprintf(reason, reason_size, "receiver: %s", xg2g_last_error());
  return rc;
}

void DestroyReceiver(void* user_data) { xg2g_receiver_destroy(static_cast<xg2g_receiver*>(user_data)); }

// Builds the handler configuration (tokens, limits, lists, metrics scope)
// from settings; an error names the setting.
bool BuildHttpConfig(const Settings& s, xg2g_http_config** out, std::string* error) {
  xg2g_http_config* cfg = nullptr;
  xg2g_status rc = xg2g_http_config_create(&cfg);
  auto fail = [&](const char* name) {
    *error = std::string(name) + ": " + xg2g_last_error();
    xg2g_http_config_destroy(cfg);
    return false;
  };
  if (rc != XG2G_OK) return fail("handler config");
  if (xg2g_http_config_set_tokens(cfg, s.Get("XG2G_API_TOKENS").c_str()) != XG2G_OK) {
    return fail("XG2G_API_TOKENS");
  }
  if (xg2g_http_config_set_allow_query_tokens(cfg, s.Bool("XG2G_ALLOW_QUERY_TOKENS")) != XG2G_OK) {
    return fail("XG2G_ALLOW_QUERY_TOKENS");
  }
  if (xg2g_http_config_set_rate_limit(cfg, s.Double("XG2G_RATELIMIT_RPS"),
                                      s.Int("XG2G_RATELIMIT_BURST")) != XG2G_OK) {
    return fail("XG2G_RATELIMIT_RPS/XG2G_RATELIMIT_BURST");
  }
  if (xg2g_http_config_set_allow_list(cfg, s.Get("XG2G_RATELIMIT_WHITELIST").c_str()) != XG2G_OK) {
    return fail("XG2G_RATELIMIT_WHITELIST");
  }
  if (xg2g_http_config_set_trusted_proxies(cfg, s.Get("XG2G_TRUSTED_PROXIES").c_str()) != XG2G_OK) {
    return fail("XG2G_TRUSTED_PROXIES");
  }
  if (xg2g_http_config_set_metrics_scope(cfg, s.Get("XG2G_METRICS_SCOPE").c_str()) != XG2G_OK) {
    return fail("XG2G_METRICS_SCOPE");
  }
  const std::string receiver = s.Get("XG2G_RECEIVER_URL");
  if (!receiver.empty()) {
    xg2g_receiver* probe = nullptr;
    if (xg2g_receiver_create(&probe, receiver.c_str(), nullptr) != XG2G_OK) {
      return fail("XG2G_RECEIVER_URL");
    }
    // /readyz asks the receiver too; the probe's breaker keeps a dead
    // receiver from slowing every readiness call down.
    if (xg2g_http_config_set_readiness_check(cfg, &ReceiverReady, probe, &DestroyReceiver) !=
        XG2G_OK) {
      return fail("readiness check");
    }
  }
  *out = cfg;
  return true;
}

// Checks the certificate and key; false with the reason for an invalid pair.
// Warnings (expiring soon, weak key, self-signed) are logged.
bool CheckTls(const Settings& s, Daemon* daemon, std::string* error) {
  const std::string cert = s.Get("XG2G_TLS_CERT"), key = s.Get("XG2G_TLS_KEY");
  if (cert.empty() && key.empty()) return true;
  if (cert.empty() || key.empty()) {
    *error = "XG2G_TLS_CERT and XG2G_TLS_KEY: set both or neither";
    return false;
  }
  xg2g_tls_report* report = nullptr;
  if (xg2g_tls_check_report(&report, cert.c_str(), key.c_str(), nullptr) != XG2G_OK) {
    *error = "XG2G_TLS_CERT: " + std::string(xg2g_last_error());
    return false;
  }
  // "CODE: message; CODE: message" of one list of findings.
  auto findings = [&](int list) {
    std::string all;
    for (size_t i = 0; i < xg2g_tls_report_count(report, list); ++i) {
      if (!all.empty()) all += "; ";
      all += std::string(xg2g_tls_report_code(report, list, i)) + ": " +
             xg2g_tls_report_message(report, list, i);
    }
    return all;
  };
  const bool valid = xg2g_tls_report_valid(report) != 0;
  const std::string errors = findings(XG2G_TLS_ERRORS);
  const std::string warnings = findings(XG2G_TLS_WARNINGS);
  xg2g_tls_report_destroy(report);
  if (!valid) {
    *error = "XG2G_TLS_CERT/XG2G_TLS_KEY: " + errors;
    return false;
  }
  if (!warnings.empty()) Log(2, "certificate " + cert + ": " + warnings);
  std::string read_error;
  if (!xg2gd::ReadFile(cert, &daemon->tls_cert_pem, &read_error) ||
      !xg2gd::ReadFile(key, &daemon->tls_key_pem, &read_error)) {
    *error = "XG2G_TLS_CERT/XG2G_TLS_KEY: " + read_error;
    return false;
  }
  return true;
}

bool BuildEngineConfig(const Settings& s, xg2g_config** out, std::string* error) {
  xg2g_config* cfg = nullptr;
  if (xg2g_config_create(&cfg) != XG2G_OK) {
    *error = std::string("engine config: ") + xg2g_last_error();
    return false;
  }
  // In order, stopping at the first refusal so that its message is the
  // library's last error.
  const std::pair<const char*, xg2g_status (*)(xg2g_config*, int64_t)> durations[] = {
      {"XG2G_LEASE_TTL_MS", &xg2g_config_set_lease_ttl_ms},
      {"XG2G_HEARTBEAT_MS", &xg2g_config_set_heartbeat_ms},
      {"XG2G_START_DEADLINE_MS", &xg2g_config_set_start_deadline_ms},
      {"XG2G_STOP_DEADLINE_MS", &xg2g_config_set_stop_deadline_ms},
      {"XG2G_IDLE_TIMEOUT_MS", &xg2g_config_set_idle_timeout_ms},
      {"XG2G_RETENTION_MS", &xg2g_config_set_retention_ms},
      {"XG2G_IDEMPOTENCY_TTL_MS", &xg2g_config_set_idempotency_ttl_ms},
  };
  const char* failed = nullptr;
  if (xg2g_config_set_tuner_slots(cfg, s.Get("XG2G_TUNER_SLOTS").c_str()) != XG2G_OK) {
    failed = "XG2G_TUNER_SLOTS";
  }
  for (const auto& [name, set] : durations) {
    if (failed == nullptr && set(cfg, s.Int(name)) != XG2G_OK) failed = name;
  }
  // Without a receiver the simulated pipeline stands in for tuner and
  // transcoder: sessions become READY at once. With one, the engine tunes
  // through it and a session is READY once the tune is confirmed.
  const std::string receiver = s.Get("XG2G_RECEIVER_URL");
  if (failed == nullptr && receiver.empty() &&
      xg2g_config_use_simulated_pipeline(cfg, nullptr) != XG2G_OK) {
    failed = "pipeline";
  }
  if (failed == nullptr && !receiver.empty() &&
      xg2g_config_set_receiver(cfg, receiver.c_str(), nullptr) != XG2G_OK) {
    failed = "XG2G_RECEIVER_URL";
  }
  if (failed != nullptr) {
    *error = std::string(failed) + ": " + xg2g_last_error();
    xg2g_config_destroy(cfg);
    return false;
  }
  *out = cfg;
  return true;
}

bool ParseListen(const std::string& listen, sockaddr_storage* addr, socklen_t* len) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size()) return false;
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) return false;
  std::memset(addr, 0, sizeof *addr);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) return false;
    *len = sizeof *in6;
    return true;
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(addr);
  in4->sin_family = AF_INET;
  in4->sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty()) host = "0.0.0.0";
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) return false;
  *len = sizeof *in4;
  return true;
}

void Usage(FILE* to) {
  std::fprintf(to,
               "usage: xg2gd [--config FILE] [--help] [--version]\n"
               "\n"
               "The libxg2g example daemon: the v3 HTTP API over an engine and a store.\n"
               "Configuration comes from these environment variables, over the optional\n"
               "JSON file of --config (keys in lower case without XG2G_, e.g. \"listen\"):\n\n");
  for (const xg2gd::Key& key : xg2gd::Keys()) {
    std::fprintf(to, "  %-26s %s (default: %s)\n", key.env, key.help,
                 key.def[0] ? key.def : "none");
  }
  std::fprintf(to,
               "\nSignals: SIGTERM/SIGINT finish requests in flight and exit 0; SIGHUP\n"
               "reloads tokens, rate limits and lists. Exit codes: 0 clean stop, 1 a\n"
               "failure while running, 2 a bad configuration.\n");
}

int Run(Daemon& d) {
  std::string error;
  sockaddr_storage addr;
  socklen_t addr_len = 0;
  const Settings& s = d.settings;
  auto bad = [&](const std::string& message) {
    Log(3, "configuration: " + message);
    return 2;
  };

  if (!ParseListen(s.Get("XG2G_LISTEN"), &addr, &addr_len)) {
    return bad("XG2G_LISTEN: '" + s.Get("XG2G_LISTEN") + "' is not HOST:PORT");
  }
  xg2g_http_config* http_cfg = nullptr;
  if (!BuildHttpConfig(s, &http_cfg, &error)) return bad(error);
  for (std::istringstream lines(xg2g_http_config_get_warnings(http_cfg)); std::getline(lines, error);) {
    if (!error.empty()) Log(2, error);
  }
  xg2g_config* engine_cfg = nullptr;
  if (!BuildEngineConfig(s, &engine_cfg, &error)) {
    xg2g_http_config_destroy(http_cfg);
    return bad(error);
  }
  if (!CheckTls(s, &d, &error)) {
    xg2g_http_config_destroy(http_cfg);
    xg2g_config_destroy(engine_cfg);
    return bad(error);
  }
  xg2g_status rc = xg2g_store_open(&d.store, s.Get("XG2G_STORE").c_str());
  if (rc == XG2G_OK) rc = xg2g_engine_create(&d.engine, engine_cfg, d.store);
  if (rc == XG2G_OK) rc = xg2g_http_handler_create(&d.handler, d.engine, http_cfg);
  xg2g_config_destroy(engine_cfg);
  xg2g_http_config_destroy(http_cfg);
  if (rc != XG2G_OK) {
    const int code = (rc == XG2G_EINVAL || rc == XG2G_EUNSUPPORTED) ? 2 : 1;
    Log(3, std::string(d.store == nullptr ? "XG2G_STORE: " : "start: ") + xg2g_last_error());
    return code;
  }

  // Writes to LMDB wait for the disk, writes to Redis for several round
  // trips: they and the listings go to worker threads (see Workers), many
  // of them, so that concurrent durable writes share a commit (group commit)
  // and reads (from memory, LMDB's map or the Redis store's session cache)
  // never wait behind them (docs/PERFORMANCE.md).
  const std::string& store_uri = s.Get("XG2G_STORE");
  d.hand_over_slow = store_uri.rfind("lmdb:", 0) == 0 || store_uri.rfind("redis:", 0) == 0;
  constexpr unsigned int kWorkers = 64;
  if (d.hand_over_slow) d.workers.Start(kWorkers);
  unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                       MHD_ALLOW_SUSPEND_RESUME;
  if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  if (!d.tls_cert_pem.empty()) flags |= MHD_USE_TLS;
  // Store calls block their thread (a sync on LMDB, a round trip on Redis)
  // and a connection stays on one thread: four per core keep one slow call
  // from holding up the other connections of a core.
  const unsigned int threads = 4 * std::max(1u, std::thread::hardware_concurrency());
  // Split evenly over the threads; the default (the select() limit) would
  // leave each of them little more than a hundred.
  constexpr unsigned int kConnectionLimit = 16384;
  d.http = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &OnRequest, &d,
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),
      MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit,
      MHD_OPTION_URI_LOG_CALLBACK, &OnUri, &d,
      MHD_OPTION_NOTIFY_COMPLETED, &OnCompleted, &d,
      MHD_OPTION_CONNECTION_TIMEOUT, 60u,
      d.tls_cert_pem.empty() ? MHD_OPTION_END : MHD_OPTION_HTTPS_MEM_CERT, d.tls_cert_pem.c_str(),
      MHD_OPTION_HTTPS_MEM_KEY, d.tls_key_pem.c_str(), MHD_OPTION_END);
  if (d.http == nullptr) {
    d.workers.Stop();
    Log(3, "XG2G_LISTEN: cannot listen on " + s.Get("XG2G_LISTEN"));
    return 1;
  }
  const MHD_DaemonInfo* bound = MHD_get_daemon_info(d.http, MHD_DAEMON_INFO_BIND_PORT);
  const unsigned port = bound ? bound->port : 0;
  const std::string scheme = d.tls_cert_pem.empty() ? "http" : "https";
  std::string host = s.Get("XG2G_LISTEN").substr(0, s.Get("XG2G_LISTEN").rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  const std::string base = scheme + "://" + host + ":" + std::to_string(port);
  if (!xg2gd::WaitOwnListener(base + "/healthz", &error)) {
    Log(3, "listener " + base + " does not answer: " + error);
    return 1;
  }
  Log(1, "ready on " + base + " (store " + xg2gd::RedactUri(s.Get("XG2G_STORE")) + ", " +
             std::to_string(threads) + " threads)");
  std::printf("xg2gd: ready on %s\n", base.c_str());
  std::fflush(stdout);

  // The signals were blocked in every thread before any was created: this
  // thread takes them one at a time.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      Settings fresh;
      xg2g_http_config* cfg = nullptr;
      if (!xg2gd::LoadSettings(d.config_path, &fresh, &error) ||
          !BuildHttpConfig(fresh, &cfg, &error)) {
        Log(2, "reload refused, keeping the running configuration: " + error);
        continue;
      }
      rc = xg2g_http_handler_reload(d.handler, cfg);
      xg2g_http_config_destroy(cfg);
      if (rc != XG2G_OK) {
        Log(2, LibError("reload", rc));
      } else {
        Log(1, "reloaded tokens, rate limits and lists");
      }
      continue;
    }
    break;
  }

  d.closing.store(true);
  MHD_socket listener = MHD_quiesce_daemon(d.http);
  if (listener != MHD_INVALID_SOCKET) close(listener);
  {
    std::unique_lock<std::mutex> lock(d.mu);
    Log(1, "stopping: listener closed; finishing " + std::to_string(d.in_flight.load()) +
               " request(s) in flight");
    if (!d.idle.wait_for(lock, std::chrono::seconds(20), [&] { return d.in_flight == 0; })) {
      Log(2, std::to_string(d.in_flight.load()) +
                 " request(s) still open after 20 s; closing them");
    }
  }
  // Before the daemon stops: every connection handed over is resumed.
  d.workers.Stop();
  MHD_stop_daemon(d.http);
  d.http = nullptr;
  xg2g_http_handler_destroy(d.handler);
  xg2g_engine_destroy(d.engine);
  xg2g_store_close(d.store);
  Log(1, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Daemon d;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Usage(stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("xg2gd %s (libxg2g %s)\n", XG2G_VERSION_STRING, xg2g_version_string());
      return 0;
    }
    if (arg == "--config" && i + 1 < argc) {
      d.config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      d.config_path = arg.substr(9);
    } else {
      std::fprintf(stderr, "xg2gd: unknown argument '%s' (see xg2gd --help)\n", argv[i]);
      return 2;
    }
  }
  if (xg2g_check_version(XG2G_VERSION_MAJOR, XG2G_VERSION_MINOR) != XG2G_OK) {
    std::fprintf(stderr, "xg2gd: %s\n", xg2g_last_error());
    return 2;
  }
  std::string error;
  if (!xg2gd::LoadSettings(d.config_path, &d.settings, &error)) {
    Log(3, "configuration: " + error);
    return 2;
  }
  g_log_level = xg2gd::LogLevel(d.settings.Get("XG2G_LOG_LEVEL"));
  if (!d.settings.Validate(&error)) {
    Log(3, "configuration: " + error);
    return 2;
  }
  // Every thread created from here on (engine, listener) inherits the mask:
  // only the main thread's sigwait sees these signals.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return Run(d);
}

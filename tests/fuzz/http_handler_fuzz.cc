// Fuzz target for the v3 HTTP handler (lib/http/handler.cc): method, target,
// headers, body and peer all come from the input.
//
// Input format (so that seeds stay readable): the first line is
// "METHOD TARGET", then "Name: value" header lines up to an empty line, then
// the body. The first byte of the body-less remainder picks nothing: the
// peer is the value of a pseudo-header "@peer: ..." when present.
//
// Properties: every answer has a known status, the request id and the
// security headers; every error body is JSON with code, message and
// request_id; no configured token ever appears in a body or audit line
// unless the client itself put it somewhere the handler echoes (a request id,
// a path, a body field), which is not a leak.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "lib/common/clock.h"
#include "lib/engine/engine.h"
#include "lib/http/handler.h"
#include "lib/observe/audit.h"
#include "lib/store/memory_store.h"

namespace {

constexpr std::string_view kTokens =
    "fuzz-read-token-0123456789=v3:read;fuzz-write-token-0123456789=v3:write;"
    "fuzz-admin-token-0123456789=*";

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "http_handler_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

constexpr std::string_view kTokenValues[] = {"fuzz-read-token-0123456789",
                                             "fuzz-write-token-0123456789",
                                             "fuzz-admin-token-0123456789"};

// Whether the client has sent each token somewhere the handler may echo or
// store (anything but Authorization, Cookie and the query) since the world
// was made: a stored service ref or an echoed request id holding it is the
// client's own text, not a leak.
bool g_echoable[std::size(kTokenValues)] = {};

void NoteEchoable(std::string_view text) {
  for (size_t i = 0; i < std::size(kTokenValues); ++i) {
    if (text.find(kTokenValues[i]) != std::string_view::npos) g_echoable[i] = true;
  }
}

// A configured token in `text` that the client never sent in an echoable
// place.
const std::string_view* LeakedToken(std::string_view text) {
  for (size_t i = 0; i < std::size(kTokenValues); ++i) {
    if (!g_echoable[i] && text.find(kTokenValues[i]) != std::string_view::npos) {
      return &kTokenValues[i];
    }
  }
  return nullptr;
}

class CheckingAudit final : public xg2g::AuditSink {
 public:
  void Emit(const xg2g::AuditEvent& event) override {
    const std::string line = xg2g::EncodeAuditEvent(event);
    if (LeakedToken(line) != nullptr) Fail("a token in an audit line", line);
  }
};

struct World {
  World() {
    store = std::make_unique<xg2g::MemoryStore>(&clock);
    xg2g::EngineOptions options;
    options.background = false;
    options.owner_id = "fuzz";
    engine = std::move(*xg2g::Engine::Create(options, store.get(), &clock, nullptr, nullptr));
    auto policy = xg2g::ParseHttpPolicy(kTokens, true, 5, 3, "192.0.2.0/28, 2001:db8::1",
                                        "10.0.0.0/8, ::1", "");
    if (!policy.ok()) Fail("policy", "");
    policy->rate_limit.max_clients = 32;
    xg2g::HttpHandlerOptions handler_options;
    handler_options.audit = std::make_shared<CheckingAudit>();
    handler = std::move(*xg2g::HttpHandler::Create(engine.get(), std::move(*policy),
                                                   std::move(handler_options)));
  }
  xg2g::FakeClock clock;
  std::unique_ptr<xg2g::MemoryStore> store;
  std::unique_ptr<xg2g::Engine> engine;
  std::unique_ptr<xg2g::HttpHandler> handler;
};

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view NextLine(std::string_view& rest) {
  const size_t nl = rest.find('\n');
  std::string_view line = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();
  static int calls = 0;
  if (++calls % 5000 == 0) {  // keep the store and the bucket table from growing forever
    delete world;
    world = new World();
    std::fill(std::begin(g_echoable), std::end(g_echoable), false);
  }
  world->clock.AdvanceMs(7);

  std::string_view rest(reinterpret_cast<const char*>(data), size);
  const std::string_view first = NextLine(rest);
  const size_t space = first.find(' ');
  const std::string_view method = first.substr(0, space);
  const std::string_view target =
      space == std::string_view::npos ? std::string_view() : first.substr(space + 1);
  std::vector<xg2g::HttpHeader> headers;
  std::string_view peer = "192.0.2.200";
  while (!rest.empty()) {
    const std::string_view line = NextLine(rest);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value =
        colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "@peer") {
      peer = value;
      continue;
    }
    headers.push_back(xg2g::HttpHeader{name, value});
  }
  NoteEchoable(target.substr(0, target.find('?')));
  NoteEchoable(rest);
  for (const xg2g::HttpHeader& header : headers) {
    if (EqualsIgnoringCase(header.name, "Authorization") ||
        EqualsIgnoringCase(header.name, "Cookie")) {
      continue;
    }
    NoteEchoable(header.value);
  }
  xg2g::HttpRequest request;
  request.method = method;
  request.target = target;
  request.headers = headers;
  request.body = rest;
  request.peer = peer;

  const xg2g::HttpResponse response = world->handler->Handle(request);
  switch (response.status) {
    case 200: case 202: case 400: case 401: case 403: case 404: case 405: case 409: case 413:
    case 422: case 429: case 503:
      break;
    default:
      Fail("unexpected status", std::to_string(response.status));
  }
  for (std::string_view name : {"X-Request-ID", "X-Content-Type-Options", "X-Frame-Options",
                                "Referrer-Policy", "Content-Security-Policy"}) {
    if (response.Header(name) == nullptr) Fail("a header is missing", name);
  }
  if (!xg2g::IsValidRequestId(*response.Header("X-Request-ID"))) {
    Fail("an invalid request id", *response.Header("X-Request-ID"));
  }
  if (LeakedToken(response.body) != nullptr) Fail("a token in a body", response.body);
  if (response.status >= 400 && method != "HEAD") {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(response.body).get(doc) != simdjson::SUCCESS) {
      Fail("an error body that is not JSON", response.body);
    }
    std::string_view code, message, id;
    if (doc["code"].get(code) || doc["message"].get(message) || doc["request_id"].get(id)) {
      Fail("an error body without code, message or request_id", response.body);
    }
    if (id != *response.Header("X-Request-ID")) Fail("request ids differ", response.body);
  }
  return 0;
}

// Audit events: their exact JSON, escaping of whatever clients send, the JSON
// lines sink (one whole, flushed line per event, also under concurrency) and
// the callback sink.
#include "lib/observe/audit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <simdjson.h>

namespace xg2g {
namespace {

AuditEvent FullEvent() {
  AuditEvent e;
  e.type = "session_start";
  e.time_unix_ms = 1'700'000'000'123;
  e.client_ip = "2001:db8::7";
  e.route = "/api/v3/intents";
  e.outcome = "ok";
  e.principal_digest = "9f86d081";
  e.session_id = "3f2a9c0e7b1d4e5fa6b7c8d9e0f1a2b3";
  e.detail = "slot 2";
  return e;
}

// The members of one JSON object whose values are all strings; fails the
// test when `json` is not such an object.
std::map<std::string, std::string> ParseFlatObject(std::string_view json) {
  std::map<std::string, std::string> members;
  // The DOM parser: it rejects anything after the object too.
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE_MESSAGE(parser.parse(json.data(), json.size()).get(doc) == simdjson::SUCCESS, json);
  simdjson::dom::object object;
  REQUIRE_MESSAGE(doc.get_object().get(object) == simdjson::SUCCESS, json);
  for (auto [key, value] : object) {
    std::string_view text;
    REQUIRE_MESSAGE(value.get_string().get(text) == simdjson::SUCCESS, json);
    CHECK_MESSAGE(members.emplace(std::string(key), std::string(text)).second, "duplicate ",
                  std::string(key));
  }
  return members;
}

// A fresh file name under the temporary directory, removed with the object.
class TempPath {
 public:
  TempPath() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "xg2g-audit-test-XXXXXX").string();
    const int fd = mkstemp(pattern.data());
    REQUIRE(fd >= 0);
    close(fd);
    std::filesystem::remove(pattern);  // the sink creates it
    path_ = pattern;
  }
  ~TempPath() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  const std::string& str() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> ReadLines(const std::string& path, bool* ends_with_newline = nullptr) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  const std::string text = content.str();
  if (ends_with_newline != nullptr) *ends_with_newline = text.empty() || text.back() == '\n';
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

TEST_SUITE("observe") {

TEST_CASE("an audit event encodes to exactly the documented members, in order") {
  CHECK(EncodeAuditEvent(FullEvent()) ==
        R"({"type":"session_start","time":"2023-11-14T22:13:20.123Z","client_ip":"2001:db8::7",)"
        R"("route":"/api/v3/intents","outcome":"ok","principal":"9f86d081",)"
        R"("session_id":"3f2a9c0e7b1d4e5fa6b7c8d9e0f1a2b3","detail":"slot 2"})");
}

TEST_CASE("empty audit fields are left out, but type and time are always written") {
  AuditEvent e;
  e.type = "config_reload";
  e.time_unix_ms = 0;
  CHECK(EncodeAuditEvent(e) == R"({"type":"config_reload","time":"1970-01-01T00:00:00.000Z"})");
  e.outcome = "ok";
  e.detail = "x";
  CHECK(EncodeAuditEvent(e) ==
        R"({"type":"config_reload","time":"1970-01-01T00:00:00.000Z","outcome":"ok","detail":"x"})");
  CHECK(EncodeAuditEvent(AuditEvent{}) == R"({"type":"","time":"1970-01-01T00:00:00.000Z"})");
}

TEST_CASE("audit times are RFC 3339 UTC with milliseconds, before 1970 and on leap days too") {
  CHECK(FormatRfc3339UtcMs(0) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339UtcMs(1'700'000'000'123) == "2023-11-14T22:13:20.123Z");
  CHECK(FormatRfc3339UtcMs(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(FormatRfc3339UtcMs(951'782'400'000) == "2000-02-29T00:00:00.000Z");
  CHECK(FormatRfc3339UtcMs(1'709'251'199'999) == "2024-02-29T23:59:59.999Z");
  CHECK(FormatRfc3339UtcMs(4'107'542'400'000) == "2100-03-01T00:00:00.000Z");
  CHECK(FormatRfc3339UtcMs(-62'135'596'800'000) == "0001-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339UtcMs(253'402'300'799'999) == "9999-12-31T23:59:59.999Z");
}

TEST_CASE("audit times outside the years 0000 to 9999 are clamped to the ends") {
  CHECK(FormatRfc3339UtcMs(std::numeric_limits<int64_t>::max()) == "9999-12-31T23:59:59.999Z");
  CHECK(FormatRfc3339UtcMs(253'402'300'800'000) == "9999-12-31T23:59:59.999Z");
  CHECK(FormatRfc3339UtcMs(std::numeric_limits<int64_t>::min()) == "0000-01-01T00:00:00.000Z");
}

TEST_CASE("audit times agree with the C library's calendar over a wide range") {
  std::mt19937_64 random(20240229);
  // 1900-01-01 .. 9999-12-31
  std::uniform_int_distribution<int64_t> pick(-2'208'988'800'000, 253'402'300'799'999);
  for (int i = 0; i < 20'000; ++i) {
    const int64_t ms = pick(random);
    const int64_t seconds = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    const time_t t = static_cast<time_t>(seconds);
    struct tm tm {};
    REQUIRE(gmtime_r(&t, &tm) != nullptr);
    const std::string expected =
        fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms - seconds * 1000);
    REQUIRE_MESSAGE(FormatRfc3339UtcMs(ms) == expected, "ms = ", ms);
  }
}

TEST_CASE("hostile field values stay inside their member: one line of valid JSON") {
  AuditEvent e = FullEvent();
  e.client_ip = "1.2.3.4\",\"outcome\":\"ok";
  e.route = "/api/v3/sessions/\n{\"type\":\"auth_success\"}";
  e.outcome = std::string("denied") + '\0' + "\r\x1b[31m\x7f";
  e.principal_digest = "back\\slash\\\"";
  e.session_id = "\xff\xfe bad utf-8 \xc3( \xed\xa0\x80";
  e.detail = "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e \u2028 tab\tend";
  const std::string json = EncodeAuditEvent(e);
  INFO(json);
  for (char c : json) CHECK(static_cast<unsigned char>(c) >= 0x20);

  const auto members = ParseFlatObject(json);
  CHECK(members.size() == 8);
  CHECK(members.at("client_ip") == e.client_ip);
  CHECK(members.at("route") == e.route);
  CHECK(members.at("outcome") == e.outcome);
  CHECK(members.at("principal") == e.principal_digest);
  CHECK(members.at("session_id") == "\uFFFD\uFFFD bad utf-8 \uFFFD( \uFFFD\uFFFD\uFFFD");
  CHECK(members.at("detail") == e.detail);
  CHECK(members.at("type") == "session_start");
}

TEST_CASE("the JSON lines sink writes each event as one line, flushed before Emit returns") {
  TempPath path;
  JsonLinesAuditSink sink(path.str());
  REQUIRE(sink.ok());
  AuditEvent e = FullEvent();
  for (int i = 0; i < 3; ++i) {
    e.detail = fmt::format("event {}\nwith a newline", i);
    sink.Emit(e);
    // Read back while the sink still holds the file open: already on disk.
    bool whole = false;
    const std::vector<std::string> lines = ReadLines(path.str(), &whole);
    CHECK(whole);
    REQUIRE(lines.size() == static_cast<size_t>(i + 1));
    CHECK(lines.back() == EncodeAuditEvent(e));
    CHECK(ParseFlatObject(lines.back()).at("detail") == e.detail);
  }
  CHECK(sink.write_errors() == 0);
}

TEST_CASE("a JSON lines sink on a path appends to the file and creates it readable by its owner only") {
  TempPath path;
  {
    std::ofstream existing(path.str());
    existing << "earlier line\n";
  }
  {
    JsonLinesAuditSink sink(path.str());
    REQUIRE(sink.ok());
    sink.Emit(FullEvent());
  }
  const std::vector<std::string> lines = ReadLines(path.str());
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "earlier line");
  CHECK(lines[1] == EncodeAuditEvent(FullEvent()));

  TempPath fresh;
  {
    JsonLinesAuditSink sink(fresh.str());
    REQUIRE(sink.ok());
  }
  struct stat st {};
  REQUIRE(stat(fresh.str().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a JSON lines sink that cannot open its file is not ok and counts what it drops") {
  JsonLinesAuditSink sink(std::string("/nonexistent-dir-for-xg2g-tests/audit.jsonl"));
  CHECK_FALSE(sink.ok());
  sink.Emit(FullEvent());
  sink.Emit(FullEvent());
  CHECK(sink.write_errors() == 2);

  JsonLinesAuditSink null_sink(static_cast<std::FILE*>(nullptr));
  CHECK_FALSE(null_sink.ok());
  null_sink.Emit(FullEvent());
  CHECK(null_sink.write_errors() == 1);
}

TEST_CASE("a JSON lines sink on a stream it does not own leaves the stream open") {
  TempPath path;
  std::FILE* file = std::fopen(path.str().c_str(), "w");
  REQUIRE(file != nullptr);
  {
    JsonLinesAuditSink sink(file);
    REQUIRE(sink.ok());
    sink.Emit(FullEvent());
  }
  CHECK(std::fputs("after\n", file) >= 0);
  CHECK(std::fclose(file) == 0);
  const std::vector<std::string> lines = ReadLines(path.str());
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == EncodeAuditEvent(FullEvent()));
  CHECK(lines[1] == "after");
}

TEST_CASE("a JSON lines sink counts a line the stream refuses") {
  std::FILE* full = std::fopen("/dev/full", "w");
  if (full == nullptr) return;  // no such device here: nothing to refuse
  {
    JsonLinesAuditSink sink(full);
    sink.Emit(FullEvent());
    CHECK(sink.write_errors() == 1);
  }
  std::fclose(full);
}

}  // TEST_SUITE("observe")

TEST_SUITE("concurrency") {

TEST_CASE("many threads emitting at once: every line is whole, none is lost, each thread's in order") {
  TempPath path;
  constexpr int kThreads = 16;
  constexpr int kEach = 200;
  {
    JsonLinesAuditSink sink(path.str());
    REQUIRE(sink.ok());
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        AuditEvent e = FullEvent();
        e.client_ip = fmt::format("thread-{}", t);
        start.arrive_and_wait();
        for (int i = 0; i < kEach; ++i) {
          // Lines longer than a stdio buffer: a sink that let writers
          // interleave would tear them.
          e.session_id = std::to_string(i);
          e.detail = std::string(3000 + 97 * (i % 50), static_cast<char>('a' + t));
          sink.Emit(e);
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    CHECK(sink.write_errors() == 0);
  }
  bool ends_with_newline = false;
  const std::vector<std::string> lines = ReadLines(path.str(), &ends_with_newline);
  CHECK(ends_with_newline);
  REQUIRE(lines.size() == static_cast<size_t>(kThreads * kEach));
  std::vector<std::vector<int>> seen(kThreads, std::vector<int>(kEach, 0));
  std::vector<int> last(kThreads, -1);
  int bad = 0;
  int out_of_order = 0;  // a thread's lines keep the order of its Emit calls
  for (const std::string& line : lines) {
    const auto members = ParseFlatObject(line);
    const std::string& ip = members.at("client_ip");
    const int t = std::stoi(ip.substr(ip.find('-') + 1));
    const int i = std::stoi(members.at("session_id"));
    REQUIRE((t >= 0 && t < kThreads && i >= 0 && i < kEach));
    ++seen[t][i];
    if (i <= last[t]) ++out_of_order;
    last[t] = i;
    const std::string& detail = members.at("detail");
    if (detail != std::string(3000 + 97 * (i % 50), static_cast<char>('a' + t))) ++bad;
  }
  CHECK(bad == 0);
  CHECK(out_of_order == 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) CHECK_MESSAGE(seen[t][i] == 1, "thread ", t, " event ", i);
  }
}

}  // TEST_SUITE("concurrency")

TEST_SUITE("observe") {

TEST_CASE("the callback sink hands the encoded event to the function") {
  std::vector<std::string> got;
  CallbackAuditSink sink([&](std::string_view json) { got.emplace_back(json); });
  sink.Emit(FullEvent());
  AuditEvent other = FullEvent();
  other.type = "session_stop";
  sink.Emit(other);
  REQUIRE(got.size() == 2);
  CHECK(got[0] == EncodeAuditEvent(FullEvent()));
  CHECK(got[1] == EncodeAuditEvent(other));
}

TEST_CASE("an exception thrown by the audit callback does not escape Emit") {
  int calls = 0;
  CallbackAuditSink sink([&](std::string_view) {
    ++calls;
    throw std::runtime_error("host callback failed");
  });
  CHECK_NOTHROW(sink.Emit(FullEvent()));
  CHECK(calls == 1);
  CallbackAuditSink empty(nullptr);
  CHECK_NOTHROW(empty.Emit(FullEvent()));
}

TEST_CASE("sinks are usable through the AuditSink interface") {
  std::atomic<int> calls{0};
  std::unique_ptr<AuditSink> sink =
      std::make_unique<CallbackAuditSink>([&](std::string_view) { calls.fetch_add(1); });
  sink->Emit(FullEvent());
  CHECK(calls.load() == 1);
}

}  // TEST_SUITE("observe")

}  // namespace xg2g

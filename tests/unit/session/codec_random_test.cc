// Fuzz-style tests of the session codec with fixed seeds, so that a failure
// reproduces: thousands of random records round trip exactly, and random
// damage to valid JSON gives either a valid record or ECORRUPT, never a crash
// (the unit suite also runs under ASan and UBSan).
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "lib/common/status.h"
#include "lib/session/session.h"

namespace xg2g {
namespace {

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Random but valid session records.
class RecordGenerator {
 public:
  explicit RecordGenerator(uint32_t seed) : rng_(seed) {}

  uint32_t Below(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng_); }

  // A random code point: printable ASCII (often a quote or a backslash),
  // control characters including NUL, and 2-, 3- and 4-byte UTF-8.
  uint32_t CodePoint() {
    switch (Below(8)) {
      case 0: return Below(2) == 0 ? '"' : '\\';
      case 1: return Below(0x20);
      case 2: return 0x7F;
      case 3: return 0x80 + Below(0x800 - 0x80);
      case 4: {
        uint32_t cp = 0x800 + Below(0x10000 - 0x800);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // surrogates are not characters
        return cp;
      }
      case 5: return 0x10000 + Below(0x110000 - 0x10000);
      default: return 0x20 + Below(0x7F - 0x20);
    }
  }

  std::string Text(uint32_t max_chars) {
    std::string text;
    const uint32_t n = Below(max_chars + 1);
    for (uint32_t i = 0; i < n; ++i) AppendUtf8(text, CodePoint());
    return text;
  }

  std::string SessionId() {
    static constexpr std::string_view kAlphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    std::string id;
    const uint32_t n = 1 + Below(64);
    for (uint32_t i = 0; i < n; ++i)
      id.push_back(kAlphabet[Below(static_cast<uint32_t>(kAlphabet.size()))]);
    return id;
  }

  int64_t NonNegative() {
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    switch (Below(5)) {
      case 0: return 0;
      case 1: return kMax - Below(2);
      case 2: return std::uniform_int_distribution<int64_t>(0, kMax)(rng_);
      default: return std::uniform_int_distribution<int64_t>(0, 10'000'000'000)(rng_);
    }
  }

  SessionRecord Record() {
    SessionRecord r;
    r.session_id = SessionId();
    do {
      r.service_ref = Text(40);
    } while (r.service_ref.empty());
    r.profile.name = Text(12);
    r.profile.llhls = Below(2) == 1;
    r.profile.dvr_window_sec = NonNegative();
    r.state = static_cast<SessionState>(Below(kSessionStateCount));
    r.pipeline_state = static_cast<PipelineState>(Below(kPipelineStateCount));
    r.reason = static_cast<Reason>(Below(kReasonCount));
    r.reason_detail = Text(30);
    r.correlation_id = Text(20);
    r.created_at_unix = NonNegative();
    r.updated_at_unix = NonNegative();
    r.expires_at_unix = NonNegative();
    const uint32_t entries = Below(9);
    for (uint32_t i = 0; i < entries; ++i) r.context_data[Text(10)] = Text(20);
    r.principal = Text(16);
    r.revision = NonNegative();
    r.deadline_unix_ms = NonNegative();
    return r;
  }

  // Damages `json` in one of several ways.
  void Mutate(std::string& json) {
    // Sized by the array: the set includes a NUL byte.
    static constexpr char kInterestingBytes[] = "{}[]:,\"\\ -0123456789.eEtrufalsn\x00\x1f\x80\xff";
    static constexpr std::string_view kInteresting{kInterestingBytes,
                                                   sizeof(kInterestingBytes) - 1};
    if (json.empty()) {
      json.push_back(kInteresting[Below(static_cast<uint32_t>(kInteresting.size()))]);
      return;
    }
    const size_t at = Below(static_cast<uint32_t>(json.size()));
    switch (Below(7)) {
      case 0: json[at] = static_cast<char>(Below(256)); break;
      case 1: json[at] = kInteresting[Below(static_cast<uint32_t>(kInteresting.size()))]; break;
      case 2: json.erase(at, 1 + Below(8)); break;
      case 3: {
        std::string bytes;
        const uint32_t n = 1 + Below(4);
        for (uint32_t i = 0; i < n; ++i)
          bytes.push_back(kInteresting[Below(static_cast<uint32_t>(kInteresting.size()))]);
        json.insert(at, bytes);
        break;
      }
      case 4: json.resize(at); break;
      case 5: {
        const std::string slice = json.substr(at, 1 + Below(24));
        json.insert(Below(static_cast<uint32_t>(json.size() + 1)), slice);
        break;
      }
      default: std::swap(json[at], json[Below(static_cast<uint32_t>(json.size()))]); break;
    }
  }

 private:
  std::mt19937 rng_;
};

TEST_CASE("thousands of random records round trip exactly") {
  RecordGenerator gen(0x5e55101);
  for (int i = 0; i < 5000; ++i) {
    const SessionRecord record = gen.Record();
    const std::string json = EncodeSession(record);
    CAPTURE(i);
    CAPTURE(json);
    const absl::StatusOr<SessionRecord> decoded = DecodeSession(json);
    REQUIRE_MESSAGE(decoded.ok(), std::string(FromAbsl(decoded.status().message())));
    REQUIRE(*decoded == record);
    REQUIRE(EncodeSession(*decoded) == json);
  }
}

// Decoding `json` gave a record or ECORRUPT; a record must survive its own
// round trip.
void CheckDecodesCleanly(std::string_view json, int& decoded, int& corrupt) {
  const absl::StatusOr<SessionRecord> result = DecodeSession(json);
  if (!result.ok()) {
    REQUIRE_MESSAGE(CodeOf(result.status()) == ErrorCode::kCorrupt,
                    std::string(FromAbsl(result.status().message())));
    ++corrupt;
    return;
  }
  ++decoded;
  const absl::StatusOr<SessionRecord> again = DecodeSession(EncodeSession(*result));
  REQUIRE(again.ok());
  REQUIRE(*again == *result);
}

TEST_CASE("random damage to valid records gives a valid record or ECORRUPT, never a crash") {
  RecordGenerator gen(20260107);
  int decoded = 0;
  int corrupt = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string json = EncodeSession(gen.Record());
    const uint32_t mutations = 1 + gen.Below(4);
    for (uint32_t m = 0; m < mutations; ++m) gen.Mutate(json);
    CAPTURE(i);
    CAPTURE(json);
    CheckDecodesCleanly(json, decoded, corrupt);
  }
  // Both outcomes must have been exercised for the test to mean something.
  CHECK(decoded > 0);
  CHECK(corrupt > 0);
}

TEST_CASE("random token soup gives a valid record or ECORRUPT, never a crash") {
  static constexpr std::string_view kTokens[] = {
      "{",
      "}",
      "[",
      "]",
      ":",
      ",",
      " ",
      "\"sessionId\"",
      "\"serviceRef\"",
      "\"state\"",
      "\"profile\"",
      "\"contextData\"",
      "\"schemaVersion\"",
      "\"revision\"",
      "\"NEW\"",
      "\"a\"",
      "\"\\u0000\"",
      "\"\\ud83d\\ude00\"",
      "\"\\ud83d\"",
      "1",
      "-1",
      "0.5",
      "1e999",
      "99999999999999999999",
      "true",
      "false",
      "null",
      "\"x",
      "\\",
      "\xc3\xa9",
      "\xff",
  };
  RecordGenerator gen(424242);
  int decoded = 0;
  int corrupt = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string json = "{\"sessionId\":\"a\",\"serviceRef\":\"s\",\"state\":\"NEW\"";
    const uint32_t n = gen.Below(24);
    for (uint32_t t = 0; t < n; ++t)
      json += kTokens[gen.Below(static_cast<uint32_t>(std::size(kTokens)))];
    if (gen.Below(2) == 0) json += "}";
    CAPTURE(json);
    CheckDecodesCleanly(json, decoded, corrupt);
  }
  CHECK(decoded > 0);
  CHECK(corrupt > 0);
}

// Strings without anything that needs an escape and numbers of at most 18
// digits: the form DecodeSession reads without the general JSON reader.
void MakePlain(SessionRecord& r) {
  const auto plain = [](std::string& text) {
    std::erase_if(text, [](char c) {
      return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
    });
  };
  for (std::string* text : {&r.service_ref, &r.profile.name, &r.reason_detail, &r.correlation_id,
                            &r.principal}) {
    plain(*text);
  }
  if (r.service_ref.empty()) r.service_ref = "s";
  std::map<std::string, std::string> context;
  for (const auto& [original_key, original_value] : r.context_data) {
    std::string key = original_key;
    std::string value = original_value;
    plain(key);
    plain(value);
    context[key] = value;
  }
  r.context_data = std::move(context);
  for (int64_t* number : {&r.profile.dvr_window_sec, &r.created_at_unix, &r.updated_at_unix,
                          &r.expires_at_unix, &r.revision, &r.deadline_unix_ms}) {
    *number %= 1'000'000'000'000'000'000;
  }
}

// DecodeSession(json) and DecodeSession(" " + json) agree: the white space
// sends the second to the general reader whatever the first took.
void CheckSameAsGeneralReader(const std::string& json) {
  CAPTURE(json);
  const absl::StatusOr<SessionRecord> direct = DecodeSession(json);
  const absl::StatusOr<SessionRecord> general = DecodeSession(" " + json);
  REQUIRE(direct.status() == general.status());
  if (direct.ok()) REQUIRE(*direct == *general);
}

TEST_CASE("records in the exact form EncodeSession writes decode as the general reader does") {
  RecordGenerator gen(31337);
  int decoded = 0;
  for (int i = 0; i < 4000; ++i) {
    SessionRecord record = gen.Record();
    if (gen.Below(4) != 0) MakePlain(record);
    std::string json = EncodeSession(record);
    CAPTURE(i);
    CheckSameAsGeneralReader(json);
    decoded += DecodeSession(json).ok() ? 1 : 0;
    // Near misses: damaged a little, or a value the general reader refuses.
    const uint32_t mutations = 1 + gen.Below(2);
    for (uint32_t m = 0; m < mutations; ++m) gen.Mutate(json);
    CheckSameAsGeneralReader(json);
  }
  for (const std::string_view edit :
       {"\"schemaVersion\":0", "\"schemaVersion\":2", "\"schemaVersion\":01",
        "\"revision\":-1", "\"revision\":1.0", "\"revision\":1e2",
        "\"revision\":9223372036854775807", "\"revision\":9223372036854775808",
        "\"revision\":123456789012345678", "\"revision\":1234567890123456789",
        "\"state\":\"ready\"", "\"sessionId\":\"a b\"", "\"serviceRef\":\"\"",
        "\"contextData\":{\"b\":\"1\",\"a\":\"2\"}", "\"contextData\":{\"a\":\"1\",\"a\":\"2\"}",
        "\"contextData\":{\"a\":\"1\",\"b\":\"2\"}", "\"llhls\":1"}) {
    SessionRecord record;  // no braces or commas in its strings: found by a simple scan
    record.session_id = "edited";
    record.service_ref = "1:0:1";
    record.context_data = {{"k", "v"}, {"l", "w"}};
    record.revision = 7;
    std::string json = EncodeSession(record);
    CheckSameAsGeneralReader(json);
    const std::string_view name = edit.substr(0, edit.find(':') + 1);
    const size_t at = json.find(name);
    REQUIRE(at != std::string::npos);
    size_t end = at + name.size();
    int depth = 0;
    for (; end < json.size(); ++end) {
      const char c = json[end];
      if (c == '{') ++depth;
      if (c == '}' && depth-- == 0) break;
      if (c == ',' && depth == 0) break;
    }
    json.replace(at, end - at, edit);
    CheckSameAsGeneralReader(json);
  }
  CHECK(decoded > 3000);
}

TEST_CASE("random bytes are ECORRUPT") {
  RecordGenerator gen(7);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes;
    const uint32_t n = gen.Below(200);
    for (uint32_t b = 0; b < n; ++b) bytes.push_back(static_cast<char>(gen.Below(256)));
    CAPTURE(i);
    REQUIRE(CodeOf(DecodeSession(bytes).status()) == ErrorCode::kCorrupt);
  }
}

TEST_CASE("threads decoding at the same time do not disturb each other") {
  constexpr int kThreads = 8;
  std::vector<std::vector<std::string>> inputs(kThreads);
  std::vector<std::vector<SessionRecord>> wanted(kThreads);
  RecordGenerator gen(99);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < 300; ++i) {
      SessionRecord record = gen.Record();
      inputs[t].push_back(EncodeSession(record));
      wanted[t].push_back(std::move(record));
    }
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < inputs[t].size(); ++i) {
        const absl::StatusOr<SessionRecord> decoded = DecodeSession(inputs[t][i]);
        if (!decoded.ok() || !(*decoded == wanted[t][i])) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) CHECK(mismatches[t] == 0);
}

}  // namespace
}  // namespace xg2g

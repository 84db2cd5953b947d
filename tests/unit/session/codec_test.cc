// The session record's JSON form: golden records in tests/data/sessions (the
// current format byte for byte, an older one, corrupt ones) and the edge
// cases of the encoder and the decoder.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "lib/common/status.h"
#include "lib/session/session.h"

namespace xg2g {
namespace {

const std::filesystem::path kSessionsDir = std::filesystem::path(XG2G_TEST_DATA_DIR) / "sessions";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open ", path.string());
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string WithoutFinalNewline(std::string text) {
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string MessageOf(const absl::Status& status) {
  return std::string(FromAbsl(status.message()));
}

// The record tests/data/sessions/current.json holds.
SessionRecord GoldenRecord() {
  SessionRecord r;
  r.session_id = "3f2a9c0e7b1d4e5fa6b7c8d9e0f1a2b3";
  r.service_ref = "1:0:19:132F:3EF:1:C00000:0:0:0:";
  r.profile = Profile{.name = "hd-llhls", .llhls = true, .dvr_window_sec = 7200};
  r.state = SessionState::kReady;
  r.pipeline_state = PipelineState::kRunning;
  r.reason = Reason::kNone;
  r.correlation_id = "req-7f3c";
  r.created_at_unix = 1767225600;
  r.updated_at_unix = 1767225612;
  r.expires_at_unix = 1767229200;
  r.context_data = {
      {"client_ip", "192.0.2.10"},
      {"fencing_token", "42"},
      {"note", "Gr\u00fc\u00dfe \"quoted\" \\ tab\t line\nend \u2713 \U0001D11E \x01"},
      {"owner", "daemon-a"},
      {"tuner_slot", "0"},
  };
  r.principal = "9f86d081884c7d659a2feaa0c55ad015";
  r.revision = 7;
  r.deadline_unix_ms = 1767229200000;
  return r;
}

TEST_CASE("the current golden record decodes to the expected record") {
  const absl::StatusOr<SessionRecord> decoded =
      DecodeSession(ReadFile(kSessionsDir / "current.json"));
  REQUIRE_MESSAGE(decoded.ok(), MessageOf(decoded.status()));
  CHECK(*decoded == GoldenRecord());
}

TEST_CASE("encoding the golden record reproduces the committed file byte for byte") {
  CHECK(EncodeSession(GoldenRecord()) ==
        WithoutFinalNewline(ReadFile(kSessionsDir / "current.json")));
}

TEST_CASE("field order, white space, escapes and unknown fields do not change the record") {
  const absl::StatusOr<SessionRecord> decoded =
      DecodeSession(ReadFile(kSessionsDir / "current_reordered_with_unknown_fields.json"));
  REQUIRE_MESSAGE(decoded.ok(), MessageOf(decoded.status()));
  CHECK(*decoded == GoldenRecord());
}

TEST_CASE("a record written before schemaVersion existed decodes with defaults") {
  const absl::StatusOr<SessionRecord> decoded =
      DecodeSession(ReadFile(kSessionsDir / "legacy_v0.json"));
  REQUIRE_MESSAGE(decoded.ok(), MessageOf(decoded.status()));
  SessionRecord want;
  want.session_id = "legacy-session_01";
  want.service_ref = "1:0:1:445D:453:1:C00000:0:0:0:";
  want.state = SessionState::kStopped;
  want.reason = Reason::kClientStop;
  want.reason_detail = "stopped by client";
  want.correlation_id = "c-1";
  want.created_at_unix = 1700000000;
  want.updated_at_unix = 1700000300;
  CHECK(*decoded == want);
  CHECK(decoded->profile == Profile{});
  CHECK(decoded->pipeline_state == PipelineState::kIdle);
  CHECK(decoded->context_data.empty());
  CHECK(decoded->revision == 0);
}

TEST_CASE("a record with only the three required fields decodes") {
  const absl::StatusOr<SessionRecord> decoded =
      DecodeSession(ReadFile(kSessionsDir / "legacy_v0_minimal.json"));
  REQUIRE_MESSAGE(decoded.ok(), MessageOf(decoded.status()));
  SessionRecord want;
  want.session_id = "a";
  want.service_ref = "s";
  CHECK(*decoded == want);
}

TEST_CASE("an older record read and written again becomes a current record") {
  const absl::StatusOr<SessionRecord> decoded =
      DecodeSession(ReadFile(kSessionsDir / "legacy_v0.json"));
  REQUIRE(decoded.ok());
  const std::string encoded = EncodeSession(*decoded);
  CHECK(encoded.rfind("{\"schemaVersion\":1,", 0) == 0);
  const absl::StatusOr<SessionRecord> again = DecodeSession(encoded);
  REQUIRE(again.ok());
  CHECK(*again == *decoded);
}

// Each corrupt golden record and what its error message must mention.
const std::map<std::string, std::string>& CorruptExpectations() {
  static const auto* const kExpectations = new std::map<std::string, std::string>{
      {"context_value_is_a_number.json", "contextData[\"tuner_slot\"]"},
      {"created_at_is_a_string.json", "createdAtUnix"},
      {"duplicate_context_key.json", "contextData"},
      {"duplicate_state.json", "state appears twice"},
      {"dvr_window_is_fractional.json", "profile.dvrWindowSec"},
      {"empty.json", "malformed JSON"},
      {"empty_service_ref.json", "serviceRef"},
      {"expires_at_negative.json", "expiresAtUnix"},
      {"invalid_utf8.json", "UTF-8"},
      {"llhls_is_a_string.json", "profile.llhls"},
      {"missing_session_id.json", "sessionId is missing"},
      {"missing_state.json", "state is missing"},
      {"newer_schema_version.json", "written by a newer version"},
      {"not_an_object.json", "not a JSON object"},
      {"reason_detail_is_null.json", "reasonDetail"},
      {"revision_out_of_range.json", "revision is out of range"},
      {"schema_version_zero.json", "schemaVersion"},
      {"trailing_garbage.json", "trailing content"},
      {"truncated.json", "malformed JSON"},
      {"unknown_field_malformed.json", "malformed JSON"},
      {"unknown_pipeline_state.json", "pipelineState"},
      {"unknown_reason.json", "R_BOGUS"},
      {"unknown_state.json", "state has unknown value"},
      {"unsafe_session_id.json", "sessionId"},
  };
  return *kExpectations;
}

TEST_CASE("every corrupt golden record is ECORRUPT with a message naming what is wrong") {
  std::set<std::string> seen;
  for (const auto& entry : std::filesystem::directory_iterator(kSessionsDir / "corrupt")) {
    const std::string name = entry.path().filename().string();
    CAPTURE(name);
    const auto expectation = CorruptExpectations().find(name);
    REQUIRE_MESSAGE(expectation != CorruptExpectations().end(),
                    "a corrupt record without an expectation in this test");
    const absl::StatusOr<SessionRecord> decoded = DecodeSession(ReadFile(entry.path()));
    REQUIRE_FALSE(decoded.ok());
    CHECK(CodeOf(decoded.status()) == ErrorCode::kCorrupt);
    const std::string message = MessageOf(decoded.status());
    CAPTURE(message);
    CHECK(message.find(expectation->second) != std::string::npos);
    seen.insert(name);
  }
  CHECK(seen.size() == CorruptExpectations().size());
}

absl::Status DecodeStatus(std::string_view json) { return DecodeSession(json).status(); }

TEST_CASE("a JSON document that is not one object is ECORRUPT") {
  for (std::string_view text :
       {"", " ", "null", "1", "\"x\"", "[]", "[{}]", "{", "}", "{}{}", "{\"sessionId\":\"a\"",
        "{\"sessionId\" \"a\"}", "{\"sessionId\":\"a\",}", "{sessionId:\"a\"}"}) {
    CAPTURE(text);
    CHECK(CodeOf(DecodeStatus(text)) == ErrorCode::kCorrupt);
  }
}

TEST_CASE("an empty object is missing its required fields") {
  const absl::Status status = DecodeStatus("{}");
  CHECK(CodeOf(status) == ErrorCode::kCorrupt);
  CHECK(MessageOf(status).find("is missing") != std::string::npos);
}

TEST_CASE("a schemaVersion from the future is refused before its fields are judged") {
  const absl::Status status = DecodeStatus(R"({"state":7,"schemaVersion":99})");
  CHECK(CodeOf(status) == ErrorCode::kCorrupt);
  CHECK(MessageOf(status).find("written by a newer version") != std::string::npos);
}

TEST_CASE("integer fields accept the whole non-negative int64 range and nothing beyond") {
  SessionRecord record;
  record.session_id = "x";
  record.service_ref = "s";
  record.created_at_unix = std::numeric_limits<int64_t>::max();
  record.revision = std::numeric_limits<int64_t>::max();
  const absl::StatusOr<SessionRecord> decoded = DecodeSession(EncodeSession(record));
  REQUIRE(decoded.ok());
  CHECK(*decoded == record);

  const std::string prefix = R"({"sessionId":"x","serviceRef":"s","state":"NEW","createdAtUnix":)";
  for (std::string_view bad : {"9223372036854775808", "-1", "1.0", "1e3", "\"1\"", "true", "null",
                               "-9223372036854775809", "18446744073709551616", "01"}) {
    CAPTURE(bad);
    const absl::Status status = DecodeStatus(prefix + std::string(bad) + "}");
    CHECK(CodeOf(status) == ErrorCode::kCorrupt);
    CHECK(MessageOf(status).find("createdAtUnix") != std::string::npos);
  }
}

TEST_CASE("known fields given twice are ECORRUPT, also inside profile") {
  const std::string base = R"("sessionId":"a","serviceRef":"s","state":"NEW")";
  CHECK(CodeOf(DecodeStatus("{" + base + R"(,"sessionId":"a"})")) == ErrorCode::kCorrupt);
  CHECK(CodeOf(DecodeStatus("{" + base + R"(,"profile":{"name":"a","name":"b"}})")) ==
        ErrorCode::kCorrupt);
  // An escaped spelling of the same key is the same key.
  CHECK(CodeOf(DecodeStatus("{" + base + R"(,"session\u0049d":"b"})")) == ErrorCode::kCorrupt);
}

TEST_CASE("unknown fields of any shape are ignored but must be well-formed") {
  const std::string prefix = R"({"sessionId":"a","serviceRef":"s","state":"NEW","x":)";
  for (std::string_view ok :
       {"1", "-2.5e-3", "true", "null", "\"\\u00e9\"", "[]", "{}", "[[[{\"a\":[null]}]]]",
        "123456789012345678901234567890", "1e999", "-0.0E+5", "[0, -1.5e-7]"}) {
    CAPTURE(ok);
    CHECK(DecodeStatus(prefix + std::string(ok) + "}").ok());
  }
  for (std::string_view bad :
       {"nul", "tru", "[1,]", "{\"a\"}", "\"\\x\"", "01x", "[", "\"\\ud800\"", "01", "1.", ".5",
        "-", "1e", "1e+", "+1", "0x10", "[1.2.3]", "NaN"}) {
    CAPTURE(bad);
    CHECK(CodeOf(DecodeStatus(prefix + std::string(bad) + "}")) == ErrorCode::kCorrupt);
  }
}

TEST_CASE("an unknown field nested deeper than the limit is ECORRUPT, not a stack overflow") {
  for (size_t depth : {size_t{65}, size_t{100000}}) {
    CAPTURE(depth);
    const std::string json = R"({"sessionId":"a","serviceRef":"s","state":"NEW","x":)" +
                             std::string(depth, '[') + std::string(depth, ']') + "}";
    CHECK(CodeOf(DecodeStatus(json)) == ErrorCode::kCorrupt);
  }
  const std::string shallow = R"({"sessionId":"a","serviceRef":"s","state":"NEW","x":)" +
                              std::string(60, '[') + std::string(60, ']') + "}";
  CHECK(DecodeStatus(shallow).ok());
}

TEST_CASE("strings are escaped: quotes, backslashes and control characters as \\u00XX") {
  SessionRecord record;
  record.session_id = "a";
  record.service_ref = std::string("q\"b\\c\x01\x1f\n\t\x7f", 10) + std::string(1, '\0') + "z";
  const std::string json = EncodeSession(record);
  CHECK(json.find(R"("serviceRef":"q\"b\\c\u0001\u001f\u000a\u0009)"
                  "\x7f"
                  R"(\u0000z")") != std::string::npos);
  for (char c : json) {
    CHECK(static_cast<unsigned char>(c) >= 0x20);
  }
  const absl::StatusOr<SessionRecord> decoded = DecodeSession(json);
  REQUIRE(decoded.ok());
  CHECK(decoded->service_ref == record.service_ref);
}

TEST_CASE("valid UTF-8 passes through unescaped, invalid bytes are written as U+FFFD") {
  SessionRecord record;
  record.session_id = "a";
  record.service_ref = "\u00e9\u20ac\U0001F600";
  record.reason_detail = "ok \xff \xc3( \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82";
  const std::string json = EncodeSession(record);
  CHECK(json.find("\"serviceRef\":\"\u00e9\u20ac\U0001F600\"") != std::string::npos);
  const absl::StatusOr<SessionRecord> decoded = DecodeSession(json);
  REQUIRE_MESSAGE(decoded.ok(), MessageOf(decoded.status()));
  CHECK(decoded->service_ref == record.service_ref);
  CHECK(decoded->reason_detail ==
        "ok \uFFFD \uFFFD( \uFFFD\uFFFD\uFFFD \uFFFD\uFFFD\uFFFD\uFFFD \uFFFD\uFFFD");
}

TEST_CASE("a record larger than the per-thread parser's share still round trips") {
  SessionRecord record;
  record.session_id = "big";
  record.service_ref = "s";
  for (int i = 0; i < 2000; ++i) {
    record.context_data["key" + std::to_string(i)] =
        std::string(100, static_cast<char>('a' + i % 26));
  }
  const std::string json = EncodeSession(record);
  REQUIRE(json.size() > 64 * 1024);
  const absl::StatusOr<SessionRecord> decoded = DecodeSession(json);
  REQUIRE(decoded.ok());
  CHECK(*decoded == record);
  // And a small record decoded afterwards on the same thread is not affected.
  const absl::StatusOr<SessionRecord> small =
      DecodeSession(ReadFile(kSessionsDir / "current.json"));
  REQUIRE(small.ok());
  CHECK(*small == GoldenRecord());
}

TEST_CASE("every strict prefix of the golden record is ECORRUPT") {
  const std::string json = WithoutFinalNewline(ReadFile(kSessionsDir / "current.json"));
  for (size_t len = 0; len < json.size(); ++len) {
    CAPTURE(len);
    const absl::Status status = DecodeStatus(std::string_view(json).substr(0, len));
    REQUIRE(CodeOf(status) == ErrorCode::kCorrupt);
  }
}

}  // namespace
}  // namespace xg2g

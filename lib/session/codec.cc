// The session record's JSON form (DESIGN.md §2, docs/session-model.md):
// written with fmt, read with simdjson's on-demand API using error codes only.
//
// Decoding is strict about what it understands and lenient about what it does
// not: a known field with the wrong type is a CorruptError naming the field,
// an unknown field is validated as JSON and otherwise ignored so that a newer
// writer's additions do not break an older reader.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <simdjson.h>

#include "lib/common/json_writer.h"
#include "lib/common/status.h"
#include "lib/session/session.h"

namespace xg2g {
namespace {

namespace ondemand = simdjson::ondemand;

// Documents up to this size are parsed by a per-thread parser that keeps its
// buffers between calls; larger ones get a parser of their own so that one
// huge record does not pin its memory to the thread.
constexpr size_t kThreadParserMaxBytes = size_t{64} * 1024;

// Unknown fields may hold any JSON, but not arbitrarily deep JSON: the
// validation below recurses.
constexpr int kMaxUnknownDepth = 64;

// Longest excerpt of an input key quoted in an error message.
constexpr size_t kMaxQuotedKey = 64;

// ---------------------------------------------------------------------------
// Writing

// Appends `,"name":` (or `"name":` for the first member).
void AppendKey(fmt::memory_buffer& out, std::string_view name, bool first = false) {
  if (!first) out.push_back(',');
  AppendJsonString(out, name);
  out.push_back(':');
}

void AppendInt(fmt::memory_buffer& out, int64_t value) {
  fmt::format_to(std::back_inserter(out), "{}", value);
}

void AppendBool(fmt::memory_buffer& out, bool value) {
  const std::string_view text = value ? "true" : "false";
  out.append(text.data(), text.data() + text.size());
}

// An input key quoted for an error message: escaped and cut short.
std::string QuoteKey(std::string_view key) {
  fmt::memory_buffer out;
  AppendJsonString(out, key.substr(0, kMaxQuotedKey));
  std::string quoted = fmt::to_string(out);
  if (key.size() > kMaxQuotedKey) quoted += "...";
  return quoted;
}

// ---------------------------------------------------------------------------
// Reading

absl::Status Corrupt(std::string_view field, std::string_view what) {
  return CorruptError(fmt::format("session record: field {} {}", field, what));
}

// A simdjson error while reading `field` (empty: the document as a whole).
absl::Status JsonError(std::string_view field, simdjson::error_code error,
                       std::string_view expected = {}) {
  if (error == simdjson::MEMALLOC) {
    return MakeError(ErrorCode::kNoMemory, "session record: out of memory while parsing");
  }
  if (error == simdjson::INCORRECT_TYPE && !expected.empty()) {
    return Corrupt(field, fmt::format("is not {}", expected));
  }
  if (error == simdjson::NUMBER_OUT_OF_RANGE) {
    return Corrupt(field, "is out of range");
  }
  if (field.empty()) {
    return CorruptError(
        fmt::format("session record: malformed JSON ({})", simdjson::error_message(error)));
  }
  return Corrupt(field, fmt::format("is malformed JSON ({})", simdjson::error_message(error)));
}

absl::Status ReadString(ondemand::value& value, std::string_view field, std::string& out) {
  std::string_view text;
  if (auto error = value.get_string().get(text)) return JsonError(field, error, "a string");
  out.assign(text.data(), text.size());
  return absl::OkStatus();
}

absl::Status ReadInt(ondemand::value& value, std::string_view field, int64_t min, int64_t& out) {
  // Tell "not an integer" from "an integer too large" before converting:
  // simdjson reports both as a type error.
  ondemand::json_type type{};
  if (auto error = value.type().get(type)) return JsonError(field, error);
  if (type != ondemand::json_type::number) return Corrupt(field, "is not an integer");
  // A fraction or an exponent makes it no integer, whatever its value.
  for (const char c : value.raw_json_token()) {
    if (c == '.' || c == 'e' || c == 'E') return Corrupt(field, "is not an integer");
  }
  int64_t number = 0;
  if (auto error = value.get_int64().get(number)) {
    if (error == simdjson::INCORRECT_TYPE || error == simdjson::NUMBER_OUT_OF_RANGE) {
      return Corrupt(field, "is out of range");
    }
    return JsonError(field, error);
  }
  if (number < min) return Corrupt(field, fmt::format("is out of range ({} < {})", number, min));
  out = number;
  return absl::OkStatus();
}

absl::Status ReadBool(ondemand::value& value, std::string_view field, bool& out) {
  if (auto error = value.get_bool().get(out)) return JsonError(field, error, "a boolean");
  return absl::OkStatus();
}

template <typename Enum>
absl::Status ReadEnum(ondemand::value& value, std::string_view field,
                      std::optional<Enum> (*parse)(std::string_view), Enum& out) {
  std::string_view text;
  if (auto error = value.get_string().get(text)) return JsonError(field, error, "a string");
  const std::optional<Enum> parsed = parse(text);
  if (!parsed.has_value()) {
    return Corrupt(field, fmt::format("has unknown value {}", QuoteKey(text)));
  }
  out = *parsed;
  return absl::OkStatus();
}

// True when `token` (a raw token, possibly followed by white space) is a
// number as RFC 8259 spells it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view token) {
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\n' ||
                            token.back() == '\r')) {
    token.remove_suffix(1);
  }
  size_t i = 0;
  const auto digit = [&](size_t at) {
    return at < token.size() && token[at] >= '0' && token[at] <= '9';
  };
  const auto digits = [&]() {
    const size_t start = i;
    while (digit(i)) ++i;
    return i > start;
  };
  if (i < token.size() && token[i] == '-') ++i;
  if (i < token.size() && token[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < token.size() && token[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < token.size() && (token[i] == 'e' || token[i] == 'E')) {
    ++i;
    if (i < token.size() && (token[i] == '+' || token[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == token.size();
}

// Validates a value nobody asked for (an unknown field): it must be
// well-formed JSON even though its content is ignored.
// The recursion is bounded by kMaxUnknownDepth.
// NOLINTNEXTLINE(misc-no-recursion)
absl::Status SkipValue(ondemand::value& value, std::string_view field, int depth) {
  if (depth > kMaxUnknownDepth) return Corrupt(field, "is nested too deeply");
  ondemand::json_type type{};
  if (auto error = value.type().get(type)) return JsonError(field, error);
  switch (type) {
    case ondemand::json_type::object: {
      ondemand::object object;
      if (auto error = value.get_object().get(object)) return JsonError(field, error);
      for (auto member : object) {
        std::string_view key;
        if (auto error = member.unescaped_key().get(key)) return JsonError(field, error);
        ondemand::value inner;
        if (auto error = member.value().get(inner)) return JsonError(field, error);
        XG2G_RETURN_IF_ERROR(SkipValue(inner, field, depth + 1));
      }
      return absl::OkStatus();
    }
    case ondemand::json_type::array: {
      ondemand::array array;
      if (auto error = value.get_array().get(array)) return JsonError(field, error);
      for (auto element : array) {
        ondemand::value inner;
        if (auto error = element.get(inner)) return JsonError(field, error);
        XG2G_RETURN_IF_ERROR(SkipValue(inner, field, depth + 1));
      }
      return absl::OkStatus();
    }
    case ondemand::json_type::number:
      // Checked against the grammar rather than converted: any JSON number is
      // acceptable here, also one no double can hold.
      if (!IsJsonNumber(value.raw_json_token())) return Corrupt(field, "is a malformed number");
      return absl::OkStatus();
    case ondemand::json_type::string: {
      std::string_view text;
      if (auto error = value.get_string().get(text)) return JsonError(field, error);
      return absl::OkStatus();
    }
    case ondemand::json_type::boolean: {
      bool flag = false;
      if (auto error = value.get_bool().get(flag)) return JsonError(field, error);
      return absl::OkStatus();
    }
    case ondemand::json_type::null: {
      bool is_null = false;
      if (auto error = value.is_null().get(is_null)) return JsonError(field, error);
      if (!is_null) return Corrupt(field, "is malformed JSON");
      return absl::OkStatus();
    }
  }
  return Corrupt(field, "is malformed JSON");
}

// Iterates the members of the object in `value` (a type error names `field`),
// calling `on_member(key, member_value)` for each; its first error ends the
// iteration.
template <typename OnMember>
absl::Status ForEachMember(ondemand::value& value, std::string_view field, OnMember on_member) {
  ondemand::object object;
  if (auto error = value.get_object().get(object)) return JsonError(field, error, "an object");
  for (auto result : object) {
    ondemand::field member;
    if (auto error = std::move(result).get(member)) return JsonError(field, error);
    std::string_view key;
    if (auto error = member.unescaped_key().get(key)) return JsonError(field, error);
    XG2G_RETURN_IF_ERROR(on_member(key, member.value()));
  }
  return absl::OkStatus();
}

// The fields a record may carry. Each is a bit in a "seen" mask so that a
// field given twice is caught.
enum Field : uint32_t {
  kFieldSchemaVersion = 1u << 0,
  kFieldSessionId = 1u << 1,
  kFieldServiceRef = 1u << 2,
  kFieldProfile = 1u << 3,
  kFieldState = 1u << 4,
  kFieldPipelineState = 1u << 5,
  kFieldReason = 1u << 6,
  kFieldReasonDetail = 1u << 7,
  kFieldCorrelationId = 1u << 8,
  kFieldCreatedAt = 1u << 9,
  kFieldUpdatedAt = 1u << 10,
  kFieldExpiresAt = 1u << 11,
  kFieldContextData = 1u << 12,
  kFieldPrincipal = 1u << 13,
  kFieldRevision = 1u << 14,
  kFieldDeadline = 1u << 15,
};

struct FieldSpec {
  std::string_view name;
  Field bit;
};

constexpr FieldSpec kFields[] = {
    {"schemaVersion", kFieldSchemaVersion},
    {"sessionId", kFieldSessionId},
    {"serviceRef", kFieldServiceRef},
    {"profile", kFieldProfile},
    {"state", kFieldState},
    {"pipelineState", kFieldPipelineState},
    {"reason", kFieldReason},
    {"reasonDetail", kFieldReasonDetail},
    {"correlationId", kFieldCorrelationId},
    {"createdAtUnix", kFieldCreatedAt},
    {"updatedAtUnix", kFieldUpdatedAt},
    {"expiresAtUnix", kFieldExpiresAt},
    {"contextData", kFieldContextData},
    {"principal", kFieldPrincipal},
    {"revision", kFieldRevision},
    {"deadlineUnixMs", kFieldDeadline},
};

constexpr size_t kFieldCount = std::size(kFields);

// The index in kFields of the field called `name`, trying `expected` first:
// EncodeSession writes the fields in kFields order, so a record it wrote
// finds each at the first comparison.
std::optional<size_t> LookupField(std::string_view name, size_t expected) {
  if (expected < kFieldCount && kFields[expected].name == name) return expected;
  for (size_t i = 0; i < kFieldCount; ++i) {
    if (kFields[i].name == name) return i;
  }
  return std::nullopt;
}

absl::Status CheckSchemaVersion(int64_t version) {
  if (version > kSessionSchemaVersion) {
    return CorruptError(fmt::format(
        "session record: schemaVersion {} was written by a newer version (this one reads up to {})",
        version, kSessionSchemaVersion));
  }
  return absl::OkStatus();
}

absl::Status ReadProfile(ondemand::value& value, Profile& profile) {
  uint32_t seen = 0;
  return ForEachMember(value, "profile", [&](std::string_view key, ondemand::value& inner) {
    uint32_t bit = 0;
    if (key == "name") {
      bit = 1;
    } else if (key == "llhls") {
      bit = 2;
    } else if (key == "dvrWindowSec") {
      bit = 4;
    } else {
      return SkipValue(inner, "profile", 1);
    }
    if (seen & bit) return Corrupt(fmt::format("profile.{}", key), "appears twice");
    seen |= bit;
    if (bit == 1) return ReadString(inner, "profile.name", profile.name);
    if (bit == 2) return ReadBool(inner, "profile.llhls", profile.llhls);
    return ReadInt(inner, "profile.dvrWindowSec", 0, profile.dvr_window_sec);
  });
}

absl::Status ReadContextData(ondemand::value& value, std::map<std::string, std::string>& out) {
  return ForEachMember(value, "contextData", [&](std::string_view key, ondemand::value& inner) {
    std::string_view entry;
    if (auto error = inner.get_string().get(entry)) {
      return JsonError(fmt::format("contextData[{}]", QuoteKey(key)), error, "a string");
    }
    // EncodeSession writes the keys in order: then the hint is right and
    // the insertion takes no search.
    const size_t before = out.size();
    out.emplace_hint(out.end(), std::piecewise_construct, std::forward_as_tuple(key),
                     std::forward_as_tuple(entry));
    if (out.size() == before) {
      return Corrupt("contextData", fmt::format("has the key {} twice", QuoteKey(key)));
    }
    return absl::OkStatus();
  });
}

absl::Status ReadField(Field field, std::string_view name, ondemand::value& value,
                       SessionRecord& record) {
  switch (field) {
    case kFieldSchemaVersion: {
      int64_t version = 0;
      XG2G_RETURN_IF_ERROR(ReadInt(value, name, 1, version));
      return CheckSchemaVersion(version);
    }
    case kFieldSessionId:
      XG2G_RETURN_IF_ERROR(ReadString(value, name, record.session_id));
      if (!IsValidSessionId(record.session_id)) {
        return Corrupt(name, "is not a valid session id (^[A-Za-z0-9_-]{1,64}$)");
      }
      return absl::OkStatus();
    case kFieldServiceRef:
      XG2G_RETURN_IF_ERROR(ReadString(value, name, record.service_ref));
      if (record.service_ref.empty()) return Corrupt(name, "is empty");
      return absl::OkStatus();
    case kFieldProfile: return ReadProfile(value, record.profile);
    case kFieldState: return ReadEnum(value, name, &ParseState, record.state);
    case kFieldPipelineState:
      return ReadEnum(value, name, &ParsePipelineState, record.pipeline_state);
    case kFieldReason: return ReadEnum(value, name, &ParseReason, record.reason);
    case kFieldReasonDetail: return ReadString(value, name, record.reason_detail);
    case kFieldCorrelationId: return ReadString(value, name, record.correlation_id);
    case kFieldCreatedAt: return ReadInt(value, name, 0, record.created_at_unix);
    case kFieldUpdatedAt: return ReadInt(value, name, 0, record.updated_at_unix);
    case kFieldExpiresAt: return ReadInt(value, name, 0, record.expires_at_unix);
    case kFieldContextData: return ReadContextData(value, record.context_data);
    case kFieldPrincipal: return ReadString(value, name, record.principal);
    case kFieldRevision: return ReadInt(value, name, 0, record.revision);
    case kFieldDeadline: return ReadInt(value, name, 0, record.deadline_unix_ms);
  }
  return InternalError(fmt::format("session record: field {} has no reader", name));
}

absl::StatusOr<SessionRecord> DecodeWith(ondemand::parser& parser,
                                         simdjson::padded_string_view padded) {
  ondemand::document doc;
  if (auto error = parser.iterate(padded).get(doc)) return JsonError({}, error);
  ondemand::object object;
  if (auto error = doc.get_object().get(object)) {
    if (error == simdjson::INCORRECT_TYPE) {
      return CorruptError("session record: not a JSON object");
    }
    return JsonError({}, error);
  }

  // A record from a newer writer is refused as such before anything else in
  // it is judged: its fields may mean something this version does not know.
  {
    ondemand::value version_value;
    const auto error = object.find_field_unordered("schemaVersion").get(version_value);
    if (error == simdjson::SUCCESS) {
      int64_t version = 0;
      XG2G_RETURN_IF_ERROR(ReadInt(version_value, "schemaVersion", 1, version));
      XG2G_RETURN_IF_ERROR(CheckSchemaVersion(version));
    } else if (error != simdjson::NO_SUCH_FIELD) {
      return JsonError({}, error);
    }
    bool has_members = false;
    if (auto reset_error = object.reset().get(has_members)) return JsonError({}, reset_error);
  }

  SessionRecord record;
  uint32_t seen = 0;
  size_t expected = 0;  // the index in kFields of the field EncodeSession writes next
  for (auto result : object) {
    ondemand::field member;
    if (auto error = std::move(result).get(member)) return JsonError({}, error);
    std::string_view key;
    if (auto error = member.unescaped_key().get(key)) return JsonError({}, error);
    ondemand::value& value = member.value();
    const std::optional<size_t> index = LookupField(key, expected);
    if (!index.has_value()) {
      // Forward compatibility: fields this version does not know are ignored.
      XG2G_RETURN_IF_ERROR(SkipValue(value, QuoteKey(key), 1));
      continue;
    }
    expected = *index + 1;
    const Field field = kFields[*index].bit;
    if (seen & field) return Corrupt(key, "appears twice");
    seen |= field;
    XG2G_RETURN_IF_ERROR(ReadField(field, key, value, record));
  }

  const char* location = nullptr;
  const auto end_error = doc.current_location().get(location);
  if (end_error == simdjson::SUCCESS) {
    return CorruptError("session record: trailing content after the JSON object");
  }
  if (end_error != simdjson::OUT_OF_BOUNDS) return JsonError({}, end_error);

  for (const Field required : {kFieldSessionId, kFieldServiceRef, kFieldState}) {
    if ((seen & required) == 0) {
      for (const FieldSpec& spec : kFields) {
        if (spec.bit == required) return Corrupt(spec.name, "is missing");
      }
    }
  }
  return record;
}

// ---------------------------------------------------------------------------
// Reading a record exactly as EncodeSession writes it
//
// Nearly every record read is one EncodeSession wrote: the fields in its order
// and form, strings that needed no escape. FastDecode reads exactly that
// form, byte by byte, and answers nullopt for anything else (an escape, a
// field out of place, white space, a number in another spelling, a value the
// general reader would refuse), which then goes to the general reader. What
// it accepts is valid JSON that the general reader decodes to the same record
// (the same checks, the same parse functions), so the outcome of
// DecodeSession never depends on which of the two read the record.

class CanonicalReader {
 public:
  explicit CanonicalReader(std::string_view json)
      : at_(json.data()), end_(json.data() + json.size()) {}

  bool AtEnd() const { return at_ == end_; }

  // The bytes of the string literal `literal` (its size known when compiled,
  // so the comparison is a few instructions), exactly.
  template <size_t N>
  bool Literal(const char (&literal)[N]) {
    constexpr size_t kSize = N - 1;
    if (static_cast<size_t>(end_ - at_) < kSize || std::memcmp(at_, literal, kSize) != 0) {
      return false;
    }
    at_ += kSize;
    return true;
  }

  // A string without escapes or control characters (the input's UTF-8 is
  // checked as a whole beforehand). Eight bytes at a time while eight remain.
  bool String(std::string_view& out) {
    if (at_ == end_ || *at_ != '"') return false;
    const char* begin = ++at_;
    while (end_ - at_ >= 8) {
      uint64_t word = 0;
      std::memcpy(&word, at_, sizeof(word));
      if (Special(word) != 0) break;  // the byte is among these eight
      at_ += 8;
    }
    while (at_ != end_) {
      const auto c = static_cast<unsigned char>(*at_);
      if (c == '"') {
        out = std::string_view(begin, static_cast<size_t>(at_ - begin));
        ++at_;
        return true;
      }
      if (c == '\\' || c < 0x20) return false;
      ++at_;
    }
    return false;
  }

  bool String(std::string& out) {
    std::string_view text;
    if (!String(text)) return false;
    out.assign(text.data(), text.size());
    return true;
  }

  // 0 or a decimal without a leading zero, of at most 18 digits: always an
  // int64_t, never negative.
  bool Int(int64_t& out) {
    constexpr ptrdiff_t kMaxDigits = 18;
    const char* begin = at_;
    int64_t value = 0;
    for (; at_ != end_ && *at_ >= '0' && *at_ <= '9'; ++at_) {
      if (at_ - begin == kMaxDigits) return false;
      value = value * 10 + (*at_ - '0');
    }
    const ptrdiff_t digits = at_ - begin;
    if (digits == 0 || (digits > 1 && *begin == '0')) return false;
    out = value;
    return true;
  }

  bool Bool(bool& out) {
    if (Literal("true")) {
      out = true;
      return true;
    }
    if (Literal("false")) {
      out = false;
      return true;
    }
    return false;
  }

  template <typename Enum>
  bool Name(std::optional<Enum> (*parse)(std::string_view), Enum& out) {
    std::string_view text;
    if (!String(text)) return false;
    const std::optional<Enum> parsed = parse(text);
    if (!parsed.has_value()) return false;
    out = *parsed;
    return true;
  }

 private:
  // Nonzero when one of the eight bytes of `word` is a quote, a backslash or
  // a control character (below 0x20). Exact: no byte is flagged wrongly
  // (the high bit of each byte is cleared before the tests, and bytes of
  // 0x80 and above are none of the three).
  static uint64_t Special(uint64_t word) {
    constexpr uint64_t kOnes = 0x0101010101010101ull;
    constexpr uint64_t kHigh = 0x8080808080808080ull;
    const uint64_t low7 = word & ~kHigh;
    // A byte's high bit ends up set when its low seven bits are below 0x20,
    // or equal '"' or '\\'; then the bytes that had the high bit set are
    // taken out.
    const uint64_t below = ~(low7 + (0x80 - 0x20) * kOnes) & kHigh;
    const uint64_t quote = ~((low7 ^ ('"' * kOnes)) + 0x7f * kOnes) & kHigh;
    const uint64_t slash = ~((low7 ^ ('\\' * kOnes)) + 0x7f * kOnes) & kHigh;
    return (below | quote | slash) & ~word & kHigh;
  }

  const char* at_;
  const char* end_;
};

// The record when `json` is in EncodeSession's exact form, else nullopt.
std::optional<SessionRecord> FastDecode(std::string_view json) {
  if (json.size() > kThreadParserMaxBytes || !simdjson::validate_utf8(json.data(), json.size())) {
    return std::nullopt;
  }
  CanonicalReader in(json);
  SessionRecord record;
  int64_t version = 0;
  if (!in.Literal("{\"schemaVersion\":") || !in.Int(version) || version < 1 ||
      version > kSessionSchemaVersion) {
    return std::nullopt;
  }
  if (!in.Literal(",\"sessionId\":") || !in.String(record.session_id) ||
      !IsValidSessionId(record.session_id)) {
    return std::nullopt;
  }
  if (!in.Literal(",\"serviceRef\":") || !in.String(record.service_ref) ||
      record.service_ref.empty()) {
    return std::nullopt;
  }
  if (!in.Literal(",\"profile\":{\"name\":") || !in.String(record.profile.name) ||
      !in.Literal(",\"llhls\":") || !in.Bool(record.profile.llhls) ||
      !in.Literal(",\"dvrWindowSec\":") || !in.Int(record.profile.dvr_window_sec) ||
      !in.Literal("}")) {
    return std::nullopt;
  }
  if (!in.Literal(",\"state\":") || !in.Name(&ParseState, record.state) ||
      !in.Literal(",\"pipelineState\":") ||
      !in.Name(&ParsePipelineState, record.pipeline_state) || !in.Literal(",\"reason\":") ||
      !in.Name(&ParseReason, record.reason)) {
    return std::nullopt;
  }
  if (!in.Literal(",\"reasonDetail\":") || !in.String(record.reason_detail) ||
      !in.Literal(",\"correlationId\":") || !in.String(record.correlation_id) ||
      !in.Literal(",\"createdAtUnix\":") || !in.Int(record.created_at_unix) ||
      !in.Literal(",\"updatedAtUnix\":") || !in.Int(record.updated_at_unix) ||
      !in.Literal(",\"expiresAtUnix\":") || !in.Int(record.expires_at_unix)) {
    return std::nullopt;
  }
  if (!in.Literal(",\"contextData\":{")) return std::nullopt;
  if (!in.Literal("}")) {
    // Keys in strictly increasing order, as the map writes them: none twice,
    // and each insertion goes at the end.
    std::string_view previous;
    for (bool first = true;; first = false) {
      std::string_view key;
      std::string_view value;
      if (!in.String(key) || (!first && !(previous < key)) || !in.Literal(":") ||
          !in.String(value)) {
        return std::nullopt;
      }
      record.context_data.emplace_hint(record.context_data.end(), std::piecewise_construct,
                                        std::forward_as_tuple(key), std::forward_as_tuple(value));
      previous = key;
      if (in.Literal("}")) break;
      if (!in.Literal(",")) return std::nullopt;
    }
  }
  if (!in.Literal(",\"principal\":") || !in.String(record.principal) ||
      !in.Literal(",\"revision\":") || !in.Int(record.revision) ||
      !in.Literal(",\"deadlineUnixMs\":") || !in.Int(record.deadline_unix_ms) ||
      !in.Literal("}") || !in.AtEnd()) {
    return std::nullopt;
  }
  return record;
}

}  // namespace

std::string EncodeSession(const SessionRecord& record) {
  fmt::memory_buffer out;
  out.push_back('{');
  AppendKey(out, "schemaVersion", /*first=*/true);
  AppendInt(out, kSessionSchemaVersion);
  AppendKey(out, "sessionId");
  AppendJsonString(out, record.session_id);
  AppendKey(out, "serviceRef");
  AppendJsonString(out, record.service_ref);
  AppendKey(out, "profile");
  out.push_back('{');
  AppendKey(out, "name", /*first=*/true);
  AppendJsonString(out, record.profile.name);
  AppendKey(out, "llhls");
  AppendBool(out, record.profile.llhls);
  AppendKey(out, "dvrWindowSec");
  AppendInt(out, record.profile.dvr_window_sec);
  out.push_back('}');
  AppendKey(out, "state");
  AppendJsonString(out, StateName(record.state));
  AppendKey(out, "pipelineState");
  AppendJsonString(out, PipelineStateName(record.pipeline_state));
  AppendKey(out, "reason");
  AppendJsonString(out, ReasonName(record.reason));
  AppendKey(out, "reasonDetail");
  AppendJsonString(out, record.reason_detail);
  AppendKey(out, "correlationId");
  AppendJsonString(out, record.correlation_id);
  AppendKey(out, "createdAtUnix");
  AppendInt(out, record.created_at_unix);
  AppendKey(out, "updatedAtUnix");
  AppendInt(out, record.updated_at_unix);
  AppendKey(out, "expiresAtUnix");
  AppendInt(out, record.expires_at_unix);
  AppendKey(out, "contextData");
  out.push_back('{');
  bool first = true;
  for (const auto& [key, value] : record.context_data) {
    AppendKey(out, key, first);
    AppendJsonString(out, value);
    first = false;
  }
  out.push_back('}');
  AppendKey(out, "principal");
  AppendJsonString(out, record.principal);
  AppendKey(out, "revision");
  AppendInt(out, record.revision);
  AppendKey(out, "deadlineUnixMs");
  AppendInt(out, record.deadline_unix_ms);
  out.push_back('}');
  return fmt::to_string(out);
}

absl::StatusOr<SessionRecord> DecodeSession(std::string_view json) {
  if (std::optional<SessionRecord> record = FastDecode(json)) return *std::move(record);
  if (json.size() <= kThreadParserMaxBytes) {
    // The padded copy simdjson reads goes into a buffer the thread keeps too:
    // a small record costs no allocation for it.
    thread_local std::unique_ptr<char[]> buffer;
    thread_local size_t capacity = 0;
    const size_t needed = json.size() + simdjson::SIMDJSON_PADDING;
    if (capacity < needed) {
      const size_t grown = std::max(needed, std::min(2 * capacity, kThreadParserMaxBytes +
                                                                       simdjson::SIMDJSON_PADDING));
      buffer.reset(new (std::nothrow) char[grown]);
      capacity = buffer != nullptr ? grown : 0;
      if (buffer == nullptr) {
        return MakeError(ErrorCode::kNoMemory, "session record: out of memory while parsing");
      }
    }
    if (!json.empty()) std::memcpy(buffer.get(), json.data(), json.size());
    std::memset(buffer.get() + json.size(), 0, simdjson::SIMDJSON_PADDING);
    thread_local ondemand::parser parser;
    return DecodeWith(parser, simdjson::padded_string_view(buffer.get(), json.size(), needed));
  }
  const simdjson::padded_string padded(json);
  if (padded.data() == nullptr) {
    return MakeError(ErrorCode::kNoMemory, "session record: out of memory while parsing");
  }
  ondemand::parser parser;
  return DecodeWith(parser, padded);
}

}  // namespace xg2g

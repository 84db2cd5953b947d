#include "lib/http/intent_body.h"

#include <simdjson.h>

#include <fmt/format.h>

#include "lib/common/json_writer.h"

namespace xg2g {
namespace {

namespace ondemand = simdjson::ondemand;

constexpr size_t kThreadParserMaxBytes = size_t{64} * 1024;
constexpr size_t kMaxQuotedKey = 64;

std::string QuoteKey(std::string_view key) {
  std::string quoted = JsonQuote(key.substr(0, kMaxQuotedKey));
  if (key.size() > kMaxQuotedKey) quoted += "...";
  return quoted;
}

bool Fail(BodyError* error, std::string field, std::string message) {
  if (error != nullptr) {
    error->field = std::move(field);
    error->message = std::move(message);
  }
  return false;
}

std::string JsonProblem(simdjson::error_code code) {
  return fmt::format("the body is not valid JSON ({})", simdjson::error_message(code));
}

// Reads a string member; null leaves `out` empty (absent).
bool ReadString(ondemand::value& value, std::string_view field, std::optional<std::string>& out,
                BodyError* error) {
  ondemand::json_type type{};
  if (auto e = value.type().get(type)) return Fail(error, std::string(field), JsonProblem(e));
  if (type == ondemand::json_type::null) {
    bool is_null = false;
    if (auto e = value.is_null().get(is_null); e || !is_null) {
      return Fail(error, std::string(field), fmt::format("{} is malformed", field));
    }
    out.reset();
    return true;
  }
  std::string_view text;
  if (auto e = value.get_string().get(text)) {
    if (e == simdjson::INCORRECT_TYPE) {
      return Fail(error, std::string(field), fmt::format("{} must be a string", field));
    }
    return Fail(error, std::string(field), JsonProblem(e));
  }
  out.emplace(text);
  return true;
}

bool ReadParams(ondemand::value& value, std::map<std::string, std::string>& out, BodyError* error) {
  ondemand::json_type type{};
  if (auto e = value.type().get(type)) return Fail(error, "params", JsonProblem(e));
  if (type == ondemand::json_type::null) {
    bool is_null = false;
    if (auto e = value.is_null().get(is_null); e || !is_null) {
      return Fail(error, "params", "params is malformed");
    }
    return true;
  }
  ondemand::object object;
  if (auto e = value.get_object().get(object)) {
    if (e == simdjson::INCORRECT_TYPE) {
      return Fail(error, "params", "params must be an object of strings");
    }
    return Fail(error, "params", JsonProblem(e));
  }
  for (auto member : object) {
    std::string_view key;
    if (auto e = member.unescaped_key().get(key)) return Fail(error, "params", JsonProblem(e));
    std::string name(key);
    ondemand::value inner;
    if (auto e = member.value().get(inner)) return Fail(error, "params", JsonProblem(e));
    std::string_view text;
    if (auto e = inner.get_string().get(text)) {
      if (e == simdjson::INCORRECT_TYPE) {
        return Fail(error, "params." + name,
                    fmt::format("params.{} must be a string", QuoteKey(name)));
      }
      return Fail(error, "params", JsonProblem(e));
    }
    if (!out.emplace(name, std::string(text)).second) {
      return Fail(error, "params." + name,
                  fmt::format("params lists {} twice", QuoteKey(name)));
    }
  }
  return true;
}

enum Field : unsigned {
  kType = 1u << 0,
  kServiceRef = 1u << 1,
  kProfile = 1u << 2,
  kSessionId = 1u << 3,
  kIdempotencyKey = 1u << 4,
  kCorrelationId = 1u << 5,
  kParams = 1u << 6,
};

std::optional<IntentBody> ParseWith(ondemand::parser& parser, const simdjson::padded_string& padded,
                                    BodyError* error) {
  ondemand::document doc;
  if (auto e = parser.iterate(padded).get(doc)) {
    Fail(error, "", JsonProblem(e));
    return std::nullopt;
  }
  ondemand::object object;
  if (auto e = doc.get_object().get(object)) {
    Fail(error, "", e == simdjson::INCORRECT_TYPE ? "the body must be a JSON object"
                                                  : JsonProblem(e));
    return std::nullopt;
  }
  IntentBody body;
  std::optional<std::string> type;
  unsigned seen = 0;
  for (auto member : object) {
    std::string_view key;
    if (auto e = member.unescaped_key().get(key)) {
      Fail(error, "", JsonProblem(e));
      return std::nullopt;
    }
    ondemand::value value;
    if (auto e = member.value().get(value)) {
      Fail(error, std::string(key.substr(0, kMaxQuotedKey)), JsonProblem(e));
      return std::nullopt;
    }
    Field field{};
    std::optional<std::string>* target = nullptr;
    if (key == "type") {
      field = kType;
      target = &type;
    } else if (key == "serviceRef") {
      field = kServiceRef;
      target = &body.service_ref;
    } else if (key == "profile") {
      field = kProfile;
      target = &body.profile;
    } else if (key == "sessionId") {
      field = kSessionId;
      target = &body.session_id;
    } else if (key == "idempotencyKey") {
      field = kIdempotencyKey;
      target = &body.idempotency_key;
    } else if (key == "correlationId") {
      field = kCorrelationId;
      target = &body.correlation_id;
    } else if (key == "params") {
      field = kParams;
    } else {
      Fail(error, std::string(key.substr(0, kMaxQuotedKey)),
           fmt::format("unknown field {}", QuoteKey(key)));
      return std::nullopt;
    }
    if (seen & field) {
      Fail(error, std::string(key), fmt::format("field {} appears twice", key));
      return std::nullopt;
    }
    seen |= field;
    const bool ok = target != nullptr ? ReadString(value, key, *target, error)
                                      : ReadParams(value, body.params, error);
    if (!ok) return std::nullopt;
  }
  const char* location = nullptr;
  const auto end = doc.current_location().get(location);
  if (end == simdjson::SUCCESS) {
    Fail(error, "", "trailing content after the JSON object");
    return std::nullopt;
  }
  if (end != simdjson::OUT_OF_BOUNDS) {
    Fail(error, "", JsonProblem(end));
    return std::nullopt;
  }

  if (!type) {
    Fail(error, "type", "type is missing (stream.start or stream.stop)");
    return std::nullopt;
  }
  if (*type == "stream.start") {
    body.type = IntentType::kStart;
    if (!body.service_ref || body.service_ref->empty()) {
      Fail(error, "serviceRef", "serviceRef is missing");
      return std::nullopt;
    }
  } else if (*type == "stream.stop") {
    body.type = IntentType::kStop;
    if (!body.session_id || body.session_id->empty()) {
      Fail(error, "sessionId", "sessionId is missing");
      return std::nullopt;
    }
  } else {
    Fail(error, "type",
         fmt::format("type {} is not stream.start or stream.stop", QuoteKey(*type)));
    return std::nullopt;
  }
  return body;
}

}  // namespace

std::optional<IntentBody> ParseIntentBody(std::string_view body, BodyError* error) {
  const simdjson::padded_string padded(body);
  if (padded.data() == nullptr) {
    Fail(error, "", "out of memory while parsing the body");
    return std::nullopt;
  }
  if (body.size() <= kThreadParserMaxBytes) {
    thread_local ondemand::parser parser;
    return ParseWith(parser, padded, error);
  }
  ondemand::parser parser;
  return ParseWith(parser, padded, error);
}

}  // namespace xg2g

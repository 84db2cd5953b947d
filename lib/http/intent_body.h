// The body of POST /api/v3/intents: a JSON object
//   {"type":"stream.start"|"stream.stop", "serviceRef", "profile",
//    "sessionId", "idempotencyKey", "correlationId", "params":{string:string}}
// read strictly: unknown fields, repeated fields, wrong types and trailing
// content are errors naming the field. A member whose value is null counts
// as absent.
//
// Pure function, thread-safe (simdjson parsers are per thread).
#ifndef XG2G_LIB_HTTP_INTENT_BODY_H_
#define XG2G_LIB_HTTP_INTENT_BODY_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace xg2g {

enum class IntentType { kStart, kStop };

struct IntentBody {
  IntentType type = IntentType::kStart;
  std::optional<std::string> service_ref;
  std::optional<std::string> profile;
  std::optional<std::string> session_id;
  std::optional<std::string> idempotency_key;
  std::optional<std::string> correlation_id;
  std::map<std::string, std::string> params;
};

struct BodyError {
  std::string field;    // "" when the document as a whole is wrong
  std::string message;
};

// Parses and checks the shape. Field contents (lengths, characters) are the
// engine's to judge, except that "type" must be one of the two intents and a
// stop needs "sessionId" and a start "serviceRef" (non-empty strings).
std::optional<IntentBody> ParseIntentBody(std::string_view body, BodyError* error);

}  // namespace xg2g

#endif  // XG2G_LIB_HTTP_INTENT_BODY_H_

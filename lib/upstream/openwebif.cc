#include "lib/upstream/openwebif.h"

#include <curl/curl.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

absl::Status Bad(std::string_view endpoint, std::string_view what) {
  return CorruptError(fmt::format("receiver answer to {}: {}", endpoint, what));
}

absl::StatusOr<element> ParseRoot(simdjson::dom::parser& parser,
                                  const simdjson::padded_string& padded,
                                  std::string_view endpoint) {
  element root;
  const auto error = parser.parse(padded).get(root);
  if (error != simdjson::SUCCESS) {
    return Bad(endpoint, fmt::format("not JSON ({})", simdjson::error_message(error)));
  }
  if (root.type() != element_type::OBJECT) return Bad(endpoint, "not a JSON object");
  return root;
}

// The member `key` of `obj` if it exists.
std::optional<element> Member(const element& obj, std::string_view key) {
  element value;
  if (obj[key].get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// A number, or a string holding one ("14.29", "92 %", "14.29 dB"); nullopt
// for "", "N/A", null and anything else.
std::optional<double> NumberOrString(const element& value) {
  switch (value.type()) {
    case element_type::INT64: return static_cast<double>(value.get_int64().value_unsafe());
    case element_type::UINT64: return static_cast<double>(value.get_uint64().value_unsafe());
    case element_type::DOUBLE: return value.get_double().value_unsafe();
    case element_type::STRING: {
      std::string_view text = Trim(value.get_string().value_unsafe());
      double out = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
      if (ec != std::errc() || end == text.data()) return std::nullopt;
      const std::string_view rest = Trim(std::string_view(end, text.data() + text.size() - end));
      if (!rest.empty() && rest != "%" && !EqualsIgnoreCase(rest, "dB")) return std::nullopt;
      if (!std::isfinite(out)) return std::nullopt;
      return out;
    }
    default: return std::nullopt;
  }
}

// A flag sent as true/false, 0/1 or "true"/"false"/"1"/"0"/"yes"/"no".
std::optional<bool> Flag(const element& value) {
  switch (value.type()) {
    case element_type::BOOL: return value.get_bool().value_unsafe();
    case element_type::INT64: return value.get_int64().value_unsafe() != 0;
    case element_type::UINT64: return value.get_uint64().value_unsafe() != 0;
    case element_type::STRING: {
      const std::string_view text = Trim(value.get_string().value_unsafe());
      if (EqualsIgnoreCase(text, "true") || text == "1" || EqualsIgnoreCase(text, "yes")) {
        return true;
      }
      if (EqualsIgnoreCase(text, "false") || text == "0" || EqualsIgnoreCase(text, "no")) {
        return false;
      }
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

// A string member; numbers are written out (OpenWebIF sends "N/A" or a
// number for several fields); absent or null is "".
absl::StatusOr<std::string> Text(const element& obj, std::string_view key,
                                 std::string_view endpoint) {
  std::optional<element> value = Member(obj, key);
  if (!value) return std::string();
  switch (value->type()) {
    case element_type::STRING: return std::string(value->get_string().value_unsafe());
    case element_type::NULL_VALUE: return std::string();
    case element_type::INT64: return std::to_string(value->get_int64().value_unsafe());
    case element_type::UINT64: return std::to_string(value->get_uint64().value_unsafe());
    case element_type::BOOL: return std::string(value->get_bool().value_unsafe() ? "true" : "false");
    default: return Bad(endpoint, fmt::format("'{}' is not a string", key));
  }
}

absl::StatusOr<CurrentService> ReadService(const element& info, std::string_view endpoint,
                                           std::string_view where) {
  if (info.type() != element_type::OBJECT) {
    return Bad(endpoint, fmt::format("'{}' is not an object", where));
  }
  CurrentService service;
  XG2G_ASSIGN_OR_RETURN(service.service_ref, Text(info, "ref", endpoint));
  XG2G_ASSIGN_OR_RETURN(service.name, Text(info, "name", endpoint));
  XG2G_ASSIGN_OR_RETURN(service.provider, Text(info, "provider", endpoint));
  // {"result": false} is what OpenWebIF answers when nothing plays.
  if (std::optional<element> result = Member(info, "result")) {
    if (std::optional<bool> ok = Flag(*result); ok.has_value() && !*ok) service = CurrentService{};
  }
  return service;
}

}  // namespace

absl::StatusOr<ZapAnswer> ParseZapAnswer(std::string_view json) {
  constexpr std::string_view kEndpoint = "/api/zap";
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  XG2G_ASSIGN_OR_RETURN(element root, ParseRoot(parser, padded, kEndpoint));
  ZapAnswer answer;
  std::optional<element> result = Member(root, "result");
  if (!result) return Bad(kEndpoint, "'result' is missing");
  std::optional<bool> flag = Flag(*result);
  if (!flag) return Bad(kEndpoint, "'result' is not a boolean");
  answer.result = *flag;
  XG2G_ASSIGN_OR_RETURN(answer.message, Text(root, "message", kEndpoint));
  return answer;
}

absl::StatusOr<CurrentService> ParseCurrentService(std::string_view json) {
  constexpr std::string_view kEndpoint = "/api/getcurrent";
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  XG2G_ASSIGN_OR_RETURN(element root, ParseRoot(parser, padded, kEndpoint));
  std::optional<element> info = Member(root, "info");
  if (!info) return Bad(kEndpoint, "'info' is missing");
  return ReadService(*info, kEndpoint, "info");
}

absl::StatusOr<AboutAnswer> ParseAboutAnswer(std::string_view json) {
  constexpr std::string_view kEndpoint = "/api/about";
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  XG2G_ASSIGN_OR_RETURN(element root, ParseRoot(parser, padded, kEndpoint));
  AboutAnswer answer;
  std::optional<element> info = Member(root, "info");
  if (!info) return Bad(kEndpoint, "'info' is missing");
  if (info->type() != element_type::OBJECT) return Bad(kEndpoint, "'info' is not an object");
  XG2G_ASSIGN_OR_RETURN(answer.brand, Text(*info, "brand", kEndpoint));
  XG2G_ASSIGN_OR_RETURN(answer.model, Text(*info, "model", kEndpoint));
  XG2G_ASSIGN_OR_RETURN(answer.webif_version, Text(*info, "webifver", kEndpoint));
  if (std::optional<element> service = Member(root, "service")) {
    XG2G_ASSIGN_OR_RETURN(answer.service, ReadService(*service, kEndpoint, "service"));
  }
  return answer;
}

absl::StatusOr<SignalInfo> ParseSignalInfo(std::string_view json) {
  constexpr std::string_view kEndpoint = "/api/signal";
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  XG2G_ASSIGN_OR_RETURN(element root, ParseRoot(parser, padded, kEndpoint));
  SignalInfo signal;
  if (auto v = Member(root, "snr")) signal.snr_percent = NumberOrString(*v);
  if (auto v = Member(root, "snr_db")) signal.snr_db = NumberOrString(*v);
  if (auto v = Member(root, "agc")) signal.agc_percent = NumberOrString(*v);
  if (auto v = Member(root, "ber")) signal.ber = NumberOrString(*v);
  XG2G_ASSIGN_OR_RETURN(signal.tuner_type, Text(root, "tunertype", kEndpoint));
  if (auto v = Member(root, "tunernumber")) {
    if (std::optional<double> n = NumberOrString(*v);
        n.has_value() && *n >= 0 && *n < 1024 && *n == std::floor(*n)) {
      signal.tuner_number = static_cast<int>(*n);
    }
  }
  if (auto v = Member(root, "inStandby")) signal.in_standby = Flag(*v).value_or(false);
  for (std::string_view key : {"lock", "tuner_locked"}) {
    if (auto v = Member(root, key)) {
      if (std::optional<bool> flag = Flag(*v)) {
        signal.locked = *flag;
        signal.lock_reported = true;
        break;
      }
      return Bad(kEndpoint, fmt::format("'{}' is not a boolean", key));
    }
  }
  if (!signal.lock_reported) {
    signal.locked = signal.snr_percent.has_value() && *signal.snr_percent > 0;
  }
  if (signal.in_standby) signal.locked = false;
  return signal;
}

bool SameServiceRef(std::string_view a, std::string_view b) {
  auto normal = [](std::string_view ref) {
    std::string out;
    if (ref.empty() || ref.size() > 4096) return out;  // no ref is empty or that long
    int length = 0;
    // The length is given (0 would make libcurl call strlen on a view).
    char* decoded = curl_easy_unescape(nullptr, ref.data(), static_cast<int>(ref.size()), &length);
    if (decoded != nullptr) {
      out.assign(decoded, static_cast<size_t>(length));
      curl_free(decoded);
    } else {
      out.assign(ref);
    }
    while (!out.empty() && (out.back() == ':' || std::isspace(static_cast<unsigned char>(out.back())))) {
      out.pop_back();
    }
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
  };
  const std::string x = normal(a);
  return !x.empty() && x == normal(b);
}

std::string DescribeSignal(const SignalInfo& s) {
  auto number = [](const std::optional<double>& v, std::string_view unit) {
    return v.has_value() ? fmt::format("{:g}{}", *v, unit) : std::string("n/a");
  };
  std::string out = fmt::format("snr {}", number(s.snr_percent, "%"));
  if (s.snr_db.has_value()) out += fmt::format(" ({:g} dB)", *s.snr_db);
  out += fmt::format(", agc {}, ber {}", number(s.agc_percent, "%"), number(s.ber, ""));
  if (s.in_standby) out += ", in standby";
  out += s.locked ? ", locked" : ", no lock";
  return out;
}

}  // namespace xg2g

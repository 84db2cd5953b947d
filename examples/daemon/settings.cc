// xg2gd's configuration (settings.h).
#include "settings.h"

#include <simdjson.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <xg2g/xg2g.h>

namespace xg2gd {

const std::vector<Key>& Keys() {
  static const std::vector<Key> kKeys = {
      {"XG2G_LISTEN", "127.0.0.1:8088", Kind::kText, "address:port to serve on ([::1]:8088 for IPv6)"},
      {"XG2G_STORE", "lmdb:./var/xg2g", Kind::kText, "memory:, lmdb:DIR or redis://[:PASSWORD@]HOST:PORT/DB[?prefix=...]"},
      {"XG2G_TUNER_SLOTS", "0-3", Kind::kText, "tuner slots, e.g. 0-3 or 0,2"},
      {"XG2G_API_TOKENS", "", Kind::kText, "token=scope,scope;token2=scope"},
      {"XG2G_ALLOW_QUERY_TOKENS", "false", Kind::kBool, "accept ?token= (deprecated, audited)"},
      {"XG2G_RATELIMIT_RPS", "50", Kind::kNumber, "requests per second per client (0: off)"},
      {"XG2G_RATELIMIT_BURST", "100", Kind::kInt, "token bucket size per client"},
      {"XG2G_RATELIMIT_WHITELIST", "", Kind::kText, "IPs and CIDRs never rate limited"},
      {"XG2G_TRUSTED_PROXIES", "", Kind::kText, "proxies whose X-Forwarded-For is believed"},
      {"XG2G_METRICS_SCOPE", "", Kind::kText, "scope /metrics needs (empty: open)"},
      {"XG2G_RECEIVER_URL", "", Kind::kText, "receiver base URL (empty: the simulated pipeline)"},
      {"XG2G_TLS_CERT", "", Kind::kText, "certificate chain (PEM): serve HTTPS"},
      {"XG2G_TLS_KEY", "", Kind::kText, "private key (PEM) of the certificate"},
      {"XG2G_LEASE_TTL_MS", "30000", Kind::kInt, "lease lifetime"},
      {"XG2G_HEARTBEAT_MS", "10000", Kind::kInt, "lease renewal interval"},
      {"XG2G_START_DEADLINE_MS", "30000", Kind::kInt, "deadline of NEW and STARTING"},
      {"XG2G_STOP_DEADLINE_MS", "60000", Kind::kInt, "deadline of STOPPING"},
      {"XG2G_IDLE_TIMEOUT_MS", "0", Kind::kInt, "idle READY sessions end (0: off)"},
      {"XG2G_RETENTION_MS", "86400000", Kind::kInt, "how long ended sessions are kept"},
      {"XG2G_IDEMPOTENCY_TTL_MS", "600000", Kind::kInt, "idempotency key lifetime"},
      {"XG2G_REDIS_TIMEOUT_MS", "2000", Kind::kInt, "Redis connect and command timeout"},
      {"XG2G_REDIS_POOL", "8", Kind::kInt, "Redis connections"},
      {"XG2G_LOG_LEVEL", "info", Kind::kText, "debug, info, warn or error"},
  };
  return kKeys;
}

namespace {

// "listen" for XG2G_LISTEN.
std::string FileKey(const char* env) {
  std::string name(env + 5);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

bool ParseBool(const std::string& text, bool* out) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") {
    *out = true;
    return true;
  }
  if (text == "false" || text == "0" || text == "no" || text == "off" || text.empty()) {
    *out = false;
    return true;
  }
  return false;
}

bool ParseInt(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

bool ParseNumber(const std::string& text, double* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

}  // namespace

Settings::Settings() {
  for (const Key& key : Keys()) Set(key.env, key.def, "default");
}

const std::string& Settings::Get(const std::string& env) const {
  static const std::string kEmpty;
  auto it = values_.find(env);
  return it == values_.end() ? kEmpty : it->second;
}

bool Settings::Bool(const std::string& env) const {
  bool v = false;
  ParseBool(Get(env), &v);
  return v;
}

int64_t Settings::Int(const std::string& env) const {
  int64_t v = 0;
  ParseInt(Get(env), &v);
  return v;
}

double Settings::Double(const std::string& env) const {
  double v = 0;
  ParseNumber(Get(env), &v);
  return v;
}

void Settings::Set(const std::string& env, std::string value, std::string source) {
  values_[env] = std::move(value);
  sources_[env] = std::move(source);
}

bool Settings::Validate(std::string* error) const {
  for (const Key& key : Keys()) {
    const std::string& value = Get(key.env);
    const std::string where = std::string(key.env) + " (from " + sources_.at(key.env) + ")";
    bool ok = true;
    const char* expected = "";
    switch (key.kind) {
      case Kind::kText:
        break;
      case Kind::kBool: {
        bool b;
        ok = ParseBool(value, &b);
        expected = "true or false";
        break;
      }
      case Kind::kInt: {
        int64_t i;
        ok = ParseInt(value, &i) && i >= 0;
        expected = "a non-negative integer";
        break;
      }
      case Kind::kNumber: {
        double d;
        ok = ParseNumber(value, &d) && d >= 0;
        expected = "a non-negative number";
        break;
      }
    }
    if (!ok) {
      *error = where + ": '" + value + "' is not " + expected;
      return false;
    }
  }
  if (Get("XG2G_STORE").empty()) {
    *error = "XG2G_STORE: empty";
    return false;
  }
  if (Get("XG2G_TUNER_SLOTS").empty()) {
    *error = "XG2G_TUNER_SLOTS: empty (give at least one slot, e.g. 0)";
    return false;
  }
  if (LogLevel(Get("XG2G_LOG_LEVEL")) < 0) {
    *error = "XG2G_LOG_LEVEL: '" + Get("XG2G_LOG_LEVEL") + "' is not debug, info, warn or error";
    return false;
  }
  return true;
}

bool ReadFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

bool LoadSettings(const std::string& config_path, Settings* out, std::string* error) {
  Settings settings;
  if (!config_path.empty()) {
    std::string text;
    if (!ReadFile(config_path, &text, error)) {
      *error = "--config: " + *error;
      return false;
    }
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    if (parser.parse(text).get(object) != simdjson::SUCCESS) {
      *error = "--config: '" + config_path + "' is not a JSON object";
      return false;
    }
    for (auto [name, value] : object) {
      const std::string key(name);
      const Key* found = nullptr;
      for (const Key& k : Keys()) {
        if (FileKey(k.env) == key) found = &k;
      }
      if (found == nullptr) {
        *error = "--config: unknown key '" + key + "' in '" + config_path + "'";
        return false;
      }
      std::string as_text;
      switch (value.type()) {
        case simdjson::dom::element_type::STRING:
          as_text = std::string(value.get_string().value_unsafe());
          break;
        case simdjson::dom::element_type::BOOL:
          as_text = value.get_bool().value_unsafe() ? "true" : "false";
          break;
        case simdjson::dom::element_type::INT64:
          as_text = std::to_string(value.get_int64().value_unsafe());
          break;
        case simdjson::dom::element_type::UINT64:
          as_text = std::to_string(value.get_uint64().value_unsafe());
          break;
        case simdjson::dom::element_type::DOUBLE: {
          std::ostringstream number;
          number << value.get_double().value_unsafe();
          as_text = number.str();
          break;
        }
        default:
          *error = "--config: key '" + key + "' must be a string, number or boolean";
          return false;
      }
      settings.Set(found->env, as_text, config_path);
    }
  }
  for (const Key& key : Keys()) {
    if (const char* value = std::getenv(key.env)) settings.Set(key.env, value, "environment");
  }
  // The Redis store reads these from the environment itself.
  for (const char* name : {"XG2G_REDIS_TIMEOUT_MS", "XG2G_REDIS_POOL"}) {
    setenv(name, settings.Get(name).c_str(), 1);
  }
  *out = std::move(settings);
  return true;
}

int LogLevel(const std::string& name) {
  if (name == "debug") return 0;
  if (name == "info") return 1;
  if (name == "warn") return 2;
  if (name == "error") return 3;
  return -1;
}

std::string RedactUri(const std::string& uri) {
  const size_t scheme = uri.find("://");
  const size_t at = uri.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return uri;
  const size_t colon = uri.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon + 1) + "***" + uri.substr(at);
}

}  // namespace xg2gd

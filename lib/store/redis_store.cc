#include "lib/store/redis_store.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <random>
#include <thread>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/session/session.h"
#include "lib/store/backend_util.h"
#include "lib/store/redis_scripts.h"

namespace xg2g {
namespace {

using store_internal::IdempotencyNotFound;
using store_internal::LeaseHeldByOther;
using store_internal::LeaseNotHeld;
using store_internal::SessionNotFound;
using store_internal::UpdateBackOff;
using store_internal::ValidateIdempotencyKey;
using store_internal::ValidateLeaseArgs;
using store_internal::ValidateTtl;

// ------------------------------------------------------------------ the URI

constexpr size_t kDefaultPool = 8;
constexpr int64_t kDefaultTimeoutMs = 2000;
constexpr int kMaxDb = 1'000'000;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in`; false on a malformed escape.
bool PercentDecode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexDigit(in[i + 1]);
    const int lo = HexDigit(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

template <typename T>
bool ParseDecimal(std::string_view text, T& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

absl::Status ParsePool(std::string_view text, std::string_view source, size_t& out) {
  size_t value = 0;
  if (!ParseDecimal(text, value) || value < 1 || value > kRedisMaxPool) {
    return InvalidError(fmt::format("{}: pool must be a whole number from 1 to {}, got '{}'",
                                    source, kRedisMaxPool, text));
  }
  out = value;
  return absl::OkStatus();
}

absl::Status ParseTimeout(std::string_view text, std::string_view source, int64_t& out) {
  int64_t value = 0;
  if (!ParseDecimal(text, value) || value < 1 || value > kRedisMaxTimeoutMs) {
    return InvalidError(fmt::format(
        "{}: timeout_ms must be a whole number of milliseconds from 1 to {}, got '{}'", source,
        kRedisMaxTimeoutMs, text));
  }
  out = value;
  return absl::OkStatus();
}

// A prefix may carry one hash tag of its own ("tenant-{a}:"), which then
// places the whole store in one slot; anything else with braces would make
// Redis Cluster hash keys of one script to different slots.
absl::Status ValidatePrefix(std::string_view prefix) {
  if (prefix.empty()) return InvalidError("store URI: prefix must not be empty");
  for (char c : prefix) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) {
      return InvalidError(fmt::format(
          "store URI: prefix '{}' contains a space or control character", prefix));
    }
  }
  const size_t open = prefix.find('{');
  const size_t close = prefix.find('}');
  if (open == std::string_view::npos && close == std::string_view::npos) return absl::OkStatus();
  if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2 ||
      prefix.find('{', open + 1) != std::string_view::npos ||
      prefix.find('}', close + 1) != std::string_view::npos) {
    return InvalidError(fmt::format(
        "store URI: prefix '{}' may hold braces only as one non-empty hash tag like '{{tag}}'",
        prefix));
  }
  return absl::OkStatus();
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// ------------------------------------------------------------- validation


// ---------------------------------------------------------------- replies

bool IsText(const redisReply& reply) {
  return reply.type == REDIS_REPLY_STRING || reply.type == REDIS_REPLY_STATUS;
}

// An integer reply, or a string holding a decimal integer.
template <typename T>
bool ReadInt(const redisReply& reply, T& out) {
  if (reply.type == REDIS_REPLY_INTEGER) {
    if (reply.integer < 0 && std::is_unsigned_v<T>) return false;
    out = static_cast<T>(reply.integer);
    return true;
  }
  return IsText(reply) && ParseDecimal(RedisText(reply), out);
}

// The array reply `reply` with at least `min` elements, or null.
const redisReply* ArrayOf(const redisReply& reply, size_t min = 0) {
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements < min) return nullptr;
  return &reply;
}

absl::Status Unexpected(std::string_view where, std::string_view what) {
  return InternalError(fmt::format("{}: unexpected reply to {}", where, what));
}


// The record's JSON split around its revision's digits, so that the script
// writing it can put in the revision it draws: head ends with "revision":,
// tail starts right after the number. Only the top-level field can match: a
// quote inside a JSON string is always escaped, and contextData values are
// strings, not numbers.
struct SplitJson {
  std::string head;
  std::string tail;
};

absl::StatusOr<SplitJson> SplitAtRevision(const SessionRecord& record) {
  std::string json = EncodeSession(record);
  constexpr std::string_view kKey = ",\"revision\":";
  const std::string marker = fmt::format("{}{}", kKey, record.revision);
  size_t pos = json.rfind(marker);
  while (pos != std::string::npos) {
    const size_t end = pos + marker.size();
    if (end < json.size() && (json[end] == ',' || json[end] == '}')) {
      SplitJson split;
      split.tail = json.substr(end);
      json.resize(pos + kKey.size());
      split.head = std::move(json);
      return split;
    }
    if (pos == 0) break;
    pos = json.rfind(marker, pos - 1);
  }
  return InternalError(
      fmt::format("session '{}': the encoded record has no revision field", record.session_id));
}

constexpr size_t kScanPage = 256;

int64_t LocalMonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// ------------------------------------------------------------------ the URI

absl::StatusOr<RedisOptions> ParseRedisLocation(std::string_view location) {
  if (location.substr(0, 2) != "//") {
    return InvalidError(
        "store URI: scheme 'redis' needs '//' after 'redis:' (redis://HOST:PORT/DB)");
  }
  std::string_view rest = location.substr(2);
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view path;
  // The authority ends at the first '/' after any '@' (a password may hold '/'
  // only percent-encoded, but be lenient about it).
  const size_t at = rest.rfind('@');
  const size_t slash = rest.find('/', at == std::string_view::npos ? 0 : at + 1);
  if (slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }

  RedisOptions options;
  RedisEndpoint& endpoint = options.endpoint;
  bool has_password = false;
  std::string_view host_port = rest;
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    host_port = rest.substr(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      // Never echoed: it may be a password written without its colon.
      return InvalidError(
          "store URI: the part before '@' must be ':PASSWORD' or 'USER:PASSWORD'");
    }
    if (!PercentDecode(userinfo.substr(0, colon), endpoint.username) ||
        !PercentDecode(userinfo.substr(colon + 1), endpoint.password)) {
      return InvalidError("store URI: the user or password has a malformed %-escape");
    }
    has_password = true;
  }

  std::string_view port_text;
  if (!host_port.empty() && host_port.front() == '[') {
    const size_t close = host_port.find(']');
    if (close == std::string_view::npos) {
      return InvalidError(fmt::format("store URI: redis host '{}' lacks its closing ']'",
                                      host_port));
    }
    endpoint.host.assign(host_port.substr(1, close - 1));
    const std::string_view after = host_port.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return InvalidError(fmt::format("store URI: unexpected '{}' after the redis host", after));
      }
      port_text = after.substr(1);
      if (port_text.empty()) return InvalidError("store URI: redis port is empty after ':'");
    }
    for (char c : endpoint.host) {
      if (HexDigit(c) < 0 && c != ':' && c != '.') {
        return InvalidError(fmt::format("store URI: redis host '[{}]' is not an IPv6 address",
                                        endpoint.host));
      }
    }
  } else {
    const size_t colon = host_port.find(':');
    endpoint.host.assign(host_port.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = host_port.substr(colon + 1);
      if (port_text.find(':') != std::string_view::npos) {
        return InvalidError(fmt::format(
            "store URI: redis host '{}' has more than one ':' (write an IPv6 address in [])",
            host_port));
      }
      if (port_text.empty()) return InvalidError("store URI: redis port is empty after ':'");
    }
    for (char c : endpoint.host) {
      if (!IsHostChar(c)) {
        return InvalidError(fmt::format(
            "store URI: redis host '{}' may hold only letters, digits, '.', '-' and '_'",
            endpoint.host));
      }
    }
  }
  if (endpoint.host.empty()) {
    return InvalidError("store URI: redis host is empty (redis://HOST:PORT/DB)");
  }
  if (!port_text.empty()) {
    int port = 0;
    if (!ParseDecimal(port_text, port) || port < 1 || port > 65535) {
      return InvalidError(
          fmt::format("store URI: redis port '{}' is not a number from 1 to 65535", port_text));
    }
    endpoint.port = port;
  }
  if (!path.empty()) {
    int db = 0;
    if (!ParseDecimal(path, db) || db < 0 || db > kMaxDb) {
      return InvalidError(fmt::format(
          "store URI: redis database '{}' is not a number from 0 to {}", path, kMaxDb));
    }
    endpoint.db = db;
  }

  bool pool_set = false;
  bool timeout_set = false;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    std::string value;
    if (eq == std::string_view::npos || !PercentDecode(pair.substr(eq + 1), value)) {
      return InvalidError(fmt::format(
          "store URI: redis option '{}' needs a value (NAME=VALUE, %-escapes well formed)", name));
    }
    if (name == "prefix") {
      XG2G_RETURN_IF_ERROR(ValidatePrefix(value));
      options.prefix = std::move(value);
    } else if (name == "pool") {
      XG2G_RETURN_IF_ERROR(ParsePool(value, "store URI", endpoint.pool_size));
      pool_set = true;
    } else if (name == "timeout_ms") {
      XG2G_RETURN_IF_ERROR(ParseTimeout(value, "store URI", endpoint.timeout_ms));
      timeout_set = true;
    } else if (name == "cache") {
      size_t entries = 0;
      if (!ParseDecimal(value, entries) || entries > kRedisMaxCache) {
        return InvalidError(fmt::format(
            "store URI: redis cache '{}' is not a number of session records from 0 to {}",
            value, kRedisMaxCache));
      }
      options.cache_entries = entries;
    } else {
      return InvalidError(fmt::format(
          "store URI: unknown redis option '{}' (known: prefix, pool, timeout_ms, cache)", name));
    }
  }

  // The environment fills in what the URI leaves out. getenv is safe here:
  // the library never changes the environment.
  if (!has_password) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe)
    if (const char* env = std::getenv("XG2G_REDIS_PASSWORD"); env != nullptr) {
      endpoint.password = env;
    }
  }
  endpoint.pool_size = pool_set ? endpoint.pool_size : kDefaultPool;
  if (!pool_set) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe)
    if (const char* env = std::getenv("XG2G_REDIS_POOL"); env != nullptr && *env != '\0') {
      XG2G_RETURN_IF_ERROR(ParsePool(env, "XG2G_REDIS_POOL", endpoint.pool_size));
    }
  }
  if (!timeout_set) {
    endpoint.timeout_ms = kDefaultTimeoutMs;
    // NOLINTNEXTLINE(concurrency-mt-unsafe)
    if (const char* env = std::getenv("XG2G_REDIS_TIMEOUT_MS"); env != nullptr && *env != '\0') {
      XG2G_RETURN_IF_ERROR(ParseTimeout(env, "XG2G_REDIS_TIMEOUT_MS", endpoint.timeout_ms));
    }
  }
  return options;
}

// ---------------------------------------------------------------- the store

RedisStore::RedisStore(const RedisOptions& options)
    : prefix_(options.prefix),
      sessions_(prefix_ + "{sessions}:"),
      leases_(prefix_ + "{leases}:"),
      pool_(options.endpoint) {
  const auto with_preamble = [](std::string_view body) {
    std::string source(redis_scripts::kPreamble);
    source.append(body);
    return source;
  };
  scripts_[kPut].source = with_preamble(redis_scripts::kPutSession);
  scripts_[kCas].source = with_preamble(redis_scripts::kCasSession);
  scripts_[kDelete].source = with_preamble(redis_scripts::kDeleteSession);
  scripts_[kList].source = with_preamble(redis_scripts::kListSessions);
  scripts_[kScan].source = with_preamble(redis_scripts::kScanSessions);
  scripts_[kPutIdem].source = with_preamble(redis_scripts::kPutWithIdempotency);
  scripts_[kGetIdem].source = with_preamble(redis_scripts::kGetIdempotency);
  scripts_[kDeleteIdem].source = with_preamble(redis_scripts::kDeleteIdempotency);
  scripts_[kAcquire].source = with_preamble(redis_scripts::kAcquireLease);
  scripts_[kRenew].source = with_preamble(redis_scripts::kRenewLease);
  scripts_[kRelease].source = with_preamble(redis_scripts::kReleaseLease);
  scripts_[kGetLeaseScript].source = with_preamble(redis_scripts::kGetLease);
  scripts_[kListLeasesScript].source = with_preamble(redis_scripts::kListLeases);
  scripts_[kFirstFreeScript].source = with_preamble(redis_scripts::kFirstFreeLease);
}

RedisStore::~RedisStore() = default;

absl::StatusOr<std::unique_ptr<RedisStore>> RedisStore::Open(const RedisOptions& options) {
  XG2G_RETURN_IF_ERROR(ValidatePrefix(options.prefix));
  if (options.endpoint.pool_size < 1 || options.endpoint.pool_size > kRedisMaxPool) {
    return InvalidError(fmt::format("redis pool size must be from 1 to {}, got {}", kRedisMaxPool,
                                    options.endpoint.pool_size));
  }
  if (options.endpoint.timeout_ms < 1 || options.endpoint.timeout_ms > kRedisMaxTimeoutMs) {
    return InvalidError(fmt::format("redis timeout_ms must be from 1 to {}, got {}",
                                    kRedisMaxTimeoutMs, options.endpoint.timeout_ms));
  }
  if (options.cache_entries > kRedisMaxCache) {
    return InvalidError(fmt::format("redis cache must be from 0 to {} session records, got {}",
                                    kRedisMaxCache, options.cache_entries));
  }
  std::unique_ptr<RedisStore> store(new RedisStore(options));
  XG2G_RETURN_IF_ERROR(store->LoadScripts());
  if (options.cache_entries > 0) {
    store->cache_ = std::make_unique<RedisSessionCache>(&store->pool_, store->sessions_ + "rec:",
                                                        options.cache_entries);
    (void)store->cache_->WaitListening(std::min<int64_t>(1000, options.endpoint.timeout_ms));
  }
  return store;
}

std::string RedisStore::SessionKey(std::string_view id) const {
  return fmt::format("{}rec:{}", sessions_, id);
}
std::string RedisStore::SessionIndexKey() const { return sessions_ + "ids"; }
std::string RedisStore::RevisionKey() const { return sessions_ + "revision"; }
std::string RedisStore::IdempotencyKey(std::string_view key) const {
  return fmt::format("{}idem:{}", sessions_, key);
}
std::string RedisStore::LeaseKey(std::string_view key) const {
  return fmt::format("{}lease:{}", leases_, key);
}
std::string RedisStore::FenceKey(std::string_view key) const {
  return fmt::format("{}fence:{}", leases_, key);
}
std::string RedisStore::LeaseIndexKey() const { return leases_ + "index"; }

absl::Status RedisStore::LoadScripts() {
  std::vector<RedisArgs> loads;
  for (const Script& script : scripts_) loads.push_back({"SCRIPT", "LOAD", script.source});
  XG2G_ASSIGN_OR_RETURN(std::vector<RedisReplyPtr> replies, pool_.Run(loads));
  for (size_t i = 0; i < scripts_.size(); ++i) {
    const redisReply& reply = *replies[i];
    if (reply.type == REDIS_REPLY_ERROR) return ReplyError(reply, "loading the store's scripts");
    if (!IsText(reply)) return Unexpected(where(), "SCRIPT LOAD");
    scripts_[i].sha.assign(RedisText(reply));
  }
  return absl::OkStatus();
}

absl::Status RedisStore::ReplyError(const redisReply& reply, std::string_view what) const {
  std::string_view text = RedisText(reply);
  const std::string_view code = text.substr(0, text.find(' '));
  if (code == "CORRUPT") {
    text.remove_prefix(code.size() + 1);
    // Redis appends where in the script the error was raised.
    if (const size_t script = text.rfind(" script: "); script != std::string_view::npos) {
      text = text.substr(0, script);
    }
    return CorruptError(fmt::format("{}: {}", what, text));
  }
  if (code == "WRONGTYPE") {
    return CorruptError(
        fmt::format("{}: a key under prefix '{}' holds the wrong type of value", what, prefix_));
  }
  if (code == "OOM") {
    return StoreFullError(fmt::format("{}: {} is out of memory (maxmemory reached)", what, where()));
  }
  if (code == "LOADING" || code == "READONLY" || code == "MASTERDOWN" || code == "BUSY" ||
      code == "TRYAGAIN" || code == "CLUSTERDOWN" || code == "NOAUTH" || code == "MOVED" ||
      code == "ASK" || code == "NOREPLICAS") {
    return UnavailableError(fmt::format("{}: {} cannot serve it now: {}", what, where(), text));
  }
  return InternalError(fmt::format("{}: {} answered: {}", what, where(), text));
}

absl::StatusOr<RedisReplyPtr> RedisStore::Eval(ScriptId id,
                                               const std::vector<std::string_view>& keys,
                                               const std::vector<std::string_view>& args,
                                               std::string_view what) {
  const Script& script = scripts_[id];
  const std::string key_count = std::to_string(keys.size());
  RedisArgs command;
  command.reserve(3 + keys.size() + args.size());
  command.push_back("EVALSHA");
  command.push_back(script.sha);
  command.push_back(key_count);
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  for (int attempt = 0;; ++attempt) {
    XG2G_ASSIGN_OR_RETURN(RedisReplyPtr reply, pool_.Command(command));
    if (reply->type != REDIS_REPLY_ERROR) return reply;
    if (attempt == 0 && RedisText(*reply).substr(0, 8) == "NOSCRIPT") {
      // The server lost its script cache (restart, SCRIPT FLUSH): load it
      // again. The digest is the script's SHA-1, the same as before.
      XG2G_ASSIGN_OR_RETURN(RedisReplyPtr loaded,
                            pool_.Command({"SCRIPT", "LOAD", script.source}));
      if (loaded->type == REDIS_REPLY_ERROR) return ReplyError(*loaded, what);
      continue;
    }
    return ReplyError(*reply, what);
  }
}

absl::StatusOr<RedisStore::Outcome> RedisStore::EvalOutcome(
    ScriptId id, const std::vector<std::string_view>& keys,
    const std::vector<std::string_view>& args, std::string_view what) {
  Outcome out;
  XG2G_ASSIGN_OR_RETURN(out.reply, Eval(id, keys, args, what));
  out.result = ArrayOf(*out.reply, 1);
  if (out.result == nullptr || !ReadInt(*out.result->element[0], out.code)) {
    return Unexpected(where(), what);
  }
  return out;
}

absl::StatusOr<SessionRecord> RedisStore::DecodeStored(std::string_view id, std::string_view key,
                                                       const redisReply& value) const {
  if (value.type == REDIS_REPLY_ERROR || value.type == REDIS_REPLY_INTEGER) {
    return CorruptError(fmt::format(
        "session '{}': redis key '{}' holds another type than a session record", id, key));
  }
  if (value.type != REDIS_REPLY_STRING) return Unexpected(where(), "reading a session");
  absl::StatusOr<SessionRecord> record = DecodeSession(RedisText(value));
  if (!record.ok()) {
    return CorruptError(fmt::format("session '{}': redis key '{}': {}", id, key,
                                    FromAbsl(record.status().message())));
  }
  if (record->session_id != id) {
    return CorruptError(fmt::format("session '{}': redis key '{}' holds session '{}'", id, key,
                                    record->session_id));
  }
  return record;
}

int64_t RedisStore::NowMs() const {
  const int64_t local = LocalMonotonicMs();
  int64_t now = local + offset_ms_.load(std::memory_order_relaxed);
  absl::StatusOr<RedisReplyPtr> reply = pool_.Command({"TIME"});
  if (reply.ok()) {
    const redisReply* time = ArrayOf(**reply, 2);
    int64_t seconds = 0;
    int64_t micros = 0;
    if (time != nullptr && ReadInt(*time->element[0], seconds) &&
        ReadInt(*time->element[1], micros)) {
      now = seconds * 1000 + micros / 1000;
      offset_ms_.store(now - local, std::memory_order_relaxed);
    }
  }
  int64_t last = last_now_ms_.load(std::memory_order_relaxed);
  while (now > last && !last_now_ms_.compare_exchange_weak(last, now, std::memory_order_relaxed)) {
  }
  return std::max(now, last);
}

// ---------------------------------------------------------------- sessions

absl::Status RedisStore::PutSession(const SessionRecord& record) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(record.session_id));
  XG2G_ASSIGN_OR_RETURN(SplitJson json, SplitAtRevision(record));
  const std::string key = SessionKey(record.session_id);
  const std::string ids = SessionIndexKey();
  const std::string revision = RevisionKey();
  const std::string what = fmt::format("session '{}'", record.session_id);
  absl::Status put =
      Eval(kPut, {key, ids, revision}, {record.session_id, json.head, json.tail}, what).status();
  Wrote(record.session_id);
  return put;
}

absl::StatusOr<SessionRecord> RedisStore::GetSession(std::string_view id) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  return ReadSession(id, /*cached=*/true);
}

absl::StatusOr<SessionRecord> RedisStore::ReadSession(std::string_view id, bool cached) {
  RedisSessionCache::Ticket ticket;
  if (cache_ != nullptr && cached) {
    if (std::optional<SessionRecord> hit = cache_->Find(id)) return *std::move(hit);
    ticket = cache_->Take(id);
  }
  const std::string key = SessionKey(id);
  XG2G_ASSIGN_OR_RETURN(RedisReplyPtr reply, pool_.Command({"GET", key}));
  if (reply->type == REDIS_REPLY_NIL) return SessionNotFound(id);
  if (reply->type == REDIS_REPLY_ERROR && RedisText(*reply).substr(0, 9) != "WRONGTYPE") {
    return ReplyError(*reply, fmt::format("session '{}'", id));
  }
  absl::StatusOr<SessionRecord> record = DecodeStored(id, key, *reply);
  if (record.ok() && cache_ != nullptr && cached) cache_->Remember(ticket, *record);
  return record;
}

void RedisStore::Wrote(std::string_view id) {
  if (cache_ != nullptr) cache_->Forget(id);
}

RedisCacheStats RedisStore::CacheStats() const {
  return cache_ != nullptr ? cache_->Stats() : RedisCacheStats{};
}

absl::StatusOr<SessionRecord> RedisStore::UpdateSession(std::string_view id,
                                                        const Mutator& mutate) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  if (!mutate) return InvalidError(fmt::format("session '{}': update without a mutator", id));
  const std::string key = SessionKey(id);
  const std::string ids = SessionIndexKey();
  const std::string revision = RevisionKey();
  const std::string what = fmt::format("session '{}'", id);
  for (int attempt = 0; attempt < kMaxUpdateAttempts; ++attempt) {
    UpdateBackOff(attempt);
    // The cached record is good enough to start from: the compare-and-set
    // refuses a stale one (and the next try reads the server), and a
    // mutator's refusal of one is checked again against the server's record.
    const bool cached = attempt == 0 && cache_ != nullptr;
    XG2G_ASSIGN_OR_RETURN(SessionRecord copy, ReadSession(id, cached));
    std::string read_revision = std::to_string(copy.revision);
    // Caller code: no connection held, so it may call back into the store.
    absl::Status mutated = mutate(copy);
    if (!mutated.ok() && cached) {
      XG2G_ASSIGN_OR_RETURN(copy, ReadSession(id, /*cached=*/false));
      read_revision = std::to_string(copy.revision);
      mutated = mutate(copy);
    }
    XG2G_RETURN_IF_ERROR(mutated);
    if (copy.session_id != id) {
      return InvalidError(fmt::format("session '{}': the mutator changed the session id to '{}'",
                                      id, copy.session_id));
    }
    XG2G_ASSIGN_OR_RETURN(SplitJson json, SplitAtRevision(copy));
    absl::StatusOr<Outcome> cas =
        EvalOutcome(kCas, {key, ids, revision}, {id, read_revision, json.head, json.tail}, what);
    Wrote(id);
    XG2G_ASSIGN_OR_RETURN(Outcome answer, std::move(cas));
    const redisReply* result = answer.result;
    switch (answer.code) {
      case 0:
        return NotFoundError(fmt::format("session '{}' was deleted during the update", id));
      case 1:
        continue;  // lost a race: mutate the fresh copy
      case 2:
        if (result->elements < 2 || !ReadInt(*result->element[1], copy.revision)) {
          return Unexpected(where(), what);
        }
        return copy;
      case 3:
        return CorruptError(fmt::format(
            "session '{}': redis key '{}' holds a record without a revision", id, key));
      default:
        return Unexpected(where(), what);
    }
  }
  return ConflictError(fmt::format(
      "session '{}': the update lost to concurrent writes {} times in a row; nothing written",
      id, kMaxUpdateAttempts));
}

absl::Status RedisStore::DeleteSession(std::string_view id) {
  XG2G_RETURN_IF_ERROR(ValidateSessionId(id));
  const std::string key = SessionKey(id);
  const std::string ids = SessionIndexKey();
  const std::string what = fmt::format("session '{}'", id);
  absl::StatusOr<RedisReplyPtr> answer = Eval(kDelete, {key, ids}, {id}, what);
  Wrote(id);
  XG2G_ASSIGN_OR_RETURN(RedisReplyPtr reply, std::move(answer));
  int64_t deleted = 0;
  if (!ReadInt(*reply, deleted)) return Unexpected(where(), what);
  return deleted > 0 ? absl::OkStatus() : SessionNotFound(id);
}

absl::Status RedisStore::ScanSessions(const Visitor& visit) {
  if (!visit) return InvalidError("session scan without a visitor");
  const std::string ids = SessionIndexKey();
  const std::string records = sessions_ + "rec:";
  const std::string count = std::to_string(kScanPage);
  std::string after;  // the last id read; empty before the first page
  size_t corrupt = 0;
  absl::Status first_corrupt;
  std::vector<SessionRecord> page;
  for (bool more = true; more;) {
    page.clear();
    XG2G_ASSIGN_OR_RETURN(RedisReplyPtr reply,
                          Eval(kScan, {ids}, {after, count, records}, "session scan"));
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) {
      return Unexpected(where(), "a session scan");
    }
    for (size_t i = 0; i < reply->elements; i += 2) {
      const redisReply& id = *reply->element[i];
      const redisReply& value = *reply->element[i + 1];
      if (id.type != REDIS_REPLY_STRING) return Unexpected(where(), "a session scan");
      after.assign(RedisText(id));
      if (value.type == REDIS_REPLY_NIL) continue;  // deleted since it was indexed
      absl::StatusOr<SessionRecord> record = DecodeStored(after, SessionKey(after), value);
      if (record.ok()) {
        page.push_back(*std::move(record));
      } else if (CodeOf(record.status()) == ErrorCode::kCorrupt) {
        if (corrupt++ == 0) first_corrupt = record.status();
      } else {
        return record.status();
      }
    }
    more = reply->elements / 2 == kScanPage;
    reply.reset();
    // No connection held: the visitor may call back into the store.
    for (const SessionRecord& record : page) {
      if (!visit(record)) {
        more = false;
        break;
      }
    }
  }
  if (corrupt > 0) {
    // Every record that decodes was visited; say which did not.
    return CorruptError(fmt::format("session scan skipped {} record(s) that do not decode, the "
                                    "first: {}",
                                    corrupt, FromAbsl(first_corrupt.message())));
  }
  return absl::OkStatus();
}

absl::StatusOr<SessionPage> RedisStore::ListSessions(size_t offset, size_t limit) {
  if (limit == 0 || limit > kMaxPageLimit) {
    return InvalidError(
        fmt::format("limit must be between 1 and {}, got {}", kMaxPageLimit, limit));
  }
  // Beyond any possible count, and exact as a Lua number.
  const std::string offset_text = std::to_string(std::min<size_t>(offset, size_t{1} << 50));
  const std::string limit_text = std::to_string(limit);
  const std::string ids = SessionIndexKey();
  const std::string records = sessions_ + "rec:";
  XG2G_ASSIGN_OR_RETURN(RedisReplyPtr reply,
                        Eval(kList, {ids}, {offset_text, limit_text, records}, "session list"));
  const redisReply* list = ArrayOf(*reply, 1);
  SessionPage page;
  if (list == nullptr || list->elements % 2 != 1 || !ReadInt(*list->element[0], page.total)) {
    return Unexpected(where(), "a session list");
  }
  page.sessions.reserve(list->elements / 2);
  for (size_t i = 1; i < list->elements; i += 2) {
    const redisReply& id = *list->element[i];
    const redisReply& value = *list->element[i + 1];
    if (id.type != REDIS_REPLY_STRING) return Unexpected(where(), "a session list");
    if (value.type == REDIS_REPLY_NIL) continue;
    XG2G_ASSIGN_OR_RETURN(SessionRecord record,
                          DecodeStored(RedisText(id), SessionKey(RedisText(id)), value));
    page.sessions.push_back(std::move(record));
  }
  return page;
}

// ---------------------------------------------------------- idempotency keys

absl::StatusOr<IdempotencyOutcome> RedisStore::PutSessionWithIdempotency(
    const SessionRecord& record, std::string_view key, std::string_view fingerprint,
    int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  XG2G_RETURN_IF_ERROR(ValidateTtl("idempotency key", key, ttl_ms));
  if (absl::Status valid = ValidateSessionId(record.session_id); !valid.ok()) {
    return InvalidError(fmt::format("idempotency key '{}': {}", key, FromAbsl(valid.message())));
  }
  XG2G_ASSIGN_OR_RETURN(SplitJson json, SplitAtRevision(record));
  const std::string idem = IdempotencyKey(key);
  const std::string rec = SessionKey(record.session_id);
  const std::string ids = SessionIndexKey();
  const std::string revision = RevisionKey();
  const std::string ttl = std::to_string(ttl_ms);
  const std::string what = fmt::format("idempotency key '{}'", key);
  absl::StatusOr<Outcome> put =
      EvalOutcome(kPutIdem, {idem, rec, ids, revision},
                  {fingerprint, ttl, record.session_id, json.head, json.tail}, what);
  Wrote(record.session_id);
  XG2G_ASSIGN_OR_RETURN(Outcome answer, std::move(put));
  const redisReply* result = answer.result;
  IdempotencyOutcome out;
  if (answer.code == 1) {
    out.stored = true;
    return out;
  }
  if (answer.code != 0 || result->elements < 4 || !IsText(*result->element[1]) ||
      !IsText(*result->element[2]) || !ReadInt(*result->element[3], out.existing.expires_at_ms)) {
    return Unexpected(where(), what);
  }
  out.existing.session_id.assign(RedisText(*result->element[1]));
  out.existing.fingerprint.assign(RedisText(*result->element[2]));
  return out;
}

absl::StatusOr<IdempotencyEntry> RedisStore::GetIdempotency(std::string_view key) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  const std::string idem = IdempotencyKey(key);
  const std::string what = fmt::format("idempotency key '{}'", key);
  XG2G_ASSIGN_OR_RETURN(Outcome answer, EvalOutcome(kGetIdem, {idem}, {}, what));
  const redisReply* result = answer.result;
  if (answer.code == 0) return IdempotencyNotFound(key);
  IdempotencyEntry entry;
  if (result->elements < 4 || !IsText(*result->element[1]) || !IsText(*result->element[2]) ||
      !ReadInt(*result->element[3], entry.expires_at_ms)) {
    return Unexpected(where(), what);
  }
  entry.session_id.assign(RedisText(*result->element[1]));
  entry.fingerprint.assign(RedisText(*result->element[2]));
  return entry;
}

absl::Status RedisStore::DeleteIdempotency(std::string_view key) {
  XG2G_RETURN_IF_ERROR(ValidateIdempotencyKey(key));
  const std::string idem = IdempotencyKey(key);
  const std::string what = fmt::format("idempotency key '{}'", key);
  XG2G_ASSIGN_OR_RETURN(RedisReplyPtr reply, Eval(kDeleteIdem, {idem}, {}, what));
  int64_t deleted = 0;
  if (!ReadInt(*reply, deleted)) return Unexpected(where(), what);
  return deleted > 0 ? absl::OkStatus() : IdempotencyNotFound(key);
}

// -------------------------------------------------------------------- leases

namespace {

// The renew and release scripts answer 0 when nobody holds the lease and
// {1, holder} when another owner does.
absl::Status NotHeldByOwner(int code, const redisReply& result, std::string_view key,
                            std::string_view owner, std::string_view what,
                            std::string_view where) {
  if (code == 0) return LeaseNotHeld(key);
  if (code != 1) return absl::OkStatus();
  if (result.elements < 2 || !IsText(*result.element[1])) return Unexpected(where, what);
  return LeaseHeldByOther(key, RedisText(*result.element[1]), owner);
}

// {token, exp} at `at` and `at + 1` of a script's answer.
bool ReadGrant(const redisReply& result, size_t at, LeaseGrant& grant) {
  return result.elements >= at + 2 && ReadInt(*result.element[at], grant.fencing_token) &&
         ReadInt(*result.element[at + 1], grant.expires_at_ms);
}

}  // namespace

absl::StatusOr<LeaseGrant> RedisStore::AcquireLease(std::string_view key, std::string_view owner,
                                                    int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  XG2G_RETURN_IF_ERROR(ValidateTtl("lease", key, ttl_ms));
  const std::string lease = LeaseKey(key);
  const std::string fence = FenceKey(key);
  const std::string index = LeaseIndexKey();
  const std::string ttl = std::to_string(ttl_ms);
  const std::string what = fmt::format("lease '{}'", key);
  XG2G_ASSIGN_OR_RETURN(Outcome answer,
                        EvalOutcome(kAcquire, {lease, fence, index}, {key, owner, ttl}, what));
  const redisReply* result = answer.result;
  if (answer.code == 0) {
    int64_t deadline = 0;
    int64_t now = 0;
    if (result->elements < 4 || !IsText(*result->element[1]) ||
        !ReadInt(*result->element[2], deadline) || !ReadInt(*result->element[3], now)) {
      return Unexpected(where(), what);
    }
    return BusyError(fmt::format("lease '{}' is held by '{}' for another {} ms", key,
                                 RedisText(*result->element[1]), deadline - now));
  }
  LeaseGrant grant;
  if ((answer.code != 1 && answer.code != 2) || !ReadGrant(*result, 1, grant)) {
    return Unexpected(where(), what);
  }
  return grant;
}

absl::StatusOr<LeaseGrant> RedisStore::RenewLease(std::string_view key, std::string_view owner,
                                                  int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  XG2G_RETURN_IF_ERROR(ValidateTtl("lease", key, ttl_ms));
  const std::string lease = LeaseKey(key);
  const std::string index = LeaseIndexKey();
  const std::string ttl = std::to_string(ttl_ms);
  const std::string what = fmt::format("lease '{}'", key);
  XG2G_ASSIGN_OR_RETURN(Outcome answer,
                        EvalOutcome(kRenew, {lease, index}, {key, owner, ttl}, what));
  XG2G_RETURN_IF_ERROR(
      NotHeldByOwner(answer.code, *answer.result, key, owner, what, where()));
  LeaseGrant grant;
  if (answer.code != 2 || !ReadGrant(*answer.result, 1, grant)) return Unexpected(where(), what);
  return grant;
}

std::vector<absl::StatusOr<RedisStore::Outcome>> RedisStore::EvalOutcomes(
    ScriptId id, const std::vector<ScriptCall>& calls) {
  std::vector<absl::StatusOr<Outcome>> answers;
  answers.reserve(calls.size());
  const Script& script = scripts_[id];
  for (size_t begin = 0; begin < calls.size(); begin += kPipelineChunk) {
    const size_t end = std::min(calls.size(), begin + kPipelineChunk);
    std::vector<std::string> counts;
    counts.reserve(end - begin);
    std::vector<RedisArgs> commands;
    commands.reserve(end - begin);
    for (size_t i = begin; i < end; ++i) {
      const ScriptCall& call = calls[i];
      counts.push_back(std::to_string(call.keys.size()));
      RedisArgs command = {"EVALSHA", script.sha, counts.back()};
      command.insert(command.end(), call.keys.begin(), call.keys.end());
      command.insert(command.end(), call.args.begin(), call.args.end());
      commands.push_back(std::move(command));
    }
    absl::StatusOr<std::vector<RedisReplyPtr>> replies = pool_.Run(commands);
    for (size_t i = begin; i < end; ++i) {
      const ScriptCall& call = calls[i];
      if (!replies.ok()) {
        answers.emplace_back(replies.status());
        continue;
      }
      RedisReplyPtr& reply = (*replies)[i - begin];
      if (reply->type == REDIS_REPLY_ERROR && RedisText(*reply).substr(0, 8) == "NOSCRIPT") {
        // The server forgot the script: this call alone, which loads it again.
        answers.push_back(EvalOutcome(id, {call.keys.begin(), call.keys.end()},
                                      {call.args.begin(), call.args.end()}, call.what));
        continue;
      }
      if (reply->type == REDIS_REPLY_ERROR) {
        answers.emplace_back(ReplyError(*reply, call.what));
        continue;
      }
      Outcome out;
      out.reply = std::move(reply);
      out.result = ArrayOf(*out.reply, 1);
      if (out.result == nullptr || !ReadInt(*out.result->element[0], out.code)) {
        answers.emplace_back(Unexpected(where(), call.what));
        continue;
      }
      answers.emplace_back(std::move(out));
    }
  }
  return answers;
}

std::vector<absl::StatusOr<RedisStore::Outcome>> RedisStore::EvalPerLease(
    ScriptId id, std::span<const LeaseRef> leases, const std::vector<std::string>& extra) {
  const std::string index = LeaseIndexKey();
  std::vector<absl::StatusOr<Outcome>> answers;  // Outcome cannot be copied: built one by one
  answers.reserve(leases.size());
  std::vector<ScriptCall> calls;
  std::vector<size_t> call_of;  // the lease each call is about
  for (size_t i = 0; i < leases.size(); ++i) {
    const LeaseRef& lease = leases[i];
    if (absl::Status valid = ValidateLeaseArgs(lease.key, lease.owner); !valid.ok()) {
      answers.emplace_back(std::move(valid));
      continue;
    }
    answers.emplace_back(InternalError("lease call not sent"));  // its outcome, below
    ScriptCall call{{LeaseKey(lease.key), index},
                    {std::string(lease.key), std::string(lease.owner)},
                    fmt::format("lease '{}'", lease.key)};
    call.args.insert(call.args.end(), extra.begin(), extra.end());
    calls.push_back(std::move(call));
    call_of.push_back(i);
  }
  std::vector<absl::StatusOr<Outcome>> outcomes = EvalOutcomes(id, calls);
  for (size_t c = 0; c < calls.size(); ++c) answers[call_of[c]] = std::move(outcomes[c]);
  return answers;
}

absl::StatusOr<std::vector<absl::StatusOr<LeaseGrant>>> RedisStore::RenewLeases(
    std::span<const LeaseRef> leases, int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(store_internal::ValidateRenewalsTtl(ttl_ms));
  std::vector<absl::StatusOr<Outcome>> outcomes =
      EvalPerLease(kRenew, leases, {std::to_string(ttl_ms)});
  std::vector<absl::StatusOr<LeaseGrant>> answers;
  answers.reserve(leases.size());
  for (size_t i = 0; i < leases.size(); ++i) {
    if (!outcomes[i].ok()) {
      answers.emplace_back(outcomes[i].status());
      continue;
    }
    const Outcome& out = *outcomes[i];
    const std::string what = fmt::format("lease '{}'", leases[i].key);
    absl::Status held =
        NotHeldByOwner(out.code, *out.result, leases[i].key, leases[i].owner, what, where());
    LeaseGrant grant;
    if (held.ok() && (out.code != 2 || !ReadGrant(*out.result, 1, grant))) {
      held = Unexpected(where(), what);
    }
    answers.push_back(held.ok() ? absl::StatusOr<LeaseGrant>(grant) : held);
  }
  return answers;
}

absl::StatusOr<std::vector<absl::Status>> RedisStore::ReleaseLeases(
    std::span<const LeaseRef> leases) {
  std::vector<absl::StatusOr<Outcome>> outcomes = EvalPerLease(kRelease, leases, {});
  std::vector<absl::Status> answers;
  answers.reserve(leases.size());
  for (size_t i = 0; i < leases.size(); ++i) {
    if (!outcomes[i].ok()) {
      answers.push_back(outcomes[i].status());
      continue;
    }
    const Outcome& out = *outcomes[i];
    const std::string what = fmt::format("lease '{}'", leases[i].key);
    absl::Status released =
        NotHeldByOwner(out.code, *out.result, leases[i].key, leases[i].owner, what, where());
    if (released.ok() && out.code != 2) released = Unexpected(where(), what);
    answers.push_back(released);
  }
  return answers;
}

absl::Status RedisStore::ReleaseLease(std::string_view key, std::string_view owner) {
  XG2G_RETURN_IF_ERROR(ValidateLeaseArgs(key, owner));
  const std::string lease = LeaseKey(key);
  const std::string index = LeaseIndexKey();
  const std::string what = fmt::format("lease '{}'", key);
  XG2G_ASSIGN_OR_RETURN(Outcome answer,
                        EvalOutcome(kRelease, {lease, index}, {key, owner}, what));
  XG2G_RETURN_IF_ERROR(
      NotHeldByOwner(answer.code, *answer.result, key, owner, what, where()));
  if (answer.code != 2) return Unexpected(where(), what);
  return absl::OkStatus();
}

absl::StatusOr<LeaseInfo> RedisStore::GetLease(std::string_view key) {
  if (key.empty()) return InvalidError("lease key is empty");
  const std::string lease = LeaseKey(key);
  const std::string what = fmt::format("lease '{}'", key);
  XG2G_ASSIGN_OR_RETURN(Outcome answer, EvalOutcome(kGetLeaseScript, {lease}, {}, what));
  const redisReply* result = answer.result;
  if (answer.code == 0) return LeaseNotHeld(key);
  LeaseInfo info;
  info.key.assign(key);
  if (answer.code != 1 || result->elements < 4 || !IsText(*result->element[1]) ||
      !ReadInt(*result->element[2], info.fencing_token) ||
      !ReadInt(*result->element[3], info.expires_at_ms)) {
    return Unexpected(where(), what);
  }
  info.owner.assign(RedisText(*result->element[1]));
  return info;
}

absl::StatusOr<std::vector<LeaseInfo>> RedisStore::ListLeases() {
  const std::string index = LeaseIndexKey();
  const std::string leases = leases_ + "lease:";
  XG2G_ASSIGN_OR_RETURN(RedisReplyPtr reply,
                        Eval(kListLeasesScript, {index}, {leases}, "lease list"));
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 4 != 0) {
    return Unexpected(where(), "a lease list");
  }
  std::vector<LeaseInfo> out;
  out.reserve(reply->elements / 4);
  for (size_t i = 0; i < reply->elements; i += 4) {
    LeaseInfo info;
    if (!IsText(*reply->element[i]) || !IsText(*reply->element[i + 1]) ||
        !ReadInt(*reply->element[i + 2], info.fencing_token) ||
        !ReadInt(*reply->element[i + 3], info.expires_at_ms)) {
      return Unexpected(where(), "a lease list");
    }
    info.key.assign(RedisText(*reply->element[i]));
    info.owner.assign(RedisText(*reply->element[i + 1]));
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const LeaseInfo& a, const LeaseInfo& b) { return a.key < b.key; });
  return out;
}

absl::StatusOr<FirstLeaseGrant> RedisStore::AcquireFirstFreeLease(
    std::span<const std::string_view> keys, std::string_view owner, int64_t ttl_ms) {
  XG2G_RETURN_IF_ERROR(store_internal::ValidateFirstFreeArgs(keys, owner, ttl_ms));
  const std::string index = LeaseIndexKey();
  const std::string ttl = std::to_string(ttl_ms);
  const std::string lease_prefix = LeaseKey("");
  const std::string fence_prefix = FenceKey("");
  // Found and taken in one script: no other client comes in between.
  std::vector<std::string_view> args{owner, ttl, lease_prefix, fence_prefix};
  args.insert(args.end(), keys.begin(), keys.end());
  const std::string_view what = "the first free lease";
  XG2G_ASSIGN_OR_RETURN(Outcome answer, EvalOutcome(kFirstFreeScript, {index}, args, what));
  if (answer.code == 0) return store_internal::NoFreeLease(keys.size());
  LeaseGrant grant;
  if (answer.code < 0 || static_cast<size_t>(answer.code) > keys.size() ||
      !ReadGrant(*answer.result, 1, grant)) {
    return Unexpected(where(), what);
  }
  return FirstLeaseGrant{static_cast<size_t>(answer.code) - 1, grant};
}

}  // namespace xg2g

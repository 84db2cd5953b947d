// The contract suite on the Redis backend, against a redis-server this binary
// starts itself (tests/store/redis_server.h), plus what only Redis promises:
// the URI, the key layout (also on a one-node cluster), garbage under the
// prefix, the server's clock, tokens after a data loss, and outages (a paused
// server, a killed one, a crash under load with an append-only file).
#include "lib/store/redis_store.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/session/session.h"
#include "lib/store/store.h"
#include "tests/store/contract.h"
#include "tests/store/redis_server.h"
#include "tests/store/status_checks.h"

namespace xg2g::store_test {

const StoreBackend& BackendUnderTest() {
  static const StoreBackend* const backend = new StoreBackend{
      .name = "redis",
      .open =
          [](const OpenRequest& request) {
            // A reopen is a new store object on the same prefix of the same
            // server: what a daemon restart looks like to Redis.
            return OpenStore(SharedRedisServer().Uri(
                fmt::format("?prefix=xg2g:test:{}:", request.unique_name)));
          },
      .takes_clock = false,
      .durable = true,
      .short_ttl_ms = 200,
  };
  return *backend;
}

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A prefix no other case of this run uses.
std::string FreshPrefix() {
  static std::atomic<int> next{0};
  return fmt::format("xg2g:rt:{}:{}:", getpid(), next.fetch_add(1));
}

std::unique_ptr<RedisStore> OpenRedis(const std::string& uri) {
  auto options = ParseRedisLocation(std::string_view(uri).substr(std::string_view("redis:").size()));
  REQUIRE_MESSAGE(options.ok(), options.status().ToString());
  auto store = RedisStore::Open(*options);
  REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  return *std::move(store);
}

// A store on the shared server under a prefix of its own.
std::unique_ptr<RedisStore> OpenShared(const std::string& prefix = FreshPrefix()) {
  return OpenRedis(SharedRedisServer().Uri("?prefix=" + prefix));
}

std::string_view Text(const redisReply& reply) { return std::string_view(reply.str, reply.len); }

// Runs a command on `server` and requires an answer that is not an error.
RedisReplyPtr Raw(const RedisServer& server, const std::vector<std::string>& args) {
  auto reply = server.Command(args);
  REQUIRE_MESSAGE(reply.ok(), reply.status().ToString());
  INFO("command: ", args.front());
  REQUIRE_MESSAGE((*reply)->type != REDIS_REPLY_ERROR, Text(**reply));
  return *std::move(reply);
}

// Every key under `prefix` on `server`.
std::set<std::string> KeysUnder(const RedisServer& server, const std::string& prefix) {
  std::set<std::string> keys;
  std::string cursor = "0";
  for (int round = 0; round < 10'000; ++round) {
    RedisReplyPtr reply = Raw(server, {"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"});
    REQUIRE(reply->type == REDIS_REPLY_ARRAY);
    REQUIRE(reply->elements == 2);
    cursor.assign(Text(*reply->element[0]));
    for (size_t i = 0; i < reply->element[1]->elements; ++i) {
      keys.emplace(Text(*reply->element[1]->element[i]));
    }
    if (cursor == "0") return keys;
  }
  FAIL("SCAN did not finish");
  return keys;
}

// The part of `key` Redis Cluster hashes: the first non-empty {...}.
std::string_view HashTag(std::string_view key) {
  const size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  const size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

// Sets an environment variable for one scope (cases run one at a time, and no
// other thread reads the environment meanwhile).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name); old != nullptr) old_ = old;
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Repeats `attempt` (polling with backoff) until it returns OK or `bound`
// passes; returns the last status.
template <typename F>
absl::Status EventuallyOk(F attempt, milliseconds bound = milliseconds(10'000)) {
  const auto give_up = steady_clock::now() + bound;
  auto pause = milliseconds(1);
  for (;;) {
    absl::Status status = attempt();
    if (status.ok() || steady_clock::now() >= give_up) return status;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(100));
  }
}

int64_t ElapsedMs(steady_clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - since).count();
}

}  // namespace

TEST_SUITE("store") {

// ------------------------------------------------------------------ the URI

TEST_CASE("a redis URI gives host, port, database, credentials and options") {
  ScopedEnv no_password("XG2G_REDIS_PASSWORD", nullptr);
  ScopedEnv no_pool("XG2G_REDIS_POOL", nullptr);
  ScopedEnv no_timeout("XG2G_REDIS_TIMEOUT_MS", nullptr);

  auto plain = ParseRedisLocation("//db.internal:6380/3");
  REQUIRE_OK(plain);
  CHECK(plain->endpoint.host == "db.internal");
  CHECK(plain->endpoint.port == 6380);
  CHECK(plain->endpoint.db == 3);
  CHECK(plain->endpoint.username.empty());
  CHECK(plain->endpoint.password.empty());
  CHECK(plain->prefix == "xg2g:v3:");
  CHECK(plain->endpoint.pool_size == 8);
  CHECK(plain->endpoint.timeout_ms == 2000);
  CHECK(plain->cache_entries == 16384);

  auto bare = ParseRedisLocation("//cache");
  REQUIRE_OK(bare);
  CHECK(bare->endpoint.host == "cache");
  CHECK(bare->endpoint.port == 6379);
  CHECK(bare->endpoint.db == 0);

  auto full = ParseRedisLocation(
      "//:p%40ss%2Fw0rd@10.0.0.7:7000/1?prefix=tenant-%7Ba%7D:&pool=32&timeout_ms=250&cache=0");
  REQUIRE_OK(full);
  CHECK(full->endpoint.host == "10.0.0.7");
  CHECK(full->endpoint.password == "p@ss/w0rd");
  CHECK(full->endpoint.username.empty());
  CHECK(full->prefix == "tenant-{a}:");
  CHECK(full->endpoint.pool_size == 32);
  CHECK(full->endpoint.timeout_ms == 250);
  CHECK(full->cache_entries == 0);
  auto cached = ParseRedisLocation("//h?cache=16777216");
  REQUIRE_OK(cached);
  CHECK(cached->cache_entries == 16777216);

  auto user = ParseRedisLocation("//xg2g:secret@[2001:db8::7]:6379/0");
  REQUIRE_OK(user);
  CHECK(user->endpoint.host == "2001:db8::7");
  CHECK(user->endpoint.username == "xg2g");
  CHECK(user->endpoint.password == "secret");

  auto v6 = ParseRedisLocation("//[::1]");
  REQUIRE_OK(v6);
  CHECK(v6->endpoint.host == "::1");
  CHECK(v6->endpoint.port == 6379);
}

TEST_CASE("the environment supplies the password, pool size and timeout the URI leaves out") {
  ScopedEnv password("XG2G_REDIS_PASSWORD", "from-env");
  ScopedEnv pool("XG2G_REDIS_POOL", "3");
  ScopedEnv timeout("XG2G_REDIS_TIMEOUT_MS", "750");
  auto from_env = ParseRedisLocation("//h:1/0");
  REQUIRE_OK(from_env);
  CHECK(from_env->endpoint.password == "from-env");
  CHECK(from_env->endpoint.pool_size == 3);
  CHECK(from_env->endpoint.timeout_ms == 750);

  auto from_uri = ParseRedisLocation("//:from-uri@h:1/0?pool=5&timeout_ms=100");
  REQUIRE_OK(from_uri);
  CHECK(from_uri->endpoint.password == "from-uri");
  CHECK(from_uri->endpoint.pool_size == 5);
  CHECK(from_uri->endpoint.timeout_ms == 100);

  ScopedEnv bad_pool("XG2G_REDIS_POOL", "many");
  CHECK_ERROR(ParseRedisLocation("//h:1/0"), ErrorCode::kInvalid, "XG2G_REDIS_POOL");
  ScopedEnv good_pool("XG2G_REDIS_POOL", "2");
  ScopedEnv bad_timeout("XG2G_REDIS_TIMEOUT_MS", "0");
  CHECK_ERROR(ParseRedisLocation("//h:1/0"), ErrorCode::kInvalid, "XG2G_REDIS_TIMEOUT_MS");
}

TEST_CASE("a malformed redis URI is EINVAL naming the part, never the password") {
  const std::map<std::string, std::string> cases = {
      {"redis:", "'//'"},
      {"redis:host:6379", "'//'"},
      {"redis://", "host is empty"},
      {"redis://:s3cret@:6379/0", "host is empty"},
      {"redis://s3cret@h:6379/0", "':PASSWORD'"},
      {"redis://:s3cret%zz@h:6379/0", "%-escape"},
      {"redis://:s3cret@h:0/0", "'0'"},
      {"redis://:s3cret@h:65536/0", "'65536'"},
      {"redis://:s3cret@h:/0", "port is empty"},
      {"redis://:s3cret@h:6379/x", "database 'x'"},
      {"redis://:s3cret@h:6379/-1", "database '-1'"},
      {"redis://:s3cret@2001:db8::1:6379/0", "[]"},
      {"redis://:s3cret@[2001:db8::1/0", "']'"},
      {"redis://:s3cret@[nothex]:1/0", "IPv6"},
      {"redis://:s3cret@h st:1/0", "'h st'"},
      {"redis://:s3cret@h:1/0?pool=0", "pool"},
      {"redis://:s3cret@h:1/0?pool=100000", "pool"},
      {"redis://:s3cret@h:1/0?timeout_ms=-5", "timeout_ms"},
      {"redis://:s3cret@h:1/0?timeout_ms=fast", "timeout_ms"},
      {"redis://:s3cret@h:1/0?prefix=", "prefix"},
      {"redis://:s3cret@h:1/0?prefix=a%20b", "prefix"},
      {"redis://:s3cret@h:1/0?prefix={}", "hash tag"},
      {"redis://:s3cret@h:1/0?prefix=a{b", "hash tag"},
      {"redis://:s3cret@h:1/0?prefix={a}{b}", "hash tag"},
      {"redis://:s3cret@h:1/0?prefix", "'prefix'"},
      {"redis://:s3cret@h:1/0?cluster=yes", "'cluster'"},
      {"redis://:s3cret@h:1/0?cache=-1", "cache '-1'"},
      {"redis://:s3cret@h:1/0?cache=lots", "cache 'lots'"},
      {"redis://:s3cret@h:1/0?cache=16777217", "from 0 to 16777216"},
  };
  for (const auto& [uri, needle] : cases) {
    INFO("uri: ", uri);
    auto store = OpenStore(uri);
    CHECK_ERROR(store, ErrorCode::kInvalid, needle);
    CHECK_FALSE(MessageHas(store.status(), "s3cret"));
  }
}

TEST_CASE("opening a store where no server answers is EUNAVAILABLE, quickly and without the password") {
  auto gone = RedisServer::Start();
  REQUIRE_OK(gone);
  const int port = (*gone)->port();
  gone->reset();  // nothing listens on the port now
  const auto start = steady_clock::now();
  auto store = OpenStore(fmt::format("redis://:s3cret-pass@127.0.0.1:{}/0?timeout_ms=500", port));
  CHECK_ERROR(store, ErrorCode::kUnavailable, fmt::format("127.0.0.1:{}", port));
  CHECK_FALSE(MessageHas(store.status(), "s3cret"));
  CHECK(ElapsedMs(start) < 1500);
}

TEST_CASE("a server with a password takes the right one from the URI or the environment") {
  auto server = RedisServer::Start({.extra_args = {"--requirepass", "s3cret pass"}});
  REQUIRE_OK(server);
  const std::string query = "?prefix=" + FreshPrefix();
  {
    ScopedEnv no_password("XG2G_REDIS_PASSWORD", nullptr);
    auto wrong = OpenStore(fmt::format("redis://:wr0ng@127.0.0.1:{}/0{}", (*server)->port(), query));
    CHECK_ERROR(wrong, ErrorCode::kUnavailable, "refused the credentials");
    CHECK_FALSE(MessageHas(wrong.status(), "wr0ng"));
    auto none = OpenStore((*server)->Uri(query));
    CHECK_ERROR(none, ErrorCode::kUnavailable, "NOAUTH");

    auto right = OpenStore(
        fmt::format("redis://:s3cret%20pass@127.0.0.1:{}/0{}", (*server)->port(), query));
    REQUIRE_OK(right);
    REQUIRE_OK((*right)->PutSession(SampleSession("authed")));
    auto user = OpenStore(
        fmt::format("redis://default:s3cret%20pass@127.0.0.1:{}/0{}", (*server)->port(), query));
    REQUIRE_OK(user);
    CHECK((*user)->GetSession("authed").ok());
  }
  ScopedEnv password("XG2G_REDIS_PASSWORD", "s3cret pass");
  auto from_env = OpenStore((*server)->Uri(query));
  REQUIRE_OK(from_env);
  CHECK((*from_env)->GetSession("authed").ok());
}

TEST_CASE("a database number in the URI selects that database") {
  const std::string prefix = FreshPrefix();
  auto db5 = OpenRedis(
      fmt::format("redis://127.0.0.1:{}/5?prefix={}", SharedRedisServer().port(), prefix));
  auto db0 = OpenShared(prefix);
  REQUIRE_OK(db5->PutSession(SampleSession("in-five")));
  CHECK(db5->GetSession("in-five").ok());
  CHECK_ERROR(db0->GetSession("in-five"), ErrorCode::kNotFound, "in-five");
  CHECK(KeysUnder(SharedRedisServer(), prefix).empty());  // database 0 holds none of them
}

TEST_CASE("stores with different prefixes on one server share nothing") {
  auto a = OpenShared();
  auto b = OpenShared();
  REQUIRE_OK(a->PutSession(SampleSession("same-id")));
  REQUIRE_OK(a->AcquireLease("tuner:0", "daemon-a", 60'000));
  REQUIRE_OK(a->PutSessionWithIdempotency(SampleSession("keyed"), "key", "fp", 60'000));
  CHECK_ERROR(b->GetSession("same-id"), ErrorCode::kNotFound, "same-id");
  CHECK(b->AcquireLease("tuner:0", "daemon-b", 60'000).ok());
  CHECK_ERROR(b->GetIdempotency("key"), ErrorCode::kNotFound, "key");
  auto page = b->ListSessions(0, 10);
  REQUIRE_OK(page);
  CHECK(page->total == 0);
}

// --------------------------------------------------------------- key layout

TEST_CASE("every key sits under the prefix, sessions under one hash tag and leases under another") {
  const std::string prefix = FreshPrefix();
  auto store = OpenShared(prefix);
  REQUIRE_OK(store->PutSession(SampleSession("plain")));
  REQUIRE_OK(store->PutSessionWithIdempotency(SampleSession("keyed"), "tenant/key{1}", "fp",
                                              60'000));
  REQUIRE_OK(store->UpdateSession("plain", [](SessionRecord& s) {
    s.reason_detail = "updated";
    return absl::OkStatus();
  }));
  REQUIRE_OK(store->AcquireLease("tuner:{0}", "daemon-a", 60'000));
  REQUIRE_OK(store->AcquireLease("service:1:0:19", "daemon-a", 60'000));

  const std::set<std::string> keys = KeysUnder(SharedRedisServer(), prefix);
  const std::set<std::string> expected = {
      store->SessionKey("plain"),        store->SessionKey("keyed"),
      store->SessionIndexKey(),          store->RevisionKey(),
      store->IdempotencyKey("tenant/key{1}"), store->LeaseKey("tuner:{0}"),
      store->FenceKey("tuner:{0}"),      store->LeaseKey("service:1:0:19"),
      store->FenceKey("service:1:0:19"), store->LeaseIndexKey(),
  };
  CHECK(keys == expected);
  CHECK(store->SessionKey("plain") == prefix + "{sessions}:rec:plain");
  CHECK(store->LeaseKey("tuner:{0}") == prefix + "{leases}:lease:tuner:{0}");
  for (const std::string& key : keys) {
    INFO("key: ", key);
    CHECK(key.starts_with(prefix));
    const std::string_view tag = HashTag(key);
    CHECK((tag == "sessions" || tag == "leases"));
  }

  // The stored record is the session's JSON, revision included.
  RedisReplyPtr json = Raw(SharedRedisServer(), {"GET", store->SessionKey("plain")});
  REQUIRE(json->type == REDIS_REPLY_STRING);
  auto decoded = DecodeSession(Text(*json));
  REQUIRE_OK(decoded);
  auto got = store->GetSession("plain");
  REQUIRE_OK(got);
  CHECK(*decoded == *got);
  CHECK(decoded->reason_detail == "updated");
}

TEST_CASE("a prefix with a hash tag of its own puts the whole store in that tag's slot") {
  const std::string prefix = fmt::format("tenant-{{{}}}:", FreshPrefix());
  auto store = OpenShared(prefix);
  REQUIRE_OK(store->PutSession(SampleSession("a")));
  REQUIRE_OK(store->AcquireLease("tuner:0", "daemon-a", 60'000));
  const std::set<std::string> keys = KeysUnder(SharedRedisServer(), "tenant-{");
  CHECK(keys.size() >= 5);
  for (const std::string& key : keys) {
    if (!key.starts_with(prefix)) continue;
    CHECK(HashTag(key) == HashTag(prefix));
  }
}

TEST_CASE("the store runs unchanged on a one-node Redis Cluster") {
  auto server = RedisServer::Start(
      {.extra_args = {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}});
  REQUIRE_OK(server);
  Raw(**server, {"CLUSTER", "ADDSLOTSRANGE", "0", "16383"});
  REQUIRE_OK(EventuallyOk([&]() -> absl::Status {
    RedisReplyPtr info = Raw(**server, {"CLUSTER", "INFO"});
    return Text(*info).find("cluster_state:ok") != std::string_view::npos
               ? absl::OkStatus()
               : UnavailableError("cluster not ready");
  }));

  const std::string prefix = FreshPrefix();
  auto store = OpenRedis((*server)->Uri("?prefix=" + prefix));
  // Every kind of step: a script touching keys of two slots would fail with
  // CROSSSLOT, one reading an undeclared key of another slot likewise.
  for (int i = 0; i < 20; ++i) REQUIRE_OK(store->PutSession(SampleSession(fmt::format("s-{:02}", i))));
  auto keyed = store->PutSessionWithIdempotency(SampleSession("keyed"), "key", "fp", 60'000);
  REQUIRE_OK(keyed);
  CHECK(keyed->stored);
  REQUIRE_OK(store->GetIdempotency("key"));
  REQUIRE_OK(store->UpdateSession("s-03", [](SessionRecord& s) {
    s.state = SessionState::kReady;
    return absl::OkStatus();
  }));
  REQUIRE_OK(store->DeleteSession("s-04"));
  auto page = store->ListSessions(2, 5);
  REQUIRE_OK(page);
  CHECK(page->total == 20);
  CHECK(page->sessions.size() == 5);
  int visited = 0;
  REQUIRE_OK(store->ScanSessions([&](const SessionRecord&) { return ++visited, true; }));
  CHECK(visited == 20);
  auto grant = store->AcquireLease("tuner:0", "daemon-a", 60'000);
  REQUIRE_OK(grant);
  REQUIRE_OK(store->RenewLease("tuner:0", "daemon-a", 60'000));
  REQUIRE_OK(store->GetLease("tuner:0"));
  auto leases = store->ListLeases();
  REQUIRE_OK(leases);
  CHECK(leases->size() == 1);
  const std::vector<std::string_view> slots{"tuner:0", "tuner:1"};
  auto first = store->AcquireFirstFreeLease(slots, "daemon-b", 60'000);
  REQUIRE_OK(first);
  CHECK(first->index == 1);
  REQUIRE_OK(store->ReleaseLease("tuner:1", "daemon-b"));
  REQUIRE_OK(store->ReleaseLease("tuner:0", "daemon-a"));
  REQUIRE_OK(store->DeleteIdempotency("key"));
  CHECK(store->NowMs() > 0);

  // And the slots are the ones the layout promises.
  std::set<long long> session_slots;
  std::set<long long> lease_slots;
  for (const std::string& key : KeysUnder(**server, prefix)) {
    RedisReplyPtr slot = Raw(**server, {"CLUSTER", "KEYSLOT", key});
    (HashTag(key) == "sessions" ? session_slots : lease_slots).insert(slot->integer);
  }
  CHECK(session_slots.size() == 1);
  CHECK(lease_slots.size() == 1);
}

// ---------------------------------------------------- garbage under the prefix

TEST_CASE("a session record that is not JSON is ECORRUPT naming its key, never a crash") {
  auto store = OpenShared();
  for (int i = 0; i < 5; ++i) REQUIRE_OK(store->PutSession(SampleSession(fmt::format("good-{}", i))));
  REQUIRE_OK(store->PutSession(SampleSession("victim")));
  REQUIRE_OK(store->PutSession(SampleSession("hashed")));
  REQUIRE_OK(store->PutSession(SampleSession("stolen")));
  const RedisServer& server = SharedRedisServer();
  Raw(server, {"SET", store->SessionKey("victim"), "{\"sessionId\": \"victim\", \"revision\": tru"});
  Raw(server, {"DEL", store->SessionKey("hashed")});
  Raw(server, {"HSET", store->SessionKey("hashed"), "not", "a record"});
  Raw(server, {"SET", store->SessionKey("stolen"), EncodeSession(SampleSession("someone-else"))});

  CHECK_ERROR(store->GetSession("victim"), ErrorCode::kCorrupt, store->SessionKey("victim"));
  CHECK_ERROR(store->GetSession("hashed"), ErrorCode::kCorrupt, store->SessionKey("hashed"));
  CHECK_ERROR(store->GetSession("stolen"), ErrorCode::kCorrupt, "someone-else");
  CHECK(store->GetSession("good-1").ok());

  bool mutated = false;
  CHECK_ERROR(store->UpdateSession("victim",
                                  [&](SessionRecord&) {
                                    mutated = true;
                                    return absl::OkStatus();
                                  }),
             ErrorCode::kCorrupt, "victim");
  CHECK_FALSE(mutated);
  CHECK_ERROR(store->ListSessions(0, 100), ErrorCode::kCorrupt, "hashed");

  std::set<std::string> seen;
  const absl::Status scanned = store->ScanSessions([&](const SessionRecord& record) {
    seen.insert(record.session_id);
    return true;
  });
  CHECK_ERROR(scanned, ErrorCode::kCorrupt, "3 record(s)");
  CHECK(MessageHas(scanned, "hashed"));
  CHECK(seen == std::set<std::string>{"good-0", "good-1", "good-2", "good-3", "good-4"});

  // The way out: delete or overwrite the bad record.
  REQUIRE_OK(store->DeleteSession("hashed"));
  REQUIRE_OK(store->DeleteSession("stolen"));
  REQUIRE_OK(store->PutSession(SampleSession("victim")));
  auto page = store->ListSessions(0, 100);
  REQUIRE_OK(page);
  CHECK(page->sessions.size() == 6);
}

TEST_CASE("the first free lease is checked against its lease record, not only the index") {
  auto store = OpenShared();
  const RedisServer& server = SharedRedisServer();
  auto held = store->AcquireLease("tuner:a", "daemon-a", 60'000);
  REQUIRE_OK(held);
  // The index loses its entry (an operator's mistake, a partial restore): the
  // live lease record still counts, and the next key is granted instead.
  Raw(server, {"ZREM", store->LeaseIndexKey(), "tuner:a"});
  const std::vector<std::string_view> keys{"tuner:a", "tuner:b"};
  auto first = store->AcquireFirstFreeLease(keys, "daemon-b", 60'000);
  REQUIRE_OK(first);
  CHECK(first->index == 1);
  CHECK(first->grant.fencing_token > held->fencing_token);
  auto a = store->GetLease("tuner:a");
  REQUIRE_OK(a);
  CHECK(a->owner == "daemon-a");
  CHECK(a->fencing_token == held->fencing_token);
  auto b = store->GetLease("tuner:b");
  REQUIRE_OK(b);
  CHECK(b->owner == "daemon-b");
  CHECK(b->fencing_token == first->grant.fencing_token);
  // Both held now: busy, and nothing changes.
  CHECK_ERROR(store->AcquireFirstFreeLease(keys, "daemon-c", 60'000), ErrorCode::kBusy,
              "all 2 leases");
  REQUIRE_OK(store->ReleaseLease("tuner:a", "daemon-a"));
  REQUIRE_OK(store->ReleaseLease("tuner:b", "daemon-b"));
}

TEST_CASE("a lease key of the wrong type or without its fields is ECORRUPT naming the key") {
  auto store = OpenShared();
  const RedisServer& server = SharedRedisServer();
  REQUIRE_OK(store->AcquireLease("tuner:string", "daemon-a", 60'000));
  REQUIRE_OK(store->AcquireLease("tuner:partial", "daemon-a", 60'000));
  REQUIRE_OK(store->AcquireLease("tuner:ok", "daemon-a", 60'000));
  Raw(server, {"SET", store->LeaseKey("tuner:string"), "garbage"});
  Raw(server, {"HDEL", store->LeaseKey("tuner:partial"), "token"});
  Raw(server, {"SET", store->FenceKey("tuner:fence"), "not a number"});

  const std::string string_key = store->LeaseKey("tuner:string");
  CHECK_ERROR(store->AcquireLease("tuner:string", "daemon-b", 60'000), ErrorCode::kCorrupt,
             string_key);
  CHECK_ERROR(store->AcquireLease("tuner:string", "daemon-b", 60'000), ErrorCode::kCorrupt,
             "holds a string");
  CHECK_ERROR(store->RenewLease("tuner:string", "daemon-a", 60'000), ErrorCode::kCorrupt,
             string_key);
  CHECK_ERROR(store->ReleaseLease("tuner:string", "daemon-a"), ErrorCode::kCorrupt, string_key);
  CHECK_ERROR(store->GetLease("tuner:string"), ErrorCode::kCorrupt, string_key);
  CHECK_ERROR(store->GetLease("tuner:partial"), ErrorCode::kCorrupt,
             store->LeaseKey("tuner:partial"));
  CHECK_ERROR(store->ListLeases(), ErrorCode::kCorrupt, "tuner:");
  CHECK_ERROR(store->AcquireLease("tuner:fence", "daemon-a", 60'000), ErrorCode::kCorrupt,
             store->FenceKey("tuner:fence"));
  CHECK(store->RenewLease("tuner:ok", "daemon-a", 60'000).ok());  // the others are unharmed
  // A lease key the index does not know, holding garbage: the first-free
  // step reads it before granting it, and stops there.
  Raw(server, {"SET", store->LeaseKey("tuner:junk"), "garbage"});
  const std::vector<std::string_view> junk_first{"tuner:junk", "tuner:free"};
  CHECK_ERROR(store->AcquireFirstFreeLease(junk_first, "daemon-b", 60'000), ErrorCode::kCorrupt,
              store->LeaseKey("tuner:junk"));
  CHECK(CodeOf(store->GetLease("tuner:free").status()) == ErrorCode::kNotFound);  // not taken
  Raw(server, {"DEL", store->LeaseKey("tuner:junk")});

  // An operator clears the garbage; the store carries on.
  Raw(server, {"DEL", string_key, store->LeaseKey("tuner:partial"), store->FenceKey("tuner:fence")});
  auto leases = store->ListLeases();
  REQUIRE_OK(leases);
  REQUIRE(leases->size() == 1);
  CHECK(leases->front().key == "tuner:ok");
  CHECK(store->AcquireLease("tuner:string", "daemon-b", 60'000).ok());
}

TEST_CASE("an idempotency key or an index of the wrong type is ECORRUPT; deleting the key clears it") {
  auto store = OpenShared();
  const RedisServer& server = SharedRedisServer();
  Raw(server, {"SET", store->IdempotencyKey("key-bad"), "[1,2,3]"});
  CHECK_ERROR(store->GetIdempotency("key-bad"), ErrorCode::kCorrupt,
             store->IdempotencyKey("key-bad"));
  CHECK_ERROR(store->PutSessionWithIdempotency(SampleSession("s"), "key-bad", "fp", 60'000),
             ErrorCode::kCorrupt, "key-bad");
  CHECK_ERROR(store->GetSession("s"), ErrorCode::kNotFound, "s");  // nothing written
  REQUIRE_OK(store->DeleteIdempotency("key-bad"));
  CHECK_ERROR(store->GetIdempotency("key-bad"), ErrorCode::kNotFound, "key-bad");

  Raw(server, {"SET", store->SessionIndexKey(), "not a sorted set"});
  CHECK_ERROR(store->PutSession(SampleSession("t")), ErrorCode::kCorrupt, store->SessionIndexKey());
  CHECK_ERROR(store->ListSessions(0, 10), ErrorCode::kCorrupt, store->SessionIndexKey());
  CHECK_ERROR(store->ScanSessions([](const SessionRecord&) { return true; }), ErrorCode::kCorrupt,
             store->SessionIndexKey());
  Raw(server, {"SET", store->RevisionKey(), "seven"});
  Raw(server, {"DEL", store->SessionIndexKey()});
  CHECK_ERROR(store->PutSession(SampleSession("t")), ErrorCode::kCorrupt, store->RevisionKey());
}

// ------------------------------------------------------- time and tokens

TEST_CASE("the store's clock is the server's TIME") {
  auto store = OpenShared();
  RedisReplyPtr before = Raw(SharedRedisServer(), {"TIME"});
  const int64_t now = store->NowMs();
  RedisReplyPtr after = Raw(SharedRedisServer(), {"TIME"});
  const auto ms = [](const redisReply& time) {
    return std::stoll(std::string(Text(*time.element[0]))) * 1000 +
           std::stoll(std::string(Text(*time.element[1]))) / 1000;
  };
  CHECK(now >= ms(*before));
  CHECK(now <= ms(*after));
  auto grant = store->AcquireLease("tuner:0", "daemon-a", 10'000);
  REQUIRE_OK(grant);
  CHECK(grant->expires_at_ms >= now + 10'000);
  CHECK(grant->expires_at_ms <= store->NowMs() + 10'000);
  // Redis reclaims the key itself at the deadline.
  RedisReplyPtr pttl = Raw(SharedRedisServer(), {"PTTL", store->LeaseKey("tuner:0")});
  CHECK(pttl->integer > 0);
  CHECK(pttl->integer <= 10'000);
}

TEST_CASE("a huge ttl saturates the deadline at INT64_MAX and the key never expires") {
  auto store = OpenShared();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  auto grant = store->AcquireLease("forever", "owner", kMax);
  REQUIRE_OK(grant);
  CHECK(grant->expires_at_ms == kMax);
  CHECK(Raw(SharedRedisServer(), {"PTTL", store->LeaseKey("forever")})->integer == -1);
  auto renewed = store->RenewLease("forever", "owner", kMax - 1);
  REQUIRE_OK(renewed);
  CHECK(renewed->expires_at_ms == kMax);
  REQUIRE_OK(store->PutSessionWithIdempotency(SampleSession("kept"), "key", "fp", kMax));
  auto entry = store->GetIdempotency("key");
  REQUIRE_OK(entry);
  CHECK(entry->expires_at_ms == kMax);
  auto leases = store->ListLeases();
  REQUIRE_OK(leases);
  REQUIRE(leases->size() == 1);
  CHECK(leases->front().expires_at_ms == kMax);
}

TEST_CASE("fencing tokens keep increasing after the server lost every key") {
  auto store = OpenShared();
  auto first = store->AcquireLease("tuner:0", "daemon-a", 60'000);
  REQUIRE_OK(first);
  auto second = store->AcquireLease("tuner:1", "daemon-a", 60'000);
  REQUIRE_OK(second);
  // What a restart without persistence looks like: every key gone, the
  // counters too.
  Raw(SharedRedisServer(), {"DEL", store->LeaseKey("tuner:0"), store->FenceKey("tuner:0"),
                            store->LeaseKey("tuner:1"), store->FenceKey("tuner:1"),
                            store->LeaseIndexKey()});
  auto again = store->AcquireLease("tuner:0", "daemon-b", 60'000);
  REQUIRE_OK(again);
  CHECK(again->fencing_token > first->fencing_token);
  CHECK(again->fencing_token > second->fencing_token);
}

TEST_CASE("the store loads its scripts again when the server forgot them") {
  auto store = OpenShared();
  REQUIRE_OK(store->PutSession(SampleSession("before")));
  Raw(SharedRedisServer(), {"SCRIPT", "FLUSH"});
  REQUIRE_OK(store->PutSession(SampleSession("after")));
  REQUIRE_OK(store->AcquireLease("tuner:0", "daemon-a", 60'000));
  auto page = store->ListSessions(0, 10);
  REQUIRE_OK(page);
  CHECK(page->total == 2);
}

// ------------------------------------------------------------------ outages

TEST_CASE("many lease renewals or releases take one round trip per 512, also after a script flush") {
  auto store = OpenShared();
  std::vector<std::string> keys;
  for (int i = 0; i < 600; ++i) keys.push_back(fmt::format("tuner:{}", i));
  std::vector<LeaseRef> mine;
  for (const std::string& key : keys) {
    REQUIRE_OK(store->AcquireLease(key, "me", 60'000));
    mine.push_back(LeaseRef{key, "me"});
  }
  REQUIRE_OK(store->AcquireLease("other", "someone", 60'000));
  const std::vector<LeaseRef> few = {{keys[0], "me"}, {"other", "me"}, {"never", "me"}};

  uint64_t before = store->RoundTrips();
  auto renewed = store->RenewLeases(few, 90'000);
  REQUIRE_OK(renewed);
  CHECK(store->RoundTrips() == before + 1);
  REQUIRE(renewed->size() == 3);
  CHECK((*renewed)[0].ok());
  CHECK_ERROR((*renewed)[1].status(), ErrorCode::kConflict, "someone");
  CHECK_ERROR((*renewed)[2].status(), ErrorCode::kNotFound, "never");

  before = store->RoundTrips();
  auto all = store->RenewLeases(mine, 90'000);
  REQUIRE_OK(all);
  CHECK(store->RoundTrips() == before + 2);  // 512 + 88
  for (const auto& answer : *all) CHECK(answer.ok());

  // The server forgets its scripts: every call is run again alone, and
  // answers the same.
  Raw(SharedRedisServer(), {"SCRIPT", "FLUSH"});
  auto released = store->ReleaseLeases(few);
  REQUIRE_OK(released);
  REQUIRE(released->size() == 3);
  CHECK((*released)[0].ok());
  CHECK_ERROR((*released)[1], ErrorCode::kConflict, "someone");
  CHECK_ERROR((*released)[2], ErrorCode::kNotFound, "never");

  before = store->RoundTrips();
  const std::vector<LeaseRef> rest(mine.begin() + 1, mine.end());
  auto freed = store->ReleaseLeases(rest);
  REQUIRE_OK(freed);
  CHECK(store->RoundTrips() == before + 2);  // 512 + 87
  for (const absl::Status& answer : *freed) CHECK(answer.ok());
  auto leases = store->ListLeases();
  REQUIRE_OK(leases);
  REQUIRE(leases->size() == 1);
  CHECK(leases->front().key == "other");
}

// ------------------------------------------------------------ session cache

// The record of `id` as `store` reads it, once it has `state`; the last
// read's status when it does not within the bound.
absl::Status EventuallyState(RedisStore& store, const std::string& id, SessionState state) {
  return EventuallyOk([&]() -> absl::Status {
    auto record = store.GetSession(id);
    if (!record.ok()) return record.status();
    if (record->state != state) {
      return absl::FailedPreconditionError(std::string(StateName(record->state)));
    }
    return absl::OkStatus();
  });
}

absl::Status SetState(RedisStore& store, const std::string& id, SessionState state) {
  return store
      .UpdateSession(id,
                     [state](SessionRecord& r) {
                       r.state = state;
                       return absl::OkStatus();
                     })
      .status();
}

// Waits until `store`'s cache has had at least `count` invalidations more
// than `before`.
absl::Status Reported(RedisStore& store, uint64_t before, uint64_t count = 1) {
  return EventuallyOk([&]() -> absl::Status {
    return store.CacheStats().invalidations >= before + count
               ? absl::OkStatus()
               : absl::InternalError("not reported");
  });
}

TEST_CASE("a session read again comes from the cache; the store's own writes are seen at once") {
  auto store = OpenShared();
  REQUIRE(store->CacheStats().listening);
  CHECK(store->CacheStats().capacity == 16384);
  // The server reports the store's own writes too, a moment later; that
  // report drops what a read kept before it arrived. Wait for it.
  const uint64_t reported = store->CacheStats().invalidations;
  REQUIRE_OK(store->PutSession(SampleSession("cached")));
  REQUIRE_OK(Reported(*store, reported));
  REQUIRE_OK(store->GetSession("cached"));  // from the server, then kept
  const RedisCacheStats before = store->CacheStats();
  for (int i = 0; i < 10; ++i) REQUIRE_OK(store->GetSession("cached"));
  CHECK(store->CacheStats().hits == before.hits + 10);
  CHECK(store->CacheStats().entries == 1);

  // Its own update, delete and put: the next read answers the new value.
  REQUIRE_OK(SetState(*store, "cached", SessionState::kStarting));
  auto read = store->GetSession("cached");
  REQUIRE_OK(read);
  CHECK(read->state == SessionState::kStarting);
  REQUIRE_OK(store->DeleteSession("cached"));
  CHECK_ERROR(store->GetSession("cached"), ErrorCode::kNotFound, "cached");
  SessionRecord again = SampleSession("cached");
  again.service_ref = "1:0:1:AGAIN";
  REQUIRE_OK(store->PutSession(again));
  read = store->GetSession("cached");
  REQUIRE_OK(read);
  CHECK(read->service_ref == "1:0:1:AGAIN");

  // cache=0: every read goes to the server.
  auto uncached = OpenRedis(SharedRedisServer().Uri("?cache=0&prefix=" + FreshPrefix()));
  REQUIRE_OK(uncached->PutSession(SampleSession("plain")));
  for (int i = 0; i < 3; ++i) REQUIRE_OK(uncached->GetSession("plain"));
  CHECK(uncached->CacheStats().hits == 0);
  CHECK(uncached->CacheStats().capacity == 0);
}

TEST_CASE("another store's writes reach this store's cached records through the server") {
  const std::string prefix = FreshPrefix();
  auto a = OpenShared(prefix);
  auto b = OpenShared(prefix);
  REQUIRE(b->CacheStats().listening);
  const uint64_t put_reported = b->CacheStats().invalidations;
  REQUIRE_OK(a->PutSession(SampleSession("shared")));
  REQUIRE_OK(Reported(*b, put_reported));
  REQUIRE_OK(b->GetSession("shared"));
  REQUIRE_OK(b->GetSession("shared"));
  REQUIRE(b->CacheStats().hits >= 1);  // b now answers it from its cache

  const uint64_t invalidations = b->CacheStats().invalidations;
  REQUIRE_OK(SetState(*a, "shared", SessionState::kReady));
  REQUIRE_OK(EventuallyState(*b, "shared", SessionState::kReady));
  CHECK(b->CacheStats().invalidations > invalidations);
  // b's update starts from its cached copy; a stale one is refused by the
  // server and read again, so nothing a wrote is lost.
  REQUIRE_OK(SetState(*a, "shared", SessionState::kStopping));
  auto updated = b->UpdateSession("shared", [](SessionRecord& r) {
    r.context_data["by"] = "b";
    return absl::OkStatus();
  });
  REQUIRE_OK(updated);
  CHECK(updated->state == SessionState::kStopping);
  auto seen_by_a = a->GetSession("shared");
  REQUIRE_OK(seen_by_a);
  CHECK(seen_by_a->context_data.at("by") == "b");

  // A deletion and a raw write behind both stores' backs reach b as well.
  REQUIRE_OK(b->GetSession("shared"));
  REQUIRE_OK(a->DeleteSession("shared"));
  REQUIRE_OK(EventuallyOk([&]() -> absl::Status {
    auto gone = b->GetSession("shared");
    return CodeOf(gone.status()) == ErrorCode::kNotFound ? absl::OkStatus()
                                                          : absl::InternalError("still there");
  }));
  SessionRecord raw = SampleSession("raw");
  REQUIRE_OK(a->PutSession(raw));
  REQUIRE_OK(b->GetSession("raw"));
  raw.state = SessionState::kFailed;
  raw.revision = 99;
  Raw(SharedRedisServer(), {"SET", a->SessionKey("raw"), EncodeSession(raw)});
  REQUIRE_OK(EventuallyState(*b, "raw", SessionState::kFailed));
}

TEST_CASE("an update whose mutator refuses a cached record that went stale is checked against the server") {
  const std::string prefix = FreshPrefix();
  auto a = OpenShared(prefix);
  auto b = OpenShared(prefix);
  REQUIRE(b->CacheStats().listening);
  // Only a record in STOPPING may be stopped: what a transition's mutator
  // does with an event its state does not allow.
  auto stop = [](SessionRecord& r) -> absl::Status {
    if (r.state != SessionState::kStopping) return StateError("not STOPPING");
    r.state = SessionState::kStopped;
    return absl::OkStatus();
  };
  // a moves each session on just before b's update; b's cached copy is
  // usually still the old one then (the server's report is on its way).
  for (int i = 0; i < 50; ++i) {
    const std::string id = fmt::format("stale-{}", i);
    const uint64_t reported = b->CacheStats().invalidations;
    REQUIRE_OK(a->PutSession(SampleSession(id)));
    REQUIRE_OK(Reported(*b, reported));
    REQUIRE_OK(b->GetSession(id));
    REQUIRE_OK(b->GetSession(id));  // cached now
    REQUIRE_OK(SetState(*a, id, SessionState::kStopping));
    auto stopped = b->UpdateSession(id, stop);
    REQUIRE_MESSAGE(stopped.ok(), "round ", i, ": ", stopped.status().ToString());
    CHECK(stopped->state == SessionState::kStopped);
  }
  // A refusal of the server's own record stands.
  REQUIRE_OK(a->PutSession(SampleSession("refused")));
  CHECK_ERROR(b->UpdateSession("refused", stop), ErrorCode::kState, "not STOPPING");
}

TEST_CASE("a flushed database or a lost invalidation connection leaves no stale record behind") {
  auto server = RedisServer::Start();
  REQUIRE_OK(server);
  const std::string prefix = FreshPrefix();
  auto a = OpenRedis((*server)->Uri("?prefix=" + prefix));
  auto b = OpenRedis((*server)->Uri("?prefix=" + prefix));
  REQUIRE(b->CacheStats().listening);
  REQUIRE_OK(a->PutSession(SampleSession("s")));
  REQUIRE_OK(b->GetSession("s"));

  // FLUSHALL: every record b keeps is dropped.
  auto flushed = (*server)->Command({"FLUSHALL"});
  REQUIRE_OK(flushed);
  REQUIRE_OK(EventuallyOk([&]() -> absl::Status {
    return CodeOf(b->GetSession("s").status()) == ErrorCode::kNotFound
               ? absl::OkStatus()
               : absl::InternalError("b still answers the flushed record");
  }));

  // The server drops b's invalidation connection; a's write while it is
  // down must not leave b answering the old record once it is back.
  REQUIRE_OK(a->PutSession(SampleSession("s")));
  REQUIRE_OK(b->GetSession("s"));
  const uint64_t connects = b->CacheStats().connects;
  auto killed = (*server)->Command({"CLIENT", "KILL", "TYPE", "pubsub"});
  REQUIRE_OK(killed);
  REQUIRE_OK(SetState(*a, "s", SessionState::kReady));
  REQUIRE_OK(EventuallyState(*b, "s", SessionState::kReady));
  REQUIRE_OK(EventuallyOk([&]() -> absl::Status {
    const RedisCacheStats stats = b->CacheStats();
    return stats.listening && stats.connects > connects ? absl::OkStatus()
                                                        : absl::InternalError("not back");
  }));
  for (int i = 0; i < 2; ++i) {
    const uint64_t hits = b->CacheStats().hits;
    auto back = b->GetSession("s");
    REQUIRE_OK(back);
    CHECK(back->state == SessionState::kReady);
    if (i == 1) CHECK(b->CacheStats().hits == hits + 1);  // caching again
  }

  // A server that is gone: b's reads fail rather than answer from the cache.
  (*server)->Kill();
  REQUIRE_OK(EventuallyOk([&]() -> absl::Status {
    return CodeOf(b->GetSession("s").status()) == ErrorCode::kUnavailable
               ? absl::OkStatus()
               : absl::InternalError("b still answers from its cache");
  }));
}

TEST_CASE("the cache keeps at most its capacity of records") {
  auto store = OpenRedis(SharedRedisServer().Uri("?cache=64&prefix=" + FreshPrefix()));
  const uint64_t reported = store->CacheStats().invalidations;
  for (int i = 0; i < 500; ++i) {
    REQUIRE_OK(store->PutSession(SampleSession(fmt::format("bounded-{}", i))));
  }
  // Each put's own report drops what a read kept before it came: wait for
  // all 500, then read each once.
  REQUIRE_OK(Reported(*store, reported, 500));
  for (int i = 0; i < 500; ++i) REQUIRE_OK(store->GetSession(fmt::format("bounded-{}", i)));
  CHECK(store->CacheStats().entries <= 64);
  CHECK(store->CacheStats().entries > 0);
  for (int i = 0; i < 500; ++i) {
    auto record = store->GetSession(fmt::format("bounded-{}", i));
    REQUIRE_OK(record);
    CHECK(record->session_id == fmt::format("bounded-{}", i));
  }
}

TEST_CASE("a paused server makes calls fail with EUNAVAILABLE within the timeout, then recover") {
  auto server = RedisServer::Start();
  REQUIRE_OK(server);
  constexpr int64_t kTimeoutMs = 300;
  auto store = OpenRedis(
      (*server)->Uri(fmt::format("?prefix={}&timeout_ms={}&pool=2", FreshPrefix(), kTimeoutMs)));
  REQUIRE_OK(store->PutSession(SampleSession("kept")));
  auto grant = store->AcquireLease("tuner:0", "daemon-a", 60'000);
  REQUIRE_OK(grant);

  (*server)->Pause();
  int64_t slowest = 0;
  const auto timed = [&](auto call) {
    const auto start = steady_clock::now();
    const absl::Status status = StatusOf(call());
    slowest = std::max(slowest, ElapsedMs(start));
    return status;
  };
  CHECK_ERROR(timed([&] { return store->GetSession("kept"); }), ErrorCode::kUnavailable,
             "no answer within 300 ms");
  CHECK_ERROR(timed([&] { return store->PutSession(SampleSession("x")); }),
             ErrorCode::kUnavailable, "redis at 127.0.0.1");
  CHECK_ERROR(timed([&] { return store->AcquireLease("tuner:1", "daemon-a", 60'000); }),
             ErrorCode::kUnavailable, "redis");
  CHECK_ERROR(timed([&] { return store->ListLeases(); }), ErrorCode::kUnavailable, "redis");
  const auto clock_start = steady_clock::now();
  CHECK(store->NowMs() > 0);  // no error to give: an estimate from the last answer
  slowest = std::max(slowest, ElapsedMs(clock_start));
  MESSAGE("slowest failing call: ", slowest, " ms (timeout ", kTimeoutMs, " ms)");
  CHECK(slowest < kTimeoutMs + 500);
  (*server)->Resume();

  REQUIRE_OK(EventuallyOk([&] { return store->GetSession("kept").status(); }));
  auto renewed = store->RenewLease("tuner:0", "daemon-a", 60'000);
  REQUIRE_OK(renewed);
  CHECK(renewed->fencing_token == grant->fencing_token);
}

TEST_CASE("a killed server makes calls fail at once; the same store works again after a restart") {
  auto server = RedisServer::Start();
  REQUIRE_OK(server);
  auto store = OpenRedis((*server)->Uri(fmt::format("?prefix={}&timeout_ms=500", FreshPrefix())));
  auto before = store->AcquireLease("tuner:0", "daemon-a", 60'000);
  REQUIRE_OK(before);

  (*server)->Kill();
  for (int i = 0; i < 20; ++i) {
    const auto start = steady_clock::now();
    CHECK_ERROR(store->PutSession(SampleSession("lost")), ErrorCode::kUnavailable, "unavailable");
    CHECK(ElapsedMs(start) < 500);
  }
  REQUIRE_OK((*server)->Restart());
  // Without persistence the server came back empty (docs/redis.md says what
  // holds then): the lease is free again, with a greater token.
  REQUIRE_OK(EventuallyOk([&] { return store->PutSession(SampleSession("back")); }));
  auto after = store->AcquireLease("tuner:0", "daemon-b", 60'000);
  REQUIRE_OK(after);
  CHECK(after->fencing_token > before->fencing_token);
  CHECK(store->GetSession("back").ok());
}

TEST_CASE("a crash under load with an append-only file loses no acknowledged write") {
  RedisServer::Options aof;
  aof.appendonly = true;
  auto started = RedisServer::Start(aof);
  REQUIRE_OK(started);
  RedisServer& server = **started;
  constexpr int64_t kTimeoutMs = 500;
  auto store = OpenRedis(server.Uri(fmt::format("?prefix={}&timeout_ms={}", FreshPrefix(),
                                                kTimeoutMs)));

  constexpr int kWorkers = 8;
  constexpr int kSlots = 4;
  // Phase: 0 before the kill, 1 while down, 2 after the restart answered.
  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  std::atomic<int> ok_before{0};
  std::atomic<int> ok_after{0};
  std::atomic<int> failures{0};
  std::atomic<int> double_holds{0};
  std::atomic<int> wrong_errors{0};
  std::atomic<int64_t> slowest_ms{0};
  std::array<std::atomic<int>, kSlots> holder{};  // worker + 1, or 0: who the test thinks holds it
  std::mutex mu;
  std::vector<std::string> acked;                         // sessions the store acknowledged
  std::array<uint64_t, kSlots> max_token_before{};        // grants that ended before the kill
  std::array<uint64_t, kSlots> min_token_after{};         // grants that began after the restart
  min_token_after.fill(std::numeric_limits<uint64_t>::max());

  const auto note = [&](auto start, const absl::Status& status) {
    const int64_t took = ElapsedMs(start);
    int64_t seen = slowest_ms.load();
    while (took > seen && !slowest_ms.compare_exchange_weak(seen, took)) {
    }
    if (status.ok()) {
      (phase.load() == 0 ? ok_before : ok_after).fetch_add(1);
    } else if (CodeOf(status) == ErrorCode::kUnavailable) {
      failures.fetch_add(1);
    } else if (CodeOf(status) != ErrorCode::kBusy && CodeOf(status) != ErrorCode::kNotFound) {
      wrong_errors.fetch_add(1);
      MESSAGE("unexpected: ", status.ToString());
    }
  };

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      const std::string owner = fmt::format("daemon-{}", w);
      std::vector<int> unreleased;  // slots whose release did not get an answer
      for (int i = 0; i < 1'000'000 && !stop.load(); ++i) {
        for (auto it = unreleased.begin(); it != unreleased.end();) {
          const auto start = steady_clock::now();
          const absl::Status released = store->ReleaseLease(fmt::format("slot:{}", *it), owner);
          // The unanswered release may have been applied before the crash
          // (the answer was lost, not the write): the slot may be free or
          // held by another worker by now, and saying so is right.
          if (CodeOf(released) != ErrorCode::kConflict) note(start, released);
          it = CodeOf(released) == ErrorCode::kUnavailable ? it + 1 : unreleased.erase(it);
        }
        const std::string id = fmt::format("w{}-{}", w, i);
        auto start = steady_clock::now();
        const absl::Status put = store->PutSession(SampleSession(id));
        note(start, put);
        if (put.ok()) {
          std::lock_guard lock(mu);
          acked.push_back(id);
        }

        const int slot = (w + i) % kSlots;
        const std::string key = fmt::format("slot:{}", slot);
        const int phase_before = phase.load();
        start = steady_clock::now();
        auto grant = store->AcquireLease(key, owner, 60'000);
        note(start, grant.status());
        if (!grant.ok()) continue;
        const int phase_after = phase.load();
        int nobody = 0;
        // Held by this worker already (it re-acquired an orphan): fine.
        if (!holder[slot].compare_exchange_strong(nobody, w + 1) && nobody != w + 1) {
          double_holds.fetch_add(1);
        }
        {
          std::lock_guard lock(mu);
          if (phase_after == 0) {
            max_token_before[slot] = std::max(max_token_before[slot], grant->fencing_token);
          }
          // A slot this worker still holds (its release went unanswered) was
          // renewed, not granted: it keeps its token from before the kill.
          const bool renewed =
              std::find(unreleased.begin(), unreleased.end(), slot) != unreleased.end();
          if (phase_before == 2 && !renewed) {
            min_token_after[slot] = std::min(min_token_after[slot], grant->fencing_token);
          }
        }
        holder[slot].store(0);
        start = steady_clock::now();
        const absl::Status released = store->ReleaseLease(key, owner);
        note(start, released);
        if (CodeOf(released) == ErrorCode::kUnavailable) unreleased.push_back(slot);
      }
    });
  }

  const auto wait_for = [&](auto done, const char* what) {
    const auto give_up = steady_clock::now() + std::chrono::seconds(60);
    auto pause = milliseconds(1);
    while (!done()) {
      if (steady_clock::now() >= give_up) {
        stop = true;
        for (std::thread& t : workers) t.join();
        FAIL(what);
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, milliseconds(20));
    }
  };
  wait_for([&] { return ok_before.load() >= 300; }, "no progress before the kill");
  phase = 1;
  server.Kill();
  wait_for([&] { return failures.load() >= 50; }, "calls did not fail while the server was down");
  const absl::Status restarted = server.Restart();
  phase = 2;
  if (!restarted.ok()) {
    stop = true;
    for (std::thread& t : workers) t.join();
    FAIL(restarted.ToString());
  }
  wait_for([&] { return ok_after.load() >= 300; }, "no progress after the restart");
  stop = true;
  for (std::thread& t : workers) t.join();

  MESSAGE("ok before: ", ok_before.load(), ", failed while down: ", failures.load(),
          ", ok after: ", ok_after.load(), ", slowest call: ", slowest_ms.load(), " ms");
  CHECK(wrong_errors.load() == 0);
  CHECK(double_holds.load() == 0);
  CHECK(slowest_ms.load() < kTimeoutMs + 1000);
  for (int slot = 0; slot < kSlots; ++slot) {
    INFO("slot ", slot);
    if (min_token_after[slot] == std::numeric_limits<uint64_t>::max()) continue;
    CHECK(min_token_after[slot] > max_token_before[slot]);
  }
  size_t missing = 0;
  for (const std::string& id : acked) missing += store->GetSession(id).ok() ? 0 : 1;
  CHECK(missing == 0);
  CHECK(acked.size() >= 100);
}

}  // TEST_SUITE("store")

// ---------------------------------------------------------------- concurrency

TEST_SUITE("concurrency") {

TEST_CASE("three stores on one server: 100 racing acquires of one lease make exactly one holder") {
  const std::string prefix = FreshPrefix();
  std::vector<std::unique_ptr<RedisStore>> stores;
  for (int i = 0; i < 3; ++i) stores.push_back(OpenShared(prefix));
  constexpr int kThreads = 100;
  constexpr int kRounds = 5;
  uint64_t last_token = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<absl::StatusOr<LeaseGrant>> results(kThreads, InternalError("did not run"));
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        results[t] = stores[t % 3]->AcquireLease("service:1:0:19", fmt::format("engine-{}", t),
                                                 60'000);
      });
    }
    for (std::thread& thread : threads) thread.join();
    std::vector<int> winners;
    for (int t = 0; t < kThreads; ++t) {
      if (results[t].ok()) {
        winners.push_back(t);
      } else {
        CHECK_ERROR(results[t], ErrorCode::kBusy, "service:1:0:19");
      }
    }
    REQUIRE(winners.size() == 1);
    const int winner = winners.front();
    CHECK(results[winner]->fencing_token > last_token);
    last_token = results[winner]->fencing_token;
    // Every store sees the same holder, and any of them can tell it is busy.
    for (auto& store : stores) {
      auto info = store->GetLease("service:1:0:19");
      REQUIRE_OK(info);
      CHECK(info->owner == fmt::format("engine-{}", winner));
    }
    REQUIRE_OK(stores[(winner + 1) % 3]->ReleaseLease("service:1:0:19",
                                                      fmt::format("engine-{}", winner)));
  }
}

}  // TEST_SUITE("concurrency")

}  // namespace xg2g::store_test

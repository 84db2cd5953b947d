// A bounded pool of blocking connections to one Redis server, shared by the
// threads of one RedisStore (docs/redis.md, "Connections").
//
// Thread-safe. A connection (a hiredis context, which is not thread-safe) is
// used by one call at a time: a call takes one from the pool, runs its
// commands and gives it back. Every call has one deadline, `timeout_ms` after
// it began, that bounds waiting for a free connection, connecting and every
// read and write together, so a dead or stopped server makes calls fail with
// UnavailableError within the timeout and never hang. A connection that saw
// any error is dropped, never reused; an idle connection that the server
// closed (restart, idle kill) is noticed before use and replaced. After a
// failed connect, new connects wait out a backoff (doubling, jittered, capped)
// during which calls fail at once instead of queueing up behind a dead server.
//
// The pool never logs and its messages never contain the password.
#ifndef XG2G_LIB_STORE_REDIS_POOL_H_
#define XG2G_LIB_STORE_REDIS_POOL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct redisContext;
struct redisReply;

namespace xg2g {

struct RedisEndpoint {
  std::string host;  // name or address; IPv6 without brackets
  int port = 6379;
  int db = 0;
  std::string username;  // empty: AUTH with the password alone
  std::string password;  // empty: no AUTH
  int64_t timeout_ms = 2000;
  size_t pool_size = 8;
};

// Frees a hiredis reply.
struct RedisReplyDeleter {
  void operator()(redisReply* reply) const;
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

// One command: its arguments, binary-safe.
using RedisArgs = std::vector<std::string_view>;

// Appends `args` to `ctx`'s output buffer (sent with the next read or
// write); false when out of memory.
bool AppendRedisCommand(redisContext* ctx, const RedisArgs& args);
// The text of a string, status or error reply (empty for other kinds).
std::string_view RedisText(const redisReply& reply);

class RedisPool {
 public:
  explicit RedisPool(RedisEndpoint endpoint);
  ~RedisPool();
  RedisPool(const RedisPool&) = delete;
  RedisPool& operator=(const RedisPool&) = delete;

  // Sends `commands` on one connection as a pipeline and returns one reply per
  // command. Error replies (-ERR ...) come back as replies of type
  // REDIS_REPLY_ERROR for the caller to judge; UnavailableError when the
  // server cannot be reached or does not answer before the deadline.
  [[nodiscard]] absl::StatusOr<std::vector<RedisReplyPtr>> Run(
      const std::vector<RedisArgs>& commands);
  // One command.
  [[nodiscard]] absl::StatusOr<RedisReplyPtr> Command(const RedisArgs& args);

  // A new connection, logged in as the pool's are and with the pool's
  // timeout on its socket, that the caller keeps and frees (redisFree): for
  // a connection with a life of its own (the session cache's listener). It
  // is not one of the pool's; it waits out no backoff, but a failure to
  // connect starts or grows the pool's, as any failed connect does.
  [[nodiscard]] absl::StatusOr<redisContext*> ConnectOwn();

  // Pipelines sent (Run and Command calls that reached a connection): the
  // store's round trips, for tests and benchmarks.
  uint64_t round_trips() const { return round_trips_.load(std::memory_order_relaxed); }

  // "redis at HOST:PORT/DB": for messages (never the password).
  const std::string& where() const { return where_; }
  const RedisEndpoint& endpoint() const { return endpoint_; }

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  struct Conn {
    redisContext* ctx = nullptr;
    int64_t timeout_ms = 0;  // the socket timeouts now set on ctx
  };

  // A connection for a call that must end by `deadline`: an idle one, or a new
  // one when fewer than pool_size exist; else waits for one to come back.
  absl::StatusOr<Conn> Take(SteadyTime deadline);
  // Returns `conn` to the pool, or closes it when it must not be reused.
  void Give(Conn conn, bool reusable);
  absl::StatusOr<Conn> Connect(SteadyTime deadline);
  absl::Status ConnectError(std::string_view what);
  // What went wrong on `conn` (after a failed read or write), and as a status.
  std::string Failure(const Conn& conn, std::string_view doing) const;
  absl::Status Transport(const Conn& conn, std::string_view doing) const;

  const RedisEndpoint endpoint_;
  const std::string where_;

  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<Conn> idle_ ABSL_GUARDED_BY(mu_);
  size_t open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + in use + being connected
  // Connect backoff: no new connect before next_connect_; the delay doubles
  // with every failure and resets on success.
  SteadyTime next_connect_ ABSL_GUARDED_BY(mu_){};
  int64_t backoff_ms_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_connect_error_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> round_trips_{0};
};

}  // namespace xg2g

#endif  // XG2G_LIB_STORE_REDIS_POOL_H_

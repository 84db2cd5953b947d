#include "lib/store/redis_pool.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <random>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g {
namespace {

// hiredis writes with write(2): a server that closed the connection would
// raise SIGPIPE, whose default action ends the process. The host's signal
// dispositions are not ours to change, so each exchange blocks SIGPIPE in its
// own thread and consumes one it caused before unblocking.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    // Set here, not in the initializer list: pipe_ must be filled first.
    // NOLINTNEXTLINE(cppcoreguidelines-prefer-member-initializer)
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeBlock() {
    if (!blocked_) return;
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
  bool blocked_ = false;
};

constexpr int64_t kFirstBackoffMs = 20;
constexpr int64_t kMaxBackoffMs = 1000;

timeval ToTimeval(int64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

int64_t MsUntil(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               std::chrono::steady_clock::now())
      .count();
}

// True when the server closed an idle connection (or sent something nobody
// asked for): it must not be used.
bool ClosedByPeer(const redisContext* ctx) {
  if (ctx->err != 0) return true;
  pollfd pfd{ctx->fd, POLLIN, 0};
  const int n = poll(&pfd, 1, 0);
  return n != 0;  // readable, hung up, error, or poll itself failed
}

std::string_view ErrorText(const redisContext* ctx) {
  if (ctx->err == REDIS_ERR_EOF) return "the server closed the connection";
  return ctx->errstr[0] != '\0' ? std::string_view(ctx->errstr) : "unknown error";
}

// The first word of an error reply ("WRONGPASS"), which never carries what
// the client sent.
std::string_view ErrorCodeWord(const redisReply* reply) {
  const std::string_view text(reply->str, reply->len);
  return text.substr(0, text.find(' '));
}

}  // namespace

void RedisReplyDeleter::operator()(redisReply* reply) const { freeReplyObject(reply); }

RedisPool::RedisPool(RedisEndpoint endpoint)
    : endpoint_(std::move(endpoint)),
      where_(endpoint_.host.find(':') != std::string::npos
                 ? fmt::format("redis at [{}]:{}/{}", endpoint_.host, endpoint_.port, endpoint_.db)
                 : fmt::format("redis at {}:{}/{}", endpoint_.host, endpoint_.port, endpoint_.db)) {}

RedisPool::~RedisPool() {
  std::lock_guard lock(mu_);
  for (Conn& conn : idle_) redisFree(conn.ctx);
  idle_.clear();
}

std::string RedisPool::Failure(const Conn& conn, std::string_view doing) const {
  const std::string_view text = ErrorText(conn.ctx);
  if (conn.ctx->err == REDIS_ERR_IO && text.find("temporarily unavailable") != std::string_view::npos) {
    return fmt::format("no answer within {} ms while {}", endpoint_.timeout_ms, doing);
  }
  return fmt::format("{} while {}", text, doing);
}

absl::Status RedisPool::Transport(const Conn& conn, std::string_view doing) const {
  return UnavailableError(fmt::format("{} is unavailable: {}", where_, Failure(conn, doing)));
}

absl::Status RedisPool::ConnectError(std::string_view what) {
  std::lock_guard lock(mu_);
  last_connect_error_.assign(what);
  const auto now = std::chrono::steady_clock::now();
  // Concurrent failures of one outage grow the delay once, not once each.
  if (now >= next_connect_) {
    backoff_ms_ = std::clamp<int64_t>(backoff_ms_ * 2, kFirstBackoffMs, kMaxBackoffMs);
    thread_local std::minstd_rand random(static_cast<uint32_t>(
        std::hash<std::thread::id>{}(std::this_thread::get_id())));
    // +-20 %: daemons that lost the same server do not all come back at once.
    std::uniform_int_distribution<int64_t> jitter(-backoff_ms_ / 5, backoff_ms_ / 5);
    next_connect_ = now + std::chrono::milliseconds(backoff_ms_ + jitter(random));
  }
  return UnavailableError(fmt::format("{} is unavailable: {}", where_, what));
}

bool AppendRedisCommand(redisContext* ctx, const RedisArgs& args) {
  // Per thread, so that a pipeline of many commands allocates once.
  thread_local std::vector<const char*> argv;
  thread_local std::vector<size_t> lens;
  argv.clear();
  lens.clear();
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()) ==
         REDIS_OK;
}

std::string_view RedisText(const redisReply& reply) {
  const bool text = reply.type == REDIS_REPLY_STRING || reply.type == REDIS_REPLY_STATUS ||
                    reply.type == REDIS_REPLY_ERROR;
  return text && reply.str != nullptr ? std::string_view(reply.str, reply.len)
                                      : std::string_view();
}

absl::StatusOr<RedisPool::Conn> RedisPool::Connect(SteadyTime deadline) {
  const int64_t left = MsUntil(deadline);
  if (left <= 0) return ConnectError("no time left to connect");
  redisContext* ctx = nullptr;
  {
    SigpipeBlock no_sigpipe;
    ctx = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, ToTimeval(left));
  }
  if (ctx == nullptr) return ConnectError("out of memory while connecting");
  if (ctx->err != 0) {
    std::string what = fmt::format("cannot connect: {}", ErrorText(ctx));
    redisFree(ctx);
    return ConnectError(what);
  }
  redisEnableKeepAlive(ctx);
  Conn conn{ctx, 0};

  std::vector<RedisArgs> hello;
  if (!endpoint_.password.empty()) {
    if (endpoint_.username.empty()) {
      hello.push_back({"AUTH", endpoint_.password});
    } else {
      hello.push_back({"AUTH", endpoint_.username, endpoint_.password});
    }
  }
  const std::string db = std::to_string(endpoint_.db);
  if (endpoint_.db != 0) hello.push_back({"SELECT", db});
  if (hello.empty()) return conn;

  // The same exchange as a call's, inline: the connection is not pooled yet.
  SigpipeBlock no_sigpipe;
  const int64_t remaining = std::max<int64_t>(1, MsUntil(deadline));
  bool ok = redisSetTimeout(ctx, ToTimeval(remaining)) == REDIS_OK;
  conn.timeout_ms = remaining;
  for (const RedisArgs& args : hello) {
    if (!ok) break;
    ok = AppendRedisCommand(ctx, args);
  }
  std::string refused;
  for (size_t i = 0; ok && i < hello.size(); ++i) {
    void* raw = nullptr;
    ok = redisGetReply(ctx, &raw) == REDIS_OK;
    RedisReplyPtr reply(static_cast<redisReply*>(raw));
    if (ok && reply->type == REDIS_REPLY_ERROR && refused.empty()) {
      refused = hello[i][0] == "AUTH"
                    ? fmt::format("the server refused the credentials ({})", ErrorCodeWord(reply.get()))
                    : fmt::format("the server refused database {} ({})", endpoint_.db,
                                  std::string_view(reply->str, reply->len));
    }
  }
  if (!ok) {
    std::string what = Failure(conn, "logging in");
    redisFree(ctx);
    return ConnectError(what);
  }
  if (!refused.empty()) {
    redisFree(ctx);
    return ConnectError(refused);
  }
  return conn;
}

absl::StatusOr<redisContext*> RedisPool::ConnectOwn() {
  const SteadyTime deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(endpoint_.timeout_ms);
  XG2G_ASSIGN_OR_RETURN(Conn conn, Connect(deadline));
  if (redisSetTimeout(conn.ctx, ToTimeval(endpoint_.timeout_ms)) != REDIS_OK) {
    absl::Status status = Transport(conn, "setting the timeout");
    redisFree(conn.ctx);
    return status;
  }
  return conn.ctx;
}

absl::StatusOr<RedisPool::Conn> RedisPool::Take(SteadyTime deadline) {
  std::unique_lock lock(mu_);
  for (;;) {
    while (!idle_.empty()) {
      Conn conn = idle_.back();
      idle_.pop_back();
      if (!ClosedByPeer(conn.ctx)) return conn;
      redisFree(conn.ctx);
      --open_;
    }
    if (open_ < endpoint_.pool_size) {
      const auto now = std::chrono::steady_clock::now();
      if (now < next_connect_) {
        return UnavailableError(fmt::format(
            "{} is unavailable: {} (next connect attempt in {} ms)", where_, last_connect_error_,
            std::chrono::duration_cast<std::chrono::milliseconds>(next_connect_ - now).count()));
      }
      ++open_;
      lock.unlock();
      absl::StatusOr<Conn> conn = Connect(deadline);
      lock.lock();
      if (!conn.ok()) {
        --open_;
        returned_.notify_one();
        return conn.status();
      }
      backoff_ms_ = 0;
      return conn;
    }
    if (returned_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= endpoint_.pool_size) {
      return UnavailableError(fmt::format(
          "{}: all {} connections stayed busy for {} ms", where_, endpoint_.pool_size,
          endpoint_.timeout_ms));
    }
  }
}

void RedisPool::Give(Conn conn, bool reusable) {
  if (!reusable || conn.ctx->err != 0) {
    redisFree(conn.ctx);
    std::lock_guard lock(mu_);
    --open_;
  } else {
    std::lock_guard lock(mu_);
    idle_.push_back(conn);
  }
  returned_.notify_one();
}

absl::StatusOr<std::vector<RedisReplyPtr>> RedisPool::Run(const std::vector<RedisArgs>& commands) {
  const SteadyTime deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(endpoint_.timeout_ms);
  XG2G_ASSIGN_OR_RETURN(Conn conn, Take(deadline));

  SigpipeBlock no_sigpipe;
  // Socket timeouts bound each read and write; shrink them to what is left of
  // this call's time (a syscall only when most of it was spent waiting).
  const int64_t left = MsUntil(deadline);
  if (left <= 0) {
    Give(conn, /*reusable=*/true);
    return UnavailableError(fmt::format("{}: no answer within {} ms (waiting for a connection)",
                                        where_, endpoint_.timeout_ms));
  }
  const int64_t want = left * 10 >= endpoint_.timeout_ms * 9 ? endpoint_.timeout_ms : left;
  if (want != conn.timeout_ms) {
    if (redisSetTimeout(conn.ctx, ToTimeval(want)) != REDIS_OK) {
      absl::Status status = Transport(conn, "setting the timeout");
      Give(conn, /*reusable=*/false);
      return status;
    }
    conn.timeout_ms = want;
  }

  for (const RedisArgs& args : commands) {
    if (!AppendRedisCommand(conn.ctx, args)) {
      Give(conn, /*reusable=*/false);
      return MakeError(ErrorCode::kNoMemory, fmt::format("{}: out of memory", where_));
    }
  }
  round_trips_.fetch_add(1, std::memory_order_relaxed);
  std::vector<RedisReplyPtr> replies;
  replies.reserve(commands.size());
  for (const RedisArgs& command : commands) {
    void* raw = nullptr;
    if (redisGetReply(conn.ctx, &raw) != REDIS_OK || raw == nullptr) {
      absl::Status status =
          Transport(conn, fmt::format("running {}", command.empty() ? "" : command[0]));
      Give(conn, /*reusable=*/false);
      return status;
    }
    replies.emplace_back(static_cast<redisReply*>(raw));
  }
  Give(conn, /*reusable=*/true);
  return replies;
}

absl::StatusOr<RedisReplyPtr> RedisPool::Command(const RedisArgs& args) {
  XG2G_ASSIGN_OR_RETURN(std::vector<RedisReplyPtr> replies, Run({args}));
  return std::move(replies.front());
}

}  // namespace xg2g

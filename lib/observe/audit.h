// Audit events (DESIGN.md §7): always on; the default sink writes JSON lines,
// a host can install its own callback.
//
// Sinks are thread-safe: Emit may be called from any thread at once. Emit
// never throws and never blocks on the caller's locks.
#ifndef XG2G_LIB_OBSERVE_AUDIT_H_
#define XG2G_LIB_OBSERVE_AUDIT_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace xg2g {

struct AuditEvent {
  std::string type;              // "session_start", "session_stop", "auth_failure", ...
  int64_t time_unix_ms = 0;
  std::string client_ip;         // empty when not known
  std::string route;             // route template, or "engine"
  std::string outcome;           // "ok", "busy", "replay", "denied", "error", ...
  std::string principal_digest;  // never a token
  std::string session_id;
  std::string detail;
};

// One JSON object, no trailing newline, members in this order:
// {"type","time","client_ip","route","outcome","principal","session_id","detail"}
// "type" and "time" are always there; the other members are omitted when
// empty. "time" is RFC 3339 UTC with milliseconds ("2023-11-14T22:13:20.123Z"),
// clamped to the years 0000..9999. Strings are escaped by the shared JSON
// writer: the result is valid JSON on one line whatever bytes the fields hold.
[[nodiscard]] std::string EncodeAuditEvent(const AuditEvent& event);

// `unix_ms` as RFC 3339 UTC with milliseconds, clamped as above.
[[nodiscard]] std::string FormatRfc3339UtcMs(int64_t unix_ms);

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  virtual void Emit(const AuditEvent& event) = 0;
};

// Writes one JSON line per event to a FILE* (not owned) or to a file it opens
// for appending (owned, closed with the sink), flushing after each write.
// Lines from concurrent Emit calls never interleave and keep the order in
// which they were queued: an Emit that finds another thread writing queues
// its line and returns, and that thread writes it with the next batch before
// its own Emit returns (one write for many lines under load, not one lock
// wait and one write per line). Once every Emit call has returned, every line
// is written. A line that cannot be written is dropped and counted
// (write_errors), never retried and never thrown.
class JsonLinesAuditSink final : public AuditSink {
 public:
  // `out` null gives a sink that is not ok() and drops everything.
  explicit JsonLinesAuditSink(std::FILE* out);
  // Opens `path` for appending, creating it with mode 0600 (audit lines name
  // clients); check ok() afterwards.
  explicit JsonLinesAuditSink(const std::string& path);
  ~JsonLinesAuditSink() override;
  JsonLinesAuditSink(const JsonLinesAuditSink&) = delete;
  JsonLinesAuditSink& operator=(const JsonLinesAuditSink&) = delete;

  bool ok() const { return out_ != nullptr; }
  void Emit(const AuditEvent& event) override;
  // Events dropped because encoding or writing them failed.
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

 private:
  std::mutex mu_;
  std::string pending_;        // lines queued for the writer; guarded by mu_
  uint64_t pending_lines_ = 0;  // guarded by mu_
  bool writing_ = false;       // a thread is writing a batch; guarded by mu_
  std::FILE* const out_;
  const bool owned_;
  std::atomic<uint64_t> write_errors_{0};
};

// Hands each encoded event to a function (the host's callback), on the thread
// that emitted it and possibly from several threads at once: the function
// must be thread-safe. An exception it throws is swallowed.
class CallbackAuditSink final : public AuditSink {
 public:
  explicit CallbackAuditSink(std::function<void(std::string_view json)> fn) : fn_(std::move(fn)) {}
  void Emit(const AuditEvent& event) override;

 private:
  std::function<void(std::string_view)> fn_;
};

}  // namespace xg2g

#endif  // XG2G_LIB_OBSERVE_AUDIT_H_

// Readiness waits: poll something until it answers, with exponential backoff
// between attempts, up to a deadline, cancellable from another thread.
// Used by the daemon to announce "ready" only after its own listener answers,
// and by hosts waiting for a receiver or a store (DESIGN.md §7).
//
// No fixed sleeps: the pause between attempts is a condition-variable wait
// that a CancelToken ends at once. A timeout names what was awaited, how many
// attempts were made and the last attempt's error.
//
// Thread-safe: plain functions; several waits may run at once.
#ifndef XG2G_LIB_UPSTREAM_READINESS_H_
#define XG2G_LIB_UPSTREAM_READINESS_H_

#include <cstdint>
#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "lib/common/clock.h"
#include "lib/upstream/cancel.h"

namespace xg2g {

struct WaitOptions {
  int64_t timeout_ms = 30'000;         // the whole wait (>= 1)
  int64_t initial_backoff_ms = 50;     // pause after the first failed attempt (>= 1)
  int64_t max_backoff_ms = 1'000;      // the pause doubles up to this (>= initial_backoff_ms)
  int64_t attempt_timeout_ms = 2'000;  // one attempt (>= 1; never past the deadline)
  // HTTP waits on https:// URLs: false accepts any certificate (a daemon
  // asking its own listener, whose certificate may be self-signed).
  bool verify_tls = true;
};

// InvalidError naming the first option out of range.
[[nodiscard]] absl::Status ValidateWaitOptions(const WaitOptions& options);

// One attempt: OK when ready, else why not. `timeout_ms` is the most it may
// take. ECANCELLED from the probe ends the wait at once.
using ReadinessProbe = std::function<absl::Status(int64_t timeout_ms)>;

// Runs `probe` until it succeeds (OK), the deadline passes (ETIMEOUT: "waited
// N ms for WHAT (K attempts); last error: ..."), or `cancel` is tripped
// (ECANCELLED, also naming the last error). `what` names the awaited thing in
// messages. `clock` null: the real clock.
[[nodiscard]] absl::Status WaitUntilReady(std::string_view what, const ReadinessProbe& probe,
                                          const WaitOptions& options,
                                          const CancelToken* cancel = nullptr,
                                          Clock* clock = nullptr);

// Ready when a GET of `url` (http:// or https://) answers with a 2xx status.
[[nodiscard]] absl::Status WaitForHttpReady(std::string_view url, const WaitOptions& options,
                                            const CancelToken* cancel = nullptr,
                                            Clock* clock = nullptr);

// Ready when a TCP connection to host:port is accepted (then closed at once).
// `host` is a name or a numeric IPv4/IPv6 address; port 1..65535.
[[nodiscard]] absl::Status WaitForTcpReady(std::string_view host, int port,
                                           const WaitOptions& options,
                                           const CancelToken* cancel = nullptr,
                                           Clock* clock = nullptr);

// Blocks until `clock` reaches `until_monotonic_ms` or `cancel` is tripped;
// true when cancelled. The wait is a condition-variable wait, not a sleep.
bool WaitUntilOrCancelled(int64_t until_monotonic_ms, const CancelToken* cancel, Clock* clock);

}  // namespace xg2g

#endif  // XG2G_LIB_UPSTREAM_READINESS_H_

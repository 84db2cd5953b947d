// Store::Check's default: what any backend can verify through the interface.
#include <cstddef>
#include <optional>
#include <set>
#include <string>

#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/store/store.h"

namespace xg2g {

namespace {

// How often the count comparison is tried before a live store that keeps
// changing is given up on.
constexpr int kCountAttempts = 3;

}  // namespace

absl::StatusOr<StoreCheckReport> Store::Check() {
  StoreCheckReport report;
  // A live store may change while it is read (other daemons, the sweeper):
  // the scan is compared with the listing's total only when that total is
  // the same before and after the scan, and a difference counts as a problem
  // only when every attempt finds the same one. A store that never holds
  // still is not blamed for it.
  struct Mismatch {
    size_t listed = 0;
    size_t scanned = 0;
    bool operator==(const Mismatch&) const = default;
  };
  std::optional<Mismatch> mismatch;
  int mismatches = 0;
  for (int attempt = 0; attempt < kCountAttempts; ++attempt) {
    auto before = ListSessions(0, 1);
    if (!before.ok()) {
      if (CodeOf(before.status()) != ErrorCode::kCorrupt) return before.status();
      report.problems.emplace_back(FromAbsl(before.status().message()));
      break;
    }
    std::set<std::string> seen;
    size_t duplicates = 0;
    absl::Status scan = ScanSessions([&](const SessionRecord& record) {
      if (!seen.insert(record.session_id).second) ++duplicates;
      return true;
    });
    report.sessions = seen.size();
    if (!scan.ok()) {
      // An undecodable record stops the scan; anything else means the store
      // could not be read.
      if (CodeOf(scan) != ErrorCode::kCorrupt) return scan;
      report.problems.emplace_back(FromAbsl(scan.message()));
      break;
    }
    if (duplicates > 0) {
      report.problems.push_back(fmt::format("a scan visited {} session(s) twice", duplicates));
      break;
    }
    auto after = ListSessions(0, 1);
    if (!after.ok()) return after.status();
    if (before->total != after->total) continue;  // changed while read: again
    const Mismatch found{after->total, seen.size()};
    if (found.listed == found.scanned) {
      mismatches = 0;
      break;
    }
    if (mismatches == 0 || found == *mismatch) {
      mismatch = found;
      ++mismatches;
    } else {
      mismatches = 0;  // a different difference each time: the store is moving
    }
  }
  if (mismatches == kCountAttempts) {
    report.problems.push_back(fmt::format("the listing counts {} sessions, a scan found {}",
                                          mismatch->listed, mismatch->scanned));
  }
  auto leases = ListLeases();
  if (!leases.ok()) {
    if (CodeOf(leases.status()) != ErrorCode::kCorrupt) return leases.status();
    report.problems.emplace_back(FromAbsl(leases.status().message()));
    return report;
  }
  report.leases = leases->size();
  for (const LeaseInfo& lease : *leases) {
    if (lease.owner.empty()) {
      report.problems.push_back(fmt::format("lease '{}' has no owner", lease.key));
    }
    if (lease.fencing_token == 0) {
      report.problems.push_back(fmt::format("lease '{}' has no fencing token", lease.key));
    }
  }
  return report;
}

}  // namespace xg2g

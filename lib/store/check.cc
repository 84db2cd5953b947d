// Store::Check's default: what any backend can verify through the interface.
#include <cstddef>
#include <set>
#include <string>

#include <fmt/format.h>

#include "lib/common/status.h"
#include "lib/store/store.h"

namespace xg2g {

absl::StatusOr<StoreCheckReport> Store::Check() {
  StoreCheckReport report;
  std::set<std::string> seen;
  size_t duplicates = 0;
  absl::Status scan = ScanSessions([&](const SessionRecord& record) {
    if (!seen.insert(record.session_id).second) ++duplicates;
    return true;
  });
  if (!scan.ok()) {
    // An undecodable record stops the scan; anything else means the store
    // could not be read.
    if (CodeOf(scan) != ErrorCode::kCorrupt) return scan;
    report.problems.push_back(std::string(FromAbsl(scan.message())));
  }
  report.sessions = seen.size();
  if (duplicates > 0) {
    report.problems.push_back(fmt::format("a scan visited {} session(s) twice", duplicates));
  }
  if (scan.ok()) {
    auto page = ListSessions(0, 1);
    if (!page.ok()) {
      if (CodeOf(page.status()) != ErrorCode::kCorrupt) return page.status();
      report.problems.push_back(std::string(FromAbsl(page.status().message())));
    } else if (page->total != report.sessions) {
      report.problems.push_back(fmt::format("the listing counts {} sessions, a scan found {}",
                                            page->total, report.sessions));
    }
  }
  auto leases = ListLeases();
  if (!leases.ok()) {
    if (CodeOf(leases.status()) != ErrorCode::kCorrupt) return leases.status();
    report.problems.push_back(std::string(FromAbsl(leases.status().message())));
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

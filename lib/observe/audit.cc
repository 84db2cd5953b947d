#include "lib/observe/audit.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "lib/common/json_writer.h"

namespace xg2g {
namespace {

// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the range RFC 3339's
// four-digit year can say.
constexpr int64_t kMinUnixMs = -62'167'219'200'000;
constexpr int64_t kMaxUnixMs = 253'402'300'799'999;

struct CivilDate {
  int64_t year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

// The proleptic Gregorian date `days` after 1970-01-01 (days may be negative),
// by counting 400-year eras from 0000-03-01 so leap days fall at era ends.
CivilDate CivilFromDays(int64_t days) {
  days += 719'468;  // days from 0000-03-01 to 1970-01-01
  const int64_t era = (days >= 0 ? days : days - 146'096) / 146'097;
  const int64_t day_of_era = days - era * 146'097;                      // [0, 146096]
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;  // [0, 399]
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);  // [0, 365]
  const int64_t shifted_month = (5 * day_of_year + 2) / 153;                 // [0, 11], March first
  const auto day = static_cast<unsigned>(day_of_year - (153 * shifted_month + 2) / 5 + 1);
  const auto month = static_cast<unsigned>(shifted_month < 10 ? shifted_month + 3 : shifted_month - 9);
  const int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  return CivilDate{year, month, day};
}

// Division rounding towards negative infinity (times before 1970).
int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0); }

}  // namespace

std::string FormatRfc3339UtcMs(int64_t unix_ms) {
  unix_ms = std::clamp(unix_ms, kMinUnixMs, kMaxUnixMs);
  constexpr int64_t kMsPerDay = 86'400'000;
  const int64_t days = FloorDiv(unix_ms, kMsPerDay);
  const int64_t ms_of_day = unix_ms - days * kMsPerDay;
  const CivilDate date = CivilFromDays(days);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", date.year, date.month, date.day,
                     ms_of_day / 3'600'000, ms_of_day / 60'000 % 60, ms_of_day / 1000 % 60,
                     ms_of_day % 1000);
}

std::string EncodeAuditEvent(const AuditEvent& event) {
  std::string out;
  out.reserve(160 + event.detail.size() + event.route.size());
  out += "{\"type\":";
  AppendJsonString(out, event.type);
  out += ",\"time\":\"";
  out += FormatRfc3339UtcMs(event.time_unix_ms);
  out += '"';
  const auto member = [&out](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    out += ",\"";
    out += name;  // our own names: plain ASCII, nothing to escape
    out += "\":";
    AppendJsonString(out, value);
  };
  member("client_ip", event.client_ip);
  member("route", event.route);
  member("outcome", event.outcome);
  member("principal", event.principal_digest);
  member("session_id", event.session_id);
  member("detail", event.detail);
  out += '}';
  return out;
}

// ------------------------------------------------------------ JSON lines sink

JsonLinesAuditSink::JsonLinesAuditSink(std::FILE* out) : out_(out), owned_(false) {}

namespace {

std::FILE* OpenForAppend(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return nullptr;
  std::FILE* file = ::fdopen(fd, "a");
  if (file == nullptr) ::close(fd);
  return file;
}

}  // namespace

JsonLinesAuditSink::JsonLinesAuditSink(const std::string& path)
    : out_(OpenForAppend(path)), owned_(true) {}

JsonLinesAuditSink::~JsonLinesAuditSink() {
  // A destructor has no one to report a failed close to.
  if (out_ != nullptr && owned_) (void)std::fclose(out_);
}

void JsonLinesAuditSink::Emit(const AuditEvent& event) {
  if (out_ == nullptr) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  try {
    // Encoded before the lock: only queueing and the batches are serialised.
    std::string line = EncodeAuditEvent(event);
    line += '\n';
    std::unique_lock lock(mu_);
    pending_ += line;
    ++pending_lines_;
    if (writing_) return;  // the thread writing takes it with its next batch
    writing_ = true;
    std::string batch;
    while (!pending_.empty()) {
      batch.swap(pending_);
      const uint64_t lines = pending_lines_;
      pending_lines_ = 0;
      lock.unlock();
      const bool written = std::fwrite(batch.data(), 1, batch.size(), out_) == batch.size();
      const bool flushed = std::fflush(out_) == 0;
      if (!written || !flushed) {
        std::clearerr(out_);
        write_errors_.fetch_add(lines, std::memory_order_relaxed);
      }
      batch.clear();
      lock.lock();
    }
    writing_ = false;
  } catch (...) {  // out of memory while encoding: drop the event, never throw
    write_errors_.fetch_add(1, std::memory_order_relaxed);
  }
}

// --------------------------------------------------------------- callback sink

void CallbackAuditSink::Emit(const AuditEvent& event) {
  if (!fn_) return;
  try {
    const std::string json = EncodeAuditEvent(event);
    fn_(json);
  } catch (...) {  // the sink promises never to throw into the emitting code
  }
}

}  // namespace xg2g

#include <doctest/doctest.h>

#include <string>

#include "lib/common/clock.h"
#include "lib/common/status.h"

namespace xg2g {
namespace {

TEST_CASE("every error code survives a trip through absl::Status") {
  for (int v = static_cast<int>(kLastErrorCode); v < 0; ++v) {
    const auto code = static_cast<ErrorCode>(v);
    absl::Status s = MakeError(code, "lease 'tuner:0' is busy");
    CHECK_FALSE(s.ok());
    CHECK(CodeOf(s) == code);
    CHECK(std::string(FromAbsl(s.message())) == "lease 'tuner:0' is busy");
    CHECK(ErrorCodeName(code).substr(0, 6) == "XG2G_E");
  }
}

TEST_CASE("MakeError with kOk is an OK status") { CHECK(MakeError(ErrorCode::kOk, "x").ok()); }

TEST_CASE("a plain absl status maps to the nearest error code") {
  CHECK(CodeOf(absl::OkStatus()) == ErrorCode::kOk);
  CHECK(CodeOf(absl::NotFoundError("x")) == ErrorCode::kNotFound);
  CHECK(CodeOf(absl::InvalidArgumentError("x")) == ErrorCode::kInvalid);
  CHECK(CodeOf(absl::UnavailableError("x")) == ErrorCode::kUnavailable);
  CHECK(CodeOf(absl::DataLossError("x")) == ErrorCode::kCorrupt);
  CHECK(CodeOf(absl::AbortedError("x")) == ErrorCode::kConflict);
  CHECK(CodeOf(absl::UnknownError("x")) == ErrorCode::kInternal);
}

TEST_CASE("busy and store-full share a canonical code but stay distinct") {
  CHECK(BusyError("b").code() == StoreFullError("f").code());
  CHECK(CodeOf(BusyError("b")) == ErrorCode::kBusy);
  CHECK(CodeOf(StoreFullError("f")) == ErrorCode::kStoreFull);
}

absl::StatusOr<int> Half(int v) {
  if (v % 2 != 0) return InvalidError("odd");
  return v / 2;
}

absl::Status Quarter(int v, int* out) {
  XG2G_ASSIGN_OR_RETURN(int half, Half(v));
  XG2G_ASSIGN_OR_RETURN(*out, Half(half));
  return absl::OkStatus();
}

absl::Status FailsFirst() {
  XG2G_RETURN_IF_ERROR(ConflictError("first"));
  return InternalError("not reached");
}

TEST_CASE("the status macros return the first error and pass values through") {
  int out = 0;
  CHECK(Quarter(8, &out).ok());
  CHECK(out == 2);
  CHECK(CodeOf(Quarter(6, &out)) == ErrorCode::kInvalid);
  CHECK(CodeOf(FailsFirst()) == ErrorCode::kConflict);
}

TEST_CASE("a fake clock moves only when advanced, wall and monotonic together") {
  FakeClock clock(1'000'000);
  const int64_t mono = clock.MonotonicMs();
  CHECK(clock.NowUnixMs() == 1'000'000);
  clock.AdvanceMs(250);
  CHECK(clock.NowUnixMs() == 1'000'250);
  CHECK(clock.MonotonicMs() == mono + 250);
}

TEST_CASE("the real clock's monotonic reading never goes backwards") {
  Clock* real = Clock::Real();
  int64_t last = real->MonotonicMs();
  for (int i = 0; i < 1000; ++i) {
    const int64_t now = real->MonotonicMs();
    CHECK(now >= last);
    last = now;
  }
  CHECK(real->NowUnixMs() > 1'600'000'000'000);
}

}  // namespace
}  // namespace xg2g

// Fuzz target for the OpenWebIF answer readers (lib/upstream/openwebif.cc).
//
// Property: every reader either accepts the input or rejects it with
// ECORRUPT (never another code, never a crash); accepted signal values are
// finite; a reported lock flag is consistent with `locked` outside standby.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "lib/common/status.h"
#include "lib/upstream/openwebif.h"

namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "openwebif_fuzz: %s\n", what);
  std::abort();
}

void ExpectCorruptOrOk(const absl::Status& status, const char* reader) {
  if (!status.ok() && xg2g::CodeOf(status) != xg2g::ErrorCode::kCorrupt) Fail(reader);
}

void ExpectFinite(const std::optional<double>& value) {
  if (value.has_value() && !std::isfinite(*value)) Fail("a signal value is not finite");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  ExpectCorruptOrOk(xg2g::ParseZapAnswer(input).status(), "ParseZapAnswer: not ECORRUPT");
  ExpectCorruptOrOk(xg2g::ParseCurrentService(input).status(),
                    "ParseCurrentService: not ECORRUPT");
  ExpectCorruptOrOk(xg2g::ParseAboutAnswer(input).status(), "ParseAboutAnswer: not ECORRUPT");
  const absl::StatusOr<xg2g::SignalInfo> signal = xg2g::ParseSignalInfo(input);
  ExpectCorruptOrOk(signal.status(), "ParseSignalInfo: not ECORRUPT");
  if (signal.ok()) {
    ExpectFinite(signal->snr_percent);
    ExpectFinite(signal->snr_db);
    ExpectFinite(signal->agc_percent);
    ExpectFinite(signal->ber);
    if (signal->in_standby && signal->locked) Fail("locked in standby");
    (void)xg2g::DescribeSignal(*signal);
  }
  (void)xg2g::SameServiceRef(input, input);
  return 0;
}

// Fuzz target for the session record codec (lib/session/codec.cc).
//
// Property: any input either fails to decode with ECORRUPT, or decodes to a
// record whose encoding decodes back to the same record and re-encodes to the
// same bytes; and the input with a space in front (which always goes to the
// general JSON reader, never the exact-form one) decodes to the same outcome.
// Anything else aborts, which the fuzzer (or the replay runner in
// replay_main.cc) reports as a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lib/common/status.h"
#include "lib/session/session.h"

namespace {

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "session_codec_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<xg2g::SessionRecord> decoded = xg2g::DecodeSession(input);
  const absl::StatusOr<xg2g::SessionRecord> general =
      xg2g::DecodeSession(" " + std::string(input));
  if (decoded.status() != general.status() || (decoded.ok() && !(*decoded == *general))) {
    Fail("the exact-form reader and the general reader disagree", input);
  }
  if (!decoded.ok()) {
    if (xg2g::CodeOf(decoded.status()) != xg2g::ErrorCode::kCorrupt) {
      Fail("decoding failed with something other than ECORRUPT",
           xg2g::FromAbsl(decoded.status().message()));
    }
    return 0;
  }
  const std::string encoded = xg2g::EncodeSession(*decoded);
  const absl::StatusOr<xg2g::SessionRecord> again = xg2g::DecodeSession(encoded);
  if (!again.ok())
    Fail("a record we encoded does not decode", xg2g::FromAbsl(again.status().message()));
  if (!(*again == *decoded)) Fail("the round trip changed the record", encoded);
  if (xg2g::EncodeSession(*again) != encoded) Fail("encoding is not deterministic", encoded);
  return 0;
}

// Fuzz target for the TLS certificate check's parsing of certificate and key
// bytes (PEM, DER or anything else; lib/tls/cert_check.cc, CheckTlsBytes).
//
// The input is checked twice: once as one combined file (certificate and key
// file alike) without a passphrase, once with the passphrase "secret" and,
// when the input holds the line "--key--", with what comes before it as the
// certificate file and what comes after as the key file. The seeds in
// corpus/tls_cert use the same layout.
//
// Property: the check never fails on its input (only on invalid options),
// every finding carries a known code of its kind, one of the two file names
// and a message, the report's facts hang together, and the JSON is an
// object. Anything else aborts, which the fuzzer (or the replay runner in
// replay_main.cc) reports as a finding.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>

#include "lib/common/status.h"
#include "lib/tls/cert_check.h"

namespace {

constexpr std::string_view kCertName = "cert.pem";
constexpr std::string_view kKeyName = "key.pem";
constexpr std::string_view kSeparator = "\n--key--\n";
constexpr int64_t kNow = 1893456000;  // 2030-01-01T00:00:00Z: no clock in the target

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "tls_cert_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

template <size_t N>
bool Known(const std::string_view (&codes)[N], std::string_view code) {
  return std::find(std::begin(codes), std::end(codes), code) != std::end(codes);
}

void CheckFinding(const xg2g::TlsFinding& f, bool error) {
  if (!(error ? Known(xg2g::tls_code::kAllErrors, f.code)
              : Known(xg2g::tls_code::kAllWarnings, f.code))) {
    Fail(error ? "unknown error code" : "unknown warning code", f.code);
  }
  if (f.file != kCertName && f.file != kKeyName) Fail("a finding names no input file", f.file);
  if (f.message.empty()) Fail("a finding without a message", f.code);
}

void CheckOnce(std::string_view cert, std::string_view key, const xg2g::TlsCheckOptions& options) {
  const absl::StatusOr<xg2g::TlsCheckReport> report =
      xg2g::CheckTlsBytes(cert, kCertName, key, kKeyName, options);
  if (!report.ok()) Fail("the check failed", xg2g::FromAbsl(report.status().message()));
  for (const xg2g::TlsFinding& f : report->errors) CheckFinding(f, true);
  for (const xg2g::TlsFinding& f : report->warnings) CheckFinding(f, false);
  // The leaf's facts come together: a subject means a parsed certificate.
  if (!report->subject && (!report->sans.empty() || report->not_before_unix)) {
    Fail("leaf facts without a subject", xg2g::TlsCheckReportToJson(*report));
  }
  if (report->key_type.has_value() != report->key_bits.has_value()) {
    Fail("a key type without a size or the other way round", xg2g::TlsCheckReportToJson(*report));
  }
  const std::string json = xg2g::TlsCheckReportToJson(*report);
  const std::string_view prefix = report->valid() ? "{\"valid\":true," : "{\"valid\":false,";
  if (json.compare(0, prefix.size(), prefix) != 0 || json.back() != '}') {
    Fail("the JSON is not a report object", json);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  xg2g::TlsCheckOptions options;
  options.now_unix = kNow;
  CheckOnce(input, input, options);

  options.passphrase = "secret";
  const size_t split = input.find(kSeparator);
  if (split == std::string_view::npos) {
    CheckOnce(input, input, options);
  } else {
    CheckOnce(input.substr(0, split), input.substr(split + kSeparator.size()), options);
  }
  return 0;
}

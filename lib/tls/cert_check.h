// Checks a TLS certificate (chain) file and its private key file before a
// server starts serving HTTPS with them, and explains every problem found.
//
// The check is computed with the library's private BoringSSL and needs no
// trust store: it looks at the files themselves (readable, PEM, key matches
// the leaf, bundle order, validity period, key strength), not at whether a
// client would trust the issuer. See CONTRACT.md `xg2g tls check` and
// docs/tls.md (every code, the options, the warning rule).
//
// Thread-safe: plain functions without shared state.
#ifndef XG2G_LIB_TLS_CERT_CHECK_H_
#define XG2G_LIB_TLS_CERT_CHECK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace xg2g {

// Stable finding codes: scripts and the CLI's JSON output depend on them.
// Codes are only ever added, never renamed or reused for another meaning.
namespace tls_code {
// Errors.
inline constexpr std::string_view kFileNotFound = "FILE_NOT_FOUND";
inline constexpr std::string_view kFileUnreadable = "FILE_UNREADABLE";
inline constexpr std::string_view kFileNotPem = "FILE_NOT_PEM";         // no PEM block (DER, text)
inline constexpr std::string_view kCertMissing = "CERT_MISSING";        // PEM, but no certificate
inline constexpr std::string_view kCertParse = "CERT_PARSE_FAILED";     // malformed PEM or DER
inline constexpr std::string_view kKeyMissing = "KEY_MISSING";          // PEM, but no private key
inline constexpr std::string_view kKeyParse = "KEY_PARSE_FAILED";
inline constexpr std::string_view kKeyEncrypted = "KEY_ENCRYPTED";      // and no passphrase given
inline constexpr std::string_view kKeyPassphraseWrong = "KEY_PASSPHRASE_WRONG";
inline constexpr std::string_view kKeyEncryptionUnsupported = "KEY_ENCRYPTION_UNSUPPORTED";
inline constexpr std::string_view kKeyMismatch = "KEY_MISMATCH";        // key belongs to no certificate
inline constexpr std::string_view kChainOrder = "CHAIN_ORDER";          // issuers before the leaf
inline constexpr std::string_view kChainBroken = "CHAIN_BROKEN";        // a certificate did not issue the one before
inline constexpr std::string_view kNotYetValid = "CERT_NOT_YET_VALID";
inline constexpr std::string_view kExpired = "CERT_EXPIRED";
// Warnings.
inline constexpr std::string_view kExpiring = "CERT_EXPIRING";
inline constexpr std::string_view kWeakKey = "KEY_WEAK";                // RSA under 2048 bits
inline constexpr std::string_view kSelfSigned = "SELF_SIGNED";          // the leaf signed itself

// Every code above, errors first (for tests and the fuzz target).
inline constexpr std::string_view kAllErrors[] = {
    kFileNotFound, kFileUnreadable, kFileNotPem, kCertMissing, kCertParse,
    kKeyMissing, kKeyParse, kKeyEncrypted, kKeyPassphraseWrong, kKeyEncryptionUnsupported,
    kKeyMismatch, kChainOrder, kChainBroken, kNotYetValid, kExpired};
inline constexpr std::string_view kAllWarnings[] = {kExpiring, kWeakKey, kSelfSigned};
}  // namespace tls_code

struct TlsCheckOptions {
  // Warn when the leaf expires within min(warn_days, warn_fraction x its
  // lifetime). warn_days >= 0, 0 < warn_fraction <= 1.
  int warn_days = 30;
  double warn_fraction = 0.33;
  // The time to check against (seconds since the epoch); unset means now.
  std::optional<int64_t> now_unix;
  // Decrypts an encrypted private key (encrypted PKCS#8, or PEM encryption
  // with Proc-Type/DEK-Info). Unset: an encrypted key is KEY_ENCRYPTED.
  std::optional<std::string> passphrase;
};

// One error or warning: a stable code, the file it concerns and a sentence
// that names the reason.
struct TlsFinding {
  std::string code;
  std::string file;
  std::string message;
};

// What the check found. Facts about the leaf are unset when the files did not
// get far enough to tell them.
struct TlsCheckReport {
  std::vector<TlsFinding> errors;
  std::vector<TlsFinding> warnings;
  std::optional<std::string> subject;  // RFC 2253 ("CN=host,O=org")
  std::vector<std::string> sans;       // DNS names and IP addresses
  std::optional<int64_t> not_before_unix;
  std::optional<int64_t> not_after_unix;
  std::optional<int64_t> days_left;    // whole days until not_after, negative once expired
  std::optional<std::string> key_type;  // "RSA", "EC", "Ed25519", ...
  std::optional<int> key_bits;

  // True when there is no error (warnings allowed).
  bool valid() const { return errors.empty(); }
};

// Checks `cert_path` (the leaf first, then its issuers, PEM) against
// `key_path` (a PEM private key, encrypted only when options.passphrase is
// set; may be the same file). Problems with the files are findings in the
// report, not errors: the only error is an invalid `options` (InvalidError).
[[nodiscard]] absl::StatusOr<TlsCheckReport> CheckTlsFiles(std::string_view cert_path,
                                                           std::string_view key_path,
                                                           const TlsCheckOptions& options);

// The same check on contents already in memory (any bytes: PEM, DER or
// garbage). `cert_name` and `key_name` stand for the files in the findings.
// Inputs over the size limit of a file (4 MiB) are FILE_UNREADABLE.
[[nodiscard]] absl::StatusOr<TlsCheckReport> CheckTlsBytes(std::string_view cert_bytes,
                                                           std::string_view cert_name,
                                                           std::string_view key_bytes,
                                                           std::string_view key_name,
                                                           const TlsCheckOptions& options);

// The report as JSON in the shape CONTRACT.md fixes:
// {"valid","errors":[{"code","file","message"}],"warnings":[...],"subject",
//  "sans":[...],"not_before","not_after","days_left","key_type","key_bits"}
// Times are RFC 3339 UTC ("2025-01-01T00:00:00Z"); unknown facts are null.
std::string TlsCheckReportToJson(const TlsCheckReport& report);

// Seconds since the epoch as RFC 3339 UTC ("2025-01-01T00:00:00Z").
std::string FormatRfc3339Utc(int64_t unix_seconds);

}  // namespace xg2g

#endif  // XG2G_LIB_TLS_CERT_CHECK_H_

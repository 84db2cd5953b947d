#include "lib/tls/cert_check.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/unit/tls/generated_certs.h"

namespace xg2g {
namespace {

using testing::GeneratedCert;
using testing::ReadGeneratedCert;

// The files come from tests/data/tls/make-fixtures.sh, run at test time; its
// header lists them with their fixed validity dates.
std::string Cert(std::string_view name) { return GeneratedCert(name); }

constexpr int64_t kDay = 86400;
constexpr int64_t k2024Jan01 = 1704067200;  // 2024-01-01T00:00:00Z
constexpr int64_t k2024Jun01 = 1717200000;  // 2024-06-01T00:00:00Z
constexpr int64_t k2025Jan01 = 1735689600;  // 2025-01-01T00:00:00Z
constexpr int64_t k2025Jan11 = 1736553600;  // 2025-01-11T00:00:00Z
constexpr int64_t k2025Feb17 = 1739750400;  // 2025-02-17T00:00:00Z
constexpr int64_t k2026Jan01 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t k2030Jan01 = 1893456000;  // 2030-01-01T00:00:00Z
constexpr int64_t k2034Jun01 = 2032732800;  // 2034-06-01T00:00:00Z
constexpr int64_t k2048Jan01 = 2461449600;  // 2048-01-01T00:00:00Z
constexpr int64_t k2049Dec31End = 2524607999;  // 2049-12-31T23:59:59Z

const std::vector<std::string> kLeafSans = {"localhost", "xg2g.test", "127.0.0.1", "::1"};
constexpr std::string_view kLeafSubject = "CN=localhost,O=libxg2g tests";

TlsCheckReport Check(std::string_view cert, std::string_view key, int64_t now = k2030Jan01,
                     TlsCheckOptions options = {}) {
  options.now_unix = now;
  absl::StatusOr<TlsCheckReport> report = CheckTlsFiles(Cert(cert), Cert(key), options);
  REQUIRE(report.ok());
  return *std::move(report);
}

TlsCheckReport CheckWithPassphrase(std::string_view cert, std::string_view key,
                                   std::string passphrase) {
  TlsCheckOptions options;
  options.passphrase = std::move(passphrase);
  return Check(cert, key, k2030Jan01, options);
}

bool HasCode(const std::vector<TlsFinding>& findings, std::string_view code) {
  return std::any_of(findings.begin(), findings.end(),
                     [&](const TlsFinding& f) { return f.code == code; });
}

const TlsFinding* Find(const std::vector<TlsFinding>& findings, std::string_view code) {
  for (const TlsFinding& f : findings) {
    if (f.code == code) return &f;
  }
  return nullptr;
}

std::string Codes(const TlsCheckReport& r) {
  std::string s;
  for (const TlsFinding& f : r.errors) s += "E:" + f.code + ":" + f.message + "\n";
  for (const TlsFinding& f : r.warnings) s += "W:" + f.code + ":" + f.message + "\n";
  return s;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Writes `parts` (generated files) one after the other into a new file of
// the generated directory and returns its path.
std::string Concatenate(std::string_view name, std::initializer_list<std::string_view> parts) {
  std::string content;
  for (std::string_view part : parts) content += ReadGeneratedCert(part);
  const std::string path = Cert(name);
  std::FILE* out = std::fopen(path.c_str(), "wb");
  REQUIRE(out != nullptr);
  REQUIRE(std::fwrite(content.data(), 1, content.size(), out) == content.size());
  REQUIRE(std::fclose(out) == 0);
  return path;
}

// ---------------------------------------------------------------------------
// Clean certificates and the facts of the report.

TEST_CASE("a leaf then its issuer with the matching key is clean") {
  const TlsCheckReport r = Check("chain.pem", "leaf.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.errors.empty());
  CHECK(r.warnings.empty());
  CHECK(r.subject == kLeafSubject);
  CHECK(r.sans == kLeafSans);
  CHECK(r.key_type == "RSA");
  CHECK(r.key_bits == 2048);
  CHECK(r.not_before_unix == k2024Jan01);
  CHECK(r.not_after_unix == k2049Dec31End);
  CHECK(r.days_left == (k2049Dec31End - k2030Jan01) / kDay);
}

TEST_CASE("a single leaf certificate without its issuer is clean too") {
  const TlsCheckReport r = Check("leaf.pem", "leaf.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.warnings.empty());
}

TEST_CASE("an RSA key is accepted as PKCS#8 and as PKCS#1") {
  for (const char* key : {"leaf.key", "leaf-pkcs1.key"}) {
    CAPTURE(std::string(key));
    const TlsCheckReport r = Check("chain.pem", key);
    INFO(Codes(r));
    CHECK(r.valid());
    CHECK(r.warnings.empty());
    CHECK(r.key_type == "RSA");
    CHECK(r.key_bits == 2048);
  }
}

TEST_CASE("an EC P-256 certificate is clean with its SEC1 or PKCS#8 key") {
  for (const char* key : {"ec.key", "ec-pkcs8.key"}) {
    CAPTURE(std::string(key));
    const TlsCheckReport r = Check("ec.pem", key);
    INFO(Codes(r));
    CHECK(r.valid());
    CHECK(r.warnings.empty());
    CHECK(r.key_type == "EC");
    CHECK(r.key_bits == 256);
    CHECK(r.subject == "CN=ec.xg2g.test,O=libxg2g tests");
    CHECK(r.sans == std::vector<std::string>{"ec.xg2g.test", "192.0.2.7"});
    CHECK(r.not_before_unix == k2024Jan01);
    CHECK(r.not_after_unix == k2049Dec31End);
  }
}

TEST_CASE("an EC P-384 certificate reports every fact, also from a SEC1 key after its parameters") {
  for (const char* key : {"ec384.key", "ec384-sec1.key"}) {
    CAPTURE(std::string(key));
    const TlsCheckReport r = Check("ec384.pem", key);
    INFO(Codes(r));
    CHECK(r.valid());
    CHECK(r.warnings.empty());
    CHECK(r.key_type == "EC");
    CHECK(r.key_bits == 384);
    CHECK(r.subject == "CN=ec384.xg2g.test,O=libxg2g tests");
    CHECK(r.sans == std::vector<std::string>{"ec384.xg2g.test"});
    CHECK(r.not_before_unix == k2024Jun01);
    CHECK(r.not_after_unix == k2034Jun01);
    CHECK(r.days_left == (k2034Jun01 - k2030Jan01) / kDay);
  }
}

TEST_CASE("an Ed25519 certificate reports its type and 253 bits") {
  const TlsCheckReport r = Check("ed25519.pem", "ed25519.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.warnings.empty());
  CHECK(r.key_type == "Ed25519");
  CHECK(r.key_bits == 253);
  CHECK(r.subject == "CN=ed25519.xg2g.test,O=libxg2g tests");
  CHECK(r.sans == std::vector<std::string>{"2001:db8::25"});
}

TEST_CASE("the report is JSON in the contract's shape") {
  const TlsCheckReport r = Check("leaf-365d.pem", "leaf.key", k2025Jan01 + 100 * kDay);
  CHECK(TlsCheckReportToJson(r) ==
        "{\"valid\":true,\"errors\":[],\"warnings\":[],\"subject\":\"CN=localhost,O=libxg2g tests\","
        "\"sans\":[\"localhost\",\"xg2g.test\",\"127.0.0.1\",\"::1\"],"
        "\"not_before\":\"2025-01-01T00:00:00Z\",\"not_after\":\"2026-01-01T00:00:00Z\","
        "\"days_left\":265,\"key_type\":\"RSA\",\"key_bits\":2048}");
}

TEST_CASE("a report without a certificate says null for the unknown facts") {
  const TlsCheckReport r = Check("missing.pem", "missing.key");
  const std::string json = TlsCheckReportToJson(r);
  CHECK(json.rfind("{\"valid\":false,", 0) == 0);
  CHECK(Contains(json, "\"subject\":null,\"sans\":[],\"not_before\":null,\"not_after\":null,"
                       "\"days_left\":null,\"key_type\":null,\"key_bits\":null}"));
}

TEST_CASE("a key alone still reports its type and size") {
  const TlsCheckReport r = Check("notpem.txt", "ec384.key");
  CHECK_FALSE(r.subject.has_value());
  CHECK(r.key_type == "EC");
  CHECK(r.key_bits == 384);
}

TEST_CASE("JSON strings are escaped and invalid UTF-8 is replaced") {
  TlsCheckReport r;
  r.errors.push_back({"X", "a\"b\\c\n\x01", "caf\xc3\xa9 \xff end"});
  const std::string json = TlsCheckReportToJson(r);
  CHECK(Contains(json, R"("file":"a\"b\\c\u000a\u0001")"));
  CHECK(Contains(json, "\"message\":\"caf\xc3\xa9 \xEF\xBF\xBD end\""));
}

// ---------------------------------------------------------------------------
// Files: missing, unreadable, not PEM.

TEST_CASE("missing files are errors that name each file") {
  const TlsCheckReport r = Check("nope.pem", "nope.key");
  CHECK_FALSE(r.valid());
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].code == "FILE_NOT_FOUND");
  CHECK(r.errors[0].file == Cert("nope.pem"));
  CHECK(Contains(r.errors[0].message, "certificate file"));
  CHECK(r.errors[1].code == "FILE_NOT_FOUND");
  CHECK(r.errors[1].file == Cert("nope.key"));
  CHECK(Contains(r.errors[1].message, "key file"));
}

TEST_CASE("a path through a file is not found, an empty path too") {
  const TlsCheckReport r = Check("leaf.pem/inside", "leaf.key");
  CHECK(HasCode(r.errors, "FILE_NOT_FOUND"));
  TlsCheckOptions options;
  options.now_unix = k2030Jan01;
  const absl::StatusOr<TlsCheckReport> empty = CheckTlsFiles("", Cert("leaf.key"), options);
  REQUIRE(empty.ok());
  CHECK(HasCode(empty->errors, "FILE_NOT_FOUND"));
}

TEST_CASE("a directory given as a file is reported as unreadable") {
  const TlsCheckReport r = Check(".", "leaf.key");
  const TlsFinding* f = Find(r.errors, "FILE_UNREADABLE");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "directory"));
}

TEST_CASE("a file without permission to read is reported as unreadable") {
  const std::string path = Concatenate("noread.key", {"leaf.key"});
  REQUIRE(::chmod(path.c_str(), 0) == 0);
  const TlsCheckReport r = Check("leaf.pem", "noread.key");
  if (::geteuid() == 0) {
    // Root reads everything: the check simply succeeds.
    CHECK(r.valid());
  } else {
    const TlsFinding* f = Find(r.errors, "FILE_UNREADABLE");
    REQUIRE(f != nullptr);
    CHECK(f->file == path);
    CHECK(Contains(f->message, "Permission denied"));
  }
}

TEST_CASE("a file over 4 MiB is reported as unreadable without reading it all") {
  const std::string path = Cert("huge.pem");
  std::FILE* out = std::fopen(path.c_str(), "wb");
  REQUIRE(out != nullptr);
  std::fclose(out);
  REQUIRE(::truncate(path.c_str(), 5 * 1024 * 1024) == 0);
  const TlsCheckReport r = Check("huge.pem", "leaf.key");
  const TlsFinding* f = Find(r.errors, "FILE_UNREADABLE");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "larger than"));
}

TEST_CASE("a DER certificate or key is not PEM, and the message says DER") {
  const TlsCheckReport r = Check("leaf.der", "leaf-key.der");
  INFO(Codes(r));
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].code == "FILE_NOT_PEM");
  CHECK(r.errors[0].file == Cert("leaf.der"));
  CHECK(Contains(r.errors[0].message, "DER (binary) certificate"));
  CHECK(r.errors[1].code == "FILE_NOT_PEM");
  CHECK(r.errors[1].file == Cert("leaf-key.der"));
  CHECK(Contains(r.errors[1].message, "DER (binary) private key"));
}

TEST_CASE("plain text and an empty file are not PEM") {
  const TlsCheckReport text = Check("notpem.txt", "leaf.key");
  const TlsFinding* f = Find(text.errors, "FILE_NOT_PEM");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "-----BEGIN"));
  CHECK_FALSE(HasCode(text.errors, "CERT_MISSING"));

  const TlsCheckReport empty = Check("leaf.pem", "empty.pem");
  const TlsFinding* e = Find(empty.errors, "FILE_NOT_PEM");
  REQUIRE(e != nullptr);
  CHECK(e->file == Cert("empty.pem"));
  CHECK(Contains(e->message, "is empty"));
}

TEST_CASE("broken base64 inside a certificate block is a parse error") {
  const TlsCheckReport r = Check("garbage.pem", "leaf.key");
  const TlsFinding* f = Find(r.errors, "CERT_PARSE_FAILED");
  REQUIRE(f != nullptr);
  CHECK(f->file == Cert("garbage.pem"));
  CHECK(Contains(f->message, "malformed PEM"));
  CHECK_FALSE(r.subject.has_value());
}

TEST_CASE("a certificate block that holds no DER certificate is a parse error") {
  const TlsCheckReport r = Check("notder.pem", "leaf.key");
  const TlsFinding* f = Find(r.errors, "CERT_PARSE_FAILED");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "not a valid X.509 certificate"));
}

TEST_CASE("a key block that holds no key is a parse error") {
  const std::string content = ReadGeneratedCert("notder.pem");
  std::string key = content;
  key.replace(key.find("BEGIN CERTIFICATE"), 17, "BEGIN PRIVATE KEY");
  key.replace(key.find("END CERTIFICATE"), 15, "END PRIVATE KEY");
  TlsCheckOptions options;
  options.now_unix = k2030Jan01;
  const absl::StatusOr<TlsCheckReport> r =
      CheckTlsBytes(ReadGeneratedCert("leaf.pem"), "leaf.pem", key, "bad.key", options);
  REQUIRE(r.ok());
  const TlsFinding* f = Find(r->errors, "KEY_PARSE_FAILED");
  REQUIRE(f != nullptr);
  CHECK(f->file == "bad.key");
  CHECK(Contains(f->message, "not a valid private key"));
}

TEST_CASE("PEM files of the wrong kind say what they found instead") {
  const TlsCheckReport swapped = Check("leaf.key", "leaf.pem");
  const TlsFinding* cert = Find(swapped.errors, "CERT_MISSING");
  REQUIRE(cert != nullptr);
  CHECK(Contains(cert->message, "PRIVATE KEY"));
  const TlsFinding* key = Find(swapped.errors, "KEY_MISSING");
  REQUIRE(key != nullptr);
  CHECK(key->file == Cert("leaf.pem"));
  CHECK(Contains(key->message, "CERTIFICATE"));
}

TEST_CASE("a key and certificate in one file are accepted") {
  const TlsCheckReport r = Check("combined.pem", "combined.pem");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.subject == kLeafSubject);
}

// ---------------------------------------------------------------------------
// Keys: mismatch, encryption, passphrases.

TEST_CASE("a key that belongs to another certificate is a mismatch") {
  const TlsCheckReport r = Check("leaf.pem", "other.key");
  CHECK_FALSE(r.valid());
  const TlsFinding* f = Find(r.errors, "KEY_MISMATCH");
  REQUIRE(f != nullptr);
  CHECK(f->file == Cert("other.key"));
  CHECK(Contains(f->message, "does not belong"));
  CHECK(HasCode(Check("chain.pem", "ec.key").errors, "KEY_MISMATCH"));
}

TEST_CASE("an encrypted key without a passphrase is KEY_ENCRYPTED, whatever its format") {
  for (const char* key : {"encrypted.key", "encrypted-pkcs1.key", "encrypted-sec1.key",
                          "encrypted-scrypt.key", "encrypted-camellia.key"}) {
    CAPTURE(std::string(key));
    const TlsCheckReport r = Check(std::string_view(key) == "encrypted-sec1.key" ? "ec.pem"
                                                                                 : "leaf.pem",
                                   key);
    INFO(Codes(r));
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].code == "KEY_ENCRYPTED");
    CHECK(r.errors[0].file == Cert(key));
    CHECK(Contains(r.errors[0].message, "no passphrase"));
  }
}

TEST_CASE("an encrypted key with the right passphrase checks fine") {
  struct Case {
    const char* cert;
    const char* key;
    const char* type;
  };
  for (const Case& c : {Case{"chain.pem", "encrypted.key", "RSA"},
                        Case{"chain.pem", "encrypted-pkcs1.key", "RSA"},
                        Case{"ec.pem", "encrypted-sec1.key", "EC"}}) {
    CAPTURE(std::string(c.key));
    const TlsCheckReport r = CheckWithPassphrase(c.cert, c.key, "secret");
    INFO(Codes(r));
    CHECK(r.valid());
    CHECK(r.warnings.empty());
    CHECK(r.key_type == c.type);
  }
}

TEST_CASE("an encrypted key with a wrong passphrase is KEY_PASSPHRASE_WRONG, not a mismatch") {
  for (const char* key : {"encrypted.key", "encrypted-pkcs1.key", "encrypted-sec1.key"}) {
    for (const char* pass : {"Secret", "", "a much longer passphrase that is wrong as well"}) {
      CAPTURE(std::string(key));
      CAPTURE(std::string(pass));
      const TlsCheckReport r = CheckWithPassphrase("leaf.pem", key, pass);
      INFO(Codes(r));
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].code == "KEY_PASSPHRASE_WRONG");
      CHECK(r.errors[0].file == Cert(key));
      CHECK(Contains(r.errors[0].message, "cannot be decrypted with the given passphrase"));
    }
  }
}

TEST_CASE("an encryption scheme BoringSSL cannot decrypt is KEY_ENCRYPTION_UNSUPPORTED") {
  for (const char* key : {"encrypted-scrypt.key", "encrypted-camellia.key"}) {
    CAPTURE(std::string(key));
    const TlsCheckReport r = CheckWithPassphrase("leaf.pem", key, "secret");
    INFO(Codes(r));
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].code == "KEY_ENCRYPTION_UNSUPPORTED");
    CHECK(Contains(r.errors[0].message, "does not support"));
  }
}

TEST_CASE("a passphrase given for an unencrypted key is ignored") {
  const TlsCheckReport r = CheckWithPassphrase("chain.pem", "leaf.key", "secret");
  INFO(Codes(r));
  CHECK(r.valid());
}

// ---------------------------------------------------------------------------
// Chains.

TEST_CASE("issuers before the leaf are an error, with the leaf's facts reported") {
  const TlsCheckReport r = Check("chain-reversed.pem", "leaf.key");
  INFO(Codes(r));
  CHECK_FALSE(r.valid());
  const TlsFinding* f = Find(r.errors, "CHAIN_ORDER");
  REQUIRE(f != nullptr);
  CHECK(f->file == Cert("chain-reversed.pem"));
  CHECK(Contains(f->message, "leaf first"));
  CHECK(r.errors.size() == 1);
  CHECK(r.subject == kLeafSubject);
}

TEST_CASE("a leaf, its intermediate and the root in that order are clean") {
  const TlsCheckReport r = Check("chain3.pem", "leaf.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.warnings.empty());
  CHECK(r.subject == kLeafSubject);
}

TEST_CASE("a three-certificate bundle in reverse order is a chain order error only") {
  const TlsCheckReport r = Check("chain3-reversed.pem", "leaf.key");
  INFO(Codes(r));
  CHECK_FALSE(r.errors.empty());
  for (const TlsFinding& f : r.errors) CHECK(f.code == "CHAIN_ORDER");
  CHECK(r.subject == kLeafSubject);
}

TEST_CASE("a bundle that leaves out the intermediate breaks the chain") {
  const TlsCheckReport r = Check("chain3-gap.pem", "leaf.key");
  INFO(Codes(r));
  const TlsFinding* f = Find(r.errors, "CHAIN_BROKEN");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "did not issue"));
  CHECK_FALSE(HasCode(r.errors, "CHAIN_ORDER"));
}

TEST_CASE("an unrelated certificate after the leaf breaks the chain") {
  Concatenate("leaf-then-self.pem", {"leaf.pem", "selfsigned.pem"});
  const TlsCheckReport r = Check("leaf-then-self.pem", "leaf.key");
  CHECK(HasCode(r.errors, "CHAIN_BROKEN"));
  CHECK_FALSE(HasCode(r.errors, "CHAIN_ORDER"));
}

// ---------------------------------------------------------------------------
// Validity period and the expiry warning.

TEST_CASE("an expired certificate is an error with negative days left") {
  const TlsCheckReport r = Check("expired.pem", "leaf.key", k2025Jan01);
  CHECK_FALSE(r.valid());
  const TlsFinding* f = Find(r.errors, "CERT_EXPIRED");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "2021-01-01T00:00:00Z"));
  REQUIRE(r.days_left.has_value());
  CHECK(*r.days_left < 0);
}

TEST_CASE("a certificate before its validity period is an error") {
  const TlsCheckReport r = Check("notyet.pem", "leaf.key", k2030Jan01);
  INFO(Codes(r));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].code == "CERT_NOT_YET_VALID");
  CHECK(Contains(r.errors[0].message, "2048-01-01T00:00:00Z"));
  CHECK(r.not_before_unix == k2048Jan01);
  CHECK(HasCode(Check("leaf-365d.pem", "leaf.key", k2025Jan01 - 1).errors, "CERT_NOT_YET_VALID"));
}

TEST_CASE("the validity period includes its first and last second") {
  CHECK(Check("leaf-365d.pem", "leaf.key", k2025Jan01).valid());
  const TlsCheckReport last = Check("leaf-365d.pem", "leaf.key", k2026Jan01);
  CHECK(last.valid());
  CHECK(last.days_left == 0);
  CHECK(HasCode(Check("leaf-365d.pem", "leaf.key", k2026Jan01 + 1).errors, "CERT_EXPIRED"));
}

TEST_CASE("without a time in the options the real clock is used") {
  // current.pem starts when the fixtures were made and lasts 365 days.
  TlsCheckOptions options;
  const absl::StatusOr<TlsCheckReport> r = CheckTlsFiles(Cert("current.pem"), Cert("leaf.key"),
                                                         options);
  REQUIRE(r.ok());
  INFO(Codes(*r));
  CHECK(r->valid());
  CHECK(r->warnings.empty());
  REQUIRE(r->days_left.has_value());
  CHECK(*r->days_left >= 363);
  CHECK(*r->days_left <= 365);
}

TEST_CASE("a 365-day certificate warns at 30 days left and not at 31") {
  const TlsCheckReport at30 = Check("leaf-365d.pem", "leaf.key", k2026Jan01 - 30 * kDay);
  CHECK(at30.valid());
  CHECK(at30.days_left == 30);
  const TlsFinding* f = Find(at30.warnings, "CERT_EXPIRING");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "in 30 days"));

  const TlsCheckReport at31 = Check("leaf-365d.pem", "leaf.key", k2026Jan01 - 31 * kDay);
  CHECK(at31.warnings.empty());
}

TEST_CASE("a 47-day certificate warns in its last third only") {
  // 0.33 x 47 days = 15.51 days, shorter than 30 days.
  CHECK(HasCode(Check("leaf-47d.pem", "leaf.key", k2025Feb17 - 15 * kDay).warnings, "CERT_EXPIRING"));
  CHECK(Check("leaf-47d.pem", "leaf.key", k2025Feb17 - 16 * kDay).warnings.empty());
  CHECK(Check("leaf-47d.pem", "leaf.key", k2025Jan01 + kDay).warnings.empty());
}

TEST_CASE("a fresh 10-day certificate does not warn") {
  const TlsCheckReport fresh = Check("leaf-10d.pem", "leaf.key", k2025Jan01);
  CHECK(fresh.warnings.empty());
  CHECK(fresh.days_left == 10);
  CHECK(HasCode(Check("leaf-10d.pem", "leaf.key", k2025Jan11 - 3 * kDay).warnings, "CERT_EXPIRING"));
}

TEST_CASE("the day horizon is configurable") {
  TlsCheckOptions options;
  options.warn_days = 60;
  // 60 days is the shorter horizon for 365 days (0.33 x 365 = 120).
  CHECK(HasCode(Check("leaf-365d.pem", "leaf.key", k2026Jan01 - 60 * kDay, options).warnings,
                "CERT_EXPIRING"));
  CHECK(Check("leaf-365d.pem", "leaf.key", k2026Jan01 - 61 * kDay, options).warnings.empty());
  options.warn_days = 0;
  CHECK(Check("leaf-365d.pem", "leaf.key", k2026Jan01 - kDay, options).warnings.empty());
}

TEST_CASE("the fraction horizon is configurable") {
  TlsCheckOptions options;
  options.warn_fraction = 0.5;
  // Half of 47 days is 23.5 days, shorter than 30 days.
  CHECK(HasCode(Check("leaf-47d.pem", "leaf.key", k2025Feb17 - 23 * kDay, options).warnings,
                "CERT_EXPIRING"));
  CHECK(Check("leaf-47d.pem", "leaf.key", k2025Feb17 - 24 * kDay, options).warnings.empty());
  // With the whole lifetime, the day horizon alone decides.
  options.warn_days = 100;
  options.warn_fraction = 1.0;
  CHECK(HasCode(Check("leaf-365d.pem", "leaf.key", k2026Jan01 - 90 * kDay, options).warnings,
                "CERT_EXPIRING"));
}

TEST_CASE("every certificate of the bundle is checked for its validity") {
  Concatenate("expired-chain.pem", {"expired.pem", "ca.pem"});
  const TlsCheckReport r = Check("expired-chain.pem", "leaf.key", k2025Jan01);
  const TlsFinding* f = Find(r.errors, "CERT_EXPIRED");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "certificate #1"));
}

TEST_CASE("invalid options are rejected") {
  TlsCheckOptions options;
  options.warn_days = -1;
  CHECK_FALSE(CheckTlsFiles(Cert("leaf.pem"), Cert("leaf.key"), options).ok());
  CHECK_FALSE(CheckTlsBytes("", "c", "", "k", options).ok());
  options = {};
  options.warn_fraction = 0;
  CHECK_FALSE(CheckTlsFiles(Cert("leaf.pem"), Cert("leaf.key"), options).ok());
  options.warn_fraction = 1.5;
  CHECK_FALSE(CheckTlsFiles(Cert("leaf.pem"), Cert("leaf.key"), options).ok());
}

// ---------------------------------------------------------------------------
// Weak keys and self-signed leaves.

TEST_CASE("an RSA key under 2048 bits is a warning") {
  const TlsCheckReport r = Check("rsa1024.pem", "rsa1024.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.key_bits == 1024);
  const TlsFinding* f = Find(r.warnings, "KEY_WEAK");
  REQUIRE(f != nullptr);
  CHECK(Contains(f->message, "1024-bit"));
  CHECK(r.warnings.size() == 1);
}

TEST_CASE("a self-signed leaf is a warning, not an error") {
  const TlsCheckReport r = Check("selfsigned.pem", "selfsigned.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(HasCode(r.warnings, "SELF_SIGNED"));
  CHECK(r.warnings.size() == 1);
  CHECK(r.sans == std::vector<std::string>{"self.xg2g.test"});
  CHECK(r.subject == "CN=self.xg2g.test,O=libxg2g tests");
}

// ---------------------------------------------------------------------------
// In memory, codes, threads.

TEST_CASE("checking bytes in memory gives the same report as the files, under the given names") {
  TlsCheckOptions options;
  options.now_unix = k2030Jan01;
  const absl::StatusOr<TlsCheckReport> clean =
      CheckTlsBytes(ReadGeneratedCert("chain.pem"), "c", ReadGeneratedCert("leaf.key"), "k",
                    options);
  REQUIRE(clean.ok());
  CHECK(TlsCheckReportToJson(*clean) == TlsCheckReportToJson(Check("chain.pem", "leaf.key")));

  options.passphrase = "wrong";
  const absl::StatusOr<TlsCheckReport> bad = CheckTlsBytes(
      ReadGeneratedCert("leaf.der"), "cert.der", ReadGeneratedCert("encrypted.key"), "k.pem",
      options);
  REQUIRE(bad.ok());
  REQUIRE(bad->errors.size() == 2);
  CHECK(bad->errors[0].code == "FILE_NOT_PEM");
  CHECK(bad->errors[0].file == "cert.der");
  CHECK(bad->errors[1].code == "KEY_PASSPHRASE_WRONG");
  CHECK(bad->errors[1].file == "k.pem");

  const std::string huge(5 * 1024 * 1024, 'A');
  const absl::StatusOr<TlsCheckReport> big = CheckTlsBytes(huge, "big", "", "k", options);
  REQUIRE(big.ok());
  CHECK(HasCode(big->errors, "FILE_UNREADABLE"));
}

TEST_CASE("every error and warning code is produced by some generated input") {
  std::set<std::string> seen;
  const auto add = [&](const TlsCheckReport& r) {
    for (const TlsFinding& f : r.errors) seen.insert("E:" + f.code);
    for (const TlsFinding& f : r.warnings) seen.insert("W:" + f.code);
  };
  add(Check("nope.pem", ".", k2030Jan01));
  add(Check("leaf.der", "leaf.pem"));
  add(Check("leaf.key", "notder.pem"));
  add(Check("garbage.pem", "other.key"));
  add(Check("leaf.pem", "other.key"));
  add(Check("leaf.pem", "encrypted.key"));
  add(CheckWithPassphrase("leaf.pem", "encrypted.key", "wrong"));
  add(CheckWithPassphrase("leaf.pem", "encrypted-scrypt.key", "secret"));
  add(Check("chain-reversed.pem", "leaf.key"));
  add(Check("chain3-gap.pem", "leaf.key"));
  add(Check("notyet.pem", "leaf.key"));
  add(Check("expired.pem", "leaf.key"));
  add(Check("rsa1024.pem", "rsa1024.key", k2049Dec31End - kDay));
  add(Check("selfsigned.pem", "selfsigned.key"));
  {
    TlsCheckOptions options;
    options.now_unix = k2030Jan01;
    std::string bad_key = ReadGeneratedCert("notder.pem");
    bad_key.replace(bad_key.find("BEGIN CERTIFICATE"), 17, "BEGIN PRIVATE KEY");
    bad_key.replace(bad_key.find("END CERTIFICATE"), 15, "END PRIVATE KEY");
    const absl::StatusOr<TlsCheckReport> r =
        CheckTlsBytes(ReadGeneratedCert("leaf.pem"), "c", bad_key, "k", options);
    REQUIRE(r.ok());
    add(*r);
  }

  std::set<std::string> expected;
  for (std::string_view code : tls_code::kAllErrors) expected.insert("E:" + std::string(code));
  for (std::string_view code : tls_code::kAllWarnings) expected.insert("W:" + std::string(code));
  CHECK(seen == expected);
  // And the codes are distinct.
  CHECK(expected.size() == std::size(tls_code::kAllErrors) + std::size(tls_code::kAllWarnings));
}

TEST_CASE("checks running on several threads at once all give the right answer") {
  const std::string weak_cert = Cert("rsa1024.pem");
  const std::string weak_key = Cert("rsa1024.key");
  const std::string chain = Cert("chain.pem");
  const std::string key = Cert("encrypted.key");
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      TlsCheckOptions options;
      options.now_unix = k2030Jan01;
      options.passphrase = "secret";
      for (int i = 0; i < 10; ++i) {
        const bool weak = (t + i) % 2 == 0;
        const absl::StatusOr<TlsCheckReport> r = weak ? CheckTlsFiles(weak_cert, weak_key, options)
                                                      : CheckTlsFiles(chain, key, options);
        if (!r.ok() || !r->valid() || r->key_bits != (weak ? 1024 : 2048)) ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("RFC 3339 formatting is UTC with a Z") {
  CHECK(FormatRfc3339Utc(0) == "1970-01-01T00:00:00Z");
  CHECK(FormatRfc3339Utc(k2025Jan01 + 3661) == "2025-01-01T01:01:01Z");
}

}  // namespace
}  // namespace xg2g

#include "lib/tls/cert_check.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace xg2g {
namespace {

// Fixtures come from tests/data/tls/make-fixtures.sh (fixed validity dates).
std::string Fixture(std::string_view name) {
  return std::string(XG2G_TEST_DATA_DIR) + "/tls/" + std::string(name);
}

constexpr int64_t kDay = 86400;
constexpr int64_t k2025Jan01 = 1735689600;  // 2025-01-01T00:00:00Z
constexpr int64_t k2026Jan01 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t k2025Feb17 = 1739750400;  // 2025-02-17T00:00:00Z
constexpr int64_t k2025Jan11 = 1736553600;  // 2025-01-11T00:00:00Z
constexpr int64_t k2030Jan01 = 1893456000;  // 2030-01-01T00:00:00Z

TlsCheckReport Check(std::string_view cert, std::string_view key, int64_t now = k2030Jan01,
                     TlsCheckOptions options = {}) {
  options.now_unix = now;
  absl::StatusOr<TlsCheckReport> report = CheckTlsFiles(Fixture(cert), Fixture(key), options);
  REQUIRE(report.ok());
  return *std::move(report);
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

TEST_CASE("a leaf then its issuer with the matching key is clean") {
  const TlsCheckReport r = Check("chain.pem", "leaf.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.errors.empty());
  CHECK(r.warnings.empty());
  CHECK(r.subject == "CN=localhost,O=libxg2g tests");
  CHECK(r.sans == std::vector<std::string>{"localhost", "xg2g.test", "127.0.0.1", "::1"});
  CHECK(r.key_type == "RSA");
  CHECK(r.key_bits == 2048);
  CHECK(r.not_before_unix == 1704067200);  // 2024-01-01T00:00:00Z
  CHECK(r.not_after_unix == 2524607999);   // 2049-12-31T23:59:59Z
  CHECK(r.days_left == (2524607999 - k2030Jan01) / kDay);
}

TEST_CASE("a single leaf certificate without its issuer is clean too") {
  const TlsCheckReport r = Check("leaf.pem", "leaf.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.warnings.empty());
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
  CHECK(json.find("\"subject\":null,\"sans\":[],\"not_before\":null,\"not_after\":null,"
                  "\"days_left\":null,\"key_type\":null,\"key_bits\":null}") != std::string::npos);
}

TEST_CASE("JSON strings are escaped and invalid UTF-8 is replaced") {
  TlsCheckReport r;
  r.errors.push_back({"X", "a\"b\\c\n\x01", "caf\xc3\xa9 \xff end"});
  const std::string json = TlsCheckReportToJson(r);
  CHECK(json.find(R"("file":"a\"b\\c\u000a\u0001")") != std::string::npos);
  CHECK(json.find("\"message\":\"caf\xc3\xa9 \xEF\xBF\xBD end\"") != std::string::npos);
}

TEST_CASE("missing files are errors that name each file") {
  const TlsCheckReport r = Check("nope.pem", "nope.key");
  CHECK_FALSE(r.valid());
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].code == "FILE_NOT_FOUND");
  CHECK(r.errors[0].file == Fixture("nope.pem"));
  CHECK(r.errors[0].message.find("certificate file") != std::string::npos);
  CHECK(r.errors[1].code == "FILE_NOT_FOUND");
  CHECK(r.errors[1].file == Fixture("nope.key"));
  CHECK(r.errors[1].message.find("key file") != std::string::npos);
}

TEST_CASE("a directory given as a file is reported as unreadable") {
  const TlsCheckReport r = Check(".", "leaf.key");
  const TlsFinding* f = Find(r.errors, "FILE_UNREADABLE");
  REQUIRE(f != nullptr);
  CHECK(f->message.find("directory") != std::string::npos);
}

TEST_CASE("a file without permission to read is reported as unreadable") {
  if (::geteuid() == 0) return;  // root reads everything: nothing to observe
  char path[] = "/tmp/xg2g-tls-noread-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  REQUIRE(::chmod(path, 0) == 0);
  TlsCheckOptions options;
  options.now_unix = k2030Jan01;
  const absl::StatusOr<TlsCheckReport> r = CheckTlsFiles(path, Fixture("leaf.key"), options);
  ::unlink(path);
  REQUIRE(r.ok());
  CHECK(HasCode(r->errors, "FILE_UNREADABLE"));
}

TEST_CASE("broken base64 inside a certificate block is a parse error") {
  const TlsCheckReport r = Check("garbage.pem", "leaf.key");
  const TlsFinding* f = Find(r.errors, "CERT_PARSE_FAILED");
  REQUIRE(f != nullptr);
  CHECK(f->file == Fixture("garbage.pem"));
  CHECK(f->message.find("malformed PEM") != std::string::npos);
  CHECK_FALSE(r.subject.has_value());
}

TEST_CASE("a certificate block that holds no DER certificate is a parse error") {
  const TlsCheckReport r = Check("notder.pem", "leaf.key");
  const TlsFinding* f = Find(r.errors, "CERT_PARSE_FAILED");
  REQUIRE(f != nullptr);
  CHECK(f->message.find("not a valid X.509 certificate") != std::string::npos);
}

TEST_CASE("a file without any certificate says what it found instead") {
  const TlsCheckReport r = Check("notpem.txt", "leaf.key");
  const TlsFinding* f = Find(r.errors, "CERT_MISSING");
  REQUIRE(f != nullptr);
  CHECK(f->message.find("no PEM block") != std::string::npos);

  const TlsCheckReport swapped = Check("leaf.key", "leaf.pem");
  const TlsFinding* cert = Find(swapped.errors, "CERT_MISSING");
  REQUIRE(cert != nullptr);
  CHECK(cert->message.find("PRIVATE KEY") != std::string::npos);
  const TlsFinding* key = Find(swapped.errors, "KEY_MISSING");
  REQUIRE(key != nullptr);
  CHECK(key->file == Fixture("leaf.pem"));
  CHECK(key->message.find("CERTIFICATE") != std::string::npos);
}

TEST_CASE("a key and certificate in one file are accepted") {
  char path[] = "/tmp/xg2g-tls-combined-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::FILE* out = std::fopen(path, "w");
    REQUIRE(out != nullptr);
    for (const char* part : {"leaf.pem", "leaf.key"}) {
      std::FILE* in = std::fopen(Fixture(part).c_str(), "r");
      REQUIRE(in != nullptr);
      char buf[4096];
      size_t n = 0;
      while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) std::fwrite(buf, 1, n, out);
      std::fclose(in);
    }
    std::fclose(out);
  }
  TlsCheckOptions options;
  options.now_unix = k2030Jan01;
  const absl::StatusOr<TlsCheckReport> r = CheckTlsFiles(path, path, options);
  ::unlink(path);
  REQUIRE(r.ok());
  INFO(Codes(*r));
  CHECK(r->valid());
}

TEST_CASE("a key that belongs to another certificate is a mismatch") {
  const TlsCheckReport r = Check("leaf.pem", "other.key");
  CHECK_FALSE(r.valid());
  const TlsFinding* f = Find(r.errors, "KEY_MISMATCH");
  REQUIRE(f != nullptr);
  CHECK(f->file == Fixture("other.key"));
  CHECK(f->message.find("does not belong") != std::string::npos);
}

TEST_CASE("an encrypted private key is an error naming the reason") {
  const TlsCheckReport r = Check("leaf.pem", "encrypted.key");
  const TlsFinding* f = Find(r.errors, "KEY_ENCRYPTED");
  REQUIRE(f != nullptr);
  CHECK(f->message.find("encrypted") != std::string::npos);
  CHECK_FALSE(HasCode(r.errors, "KEY_MISMATCH"));
}

TEST_CASE("issuers before the leaf are an error, with the leaf's facts reported") {
  const TlsCheckReport r = Check("chain-reversed.pem", "leaf.key");
  INFO(Codes(r));
  CHECK_FALSE(r.valid());
  const TlsFinding* f = Find(r.errors, "CHAIN_ORDER");
  REQUIRE(f != nullptr);
  CHECK(f->file == Fixture("chain-reversed.pem"));
  CHECK(f->message.find("leaf first") != std::string::npos);
  CHECK(r.errors.size() == 1);
  CHECK(r.subject == "CN=localhost,O=libxg2g tests");
}

TEST_CASE("an unrelated certificate after the leaf breaks the chain") {
  char path[] = "/tmp/xg2g-tls-broken-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::FILE* out = std::fopen(path, "w");
    REQUIRE(out != nullptr);
    for (const char* part : {"leaf.pem", "selfsigned.pem"}) {
      std::FILE* in = std::fopen(Fixture(part).c_str(), "r");
      REQUIRE(in != nullptr);
      char buf[4096];
      size_t n = 0;
      while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) std::fwrite(buf, 1, n, out);
      std::fclose(in);
    }
    std::fclose(out);
  }
  TlsCheckOptions options;
  options.now_unix = k2030Jan01;
  const absl::StatusOr<TlsCheckReport> r = CheckTlsFiles(path, Fixture("leaf.key"), options);
  ::unlink(path);
  REQUIRE(r.ok());
  CHECK(HasCode(r->errors, "CHAIN_BROKEN"));
  CHECK_FALSE(HasCode(r->errors, "CHAIN_ORDER"));
}

TEST_CASE("an expired certificate is an error with negative days left") {
  const TlsCheckReport r = Check("expired.pem", "leaf.key", k2025Jan01);
  CHECK_FALSE(r.valid());
  const TlsFinding* f = Find(r.errors, "CERT_EXPIRED");
  REQUIRE(f != nullptr);
  CHECK(f->message.find("2021-01-01T00:00:00Z") != std::string::npos);
  REQUIRE(r.days_left.has_value());
  CHECK(*r.days_left < 0);
}

TEST_CASE("a certificate before its validity period is an error") {
  const TlsCheckReport r = Check("leaf-365d.pem", "leaf.key", k2025Jan01 - 1);
  const TlsFinding* f = Find(r.errors, "CERT_NOT_YET_VALID");
  REQUIRE(f != nullptr);
  CHECK(f->message.find("2025-01-01T00:00:00Z") != std::string::npos);
}

TEST_CASE("the validity period includes its first and last second") {
  CHECK(Check("leaf-365d.pem", "leaf.key", k2025Jan01).valid());
  const TlsCheckReport last = Check("leaf-365d.pem", "leaf.key", k2026Jan01);
  CHECK(last.valid());
  CHECK(last.days_left == 0);
  CHECK(HasCode(Check("leaf-365d.pem", "leaf.key", k2026Jan01 + 1).errors, "CERT_EXPIRED"));
}

TEST_CASE("a 365-day certificate warns at 30 days left and not at 31") {
  const TlsCheckReport at30 = Check("leaf-365d.pem", "leaf.key", k2026Jan01 - 30 * kDay);
  CHECK(at30.valid());
  CHECK(at30.days_left == 30);
  const TlsFinding* f = Find(at30.warnings, "CERT_EXPIRING");
  REQUIRE(f != nullptr);
  CHECK(f->message.find("in 30 days") != std::string::npos);

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

TEST_CASE("the warning horizon follows the options") {
  TlsCheckOptions options;
  options.warn_days = 100;
  options.warn_fraction = 1.0;
  CHECK(HasCode(Check("leaf-365d.pem", "leaf.key", k2026Jan01 - 90 * kDay, options).warnings,
                "CERT_EXPIRING"));
  options.warn_days = 0;
  CHECK(Check("leaf-365d.pem", "leaf.key", k2026Jan01 - kDay, options).warnings.empty());
}

TEST_CASE("invalid options are rejected") {
  TlsCheckOptions options;
  options.warn_days = -1;
  CHECK_FALSE(CheckTlsFiles(Fixture("leaf.pem"), Fixture("leaf.key"), options).ok());
  options = {};
  options.warn_fraction = 0;
  CHECK_FALSE(CheckTlsFiles(Fixture("leaf.pem"), Fixture("leaf.key"), options).ok());
  options.warn_fraction = 1.5;
  CHECK_FALSE(CheckTlsFiles(Fixture("leaf.pem"), Fixture("leaf.key"), options).ok());
}

TEST_CASE("an RSA key under 2048 bits is a warning") {
  const TlsCheckReport r = Check("rsa1024.pem", "rsa1024.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.key_bits == 1024);
  const TlsFinding* f = Find(r.warnings, "KEY_WEAK");
  REQUIRE(f != nullptr);
  CHECK(f->message.find("1024-bit") != std::string::npos);
  CHECK(r.warnings.size() == 1);
}

TEST_CASE("an EC P-256 certificate is clean and reported as a 256-bit EC key") {
  const TlsCheckReport r = Check("ec.pem", "ec.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(r.warnings.empty());
  CHECK(r.key_type == "EC");
  CHECK(r.key_bits == 256);
  CHECK(r.subject == "CN=ec.xg2g.test,O=libxg2g tests");
}

TEST_CASE("a self-signed leaf is a warning, not an error") {
  const TlsCheckReport r = Check("selfsigned.pem", "selfsigned.key");
  INFO(Codes(r));
  CHECK(r.valid());
  CHECK(HasCode(r.warnings, "SELF_SIGNED"));
  CHECK(r.sans == std::vector<std::string>{"self.xg2g.test"});
}

TEST_CASE("checks running on several threads at once all give the right answer") {
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&wrong, t] {
      TlsCheckOptions options;
      options.now_unix = k2030Jan01;
      for (int i = 0; i < 10; ++i) {
        const bool weak = (t + i) % 2 == 0;
        const absl::StatusOr<TlsCheckReport> r =
            weak ? CheckTlsFiles(Fixture("rsa1024.pem"), Fixture("rsa1024.key"), options)
                 : CheckTlsFiles(Fixture("chain.pem"), Fixture("leaf.key"), options);
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

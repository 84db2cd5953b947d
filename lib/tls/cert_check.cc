#include "lib/tls/cert_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/cipher.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "lib/common/clock.h"
#include "lib/common/json_writer.h"
#include "lib/common/status.h"

namespace xg2g {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
// Certificate bundles are small; anything larger is not what the user meant.
constexpr off_t kMaxFileBytes = off_t{4} * 1024 * 1024;
constexpr int kMinRsaBits = 2048;

// Collects findings while the check runs.
class Findings {
 public:
  explicit Findings(TlsCheckReport* report) : report_(report) {}
  void Error(std::string_view code, std::string_view file, std::string message) {
    report_->errors.push_back({std::string(code), std::string(file), std::move(message)});
  }
  void Warning(std::string_view code, std::string_view file, std::string message) {
    report_->warnings.push_back({std::string(code), std::string(file), std::move(message)});
  }
  bool HasError(std::string_view code) const {
    for (const TlsFinding& f : report_->errors) {
      if (f.code == code) return true;
    }
    return false;
  }

 private:
  TlsCheckReport* report_;
};

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// Reads a whole file; on failure records FILE_NOT_FOUND / FILE_UNREADABLE
// naming `what` ("certificate file", "key file").
std::optional<std::string> ReadFile(std::string_view path, std::string_view what, Findings& findings) {
  const std::string p(path);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR || p.empty()) {
      findings.Error(tls_code::kFileNotFound, path, fmt::format("{} {} does not exist", what, p));
    } else {
      findings.Error(tls_code::kFileUnreadable, path,
                     fmt::format("cannot open {} {}: {}", what, p, ErrnoText(err)));
    }
    return std::nullopt;
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    findings.Error(tls_code::kFileUnreadable, path,
                   fmt::format("cannot stat {} {}: {}", what, p, ErrnoText(errno)));
    return std::nullopt;
  }
  if (S_ISDIR(st.st_mode)) {
    findings.Error(tls_code::kFileUnreadable, path, fmt::format("{} {} is a directory", what, p));
    return std::nullopt;
  }
  if (S_ISREG(st.st_mode) && st.st_size > kMaxFileBytes) {
    findings.Error(tls_code::kFileUnreadable, path,
                   fmt::format("{} {} is larger than {} bytes", what, p, kMaxFileBytes));
    return std::nullopt;
  }

  std::string content;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      findings.Error(tls_code::kFileUnreadable, path,
                     fmt::format("cannot read {} {}: {}", what, p, ErrnoText(errno)));
      return std::nullopt;
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
    if (static_cast<off_t>(content.size()) > kMaxFileBytes) {
      findings.Error(tls_code::kFileUnreadable, path,
                     fmt::format("{} {} is larger than {} bytes", what, p, kMaxFileBytes));
      return std::nullopt;
    }
  }
  return content;
}

// One PEM block: its label ("CERTIFICATE"), its headers and the DER inside.
struct PemBlock {
  std::string name;
  std::string header;
  std::vector<uint8_t> der;
};

struct PemFile {
  std::vector<PemBlock> blocks;
  // Set when a block could not be decoded (the blocks before it are kept).
  std::optional<std::string> error;
};

std::string LastBoringSslError() {
  const uint32_t err = ERR_peek_last_error();
  const char* reason = err != 0 ? ERR_reason_error_string(err) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? std::string(reason) : std::string("unknown error");
}

PemFile ParsePem(std::string_view content) {
  PemFile out;
  if (content.size() > static_cast<size_t>(kMaxFileBytes)) return out;
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
  if (!bio) throw std::bad_alloc();
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    uint8_t* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      const uint32_t err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // no further block: the normal end
      } else {
        out.error = fmt::format("malformed PEM block #{} ({})", out.blocks.size() + 1,
                                LastBoringSslError());
      }
      break;
    }
    PemBlock block;
    block.name = name;
    block.header = header != nullptr ? header : "";
    block.der.assign(data, data + len);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    out.blocks.push_back(std::move(block));
  }
  return out;
}

std::string BlockNames(const PemFile& pem) {
  if (pem.blocks.empty()) return "no PEM block at all";
  std::string names;
  for (const PemBlock& b : pem.blocks) {
    if (!names.empty()) names += ", ";
    names += b.name;
  }
  return "only " + names;
}

// Why `content`, which holds no PEM block, is not PEM: names DER when it is
// a DER certificate or private key, so the fix is obvious.
std::string NotPemReason(std::string_view content, std::string_view path) {
  if (content.empty()) return fmt::format("{} is empty", path);
  const auto* der = reinterpret_cast<const uint8_t*>(content.data());
  const long len = static_cast<long>(content.size());
  const uint8_t* p = der;
  bssl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, len));
  if (cert && p == der + len) {
    ERR_clear_error();
    return fmt::format("{} holds a DER (binary) certificate, not PEM text", path);
  }
  p = der;
  bssl::UniquePtr<EVP_PKEY> key(d2i_AutoPrivateKey(nullptr, &p, len));
  ERR_clear_error();
  if (key && p == der + len) {
    return fmt::format("{} holds a DER (binary) private key, not PEM text", path);
  }
  return fmt::format("{} is not PEM: it holds no \"-----BEGIN\" line", path);
}

bool IsCertificateLabel(std::string_view name) {
  return name == "CERTIFICATE" || name == "X509 CERTIFICATE" || name == "TRUSTED CERTIFICATE";
}

bool IsKeyLabel(std::string_view name) {
  return name == "PRIVATE KEY" || name == "RSA PRIVATE KEY" || name == "EC PRIVATE KEY" ||
         name == "DSA PRIVATE KEY" || name == "ENCRYPTED PRIVATE KEY";
}

std::string SubjectOf(const X509* cert) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio) throw std::bad_alloc();
  // RFC 2253 order and escaping, but UTF-8 kept as it is.
  const unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
  if (X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, flags) < 0) {
    ERR_clear_error();
    return "";
  }
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (BIO_mem_contents(bio.get(), &data, &len) != 1) return "";
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::vector<std::string> SansOf(const X509* cert) {
  std::vector<std::string> out;
  struct NamesFree {
    void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
  };
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  ERR_clear_error();
  if (!names) return out;
  for (size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names.get(), i);
    if (gen->type == GEN_DNS) {
      const ASN1_IA5STRING* dns = gen->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                       static_cast<size_t>(ASN1_STRING_length(dns)));
    } else if (gen->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = gen->d.iPAddress;
      const int len = ASN1_STRING_length(ip);
      char text[INET6_ADDRSTRLEN] = {};
      const int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (family != 0 && inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text) != nullptr) {
        out.emplace_back(text);
      }
    }
  }
  return out;
}

std::optional<int64_t> ToUnix(const ASN1_TIME* t) {
  if (t == nullptr) return std::nullopt;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  if (!epoch) throw std::bad_alloc();
  int days = 0;
  int seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, epoch.get(), t) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return static_cast<int64_t>(days) * kSecondsPerDay + seconds;
}

// floor(seconds / one day), also for negative values.
int64_t FloorDays(int64_t seconds) {
  int64_t d = seconds / kSecondsPerDay;
  if (seconds % kSecondsPerDay != 0 && seconds < 0) --d;
  return d;
}

std::string KeyTypeName(const EVP_PKEY* key) {
  switch (EVP_PKEY_id(key)) {
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_RSA_PSS:
      return "RSA-PSS";
    case EVP_PKEY_EC:
      return "EC";
    case EVP_PKEY_ED25519:
      return "Ed25519";
    case EVP_PKEY_DSA:
      return "DSA";
    default:
      return "unknown";
  }
}

bssl::UniquePtr<EVP_PKEY> PublicKeyOf(X509* cert) {
  bssl::UniquePtr<EVP_PKEY> key(X509_get_pubkey(cert));
  ERR_clear_error();
  return key;
}

// True when `issuer` issued `subject`: the names chain and the signature of
// `subject` verifies with the key of `issuer`.
bool Issued(X509* issuer, X509* subject) {
  if (X509_NAME_cmp(X509_get_issuer_name(subject), X509_get_subject_name(issuer)) != 0) return false;
  bssl::UniquePtr<EVP_PKEY> key = PublicKeyOf(issuer);
  if (!key) return false;
  const bool ok = X509_verify(subject, key.get()) == 1;
  ERR_clear_error();
  return ok;
}

bool KeyMatches(X509* cert, const EVP_PKEY* key) {
  bssl::UniquePtr<EVP_PKEY> pub = PublicKeyOf(cert);
  const bool ok = pub && EVP_PKEY_cmp(pub.get(), key) == 1;
  ERR_clear_error();
  return ok;
}

struct Cert {
  bssl::UniquePtr<X509> x509;
  std::string subject;
};

// "the certificate (CN=a)" for a single certificate, "certificate #2 (CN=a)"
// in a bundle.
std::string Describe(const std::vector<Cert>& certs, size_t i) {
  if (certs.size() == 1) return fmt::format("the certificate ({})", certs[i].subject);
  return fmt::format("certificate #{} ({})", i + 1, certs[i].subject);
}

std::vector<Cert> LoadCertificates(std::string_view content, std::string_view path,
                                   Findings& findings) {
  std::vector<Cert> certs;
  const PemFile pem = ParsePem(content);
  if (pem.blocks.empty() && !pem.error) {
    findings.Error(tls_code::kFileNotPem, path, NotPemReason(content, path));
    return certs;
  }
  size_t index = 0;
  for (const PemBlock& block : pem.blocks) {
    if (!IsCertificateLabel(block.name)) continue;
    ++index;
    const uint8_t* p = block.der.data();
    bssl::UniquePtr<X509> x509(
        block.name == "TRUSTED CERTIFICATE"
            ? d2i_X509_AUX(nullptr, &p, static_cast<long>(block.der.size()))
            : d2i_X509(nullptr, &p, static_cast<long>(block.der.size())));
    if (!x509) {
      findings.Error(tls_code::kCertParse, path,
                     fmt::format("certificate #{} in {} is not a valid X.509 certificate ({})", index,
                                 path, LastBoringSslError()));
      continue;
    }
    Cert cert;
    cert.subject = SubjectOf(x509.get());
    cert.x509 = std::move(x509);
    certs.push_back(std::move(cert));
  }
  if (pem.error) {
    findings.Error(tls_code::kCertParse, path, fmt::format("{}: {}", path, *pem.error));
  }
  if (index == 0 && !pem.error) {
    findings.Error(tls_code::kCertMissing, path,
                   fmt::format("no PEM certificate in {} (found {})", path, BlockNames(pem)));
  }
  return certs;
}

// Copies the passphrase for PEM_do_header().
int PassphraseCallback(char* buf, int size, int /*rwflag*/, void* user) {
  const auto* pass = static_cast<const std::string*>(user);
  if (pass->size() > static_cast<size_t>(size)) return -1;
  // The callback returns the length; no terminator is expected.
  pass->copy(buf, pass->size());
  return static_cast<int>(pass->size());
}

// When the error queue says the encryption scheme itself is one that
// BoringSSL does not implement (as opposed to a wrong passphrase): its reason
// ("UNSUPPORTED_KEY_DERIVATION_FUNCTION"). Empties the queue.
std::optional<std::string> UnsupportedReason() {
  std::optional<std::string> found;
  for (uint32_t err = ERR_get_error(); err != 0; err = ERR_get_error()) {
    const int lib = ERR_GET_LIB(err);
    const int reason = ERR_GET_REASON(err);
    const bool unsupported =
        (lib == ERR_LIB_PKCS8 &&
         (reason == PKCS8_R_UNKNOWN_ALGORITHM || reason == PKCS8_R_UNSUPPORTED_CIPHER ||
          reason == PKCS8_R_UNSUPPORTED_PRF || reason == PKCS8_R_UNSUPPORTED_KEYLENGTH ||
          reason == PKCS8_R_UNSUPPORTED_KEY_DERIVATION_FUNCTION ||
          reason == PKCS8_R_BAD_ITERATION_COUNT)) ||
        (lib == ERR_LIB_PEM && reason == PEM_R_UNSUPPORTED_ENCRYPTION);
    if (unsupported && !found) {
      const char* text = ERR_reason_error_string(err);
      found = text != nullptr ? text : "unsupported";
    }
  }
  return found;
}

// Decrypts an encrypted key block with `passphrase`; records the finding and
// returns null when that fails.
bssl::UniquePtr<EVP_PKEY> DecryptKey(const PemBlock& block, std::string_view path,
                                     const std::string& passphrase, Findings& findings) {
  const auto wrong = [&] {
    findings.Error(tls_code::kKeyPassphraseWrong, path,
                   fmt::format("the private key in {} cannot be decrypted with the given "
                               "passphrase",
                               path));
  };
  const auto unsupported = [&](std::string_view scheme, std::string_view reason) {
    findings.Error(tls_code::kKeyEncryptionUnsupported, path,
                   fmt::format("the private key in {} is encrypted with {} that this check does "
                               "not support ({}); re-encrypt it with PBES2 and AES-256-CBC",
                               path, scheme, reason));
  };
  ERR_clear_error();
  if (block.name == "ENCRYPTED PRIVATE KEY") {
    // PKCS#8 EncryptedPrivateKeyInfo (PBES1 or PBES2).
    CBS cbs;
    CBS_init(&cbs, block.der.data(), block.der.size());
    bssl::UniquePtr<EVP_PKEY> key(
        PKCS8_parse_encrypted_private_key(&cbs, passphrase.data(), passphrase.size()));
    if (key && CBS_len(&cbs) == 0) {
      ERR_clear_error();
      return key;
    }
    const uint32_t first = ERR_peek_error();
    if (const std::optional<std::string> reason = UnsupportedReason()) {
      unsupported("a PKCS#8 scheme (key derivation or cipher)", *reason);
    } else if (!key && ERR_GET_LIB(first) == ERR_LIB_PKCS8 &&
               ERR_GET_REASON(first) == PKCS8_R_DECODE_ERROR) {
      findings.Error(tls_code::kKeyParse, path,
                     fmt::format("the ENCRYPTED PRIVATE KEY block in {} is not a valid encrypted "
                                 "PKCS#8 key",
                                 path));
    } else if (!key) {
      wrong();
    } else {
      findings.Error(tls_code::kKeyParse, path,
                     fmt::format("the ENCRYPTED PRIVATE KEY block in {} has trailing data", path));
    }
    ERR_clear_error();
    return nullptr;
  }

  // PEM encryption: "Proc-Type: 4,ENCRYPTED" and "DEK-Info: CIPHER,IV".
  std::vector<char> header(block.header.begin(), block.header.end());
  header.push_back('\0');
  EVP_CIPHER_INFO cipher;
  if (PEM_get_EVP_CIPHER_INFO(header.data(), &cipher) != 1) {
    if (const std::optional<std::string> reason = UnsupportedReason()) {
      unsupported("a PEM cipher (DEK-Info)", *reason);
    } else {
      findings.Error(tls_code::kKeyParse, path,
                     fmt::format("the {} block in {} has a malformed encryption header", block.name,
                                 path));
    }
    ERR_clear_error();
    return nullptr;
  }
  // Decrypted in place, in a copy that is wiped afterwards.
  std::vector<uint8_t> der = block.der;
  struct Wipe {
    std::vector<uint8_t>& bytes;
    ~Wipe() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
  } wipe{der};
  long len = static_cast<long>(der.size());
  void* user = const_cast<void*>(static_cast<const void*>(&passphrase));
  if (PEM_do_header(&cipher, der.data(), &len, PassphraseCallback, user) != 1) {
    ERR_clear_error();
    wrong();
    return nullptr;
  }
  const uint8_t* p = der.data();
  bssl::UniquePtr<EVP_PKEY> key(d2i_AutoPrivateKey(nullptr, &p, len));
  ERR_clear_error();
  // A wrong passphrase almost always fails the padding check above; when
  // the padding happens to fit, what comes out is no key.
  if (!key) wrong();
  return key;
}

bssl::UniquePtr<EVP_PKEY> LoadPrivateKey(std::string_view content, std::string_view path,
                                         const std::optional<std::string>& passphrase,
                                         Findings& findings) {
  const PemFile pem = ParsePem(content);
  if (pem.blocks.empty() && !pem.error) {
    findings.Error(tls_code::kFileNotPem, path, NotPemReason(content, path));
    return nullptr;
  }
  for (const PemBlock& block : pem.blocks) {
    if (!IsKeyLabel(block.name)) continue;
    // The first key is the one a server would use.
    if (block.name == "ENCRYPTED PRIVATE KEY" || block.header.find("ENCRYPTED") != std::string::npos) {
      if (!passphrase) {
        findings.Error(tls_code::kKeyEncrypted, path,
                       fmt::format("the private key in {} is encrypted and no passphrase was given",
                                   path));
        return nullptr;
      }
      return DecryptKey(block, path, *passphrase, findings);
    }
    const uint8_t* p = block.der.data();
    bssl::UniquePtr<EVP_PKEY> key(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(block.der.size())));
    if (!key) {
      findings.Error(tls_code::kKeyParse, path,
                     fmt::format("the {} block in {} is not a valid private key ({})", block.name,
                                 path, LastBoringSslError()));
      return nullptr;
    }
    return key;
  }
  if (pem.error) {
    findings.Error(tls_code::kKeyParse, path, fmt::format("{}: {}", path, *pem.error));
  } else {
    findings.Error(tls_code::kKeyMissing, path,
                   fmt::format("no PEM private key in {} (found {})", path, BlockNames(pem)));
  }
  return nullptr;
}

void CheckChain(const std::vector<Cert>& certs, std::string_view path, Findings& findings) {
  for (size_t i = 0; i + 1 < certs.size(); ++i) {
    X509* current = certs[i].x509.get();
    X509* next = certs[i + 1].x509.get();
    if (Issued(next, current)) continue;
    if (Issued(current, next)) {
      findings.Error(tls_code::kChainOrder, path,
                     fmt::format("{} issued {}, so it must come after it: list the leaf first, then "
                                 "each issuer",
                                 Describe(certs, i), Describe(certs, i + 1)));
    } else {
      findings.Error(tls_code::kChainBroken, path,
                     fmt::format("{} did not issue {}: each certificate must be followed by its "
                                 "issuer",
                                 Describe(certs, i + 1), Describe(certs, i)));
    }
  }
}

void CheckValidity(const std::vector<Cert>& certs, std::string_view path, int64_t now,
                   const TlsCheckOptions& options, Findings& findings) {
  for (size_t i = 0; i < certs.size(); ++i) {
    X509* x = certs[i].x509.get();
    const std::optional<int64_t> not_before = ToUnix(X509_get0_notBefore(x));
    const std::optional<int64_t> not_after = ToUnix(X509_get0_notAfter(x));
    if (!not_before || !not_after) {
      findings.Error(tls_code::kCertParse, path,
                     fmt::format("{} has an unreadable validity period", Describe(certs, i)));
      continue;
    }
    if (now < *not_before) {
      findings.Error(tls_code::kNotYetValid, path,
                     fmt::format("{} is not valid before {}", Describe(certs, i),
                                 FormatRfc3339Utc(*not_before)));
      continue;
    }
    const int64_t left = *not_after - now;
    if (left < 0) {
      findings.Error(tls_code::kExpired, path,
                     fmt::format("{} expired on {} ({} days ago)", Describe(certs, i),
                                 FormatRfc3339Utc(*not_after), -FloorDays(left)));
      continue;
    }
    // Warn within min(warn_days, warn_fraction x lifetime) of the end.
    const auto lifetime = static_cast<double>(*not_after - *not_before);
    const double horizon = std::min(static_cast<double>(options.warn_days) * kSecondsPerDay,
                                    options.warn_fraction * lifetime);
    if (horizon > 0 && static_cast<double>(left) <= horizon) {
      findings.Warning(tls_code::kExpiring, path,
                       fmt::format("{} expires on {}, in {} days", Describe(certs, i),
                                   FormatRfc3339Utc(*not_after), FloorDays(left)));
    }
  }
}

void CheckKeyStrength(const std::vector<Cert>& certs, std::string_view path, Findings& findings) {
  for (size_t i = 0; i < certs.size(); ++i) {
    bssl::UniquePtr<EVP_PKEY> key = PublicKeyOf(certs[i].x509.get());
    if (!key) continue;
    const int id = EVP_PKEY_id(key.get());
    const int bits = EVP_PKEY_bits(key.get());
    if ((id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS) && bits < kMinRsaBits) {
      findings.Warning(tls_code::kWeakKey, path,
                       fmt::format("{} has a weak {}-bit RSA key; use at least {} bits",
                                   Describe(certs, i), bits, kMinRsaBits));
    }
  }
}

void AppendFindings(std::string& out, const std::vector<TlsFinding>& findings) {
  out += '[';
  for (size_t i = 0; i < findings.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"code\":";
    AppendJsonString(out, findings[i].code);
    out += ",\"file\":";
    AppendJsonString(out, findings[i].file);
    out += ",\"message\":";
    AppendJsonString(out, findings[i].message);
    out += '}';
  }
  out += ']';
}

void AppendOptionalString(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    AppendJsonString(out, *s);
  } else {
    out += "null";
  }
}

template <typename Int>
void AppendOptionalInt(std::string& out, const std::optional<Int>& v) {
  out += v ? fmt::format("{}", *v) : std::string("null");
}

}  // namespace

std::string FormatRfc3339Utc(int64_t unix_seconds) {
  const auto t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  if (gmtime_r(&t, &tm) == nullptr) return "";
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

namespace {

absl::Status ValidateOptions(const TlsCheckOptions& options) {
  if (options.warn_days < 0) {
    return InvalidError(fmt::format("warn_days must be >= 0, got {}", options.warn_days));
  }
  if (!(options.warn_fraction > 0.0 && options.warn_fraction <= 1.0)) {
    return InvalidError(
        fmt::format("warn_fraction must be in (0, 1], got {}", options.warn_fraction));
  }
  return absl::OkStatus();
}

// The check proper. A content is unset when its file could not be read (the
// finding is already recorded).
TlsCheckReport Check(std::optional<std::string_view> cert_content, std::string_view cert_path,
                     std::optional<std::string_view> key_content, std::string_view key_path,
                     const TlsCheckOptions& options, TlsCheckReport report) {
  const int64_t now = options.now_unix ? *options.now_unix : Clock::Real()->NowUnixMs() / 1000;
  Findings findings(&report);

  std::vector<Cert> certs;
  if (cert_content) certs = LoadCertificates(*cert_content, cert_path, findings);
  bssl::UniquePtr<EVP_PKEY> key;
  if (key_content) key = LoadPrivateKey(*key_content, key_path, options.passphrase, findings);

  CheckChain(certs, cert_path, findings);

  // The leaf is the certificate the key belongs to; normally the first.
  size_t leaf = 0;
  if (key && !certs.empty()) {
    std::optional<size_t> match;
    for (size_t i = 0; i < certs.size() && !match; ++i) {
      if (KeyMatches(certs[i].x509.get(), key.get())) match = i;
    }
    if (!match) {
      findings.Error(tls_code::kKeyMismatch, key_path,
                     fmt::format("the private key in {} does not belong to {}{}", key_path,
                                 Describe(certs, 0),
                                 certs.size() > 1 ? " nor to any other certificate in the bundle"
                                                  : ""));
    } else if (*match > 0) {
      leaf = *match;
      if (!findings.HasError(tls_code::kChainOrder)) {
        findings.Error(tls_code::kChainOrder, cert_path,
                       fmt::format("the private key belongs to {}, which must come first: list "
                                   "the leaf first, then each issuer",
                                   Describe(certs, *match)));
      }
    }
  }

  CheckValidity(certs, cert_path, now, options, findings);
  CheckKeyStrength(certs, cert_path, findings);

  if (!certs.empty()) {
    X509* x = certs[leaf].x509.get();
    report.subject = certs[leaf].subject;
    report.sans = SansOf(x);
    report.not_before_unix = ToUnix(X509_get0_notBefore(x));
    report.not_after_unix = ToUnix(X509_get0_notAfter(x));
    if (report.not_after_unix) report.days_left = FloorDays(*report.not_after_unix - now);
    if (Issued(x, x)) {
      findings.Warning(tls_code::kSelfSigned, cert_path,
                       fmt::format("{} is self-signed: clients will not trust it unless told to",
                                   Describe(certs, leaf)));
    }
    if (bssl::UniquePtr<EVP_PKEY> pub = PublicKeyOf(x)) {
      report.key_type = KeyTypeName(pub.get());
      report.key_bits = EVP_PKEY_bits(pub.get());
    }
  } else if (key) {
    report.key_type = KeyTypeName(key.get());
    report.key_bits = EVP_PKEY_bits(key.get());
  }
  ERR_clear_error();
  return report;
}

// Records FILE_UNREADABLE when `content` is over the size limit of a file.
std::optional<std::string_view> WithinLimit(std::string_view content, std::string_view name,
                                            std::string_view what, Findings& findings) {
  if (content.size() > static_cast<size_t>(kMaxFileBytes)) {
    findings.Error(tls_code::kFileUnreadable, name,
                   fmt::format("{} {} is larger than {} bytes", what, name, kMaxFileBytes));
    return std::nullopt;
  }
  return content;
}

}  // namespace

absl::StatusOr<TlsCheckReport> CheckTlsFiles(std::string_view cert_path, std::string_view key_path,
                                             const TlsCheckOptions& options) {
  XG2G_RETURN_IF_ERROR(ValidateOptions(options));
  TlsCheckReport report;
  Findings findings(&report);
  const std::optional<std::string> cert = ReadFile(cert_path, "certificate file", findings);
  const std::optional<std::string> key = ReadFile(key_path, "key file", findings);
  return Check(cert ? std::optional<std::string_view>(*cert) : std::nullopt, cert_path,
               key ? std::optional<std::string_view>(*key) : std::nullopt, key_path, options,
               std::move(report));
}

absl::StatusOr<TlsCheckReport> CheckTlsBytes(std::string_view cert_bytes,
                                             std::string_view cert_name,
                                             std::string_view key_bytes,
                                             std::string_view key_name,
                                             const TlsCheckOptions& options) {
  XG2G_RETURN_IF_ERROR(ValidateOptions(options));
  TlsCheckReport report;
  Findings findings(&report);
  const std::optional<std::string_view> cert =
      WithinLimit(cert_bytes, cert_name, "certificate file", findings);
  const std::optional<std::string_view> key =
      WithinLimit(key_bytes, key_name, "key file", findings);
  return Check(cert, cert_name, key, key_name, options, std::move(report));
}

std::string TlsCheckReportToJson(const TlsCheckReport& report) {
  std::string out;
  out.reserve(512);
  out += report.valid() ? "{\"valid\":true" : "{\"valid\":false";
  out += ",\"errors\":";
  AppendFindings(out, report.errors);
  out += ",\"warnings\":";
  AppendFindings(out, report.warnings);
  out += ",\"subject\":";
  AppendOptionalString(out, report.subject);
  out += ",\"sans\":[";
  for (size_t i = 0; i < report.sans.size(); ++i) {
    if (i > 0) out += ',';
    AppendJsonString(out, report.sans[i]);
  }
  out += "],\"not_before\":";
  AppendOptionalString(out, report.not_before_unix
                                ? std::optional<std::string>(FormatRfc3339Utc(*report.not_before_unix))
                                : std::nullopt);
  out += ",\"not_after\":";
  AppendOptionalString(out, report.not_after_unix
                                ? std::optional<std::string>(FormatRfc3339Utc(*report.not_after_unix))
                                : std::nullopt);
  out += ",\"days_left\":";
  AppendOptionalInt(out, report.days_left);
  out += ",\"key_type\":";
  AppendOptionalString(out, report.key_type);
  out += ",\"key_bits\":";
  AppendOptionalInt(out, report.key_bits);
  out += '}';
  return out;
}

}  // namespace xg2g

#include "lib/crypto/crypto.h"

#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xg2g {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

std::string ToHex(const uint8_t* data, size_t n) {
  std::string out;
  out.resize(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHexDigits[data[i] >> 4];
    out[2 * i + 1] = kHexDigits[data[i] & 0x0f];
  }
  return out;
}

}  // namespace

std::string RandomHex(size_t n) {
  std::vector<uint8_t> bytes(n);
  // BoringSSL's RAND_bytes always succeeds (it aborts rather than return
  // weak randomness), so there is no error to report.
  if (n > 0) RAND_bytes(bytes.data(), n);
  std::string hex = ToHex(bytes.data(), n);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return hex;
}

std::string NewSessionId() { return RandomHex(16); }

std::string Sha256Hex(std::string_view data) {
  std::array<uint8_t, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), digest.data());
  return ToHex(digest.data(), digest.size());
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Only the lengths may leak; callers compare fixed-size digests.
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace xg2g

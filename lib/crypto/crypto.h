// Cryptographic helpers on the library's private BoringSSL.
//
// Thread-safe. Nothing here exposes a BoringSSL type, so callers never depend
// on the private copy's headers.
#ifndef XG2G_LIB_CRYPTO_CRYPTO_H_
#define XG2G_LIB_CRYPTO_CRYPTO_H_

#include <string>
#include <string_view>

namespace xg2g {

// `n` bytes from the CSPRNG as lowercase hex (2n characters).
std::string RandomHex(size_t n);

// A new session id: 128 random bits as 32 lowercase hex characters.
std::string NewSessionId();

// SHA-256 of `data` as 64 lowercase hex characters.
std::string Sha256Hex(std::string_view data);

// Compares two byte strings in time that depends only on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace xg2g

#endif  // XG2G_LIB_CRYPTO_CRYPTO_H_

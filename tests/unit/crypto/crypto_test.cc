#include "lib/crypto/crypto.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace xg2g {
namespace {

bool IsLowerHex(const std::string& s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

TEST_CASE("Sha256Hex matches the published test vectors") {
  CHECK(Sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("Sha256Hex hashes a million a's correctly") {
  CHECK(Sha256Hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("Sha256Hex hashes embedded NUL bytes instead of stopping at them") {
  const std::string with_nul("a\0b", 3);
  CHECK(Sha256Hex(with_nul) != Sha256Hex("a"));
  CHECK(Sha256Hex(with_nul).size() == 64);
}

TEST_CASE("a new session id is 32 lowercase hex characters") {
  const std::string id = NewSessionId();
  CHECK(id.size() == 32);
  CHECK(IsLowerHex(id));
}

TEST_CASE("a thousand session ids are all distinct") {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(NewSessionId());
  CHECK(ids.size() == 1000);
}

TEST_CASE("RandomHex returns two hex characters per byte") {
  CHECK(RandomHex(0).empty());
  CHECK(RandomHex(1).size() == 2);
  const std::string big = RandomHex(4096);
  CHECK(big.size() == 8192);
  CHECK(IsLowerHex(big));
  // 4096 random bytes use every hex digit: a stuck or zero generator does not.
  CHECK(std::set<char>(big.begin(), big.end()).size() == 16);
}

TEST_CASE("ConstantTimeEquals tells equal strings from different ones") {
  CHECK(ConstantTimeEquals("", ""));
  CHECK(ConstantTimeEquals("secret", "secret"));
  CHECK_FALSE(ConstantTimeEquals("secret", "secreT"));
  CHECK_FALSE(ConstantTimeEquals("secret", "secret!"));
  CHECK_FALSE(ConstantTimeEquals("", "x"));
  CHECK_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

}  // namespace
}  // namespace xg2g

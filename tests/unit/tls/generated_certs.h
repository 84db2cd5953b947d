// Certificates and keys for the TLS tests, generated at test time with the
// openssl program by tests/data/tls/make-fixtures.sh into a temporary
// directory (once per process, on first use; removed at exit). The script's
// header lists every file and its validity dates.
//
// Thread-safe: the first call generates, later calls only read.
#ifndef XG2G_TESTS_UNIT_TLS_GENERATED_CERTS_H_
#define XG2G_TESTS_UNIT_TLS_GENERATED_CERTS_H_

#include <string>
#include <string_view>

namespace xg2g::testing {

// The directory holding the generated files. Fails the running test (and
// every later one that needs it) when generation failed, with the script's
// output in the message.
const std::string& GeneratedCertDir();

// GeneratedCertDir() + "/" + name.
std::string GeneratedCert(std::string_view name);

// The whole content of a generated file.
std::string ReadGeneratedCert(std::string_view name);

}  // namespace xg2g::testing

#endif  // XG2G_TESTS_UNIT_TLS_GENERATED_CERTS_H_

// Status assertions shared by the store test binaries (the contract suite
// and each backend's own cases).
#ifndef XG2G_TESTS_STORE_STATUS_CHECKS_H_
#define XG2G_TESTS_STORE_STATUS_CHECKS_H_

#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/status.h"

namespace xg2g::store_test {

inline absl::Status StatusOf(const absl::Status& status) { return status; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

inline std::string CodeName(const absl::Status& status) {
  return std::string(ErrorCodeName(CodeOf(status)));
}

inline bool MessageHas(const absl::Status& status, std::string_view needle) {
  return FromAbsl(status.message()).find(needle) != std::string_view::npos;
}

}  // namespace xg2g::store_test

// Checks that `expr` (a Status or StatusOr) failed with `code` and a message
// that contains `needle`.
#define CHECK_ERROR(expr, code, needle)                                                       \
  do {                                                                                        \
    const absl::Status check_status_ = ::xg2g::store_test::StatusOf(expr);                    \
    INFO("status: ", check_status_.ToString());                                               \
    CHECK(::xg2g::store_test::CodeName(check_status_) ==                                      \
          std::string(::xg2g::ErrorCodeName(code)));                                          \
    CHECK_MESSAGE(::xg2g::store_test::MessageHas(check_status_, needle),                      \
                  "message should name '", std::string(needle), "'");                         \
  } while (0)

// Stops the case unless `expr` (a Status or StatusOr) is OK.
#define REQUIRE_OK(expr)                                                                      \
  do {                                                                                        \
    const absl::Status require_status_ = ::xg2g::store_test::StatusOf(expr);                  \
    REQUIRE_MESSAGE(require_status_.ok(), require_status_.ToString());                        \
  } while (0)

#endif  // XG2G_TESTS_STORE_STATUS_CHECKS_H_

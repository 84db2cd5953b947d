// The exception barrier and status conversion at the C ABI boundary.
//
// Every exported function body runs inside Guard(): a C++ exception never
// crosses into C (std::bad_alloc -> XG2G_ENOMEM, anything else ->
// XG2G_EINTERNAL naming the function), and the thread's last error is reset
// on entry and set from the returned status on failure.
#ifndef XG2G_CAPI_BARRIER_H_
#define XG2G_CAPI_BARRIER_H_

#include <cstring>
#include <new>
#include <type_traits>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "include/xg2g/xg2g_common.h"
#include "lib/common/status.h"

namespace xg2g::capi {

// Sets the calling thread's last error message.
void SetLastError(std::string_view message);
void ClearLastError();
const char* LastError();

// Converts a core Status into a C status, recording its message.
xg2g_status FromStatus(const absl::Status& status);

// Records `message` and returns `status` (for argument checks).
xg2g_status Fail(xg2g_status status, std::string_view message);

// Fails with XG2G_EINVAL naming the argument when `ptr` is null.
#define XG2G_CAPI_REQUIRE(ptr, fn)                                                \
  do {                                                                            \
    if ((ptr) == nullptr)                                                         \
      return ::xg2g::capi::Fail(XG2G_EINVAL, std::string(fn) + ": " #ptr " is NULL"); \
  } while (0)

// Keeps the calling thread's last error across a call into host code, so a
// callback that makes failing libxg2g calls of its own does not leave its
// message behind in the middle of one of ours.
class SavedLastError {
 public:
  SavedLastError() : saved_(LastError()) {}
  ~SavedLastError() { SetLastError(saved_); }
  SavedLastError(const SavedLastError&) = delete;
  SavedLastError& operator=(const SavedLastError&) = delete;

 private:
  std::string saved_;
};

// Runs `body` (returning xg2g_status or absl::Status) behind the barrier.
template <typename Body>
xg2g_status Guard(const char* function, Body&& body) noexcept {
  ClearLastError();
  try {
    if constexpr (std::is_same_v<decltype(body()), absl::Status>) {
      return FromStatus(std::forward<Body>(body)());
    } else {
      return std::forward<Body>(body)();
    }
  } catch (const std::bad_alloc&) {
    return Fail(XG2G_ENOMEM, std::string(function) + ": out of memory");
  } catch (const std::exception& e) {
    return Fail(XG2G_EINTERNAL, std::string(function) + ": internal error: " + e.what());
  } catch (...) {
    return Fail(XG2G_EINTERNAL, std::string(function) + ": internal error");
  }
}

// The integer a caller passed for a C enum parameter. A C caller may pass any
// int; in C++ a value outside the enumerators is not a valid enum value, so
// it is read as raw bits instead of converted.
template <typename Enum>
int EnumBits(Enum value) {
  static_assert(std::is_enum_v<Enum> && sizeof(Enum) == sizeof(int));
  int bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// Copies `s` into memory the caller frees with xg2g_free(); throws
// std::bad_alloc (turned into XG2G_ENOMEM by Guard) when out of memory.
char* DupString(std::string_view s);

}  // namespace xg2g::capi

#endif  // XG2G_CAPI_BARRIER_H_

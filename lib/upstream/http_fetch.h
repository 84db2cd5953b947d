// HTTP GET over libcurl for the upstream clients: the receiver client and the
// readiness waits. One CurlSession is one easy handle inside its own multi
// handle, so that its connections survive between calls (keep-alive reuse)
// and a CancelToken can wake a transfer that is in flight.
//
// Thread-compatible: a CurlSession is used by one thread at a time (the
// receiver client keeps a pool of them). libcurl's global initialisation runs
// once, on first use.
#ifndef XG2G_LIB_UPSTREAM_HTTP_FETCH_H_
#define XG2G_LIB_UPSTREAM_HTTP_FETCH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/upstream/cancel.h"

namespace xg2g {

struct HttpFetchOptions {
  int64_t connect_timeout_ms = 2'000;  // >= 1
  int64_t timeout_ms = 5'000;          // whole transfer, >= 1
  std::string username;                // basic auth when not empty
  std::string password;
  size_t max_body_bytes = 1 << 20;     // a longer answer is ECORRUPT
  bool verify_tls = true;              // false: accept any certificate (https only)
  const CancelToken* cancel = nullptr;
};

struct HttpResponse {
  long status = 0;  // NOLINT(runtime/int): libcurl's type
  std::string body;
  bool new_connection = false;  // false: an existing connection was reused
};

class CurlSession {
 public:
  CurlSession();
  ~CurlSession();
  CurlSession(const CurlSession&) = delete;
  CurlSession& operator=(const CurlSession&) = delete;

  // GET `url`. Any HTTP status comes back as a response; errors are the
  // transport's: ETIMEOUT (the timeout passed), EUNAVAILABLE (could not
  // connect, connection lost, nothing answered), ECANCELLED (the token was
  // tripped), ECORRUPT (the answer is longer than max_body_bytes), EINVAL (a
  // malformed URL or a scheme other than http/https). Messages name the URL
  // without any credentials in it.
  [[nodiscard]] absl::StatusOr<HttpResponse> Get(const std::string& url,
                                                 const HttpFetchOptions& options);

  // Connections this session opened so far (each reuse does not count).
  [[nodiscard]] uint64_t connections_opened() const { return connections_opened_; }

 private:
  void* easy_ = nullptr;   // CURL*
  void* multi_ = nullptr;  // CURLM*
  uint64_t connections_opened_ = 0;
};

// `url` with any user name and password removed, for messages.
[[nodiscard]] std::string RedactUrl(std::string_view url);

// base_url + path + "?" + the query parameters, percent-encoded. InvalidError
// when base_url is not an absolute http:// or https:// URL. A path prefix in
// base_url is kept ("http://h/prefix" + "/api/zap" -> "http://h/prefix/api/zap").
[[nodiscard]] absl::StatusOr<std::string> BuildUrl(
    std::string_view base_url, std::string_view path,
    const std::vector<std::pair<std::string, std::string>>& query = {});

}  // namespace xg2g

#endif  // XG2G_LIB_UPSTREAM_HTTP_FETCH_H_

#include "lib/upstream/http_fetch.h"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "lib/common/status.h"

namespace xg2g {
namespace {

std::once_flag curl_init_once;

void EnsureCurl() {
  // libcurl >= 7.84 initialises thread-safely; once is enough either way,
  // and the library never calls curl_global_cleanup (other code in the
  // process may use libcurl too).
  std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

std::string GetPart(CURLU* u, CURLUPart part) {
  char* raw = nullptr;
  if (curl_url_get(u, part, &raw, 0) != CURLUE_OK || raw == nullptr) return {};
  CurlString owned(raw);
  return std::string(raw);
}

// The first handle of the process initializes curl.
void* NewEasyHandle() {
  EnsureCurl();
  return curl_easy_init();
}

struct Body {
  std::string* out = nullptr;
  size_t limit = 0;
  bool overflow = false;
};

size_t WriteBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* body = static_cast<Body*>(user);
  const size_t n = size * nmemb;
  if (body->out->size() + n > body->limit) {
    body->overflow = true;
    return 0;  // makes libcurl fail the transfer with CURLE_WRITE_ERROR
  }
  body->out->append(data, n);
  return n;
}

absl::Status TransportError(CURLcode code, const std::string& url, const char* detail,
                            const HttpFetchOptions& options) {
  const std::string what = fmt::format("GET {}: {}{}{}", RedactUrl(url), curl_easy_strerror(code),
                                       detail[0] != '\0' ? " (" : "", detail);
  const std::string message = detail[0] != '\0' ? what + ")" : what;
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return MakeError(ErrorCode::kTimeout,
                       fmt::format("{} [timeout {} ms]", message, options.timeout_ms));
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return InvalidError(message);
    case CURLE_OUT_OF_MEMORY:
      return MakeError(ErrorCode::kNoMemory, message);
    default:
      return UnavailableError(message);
  }
}

}  // namespace

CurlSession::CurlSession() : easy_(NewEasyHandle()), multi_(curl_multi_init()) {
  if (easy_ == nullptr || multi_ == nullptr) throw std::bad_alloc();
}

CurlSession::~CurlSession() {
  if (multi_ != nullptr) curl_multi_cleanup(static_cast<CURLM*>(multi_));
  if (easy_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(easy_));
}

absl::StatusOr<HttpResponse> CurlSession::Get(const std::string& url,
                                              const HttpFetchOptions& options) {
  CURL* easy = static_cast<CURL*>(easy_);
  auto* multi = static_cast<CURLM*>(multi_);
  if (options.cancel != nullptr && options.cancel->cancelled()) {
    return MakeError(ErrorCode::kCancelled, fmt::format("GET {}: cancelled", RedactUrl(url)));
  }

  HttpResponse response;
  Body body{&response.body, options.max_body_bytes};
  char error_buffer[CURL_ERROR_SIZE] = {0};

  curl_easy_reset(easy);  // keeps the connection cache, drops earlier options
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "libxg2g");
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, options.connect_timeout_ms)));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, options.timeout_ms)));
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer);
  if (!options.verify_tls) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!options.username.empty()) {
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(easy, CURLOPT_USERNAME, options.username.c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, options.password.c_str());
  }

  if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
    return InternalError(fmt::format("GET {}: curl_multi_add_handle failed", RedactUrl(url)));
  }
  // A Cancel() from another thread wakes curl_multi_poll at once.
  CancelToken::Subscription wake;
  if (options.cancel != nullptr) {
    wake = options.cancel->OnCancel([multi] { curl_multi_wakeup(multi); });
  }

  bool cancelled = false;
  CURLcode result = CURLE_OK;
  CURLMcode multi_error = CURLM_OK;
  for (;;) {
    int running = 0;
    multi_error = curl_multi_perform(multi, &running);
    if (multi_error != CURLM_OK || running == 0) break;
    if (options.cancel != nullptr && options.cancel->cancelled()) {
      cancelled = true;
      break;
    }
    // Returns on socket activity, a wake-up, or after at most a second
    // (libcurl's own timers, the transfer timeout among them, are honoured
    // by curl_multi_perform on the next round).
    multi_error = curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    if (multi_error != CURLM_OK) break;
  }
  wake.Reset();
  if (!cancelled && multi_error == CURLM_OK) {
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) result = msg->data.result;
    }
  }
  curl_multi_remove_handle(multi, easy);

  if (cancelled) {
    return MakeError(ErrorCode::kCancelled, fmt::format("GET {}: cancelled", RedactUrl(url)));
  }
  if (multi_error != CURLM_OK) {
    return InternalError(fmt::format("GET {}: {}", RedactUrl(url), curl_multi_strerror(multi_error)));
  }
  long connects = 0;  // NOLINT(runtime/int)
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
  if (connects > 0) connections_opened_ += static_cast<uint64_t>(connects);
  response.new_connection = connects > 0;
  if (result == CURLE_WRITE_ERROR && body.overflow) {
    return CorruptError(fmt::format("GET {}: the answer is longer than {} bytes", RedactUrl(url),
                                    options.max_body_bytes));
  }
  if (result != CURLE_OK) return TransportError(result, url, error_buffer, options);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string RedactUrl(std::string_view url) {
  EnsureCurl();
  UrlPtr u(curl_url());
  if (u == nullptr) return "(URL)";
  const std::string text(url);
  if (curl_url_set(u.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
    return text.find('@') == std::string::npos ? text : std::string("(malformed URL)");
  }
  curl_url_set(u.get(), CURLUPART_USER, nullptr, 0);
  curl_url_set(u.get(), CURLUPART_PASSWORD, nullptr, 0);
  curl_url_set(u.get(), CURLUPART_OPTIONS, nullptr, 0);
  return GetPart(u.get(), CURLUPART_URL);
}

absl::StatusOr<std::string> BuildUrl(std::string_view base_url, std::string_view path,
                                     const std::vector<std::pair<std::string, std::string>>& query) {
  EnsureCurl();
  UrlPtr u(curl_url());
  if (u == nullptr) throw std::bad_alloc();
  const std::string base(base_url);
  if (base.empty()) return InvalidError("the URL is empty");
  if (curl_url_set(u.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK) {
    return InvalidError(fmt::format("'{}' is not an absolute http:// or https:// URL",
                                    RedactUrl(base)));
  }
  const std::string scheme = GetPart(u.get(), CURLUPART_SCHEME);
  if (scheme != "http" && scheme != "https") {
    return InvalidError(fmt::format("'{}': the scheme must be http or https, not '{}'",
                                    RedactUrl(base), scheme));
  }
  std::string full_path = GetPart(u.get(), CURLUPART_PATH);
  while (!full_path.empty() && full_path.back() == '/') full_path.pop_back();
  full_path += path;
  if (curl_url_set(u.get(), CURLUPART_PATH, full_path.c_str(), 0) != CURLUE_OK ||
      curl_url_set(u.get(), CURLUPART_QUERY, nullptr, 0) != CURLUE_OK ||
      curl_url_set(u.get(), CURLUPART_FRAGMENT, nullptr, 0) != CURLUE_OK) {
    return InvalidError(fmt::format("'{}': cannot append the path '{}'", RedactUrl(base), path));
  }
  for (const auto& [key, value] : query) {
    const std::string pair = fmt::format("{}={}", key, value);
    // With APPENDQUERY, URLENCODE leaves the first '=' alone and encodes the rest.
    if (curl_url_set(u.get(), CURLUPART_QUERY, pair.c_str(),
                     CURLU_APPENDQUERY | CURLU_URLENCODE) != CURLUE_OK) {
      return InvalidError(fmt::format("cannot encode the query parameter '{}'", key));
    }
  }
  return GetPart(u.get(), CURLUPART_URL);
}

}  // namespace xg2g

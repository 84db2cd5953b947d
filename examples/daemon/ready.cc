// xg2gd announces "ready" only after its own listener answered /healthz:
// the library's readiness wait polls it with backoff up to a deadline.
#include <string>

#include <xg2g/xg2g.h>

#include "settings.h"

namespace xg2gd {

bool WaitOwnListener(const std::string& url, std::string* error) {
  xg2g_wait_options opts = XG2G_WAIT_OPTIONS_INIT;
  opts.timeout_ms = 10000;
  opts.skip_tls_verify = 1;  // our own certificate may be self-signed
  xg2g_status rc = xg2g_wait_http_ready(url.c_str(), &opts, nullptr);
  if (rc != XG2G_OK) {
    *error = xg2g_last_error();
    return false;
  }
  return true;
}

}  // namespace xg2gd

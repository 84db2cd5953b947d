// Exported entry points of the TLS certificate check (include/xg2g/xg2g_tls.h).
#include <cmath>
#include <string>

#include "capi/barrier.h"
#include "include/xg2g/xg2g.h"
#include "lib/tls/cert_check.h"

extern "C" {

xg2g_status xg2g_tls_check_options_init(xg2g_tls_check_options* opts, unsigned int version) {
  return xg2g::capi::Guard("xg2g_tls_check_options_init", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(opts, "xg2g_tls_check_options_init");
    if (version < 1 || version > XG2G_TLS_CHECK_OPTIONS_VERSION) {
      return xg2g::capi::Fail(XG2G_EVERSION,
                              "xg2g_tls_check_options_init: unknown options version " +
                                  std::to_string(version) + " (this library knows 1 to " +
                                  std::to_string(XG2G_TLS_CHECK_OPTIONS_VERSION) + ")");
    }
    const xg2g_tls_check_options defaults = XG2G_TLS_CHECK_OPTIONS_INIT;
    // A version 1 caller's structure ends before passphrase: write the
    // version 1 fields one by one, never the whole (larger) structure.
    opts->version = version;
    opts->warn_days = defaults.warn_days;
    opts->warn_fraction = defaults.warn_fraction;
    opts->now_unix = defaults.now_unix;
    if (version >= 2) opts->passphrase = defaults.passphrase;
    return XG2G_OK;
  });
}

xg2g_status xg2g_tls_check(char** out_json, const char* cert_path, const char* key_path,
                           const xg2g_tls_check_options* opts) {
  if (out_json != nullptr) *out_json = nullptr;
  return xg2g::capi::Guard("xg2g_tls_check", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out_json, "xg2g_tls_check");
    XG2G_CAPI_REQUIRE(cert_path, "xg2g_tls_check");
    XG2G_CAPI_REQUIRE(key_path, "xg2g_tls_check");

    xg2g::TlsCheckOptions options;
    if (opts != nullptr) {
      if (opts->version < 1 || opts->version > XG2G_TLS_CHECK_OPTIONS_VERSION) {
        return xg2g::capi::Fail(XG2G_EVERSION, "xg2g_tls_check: unknown opts->version " +
                                                   std::to_string(opts->version));
      }
      if (std::isnan(opts->warn_fraction) || opts->warn_fraction > 1.0) {
        return xg2g::capi::Fail(XG2G_EINVAL,
                                "xg2g_tls_check: opts->warn_fraction must be at most 1");
      }
      if (opts->warn_days > 0) options.warn_days = opts->warn_days;
      if (opts->warn_fraction > 0) options.warn_fraction = opts->warn_fraction;
      if (opts->now_unix != 0) options.now_unix = opts->now_unix;
      // Only a version 2 structure has the field: a version 1 one ends before.
      if (opts->version >= 2 && opts->passphrase != nullptr) {
        options.passphrase = std::string(opts->passphrase);
      }
    }

    absl::StatusOr<xg2g::TlsCheckReport> report = xg2g::CheckTlsFiles(cert_path, key_path, options);
    if (!report.ok()) return xg2g::capi::FromStatus(report.status());
    *out_json = xg2g::capi::DupString(xg2g::TlsCheckReportToJson(*report));
    return XG2G_OK;
  });
}

}  // extern "C"

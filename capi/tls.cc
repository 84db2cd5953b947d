// Exported entry points of the TLS certificate check (include/xg2g/xg2g_tls.h).
#include <cmath>
#include <string>
#include <vector>

#include "capi/barrier.h"
#include "include/xg2g/xg2g.h"
#include "lib/common/status.h"
#include "lib/tls/cert_check.h"

struct xg2g_tls_report {
  xg2g::TlsCheckReport rep;
};

namespace {

// The C options as the check's options; `fn` names the entry point in errors.
absl::StatusOr<xg2g::TlsCheckReport> Check(const char* fn, const char* cert_path,
                                           const char* key_path,
                                           const xg2g_tls_check_options* opts) {
  xg2g::TlsCheckOptions options;
  if (opts != nullptr) {
    if (opts->version < 1 || opts->version > XG2G_TLS_CHECK_OPTIONS_VERSION) {
      return xg2g::MakeError(xg2g::ErrorCode::kVersion,
                             std::string(fn) + ": unknown opts->version " +
                                 std::to_string(opts->version));
    }
    if (std::isnan(opts->warn_fraction) || opts->warn_fraction > 1.0) {
      return xg2g::InvalidError(std::string(fn) + ": opts->warn_fraction must be at most 1");
    }
    if (opts->warn_days > 0) options.warn_days = opts->warn_days;
    if (opts->warn_fraction > 0) options.warn_fraction = opts->warn_fraction;
    if (opts->now_unix != 0) options.now_unix = opts->now_unix;
    // Only a version 2 structure has the field: a version 1 one ends before.
    if (opts->version >= 2 && opts->passphrase != nullptr) {
      options.passphrase = std::string(opts->passphrase);
    }
  }
  return xg2g::CheckTlsFiles(cert_path, key_path, options);
}

const std::vector<xg2g::TlsFinding>* Findings(const xg2g_tls_report* report, int list) {
  if (report == nullptr) return nullptr;
  if (list == XG2G_TLS_ERRORS) return &report->rep.errors;
  if (list == XG2G_TLS_WARNINGS) return &report->rep.warnings;
  return nullptr;
}

const xg2g::TlsFinding* FindingAt(const xg2g_tls_report* report, int list, size_t index) {
  const std::vector<xg2g::TlsFinding>* findings = Findings(report, list);
  if (findings == nullptr || index >= findings->size()) return nullptr;
  return &(*findings)[index];
}

}  // namespace

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

xg2g_status xg2g_tls_check_report(xg2g_tls_report** out, const char* cert_path,
                                  const char* key_path, const xg2g_tls_check_options* opts) {
  if (out != nullptr) *out = nullptr;
  return xg2g::capi::Guard("xg2g_tls_check_report", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_tls_check_report");
    XG2G_CAPI_REQUIRE(cert_path, "xg2g_tls_check_report");
    XG2G_CAPI_REQUIRE(key_path, "xg2g_tls_check_report");
    absl::StatusOr<xg2g::TlsCheckReport> report =
        Check("xg2g_tls_check_report", cert_path, key_path, opts);
    if (!report.ok()) return xg2g::capi::FromStatus(report.status());
    *out = new xg2g_tls_report{std::move(*report)};
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
    absl::StatusOr<xg2g::TlsCheckReport> report =
        Check("xg2g_tls_check", cert_path, key_path, opts);
    if (!report.ok()) return xg2g::capi::FromStatus(report.status());
    *out_json = xg2g::capi::DupString(xg2g::TlsCheckReportToJson(*report));
    return XG2G_OK;
  });
}

int xg2g_tls_report_valid(const xg2g_tls_report* report) {
  return report != nullptr && report->rep.valid() ? 1 : 0;
}

size_t xg2g_tls_report_count(const xg2g_tls_report* report, int list) {
  const std::vector<xg2g::TlsFinding>* findings = Findings(report, list);
  return findings == nullptr ? 0 : findings->size();
}

const char* xg2g_tls_report_code(const xg2g_tls_report* report, int list, size_t index) {
  const xg2g::TlsFinding* finding = FindingAt(report, list, index);
  return finding == nullptr ? nullptr : finding->code.c_str();
}

const char* xg2g_tls_report_file(const xg2g_tls_report* report, int list, size_t index) {
  const xg2g::TlsFinding* finding = FindingAt(report, list, index);
  return finding == nullptr ? nullptr : finding->file.c_str();
}

const char* xg2g_tls_report_message(const xg2g_tls_report* report, int list, size_t index) {
  const xg2g::TlsFinding* finding = FindingAt(report, list, index);
  return finding == nullptr ? nullptr : finding->message.c_str();
}

const char* xg2g_tls_report_subject(const xg2g_tls_report* report) {
  return report == nullptr || !report->rep.subject ? nullptr : report->rep.subject->c_str();
}

size_t xg2g_tls_report_san_count(const xg2g_tls_report* report) {
  return report == nullptr ? 0 : report->rep.sans.size();
}

const char* xg2g_tls_report_san(const xg2g_tls_report* report, size_t index) {
  if (report == nullptr || index >= report->rep.sans.size()) return nullptr;
  return report->rep.sans[index].c_str();
}

int xg2g_tls_report_validity(const xg2g_tls_report* report, int64_t* not_before_unix,
                             int64_t* not_after_unix, int64_t* days_left) {
  if (report == nullptr || !report->rep.not_before_unix || !report->rep.not_after_unix ||
      !report->rep.days_left) {
    return 0;
  }
  if (not_before_unix != nullptr) *not_before_unix = *report->rep.not_before_unix;
  if (not_after_unix != nullptr) *not_after_unix = *report->rep.not_after_unix;
  if (days_left != nullptr) *days_left = *report->rep.days_left;
  return 1;
}

const char* xg2g_tls_report_key_type(const xg2g_tls_report* report) {
  return report == nullptr || !report->rep.key_type ? nullptr : report->rep.key_type->c_str();
}

int xg2g_tls_report_key_bits(const xg2g_tls_report* report) {
  return report == nullptr || !report->rep.key_bits ? 0 : *report->rep.key_bits;
}

xg2g_status xg2g_tls_report_to_json(char** out_json, const xg2g_tls_report* report) {
  if (out_json != nullptr) *out_json = nullptr;
  return xg2g::capi::Guard("xg2g_tls_report_to_json", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out_json, "xg2g_tls_report_to_json");
    XG2G_CAPI_REQUIRE(report, "xg2g_tls_report_to_json");
    *out_json = xg2g::capi::DupString(xg2g::TlsCheckReportToJson(report->rep));
    return XG2G_OK;
  });
}

void xg2g_tls_report_destroy(xg2g_tls_report* report) { delete report; }

}  // extern "C"

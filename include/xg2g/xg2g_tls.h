/*
 * libxg2g: TLS certificate checks (computed with the library's private
 * BoringSSL; safe in processes that also load OpenSSL).
 */
#ifndef XG2G_TLS_H
#define XG2G_TLS_H

#include "xg2g_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Options of xg2g_tls_check(); initialise with XG2G_TLS_CHECK_OPTIONS_INIT or
 * xg2g_tls_check_options_init(). A certificate warns (CERT_EXPIRING) when the
 * time it has left is at most min(warn_days, warn_fraction x its lifetime):
 * with the defaults a 365-day certificate warns from 30 days before its end, a
 * 47-day one in its last third, a fresh 10-day one not yet.
 *
 * Versions: 1 has the fields up to now_unix; 2 appends
 * passphrase. A caller built against version 1 keeps working: it passes
 * version 1 and a structure without passphrase, and the library reads (and
 * xg2g_tls_check_options_init() writes) only the version 1 fields.
 */
typedef struct xg2g_tls_check_options {
  unsigned int version;  /* XG2G_TLS_CHECK_OPTIONS_VERSION */
  int warn_days;         /* expiry warning horizon in days; <= 0 means 30 */
  double warn_fraction;  /* fraction of the lifetime, at most 1; <= 0 means 0.33 */
  int64_t now_unix;      /* time to check against (seconds since the epoch); 0 means now */
  /* Since version 2. Decrypts an encrypted private key (encrypted PKCS#8, or
   * PEM encryption with Proc-Type/DEK-Info); UTF-8/bytes, NUL-terminated,
   * used during the call only (not copied, not kept). NULL: no passphrase,
   * and an encrypted key is the error KEY_ENCRYPTED. Ignored for an
   * unencrypted key. */
  const char *passphrase;
} xg2g_tls_check_options;

#define XG2G_TLS_CHECK_OPTIONS_VERSION 2
#define XG2G_TLS_CHECK_OPTIONS_INIT {XG2G_TLS_CHECK_OPTIONS_VERSION, 30, 0.33, 0, NULL}

/*
 * Fills opts with the defaults for `version` (pass
 * XG2G_TLS_CHECK_OPTIONS_VERSION; 1 and 2 are known). For version 1 only the
 * version 1 fields are written, so a version 1 structure (without passphrase)
 * is safe to pass. Errors: XG2G_EINVAL (NULL opts), XG2G_EVERSION (a version
 * this library does not know). Thread-safe. Since 0.1 (version 2 of the options: passphrase).
 */
XG2G_API(xg2g_status) xg2g_tls_check_options_init(xg2g_tls_check_options *opts,
                                                  unsigned int version);

/*
 * Checks a certificate file (PEM: the leaf first, then its issuers) and its
 * private key file (PEM; may be the same file; encrypted only with
 * opts->passphrase) and writes the report as JSON into *out_json (free with
 * xg2g_free):
 *   {"valid":bool, "errors":[{"code","file","message"}], "warnings":[...],
 *    "subject":"CN=...,O=..." (RFC 2253), "sans":["dns name","127.0.0.1"],
 *    "not_before","not_after" (RFC 3339 UTC, "2025-01-01T00:00:00Z"),
 *    "days_left" (whole days, negative once expired), "key_type" ("RSA",
 *    "EC", "Ed25519", ...), "key_bits" (Ed25519: 253)}
 * Facts about the leaf are null when the files did not get far enough to tell
 * them; "valid" is true when there is no error (warnings allowed).
 * Error codes: FILE_NOT_FOUND, FILE_UNREADABLE, FILE_NOT_PEM (no PEM block at
 * all: DER, text or empty), CERT_MISSING (PEM, but no certificate),
 * CERT_PARSE_FAILED, KEY_MISSING (PEM, but no private key), KEY_PARSE_FAILED,
 * KEY_ENCRYPTED (encrypted and no passphrase given), KEY_PASSPHRASE_WRONG,
 * KEY_ENCRYPTION_UNSUPPORTED (a scheme such as scrypt this check cannot
 * decrypt), KEY_MISMATCH, CHAIN_ORDER (issuers before the leaf),
 * CHAIN_BROKEN (a certificate not followed by its issuer),
 * CERT_NOT_YET_VALID, CERT_EXPIRED.
 * Warning codes: CERT_EXPIRING, KEY_WEAK (RSA under 2048 bits), SELF_SIGNED.
 * Codes are stable: only ever added. docs/tls.md describes each.
 * Each finding names its file; its message names the reason. The check needs
 * no trust store: whether clients trust the issuer is not judged.
 * A certificate that fails the check is still XG2G_OK: the report says why.
 * opts may be NULL for the defaults; version 1 and 2 options are accepted.
 * On failure *out_json is NULL.
 * Errors: XG2G_EINVAL (NULL out or path, warn_fraction over 1 or NaN),
 * XG2G_EVERSION (opts->version), XG2G_ENOMEM.
 * Thread-safe. Since 0.1 (opts->passphrase: options version 2).
 */
XG2G_API(xg2g_status) xg2g_tls_check(char **out_json, const char *cert_path,
                                     const char *key_path, const xg2g_tls_check_options *opts);

/*
 * The same check as xg2g_tls_check(), with the report as a handle read
 * through the accessors below instead of JSON. *out is the caller's; end it
 * with xg2g_tls_report_destroy(). Arguments, options and errors as for
 * xg2g_tls_check(); a certificate that fails the check is still XG2G_OK.
 * On failure *out is NULL. Thread-safe. Since 0.1.
 */
typedef struct xg2g_tls_report xg2g_tls_report;

/* Which list of findings an accessor reads. */
#define XG2G_TLS_ERRORS 0
#define XG2G_TLS_WARNINGS 1

XG2G_API(xg2g_status) xg2g_tls_check_report(xg2g_tls_report **out, const char *cert_path,
                                            const char *key_path,
                                            const xg2g_tls_check_options *opts);
/* 1 when there is no error (warnings allowed); 0 otherwise or for NULL. */
XG2G_API(int) xg2g_tls_report_valid(const xg2g_tls_report *report);
/* Findings of one list (XG2G_TLS_ERRORS or XG2G_TLS_WARNINGS); 0 for another
 * list or a NULL report. */
XG2G_API(size_t) xg2g_tls_report_count(const xg2g_tls_report *report, int list);
/* A finding's stable code ("CERT_EXPIRED"), the file it concerns and the
 * sentence naming the reason. Borrowed, valid until the report is destroyed;
 * NULL when the list or the index is out of range. */
XG2G_API(const char *) xg2g_tls_report_code(const xg2g_tls_report *report, int list,
                                            size_t index);
XG2G_API(const char *) xg2g_tls_report_file(const xg2g_tls_report *report, int list,
                                            size_t index);
XG2G_API(const char *) xg2g_tls_report_message(const xg2g_tls_report *report, int list,
                                               size_t index);
/* The leaf's subject (RFC 2253); NULL when not known. Borrowed. */
XG2G_API(const char *) xg2g_tls_report_subject(const xg2g_tls_report *report);
/* The leaf's subject alternative names (DNS names and IP addresses). */
XG2G_API(size_t) xg2g_tls_report_san_count(const xg2g_tls_report *report);
/* Borrowed; NULL when out of range. */
XG2G_API(const char *) xg2g_tls_report_san(const xg2g_tls_report *report, size_t index);
/* The leaf's validity period in seconds since the epoch and the whole days
 * left (negative once expired). Returns 1 and writes the non-NULL outputs
 * when the leaf was read, else 0 and writes nothing. */
XG2G_API(int) xg2g_tls_report_validity(const xg2g_tls_report *report, int64_t *not_before_unix,
                                       int64_t *not_after_unix, int64_t *days_left);
/* "RSA", "EC", "Ed25519", ...; NULL when not known. Borrowed. */
XG2G_API(const char *) xg2g_tls_report_key_type(const xg2g_tls_report *report);
/* The key size in bits (Ed25519: 253); 0 when not known. */
XG2G_API(int) xg2g_tls_report_key_bits(const xg2g_tls_report *report);
/* The report as the JSON of xg2g_tls_check() (free with xg2g_free).
 * Errors: XG2G_EINVAL (NULL argument), XG2G_ENOMEM. */
XG2G_API(xg2g_status) xg2g_tls_report_to_json(char **out_json, const xg2g_tls_report *report);
XG2G_API(void) xg2g_tls_report_destroy(xg2g_tls_report *report);

#ifdef __cplusplus
}
#endif

#endif /* XG2G_TLS_H */

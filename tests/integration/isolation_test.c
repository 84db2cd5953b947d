/*
 * Proves that libxg2g's private BoringSSL and the system OpenSSL live side by
 * side in one process: OpenSSL is initialised and used first, then libxg2g
 * checks certificates, then libcurl (OpenSSL flavour) makes a CA-verified
 * HTTPS request to a local server, and both libraries are used once more.
 * With a BoringSSL that exported OpenSSL's symbol names, one of the two would
 * resolve the other's functions and crash or compute wrong answers (e.g.
 * EVP_PKEY_bits() returning 0 for a 2048-bit key).
 *
 * Usage: isolation_test DATA_DIR URL
 *   DATA_DIR  tests/data/tls (fixtures of make-fixtures.sh)
 *   URL       https://127.0.0.1:PORT/ served by `openssl s_server -www` with
 *             chain.pem and leaf.key (run_isolation.sh starts it)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <xg2g/xg2g.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                \
  do {                                                                             \
    ++checks;                                                                      \
    if (!(cond)) {                                                                 \
      ++failures;                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
    }                                                                              \
  } while (0)

static char path_buf[4096];

static const char *fixture(const char *dir, const char *name) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
  return path_buf;
}

/* The bits of the public key in a PEM certificate, computed by OpenSSL. */
static int openssl_cert_bits(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (cert == NULL) return -1;
  const int bits = EVP_PKEY_bits(X509_get0_pubkey(cert));
  X509_free(cert);
  return bits;
}

/* SHA-256 of "abc" through OpenSSL's EVP interface, as lowercase hex. */
static int openssl_sha256_abc_ok(void) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest("abc", 3, md, &len, EVP_sha256(), NULL) != 1 || len != 32) return 0;
  static const unsigned char want[32] = {
      0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
      0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
  return memcmp(md, want, 32) == 0;
}

/* The file name of the shared object that defines `symbol` for this process. */
static const char *provider_of(const char *symbol) {
  void *addr = dlsym(RTLD_DEFAULT, symbol);
  Dl_info info;
  if (addr == NULL || dladdr(addr, &info) == 0 || info.dli_fname == NULL) return "";
  return info.dli_fname;
}

/* libxg2g.so must not export any of BoringSSL's (OpenSSL-named) symbols. */
static void check_libxg2g_exports_no_crypto(void) {
  static const char *const names[] = {"RAND_bytes", "SHA256", "EVP_PKEY_bits", "EVP_PKEY_free",
                                      "X509_verify", "PEM_read_bio", "CRYPTO_memcmp",
                                      "ERR_clear_error", "OPENSSL_free", "BIO_new"};
  void *lib = dlopen("libxg2g.so.0", RTLD_LAZY | RTLD_NOLOAD);
  CHECK(lib != NULL);
  if (lib == NULL) return;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
    /* dlsym searches libxg2g and its dependencies; only libxg2g itself matters. */
    void *addr = dlsym(lib, names[i]);
    Dl_info info;
    const int from_libxg2g = addr != NULL && dladdr(addr, &info) != 0 && info.dli_fname != NULL &&
                             strstr(info.dli_fname, "libxg2g") != NULL;
    if (from_libxg2g) fprintf(stderr, "libxg2g.so exports %s\n", names[i]);
    CHECK(!from_libxg2g);
  }
  dlclose(lib);
}

/* Runs xg2g_tls_check and returns its JSON (caller frees with xg2g_free). */
static char *xg2g_check(const char *dir, const char *cert, const char *key) {
  char cert_path[4096];
  snprintf(cert_path, sizeof cert_path, "%s/%s", dir, cert);
  char *json = NULL;
  const xg2g_status st = xg2g_tls_check(&json, cert_path, fixture(dir, key), NULL);
  if (st != XG2G_OK) {
    fprintf(stderr, "xg2g_tls_check(%s): %s: %s\n", cert, xg2g_status_str(st), xg2g_last_error());
    return NULL;
  }
  return json;
}

static int contains(const char *haystack, const char *needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *user) {
  (void)ptr;
  size_t *total = (size_t *)user;
  *total += size * nmemb;
  return size * nmemb;
}

static void check_libxg2g(const char *dir) {
  const int failures_before = failures;
  char *json = xg2g_check(dir, "chain.pem", "leaf.key");
  CHECK(json != NULL);
  CHECK(contains(json, "\"valid\":true"));
  CHECK(contains(json, "\"key_type\":\"RSA\""));
  CHECK(contains(json, "\"key_bits\":2048"));
  CHECK(contains(json, "\"subject\":\"CN=localhost,O=libxg2g tests\""));
  CHECK(contains(json, "\"warnings\":[]"));
  if (failures > failures_before && json != NULL) fprintf(stderr, "report: %s\n", json);
  xg2g_free(json);

  json = xg2g_check(dir, "rsa1024.pem", "rsa1024.key");
  CHECK(contains(json, "\"key_bits\":1024"));
  CHECK(contains(json, "\"KEY_WEAK\""));
  xg2g_free(json);

  json = xg2g_check(dir, "leaf.pem", "other.key");
  CHECK(contains(json, "\"valid\":false"));
  CHECK(contains(json, "\"KEY_MISMATCH\""));
  xg2g_free(json);
}

static void check_openssl(const char *dir) {
  CHECK(openssl_cert_bits(fixture(dir, "leaf.pem")) == 2048);
  CHECK(openssl_cert_bits(fixture(dir, "rsa1024.pem")) == 1024);
  CHECK(openssl_sha256_abc_ok());
  unsigned char buf[16];
  CHECK(RAND_bytes(buf, sizeof buf) == 1);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DATA_DIR URL\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  const char *url = argv[2];

  /* 1. OpenSSL first, with real work. */
  CHECK(OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL) ==
        1);
  check_openssl(dir);

  /* The OpenSSL names this process sees come from OpenSSL, not libxg2g. */
  CHECK(contains(provider_of("EVP_PKEY_get_bits"), "libcrypto.so"));
  CHECK(contains(provider_of("RAND_bytes"), "libcrypto.so"));
  CHECK(contains(provider_of("SSL_CTX_new"), "libssl.so"));
  CHECK(contains(provider_of("xg2g_tls_check"), "libxg2g.so"));
  check_libxg2g_exports_no_crypto();

  /* 2. Then libxg2g. */
  CHECK(xg2g_check_version(XG2G_VERSION_MAJOR, XG2G_VERSION_MINOR) == XG2G_OK);
  check_libxg2g(dir);

  /* 3. An HTTPS request through libcurl's OpenSSL, verified against the CA. */
  CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
  const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
  CHECK(info != NULL && contains(info->ssl_version, "OpenSSL"));
  CURL *curl = curl_easy_init();
  CHECK(curl != NULL);
  if (curl != NULL) {
    char ca_path[4096];
    snprintf(ca_path, sizeof ca_path, "%s/ca.pem", dir);
    size_t received = 0;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CAINFO, ca_path);
    curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &received);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    const CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) fprintf(stderr, "curl: %s: %s\n", curl_easy_strerror(rc), errbuf);
    CHECK(rc == CURLE_OK);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    CHECK(status == 200);
    CHECK(received > 0);
    long verify = -1;
    curl_easy_getinfo(curl, CURLINFO_SSL_VERIFYRESULT, &verify);
    CHECK(verify == 0);
    curl_easy_cleanup(curl);
  }

  /* 4. Both libraries still give correct answers afterwards. */
  check_openssl(dir);
  check_libxg2g(dir);
  curl_global_cleanup();

  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}

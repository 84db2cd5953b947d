#!/bin/sh
# Generates the certificates and keys of the TLS certificate-check tests with
# the openssl command-line tool, into a directory the caller gives (the tests
# run it at test time, into a temporary directory; nothing of it is checked
# in). Validity dates are fixed so that the tests, which pass an explicit
# "now", stay deterministic; keys are new on every run. Only current.pem
# depends on the clock (it starts now, for the tests of the real clock).
#
# Usage: make-fixtures.sh OUTDIR [OPENSSL]
#   OUTDIR   an existing, writable directory
#   OPENSSL  the openssl program (default: openssl from PATH)
#
# Files (PEM unless said otherwise). Leaves carry the SANs localhost,
# xg2g.test, 127.0.0.1 and ::1 unless said otherwise; "the CA" issues them.
#   ca.key ca.pem              test CA, RSA 2048 (PKCS#8), 2020-01-01 .. 2049-12-31
#   inter.key inter.pem        intermediate CA issued by the CA, EC P-256
#   leaf.key                   RSA 2048 leaf key, PKCS#8 ("PRIVATE KEY")
#   leaf-pkcs1.key             the same key as PKCS#1 ("RSA PRIVATE KEY")
#   leaf.pem                   leaf.key, CN=localhost, 2024-01-01 .. 2049-12-31
#                              (also served by the isolation tests)
#   chain.pem                  leaf.pem then ca.pem (the right order)
#   chain-reversed.pem         ca.pem then leaf.pem (issuers before the leaf)
#   leaf-inter.pem             leaf.key issued by the intermediate
#   chain3.pem                 leaf-inter.pem, inter.pem, ca.pem
#   chain3-reversed.pem        ca.pem, inter.pem, leaf-inter.pem
#   chain3-gap.pem             leaf-inter.pem, ca.pem (the intermediate left out)
#   combined.pem               leaf.pem then leaf.key in one file
#   leaf-365d.pem              leaf.key, 2025-01-01 .. 2026-01-01 (365 days)
#   leaf-47d.pem               leaf.key, 2025-01-01 .. 2025-02-17 (47 days)
#   leaf-10d.pem               leaf.key, 2025-01-01 .. 2025-01-11 (10 days)
#   expired.pem                leaf.key, 2020-01-01 .. 2021-01-01
#   notyet.pem                 leaf.key, 2048-01-01 .. 2049-01-01
#   current.pem                leaf.key, from now for 365 days
#   rsa1024.key rsa1024.pem    RSA 1024 leaf, CN=weak.xg2g.test
#   ec.key ec.pem              EC P-256 leaf, SEC1 key ("EC PRIVATE KEY"),
#                              CN=ec.xg2g.test, SANs ec.xg2g.test, 192.0.2.7
#   ec-pkcs8.key               ec.key as PKCS#8
#   ec384.key ec384.pem        EC P-384 leaf, PKCS#8 key, CN=ec384.xg2g.test,
#                              2024-06-01 .. 2034-06-01, SAN ec384.xg2g.test
#   ec384-sec1.key             ec384.key as SEC1 after an "EC PARAMETERS" block
#   ed25519.key ed25519.pem    Ed25519 leaf, CN=ed25519.xg2g.test,
#                              2024-01-01 .. 2049-12-31, SAN 2001:db8::25
#   selfsigned.key selfsigned.pem  self-signed RSA 2048 leaf (not a CA),
#                              CN=self.xg2g.test, SAN self.xg2g.test
#   other.key                  an RSA 2048 key that matches no certificate
#   encrypted.key              leaf.key as encrypted PKCS#8 (PBES2, PBKDF2
#                              with HMAC-SHA256, AES-256-CBC), passphrase "secret"
#   encrypted-pkcs1.key        leaf.key as PKCS#1 with PEM encryption
#                              (Proc-Type/DEK-Info, AES-256-CBC), "secret"
#   encrypted-sec1.key         ec.key as SEC1 with PEM encryption, "secret"
#   encrypted-scrypt.key       leaf.key as encrypted PKCS#8 whose key
#                              derivation is scrypt (not supported), "secret"
#   encrypted-camellia.key     leaf.key with PEM encryption CAMELLIA-256-CBC
#                              (not supported), "secret"
#   leaf.der leaf-key.der      leaf.pem and leaf.key in DER (binary, not PEM)
#   garbage.pem                a CERTIFICATE block whose base64 is broken
#   notder.pem                 a CERTIFICATE block of valid base64 that is no
#                              certificate
#   notpem.txt                 plain text without any PEM block
#   empty.pem                  an empty file
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: make-fixtures.sh OUTDIR [OPENSSL]" >&2
  exit 2
fi
out=$1
openssl=${2:-openssl}
if [ ! -d "$out" ]; then
  echo "make-fixtures.sh: $out is not a directory" >&2
  exit 2
fi
cd "$out"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs openssl, quiet unless it fails.
ossl() {
  if ! "$openssl" "$@" 2>"$work/ossl.log"; then
    echo "make-fixtures.sh: openssl $1 failed:" >&2
    cat "$work/ossl.log" >&2
    exit 1
  fi
}

cat >"$work/ca.cnf" <<EOF
[ ca ]
default_ca = test_ca

[ test_ca ]
dir = $work
database = $work/index.txt
new_certs_dir = $work/certs
serial = $work/serial
default_md = sha256
policy = any_policy
unique_subject = no
copy_extensions = none
email_in_dn = no
preserve = yes

[ any_policy ]
organizationName = optional
commonName = supplied

[ ca_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ leaf_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:xg2g.test, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ ec_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:ec.xg2g.test, IP:192.0.2.7

[ ec384_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:ec384.xg2g.test

[ ed25519_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:2001:db8::25

[ self_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:self.xg2g.test
EOF
mkdir "$work/certs"
: >"$work/index.txt"
echo 1000 >"$work/serial"

# sign SUBJECT KEY OUT ISSUER_CERT ISSUER_KEY EXT DATES...: issues a
# certificate for KEY; DATES are "-startdate X -enddate Y" or "-days N".
sign() {
  subject=$1 key=$2 target=$3 issuer_cert=$4 issuer_key=$5 ext=$6
  shift 6
  ossl req -new -key "$key" -subj "$subject" -out "$work/req.csr"
  ossl ca -batch -notext -config "$work/ca.cnf" -cert "$issuer_cert" -keyfile "$issuer_key" \
    -extensions "$ext" -in "$work/req.csr" -out "$target" "$@"
}

rsa_key() { ossl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1"; }
ec_key() { ossl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1"; }

rsa_key ca.key 2048
rsa_key leaf.key 2048
rsa_key rsa1024.key 1024
rsa_key selfsigned.key 2048
rsa_key other.key 2048
ec_key inter.key P-256
ec_key ec384.key P-384
ossl genpkey -algorithm ed25519 -out ed25519.key
# SEC1, as `ecparam -genkey -noout` writes it.
ossl ecparam -name prime256v1 -genkey -noout -out ec.key

ossl pkey -in leaf.key -traditional -out leaf-pkcs1.key
ossl pkey -in ec.key -out ec-pkcs8.key
ossl ecparam -name secp384r1 -out ec384-sec1.key
ossl ec -in ec384.key -out "$work/ec384-sec1.key"
cat "$work/ec384-sec1.key" >>ec384-sec1.key

ca_subject="/O=libxg2g tests/CN=libxg2g test CA"
# The CA signs itself: a throwaway self-signed certificate first, because
# `openssl ca -cert` needs one; then the real one with the fixed dates.
ossl req -new -x509 -key ca.key -subj "$ca_subject" -days 1 -out "$work/ca-boot.pem"
sign "$ca_subject" ca.key ca.pem "$work/ca-boot.pem" ca.key ca_ext \
  -startdate 20200101000000Z -enddate 20491231235959Z
sign "/O=libxg2g tests/CN=libxg2g test intermediate" inter.key inter.pem ca.pem ca.key ca_ext \
  -startdate 20200101000000Z -enddate 20491231235959Z

leaf_subject="/O=libxg2g tests/CN=localhost"
# leaf TARGET START END: a certificate for leaf.key issued by the CA.
leaf() { sign "$leaf_subject" leaf.key "$1" ca.pem ca.key leaf_ext -startdate "$2" -enddate "$3"; }
leaf leaf.pem 20240101000000Z 20491231235959Z
leaf leaf-365d.pem 20250101000000Z 20260101000000Z
leaf leaf-47d.pem 20250101000000Z 20250217000000Z
leaf leaf-10d.pem 20250101000000Z 20250111000000Z
leaf expired.pem 20200101000000Z 20210101000000Z
leaf notyet.pem 20480101000000Z 20490101000000Z
sign "$leaf_subject" leaf.key current.pem ca.pem ca.key leaf_ext -days 365
sign "$leaf_subject" leaf.key leaf-inter.pem inter.pem inter.key leaf_ext \
  -startdate 20240101000000Z -enddate 20491231235959Z

sign "/O=libxg2g tests/CN=weak.xg2g.test" rsa1024.key rsa1024.pem ca.pem ca.key leaf_ext \
  -startdate 20240101000000Z -enddate 20491231235959Z
sign "/O=libxg2g tests/CN=ec.xg2g.test" ec.key ec.pem ca.pem ca.key ec_ext \
  -startdate 20240101000000Z -enddate 20491231235959Z
sign "/O=libxg2g tests/CN=ec384.xg2g.test" ec384.key ec384.pem ca.pem ca.key ec384_ext \
  -startdate 20240601000000Z -enddate 20340601000000Z
sign "/O=libxg2g tests/CN=ed25519.xg2g.test" ed25519.key ed25519.pem ca.pem ca.key ed25519_ext \
  -startdate 20240101000000Z -enddate 20491231235959Z
# -selfsign: signed with its own key (openssl ca still wants some -cert).
sign "/O=libxg2g tests/CN=self.xg2g.test" selfsigned.key selfsigned.pem ca.pem selfsigned.key \
  self_ext -selfsign -startdate 20240101000000Z -enddate 20491231235959Z

cat leaf.pem ca.pem >chain.pem
cat ca.pem leaf.pem >chain-reversed.pem
cat leaf-inter.pem inter.pem ca.pem >chain3.pem
cat ca.pem inter.pem leaf-inter.pem >chain3-reversed.pem
cat leaf-inter.pem ca.pem >chain3-gap.pem
cat leaf.pem leaf.key >combined.pem

ossl pkey -in leaf.key -aes-256-cbc -passout pass:secret -out encrypted.key
ossl rsa -in leaf.key -traditional -aes256 -passout pass:secret -out encrypted-pkcs1.key
ossl ec -in ec.key -aes256 -passout pass:secret -out encrypted-sec1.key
ossl pkcs8 -topk8 -in leaf.key -scrypt -passout pass:secret -out encrypted-scrypt.key
ossl rsa -in leaf.key -traditional -camellia256 -passout pass:secret -out encrypted-camellia.key

ossl x509 -in leaf.pem -outform DER -out leaf.der
ossl pkey -in leaf.key -outform DER -out leaf-key.der

{
  echo "-----BEGIN CERTIFICATE-----"
  echo "this is not base64 !!!"
  echo "-----END CERTIFICATE-----"
} >garbage.pem
{
  echo "-----BEGIN CERTIFICATE-----"
  printf 'libxg2g: valid base64, but no DER certificate inside' | "$openssl" base64
  echo "-----END CERTIFICATE-----"
} >notder.pem
echo "This file holds no PEM block at all." >notpem.txt
: >empty.pem

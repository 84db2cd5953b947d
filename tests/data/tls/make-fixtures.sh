#!/bin/sh
# Regenerates the TLS fixtures of the certificate-check tests with the openssl
# command-line tool. Validity dates are fixed so that the tests, which pass an
# explicit "now", stay deterministic; keys are new on every run.
#
# Usage: tests/data/tls/make-fixtures.sh   (writes into its own directory)
#
# Files (all PEM):
#   ca.key ca.pem              test CA, RSA 2048, 2020-01-01 .. 2049-12-31
#   leaf.key leaf.pem          RSA 2048 leaf for localhost / 127.0.0.1 issued by
#                              the CA, 2024-01-01 .. 2049-12-31 (also served by
#                              the isolation tests)
#   chain.pem                  leaf.pem then ca.pem (the right order)
#   chain-reversed.pem         ca.pem then leaf.pem (issuers before the leaf)
#   leaf-365d.pem              leaf.key, 2025-01-01 .. 2026-01-01 (365 days)
#   leaf-47d.pem               leaf.key, 2025-01-01 .. 2025-02-17 (47 days)
#   leaf-10d.pem               leaf.key, 2025-01-01 .. 2025-01-11 (10 days)
#   expired.pem                leaf.key, 2020-01-01 .. 2021-01-01
#   rsa1024.key rsa1024.pem    RSA 1024 leaf issued by the CA
#   ec.key ec.pem              EC P-256 leaf issued by the CA (SEC1 key)
#   selfsigned.key selfsigned.pem  self-signed RSA 2048 leaf (not a CA)
#   other.key                  an RSA 2048 key that matches no certificate
#   encrypted.key              leaf.key encrypted with the password "secret"
#   garbage.pem                a CERTIFICATE block whose base64 is broken
#   notder.pem                 a CERTIFICATE block of valid base64 that is no
#                              certificate
#   notpem.txt                 plain text without any PEM block
set -eu

dir=$(cd "$(dirname "$0")" && pwd)
cd "$dir"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

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

[ leaf_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:xg2g.test, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ self_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:self.xg2g.test
EOF
mkdir "$work/certs"
: >"$work/index.txt"
echo 1000 >"$work/serial"

# sign SUBJECT KEY OUT START END EXT [-selfsign]: issues a certificate for KEY.
sign() {
  subject=$1 key=$2 out=$3 start=$4 end=$5 ext=$6
  shift 6
  openssl req -new -key "$key" -subj "$subject" -out "$work/req.csr"
  if [ "${1:-}" = "-selfsign" ]; then
    signer=$key
  else
    signer=ca.key
  fi
  openssl ca -batch -notext -config "$work/ca.cnf" -cert ca.pem -keyfile "$signer" \
    -startdate "$start" -enddate "$end" -extensions "$ext" \
    -in "$work/req.csr" -out "$out" "$@" 2>"$work/ca.log" || {
      cat "$work/ca.log" >&2
      exit 1
    }
}

rsa_key() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1" 2>/dev/null; }

rsa_key ca.key 2048
rsa_key leaf.key 2048
rsa_key rsa1024.key 1024
rsa_key selfsigned.key 2048
rsa_key other.key 2048
openssl ecparam -name prime256v1 -genkey -noout -out ec.key

# The CA signs itself first (ca.pem must exist before "openssl ca -cert").
openssl req -new -x509 -key ca.key -subj "/O=libxg2g tests/CN=libxg2g test CA" \
  -days 1 -out ca.pem
sign "/O=libxg2g tests/CN=libxg2g test CA" ca.key ca.pem \
  20200101000000Z 20491231235959Z ca_ext -selfsign

sign "/O=libxg2g tests/CN=localhost" leaf.key leaf.pem \
  20240101000000Z 20491231235959Z leaf_ext
sign "/O=libxg2g tests/CN=localhost" leaf.key leaf-365d.pem \
  20250101000000Z 20260101000000Z leaf_ext
sign "/O=libxg2g tests/CN=localhost" leaf.key leaf-47d.pem \
  20250101000000Z 20250217000000Z leaf_ext
sign "/O=libxg2g tests/CN=localhost" leaf.key leaf-10d.pem \
  20250101000000Z 20250111000000Z leaf_ext
sign "/O=libxg2g tests/CN=localhost" leaf.key expired.pem \
  20200101000000Z 20210101000000Z leaf_ext
sign "/O=libxg2g tests/CN=weak.xg2g.test" rsa1024.key rsa1024.pem \
  20240101000000Z 20491231235959Z leaf_ext
sign "/O=libxg2g tests/CN=ec.xg2g.test" ec.key ec.pem \
  20240101000000Z 20491231235959Z leaf_ext
sign "/O=libxg2g tests/CN=self.xg2g.test" selfsigned.key selfsigned.pem \
  20240101000000Z 20491231235959Z self_ext -selfsign

cat leaf.pem ca.pem >chain.pem
cat ca.pem leaf.pem >chain-reversed.pem

openssl pkey -in leaf.key -aes-256-cbc -passout pass:secret -out encrypted.key

{
  echo "-----BEGIN CERTIFICATE-----"
  echo "this is not base64 !!!"
  echo "-----END CERTIFICATE-----"
} >garbage.pem
{
  echo "-----BEGIN CERTIFICATE-----"
  printf 'libxg2g: valid base64, but no DER certificate inside' | openssl base64
  echo "-----END CERTIFICATE-----"
} >notder.pem
echo "This file holds no PEM block at all." >notpem.txt

echo "fixtures written to $dir"

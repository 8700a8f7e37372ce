#!/usr/bin/env bash
# make_certs.sh OUTDIR: the certificates test_tls uses, made with the openssl CLI
# (ECDSA P-256 keys, so it takes well under a second). In OUTDIR:
#   ca.pem ca.key            "CN=sockit test CA", signs everything below but self.pem
#   server.pem server.key    CN=localhost, SAN DNS:localhost IP:127.0.0.1 IP:::1
#   other.pem other.key      CN=other.test, SAN DNS:other.test (mismatch, SNI)
#   expired.pem expired.key  SAN localhost + 127.0.0.1, notAfter yesterday
#   self.pem self.key        self-signed, SAN localhost + 127.0.0.1
#   client.pem client.key    CN=sockit test client, extendedKeyUsage clientAuth
#   otherca.pem otherca.key  "CN=sockit other CA", trusted by nobody
#   cadir/                   ca.pem as an OpenSSL hashed directory (<hash>.0)
# Quiet on success; on failure prints what failed and exits non-zero.
# OpenSSL 3.0's "x509 -req" has no -not_before/-not_after, so certificates are
# signed with "openssl ca", whose -startdate/-enddate set the validity exactly.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
if ! command -v openssl >/dev/null; then
    echo "make_certs.sh: the openssl command is not installed" >&2
    exit 1
fi
out=$1
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/sockit-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT

log=$work/log
# Runs openssl quietly; on failure shows its output and what it was doing.
ossl() {
    if ! openssl "$@" >"$log" 2>&1; then
        echo "make_certs.sh: openssl $* failed:" >&2
        cat "$log" >&2
        exit 1
    fi
}

when() { date -u -d "$1" +%Y%m%d%H%M%SZ; }
day_ago=$(when '1 day ago')
ten_years=$(when '10 years')

# One config for req and ca: no system openssl.cnf involved.
cat >"$work/openssl.cnf" <<CNF
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ca]
default_ca = test_ca
[test_ca]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = \$ENV::SAN
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[self_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
export OPENSSL_CONF=$work/openssl.cnf
export SAN=DNS:localhost # replaced per certificate below

newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

# ca NAME CN: a self-signed CA certificate, 10 years from a day ago.
make_ca() {
    ossl req -config "$OPENSSL_CONF" -x509 "${newkey[@]}" -keyout "$out/$1.key" \
        -out "$out/$1.pem" -subj "/CN=$2" -days 3700 -extensions v3_ca
}

# leaf NAME CN EXTENSIONS START END: a key and a certificate the test CA signs.
make_leaf() {
    ossl req -config "$OPENSSL_CONF" -new "${newkey[@]}" -keyout "$out/$1.key" \
        -out "$work/$1.csr" -subj "/CN=$2"
    ossl ca -config "$OPENSSL_CONF" -batch -notext -cert "$out/ca.pem" -keyfile "$out/ca.key" \
        -in "$work/$1.csr" -out "$out/$1.pem" -extensions "$3" -startdate "$4" -enddate "$5"
}

: >"$work/index.txt"
echo 1000 >"$work/serial"

make_ca ca "sockit test CA"
make_ca otherca "sockit other CA"

SAN="DNS:localhost,IP:127.0.0.1,IP:::1" make_leaf server localhost server_ext "$day_ago" "$ten_years"
SAN="DNS:other.test" make_leaf other other.test server_ext "$day_ago" "$ten_years"
SAN="DNS:localhost,IP:127.0.0.1" make_leaf expired localhost server_ext \
    "$(when '30 days ago')" "$day_ago"
make_leaf client "sockit test client" client_ext "$day_ago" "$ten_years"

ossl req -config "$OPENSSL_CONF" -x509 "${newkey[@]}" -keyout "$out/self.key" \
    -out "$out/self.pem" -subj "/CN=localhost" -days 3650 -extensions self_ext

mkdir -p "$out/cadir"
ossl x509 -in "$out/ca.pem" -noout -subject_hash
cp "$out/ca.pem" "$out/cadir/$(cat "$log").0"

chmod 600 "$out"/*.key

#!/usr/bin/env bash
# Regenerates the test certificates (EC P-256, 100-year validity). Run from this directory.
set -euo pipefail
ec() { openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$1"; }
ec ca.key
openssl req -x509 -new -key ca.key -days 36500 -subj "/CN=Pylon Test CA" -out ca.pem \
  -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign
leaf() { # name sans
  ec "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr"
  printf 'subjectAltName=%s\nbasicConstraints=CA:false\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 36500 -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}
leaf example "DNS:example.com,DNS:*.example.com"
leaf other "DNS:other.org,DNS:www.other.org"
leaf backend "DNS:backend.internal,DNS:alt.internal,URI:spiffe://cluster.local/ns/app/sa/backend"
leaf client "DNS:client"
rm -f ca.srl

#!/usr/bin/env bash
# Creates a self-signed certificate for secure.example.com and stores it as the TLS Secret
# pylon-https/secure-example-com that https.yaml's Gateway listener refers to.
#
#   examples/https/make-cert.sh            generate (once) and apply the Secret with kubectl
#   examples/https/make-cert.sh --print    generate (once) and print the Secret's YAML instead
#
# The key and certificate stay outside the repository, in $PYLON_CACHE/examples/https; curl
# trusts the certificate with --cacert "$PYLON_CACHE/examples/https/tls.crt".
set -euo pipefail
dir=${PYLON_CACHE:-$HOME/.cache/pylon}/examples/https
mkdir -p "$dir"
if [ ! -s "$dir/tls.crt" ] || [ ! -s "$dir/tls.key" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=secure.example.com" \
    -addext "subjectAltName=DNS:secure.example.com" \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
  chmod 600 "$dir/tls.key"
fi
secret() {
  kubectl create secret tls secure-example-com --namespace pylon-https \
    --cert "$dir/tls.crt" --key "$dir/tls.key" --dry-run=client -o yaml
}
case "${1:-}" in
  --print) secret ;;
  "") secret | kubectl apply -f - ;;
  *) echo "usage: $0 [--print]" >&2; exit 2 ;;
esac

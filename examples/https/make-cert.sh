#!/usr/bin/env bash
# Creates a self-signed certificate for secure.example.com and stores it as the TLS Secret
# pylon-https/secure-example-com that https.yaml's Gateway listener refers to.
#
#   examples/https/make-cert.sh            generate (once) and apply the Secret with kubectl
#   examples/https/make-cert.sh --print    generate (once) and print the Secret's YAML instead
#
# The key and certificate stay outside the repository, in $PYLON_CACHE/examples/https; curl
# trusts the certificate with --cacert "$PYLON_CACHE/examples/https/tls.crt".
# CERT_EXAMPLE, CERT_HOST, CERT_NAMESPACE and CERT_SECRET make it another example's (see
# examples/tls-passthrough/make-cert.sh).
set -euo pipefail
example=${CERT_EXAMPLE:-https}
host=${CERT_HOST:-secure.example.com}
namespace=${CERT_NAMESPACE:-pylon-https}
name=${CERT_SECRET:-secure-example-com}
dir=${PYLON_CACHE:-$HOME/.cache/pylon}/examples/$example
mkdir -p "$dir"
if [ ! -s "$dir/tls.crt" ] || [ ! -s "$dir/tls.key" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
  chmod 600 "$dir/tls.key"
fi
# Printed by hand (not `kubectl create --dry-run`) so --print works without kubectl.
secret() {
  cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: $name
  namespace: $namespace
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 <"$dir/tls.crt")
  tls.key: $(base64 -w0 <"$dir/tls.key")
YAML
}
case "${1:-}" in
  --print) secret ;;
  "") secret | kubectl apply -f - ;;
  *) echo "usage: $0 [--print]" >&2; exit 2 ;;
esac

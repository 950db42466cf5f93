#!/usr/bin/env bash
# Creates a self-signed certificate for passthrough.example.com and stores it as the TLS Secret
# pylon-tls-passthrough/passthrough-example-com, which the backend (not the Gateway) serves.
# Same options as examples/https/make-cert.sh; the files are in
# $PYLON_CACHE/examples/tls-passthrough.
set -euo pipefail
CERT_EXAMPLE=tls-passthrough CERT_HOST=passthrough.example.com CERT_NAMESPACE=pylon-tls-passthrough \
  CERT_SECRET=passthrough-example-com exec "$(dirname "$0")/../https/make-cert.sh" "$@"

#!/usr/bin/env bash
# Installs the Debian packages Pylon's tests and local cluster use, if any is missing.
# Idempotent and quiet when everything is already there.
set -euo pipefail
need=()
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v openssl >/dev/null || need+=(openssl)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3) # scripts/h2spec.sh's backend and report reader
command -v umoci >/dev/null || need+=(umoci)     # scripts/images-check.sh unpacks the images
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps: cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v go >/dev/null || { echo "deps: go is required" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true

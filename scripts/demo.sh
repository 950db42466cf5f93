#!/usr/bin/env bash
# `make demo`: from a bare Debian machine (no cluster, no Docker) to a request answered through a
# Pylon Gateway. Builds the pinned tools and Pylon, brings up the local cluster, installs Pylon
# with its Helm chart, applies examples/quickstart, waits for the Gateway to be Programmed, sends
# a request through it and prints the answer. Idempotent: every step leaves what already works
# alone, so running it again on a live cluster only re-checks and re-sends.
#
# Environment: PYLON_CACHE (default ~/.cache/pylon), PYLON_CLUSTER_DIR (/var/lib/pylon-cluster),
# PYLON_PROFILE (debug|release), DEMO_TIMEOUT (seconds each wait may take, default 180).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PYLON_CACHE=${PYLON_CACHE:-$HOME/.cache/pylon}
export PYLON_CLUSTER_DIR=${PYLON_CLUSTER_DIR:-/var/lib/pylon-cluster}
export PYLON_PROFILE=${PYLON_PROFILE:-debug}
timeout=${DEMO_TIMEOUT:-180}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() {
  echo "demo: $*" >&2
  exit 1
}

step "system packages"
bash scripts/deps.sh

step "pinned Kubernetes, etcd, CoreDNS and echo server (built once into $PYLON_CACHE)"
bash conformance/cluster/build-tools.sh

step "Pylon binaries ($PYLON_PROFILE)"
bash scripts/build.sh "$PYLON_PROFILE" --workspace --bins >/dev/null

step "local cluster"
# up.sh's last line is the shell line that points kubectl at the cluster.
env_line=$(bash conformance/cluster/up.sh | tail -n 1)
case $env_line in
export\ KUBECONFIG=*) eval "$env_line" ;;
*) fail "conformance/cluster/up.sh did not end with an export line (got: $env_line)" ;;
esac
command -v kubectl >/dev/null || fail "kubectl is not on PATH after: $env_line"

step "Pylon (Helm chart charts/pylon → namespace pylon-system)"
# Helm installs crds/ only on a first install and never upgrades them; applying them first keeps
# a re-run after a chart change current.
kubectl apply -f charts/pylon/crds/
bash scripts/helm.sh upgrade --install pylon charts/pylon \
  --namespace pylon-system --create-namespace --wait --timeout 3m

step "examples/quickstart"
kubectl apply -f examples/quickstart/
kubectl -n pylon-quickstart rollout status deployment/echo --timeout "${timeout}s"
if ! kubectl -n pylon-quickstart wait --for condition=Programmed gateway/quickstart --timeout "${timeout}s"; then
  kubectl -n pylon-quickstart get gateway quickstart -o yaml >&2
  fail "Gateway pylon-quickstart/quickstart is not Programmed after ${timeout}s (controller logs: kubectl -n pylon-system logs deploy/pylon-controller)"
fi
addr=$(kubectl -n pylon-quickstart get gateway quickstart -o jsonpath='{.status.addresses[0].value}')
[ -n "$addr" ] || fail "Gateway pylon-quickstart/quickstart is Programmed but has no address"

step "a request through the Gateway: curl http://$addr/hello"
# Programmed means the data plane acked its config; the first connection may still race the
# Service's load-balancer rules, so retry briefly before calling it a failure.
body=
for _ in $(seq 30); do
  if body=$(curl -sS --fail --max-time 5 "http://$addr/hello" 2>/dev/null); then
    break
  fi
  body=
  sleep 1
done
[ -n "$body" ] || fail "no answer from http://$addr/hello: $(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://$addr/hello" 2>&1)"
if command -v jq >/dev/null; then
  jq . <<<"$body"
  answered_ns=$(jq -r .namespace <<<"$body")
  [ "$answered_ns" = pylon-quickstart ] ||
    fail "the answer came from namespace '$answered_ns', not pylon-quickstart: $body"
else
  echo "$body"
fi

cat >&2 <<EOF

Pylon is serving http://$addr/ for the Gateway pylon-quickstart/quickstart.

Point kubectl at the cluster:
  $env_line
Try the other examples:  examples/README.md
Stop the cluster and remove everything it made:  make cluster-down
EOF

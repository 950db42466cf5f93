#!/usr/bin/env bash
# Control-plane benchmark (issue #15; not a test), in the style of gateway-api-bench: on the local
# cluster with the release binaries, one Gateway with one HTTP listener and two echo-basic
# backends; HTTPRoutes (one hostname each) are created by server-side apply in steps up to each
# of CP_BENCH_SIZES, and per size the driver (bench/controlplane/, Go) reports the time from the
# last create until the Gateway's attachedRoutes counts them and until all are Accepted and
# ResolvedRefs, the status writes per route, the propagation of a backendRef change to the data
# plane (p50/p99/max beside the API server's floor, a plain watch), the same under churn, the
# controller's and data plane's RSS, and a probe's failed requests. Ends with one `BENCH {json}`
# line. bench/README.md ("Control plane") describes it all.
#
# Tunables (environment): CP_BENCH_SIZES (1000,3000,5000), CP_BENCH_CHANGES (50),
# CP_BENCH_CHURN_RATE (10 routes/s), CP_BENCH_CHURN_LIFETIME (5s), CP_BENCH_WORKERS (16),
# CP_BENCH_QPS (50) / CP_BENCH_BURST (300): kubectl's client-side limits, CP_BENCH_PROBE_RPS
# (200), CP_BENCH_TIMEOUT (15m per size), CP_BENCH_CHANGE_TIMEOUT (60s), CP_BENCH_INSTALLED=1
# (skip `PYLON_PROFILE=release make install`: the cluster is up with Pylon installed),
# CP_BENCH_KEEP=1 (leave the namespace and its routes in place at exit).
set -euo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench/.." && pwd)
# shellcheck source=SCRIPTDIR/../conformance/cluster/versions.sh
source "$repo/conformance/cluster/versions.sh"
DIR=${PYLON_CLUSTER_DIR:-/var/lib/pylon-cluster}
export KUBECONFIG=$DIR/admin.kubeconfig PATH="$K8S_BIN:$PATH"

ns=cp-bench
probe_host=probe.cp-bench.example
out=$repo/target/cp-bench
say() { echo "cp-bench: $*" >&2; }
fail() { say "$*"; exit 1; }

# --- Pylon on the local cluster, release binaries ---------------------------------------------
# The podlet runs the binaries of the profile the cluster was started with (its PYLON_BIN_DIR,
# fixed at cluster-up): on a cluster started with the debug build, `make install` below would
# build release binaries and the Pods would still run debug ones.
podlet_pid=$(cat "${PYLON_CLUSTER_DIR:-/var/lib/pylon-cluster}/run/podlet.pid" 2>/dev/null) || true
podlet_bins=$(tr '\0' '\n' <"/proc/${podlet_pid:-0}/environ" 2>/dev/null | sed -n 's/^PYLON_BIN_DIR=//p') || true
if [ -n "$podlet_bins" ] && [[ "$podlet_bins" != */release ]]; then
  fail "the local cluster runs the binaries in $podlet_bins, not a release build: 'make cluster-down' first (the bench starts it again with release binaries)"
fi
if [ "${CP_BENCH_INSTALLED:-}" = 1 ]; then
  say "CP_BENCH_INSTALLED=1: using the cluster as it is"
else
  say "PYLON_PROFILE=release make install (release build, cluster up, chart installed)"
  PYLON_PROFILE=release make -C "$repo" --no-print-directory install >&2
  # The local cluster maps the chart's image to the host binary: a rebuilt binary under the same
  # tag changes no Pod spec, so controllers already running would keep the old one (their
  # /proc/PID/exe then reads "(deleted)"). Roll them so what is measured is what was built.
  say "restarting the controller so it runs the binary just built"
  kubectl -n pylon-system rollout restart deployment/pylon-controller >&2
  kubectl -n pylon-system rollout status deployment/pylon-controller --timeout 180s >&2
fi
{ [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; } ||
  fail "no local cluster answers at $KUBECONFIG: run 'PYLON_PROFILE=release make install' (or drop CP_BENCH_INSTALLED)"
kubectl wait --for condition=Accepted --timeout 60s gatewayclass/pylon >/dev/null ||
  fail "GatewayClass pylon is not Accepted: is Pylon installed (make install)?"

# --- the driver and the probe, built once per source hash outside the repository ---------------
# build NAME DIR: go build DIR into $PYLON_CACHE/bench/NAME-<hash of its sources and Go's version>.
build() {
  local name=$1 dir=$2 hash bin
  hash=$( (go version; cat "$dir/go.mod" "$dir"/go.sum "$dir"/*.go 2>/dev/null) | sha256sum | cut -c1-16)
  bin=$PYLON_CACHE/bench/$name-$hash/$name
  if [ ! -x "$bin" ]; then
    say "building $name into ${bin%/*}"
    mkdir -p "${bin%/*}"
    (cd "$dir" && go build -trimpath -o "$bin.tmp" . && mv "$bin.tmp" "$bin") >&2
  fi
  echo "$bin"
}
driver=$(build controlplane "$bench/controlplane")
probe=$(build probe "$repo/e2e/probe")

# --- setup: namespace, two echo-basic backends, the Gateway, the probe's route -----------------
# echo_backend comes from e2e/lib.sh (a Deployment and a Service on port 8080 whose answers name the
# Pod); its `here`/`repo` are this directory and the repository, as above.
# shellcheck source=SCRIPTDIR/../e2e/lib.sh
source "$repo/e2e/lib.sh"

driver_pid=
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local rc=$?
  if [ -n "$driver_pid" ]; then # interrupted: the driver prints its partial figures as it ends
    kill -TERM "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
    cat "$out/bench.out" 2>/dev/null || true
  fi
  if [ "${CP_BENCH_KEEP:-}" = 1 ]; then
    say "CP_BENCH_KEEP=1: namespace $ns left in place"
  elif kubectl get namespace "$ns" >/dev/null 2>&1; then
    say "deleting namespace $ns (its routes, backends and Gateway)"
    kubectl delete namespace "$ns" --timeout 300s >/dev/null 2>&1 ||
      say "namespace $ns is still terminating; check with: kubectl get namespace $ns"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if kubectl get namespace "$ns" >/dev/null 2>&1; then
  say "namespace $ns exists (an earlier run?): deleting it first"
  kubectl delete namespace "$ns" --timeout 300s >/dev/null
fi
say "setup: namespace $ns, backends echo-a and echo-b, Gateway gw (one HTTP listener), route probe"
kubectl create namespace "$ns" >/dev/null
{ echo_backend echo-a 1 "$ns"; echo_backend echo-b 1 "$ns"; cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: $ns}
spec:
  gatewayClassName: pylon
  listeners:
  - {name: http, protocol: HTTP, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: probe, namespace: $ns}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["$probe_host"]
  rules:
  - backendRefs: [{name: echo-a, port: 8080}]
YAML
} | kubectl apply --server-side -f - >/dev/null
kubectl -n "$ns" wait --for condition=Available --timeout 120s deployment/echo-a deployment/echo-b >/dev/null ||
  fail "the echo backends did not become Available"
kubectl -n "$ns" wait --for condition=Programmed --timeout 120s gateway/gw >/dev/null ||
  fail "Gateway gw is not Programmed: $(kubectl -n "$ns" get gateway gw -o jsonpath='{.status}')"
eventually 120 kubectl -n "$ns" rollout status --timeout 5s deployment/pylon-gw >/dev/null ||
  fail "the data plane (deployment/pylon-gw) did not roll out"
addr=$(kubectl -n "$ns" get gateway gw -o jsonpath='{.status.addresses[0].value}')
[ -n "$addr" ] || fail "Gateway gw has no address"
eventually 60 curl -sSf --max-time 2 -H "Host: $probe_host" "http://$addr/" >/dev/null ||
  fail "the probe route is not served through the Gateway at $addr"
# The curls made before kube-proxy had the address's rules left conntrack entries that were never
# NATed (SYN_SENT, UNREPLIED, up to 2 min): a probe connection that happens to reuse one's source
# port would follow it to no host and fail with EHOSTUNREACH. Nothing legitimate is in SYN_SENT now.
conntrack -D -p tcp -d "$addr" --state SYN_SENT >/dev/null 2>&1 || true
say "Gateway gw serves at $addr"

# --- the run ------------------------------------------------------------------------------------
mkdir -p "$out"
rm -f "$out/bench.out"
commit=$(git -C "$repo" rev-parse --short HEAD)
git -C "$repo" diff --quiet HEAD -- controller dataplane charts || commit="$commit+dirty"
say "driver: sizes ${CP_BENCH_SIZES:-1000,3000,5000}; failed probe requests are logged to $out/probe.err"
"$driver" -kubeconfig "$KUBECONFIG" -namespace "$ns" -gateway gw -listener http -addr "$addr" \
  -backends echo-a,echo-b -probe "$probe" -probe-host "$probe_host" -probe-log "$out/probe.err" \
  -podlet-dir "$DIR/podlet" -commit "$commit" \
  -sizes "${CP_BENCH_SIZES:-1000,3000,5000}" -changes "${CP_BENCH_CHANGES:-50}" \
  -churn-rate "${CP_BENCH_CHURN_RATE:-10}" -churn-lifetime "${CP_BENCH_CHURN_LIFETIME:-5s}" \
  -workers "${CP_BENCH_WORKERS:-16}" -qps "${CP_BENCH_QPS:-50}" -burst "${CP_BENCH_BURST:-300}" \
  -probe-rps "${CP_BENCH_PROBE_RPS:-200}" -timeout "${CP_BENCH_TIMEOUT:-15m}" \
  -change-timeout "${CP_BENCH_CHANGE_TIMEOUT:-60s}" >"$out/bench.out" &
# In the background so that a signal to this script reaches it at once (bash runs traps only
# between commands); on a signal the EXIT trap stops it, waits for it and prints its BENCH line.
driver_pid=$!
rc=0
wait "$driver_pid" || rc=$?
driver_pid=
cat "$out/bench.out"
exit "$rc"

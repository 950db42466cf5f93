#!/usr/bin/env bash
# Faults under load (issue #17): a steady probe through a Gateway with two data-plane replicas
# (150 requests/s on keep-alive connections and 50/s each on a new connection, e2e/probe)
# while a fault is injected; each check asserts that no request failed, and prints the figures
# (sent, failed, by kind) as notes. Faults: a data-plane rolling restart, one of two backend
# Pods force-deleted, every controller Pod force-deleted. Prints "N passed, N failed".
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ns=e2e-faults
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
host=faults.example.com

setup() {
  kubectl wait --for=delete "namespace/$ns" --timeout 120s >/dev/null 2>&1
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null || return 1
  { echo_backend web 2 "$ns"; cat <<YAML
apiVersion: pylon.dev/v1alpha1
kind: GatewayParameters
metadata: {name: two, namespace: $ns}
spec: {replicas: 2}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: $ns}
spec:
  gatewayClassName: pylon
  infrastructure:
    parametersRef: {group: pylon.dev, kind: GatewayParameters, name: two}
  listeners:
  - {name: http, protocol: HTTP, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: $ns}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["$host"]
  rules:
  - backendRefs: [{name: web, port: 8080}]
YAML
  } | kubectl apply -f - >/dev/null || return 1
  kubectl -n "$ns" wait --for condition=Available --timeout 120s deployment/web || return 1
  kubectl -n "$ns" wait --for condition=Programmed --timeout 120s gateway/gw || return 1
  eventually 120 kubectl -n "$ns" rollout status --timeout 5s deployment/pylon-gw || return 1
  addr=$(gateway_address)
  [ -n "$addr" ] || { echo "the Gateway has no address"; return 1; }
  eventually 30 curl -sSf --max-time 2 -H "Host: $host" "http://$addr/" >/dev/null
}

gateway_address() { kubectl -n "$ns" get gateway gw -o jsonpath='{.status.addresses[0].value}'; }
build_probe() { (cd "$here/probe" && go build -o "$tmp/probe" .); }

# under_load NAME CMD...: the probe runs, CMD injects the fault and waits for the system to
# settle; the probe then runs 5 s more and stops. Passes if no request failed.
under_load() {
  local name=$1 result; shift
  "$tmp/probe" -url "http://$addr/" -host "$host" -duration 300s >"$tmp/$name.out" 2>"$tmp/$name.err" &
  local probe=$!
  sleep 3
  "$@" || { kill "$probe"; wait "$probe"; echo "the fault did not complete"; return 1; }
  sleep 5
  kill -TERM "$probe"
  wait "$probe"
  result=$(cat "$tmp/$name.out")
  echo "note: $name: $result"
  grep -q ' failed=0 ' <<<"$result" || { head -20 "$tmp/$name.err"; return 1; }
}

rollout_restart() {
  kubectl -n "$ns" rollout restart deployment/pylon-gw >/dev/null &&
    kubectl -n "$ns" rollout status --timeout 180s deployment/pylon-gw >/dev/null &&
    # The old Pods' drain (delay + in-flight requests) ends after the rollout is "complete".
    eventually 60 bash -c "[ \$(kubectl -n $ns get pods -l gateway.networking.k8s.io/gateway-name=gw -o name | wc -l) -eq 2 ]" >/dev/null
}

backend_pod_killed() {
  local pod
  pod=$(kubectl -n "$ns" get pods -l app=web -o jsonpath='{.items[0].metadata.name}') || return 1
  kubectl -n "$ns" delete pod "$pod" --force --grace-period=0 >/dev/null 2>&1 || return 1
  eventually 120 kubectl -n "$ns" wait --for condition=Available --timeout 5s deployment/web >/dev/null &&
    sleep 5
}

controllers_killed() {
  kubectl -n pylon-system delete pods -l app.kubernetes.io/component=controller \
    --force --grace-period=0 >/dev/null 2>&1 || return 1
  eventually 120 kubectl -n pylon-system rollout status --timeout 5s deployment/pylon-controller >/dev/null
}

teardown() { kubectl delete namespace "$ns" --wait=false >/dev/null; }

check "probe built (e2e/probe)" build_probe
check "two backend Pods, a Gateway with two data-plane replicas, serving" setup
addr=$(gateway_address)
check "data-plane rolling restart: no request fails" under_load rollout rollout_restart
check "one of two backend Pods force-deleted: no request fails" under_load backend-killed backend_pod_killed
check "every controller Pod force-deleted: no request fails" under_load controllers-killed controllers_killed
check "namespace deleted" teardown
summary

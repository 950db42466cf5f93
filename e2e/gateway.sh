#!/usr/bin/env bash
# End-to-end test of Pylon on the local cluster (issue #4): with Pylon installed (`make install`),
# a GatewayClass + Gateway + HTTPRoute yield a programmed Gateway with an address whose data plane
# routes real requests to echo-basic Pods; a route update propagates (the time is printed); an
# invalid route gets a precise condition and leaves the valid one serving; deleting the Gateway
# removes its data plane; the config stream is TLS (provisioned CA) and authenticated; HPA and PDB
# follow GatewayParameters. Prints "N passed, N failed".
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ns=e2e-gateway
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

backend() { echo_backend "$1" 1 "$ns"; } # NAME: an echo-basic Deployment and Service
route() { # NAME HOSTNAME BACKEND
  cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: $1, namespace: $ns}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["$2"]
  rules:
  - backendRefs: [{name: $3, port: 8080}]
YAML
}

controller_ready() {
  kubectl get gatewayclass pylon >/dev/null || return 1
  kubectl wait --for condition=Accepted --timeout 60s gatewayclass/pylon
}
setup() {
  # An earlier run's namespace may still be terminating; reusing it would fail every check.
  kubectl wait --for=delete "namespace/$ns" --timeout 120s >/dev/null 2>&1
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  { backend web-v1; backend web-v2; cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: $ns}
spec:
  gatewayClassName: pylon
  listeners:
  - {name: http, protocol: HTTP, port: 80}
---
YAML
  route web e2e.example.com web-v1; } | kubectl apply -f - >/dev/null || return 1
  kubectl -n "$ns" wait --for condition=Available --timeout 120s deployment/web-v1 deployment/web-v2
}
gateway_programmed() {
  kubectl -n "$ns" wait --for condition=Programmed --timeout 120s gateway/gw || {
    kubectl -n "$ns" get gateway gw -o yaml; return 1; }
  [ -n "$(gateway_address)" ] || { echo "Gateway has no address"; return 1; }
}
gateway_address() { kubectl -n "$ns" get gateway gw -o jsonpath='{.status.addresses[0].value}'; }
serves_pod() { # HOST PREFIX: a request for HOST is answered by a Pod whose name starts with PREFIX
  local body
  body=$(curl -sS --max-time 3 -H "Host: $1" "http://$addr/e2e") || return 1
  echo "$body" | jq -e --arg p "$2" '.pod | startswith($p)' >/dev/null || { echo "$body"; return 1; }
}
route_condition_true() { # ROUTE TYPE: the route's (first) parent has condition TYPE=True
  kubectl -n "$ns" get httproute "$1" -o json |
    jq -e --arg t "$2" '.status.parents[0].conditions[] | select(.type == $t and .status == "True")'
}
route_accepted() {
  eventually 30 route_condition_true web Accepted >/dev/null &&
    eventually 30 route_condition_true web ResolvedRefs >/dev/null ||
    { kubectl -n "$ns" get httproute web -o jsonpath='{.status}'; return 1; }
}
update_propagates() {
  local t0 t1
  t0=$(date +%s%N)
  route web e2e.example.com web-v2 | kubectl apply -f - >/dev/null || return 1
  for _ in $(seq 1 600); do
    if serves_pod e2e.example.com web-v2- >/dev/null 2>&1; then
      t1=$(date +%s%N)
      echo "note: route update propagated in $(((t1 - t0) / 1000000)) ms (kubectl apply → first request served by it)"
      return 0
    fi
    sleep 0.01
  done
  echo "never served by web-v2"; return 1
}
invalid_route_isolated() {
  route broken broken.example.com no-such-service | kubectl apply -f - >/dev/null || return 1
  eventually 30 bash -c "kubectl -n $ns get httproute broken -o json |
    jq -e '.status.parents[0].conditions[] | select(.type==\"ResolvedRefs\" and .status==\"False\" and .reason==\"BackendNotFound\")'" || return 1
  serves_pod e2e.example.com web-v2-
}
config_stream_status() { # TOKEN: HTTP status of a config stream request to the controller,
  # over TLS verified with the CA the provisioner gave the Gateway (curl fails on a bad cert).
  local ip code
  ip=$(kubectl -n pylon-system get service pylon-controller -o jsonpath='{.spec.clusterIP}')
  kubectl -n "$ns" get configmap pylon-gw -o jsonpath='{.data.ca\.crt}' >"$tmp/ca.crt" || return 1
  code=$(curl -sS --max-time 2 -o /dev/null -w '%{http_code}' --cacert "$tmp/ca.crt" \
    --resolve "pylon-controller.pylon-system.svc:18000:$ip" ${1:+-H "Authorization: Bearer $1"} \
    "https://pylon-controller.pylon-system.svc:18000/v1/gateways/$ns/gw/config?pod=e2e")
  echo "$code"
}
config_stream_secured() {
  local none other own
  none=$(config_stream_status "") || return 1
  other=$(config_stream_status "$(kubectl -n "$ns" create token default)")
  own=$(config_stream_status "$(kubectl -n "$ns" create token pylon-gw)")
  echo "no token: $none, another ServiceAccount: $other, the data plane's: $own"
  [ "$none" = 401 ] && [ "$other" = 403 ] && [ "$own" = 200 ]
}
autoscaling_and_budget() {
  kubectl apply -f - >/dev/null <<YAML || return 1
apiVersion: pylon.dev/v1alpha1
kind: GatewayParameters
metadata: {name: scaled, namespace: $ns}
spec:
  resources: {requests: {cpu: 50m}}
  autoscaling: {minReplicas: 1, maxReplicas: 3}
  podDisruptionBudget: {maxUnavailable: 1}
YAML
  kubectl -n "$ns" patch gateway gw --type merge \
    -p '{"spec":{"infrastructure":{"parametersRef":{"group":"pylon.dev","kind":"GatewayParameters","name":"scaled"}}}}' >/dev/null || return 1
  eventually 60 kubectl -n "$ns" get hpa/pylon-gw pdb/pylon-gw -o name || return 1
  # Removing the settings removes the objects.
  kubectl -n "$ns" patch gateway gw --type json -p '[{"op":"remove","path":"/spec/infrastructure"}]' >/dev/null || return 1
  eventually 60 bash -c "[ -z \"\$(kubectl -n $ns get hpa,pdb -o name)\" ]"
}
delete_removes_dataplane() {
  kubectl -n "$ns" delete gateway gw --timeout 60s >/dev/null || return 1
  eventually 60 bash -c "[ -z \"\$(kubectl -n $ns get deployments,services -l gateway.networking.k8s.io/gateway-name=gw -o name)\" ]"
}

check "controller installed and GatewayClass pylon Accepted" controller_ready
# The packaged chart's own test (templates/tests/check.yaml: `pylon-controller check` in a Pod,
# as the controller's ServiceAccount) passes, as `helm test` shows a user.
helm_test() {
  local out
  out=$(bash "$repo/scripts/helm.sh" test pylon -n pylon-system --timeout 2m 2>&1) || { echo "$out"; return 1; }
  grep -q 'Phase: *Succeeded' <<<"$out" || { echo "$out"; return 1; }
}
check "helm test: the chart's check Pod succeeds" helm_test
check "backends and Gateway applied" setup
check "Gateway Programmed with an address" gateway_programmed
addr=$(gateway_address)
check "HTTPRoute Accepted and ResolvedRefs" route_accepted
check "request through the Gateway reaches echo-basic" eventually 30 serves_pod e2e.example.com web-v1-
check "route update propagates" update_propagates
check "invalid route gets BackendNotFound, valid route keeps serving" invalid_route_isolated
check "config stream: TLS with the provisioned CA; no token 401, other token 403, own 200" config_stream_secured
check "GatewayParameters autoscaling and PDB create an HPA and a PDB; removing them deletes both" autoscaling_and_budget
check "deleting the Gateway removes its data plane" delete_removes_dataplane
kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
summary

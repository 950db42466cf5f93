#!/usr/bin/env bash
# End-to-end test of the local cluster itself (issue #2): real Pods from the conformance base
# manifests become Ready, serve traffic by Pod IP, ClusterIP and LoadBalancer IP, their logs are
# readable through the API server, namespaces finalize, and cluster-down leaves nothing behind.
# Expects `make cluster-up` to have run. Prints "N passed, N failed".
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

base=$(cd "$repo/conformance/suite" && go mod download -json "sigs.k8s.io/gateway-api/conformance@$GATEWAY_API_VERSION" | jq -r .Dir)/base/manifests.yaml
namespaces=(gateway-conformance-infra gateway-conformance-app-backend gateway-conformance-web-backend)

# The suite creates the TLS backends' certificates itself at setup; do the same here so those
# Pods can start (self-signed for abc.example.com is all the backends need to serve).
tls_secret() { # NAMESPACE NAME
  local tmp; tmp=$(mktemp -d)
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=abc.example.com \
    -addext subjectAltName=DNS:abc.example.com -keyout "$tmp/key" -out "$tmp/crt" 2>/dev/null
  kubectl -n "$1" create secret tls "$2" --cert "$tmp/crt" --key "$tmp/key" --dry-run=client -o yaml |
    kubectl apply -f - >/dev/null
  rm -rf "$tmp"
}
apply_base() {
  sed 's/{GATEWAY_CLASS_NAME}/pylon/g' "$base" | kubectl apply -f - >/dev/null || return 1
  tls_secret gateway-conformance-infra tls-checks-certificate
  tls_secret gateway-conformance-infra tls-passthrough-checks-certificate
  tls_secret gateway-conformance-app-backend tls-passthrough-checks-certificate
}
pods_ready() {
  for ns in "${namespaces[@]}"; do
    kubectl -n "$ns" wait --for condition=Ready pods --all --timeout 180s || {
      kubectl -n "$ns" get pods -o wide; return 1; }
  done
}
echo_json() { # URL: the response must be echo-basic's JSON naming a pod
  local body
  body=$(curl -fsS --max-time 5 "$1") || return 1
  echo "$body" | jq -e '.pod | length > 0' >/dev/null || { echo "no pod in: $body"; return 1; }
  echo "$body"
}
pod_ip_answers() {
  local pod ip body
  pod=$(kubectl -n gateway-conformance-infra get pods -l app=infra-backend-v1 -o jsonpath='{.items[0].metadata.name}')
  ip=$(kubectl -n gateway-conformance-infra get pod "$pod" -o jsonpath='{.status.podIP}')
  body=$(echo_json "http://$ip:3000/e2e-pod-ip") || return 1
  [ "$(echo "$body" | jq -r .pod)" = "$pod" ] || { echo "expected pod $pod, got: $body"; return 1; }
}
cluster_ip_answers() {
  local ip body
  ip=$(kubectl -n gateway-conformance-infra get svc infra-backend-v1 -o jsonpath='{.spec.clusterIP}')
  body=$(echo_json "http://$ip:8080/e2e-cluster-ip") || return 1
  echo "$body" | jq -e '.pod | startswith("infra-backend-v1-")' >/dev/null || { echo "wrong pod: $body"; return 1; }
}
logs_show_request() {
  local marker=e2e-logs-$RANDOM$RANDOM pod ip
  pod=$(kubectl -n gateway-conformance-infra get pods -l app=infra-backend-v2 -o jsonpath='{.items[0].metadata.name}')
  ip=$(kubectl -n gateway-conformance-infra get pod "$pod" -o jsonpath='{.status.podIP}')
  curl -fsS --max-time 5 "http://$ip:3000/$marker" >/dev/null || return 1
  for _ in $(seq 1 20); do
    kubectl -n gateway-conformance-infra logs "$pod" | grep -q "$marker" && return 0
    sleep 0.5
  done
  echo "marker $marker not in logs of $pod:"; kubectl -n gateway-conformance-infra logs "$pod" --tail 5
  return 1
}
load_balancer_answers() {
  kubectl -n gateway-conformance-infra apply -f - >/dev/null <<YAML || return 1
apiVersion: v1
kind: Service
metadata: {name: e2e-lb, namespace: gateway-conformance-infra}
spec:
  type: LoadBalancer
  selector: {app: infra-backend-v1}
  ports: [{port: 80, targetPort: 3000}]
YAML
  local ip=""
  for _ in $(seq 1 60); do
    ip=$(kubectl -n gateway-conformance-infra get svc e2e-lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
    [ -n "$ip" ] && break
    sleep 0.5
  done
  [ -n "$ip" ] || { echo "no load-balancer address assigned"; return 1; }
  for _ in $(seq 1 20); do  # kube-proxy programs the rule asynchronously
    echo_json "http://$ip/e2e-lb" >/dev/null && return 0
    sleep 0.5
  done
  echo_json "http://$ip/e2e-lb"
}
namespace_finalizes() {
  kubectl create namespace e2e-finalize >/dev/null || return 1
  kubectl -n e2e-finalize create deployment web --image "$ECHO_BASIC_IMAGE" >/dev/null || return 1
  kubectl -n e2e-finalize wait --for condition=Available deployment/web --timeout 120s >/dev/null || return 1
  kubectl delete namespace e2e-finalize --timeout 120s >/dev/null
}
unmapped_image_reported() {
  kubectl create namespace e2e-bad-image >/dev/null 2>&1
  kubectl -n e2e-bad-image run nope --image example.com/no-such-image:1 >/dev/null || return 1
  local reason=""
  for _ in $(seq 1 60); do
    reason=$(kubectl -n e2e-bad-image get pod nope -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}')
    [ "$reason" = ErrImagePull ] && break
    sleep 0.5
  done
  kubectl delete namespace e2e-bad-image --wait=false >/dev/null
  [ "$reason" = ErrImagePull ] || { echo "waiting reason: '$reason'"; return 1; }
}

check "conformance base manifests apply" apply_base
check "every conformance Pod Ready within 3 minutes" pods_ready
check "Pod IP answers with echo-basic JSON naming the Pod" pod_ip_answers
check "ClusterIP Service answers" cluster_ip_answers
check "kubectl logs shows the request" logs_show_request
check "LoadBalancer Service gets an address that answers" load_balancer_answers
check "unmapped image leaves the Pod Waiting with ErrImagePull" unmapped_image_reported
check "deleting a namespace finalizes" namespace_finalizes
# The conformance suite generates its own certificates: Pods left running here would keep serving
# this script's (their TLS servers read the certificate once), so the suite must start from none.
check "conformance namespaces removed for the suite" \
  kubectl delete namespace "${namespaces[@]}" --ignore-not-found --timeout 180s

summary

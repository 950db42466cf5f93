#!/usr/bin/env bash
# End-to-end test of `helm uninstall` (issue #21): after the other e2e tests, uninstalling the
# release removes everything the chart created and leaves exactly what charts/pylon/README.md
# says it keeps: the config CA Secret (created by the controller, not the chart) and the CRDs.
# Runs last in `make e2e`: Pylon is not installed afterwards. Prints "N passed, N failed".
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

release_objects() { # what still carries the release's labels, cluster-wide
  kubectl get deployments,services,serviceaccounts,pods,poddisruptionbudgets,roles,rolebindings,configmaps \
    -A -l app.kubernetes.io/instance=pylon,app.kubernetes.io/managed-by=Helm -o name 2>/dev/null
  kubectl get clusterroles,clusterrolebindings,gatewayclasses \
    -l app.kubernetes.io/instance=pylon,app.kubernetes.io/managed-by=Helm -o name 2>/dev/null
}
uninstall() {
  [ -n "$(release_objects)" ] || { echo "nothing of the release found before uninstalling"; return 1; }
  bash "$repo/scripts/helm.sh" uninstall pylon -n pylon-system --wait --timeout 2m
}
none_left() { [ -z "$(release_objects)" ]; }
nothing_left() {
  eventually 60 none_left >/dev/null || { echo "left behind:"; release_objects; return 1; }
  # The controller's Pods are gone too (they carry the labels; checked by name as well).
  [ -z "$(kubectl -n pylon-system get pods -o name 2>/dev/null)" ] || {
    kubectl -n pylon-system get pods; return 1; }
}
kept_as_documented() {
  kubectl -n pylon-system get secret pylon-config-ca -o name >/dev/null || {
    echo "the config CA Secret was removed; the README says it is kept"; return 1; }
  kubectl get crd gatewayparameters.pylon.dev -o name >/dev/null || {
    echo "the GatewayParameters CRD was removed; Helm keeps crds/"; return 1; }
}

check "helm uninstall succeeds" uninstall
check "nothing the chart created is left" nothing_left
check "the config CA Secret and the CRDs are kept, as documented" kept_as_documented
summary

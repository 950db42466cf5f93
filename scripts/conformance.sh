#!/usr/bin/env bash
# Runs the upstream Gateway API v1.5.1 conformance suite against the Pylon installed in the
# cluster KUBECONFIG points at (`make cluster-up` + the Helm chart), prints the summary and
# checks for regressions against the committed report.
#
#   scripts/conformance.sh [runner flags...]     e.g. -run-test HTTPRouteSimpleSameNamespace
#
# Environment: GATEWAY_CLASS (pylon), CONTROLLER_NAME (pylon.dev/gateway-controller),
# PYLON_VERSION (the workspace version), USABLE_ADDRESS / UNUSABLE_ADDRESS (GatewayStaticAddresses).
#
# A full run rewrites conformance/reports/v1.5.1/pylon-{report,tests}.yaml so newly passing
# tests can be committed. A filtered run (-run-test, -skip-tests, -fail-fast) leaves them alone.
# Exit status: 0 no regression, 1 a test that passes in the committed report does not pass now
# (or the suite could not run), 2 bad setup.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=../conformance/cluster/versions.sh
source "$repo/conformance/cluster/versions.sh"

GATEWAY_CLASS=${GATEWAY_CLASS:-pylon}
CONTROLLER_NAME=${CONTROLLER_NAME:-pylon.dev/gateway-controller}
PYLON_VERSION=${PYLON_VERSION:-$(awk -F'"' '/^version = / { print $2; exit }' "$repo/Cargo.toml")}
report_dir=$repo/conformance/reports/$GATEWAY_API_VERSION
report_rel=conformance/reports/$GATEWAY_API_VERSION/pylon-report.yaml
tests_rel=conformance/reports/$GATEWAY_API_VERSION/pylon-tests.yaml

die() { echo "conformance: $1" >&2; exit "${2:-2}"; }
# Default to the local cluster's admin kubeconfig (make cluster-up), as make recipes can't eval.
local_kubeconfig=${PYLON_CLUSTER_DIR:-/var/lib/pylon-cluster}/admin.kubeconfig
if [ -z "${KUBECONFIG:-}" ] && [ -f "$local_kubeconfig" ]; then export KUBECONFIG=$local_kubeconfig; fi
[ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set; start the cluster with 'make cluster-up' and eval the line it prints"
[ -x "$K8S_BIN/kubectl" ] && PATH="$K8S_BIN:$PATH"
command -v kubectl >/dev/null || die "kubectl not found (make tools builds it into $K8S_BIN)"
kubectl get --raw /readyz >/dev/null 2>&1 || die "the API server behind $KUBECONFIG is not ready"
kubectl get crd gateways.gateway.networking.k8s.io >/dev/null 2>&1 ||
  die "the Gateway API CRDs are not installed (make cluster-up installs them)"

# The runner is rebuilt every time; Go's build cache makes that a few seconds when nothing changed.
runner=$GATEWAY_API_BIN/pylon-conformance
mkdir -p "$GATEWAY_API_BIN"
(cd "$repo/conformance/suite" && go build -trimpath -o "$runner" .)

# The GatewayClass the suite's Gateways use; the chart normally creates it.
if ! kubectl get gatewayclass "$GATEWAY_CLASS" >/dev/null 2>&1; then
  echo "conformance: creating GatewayClass $GATEWAY_CLASS ($CONTROLLER_NAME)"
  kubectl apply -f - <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: $GATEWAY_CLASS
spec:
  controllerName: $CONTROLLER_NAME
YAML
fi
actual=$(kubectl get gatewayclass "$GATEWAY_CLASS" -o jsonpath='{.spec.controllerName}')
[ "$actual" = "$CONTROLLER_NAME" ] ||
  die "GatewayClass $GATEWAY_CLASS belongs to controller '$actual', not $CONTROLLER_NAME"
echo "conformance: waiting for GatewayClass $GATEWAY_CLASS to be Accepted"
kubectl wait --for=condition=Accepted "gatewayclass/$GATEWAY_CLASS" --timeout=180s >/dev/null ||
  die "GatewayClass $GATEWAY_CLASS was not Accepted within 180s; is the controller running? (kubectl -n pylon-system get pods)" 1

partial=0
for arg in "$@"; do
  case $arg in -run-test* | --run-test* | -skip-tests* | --skip-tests* | -fail-fast* | --fail-fast*) partial=1 ;; esac
done

# GatewayStaticAddresses needs an address the implementation can give a Gateway and one it can't:
# on the local cluster, one from its load balancer's pool (the podlet, 10.245.0.0/24) and one
# outside it (TEST-NET-1).
extra=()
if [ -z "${USABLE_ADDRESS:-}" ] && [ "$KUBECONFIG" = "$local_kubeconfig" ]; then USABLE_ADDRESS=10.245.0.250; fi
if [ -z "${UNUSABLE_ADDRESS:-}" ] && [ "$KUBECONFIG" = "$local_kubeconfig" ]; then UNUSABLE_ADDRESS=192.0.2.1; fi
[ -z "${USABLE_ADDRESS:-}" ] || extra+=(-usable-address "$USABLE_ADDRESS")
[ -z "${UNUSABLE_ADDRESS:-}" ] || extra+=(-unusable-address "$UNUSABLE_ADDRESS")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "conformance: running the suite (Pylon $PYLON_VERSION, GatewayClass $GATEWAY_CLASS)"
set +e
(cd "$repo" && "$runner" -gateway-class "$GATEWAY_CLASS" -version "$PYLON_VERSION" \
  -report-output "$work/pylon-report.yaml" -results-output "$work/pylon-tests.yaml" ${extra[@]+"${extra[@]}"} "$@") 2>&1 |
  tee "$work/suite.log"
rc=${PIPESTATUS[0]}
set -e
# Failing tests make the runner exit 1; that alone is not a CI failure (the regression check is).
# No report at all means the suite never got through setup.
if [ ! -s "$work/pylon-report.yaml" ] || [ ! -s "$work/pylon-tests.yaml" ]; then
  die "the suite did not produce a report (runner exit $rc); see the log above" 1
fi

# The baseline is the committed report, as in git HEAD (not the working tree).
baseline=()
if [ "$partial" = 1 ] && printf '%s\n' "$@" | grep -q -- 'fail-fast'; then
  echo "conformance: -fail-fast run, regression check skipped"
else
  if git -C "$repo" cat-file -e "HEAD:$tests_rel" 2>/dev/null; then
    git -C "$repo" show "HEAD:$tests_rel" >"$work/baseline-tests.yaml"
    baseline+=(-baseline-results "$work/baseline-tests.yaml")
  fi
  if git -C "$repo" cat-file -e "HEAD:$report_rel" 2>/dev/null; then
    git -C "$repo" show "HEAD:$report_rel" >"$work/baseline-report.yaml"
    baseline+=(-baseline-report "$work/baseline-report.yaml")
  fi
fi

echo
set +e
"$runner" summary -report "$work/pylon-report.yaml" -results "$work/pylon-tests.yaml" \
  -markdown "$work/table.md" ${baseline[@]+"${baseline[@]}"} |
  tee "$work/summary.txt"
check=${PIPESTATUS[0]}
set -e

# A regression is re-run once, alone, before it fails the check: on a 2-core machine a test
# can lose a timing race it wins in isolation. Such a test is reported as flaky, never hidden.
if [ "$check" = 1 ] && [ "$partial" = 0 ]; then
  regressed=$(sed -n 's/^REGRESSION: [0-9]* test(s) passed in the committed report and do not pass now: //p' "$work/summary.txt" | tr -d ',')
  if [ -n "$regressed" ]; then
    still=()
    for t in $regressed; do
      # The previous run's base namespaces are still being deleted; the suite cannot create
      # its objects in a terminating namespace.
      kubectl wait --for=delete namespace/gateway-conformance-infra namespace/gateway-conformance-app-backend \
        namespace/gateway-conformance-web-backend --timeout=180s >/dev/null 2>&1 || true
      echo "conformance: re-running $t alone"
      if (cd "$repo" && "$runner" -gateway-class "$GATEWAY_CLASS" -version "$PYLON_VERSION" -run-test "$t" \
        -report-output "$work/rerun-report.yaml" -results-output "$work/rerun-tests.yaml" ${extra[@]+"${extra[@]}"}) \
        >"$work/rerun-$t.log" 2>&1; then
        echo "conformance: FLAKY: $t failed in the full run and passed alone"
      else
        tail -n 40 "$work/rerun-$t.log"
        still+=("$t")
      fi
    done
    if [ ${#still[@]} -eq 0 ]; then check=0; else echo "conformance: REGRESSION confirmed: ${still[*]}"; fi
  fi
fi

if [ "$partial" = 0 ]; then
  mkdir -p "$report_dir"
  cp "$work/pylon-report.yaml" "$report_dir/pylon-report.yaml"
  cp "$work/pylon-tests.yaml" "$report_dir/pylon-tests.yaml"
  # The README's table is generated from this report, never typed: replace what lies between
  # its markers.
  readme=$repo/README.md
  begin='<!-- conformance-table:begin -->' end='<!-- conformance-table:end -->'
  if grep -qF "$begin" "$readme" && grep -qF "$end" "$readme"; then
    awk -v begin="$begin" -v end="$end" -v table="$work/table.md" '
      $0 == begin { print; while ((getline line < table) > 0) print line; skip = 1; next }
      $0 == end { skip = 0 }
      !skip { print }' "$readme" >"$work/README.md"
    cp "$work/README.md" "$readme"
  fi
  echo "conformance: report written to $report_rel (commit it with $tests_rel and README.md)"
else
  keep=${PYLON_CONFORMANCE_OUT:-$PYLON_CACHE/conformance-last}
  mkdir -p "$keep" && cp "$work"/pylon-*.yaml "$work/suite.log" "$keep/"
  echo "conformance: filtered run; committed report left alone, this run's files are in $keep"
fi
[ "$check" = 0 ] || exit "$check"

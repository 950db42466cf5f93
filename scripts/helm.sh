#!/usr/bin/env bash
# Builds helm from its Go module (pinned in conformance/cluster/tools/helm/go.mod) into
# $PYLON_CACHE/tools/helm-<version>/bin/helm, once per version, and prints its path.
#
#   scripts/helm.sh            build if needed, print the helm binary's path
#   scripts/helm.sh lint       helm lint --strict + helm template of charts/pylon with the
#                              default values and each charts/pylon/ci/*-values.yaml, and checks
#                              that invalid values are rejected; fails on any error
#   scripts/helm.sh sync-crds  copy the Gateway API CRDs (pinned module) into the chart, for
#                              gatewayAPI.installCRDs=true from a source checkout
#   scripts/helm.sh package    the chart as users get it: target/chart/pylon-<version>.tgz (the
#                              Gateway API CRDs synced in first), linted; prints its path.
#                              `make install` (and so every e2e test) installs this package
#   scripts/helm.sh ARGS...    run helm with ARGS (e.g. scripts/helm.sh version)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
mod_dir=$repo/conformance/cluster/tools/helm

# The version is whatever the wrapper module requires, so the pin lives in one place (go.mod).
HELM_VERSION=$(awk '$1 == "helm.sh/helm/v3" { print $2 }' "$mod_dir/go.mod")
[ -n "$HELM_VERSION" ] || { echo "helm.sh: $mod_dir/go.mod does not require helm.sh/helm/v3" >&2; exit 1; }
PYLON_CACHE=${PYLON_CACHE:-$HOME/.cache/pylon}
out=$PYLON_CACHE/tools/helm-$HELM_VERSION/bin
helm=$out/helm

# Like helm's own Makefile: the Kubernetes version helm assumes offline (helm template, lint)
# is the one its client-go is built for (v0.N → 1.N), not the 1.20 compiled into the source.
k8s_minor=$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$mod_dir/go.mod")
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
# The stamp records the flags it was built with, so a change to them rebuilds.
if [ "$(cat "$out/.complete" 2>/dev/null)" != "$ldflags" ]; then
  echo "helm.sh: building helm $HELM_VERSION into $out (once per version)" >&2
  start=$SECONDS
  mkdir -p "$out"
  (cd "$mod_dir" && go build -trimpath -ldflags "$ldflags" -o "$helm" helm.sh/helm/v3/cmd/helm)
  echo "$ldflags" >"$out/.complete"
  echo "helm.sh: helm built in $((SECONDS - start))s" >&2
fi

# helm keeps its config, cache and repositories under these; keep them out of $HOME's defaults
# so a developer's own helm setup neither leaks in nor gets touched.
export HELM_CONFIG_HOME=${HELM_CONFIG_HOME:-$PYLON_CACHE/helm/config}
export HELM_CACHE_HOME=${HELM_CACHE_HOME:-$PYLON_CACHE/helm/cache}
export HELM_DATA_HOME=${HELM_DATA_HOME:-$PYLON_CACHE/helm/data}

chart=$repo/charts/pylon

sync_crds() {
  local version src dest=$chart/files/gateway-api-crds
  version=$(awk '$1 == "sigs.k8s.io/gateway-api" { print $2 }' "$repo/conformance/suite/go.mod")
  src=$(cd "$repo/conformance/suite" && go mod download -json "sigs.k8s.io/gateway-api@$version" | jq -r .Dir)/config/crd/experimental
  rm -rf "$dest" && mkdir -p "$dest"
  # CRDs only: the directory also holds a ValidatingAdmissionPolicy and a kustomization.
  grep -l '^kind: CustomResourceDefinition$' "$src"/*.yaml | xargs -I{} cp {} "$dest/"
  chmod u+w "$dest"/*.yaml
  echo "helm.sh: $(ls "$dest" | wc -l) Gateway API $version CRDs copied into $dest" >&2
}

# Renders the chart with the given values files and validates the output offline: schemas of
# the built-in kinds and the Gateway API CRDs (CEL included), and references between objects
# (Service selectors and ports, RBAC bindings). See conformance/suite/manifestcheck.
render_and_check() {
  local rendered
  rendered=$("$helm" template pylon "$chart" --namespace pylon-system "$@") || return 1
  "$checker" -gateway-class none - <<<"$rendered"
}

lint() {
  local fail=0 values out
  checker=$PYLON_CACHE/tools/pylon-dev/bin/check-manifests
  (cd "$repo/conformance/suite" && go build -o "$checker" ./cmd/check-manifests)
  "$helm" lint --strict "$chart" || fail=1
  echo "==> default values"
  render_and_check || { echo "helm template failed with the default values" >&2; fail=1; }
  for values in "$chart"/ci/*-values.yaml; do
    case $values in *crds*) [ -d "$chart/files/gateway-api-crds" ] || sync_crds ;; esac
    echo "==> $(basename "$values")"
    "$helm" lint --strict "$chart" -f "$values" >/dev/null || { echo "helm lint failed with $values" >&2; fail=1; }
    render_and_check -f "$values" || { echo "helm template failed with $values" >&2; fail=1; }
  done
  # Bad values must be refused with a message naming the problem.
  for bad in "$chart"/ci/invalid/*.yaml; do
    want=$(sed -n 's/^# expect: //p' "$bad")
    if out=$("$helm" template pylon "$chart" -f "$bad" 2>&1); then
      echo "helm.sh lint: $(basename "$bad") was accepted; it must fail with: $want" >&2; fail=1
    elif ! grep -qF -- "$want" <<<"$out"; then
      echo "helm.sh lint: $(basename "$bad") failed without naming the problem ($want):" >&2; echo "$out" >&2; fail=1
    fi
  done
  [ "$fail" = 0 ] && echo "helm.sh lint: charts/pylon OK"
  return "$fail"
}

package() {
  local dest=$repo/target/chart version
  version=$(sed -n 's/^version: *//p' "$chart/Chart.yaml")
  [ -d "$chart/files/gateway-api-crds" ] || sync_crds
  rm -rf "$dest" && mkdir -p "$dest"
  "$helm" package "$chart" --destination "$dest" >&2
  [ -f "$dest/pylon-$version.tgz" ] || { echo "helm.sh package: no $dest/pylon-$version.tgz" >&2; return 1; }
  # What a user installs must lint like the source, with the CRDs it carries.
  "$helm" lint --strict "$dest/pylon-$version.tgz" >&2
  "$helm" lint --strict "$dest/pylon-$version.tgz" --set gatewayAPI.installCRDs=true >&2
  echo "$dest/pylon-$version.tgz"
}

case "${1:-}" in
  "") echo "$helm" ;;
  lint) lint ;;
  package) package ;;
  sync-crds) sync_crds ;;
  *) exec "$helm" "$@" ;;
esac

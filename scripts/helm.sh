#!/usr/bin/env bash
# Builds helm from its Go module (pinned in conformance/cluster/tools/helm/go.mod) into
# $PYLON_CACHE/tools/helm-<version>/bin/helm, once per version, and prints its path.
#
#   scripts/helm.sh            build if needed, print the helm binary's path
#   scripts/helm.sh lint       helm lint + helm template of charts/pylon with default and
#                              non-default values; fails on any error
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

if [ ! -f "$out/.complete" ]; then
  echo "helm.sh: building helm $HELM_VERSION into $out (once per version)" >&2
  start=$SECONDS
  mkdir -p "$out"
  (cd "$mod_dir" && go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    -o "$helm" helm.sh/helm/v3/cmd/helm)
  touch "$out/.complete"
  echo "helm.sh: helm built in $((SECONDS - start))s" >&2
fi

# helm keeps its config, cache and repositories under these; keep them out of $HOME's defaults
# so a developer's own helm setup neither leaks in nor gets touched.
export HELM_CONFIG_HOME=${HELM_CONFIG_HOME:-$PYLON_CACHE/helm/config}
export HELM_CACHE_HOME=${HELM_CACHE_HOME:-$PYLON_CACHE/helm/cache}
export HELM_DATA_HOME=${HELM_DATA_HOME:-$PYLON_CACHE/helm/data}

case "${1:-}" in
  "") echo "$helm" ;;
  lint) exec bash "$repo/charts/pylon/ci/lint.sh" "$helm" ;;
  *) exec "$helm" "$@" ;;
esac

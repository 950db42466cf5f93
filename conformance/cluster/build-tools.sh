#!/usr/bin/env bash
# Builds the local cluster's pinned Go tools into $PYLON_CACHE/tools/<tool>-<version>/bin.
# Each tool is built once per version and wrapper source: a `.complete` stamp holds a hash of the
# wrapper module that built it, so a warm run costs nothing and a changed wrapper rebuilds. The Go module cache and build cache are Go's own (outside the repository).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

# Every wrapper go.mod must require the version versions.sh names; a mismatch is a half-done pin move.
check_pin() { # module-dir module version ('+' escaped: h2spec's is v2.2.1+incompatible)
  grep -qE "^(require )?[[:space:]]*$2 ${3//+/\\+}\$" "$1/go.mod" ||
    { echo "build-tools: $1/go.mod does not require $2 $3 (versions.sh); move the pins together" >&2; exit 1; }
}
check_pin "$here/tools/kubernetes" k8s.io/kubernetes "$K8S_VERSION"
check_pin "$here/tools/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_pin "$here/tools/coredns" github.com/coredns/coredns "$COREDNS_VERSION"
check_pin "$here/tools/h2spec" github.com/summerwind/h2spec "$H2SPEC_VERSION"

build() { # name out-dir module-dir ldflags packages...
  local name=$1 out=$2 dir=$3 ldflags=$4; shift 4
  local stamp
  stamp=$(cat "$dir/go.mod" "$dir/go.sum" "$dir"/*.go 2>/dev/null | sha256sum | cut -c1-16)
  if [ "$(cat "$out/.complete" 2>/dev/null)" = "$stamp" ]; then return; fi
  echo "build-tools: building $name into $out (once per version)"
  local start=$SECONDS
  mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out/" "$@")
  echo "$stamp" >"$out/.complete"
  echo "build-tools: $name built in $((SECONDS - start))s"
}

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
k8s_ld=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
build kubernetes "$K8S_BIN" "$here/tools/kubernetes" "$k8s_ld" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
build etcd "$ETCD_BIN" "$here/tools/etcd" "" .
build coredns "$COREDNS_BIN" "$here/tools/coredns" "" .
build gateway-api "$GATEWAY_API_BIN" "$repo/conformance/suite" "" \
  sigs.k8s.io/gateway-api/conformance/echo-basic
# h2spec's own Makefile sets its version this way (the source says 2.0.0).
h2spec_release=${H2SPEC_VERSION#v}
build h2spec "$H2SPEC_BIN" "$here/tools/h2spec" "-X main.VERSION=${h2spec_release%+incompatible}" \
  github.com/summerwind/h2spec/cmd/h2spec

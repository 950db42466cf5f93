#!/usr/bin/env bash
# Verifies that cluster-down left nothing behind: no process, netns, veth, bridge, route,
# iptables chain or mount of the local cluster. Prints "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"

passed=0 failed=0
expect_none() { # WHAT OUTPUT
  if [ -z "$2" ]; then passed=$((passed + 1)); echo "ok   - no $1 left"
  else failed=$((failed + 1)); echo "FAIL - $1 left behind:"; echo "$2" | sed 's/^/       /'; fi
}
cluster_processes() { # every running process whose executable is one the cluster runs
  local exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "${exe##*/}" in
      etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|coredns|echo-basic|pylon-podlet|pylon-dataplane|pylon-controller)
        echo "${p#/proc/} $exe" ;;
    esac
  done
}
expect_none "cluster processes" "$(cluster_processes)"
expect_none "network namespaces" "$(ip netns list 2>/dev/null)"
expect_none "bridge $BRIDGE" "$(ip link show "$BRIDGE" 2>/dev/null)"
expect_none "veth interfaces" "$(ip -o link show type veth 2>/dev/null)"
expect_none "routes to cluster ranges" "$(ip route show | grep -E "^(10\.96\.|10\.245\.|10\.244\.)")"
expect_none "iptables chains" "$(iptables-save 2>/dev/null | grep -E '^:(KUBE-|PYLON-)' | grep -vE '^:KUBE-(KUBELET-CANARY|FIREWALL|PROXY-CANARY|KUBELET)')"
expect_none "mounts of the cluster" "$(grep -E " ($DIR|/run/netns)" /proc/self/mounts)"
expect_none "state directory $DIR" "$(ls -d "$DIR" 2>/dev/null)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

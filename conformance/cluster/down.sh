#!/usr/bin/env bash
# Stops the local cluster and removes everything up.sh made: processes, Pod network and mount
# namespaces, veths, the bridge, routes, kube-proxy's iptables rules and the state directory.
# Safe to run when nothing is up.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"

stop() { # NAME: SIGTERM its session, then SIGKILL after 10 s
  local pid
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$DIR/run/$1.pid"
}

# The podlet first, so it stops restarting Pods; then it removes what it made for them.
stop podlet
if [ -x "$PODLET" ]; then
  "$PODLET" cleanup --state-dir "$DIR/podlet" --bridge "$BRIDGE" || echo "cluster-down: podlet cleanup reported errors" >&2
fi
for name in kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$name"; done

# kube-proxy's own cleanup removes its iptables chains and rules.
if [ -x "$K8S_BIN/kube-proxy" ]; then
  "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
fi

iptables -D FORWARD -j PYLON-EGRESS 2>/dev/null
iptables -F PYLON-EGRESS 2>/dev/null && iptables -X PYLON-EGRESS

# Anything still attached to the bridge belongs to a Pod of ours.
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for link in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$link" 2>/dev/null || true
  done
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip route del "$LB_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip link del "$BRIDGE"
fi

# Mounts under the state directory (volumes) must go before the directory does.
if [ -d "$DIR" ]; then
  grep -F " $DIR/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$DIR"
fi
echo "cluster-down: done" >&2

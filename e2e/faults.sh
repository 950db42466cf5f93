#!/usr/bin/env bash
# Faults under load (issue #17): a steady probe through a Gateway with two data-plane replicas
# (150 requests/s on keep-alive connections and 50/s each on a new connection, e2e/probe)
# while a fault is injected; each check asserts that no request failed, and prints the figures
# (sent, failed, by kind) as notes. Faults: a data-plane rolling restart, one of two backend
# Pods force-deleted, every controller Pod force-deleted, a data-plane Pod killed with SIGKILL
# (only requests sent to it may fail: counted, reported), the kube-apiserver killed and
# started again, the controller scaled to 0 with a route edited meanwhile, the config streams cut
# between controller and data planes, and a `helm upgrade` of Pylon. Where the fault leaves
# the control plane to catch up (API server, controller down, streams cut, upgrade), a route
# edit made during or after it must then be served. Prints "N passed, N failed".
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
YAML
    route_yaml
  } | kubectl apply -f - >/dev/null || return 1
  kubectl -n "$ns" wait --for condition=Available --timeout 120s deployment/web || return 1
  kubectl -n "$ns" wait --for condition=Programmed --timeout 120s gateway/gw || return 1
  eventually 120 kubectl -n "$ns" rollout status --timeout 5s deployment/pylon-gw || return 1
  addr=$(gateway_address)
  [ -n "$addr" ] || { echo "the Gateway has no address"; return 1; }
  eventually 30 curl -sSf --max-time 2 -H "Host: $host" "http://$addr/" >/dev/null
}

# route_yaml [VALUE]: the route, answering with header x-edit: VALUE when VALUE is given.
route_yaml() {
  cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: $ns}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["$host"]
  rules:
  - backendRefs: [{name: web, port: 8080}]
YAML
  if [ -n "${1:-}" ]; then
    cat <<YAML
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-edit, value: "$1"}]}
YAML
  fi
}
edit_route() { route_yaml "$1" | kubectl apply -f - >/dev/null; }
# served_edit VALUE: the Gateway answers with the edit VALUE (every data-plane replica, as far
# as a few requests on new connections reach both).
served_edit() {
  local i
  for i in 1 2 3 4; do
    curl -sS --max-time 2 -o /dev/null -D - -H "Host: $host" "http://$addr/" | grep -qi "^x-edit: $1" || return 1
  done
}

gateway_address() { kubectl -n "$ns" get gateway gw -o jsonpath='{.status.addresses[0].value}'; }
build_probe() { (cd "$here/probe" && go build -o "$tmp/probe" .); }

# record NAME: what the Gateway's EndpointSlices and Pods did while NAME ran, a timestamped
# line per watch event into $tmp/NAME.history (shown when the check fails: a rare failure is
# explained by what moved at its moment, see issue #17's "no route to host").
recorders=()
record() {
  local kind
  for kind in endpointslices pods; do
    kubectl -n "$ns" get "$kind" -w --watch-only -o wide 2>&1 \
      > >(while IFS= read -r line; do echo "$(date +%T.%3N) $kind $line"; done >>"$tmp/$1.history") &
    recorders+=($!)
  done
}
record_stop() { kill "${recorders[@]}" 2>/dev/null; recorders=(); }

# under_load NAME CMD...: the probe runs, CMD injects the fault and waits for the system to
# settle; the probe then runs 5 s more and stops. Passes if no request failed, or, with
# ALLOWED="kind ...", if every failure is of one of those kinds (reported as a note).
under_load() {
  local name=$1 result kind; shift
  "$tmp/probe" -url "http://$addr/" -host "$host" -duration 300s >"$tmp/$name.out" 2>"$tmp/$name.err" &
  local probe=$!
  record "$name"
  sleep 3
  "$@" || { kill "$probe"; wait "$probe"; record_stop; echo "the fault did not complete"; return 1; }
  sleep 5
  kill -TERM "$probe"
  wait "$probe"
  record_stop
  result=$(cat "$tmp/$name.out")
  echo "note: $name: $result"
  grep -q ' failed=0 ' <<<"$result" && return 0
  # The failure kinds follow the counts: "... new_sent=N kind=N kind=N".
  local unexpected
  unexpected=$(sed -E 's/^.*new_sent=[0-9]+//' <<<"$result")
  for kind in ${ALLOWED:-}; do unexpected=$(sed -E "s/ $kind=[0-9]+//" <<<"$unexpected"); done
  if [ -n "${ALLOWED:-}" ] && ! grep -qE '[a-z_0-9]+=[0-9]+' <<<"$unexpected"; then
    echo "note: $name: the failures are all of kinds allowed here ($ALLOWED)"
    return 0
  fi
  # With UNNATED_OK: connections that failed with EHOSTUNREACH because no DNAT rule caught their
  # SYN never reached a data plane. The proof is the host's connection tracking: the entry's
  # reply comes from the Gateway address itself, not from a Pod. Only then, and only if
  # every failure is of that kind, the fault is the local cluster's load balancer (kube-proxy
  # rewriting its rules when the API server comes back), not Pylon's; it is reported either way.
  if [ -n "${UNNATED_OK:-}" ] && ! grep -qE '[a-z_0-9]+=[0-9]+' <<<"$(sed -E 's/ unreachable=[0-9]+//' <<<"$unexpected")"; then
    local unnated
    unnated=$(conntrack -L -p tcp -d "$addr" 2>/dev/null |
      awk -v a="src=$addr" '/UNREPLIED/ { for (i = 1; i < NF; i++) if ($i == "[UNREPLIED]" && $(i + 1) == a) n++ } END { print n + 0 }')
    if [ "$unnated" -gt 0 ]; then
      echo "note: $name: every failure is EHOSTUNREACH, and $unnated SYN(s) to $addr were never DNATed (conntrack reply from the address itself): the cluster's load balancer had no rule, no data plane saw them"
      return 0
    fi
  fi
  head -10 "$tmp/$name.err"
  echo "--- what moved (EndpointSlices, Pods):"
  tail -n 10 "$tmp/$name.history"
  echo "--- connections to $addr the host still tracks, other than TIME_WAIT:"
  conntrack -L -p tcp -d "$addr" 2>/dev/null | grep -v TIME_WAIT | tail -n 5
  return 1
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

# The host pids of the containers of Pod $1 in $ns that still run: the podlet records each
# container's `pid starttime executable` in <state>/pods/<uid>/pids.
pod_pids() {
  local uid pid start _
  uid=$(kubectl -n "$ns" get pod "$1" -o jsonpath='{.metadata.uid}') || return 1
  while read -r pid start _; do
    [ "$(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null)" = "$start" ] && echo "$pid"
  done <"$DIR/podlet/pods/$uid/pids"
}
dataplane_pods() { kubectl -n "$ns" get pods -l gateway.networking.k8s.io/gateway-name=gw -o jsonpath='{.items[*].metadata.name}'; }

# One data-plane Pod's process dies (SIGKILL): the requests in flight on it are lost; the Pod is
# restarted by the podlet and serves again.
dataplane_killed() {
  local pod pids
  pod=$(dataplane_pods | awk '{print $1}')
  pids=$(pod_pids "$pod") && [ -n "$pids" ] || { echo "no process found for Pod $pod"; return 1; }
  # shellcheck disable=SC2086 # one pid per word
  kill -KILL $pids
  eventually 60 kubectl -n "$ns" wait --for condition=Ready --timeout 5s "pod/$pod" >/dev/null &&
    eventually 60 kubectl -n "$ns" rollout status --timeout 5s deployment/pylon-gw >/dev/null &&
    sleep 3
}

# The kube-apiserver is killed and started again with the same command line, 10 s later; the
# controller's watches resume (an edit made after is served).
apiserver_restarted() {
  local pid args
  pid=$(cat "$DIR/run/kube-apiserver.pid") || return 1
  mapfile -d '' args <"/proc/$pid/cmdline"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  sleep 10
  run kube-apiserver "${args[@]}"
  eventually 120 kubectl get --raw /readyz >/dev/null || { echo "the API server did not come back"; return 1; }
  local c
  for c in kube-controller-manager kube-scheduler kube-proxy podlet; do
    alive "$c" || { echo "$c exited while the API server was down"; return 1; }
  done
  edit_route apiserver || return 1
  eventually 60 served_edit apiserver >/dev/null || { echo "an edit after the API server restart was not served"; return 1; }
}

# The controller at 0 replicas for 45 s with a route edited meanwhile: the data planes keep
# serving their last config, and the edit is served once the controller is back.
controller_down() {
  local replicas
  replicas=$(kubectl -n pylon-system get deployment pylon-controller -o jsonpath='{.spec.replicas}')
  kubectl -n pylon-system scale deployment/pylon-controller --replicas 0 >/dev/null || return 1
  eventually 60 bash -c "[ -z \"\$(kubectl -n pylon-system get pods -l app.kubernetes.io/component=controller -o name)\" ]" >/dev/null
  edit_route down || return 1
  sleep 45
  served_edit down && { echo "the edit was served with no controller running"; return 1; }
  kubectl -n pylon-system scale deployment/pylon-controller --replicas "$replicas" >/dev/null &&
    eventually 120 kubectl -n pylon-system rollout status --timeout 5s deployment/pylon-controller >/dev/null &&
    eventually 60 served_edit down >/dev/null || { echo "the edit was not served after the controller came back"; return 1; }
}

# The config streams are cut (every data plane's connection to the controller reset, and new
# ones refused for 10 s) while a route is edited: the data planes keep serving, reconnect, and
# get the edit.
streams_cut() {
  local pod pid
  for pod in $(dataplane_pods); do
    pid=$(pod_pids "$pod" | head -1)
    [ -n "$pid" ] || { echo "no process found for Pod $pod"; return 1; }
    nsenter -t "$pid" -n iptables -I OUTPUT -p tcp --dport 18000 -j REJECT --reject-with tcp-reset || return 1
    nsenter -t "$pid" -n ss -K state established '( dport = :18000 )' >/dev/null || return 1
  done
  edit_route cut || return 1
  sleep 10
  served_edit cut && { echo "the edit was served with the streams cut"; return 1; }
  for pod in $(dataplane_pods); do
    pid=$(pod_pids "$pod" | head -1)
    nsenter -t "$pid" -n iptables -D OUTPUT -p tcp --dport 18000 -j REJECT --reject-with tcp-reset || return 1
  done
  eventually 60 served_edit cut >/dev/null || { echo "the edit was not served after the streams came back"; return 1; }
}

# `helm upgrade` of the installed release (new Pod annotations: the controller rolls), with
# traffic flowing; an edit after it is served.
helm_upgrade() {
  local chart
  chart=$(bash "$repo/scripts/helm.sh" package) || return 1
  bash "$repo/scripts/helm.sh" upgrade pylon "$chart" --namespace pylon-system --reuse-values \
    --set-string "controller.podAnnotations.e2e-upgrade=$(date +%s)" --wait --timeout 3m >/dev/null || return 1
  edit_route upgraded || return 1
  eventually 60 served_edit upgraded >/dev/null || { echo "an edit after the upgrade was not served"; return 1; }
}

teardown() { kubectl delete namespace "$ns" --wait=false >/dev/null; }

check "probe built (e2e/probe)" build_probe
check "two backend Pods, a Gateway with two data-plane replicas, serving" setup
addr=$(gateway_address)
check "data-plane rolling restart: no request fails" under_load rollout rollout_restart
check "one of two backend Pods force-deleted: no request fails" under_load backend-killed backend_pod_killed
check "every controller Pod force-deleted: no request fails" under_load controllers-killed controllers_killed
# Lost with the Pod: requests in flight on it (eof, reset), and new connections dialed to its
# address in the ~50 ms before kube-proxy drops it (refused; a cloud load balancer has the same
# window until its health check fails). Nothing else: no timeouts, no 5xx.
ALLOWED="eof reset refused" check "a data-plane Pod killed (SIGKILL): only requests sent to it fail" \
  under_load dataplane-killed dataplane_killed
# kube-proxy rewrites its rules when the API server is back; a SYN caught between them is not
# DNATed (issue #17): tolerated only with that proof (UNNATED_OK, see under_load).
UNNATED_OK=1 check "kube-apiserver killed and restarted: no request fails, an edit after is served" \
  under_load apiserver-restarted apiserver_restarted
check "controller at 0 replicas for 45 s, a route edited meanwhile: no request fails, the edit is served after" \
  under_load controller-down controller_down
check "config streams cut for 10 s, a route edited meanwhile: no request fails, the edit is served after" \
  under_load streams-cut streams_cut
check "helm upgrade of Pylon: no request fails, an edit after is served" under_load helm-upgrade helm_upgrade
check "namespace deleted" teardown
summary

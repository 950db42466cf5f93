#!/usr/bin/env bash
# End-to-end test of the examples (issue #6): with Pylon installed on the local cluster, applies
# each example and sends the requests its examples/README.md section shows, checking the answers.
# Uses the e2e check runner (e2e/lib.sh); prints "N passed, N failed". Run after `make cluster-up`
# and installing the chart; EXAMPLES_TIMEOUT (seconds, default 120) bounds each wait.
set -uo pipefail
# shellcheck source=../e2e/lib.sh
source "$(dirname "$0")/../e2e/lib.sh"
examples=$repo/examples
timeout=${EXAMPLES_TIMEOUT:-120}
cert_dir=$(mktemp -d)

# ready DIR NS GATEWAY: the example's Deployments (in whatever namespaces) are available and its
# Gateway is Programmed with an address.
ready() {
  local d
  for d in $(kubectl get -f "$examples/$1/" \
    -o jsonpath='{range .items[?(@.kind=="Deployment")]}{.metadata.namespace}/{.metadata.name}{" "}{end}'); do
    kubectl -n "${d%/*}" wait --for condition=Available "deployment/${d#*/}" --timeout "${timeout}s" >/dev/null || return 1
  done
  kubectl -n "$2" wait --for condition=Programmed "gateway/$3" --timeout "${timeout}s" >/dev/null ||
    { kubectl -n "$2" get gateway "$3" -o yaml; return 1; }
  [ -n "$(kubectl -n "$2" get gateway "$3" -o jsonpath='{.status.addresses[0].value}')" ] ||
    { echo "Gateway $2/$3 has no address"; return 1; }
}
apply() { kubectl apply -f "$examples/$1/" >/dev/null; }
# field HOST PATH JQ WANT [curl args...]: the echo answer's JQ field equals WANT.
field() {
  local host=$1 path=$2 expr=$3 want=$4 body got; shift 4
  body=$(curl -sS --max-time 5 -H "Host: $host" "$@" "http://$addr$path") || return 1
  got=$(jq -r "$expr" <<<"$body") || { echo "$body"; return 1; }
  [ "$got" = "$want" ] || { echo "$expr = '$got', want '$want' in: $body"; return 1; }
}
# location HOST PATH WANT: a 301 whose Location is WANT.
location() {
  local head
  head=$(curl -sS --max-time 5 -o /dev/null -D - -H "Host: $1" "http://$addr$2") || return 1
  grep -q '^HTTP/[0-9.]* 301' <<<"$head" || { echo "$head"; return 1; }
  grep -qi "^location: $3"$'\r'"\?$" <<<"$head" || { echo "$head"; return 1; }
}

quickstart() { field "" /hello '.namespace + " " + .path' "pylon-quickstart /hello"; }
# listener-sets: team A's hostname comes from its ListenerSet and reaches its echo; the Gateway's
# own hostname has no route (404), and the ListenerSet reports Programmed.
listener_set_serves() { field team-a.example.com /team-a .service echo-team-a; }
listener_set_isolated() {
  local code
  code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H 'Host: platform.example.com' "http://$addr/team-a")
  [ "$code" = 404 ] || { echo "platform.example.com answered $code, want 404"; return 1; }
  kubectl -n pylon-listenersets wait --for condition=Programmed listenerset/team-a --timeout 30s >/dev/null &&
    [ "$(kubectl -n pylon-listenersets get gateway shared -o jsonpath='{.status.attachedListenerSets}')" = 1 ]
}
canary_split() {
  local n canary
  canary=0
  for n in $(seq 200); do
    [ "$(curl -sS --max-time 5 -H 'Host: canary.example.com' "http://$addr/" | jq -r .service)" = echo-canary ] &&
      canary=$((canary + 1))
  done
  echo "canary served $canary of 200 requests (weight 10%)" >&2
  # 10% of 200 is 20, standard deviation ~4.2: 5..45 fails only on a broken split.
  [ "$canary" -ge 5 ] && [ "$canary" -le 45 ]
}
canary_pinned() { field canary.example.com / .service echo-canary -H 'x-canary: always'; }
matching() {
  field match.example.com / .service echo-v1 &&
    field match.example.com / .service echo-v2 -H 'env: staging' &&
    field match.example.com '/?version=3' .service echo-v3
}
redirects() {
  location redirect.example.com /old/page http://redirect.example.com/new/page &&
    location secure.example.com /x https://secure.example.com/x
}
rewrite() { field redirect.example.com /api/users '.path + " " + .host' "/users backend.internal"; }
https_serves() {
  local body
  body=$(curl -sS --max-time 5 --cacert "$cert_dir/examples/https/tls.crt" \
    --resolve "secure.example.com:443:$addr" https://secure.example.com/) || return 1
  [ "$(jq -r .namespace <<<"$body")" = pylon-https ] || { echo "$body"; return 1; }
}
https_redirect() { location secure.example.com / https://secure.example.com/; }
# The backend's own certificate answers through the Gateway: the handshake was relayed untouched.
passthrough_serves() {
  local body
  body=$(curl -sS --max-time 5 --cacert "$cert_dir/examples/tls-passthrough/tls.crt" \
    --resolve "passthrough.example.com:443:$addr" https://passthrough.example.com/) || return 1
  [ "$(jq -r .namespace <<<"$body")" = pylon-tls-passthrough ] || { echo "$body"; return 1; }
}
# A name no TLSRoute takes gets no backend: the connection is closed before any answer.
passthrough_unknown_name() {
  if curl -sSk --max-time 5 --resolve "other.example.com:443:$addr" https://other.example.com/ 2>&1; then
    echo "other.example.com was answered"; return 1
  fi
  return 0
}
# echo-basic's TCP server greets each connection, then answers TEST with a JSON line naming it.
tcp_echo() {
  local reply
  reply=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/9000" && read -r _ <&3 && echo TEST >&3 && read -r line <&3 &&
    echo "$line"' "$addr") || return 1
  [ "$(jq -r .namespace <<<"$reply")" = pylon-tcp ] || { echo "reply: $reply"; return 1; }
}
# route_accepted KIND NS NAME: the route's status says Accepted=True for its Gateway (written at
# the version the CRD serves: TCPRoute and UDPRoute are v1alpha2 in v1.5.1).
route_accepted() {
  kubectl -n "$2" get "$1" "$3" -o json |
    jq -e '.status.parents[0].conditions[] | select(.type == "Accepted" and .status == "True")' >/dev/null ||
    { kubectl -n "$2" get "$1" "$3" -o jsonpath='{.status}'; return 1; }
}
# A DNS query for whoami.example.com (id 0x1234) through the UDP listener: CoreDNS answers it,
# with the id, QR set and RCODE 0 (NOERROR).
udp_dns() {
  local reply
  reply=$(timeout 5 bash -c 'exec 3<>"/dev/udp/$0/5300" &&
    printf "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06whoami\x07example\x03com\x00\x00\x01\x00\x01" >&3 &&
    dd bs=512 count=1 <&3 2>/dev/null | od -An -tx1 -v' "$addr" | tr -d ' \n') || return 1
  case $reply in 1234[89a-f]?[0-9a-f]0*) ;; *) echo "reply: '$reply'"; return 1 ;; esac
}
grpc_echo() {
  # An empty EchoRequest is a 5-byte gRPC frame (uncompressed, length 0); the reply names the pod.
  local out
  out=$(printf '\0\0\0\0\0' | curl -sS --max-time 5 --http2-prior-knowledge -H 'Host: grpc.example.com' \
    -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- \
    "http://$addr/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo" | tr -c '[:print:]' ' ') || return 1
  grep -q 'grpc-echo-' <<<"$out" || { echo "reply: $out"; return 1; }
}
mirrored() {
  local path=/mirror-check-$RANDOM
  field mirror.example.com "$path" .service echo || return 1
  eventually 30 bash -c "kubectl -n pylon-mirroring logs deploy/echo-mirror | grep -q 'request made to $path'"
}
cross_namespace() { field app.example.com / .namespace pylon-xns-backend; }
grant_required() {
  kubectl -n pylon-xns-backend delete referencegrant allow-app-routes >/dev/null || return 1
  eventually 30 bash -c "kubectl -n pylon-xns-app get httproute app -o json | jq -e '.status.parents[0].conditions[] |
    select(.type == \"ResolvedRefs\" and .status == \"False\" and .reason == \"RefNotPermitted\")'" >/dev/null
  local rc=$?
  apply cross-namespace
  return $rc
}

# example DIR NS GATEWAY: apply the example (the HTTPS one with its certificate), check that it
# becomes ready, and point $addr at its Gateway for the checks that follow.
setup_example() {
  apply "$1" || return 1
  case $1 in https | tls-passthrough)
    PYLON_CACHE=$cert_dir "$examples/$1/make-cert.sh" >/dev/null || return 1 ;;
  esac
  ready "$@"
}
example() {
  check "$1: applied, Deployments available, Gateway $2/$3 Programmed with an address" setup_example "$@"
  addr=$(kubectl -n "$2" get gateway "$3" -o jsonpath='{.status.addresses[0].value}' 2>/dev/null)
}
# expect NAME CMD...: a check on the current example's Gateway; fails at once when it has no address.
expect() {
  local name=$1; shift
  if [ -n "$addr" ]; then check "$name" "$@"; else check "$name" not_ready; fi
}
not_ready() { echo "not run: the example's Gateway has no address"; return 1; }

# A previous run's namespaces may still be terminating; applying into them would be refused.
not_terminating() {
  local ns
  for ns in $(grep -h -A3 '^kind: Namespace' "$examples"/*/*.yaml | sed -n 's/^  name: //p'); do
    [ "$(kubectl get namespace "$ns" -o jsonpath='{.status.phase}' 2>/dev/null)" != Terminating ] ||
      { echo "namespace $ns is still terminating"; return 1; }
  done
}
check "no example namespace left terminating by an earlier run" eventually "$timeout" not_terminating

addr=""
example quickstart pylon-quickstart quickstart
expect "quickstart: request reaches echo" eventually 30 quickstart

example canary pylon-canary canary
expect "canary: header pins the canary" eventually 30 canary_pinned
expect "canary: ~10% of requests reach the canary" canary_split

example header-query-routing pylon-matching matching
expect "header-query-routing: default, header and query rules" eventually 30 matching

example redirects-rewrites pylon-redirects redirects
expect "redirects-rewrites: path and scheme redirects" eventually 30 redirects
expect "redirects-rewrites: prefix and host rewrite" eventually 30 rewrite

example https pylon-https https
expect "https: TLS with the generated certificate" eventually 30 https_serves
expect "https: http redirected to https" eventually 30 https_redirect

example tls-passthrough pylon-tls-passthrough passthrough
expect "tls-passthrough: the backend's certificate and answer, by SNI" eventually 30 passthrough_serves
expect "tls-passthrough: a name no route takes is closed" passthrough_unknown_name

example tcp pylon-tcp tcp
expect "tcp: the echo server's answer through the TCP listener" eventually 30 tcp_echo
expect "tcp: the TCPRoute is Accepted" eventually 30 route_accepted tcproute pylon-tcp echo

example udp pylon-udp udp
expect "udp: a DNS query answered through the UDP listener" eventually 30 udp_dns
expect "udp: the UDPRoute is Accepted" eventually 30 route_accepted udproute pylon-udp dns

example grpc pylon-grpc grpc
expect "grpc: GrpcEcho/Echo answered by the gRPC backend" eventually 30 grpc_echo

example mirroring pylon-mirroring mirroring
expect "mirroring: answered by echo, copy logged by echo-mirror" mirrored

example listener-sets pylon-listenersets shared
expect "listener-sets: team A's ListenerSet hostname reaches its backend" eventually 30 listener_set_serves
expect "listener-sets: the Gateway's own hostname has no route; ListenerSet Programmed, attached" listener_set_isolated

example cross-namespace pylon-xns-infra shared
expect "cross-namespace: route in another namespace reaches the backend" eventually 30 cross_namespace
expect "cross-namespace: without the ReferenceGrant, RefNotPermitted" grant_required

for d in quickstart canary header-query-routing redirects-rewrites https tls-passthrough tcp udp grpc mirroring listener-sets cross-namespace; do
  kubectl delete -f "$examples/$d/" --wait=false >/dev/null 2>&1
done
rm -rf "$cert_dir"
summary

#!/usr/bin/env bash
# Starts Pylon's local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kube-proxy (iptables), the podlet (Pods as processes) and CoreDNS, with the Gateway API CRDs.
# Idempotent: what already runs and answers is left alone. The last line of output is a shell
# line to eval. Stop everything with down.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"

start=$SECONDS
mkdir -p "$DIR/run" "$DIR/logs"
bash "$here/pki.sh" "$DIR" "$NODE_IP" "$NODE_NAME"
pki=$DIR/pki
export KUBECONFIG=$DIR/admin.kubeconfig PATH="$K8S_BIN:$PATH"

# --- host network: the bridge every Pod's veth hangs off, and routes that keep virtual IPs local
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
fi
ip addr replace "$NODE_IP/16" dev "$BRIDGE"
ip link set "$BRIDGE" up
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1
# Service and load-balancer IPs exist only as kube-proxy DNAT rules. Routing them to the bridge
# gives the host's connect() a source address and, should a rule be missing, keeps the packet on
# this machine (nobody on the bridge answers ARP for it).
ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
ip route replace "$LB_CIDR" dev "$BRIDGE"
# Pods talk to each other, to Services (DNAT-ed to Pods before forwarding) and to the node; never
# beyond this machine. (Some conformance backends are configured with public resolvers.)
iptables -N PYLON-EGRESS 2>/dev/null || iptables -F PYLON-EGRESS
iptables -A PYLON-EGRESS -s "$POD_CIDR" -d "$POD_CIDR" -j RETURN
iptables -A PYLON-EGRESS -s "$POD_CIDR" -j REJECT
iptables -C FORWARD -j PYLON-EGRESS 2>/dev/null || iptables -I FORWARD 1 -j PYLON-EGRESS

# --- etcd
if ! curl -fsS http://127.0.0.1:2379/health >/dev/null 2>&1; then
  run etcd "$ETCD_BIN/etcd" --name pylon --data-dir "$DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster pylon=http://127.0.0.1:2380 --log-level warn --quota-backend-bytes 4294967296
  wait_for etcd 60 curl -fsS http://127.0.0.1:2379/health
fi

# --- kube-apiserver
if ! kubectl get --raw /readyz >/dev/null 2>&1; then
  run kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --secure-port 6443 --advertise-address "$NODE_IP" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$pki/ca.crt" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --requestheader-client-ca-file "$pki/ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false --event-ttl 30m
  wait_for kube-apiserver 120 kubectl get --raw /readyz
fi

# --- controllers and scheduler
if ! alive kube-controller-manager; then
  run kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 10257 --profiling=false
fi
if ! alive kube-scheduler; then
  run kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259 --profiling=false
fi

# --- Gateway API CRDs (experimental channel), from the pinned module
crds=$(cd "$repo/conformance/suite" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | jq -r .Dir)/config/crd/experimental
for f in "$crds"/gateway.networking*.yaml; do
  kubectl apply --server-side --force-conflicts -f "$f" >/dev/null
done
kubectl wait --for condition=Established --timeout 60s \
  $(kubectl get crd -o name | grep -E 'gateway\.networking\.(x-)?k8s\.io$') >/dev/null

# --- podlet: the node agent
if ! alive podlet; then
  PYLON_CACHE=$PYLON_CACHE PYLON_BIN_DIR=$PYLON_BIN_DIR run podlet "$PODLET" \
    --kubeconfig "$DIR/podlet.kubeconfig" --node-name "$NODE_NAME" --node-ip "$NODE_IP" \
    --bridge "$BRIDGE" --pod-cidr "$POD_CIDR" --lb-cidr "$LB_CIDR" \
    --cluster-dns "$CLUSTER_DNS" --cluster-domain cluster.local \
    --images "$here/images.yaml" --state-dir "$DIR/podlet" \
    --tls-cert "$pki/podlet-serving.crt" --tls-key "$pki/podlet-serving.key" \
    --client-ca "$pki/ca.crt" --port 10250
fi
wait_for "node $NODE_NAME Ready" 60 kubectl wait --for condition=Ready --timeout 5s "node/$NODE_NAME"

# --- kube-proxy (needs the Node to exist to find its IP)
if ! alive kube-proxy; then
  run kube-proxy "$K8S_BIN/kube-proxy" --kubeconfig "$DIR/kube-proxy.kubeconfig" \
    --hostname-override "$NODE_NAME" --cluster-cidr "$POD_CIDR" --proxy-mode iptables \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256 \
    --conntrack-max-per-core 0 --profiling=false
fi
kubectl create clusterrolebinding system:kube-proxy --clusterrole system:node-proxier \
  --user system:kube-proxy --dry-run=client -o yaml | kubectl apply -f - >/dev/null

# --- cluster DNS
kubectl apply -f "$here/manifests/coredns.yaml" >/dev/null
kubectl -n kube-system rollout status deployment/coredns --timeout 180s >/dev/null ||
  { echo "cluster-up: CoreDNS did not become ready; see $DIR/logs/podlet.log" >&2; exit 1; }

echo "cluster-up: ready in $((SECONDS - start))s (logs in $DIR/logs)" >&2
echo "export KUBECONFIG=$DIR/admin.kubeconfig PATH=$K8S_BIN:\$PATH"

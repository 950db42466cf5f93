#!/usr/bin/env bash
# Generates the local cluster's PKI and kubeconfigs under $1 (once; an existing CA is kept so
# running cluster-up twice does not invalidate tokens and kubeconfigs already handed out).
set -euo pipefail
dir=$1 node_ip=$2 node_name=$3
pki=$dir/pki
mkdir -p "$pki"
cd "$pki"

if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=pylon-local-ca" 2>/dev/null
fi
if [ ! -f sa.key ]; then
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi

cert() { # name subject [subjectAltName] [extendedKeyUsage]
  local name=$1 subj=$2 san=${3:-} eku=${4:-clientAuth}
  [ -f "$name.crt" ] && return
  local ext; ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$ext"
}

cert apiserver "/CN=kube-apiserver" \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:10.96.0.1,IP:$node_ip" \
  serverAuth
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert front-proxy-client "/CN=front-proxy-client"
cert admin "/O=system:masters/CN=pylon-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kube-proxy "/CN=system:kube-proxy"
# The podlet is the node agent and also the local load-balancer allocator (it writes Service
# status), which the Node authorizer would not allow; it is a test fixture, so it gets admin.
cert podlet "/O=system:masters/CN=system:node:$node_name"
cert podlet-serving "/CN=$node_name" "DNS:$node_name,DNS:localhost,IP:127.0.0.1,IP:$node_ip" serverAuth

kubeconfig() { # name user
  local out=$dir/$1.kubeconfig
  [ -f "$out" ] && return
  cat >"$out" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: pylon-local
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$1.crt
    client-key: $pki/$1.key
contexts:
- name: pylon-local
  context: {cluster: pylon-local, user: $2}
current-context: pylon-local
YAML
}
kubeconfig admin pylon-admin
kubeconfig controller-manager system:kube-controller-manager
kubeconfig scheduler system:kube-scheduler
kubeconfig kube-proxy system:kube-proxy
kubeconfig podlet "system:node:$node_name"

# Pinned versions of everything the local cluster builds from Go modules. Move them together:
# Kubernetes is the minor that sigs.k8s.io/gateway-api v1.5.1's go.mod pins (k8s.io/* v0.35),
# etcd and CoreDNS the versions that Kubernetes minor ships with (kubeadm's constants).
# The go.mod files under tools/ pin the same versions; build-tools.sh checks they agree.
K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.6
COREDNS_VERSION=v1.13.1
GATEWAY_API_VERSION=v1.5.1
# Not a cluster tool: the HTTP/2 conformance tester of scripts/h2spec.sh. v2.2.1 is h2spec's last
# release; it predates Go modules, hence +incompatible (tools/h2spec/go.mod says more).
H2SPEC_VERSION=v2.2.1+incompatible

PYLON_CACHE=${PYLON_CACHE:-$HOME/.cache/pylon}
TOOLS_DIR=$PYLON_CACHE/tools
K8S_BIN=$TOOLS_DIR/kubernetes-$K8S_VERSION/bin
ETCD_BIN=$TOOLS_DIR/etcd-$ETCD_VERSION/bin
COREDNS_BIN=$TOOLS_DIR/coredns-$COREDNS_VERSION/bin
GATEWAY_API_BIN=$TOOLS_DIR/gateway-api-$GATEWAY_API_VERSION/bin
H2SPEC_BIN=$TOOLS_DIR/h2spec-${H2SPEC_VERSION%+incompatible}/bin

# The echo-basic image the conformance manifests of GATEWAY_API_VERSION use (mapped by images.yaml).
ECHO_BASIC_IMAGE=gcr.io/k8s-staging-gateway-api/echo-basic:v20260204-monthly-2026.01-60-g28382302

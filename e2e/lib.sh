# Shared by the end-to-end tests in this directory: the cluster's settings, kubectl on PATH,
# and a tiny check runner that ends with the "N passed, N failed" line CI reads.
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=../conformance/cluster/versions.sh
source "$repo/conformance/cluster/versions.sh"
# shellcheck source=../conformance/cluster/lib.sh
source "$repo/conformance/cluster/lib.sh"
export KUBECONFIG=$DIR/admin.kubeconfig PATH="$K8S_BIN:$PATH"

passed=0 failed=0
# check NAME CMD...: run one check; on failure show the tail of its output, on success the
# lines it starts with "note: ".
check() {
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "ok   - $name"
    echo "$out" | sed -n 's/^note: /       /p' # measurements a check reports
  else
    failed=$((failed + 1)); echo "FAIL - $name"; echo "$out" | tail -n 25 | sed 's/^/       /'
  fi
}
# summary: the closing line; exit status says whether everything passed.
summary() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
# eventually SECONDS CMD...: retry CMD every half second until it succeeds; the last output on failure.
eventually() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit)) out
  until out=$("$@" 2>&1); do
    if [ $SECONDS -ge $deadline ]; then echo "$out"; return 1; fi
    sleep 0.5
  done
  echo "$out"
}

# echo_backend NAME REPLICAS NAMESPACE: an echo-basic Deployment and its Service (port 8080), as YAML.
echo_backend() {
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, namespace: $3}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      containers:
      - name: echo
        image: $ECHO_BASIC_IMAGE
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        readinessProbe:
          httpGet: {path: /, port: 3000}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: $1, namespace: $3}
spec:
  selector: {app: $1}
  ports: [{port: 8080, targetPort: 3000}]
---
YAML
}

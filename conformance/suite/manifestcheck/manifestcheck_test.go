package manifestcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var (
	checkerOnce sync.Once
	checker     *Checker
	checkerErr  error
)

func testChecker(t *testing.T) *Checker {
	t.Helper()
	checkerOnce.Do(func() {
		dir, err := GatewayAPICRDDir()
		if err != nil {
			checkerErr = err
			return
		}
		checker, checkerErr = NewChecker(dir)
	})
	if checkerErr != nil {
		t.Fatal(checkerErr)
	}
	return checker
}

func decode(t *testing.T, source, text string) []Object {
	t.Helper()
	objs, err := Decode(source, strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

const repoRoot = "../../.."

// TestExamplesAreValid checks every example as `kubectl apply -f examples/<dir>/` would see it,
// with the Secret the HTTPS example's script creates.
func TestExamplesAreValid(t *testing.T) {
	c := testChecker(t)
	dirs, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*", "*.yaml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples found (%v)", err)
	}
	var objs []Object
	for _, p := range dirs {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decode(t, p, string(raw))...)
	}
	cmd := exec.Command(filepath.Join(repoRoot, "examples", "https", "make-cert.sh"), "--print")
	cmd.Env = append(os.Environ(), "PYLON_CACHE="+t.TempDir())
	secret, err := cmd.Output()
	if err != nil {
		t.Fatalf("examples/https/make-cert.sh --print: %v", err)
	}
	objs = append(objs, decode(t, "make-cert.sh", string(secret))...)
	for _, p := range c.Check(objs, Options{RequireNamespace: true, GatewayClasses: []string{"pylon"}}) {
		t.Error(p)
	}
	// All eight examples the README promises are there, each with a README section.
	readme, err := os.ReadFile(filepath.Join(repoRoot, "examples", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"quickstart", "canary", "header-query-routing", "redirects-rewrites", "https", "grpc", "mirroring", "cross-namespace"} {
		if _, err := os.Stat(filepath.Join(repoRoot, "examples", name, name+".yaml")); err != nil {
			t.Errorf("example %s: %v", name, err)
		}
		if !regexp.MustCompile(`(?m)^## ` + regexp.QuoteMeta(name) + ` `).Match(readme) {
			t.Errorf("examples/README.md has no section for %s", name)
		}
	}
}

// base is a small valid set the broken cases below mutate.
const base = `
apiVersion: v1
kind: Namespace
metadata:
  name: app
  labels:
    access: "yes"
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: infra
spec:
  gatewayClassName: pylon
  listeners:
    - name: http
      protocol: HTTP
      port: 80
      allowedRoutes:
        namespaces:
          from: Selector
          selector:
            matchLabels:
              access: "yes"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: backend
spec:
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      containers:
        - name: echo
          image: echo
          ports: [{name: http, containerPort: 3000}]
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: backend
spec:
  selector: {app: echo}
  ports: [{port: 8080, targetPort: http}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: grant
  namespace: backend
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: app}]
  to: [{group: "", kind: Service}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route
  namespace: app
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
    - backendRefs: [{name: echo, namespace: backend, port: 8080}]
`

func TestBaseIsValid(t *testing.T) {
	if problems := testChecker(t).Check(decode(t, "base", base), Options{RequireNamespace: true, GatewayClasses: []string{"pylon"}}); len(problems) > 0 {
		t.Fatalf("base set has problems: %v", problems)
	}
}

// TestBrokenManifestsAreNamed: each mutation of the base set yields a problem naming it.
func TestBrokenManifestsAreNamed(t *testing.T) {
	c := testChecker(t)
	cases := []struct{ name, old, new, want string }{
		{"unknown field in a route", "  parentRefs:", "  parentRef: []\n  parentRefs:", `unknown field "spec.parentRef"`},
		{"schema enum", "from: Selector", "from: Elsewhere", "spec.listeners[0].allowedRoutes.namespaces.from"},
		{"CEL rule", "port: 80\n", "port: 80\n      tls: {mode: Terminate, certificateRefs: [{name: x}]}\n", "tls must not be specified for protocols ['HTTP'"},
		{"missing backend Service", "name: echo, namespace: backend, port: 8080", "name: echo2, namespace: backend, port: 8080", "Service backend/echo2 not found"},
		{"wrong backend port", "namespace: backend, port: 8080", "namespace: backend, port: 9090", "has no port 9090"},
		{"no ReferenceGrant", "namespace: app}]\n  to", "namespace: other}]\n  to", "no ReferenceGrant in namespace backend lets HTTPRoute from app"},
		{"missing parent", "parentRefs: [{name: gw,", "parentRefs: [{name: gw2,", "Gateway infra/gw2 not found"},
		{"listener refuses namespace", `access: "yes"` + "\n---", `access: "no"` + "\n---", "does not admit routes from namespace app"},
		{"unknown section", "{name: gw, namespace: infra}", "{name: gw, namespace: infra, sectionName: https}", `has no listener "https"`},
		{"unknown GatewayClass", "gatewayClassName: pylon", "gatewayClassName: other", `GatewayClass "other" is neither`},
		{"selector matches nothing", "selector: {app: echo}", "selector: {app: ekko}", "matches no Deployment"},
		{"named targetPort missing", "targetPort: http", "targetPort: web", `no container of the selected Pods has a port named "web"`},
		{"strict built-in", "      containers:", "      containerz: []\n      containers:", `unknown field "spec.template.spec.containerz"`},
		{"deployment selector", "labels: {app: echo}\n    spec", "labels: {app: other}\n    spec", "does not match spec.selector"},
		{"namespace required", "  name: route\n  namespace: app\n", "  name: route\n", "metadata.namespace: Required value"},
		{"bad name", "name: route", "name: Route_1", `metadata.name "Route_1"`},
		{"unknown kind", "kind: ReferenceGrant", "kind: ReferenceGrants", "unknown kind"},
		{"duplicate", "---\napiVersion: v1\nkind: Service", "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\napiVersion: v1\nkind: Service", "defined twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("base lacks %q", tc.old)
			}
			text := strings.Replace(base, tc.old, tc.new, 1)
			problems := c.Check(decode(t, "case", text), Options{RequireNamespace: true, GatewayClasses: []string{"pylon"}})
			for _, p := range problems {
				if strings.Contains(p.String(), tc.want) {
					return
				}
			}
			t.Errorf("want a problem containing %q, got %v", tc.want, problems)
		})
	}
}

func TestDecodeRejectsDocumentsWithoutKind(t *testing.T) {
	if _, err := Decode("x.yaml", strings.NewReader("# only a comment\n---\nmetadata: {name: a}\n")); err == nil ||
		!strings.Contains(err.Error(), "x.yaml#2: document has no apiVersion or kind") {
		t.Errorf("err = %v", err)
	}
	objs, err := Decode("x.yaml", strings.NewReader("---\n# comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"))
	if err != nil || len(objs) != 1 || objs[0].Source != "x.yaml#2" {
		t.Errorf("objs = %v, err = %v", objs, err)
	}
}

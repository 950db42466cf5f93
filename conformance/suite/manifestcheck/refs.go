package manifestcheck

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

const gatewayGroup = "gateway.networking.k8s.io"

// index holds the typed objects of a manifest set, by namespace/name.
type index struct {
	gateways      map[string]*gatewayv1.Gateway
	classes       map[string]bool
	services      map[string]*corev1.Service
	secrets       map[string]bool
	namespaces    map[string]*corev1.Namespace
	grants        []*gatewayv1beta1.ReferenceGrant
	deployments   []*appsv1.Deployment
	roles         map[string]bool // "Role ns/name" or "ClusterRole name"
	accounts      map[string]bool
	knownClasses  map[string]bool
	externalNames map[string]bool
}

func key(ns, name string) string { return ns + "/" + name }

// route is what reference checking needs from HTTPRoute and GRPCRoute alike.
type route struct {
	kind     string
	obj      Object
	parents  []gatewayv1.ParentReference
	backends []backendAt
}

type backendAt struct {
	path string
	ref  gatewayv1.BackendObjectReference
}

func buildIndex(objs []Object, opts Options) (*index, []route, []Problem) {
	ix := &index{
		gateways: map[string]*gatewayv1.Gateway{}, classes: map[string]bool{}, services: map[string]*corev1.Service{},
		secrets: map[string]bool{}, namespaces: map[string]*corev1.Namespace{}, roles: map[string]bool{},
		accounts: map[string]bool{}, knownClasses: map[string]bool{}, externalNames: map[string]bool{},
	}
	for _, c := range opts.GatewayClasses {
		ix.knownClasses[c] = true
	}
	var routes []route
	var problems []Problem
	fail := func(o Object, err error) { problems = append(problems, Problem{o.Source, o.ID(), err.Error()}) }
	for _, o := range objs {
		ns, name := o.GetNamespace(), o.GetName()
		switch o.GroupVersionKind().GroupKind().String() {
		case "Gateway." + gatewayGroup:
			var g gatewayv1.Gateway
			if err := decodeInto(o, &g); err != nil {
				fail(o, err)
				continue
			}
			ix.gateways[key(ns, name)] = &g
		case "GatewayClass." + gatewayGroup:
			ix.classes[name] = true
		case "HTTPRoute." + gatewayGroup:
			var r gatewayv1.HTTPRoute
			if err := decodeInto(o, &r); err != nil {
				fail(o, err)
				continue
			}
			rt := route{kind: "HTTPRoute", obj: o, parents: r.Spec.ParentRefs}
			for i, rule := range r.Spec.Rules {
				for j, b := range rule.BackendRefs {
					rt.backends = append(rt.backends, backendAt{fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j), b.BackendObjectReference})
					for k, f := range b.Filters {
						if f.RequestMirror != nil {
							rt.backends = append(rt.backends, backendAt{fmt.Sprintf("spec.rules[%d].backendRefs[%d].filters[%d].requestMirror.backendRef", i, j, k), f.RequestMirror.BackendRef})
						}
					}
				}
				for k, f := range rule.Filters {
					if f.RequestMirror != nil {
						rt.backends = append(rt.backends, backendAt{fmt.Sprintf("spec.rules[%d].filters[%d].requestMirror.backendRef", i, k), f.RequestMirror.BackendRef})
					}
				}
			}
			routes = append(routes, rt)
		case "GRPCRoute." + gatewayGroup:
			var r gatewayv1.GRPCRoute
			if err := decodeInto(o, &r); err != nil {
				fail(o, err)
				continue
			}
			rt := route{kind: "GRPCRoute", obj: o, parents: r.Spec.ParentRefs}
			for i, rule := range r.Spec.Rules {
				for j, b := range rule.BackendRefs {
					rt.backends = append(rt.backends, backendAt{fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j), b.BackendObjectReference})
				}
				for k, f := range rule.Filters {
					if f.RequestMirror != nil {
						rt.backends = append(rt.backends, backendAt{fmt.Sprintf("spec.rules[%d].filters[%d].requestMirror.backendRef", i, k), f.RequestMirror.BackendRef})
					}
				}
			}
			routes = append(routes, rt)
		case "ReferenceGrant." + gatewayGroup:
			var g gatewayv1beta1.ReferenceGrant
			if err := decodeInto(o, &g); err != nil {
				fail(o, err)
				continue
			}
			ix.grants = append(ix.grants, &g)
		case "Service":
			var s corev1.Service
			if err := decodeInto(o, &s); err != nil {
				fail(o, err)
				continue
			}
			ix.services[key(ns, name)] = &s
		case "Secret":
			ix.secrets[key(ns, name)] = true
		case "Namespace":
			var n corev1.Namespace
			if err := decodeInto(o, &n); err != nil {
				fail(o, err)
				continue
			}
			ix.namespaces[name] = &n
		case "Deployment.apps":
			var d appsv1.Deployment
			if err := decodeInto(o, &d); err != nil {
				fail(o, err)
				continue
			}
			ix.deployments = append(ix.deployments, &d)
		case "Role.rbac.authorization.k8s.io":
			ix.roles["Role "+key(ns, name)] = true
		case "ClusterRole.rbac.authorization.k8s.io":
			ix.roles["ClusterRole "+name] = true
		case "ServiceAccount":
			ix.accounts[key(ns, name)] = true
		}
	}
	return ix, routes, problems
}

// checkReferences reports references that would not resolve once the set is applied.
func checkReferences(objs []Object, opts Options) []Problem {
	ix, routes, problems := buildIndex(objs, opts)
	for _, s := range opts.ExternalSecrets {
		ix.secrets[s] = true
	}
	add := func(o Object, format string, args ...any) {
		problems = append(problems, Problem{o.Source, o.ID(), fmt.Sprintf(format, args...)})
	}
	for _, o := range objs {
		switch o.GroupVersionKind().GroupKind().String() {
		case "Gateway." + gatewayGroup:
			g := ix.gateways[key(o.GetNamespace(), o.GetName())]
			if g == nil {
				continue
			}
			class := string(g.Spec.GatewayClassName)
			if !ix.classes[class] && !ix.knownClasses[class] {
				add(o, "spec.gatewayClassName: GatewayClass %q is neither in the manifests nor a known class", class)
			}
			for i, l := range g.Spec.Listeners {
				if l.TLS == nil {
					continue
				}
				for j, ref := range l.TLS.CertificateRefs {
					if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
						continue
					}
					ns := o.GetNamespace()
					if ref.Namespace != nil {
						ns = string(*ref.Namespace)
					}
					if !ix.secrets[key(ns, string(ref.Name))] {
						add(o, "spec.listeners[%d].tls.certificateRefs[%d]: Secret %s not found in the manifests", i, j, key(ns, string(ref.Name)))
					}
				}
			}
		case "Service":
			checkServiceSelector(ix, o, add)
		case "RoleBinding.rbac.authorization.k8s.io", "ClusterRoleBinding.rbac.authorization.k8s.io":
			checkBinding(ix, o, add)
		}
	}
	for _, r := range routes {
		checkRoute(ix, r, add)
	}
	return problems
}

func checkRoute(ix *index, r route, add func(Object, string, ...any)) {
	ns := r.obj.GetNamespace()
	for i, p := range r.parents {
		if (p.Group != nil && string(*p.Group) != gatewayGroup) || (p.Kind != nil && *p.Kind != "Gateway") {
			continue
		}
		pns := ns
		if p.Namespace != nil {
			pns = string(*p.Namespace)
		}
		g := ix.gateways[key(pns, string(p.Name))]
		if g == nil {
			add(r.obj, "spec.parentRefs[%d]: Gateway %s not found in the manifests", i, key(pns, string(p.Name)))
			continue
		}
		matched := false
		for _, l := range g.Spec.Listeners {
			if p.SectionName != nil && *p.SectionName != l.Name {
				continue
			}
			if p.Port != nil && *p.Port != l.Port {
				continue
			}
			if ok, why := ix.admits(l, g.Namespace, ns); !ok {
				add(r.obj, "spec.parentRefs[%d]: listener %q of Gateway %s does not admit routes from namespace %s: %s", i, l.Name, key(pns, g.Name), ns, why)
				continue
			}
			matched = true
		}
		if !matched && p.SectionName != nil {
			found := false
			for _, l := range g.Spec.Listeners {
				found = found || l.Name == *p.SectionName
			}
			if !found {
				add(r.obj, "spec.parentRefs[%d].sectionName: Gateway %s has no listener %q", i, key(pns, g.Name), *p.SectionName)
			}
		}
	}
	for _, b := range r.backends {
		if (b.ref.Group != nil && *b.ref.Group != "") || (b.ref.Kind != nil && *b.ref.Kind != "Service") {
			continue
		}
		bns := ns
		if b.ref.Namespace != nil {
			bns = string(*b.ref.Namespace)
		}
		svc := ix.services[key(bns, string(b.ref.Name))]
		if svc == nil {
			add(r.obj, "%s: Service %s not found in the manifests", b.path, key(bns, string(b.ref.Name)))
			continue
		}
		if b.ref.Port != nil && !servicePort(svc, int32(*b.ref.Port)) {
			add(r.obj, "%s: Service %s has no port %d", b.path, key(bns, svc.Name), *b.ref.Port)
		}
		if bns != ns && !ix.granted(r.kind, ns, bns, svc.Name) {
			add(r.obj, "%s: no ReferenceGrant in namespace %s lets %s from %s refer to Service %s", b.path, bns, r.kind, ns, svc.Name)
		}
	}
}

func servicePort(s *corev1.Service, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

// admits applies a listener's allowedRoutes.namespaces to a route namespace.
func (ix *index) admits(l gatewayv1.Listener, gatewayNS, routeNS string) (bool, string) {
	from := gatewayv1.NamespacesFromSame
	var selector *metav1.LabelSelector
	if l.AllowedRoutes != nil && l.AllowedRoutes.Namespaces != nil {
		if l.AllowedRoutes.Namespaces.From != nil {
			from = *l.AllowedRoutes.Namespaces.From
		}
		selector = l.AllowedRoutes.Namespaces.Selector
	}
	switch from {
	case gatewayv1.NamespacesFromAll:
		return true, ""
	case gatewayv1.NamespacesFromSame:
		return gatewayNS == routeNS, "allowedRoutes is Same"
	case gatewayv1.NamespacesFromSelector:
		if selector == nil {
			return false, "allowedRoutes.namespaces.selector is missing"
		}
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return false, err.Error()
		}
		n := ix.namespaces[routeNS]
		if n == nil {
			return false, "the route's Namespace is not in the manifests, so its labels are unknown"
		}
		return sel.Matches(labels.Set(n.Labels)), "the namespace's labels do not match the selector"
	}
	return false, fmt.Sprintf("allowedRoutes.namespaces.from %q", from)
}

// granted reports whether a ReferenceGrant in toNS allows kind routes in fromNS to the Service.
func (ix *index) granted(kind, fromNS, toNS, service string) bool {
	for _, g := range ix.grants {
		if g.Namespace != toNS {
			continue
		}
		fromOK, toOK := false, false
		for _, f := range g.Spec.From {
			fromOK = fromOK || (string(f.Group) == gatewayGroup && string(f.Kind) == kind && string(f.Namespace) == fromNS)
		}
		for _, t := range g.Spec.To {
			toOK = toOK || (t.Group == "" && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == service))
		}
		if fromOK && toOK {
			return true
		}
	}
	return false
}

// checkServiceSelector: a selector that matches no Deployment of the set, or a named
// targetPort no matching container declares, leaves the Service without endpoints.
func checkServiceSelector(ix *index, o Object, add func(Object, string, ...any)) {
	s := ix.services[key(o.GetNamespace(), o.GetName())]
	if s == nil || len(s.Spec.Selector) == 0 {
		return
	}
	var matching []*appsv1.Deployment
	for _, d := range ix.deployments {
		if d.Namespace == s.Namespace && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			matching = append(matching, d)
		}
	}
	if len(matching) == 0 {
		add(o, "spec.selector %v matches no Deployment's Pods in the manifests", s.Spec.Selector)
		return
	}
	for i, p := range s.Spec.Ports {
		if p.TargetPort.Type != intstr.String {
			continue
		}
		if !namedPort(matching, p.TargetPort.StrVal) {
			add(o, "spec.ports[%d].targetPort: no container of the selected Pods has a port named %q", i, p.TargetPort.StrVal)
		}
	}
}

func namedPort(ds []*appsv1.Deployment, name string) bool {
	for _, d := range ds {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == name {
					return true
				}
			}
		}
	}
	return false
}

func checkBinding(ix *index, o Object, add func(Object, string, ...any)) {
	var roleRef rbacv1.RoleRef
	var subjects []rbacv1.Subject
	if o.GetKind() == "RoleBinding" {
		var b rbacv1.RoleBinding
		if err := decodeInto(o, &b); err != nil {
			add(o, "%v", err)
			return
		}
		roleRef, subjects = b.RoleRef, b.Subjects
	} else {
		var b rbacv1.ClusterRoleBinding
		if err := decodeInto(o, &b); err != nil {
			add(o, "%v", err)
			return
		}
		roleRef, subjects = b.RoleRef, b.Subjects
	}
	role := "ClusterRole " + roleRef.Name
	if roleRef.Kind == "Role" {
		role = "Role " + key(o.GetNamespace(), roleRef.Name)
	}
	if !ix.roles[role] {
		add(o, "roleRef: %s not found in the manifests", role)
	}
	for i, s := range subjects {
		if s.Kind == "ServiceAccount" && !ix.accounts[key(s.Namespace, s.Name)] {
			add(o, "subjects[%d]: ServiceAccount %s not found in the manifests", i, key(s.Namespace, s.Name))
		}
	}
}

package manifestcheck

import (
	"fmt"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Options tune what a set of manifests must satisfy.
type Options struct {
	// RequireNamespace: every namespaced object must say its namespace, so applying the set
	// never depends on the kubectl context's default namespace.
	RequireNamespace bool
	// GatewayClasses that exist in the target cluster without being in the set (e.g. "pylon",
	// created by the chart).
	GatewayClasses []string
	// ExternalSecrets ("namespace/name") are created outside the set, e.g. by a script.
	ExternalSecrets []string
}

// Problem is one thing wrong with one object.
type Problem struct {
	Source, Object, Message string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Source, p.Object, p.Message) }

// Checker validates manifests against a fixed set of CRDs.
type Checker struct {
	crds map[schema.GroupVersionKind]*crdVersion
}

// NewChecker loads the CRDs (e.g. the gateway-api module's config/crd/experimental).
func NewChecker(crdDir string) (*Checker, error) {
	crds, err := loadCRDs(crdDir)
	if err != nil {
		return nil, err
	}
	return &Checker{crds: crds}, nil
}

// Check validates every object and the references between them; nil means all is well.
func (c *Checker) Check(objs []Object, opts Options) []Problem {
	var problems []Problem
	seen := map[string]string{}
	for _, o := range objs {
		add := func(msg string) { problems = append(problems, Problem{o.Source, o.ID(), msg}) }
		gvk := o.GroupVersionKind()
		if prev, dup := seen[gvk.GroupKind().String()+" "+o.GetNamespace()+"/"+o.GetName()]; dup {
			add("defined twice (also at " + prev + ")")
		}
		seen[gvk.GroupKind().String()+" "+o.GetNamespace()+"/"+o.GetName()] = o.Source
		if o.GetName() == "" {
			add("metadata.name: Required value")
		} else if errs := apivalidation.NameIsDNSSubdomain(o.GetName(), false); len(errs) > 0 {
			add(fmt.Sprintf("metadata.name %q: %v", o.GetName(), errs))
		}
		namespaced := !clusterScoped[gvk.Kind]
		switch crd, ok := c.crds[gvk]; {
		case ok:
			namespaced = crd.namespaced
			for _, msg := range crd.validate(o) {
				add(msg)
			}
		case knownBuiltin(gvk):
			for _, msg := range validateBuiltin(o) {
				add(msg)
			}
		default:
			add(fmt.Sprintf("unknown kind %s (neither a loaded CRD nor a built-in type)", gvk))
			continue
		}
		if namespaced && opts.RequireNamespace && o.GetNamespace() == "" {
			add("metadata.namespace: Required value (namespaced kind)")
		}
		if !namespaced && o.GetNamespace() != "" {
			add("metadata.namespace: must be empty for a cluster-scoped kind")
		}
	}
	// Per-object problems come in input order, then the references between objects.
	return append(problems, checkReferences(objs, opts)...)
}

package manifestcheck

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// crdVersion is what validating one served version of a CRD needs.
type crdVersion struct {
	namespaced bool
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
	cel        *cel.Validator // nil when the schema has no CEL rules
}

// loadCRDs reads every CustomResourceDefinition in dir (other documents are ignored).
func loadCRDs(dir string) (map[schema.GroupVersionKind]*crdVersion, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	out := map[schema.GroupVersionKind]*crdVersion{}
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		// The directory may hold other files (a kustomization, admission policies).
		if !bytes.Contains(raw, []byte("kind: CustomResourceDefinition")) {
			continue
		}
		objs, err := Decode(path, bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if err := addCRD(out, o); err != nil {
				return nil, fmt.Errorf("%s: %w", o.Source, err)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinitions in %s", dir)
	}
	return out, nil
}

func addCRD(out map[schema.GroupVersionKind]*crdVersion, o Object) error {
	raw, err := yaml.Marshal(o.Object)
	if err != nil {
		return err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		return err
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		internal := &apiextensions.JSONSchemaProps{}
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return fmt.Errorf("%s %s: converting schema: %w", crd.Name, v.Name, err)
		}
		ss, err := structuralschema.NewStructural(internal)
		if err != nil {
			return fmt.Errorf("%s %s: structural schema: %w", crd.Name, v.Name, err)
		}
		validator, _, err := validation.NewSchemaValidator(internal)
		if err != nil {
			return fmt.Errorf("%s %s: schema validator: %w", crd.Name, v.Name, err)
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
		out[gvk] = &crdVersion{
			namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			structural: ss,
			validator:  validator,
			cel:        cel.NewValidator(ss, true, celconfig.PerCallLimit),
		}
	}
	return nil
}

// validate checks a custom resource the way the API server does on create: unknown fields
// (which the server would prune or reject), then defaults, OpenAPI validation and CEL rules.
func (c *crdVersion) validate(o Object) []string {
	obj := runtime.DeepCopyJSON(o.Object)
	var problems []string
	unknown := pruning.PruneWithOptions(obj, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	sort.Strings(unknown)
	for _, path := range unknown {
		problems = append(problems, fmt.Sprintf("unknown field %q", path))
	}
	structuraldefaulting.Default(obj, c.structural)
	errs := validation.ValidateCustomResource(nil, obj, c.validator)
	if c.cel != nil {
		celErrs, _ := c.cel.Validate(context.Background(), nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	for _, e := range errs {
		problems = append(problems, fieldError(e))
	}
	return problems
}

func fieldError(e *field.Error) string { return e.Error() }

// Package manifestcheck validates Kubernetes manifests offline, without an API server:
// Gateway API objects against the CRDs of the pinned gateway-api module (unknown fields,
// OpenAPI schema, CEL rules, after defaulting, as the API server does), built-in kinds by
// strict decoding into their Go types, and the references between the objects of a set
// (route parents and backends, ReferenceGrants, Secrets, Service selectors, RBAC bindings).
//
// It checks the examples and the Helm chart's rendered output, so a typo is caught by a unit
// test rather than by a failed `kubectl apply` in an end-to-end run.
package manifestcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Object is one manifest document.
type Object struct {
	// Source names where the document came from: "file.yaml#2" (1-based document index).
	Source string
	*unstructured.Unstructured
}

// ID is "Kind namespace/name" (or "Kind name" when cluster-scoped), for messages.
func (o Object) ID() string {
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", o.GetKind(), ns, o.GetName())
	}
	return fmt.Sprintf("%s %s", o.GetKind(), o.GetName())
}

// Decode splits a multi-document YAML stream into objects; empty and comment-only documents
// are skipped. A document without apiVersion or kind is an error.
func Decode(source string, r io.Reader) ([]Object, error) {
	reader := utilyaml.NewYAMLReader(bufioReader(r))
	var out []Object
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading document %d: %w", source, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		where := fmt.Sprintf("%s#%d", source, i)
		// Through JSON with apimachinery's decoder, so integers stay int64 as in the API server
		// (CEL rules reject float64 where the schema says integer).
		jsonDoc, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		var content map[string]any
		if err := utiljson.Unmarshal(jsonDoc, &content); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if content == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: content}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("%s: document has no apiVersion or kind", where)
		}
		out = append(out, Object{Source: where, Unstructured: u})
	}
}

func stripComments(doc []byte) []byte {
	var b strings.Builder
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") || t == "---" {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

package manifestcheck

import (
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

// clusterScoped lists the built-in kinds without a namespace that manifests here may hold.
var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
	"PriorityClass": true, "StorageClass": true, "PersistentVolume": true, "Node": true,
	"ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true, "IngressClass": true,
}

// builtins are client-go's kinds plus CustomResourceDefinition (charts may ship CRDs).
var builtins = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(scheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	return s
}()

// strictDecoder decodes like the API server with field validation Strict: unknown and
// duplicate fields are errors.
var strictDecoder = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, builtins, builtins,
	kjson.SerializerOptions{Strict: true})

// knownBuiltin reports whether the kind is a built-in one.
func knownBuiltin(gvk schema.GroupVersionKind) bool { return builtins.Recognizes(gvk) }

// validateBuiltin decodes a built-in object strictly and applies the few API-server rules
// that catch common mistakes in hand-written manifests.
func validateBuiltin(o Object) []string {
	raw, err := json.Marshal(o.Object)
	if err != nil {
		return []string{err.Error()}
	}
	typed, _, err := strictDecoder.Decode(raw, nil, nil)
	if err != nil {
		// Strict errors list every offending field; keep the message as the decoder words it.
		return []string{strings.TrimPrefix(err.Error(), "strict decoding error: ")}
	}
	if d, ok := typed.(*appsv1.Deployment); ok {
		return validateDeployment(d)
	}
	return nil
}

func validateDeployment(d *appsv1.Deployment) []string {
	if d.Spec.Selector == nil {
		return []string{"spec.selector: Required value"}
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return []string{fmt.Sprintf("spec.selector: %v", err)}
	}
	if sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		return []string{"spec.template.metadata.labels: does not match spec.selector"}
	}
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return []string{"spec.template.spec.containers: Required value"}
	}
	return nil
}

// decodeInto converts an unstructured object into a typed one (already validated).
func decodeInto(o Object, into runtime.Object) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into)
}

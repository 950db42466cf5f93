package main

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

var (
	routeGVR   = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	gatewayGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	podGVR     = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

const fieldManager = "pylon-cp-bench"

// clients: one rate-limited like kubectl (the route creations) and one without a client-side
// limit (measurements: a propagation PATCH must not queue behind the creations).
type clients struct {
	create  dynamic.Interface
	measure dynamic.Interface
}

func newClients(kubeconfig string, qps float32, burst int) (*clients, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	limited := *cfg
	limited.QPS, limited.Burst = qps, burst
	unlimited := *cfg
	unlimited.QPS = -1 // no client-side rate limiter
	c := &clients{}
	if c.create, err = dynamic.NewForConfig(&limited); err != nil {
		return nil, err
	}
	if c.measure, err = dynamic.NewForConfig(&unlimited); err != nil {
		return nil, err
	}
	return c, nil
}

// routeObject is an HTTPRoute on the bench Gateway for one hostname, sending everything to backend.
func routeObject(ns, name, gateway, hostname, backend string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "HTTPRoute",
		"metadata":   map[string]any{"name": name, "namespace": ns, "labels": map[string]any{"app.kubernetes.io/part-of": "pylon-cp-bench"}},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": gateway}},
			"hostnames":  []any{hostname},
			"rules": []any{map[string]any{
				"backendRefs": []any{map[string]any{"name": backend, "port": int64(8080)}},
			}},
		},
	}}
}

// applyRoute server-side applies the route (create or update, one field manager, forced).
func applyRoute(ctx context.Context, dc dynamic.Interface, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	return dc.Resource(routeGVR).Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj,
		metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
}

func deleteRoute(ctx context.Context, dc dynamic.Interface, ns, name string) error {
	return dc.Resource(routeGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})
}

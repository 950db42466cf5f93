package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// gatewayClient asks the Gateway which backend serves a hostname, on one keep-alive connection.
type gatewayClient struct {
	url    string
	client *http.Client
}

func newGatewayClient(addr string) *gatewayClient {
	return &gatewayClient{
		url: "http://" + addr + "/cp-bench",
		client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1, DisableCompression: true,
		}},
	}
}

// pod returns the name of the echo-basic Pod that answered a request for host ("" if the answer
// was not a 200 from echo-basic, e.g. a 404 before the route is programmed).
func (g *gatewayClient) pod(host string) (string, error) {
	req, _ := http.NewRequest("GET", g.url, nil)
	req.Host = host
	resp, err := g.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return "", err
	}
	var echo struct {
		Pod string `json:"pod"`
	}
	if json.Unmarshal(body, &echo) != nil {
		return "", nil
	}
	return echo.Pod, nil
}

// servedBy polls until host is answered by a Pod of backend (its name starts "<backend>-"),
// back to back on the keep-alive connection, and returns when that first happened.
func (g *gatewayClient) servedBy(ctx context.Context, host, backend string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		pod, err := g.pod(host)
		if strings.HasPrefix(pod, backend+"-") {
			return time.Now(), nil
		}
		if err != nil {
			time.Sleep(time.Millisecond) // a connection error: do not spin on it
		}
	}
	return time.Time{}, fmt.Errorf("%s not served by %s after %s", host, backend, timeout)
}

// change is one backendRef change: the time from sending the apply to the first answer from the
// new backend through the Gateway, and the API server's floor, the time from sending it to a
// plain watch on that route seeing the new spec.
type change struct {
	propagation, floor     time.Duration
	timedOut, floorMissing bool
}

// changeBackend moves route (hostname host) to backend and measures both figures. The watch
// starts without a resourceVersion (the API server sends the route as it is, then its changes), and
// the apply is sent once that first event arrived: a watch from the resourceVersion of a GET can
// be refused ("too large resource version") when the watch cache lags, as it does under churn. If
// the watch ends without the change, floor is 0 and floorMissing set; propagation still counts.
func changeBackend(ctx context.Context, dc dynamic.Interface, g *gatewayClient, ns, gateway, route, host, backend string, timeout time.Duration) (change, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := dc.Resource(routeGVR).Namespace(ns).Watch(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", route).String(),
	})
	if err != nil {
		return change{}, err
	}
	defer w.Stop()
	started := make(chan struct{})
	seen := make(chan time.Time, 1)
	go func() {
		defer close(seen)
		first := true
		for ev := range w.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue // an error event; the channel closes after it
			}
			if first {
				first = false
				close(started)
				continue
			}
			if ev.Type == watch.Modified && routeBackend(u) == backend {
				seen <- time.Now()
				return
			}
		}
		if first {
			close(started)
		}
	}()
	select {
	case <-started:
	case <-time.After(timeout):
		return change{}, fmt.Errorf("the watch on %s sent nothing in %s", route, timeout)
	}

	t0 := time.Now()
	if _, err := applyRoute(ctx, dc, routeObject(ns, route, gateway, host, backend)); err != nil {
		return change{}, err
	}
	var c change
	served, err := g.servedBy(ctx, host, backend, timeout)
	if err != nil {
		c.timedOut, c.propagation = true, timeout
	} else {
		c.propagation = served.Sub(t0)
	}
	select {
	case at, ok := <-seen:
		if ok {
			c.floor = at.Sub(t0)
		} else {
			c.floorMissing = true
		}
	case <-time.After(timeout):
		c.floorMissing = true
	}
	return c, nil
}

// routeBackend is the name of the route's first backendRef.
func routeBackend(u *unstructured.Unstructured) string {
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	if len(rules) == 0 {
		return ""
	}
	refs, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
	if len(refs) == 0 {
		return ""
	}
	name, _ := refs[0].(map[string]any)["name"].(string)
	return name
}

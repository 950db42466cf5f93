package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// tracker follows the bench namespace's HTTPRoutes and its Gateway through informers (list +
// watch): it counts route status writes (a new resourceVersion whose status differs from the
// previous one), knows which bench routes are Accepted and ResolvedRefs for the Gateway, and the
// Gateway listener's attachedRoutes. Waiters get the time at which a condition first held, as
// seen by the event handler.
type tracker struct {
	gateway, listener, controller string

	mu           sync.Mutex
	statusWrites int64
	lastWrite    time.Time
	ready        map[string]bool // bench routes (prefix "r-") Accepted=True and ResolvedRefs=True
	attached     int64
	waiters      []*waiter
}

type waiter struct {
	cond func(t *tracker) bool
	at   time.Time
	done chan struct{}
}

func newTracker(gateway, listener, controller string) *tracker {
	return &tracker{gateway: gateway, listener: listener, controller: controller, ready: map[string]bool{}}
}

// start runs the informers until ctx ends and returns once both have synced.
func (t *tracker) start(ctx context.Context, dc dynamic.Interface, ns string) error {
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dc, 0, ns, nil)
	routes := f.ForResource(routeGVR).Informer()
	gateways := f.ForResource(gatewayGVR).Informer()
	if _, err := routes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { t.route(nil, o.(*unstructured.Unstructured)) },
		UpdateFunc: func(o, n any) { t.route(o.(*unstructured.Unstructured), n.(*unstructured.Unstructured)) },
		DeleteFunc: func(o any) { t.routeGone(o) },
	}); err != nil {
		return err
	}
	if _, err := gateways.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { t.gatewaySeen(o.(*unstructured.Unstructured)) },
		UpdateFunc: func(_, n any) { t.gatewaySeen(n.(*unstructured.Unstructured)) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	for gvr, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %s did not sync", gvr.Resource)
		}
	}
	return nil
}

func (t *tracker) route(old, cur *unstructured.Unstructured) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if old != nil && old.GetResourceVersion() != cur.GetResourceVersion() &&
		!reflect.DeepEqual(old.Object["status"], cur.Object["status"]) {
		t.statusWrites++
		t.lastWrite = now
	}
	if strings.HasPrefix(cur.GetName(), "r-") {
		if routeReady(cur, t.gateway, t.controller) {
			t.ready[cur.GetName()] = true
		} else {
			delete(t.ready, cur.GetName())
		}
	}
	t.check(now)
}

func (t *tracker) routeGone(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.ready, u.GetName())
	t.check(time.Now())
}

func (t *tracker) gatewaySeen(gw *unstructured.Unstructured) {
	if gw.GetName() != t.gateway {
		return
	}
	listeners, _, _ := unstructured.NestedSlice(gw.Object, "status", "listeners")
	var n int64 = -1
	for _, l := range listeners {
		m, _ := l.(map[string]any)
		if m["name"] == t.listener {
			n, _, _ = unstructured.NestedInt64(m, "attachedRoutes")
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attached = n
	t.check(time.Now())
}

// routeReady: the route's parent status written by controller for gateway has Accepted=True and
// ResolvedRefs=True, for the route's current generation.
func routeReady(r *unstructured.Unstructured, gateway, controller string) bool {
	parents, _, _ := unstructured.NestedSlice(r.Object, "status", "parents")
	for _, p := range parents {
		m, _ := p.(map[string]any)
		if m["controllerName"] != controller {
			continue
		}
		if name, _, _ := unstructured.NestedString(m, "parentRef", "name"); name != gateway {
			continue
		}
		conds, _, _ := unstructured.NestedSlice(m, "conditions")
		ok := 0
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if (cm["type"] == "Accepted" || cm["type"] == "ResolvedRefs") && cm["status"] == "True" {
				if g, found, _ := unstructured.NestedInt64(cm, "observedGeneration"); !found || g == r.GetGeneration() {
					ok++
				}
			}
		}
		return ok == 2
	}
	return false
}

// check (mu held) fires the waiters whose condition now holds.
func (t *tracker) check(now time.Time) {
	kept := t.waiters[:0]
	for _, w := range t.waiters {
		if w.cond(t) {
			w.at = now
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	t.waiters = kept
}

// when registers cond (evaluated with mu held) and returns a waiter that is done at the first
// event after which cond holds (at once if it already does).
func (t *tracker) when(cond func(t *tracker) bool) *waiter {
	w := &waiter{cond: cond, done: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cond(t) {
		w.at = time.Now()
		close(w.done)
	} else {
		t.waiters = append(t.waiters, w)
	}
	return w
}

// wait returns when the condition first held, or an error after timeout.
func (w *waiter) wait(ctx context.Context, timeout time.Duration) (time.Time, error) {
	select {
	case <-w.done:
		return w.at, nil
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("not reached after %s", timeout)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

func (t *tracker) writes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.statusWrites
}

func (t *tracker) snapshot() (ready int, attached int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ready), t.attached
}

// quiet waits until no route status has been written for d (at most limit), so a phase's count
// includes the controller's late rewrites.
func (t *tracker) quiet(d, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		last := t.lastWrite
		t.mu.Unlock()
		if time.Since(last) >= d {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

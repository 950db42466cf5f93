package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// churn creates rate routes per second ("c-<n>", a hostname each) and, once lifetime's worth of
// them exist, deletes the oldest at the same rate, until stop is called; stop then deletes the
// ones left and returns how many create and delete requests succeeded and how many failed.
type churn struct {
	cancel context.CancelFunc
	done   chan struct{}
	ctx    context.Context
	dc     dynamic.Interface
	ns     string

	mu         sync.Mutex
	ok, errors int
}

func startChurn(ctx context.Context, dc dynamic.Interface, ns, gateway, backend string, rate int, lifetime time.Duration, seq *int) *churn {
	// Requests run on ctx, the loop stops on stopped: a request in flight when stop is called
	// completes (a create cancelled mid-way may exist on the server without the loop knowing).
	stopped, cancel := context.WithCancel(ctx)
	c := &churn{cancel: cancel, done: make(chan struct{}), ctx: ctx, dc: dc, ns: ns}
	keep := int(float64(rate) * lifetime.Seconds())
	go func() {
		defer close(c.done)
		var live []string
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-stopped.Done():
				for _, name := range live {
					if err := deleteRoute(ctx, dc, ns, name); err != nil {
						log.Printf("churn: delete %s: %v", name, err)
					}
				}
				return
			case <-tick.C:
			}
			*seq++
			name := fmt.Sprintf("c-%06d", *seq)
			route := routeObject(ns, name, gateway, name+".churn.cp-bench.example", backend)
			labels := route.GetLabels()
			labels[churnLabel] = "true"
			route.SetLabels(labels)
			_, err := applyRoute(ctx, dc, route)
			c.count(err)
			if err == nil {
				live = append(live, name)
			}
			if len(live) > keep {
				c.count(deleteRoute(ctx, dc, ns, live[0]))
				live = live[1:]
			}
		}
	}()
	return c
}

const churnLabel = "pylon.dev/cp-bench-churn"

func (c *churn) count(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.errors++
		return
	}
	c.ok++
}

func (c *churn) stop() (requests, errors int) {
	c.cancel()
	<-c.done
	// Whatever the loop lost track of (a request that failed on the client but not on the server).
	if err := c.dc.Resource(routeGVR).Namespace(c.ns).DeleteCollection(c.ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: churnLabel + "=true"}); err != nil {
		log.Printf("churn: delete the leftovers: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.errors
}

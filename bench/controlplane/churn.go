package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
)

// churn creates rate routes per second ("c-<n>", a hostname each) and, once lifetime's worth of
// them exist, deletes the oldest at the same rate, until stop is called; stop then deletes the
// ones left and returns how many create and delete requests succeeded and how many failed.
type churn struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu              sync.Mutex
	ok, errors int
}

func startChurn(ctx context.Context, dc dynamic.Interface, ns, gateway, backend string, rate int, lifetime time.Duration, seq *int) *churn {
	ctx, cancel := context.WithCancel(ctx)
	c := &churn{cancel: cancel, done: make(chan struct{})}
	keep := int(float64(rate) * lifetime.Seconds())
	go func() {
		defer close(c.done)
		var live []string
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				cleanup := context.Background()
				for _, name := range live {
					if err := deleteRoute(cleanup, dc, ns, name); err != nil {
						log.Printf("churn: delete %s: %v", name, err)
					}
				}
				return
			case <-tick.C:
			}
			*seq++
			name := fmt.Sprintf("c-%06d", *seq)
			_, err := applyRoute(ctx, dc, routeObject(ns, name, gateway, name+".churn.cp-bench.example", backend))
			if ctx.Err() == nil {
				c.count(err)
			}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.errors
}

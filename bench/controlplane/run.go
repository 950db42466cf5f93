package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"
)

type report struct {
	Commit        string       `json:"commit"`
	Date          string       `json:"date"`
	ControllerExe string       `json:"controller_exe"`
	DataplaneExe  string       `json:"dataplane_exe"`
	Settings      settings     `json:"settings"`
	Sizes         []sizeResult `json:"sizes"`
	Probe         *probeResult `json:"probe"`
	DurationS     float64      `json:"duration_s"`
	Failures      []string     `json:"failures"`
}

type settings struct {
	Workers       int     `json:"create_workers"`
	QPS           float64 `json:"create_qps"`
	Burst         int     `json:"create_burst"`
	Changes       int     `json:"changes"`
	ChurnRate     int     `json:"churn_routes_per_s"`
	ChurnLifetime float64 `json:"churn_lifetime_s"`
	ProbeRPS      int     `json:"probe_rps"`
	ExtraRoutes   int64   `json:"extra_routes"`
}

type sizeResult struct {
	Routes               int       `json:"routes"`
	Created              int       `json:"created"`
	CreateS              float64   `json:"create_s"`
	AttachedS            *float64  `json:"attached_s"`
	AcceptedS            *float64  `json:"accepted_s"`
	StatusWrites         int64     `json:"status_writes"`
	StatusWritesPerRoute float64   `json:"status_writes_per_route"`
	Propagation          dist      `json:"propagation"`
	WatchFloor           dist      `json:"watch_floor"`
	ChurnPropagation     dist      `json:"churn_propagation"`
	ChurnWatchFloor      dist      `json:"churn_watch_floor"`
	ChurnRequests        int       `json:"churn_requests"`
	ChurnErrors          int       `json:"churn_errors"`
	ControllerRSS        []float64 `json:"controller_rss_mb"`
	DataplaneRSS         []float64 `json:"dataplane_rss_mb"`
	ControllerRSSChurn   []float64 `json:"controller_rss_after_churn_mb"`
	DataplaneRSSChurn    []float64 `json:"dataplane_rss_after_churn_mb"`
}

// bench holds what the steps share.
type bench struct {
	cfg      config
	kc       *clients
	tr       *tracker
	gw       *gatewayClient
	rep      *report
	extra    int64             // attached routes that are not bench routes (the probe's)
	backend  map[string]string // bench route -> its current backend
	churnSeq int
}

func run(ctx context.Context, cfg config) (*report, error) {
	start := time.Now()
	rep := &report{Commit: cfg.commit, Date: start.UTC().Format(time.RFC3339), Failures: []string{}}
	kc, err := newClients(cfg.kubeconfig, float32(cfg.qps), cfg.burst)
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, kc: kc, rep: rep, gw: newGatewayClient(cfg.addr), backend: map[string]string{},
		tr: newTracker(cfg.gateway, cfg.listener, cfg.controllerName)}
	if err := b.tr.start(ctx, kc.measure, cfg.namespace); err != nil {
		return nil, err
	}
	ready, attached := b.tr.snapshot()
	if ready != 0 {
		return nil, fmt.Errorf("namespace %s already has %d bench routes; start from an empty namespace", cfg.namespace, ready)
	}
	b.extra = max(attached, 0)
	rep.Settings = settings{cfg.workers, cfg.qps, cfg.burst, cfg.changes, cfg.churnRate, cfg.churnLifetime.Seconds(), cfg.probeRPS, b.extra}
	_, rep.ControllerExe, _ = rssMB(ctx, kc.measure, cfg.podletDir, cfg.controllerNS, cfg.controllerSelector, "pylon-controller")
	_, rep.DataplaneExe, _ = rssMB(ctx, kc.measure, cfg.podletDir, cfg.namespace, cfg.dataplaneSelector, "pylon-dataplane")
	log.Printf("controller %s, data plane %s", rep.ControllerExe, rep.DataplaneExe)

	var p *probe
	if cfg.probeBin != "" {
		if p, err = startProbe(cfg.probeBin, cfg.addr, cfg.probeHost, cfg.probeRPS, cfg.probeLog); err != nil {
			return nil, err
		}
		log.Printf("probe: %d requests/s through the Gateway (Host %s)", cfg.probeRPS, cfg.probeHost)
	}
	for _, n := range cfg.sizes {
		if ctx.Err() != nil {
			break
		}
		res, err := b.size(ctx, n)
		rep.Sizes = append(rep.Sizes, res)
		if err != nil {
			b.fail("%d routes: %v", n, err)
			break // later sizes would build on a broken step
		}
	}
	if p != nil {
		r, err := p.stop()
		if err != nil {
			b.fail("%v", err)
		} else {
			rep.Probe = &r
			if r.Failed > 0 {
				b.fail("probe: %d of %d requests failed (%s)", r.Failed, r.Sent, r.Line)
			}
		}
	}
	rep.DurationS = seconds(time.Since(start))
	return rep, ctx.Err()
}

func (b *bench) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	log.Printf("FAILED: %s", msg)
	b.rep.Failures = append(b.rep.Failures, msg)
}

// size adds bench routes up to n and measures everything at that size.
func (b *bench) size(ctx context.Context, n int) (sizeResult, error) {
	cfg := b.cfg
	res := sizeResult{Routes: n}
	have := len(b.backend)
	res.Created = n - have
	b.tr.quiet(cfg.quiet, time.Minute) // the previous step's writes (its churn) are not this one's
	w0 := b.tr.writes()
	attached := b.tr.when(func(t *tracker) bool { return t.attached == int64(n)+b.extra })
	accepted := b.tr.when(func(t *tracker) bool { return len(t.ready) >= n })

	log.Printf("%d routes: creating %d (%d workers, %.0f QPS / burst %d)", n, res.Created, cfg.workers, cfg.qps, cfg.burst)
	first, last, err := b.create(ctx, have+1, n)
	if err != nil {
		return res, err
	}
	res.CreateS = seconds(last.Sub(first))
	if at, err := attached.wait(ctx, cfg.timeout); err != nil {
		_, a := b.tr.snapshot()
		return res, fmt.Errorf("attachedRoutes %d, want %d: %v", a, int64(n)+b.extra, err)
	} else {
		res.AttachedS = ptr(seconds(max(at.Sub(last), 0)))
	}
	if at, err := accepted.wait(ctx, cfg.timeout); err != nil {
		r, _ := b.tr.snapshot()
		return res, fmt.Errorf("%d of %d routes Accepted and ResolvedRefs: %v", r, n, err)
	} else {
		res.AcceptedS = ptr(seconds(max(at.Sub(last), 0)))
	}
	b.tr.quiet(cfg.quiet, time.Minute)
	res.StatusWrites = b.tr.writes() - w0
	res.StatusWritesPerRoute = round2(float64(res.StatusWrites) / float64(res.Created))
	log.Printf("%d routes: created in %.2f s; attachedRoutes after %.2f s, all Accepted after %.2f s (from the last create); %d status writes, %.2f per route",
		n, res.CreateS, *res.AttachedS, *res.AcceptedS, res.StatusWrites, res.StatusWritesPerRoute)
	res.ControllerRSS, res.DataplaneRSS = b.rss(ctx)

	if res.Propagation, res.WatchFloor, err = b.changes(ctx, n, 0, "steady"); err != nil {
		return res, err
	}
	churn := startChurn(ctx, b.kc.measure, cfg.namespace, cfg.gateway, cfg.backends[0], cfg.churnRate, cfg.churnLifetime, &b.churnSeq)
	time.Sleep(cfg.churnLifetime) // let the churn reach its steady population
	res.ChurnPropagation, res.ChurnWatchFloor, err = b.changes(ctx, n, 1, "churn")
	res.ChurnRequests, res.ChurnErrors = churn.stop()
	if err != nil {
		return res, err
	}
	if res.ChurnErrors > 0 {
		b.fail("%d routes: %d of %d churn requests failed", n, res.ChurnErrors, res.ChurnRequests+res.ChurnErrors)
	}
	res.ControllerRSSChurn, res.DataplaneRSSChurn = b.rss(ctx)
	settled := b.tr.when(func(t *tracker) bool { return t.attached == int64(n)+b.extra })
	if _, err := settled.wait(ctx, cfg.timeout); err != nil {
		return res, fmt.Errorf("attachedRoutes did not return to %d after the churn: %v", int64(n)+b.extra, err)
	}
	return res, nil
}

// create applies bench routes r-<from>..r-<to> with cfg.workers workers (retrying each up to 3
// times) and returns when the first was sent and the last answered.
func (b *bench) create(ctx context.Context, from, to int) (first, last time.Time, err error) {
	jobs := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	first = time.Now()
	for range b.cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := fmt.Sprintf("r-%05d", i)
				obj := routeObject(b.cfg.namespace, name, b.cfg.gateway, hostname(i), b.cfg.backends[0])
				var e error
				for try := 0; try < 3; try++ {
					if _, e = applyRoute(ctx, b.kc.create, obj); e == nil {
						break
					}
				}
				now := time.Now()
				mu.Lock()
				if e != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, e))
				} else {
					b.backend[name] = b.cfg.backends[0]
				}
				if now.After(last) {
					last = now
				}
				mu.Unlock()
			}
		}()
	}
	for i := from; i <= to && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		return first, last, fmt.Errorf("%d route creations failed, first: %v", len(errs), errs[0])
	}
	return first, last, ctx.Err()
}

func hostname(i int) string { return fmt.Sprintf("r-%05d.cp-bench.example", i) }

// changes measures cfg.changes backendRef changes on bench routes spread over 1..n (the second
// phase, offset 1, uses the routes half-way between the first's).
func (b *bench) changes(ctx context.Context, n, offset int, phase string) (dist, dist, error) {
	cfg := b.cfg
	var prop, floor []time.Duration
	timedOut, floorMissing := 0, 0
	for k := 0; k < cfg.changes && ctx.Err() == nil; k++ {
		i := 1 + (k*n/cfg.changes+offset*n/(2*cfg.changes))%n
		name, host := fmt.Sprintf("r-%05d", i), hostname(i)
		from := b.backend[name]
		to := cfg.backends[0]
		if from == to {
			to = cfg.backends[1]
		}
		if _, err := b.gw.servedBy(ctx, host, from, cfg.changeTimeout); err != nil {
			return summarize(prop, timedOut), summarize(floor, 0), fmt.Errorf("before change %d: %v", k+1, err)
		}
		c, err := changeBackend(ctx, b.kc.measure, b.gw, cfg.namespace, cfg.gateway, name, host, to, cfg.changeTimeout)
		if err != nil {
			return summarize(prop, timedOut), summarize(floor, 0), fmt.Errorf("change %d (%s): %v", k+1, name, err)
		}
		b.backend[name] = to
		if c.timedOut {
			timedOut++
		}
		prop = append(prop, c.propagation)
		if c.floorMissing {
			floorMissing++
		} else {
			floor = append(floor, c.floor)
		}
	}
	p, f := summarize(prop, timedOut), summarize(floor, 0)
	log.Printf("%d routes, %s: backendRef change → first answer from the new backend p50 %.0f / p99 %.0f / max %.0f ms (%d changes, %d timed out); watch floor p50 %.0f / p99 %.0f ms",
		n, phase, p.P50, p.P99, p.Max, p.N, timedOut, f.P50, f.P99)
	if timedOut > 0 {
		b.fail("%d routes, %s: %d of %d changes not served within %s", n, phase, timedOut, p.N, cfg.changeTimeout)
	}
	if floorMissing > 0 {
		log.Printf("%d routes, %s: the watch missed %d of %d changes (its watch ended); the floor is of the others", n, phase, floorMissing, p.N)
	}
	return p, f, nil
}

func (b *bench) rss(ctx context.Context) (controller, dataplane []float64) {
	controller, _, err := rssMB(ctx, b.kc.measure, b.cfg.podletDir, b.cfg.controllerNS, b.cfg.controllerSelector, "pylon-controller")
	if err != nil {
		log.Printf("controller RSS: %v", err)
	}
	dataplane, _, err = rssMB(ctx, b.kc.measure, b.cfg.podletDir, b.cfg.namespace, b.cfg.dataplaneSelector, "pylon-dataplane")
	if err != nil {
		log.Printf("data-plane RSS: %v", err)
	}
	log.Printf("RSS: controller %v MB, data plane %v MB", roundAll(controller), roundAll(dataplane))
	return roundAll(controller), roundAll(dataplane)
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = round1(x)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

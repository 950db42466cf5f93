// Command controlplane is the driver of bench/controlplane.sh, Pylon's control-plane benchmark
// (not a test): against a Gateway set up by the script, it creates HTTPRoutes in steps up to each
// of -sizes and measures, per size, how long the controller takes to attach and accept them, how
// many status writes it spends per route, how long a backendRef change takes to reach the data
// plane (beside the API server's own floor, a plain watch), the same under route churn, and the
// controller's and data plane's RSS; a probe runs through the Gateway all along. It prints
// progress on stderr and ends with one line "BENCH {json}" on stdout. bench/README.md says more.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	kubeconfig, namespace, gateway, listener, controllerName, addr string
	sizes                                                          []int
	backends                                                       [2]string
	changes, churnRate, workers, burst, probeRPS                   int
	qps                                                            float64
	churnLifetime, timeout, changeTimeout, quiet                   time.Duration
	probeBin, probeHost, probeLog, podletDir                       string
	controllerNS, controllerSelector, dataplaneSelector, commit    string
}

func parseFlags() config {
	var c config
	var sizes, backends string
	flag.StringVar(&c.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	flag.StringVar(&c.namespace, "namespace", "cp-bench", "namespace of the Gateway, backends and routes")
	flag.StringVar(&c.gateway, "gateway", "gw", "the Gateway the routes attach to")
	flag.StringVar(&c.listener, "listener", "http", "the Gateway listener whose attachedRoutes is watched")
	flag.StringVar(&c.controllerName, "controller-name", "pylon.dev/gateway-controller", "controllerName in route status")
	flag.StringVar(&c.addr, "addr", "", "the Gateway's address (host[:port])")
	flag.StringVar(&sizes, "sizes", "1000,3000,5000", "route counts, increasing; routes are added up to each")
	flag.StringVar(&backends, "backends", "echo-a,echo-b", "the two backend Services (port 8080)")
	flag.IntVar(&c.changes, "changes", 50, "backendRef changes measured per size, and again under churn")
	flag.IntVar(&c.churnRate, "churn-rate", 10, "routes created (and deleted) per second during churn")
	flag.DurationVar(&c.churnLifetime, "churn-lifetime", 5*time.Second, "how long a churn route lives")
	flag.IntVar(&c.workers, "workers", 16, "concurrent route creations")
	flag.Float64Var(&c.qps, "qps", 50, "client-side rate limit of route creations (kubectl's default)")
	flag.IntVar(&c.burst, "burst", 300, "client-side burst of route creations (kubectl's default)")
	flag.DurationVar(&c.timeout, "timeout", 15*time.Minute, "limit for attachedRoutes / all Accepted per size")
	flag.DurationVar(&c.changeTimeout, "change-timeout", 60*time.Second, "limit for one backendRef change")
	flag.DurationVar(&c.quiet, "quiet", 3*time.Second, "status writes are counted until none for this long")
	flag.StringVar(&c.probeBin, "probe", "", "the e2e/probe binary (empty: no probe)")
	flag.StringVar(&c.probeHost, "probe-host", "probe.cp-bench.example", "the probe route's hostname")
	flag.IntVar(&c.probeRPS, "probe-rps", 200, "probe requests per second, half keep-alive, half new connections")
	flag.StringVar(&c.probeLog, "probe-log", os.DevNull, "where the probe's failed requests are logged")
	flag.StringVar(&c.podletDir, "podlet-dir", "/var/lib/pylon-cluster/podlet", "the podlet's state directory")
	flag.StringVar(&c.controllerNS, "controller-namespace", "pylon-system", "namespace of the controller Pods")
	flag.StringVar(&c.controllerSelector, "controller-selector", "app.kubernetes.io/component=controller", "label selector of the controller Pods")
	flag.StringVar(&c.dataplaneSelector, "dataplane-selector", "", "label selector of the data-plane Pods (default: the Gateway's)")
	flag.StringVar(&c.commit, "commit", "", "the Pylon commit measured (reported as is)")
	flag.Parse()
	if c.addr == "" {
		log.Fatal("-addr (the Gateway's address) is required")
	}
	prev := 0
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= prev {
			log.Fatalf("-sizes must be increasing positive integers, not %q", sizes)
		}
		c.sizes, prev = append(c.sizes, n), n
	}
	b := strings.Split(backends, ",")
	if len(b) != 2 {
		log.Fatalf("-backends must name two Services, not %q", backends)
	}
	c.backends = [2]string{b[0], b[1]}
	if c.dataplaneSelector == "" {
		c.dataplaneSelector = "gateway.networking.k8s.io/gateway-name=" + c.gateway
	}
	if c.changes < 1 || c.churnRate < 1 || c.workers < 1 {
		log.Fatal("-changes, -churn-rate and -workers must be at least 1")
	}
	return c
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("cp-bench: ")
	cfg := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	report, err := run(ctx, cfg)
	if report != nil {
		printTable(os.Stderr, report)
		line, _ := json.Marshal(report)
		fmt.Printf("BENCH %s\n", line)
	}
	if err != nil {
		log.Fatal(err)
	}
	if report != nil && len(report.Failures) > 0 {
		os.Exit(1)
	}
}

package main

import (
	"fmt"
	"io"
	"strings"
)

// printTable writes the figures per size as a table, for people (the BENCH line is for tools).
func printTable(w io.Writer, r *report) {
	fmt.Fprintf(w, "\ncontrol-plane bench, commit %s, %s\n", r.Commit, r.Date)
	fmt.Fprintf(w, "%-7s %9s %9s %7s %22s %14s %22s %14s %16s %10s\n", "routes", "attached", "accepted",
		"writes", "propagation p50/p99/max", "floor p50/p99", "churn p50/p99/max", "floor p50/p99", "controller MB", "dplane MB")
	for _, s := range r.Sizes {
		fmt.Fprintf(w, "%-7d %9s %9s %7.2f %22s %14s %22s %14s %16s %10s\n", s.Routes, secs(s.AttachedS), secs(s.AcceptedS),
			s.StatusWritesPerRoute, three(s.Propagation), two(s.WatchFloor), three(s.ChurnPropagation), two(s.ChurnWatchFloor),
			mbs(s.ControllerRSS), mbs(s.DataplaneRSS))
	}
	if r.Probe != nil {
		fmt.Fprintf(w, "probe: %s\n", r.Probe.Line)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
}

func secs(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f s", *p)
}

func three(d dist) string {
	if d.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f/%.0f ms", d.P50, d.P99, d.Max)
}

func two(d dist) string {
	if d.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f ms", d.P50, d.P99)
}

func mbs(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "+")
}

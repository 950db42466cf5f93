package main

// The "summary" mode: a human summary of a conformance report, and the regression check of a
// run against the committed baseline.

import (
	"fmt"
	"io"
	"sort"
	"strings"

	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
)

// summarize renders the report: per profile, passed/failed/skipped for core and extended,
// the extended features supported and unsupported, and the failing tests by name.
func summarize(w io.Writer, r confv1.ConformanceReport) {
	fmt.Fprintf(w, "Conformance: %s %s (Gateway API %s, %s channel, mode %s, %s)\n",
		r.Implementation.Project, r.Implementation.Version, r.GatewayAPIVersion, r.GatewayAPIChannel, r.Mode, r.Date)
	profiles := append([]confv1.ProfileReport(nil), r.ProfileReports...)
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Name < profiles[j].Name })
	for _, p := range profiles {
		fmt.Fprintf(w, "%s\n", p.Name)
		fmt.Fprintf(w, "  core:     %s\n", statusLine(p.Core))
		if p.Extended == nil {
			fmt.Fprintf(w, "  extended: no extended tests ran\n")
			continue
		}
		fmt.Fprintf(w, "  extended: %s\n", statusLine(p.Extended.Status))
		fmt.Fprintf(w, "  extended features supported (%d): %s\n", len(p.Extended.SupportedFeatures), listOrNone(p.Extended.SupportedFeatures))
		fmt.Fprintf(w, "  extended features unsupported (%d): %s\n", len(p.Extended.UnsupportedFeatures), listOrNone(p.Extended.UnsupportedFeatures))
	}
	if len(r.SucceededProvisionalTests) > 0 {
		fmt.Fprintf(w, "provisional tests passed: %s\n", strings.Join(r.SucceededProvisionalTests, ", "))
	}
}

func statusLine(s confv1.Status) string {
	line := fmt.Sprintf("%-8s passed %d, failed %d, skipped %d", resultOrNone(s.Result), s.Passed, s.Failed, s.Skipped)
	if len(s.FailedTests) > 0 {
		line += "; failed: " + strings.Join(s.FailedTests, ", ")
	}
	if len(s.SkippedTests) > 0 {
		line += "; skipped: " + strings.Join(s.SkippedTests, ", ")
	}
	return line
}

func resultOrNone(r confv1.Result) string {
	if r == "" {
		return "none"
	}
	return string(r)
}

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

// comparison of a run against the committed baseline.
type comparison struct {
	// Regressed: passed in the baseline, and did not pass now although this run was allowed
	// to run it (it failed, was skipped, or was not attempted because a feature went missing).
	Regressed []string
	// NewlyPassing: passes now, did not pass in the baseline.
	NewlyPassing []string
}

func compareResults(baseline, current TestResults) comparison {
	now := map[string]bool{}
	for _, n := range current.Passed {
		now[n] = true
	}
	before := map[string]bool{}
	for _, n := range baseline.Passed {
		before[n] = true
	}
	var c comparison
	for _, n := range baseline.Passed {
		if !now[n] && current.inScope(n) {
			c.Regressed = append(c.Regressed, n)
		}
	}
	for _, n := range current.Passed {
		if !before[n] {
			c.NewlyPassing = append(c.NewlyPassing, n)
		}
	}
	sort.Strings(c.Regressed)
	sort.Strings(c.NewlyPassing)
	return c
}

// compareCounts is the fallback when the baseline has a report but no per-test results:
// per profile and level, fewer passed tests than the baseline is a regression.
func compareCounts(baseline, current confv1.ConformanceReport) []string {
	type counts struct{ core, extended int }
	tally := func(r confv1.ConformanceReport) map[string]counts {
		m := map[string]counts{}
		for _, p := range r.ProfileReports {
			c := counts{core: int(p.Core.Passed)}
			if p.Extended != nil {
				c.extended = int(p.Extended.Passed)
			}
			m[p.Name] = c
		}
		return m
	}
	before, now := tally(baseline), tally(current)
	var problems []string
	for name, b := range before {
		n := now[name]
		if n.core < b.core {
			problems = append(problems, fmt.Sprintf("%s core: %d passed, baseline %d", name, n.core, b.core))
		}
		if n.extended < b.extended {
			problems = append(problems, fmt.Sprintf("%s extended: %d passed, baseline %d", name, n.extended, b.extended))
		}
	}
	sort.Strings(problems)
	return problems
}

// markdownTable renders the README's conformance table: per profile, core and extended
// counts with the failing tests named, then the totals of distinct tests from the per-test
// results (a test counted in two profiles is one test).
func markdownTable(w io.Writer, r confv1.ConformanceReport, results TestResults) {
	fmt.Fprintf(w, "| profile | core | extended |\n| --- | --- | --- |\n")
	profiles := append([]confv1.ProfileReport(nil), r.ProfileReports...)
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Name > profiles[j].Name })
	for _, p := range profiles {
		core := fmt.Sprintf("%d / %d passed", p.Core.Passed, p.Core.Passed+p.Core.Failed+p.Core.Skipped)
		if len(p.Core.FailedTests) > 0 {
			core += fmt.Sprintf(" (failed: %s)", backticked(p.Core.FailedTests))
		}
		ext := "—"
		if p.Extended != nil {
			s := p.Extended.Status
			ext = fmt.Sprintf("%d passed, %d failed", s.Passed, s.Failed)
			if len(s.FailedTests) > 0 {
				ext += fmt.Sprintf(" (%s)", backticked(s.FailedTests))
			}
			ext += fmt.Sprintf("; features: %d supported, %d not", len(p.Extended.SupportedFeatures), len(p.Extended.UnsupportedFeatures))
			if len(p.Extended.UnsupportedFeatures) > 0 {
				ext += fmt.Sprintf(" (%s)", backticked(p.Extended.UnsupportedFeatures))
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", p.Name, core, ext)
	}
	fmt.Fprintf(w, "\n%d distinct tests passed, %d failed, %d skipped (run %s, Pylon %s).\n",
		len(results.Passed), len(results.Failed), len(results.Skipped), r.Date, r.Implementation.Version)
}

func backticked(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "`" + n + "`"
	}
	return strings.Join(quoted, ", ")
}

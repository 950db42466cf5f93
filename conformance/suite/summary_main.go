package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
)

// summaryMain prints the summary of -report and, given a baseline, checks for regressions.
// Exit codes: 0 fine, 1 regression, 2 bad usage or unreadable input.
func summaryMain(args []string) int {
	fs := flag.NewFlagSet("pylon-conformance summary", flag.ContinueOnError)
	reportPath := fs.String("report", "", "conformance report of this run (required)")
	resultsPath := fs.String("results", "", "per-test results of this run (required)")
	baseReportPath := fs.String("baseline-report", "", "committed report to compare with (optional)")
	baseResultsPath := fs.String("baseline-results", "", "committed per-test results to compare with (optional)")
	markdownPath := fs.String("markdown", "", "also write the README's conformance table here (optional)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *reportPath == "" || *resultsPath == "" {
		fmt.Fprintln(os.Stderr, "pylon-conformance summary: -report and -results are required")
		return 2
	}
	var report confv1.ConformanceReport
	var results TestResults
	if err := readYAML(*reportPath, &report); err != nil {
		fmt.Fprintf(os.Stderr, "pylon-conformance summary: %v\n", err)
		return 2
	}
	if err := readYAML(*resultsPath, &results); err != nil {
		fmt.Fprintf(os.Stderr, "pylon-conformance summary: %v\n", err)
		return 2
	}
	summarize(os.Stdout, report)
	if *markdownPath != "" {
		f, err := os.Create(*markdownPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pylon-conformance summary: %v\n", err)
			return 2
		}
		markdownTable(f, report, results)
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pylon-conformance summary: %v\n", err)
			return 2
		}
	}
	code, err := checkRegressions(report, results, *baseReportPath, *baseResultsPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pylon-conformance summary: %v\n", err)
		return 2
	}
	return code
}

// checkRegressions prints the comparison with the baseline and returns 1 on a regression.
func checkRegressions(report confv1.ConformanceReport, results TestResults, baseReportPath, baseResultsPath string) (int, error) {
	switch {
	case baseResultsPath != "":
		var base TestResults
		if err := readYAML(baseResultsPath, &base); err != nil {
			return 2, err
		}
		c := compareResults(base, results)
		if len(c.NewlyPassing) > 0 {
			fmt.Printf("newly passing (%d): %s\n", len(c.NewlyPassing), strings.Join(c.NewlyPassing, ", "))
		}
		if len(c.Regressed) > 0 {
			fmt.Printf("REGRESSION: %d test(s) passed in the committed report and do not pass now: %s\n",
				len(c.Regressed), strings.Join(c.Regressed, ", "))
			return 1, nil
		}
		fmt.Printf("no regressions against the committed report (%d tests passed there)\n", len(base.Passed))
	case baseReportPath != "":
		if results.Partial() {
			fmt.Println("partial run (-run-test/-skip-tests) and no committed per-test results: regression check skipped")
			return 0, nil
		}
		var base confv1.ConformanceReport
		if err := readYAML(baseReportPath, &base); err != nil {
			return 2, err
		}
		if problems := compareCounts(base, report); len(problems) > 0 {
			fmt.Printf("REGRESSION: fewer tests pass than in the committed report: %s\n", strings.Join(problems, "; "))
			return 1, nil
		}
		fmt.Println("no regressions against the committed report (by pass counts; it has no per-test results)")
	default:
		fmt.Println("no committed report yet: regression check skipped")
	}
	return 0, nil
}

// Command pylon-conformance runs the upstream Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance v1.5.1) against Pylon and writes the conformance report
// plus a per-test results file; `pylon-conformance summary` prints a report's summary and
// checks a run against the committed baseline for regressions.
//
//	pylon-conformance -version 0.1.0 [-gateway-class pylon] [-report-output FILE] [-run-test NAME] ...
//	pylon-conformance summary -report FILE -results FILE [-baseline-report FILE] [-baseline-results FILE]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "summary" {
		os.Exit(summaryMain(os.Args[2:]))
	}
	cfg, err := parseRunFlags(os.Args[1:], os.Stderr)
	var usage *flagError
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &usage):
		os.Exit(2) // the flag package has printed the error and the usage
	case err != nil:
		fmt.Fprintf(os.Stderr, "pylon-conformance: %v\n", err)
		os.Exit(2)
	}
	os.Exit(runSuite(cfg))
}

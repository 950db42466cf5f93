package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
)

func fixtureReport(httpCorePassed, httpExtPassed uint32) confv1.ConformanceReport {
	return confv1.ConformanceReport{
		Implementation:    confv1.Implementation{Project: "pylon", Version: "0.1.0"},
		GatewayAPIVersion: "v1.5.1",
		GatewayAPIChannel: "experimental",
		Mode:              "default",
		ProfileReports: []confv1.ProfileReport{
			{
				Name: "GATEWAY-HTTP",
				Core: confv1.Status{Result: confv1.Failure, Statistics: confv1.Statistics{Passed: httpCorePassed, Failed: 1},
					FailedTests: []string{"HTTPRouteHostnameIntersection"}},
				Extended: &confv1.ExtendedStatus{
					Status:              confv1.Status{Result: confv1.Success, Statistics: confv1.Statistics{Passed: httpExtPassed}},
					SupportedFeatures:   []string{"HTTPRouteQueryParamMatching", "HTTPRouteResponseHeaderModification"},
					UnsupportedFeatures: []string{"HTTPRouteRequestMirror"},
				},
			},
			{Name: "GATEWAY-GRPC", Core: confv1.Status{Result: confv1.Success, Statistics: confv1.Statistics{Passed: 12}}},
		},
	}
}

func TestSummaryNamesCountsFeaturesAndFailures(t *testing.T) {
	var out bytes.Buffer
	summarize(&out, fixtureReport(30, 2))
	s := out.String()
	for _, want := range []string{
		"Gateway API v1.5.1, experimental channel",
		"GATEWAY-GRPC\n  core:     success  passed 12, failed 0, skipped 0\n  extended: no extended tests ran",
		"GATEWAY-HTTP\n  core:     failure  passed 30, failed 1, skipped 0; failed: HTTPRouteHostnameIntersection",
		"extended: success  passed 2, failed 0, skipped 0",
		"extended features supported (2): HTTPRouteQueryParamMatching, HTTPRouteResponseHeaderModification",
		"extended features unsupported (1): HTTPRouteRequestMirror",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	// Profiles are printed in a stable order whatever order the report lists them in.
	if strings.Index(s, "GATEWAY-GRPC") > strings.Index(s, "GATEWAY-HTTP") {
		t.Errorf("profiles not sorted:\n%s", s)
	}
}

func TestCompareResults(t *testing.T) {
	base := TestResults{Passed: []string{"A", "B", "C", "D"}, Failed: []string{"E"}}
	cur := TestResults{Passed: []string{"A", "C", "E"}, Failed: []string{"B"}}
	got := compareResults(base, cur)
	want := comparison{Regressed: []string{"B", "D"}, NewlyPassing: []string{"E"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("compare = %+v, want %+v", got, want)
	}
	// A filtered run is held only to the tests it was allowed to run.
	partial := TestResults{RunTest: "C", Passed: []string{"C"}}
	if got := compareResults(base, partial); len(got.Regressed) != 0 {
		t.Errorf("run-test C regressed %v", got.Regressed)
	}
	partial = TestResults{RunTest: "B", Failed: []string{"B"}}
	if got := compareResults(base, partial); !reflect.DeepEqual(got.Regressed, []string{"B"}) {
		t.Errorf("run-test B: regressed %v, want [B]", got.Regressed)
	}
	skipping := TestResults{SkipTests: []string{"B", "D"}, Passed: []string{"A", "C"}}
	if got := compareResults(base, skipping); len(got.Regressed) != 0 {
		t.Errorf("skip B,D regressed %v", got.Regressed)
	}
}

func TestCompareCounts(t *testing.T) {
	if p := compareCounts(fixtureReport(30, 2), fixtureReport(31, 2)); len(p) != 0 {
		t.Errorf("more passes flagged: %v", p)
	}
	p := compareCounts(fixtureReport(30, 2), fixtureReport(29, 1))
	want := []string{"GATEWAY-HTTP core: 29 passed, baseline 30", "GATEWAY-HTTP extended: 1 passed, baseline 2"}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("problems = %q, want %q", p, want)
	}
	missing := fixtureReport(30, 2)
	missing.ProfileReports = missing.ProfileReports[:1]
	if p := compareCounts(fixtureReport(30, 2), missing); len(p) != 1 || !strings.HasPrefix(p[0], "GATEWAY-GRPC core: 0 passed") {
		t.Errorf("dropped profile not flagged: %v", p)
	}
}

// TestCheckRegressionsFromFiles goes through the files the script passes, in both formats.
func TestCheckRegressionsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) string {
		p := filepath.Join(dir, name)
		if err := writeYAML(p, v); err != nil {
			t.Fatal(err)
		}
		return p
	}
	baseResults := write("base-tests.yaml", TestResults{Passed: []string{"A", "B"}})
	baseReport := write("base-report.yaml", fixtureReport(30, 2))
	report := fixtureReport(30, 2)

	if code, err := checkRegressions(report, TestResults{Passed: []string{"A", "B", "C"}}, baseReport, baseResults); err != nil || code != 0 {
		t.Errorf("improvement: code %d, err %v", code, err)
	}
	if code, err := checkRegressions(report, TestResults{Passed: []string{"A"}}, baseReport, baseResults); err != nil || code != 1 {
		t.Errorf("lost B: code %d, err %v, want 1", code, err)
	}
	if code, err := checkRegressions(fixtureReport(29, 2), TestResults{}, baseReport, ""); err != nil || code != 1 {
		t.Errorf("count drop without per-test baseline: code %d, err %v, want 1", code, err)
	}
	if code, err := checkRegressions(report, TestResults{}, "", ""); err != nil || code != 0 {
		t.Errorf("no baseline: code %d, err %v, want 0", code, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("passed: [A]\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := checkRegressions(report, TestResults{}, "", bad); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown field accepted: %v", err)
	}
}

func TestMarkdownTableCountsEachProfileAndTheDistinctTests(t *testing.T) {
	r := fixtureReport(30, 2)
	r.Date = "2026-11-23T00:00:00Z"
	var out bytes.Buffer
	markdownTable(&out, r, TestResults{Passed: []string{"a", "b", "c"}, Failed: []string{"d"}})
	want := "| profile | core | extended |\n| --- | --- | --- |\n" +
		"| GATEWAY-HTTP | 30 / 31 passed (failed: `HTTPRouteHostnameIntersection`) | 2 passed, 0 failed; features: 2 supported, 1 not (`HTTPRouteRequestMirror`) |\n" +
		"| GATEWAY-GRPC | 12 / 12 passed | — |\n" +
		"\n3 distinct tests passed, 1 failed, 0 skipped (run 2026-11-23T00:00:00Z, Pylon 0.1.0).\n"
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

package main

// Per-test outcomes. The upstream report lists failed and skipped tests but only counts the
// passed ones, so the runner records every test's outcome itself into a companion file
// (pylon-tests.yaml). The regression check compares those names.

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"

	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/yaml"
)

// Outcome of one conformance test that actually ran.
type Outcome string

const (
	Passed  Outcome = "Passed"
	Failed  Outcome = "Failed"
	Skipped Outcome = "Skipped"
)

// TestResults is the companion file's schema. Tests the suite did not attempt (unsupported
// features, excluded by -run-test/-skip-tests) appear in none of the lists.
type TestResults struct {
	GatewayAPIVersion string `json:"gatewayAPIVersion"`
	PylonVersion      string `json:"pylonVersion"`
	// RunTest and SkipTests record a filtered (development) run; the regression check only
	// holds such a run to the tests it was allowed to run.
	RunTest   string   `json:"runTest,omitempty"`
	SkipTests []string `json:"skipTests,omitempty"`
	Passed    []string `json:"passed"`
	Failed    []string `json:"failed"`
	Skipped   []string `json:"skipped"`
}

// Partial reports whether the run was filtered to a subset of the suite.
func (r TestResults) Partial() bool { return r.RunTest != "" || len(r.SkipTests) > 0 }

// inScope reports whether this run was allowed to run the named test.
func (r TestResults) inScope(name string) bool {
	if r.RunTest != "" && r.RunTest != name {
		return false
	}
	for _, s := range r.SkipTests {
		if s == name {
			return false
		}
	}
	return true
}

// recorder collects outcomes from the wrapped tests; parallel tests report concurrently.
type recorder struct {
	mu       sync.Mutex
	outcomes map[string]Outcome
}

func newRecorder() *recorder { return &recorder{outcomes: map[string]Outcome{}} }

func (r *recorder) record(name string, o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[name] = o
}

// wrap returns copies of the tests whose Test functions record their outcome. The outcome is
// read in a t.Cleanup because cleanups run after the test and all its subtests (parallel ones
// included) have finished, and after FailNow/SkipNow, so Failed/Skipped are final there.
func (r *recorder) wrap(tests []suite.ConformanceTest) []suite.ConformanceTest {
	out := make([]suite.ConformanceTest, len(tests))
	for i, test := range tests {
		inner, name := test.Test, test.ShortName
		test.Test = func(t *testing.T, s *suite.ConformanceTestSuite) {
			t.Cleanup(func() { r.record(name, outcomeOf(t)) })
			inner(t, s)
		}
		out[i] = test
	}
	return out
}

func outcomeOf(t testing.TB) Outcome {
	switch {
	case t.Failed():
		return Failed
	case t.Skipped():
		return Skipped
	default:
		return Passed
	}
}

// results snapshots the recorded outcomes as sorted lists.
func (r *recorder) results(cfg runConfig, gatewayAPIVersion string) TestResults {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := TestResults{
		GatewayAPIVersion: gatewayAPIVersion,
		PylonVersion:      cfg.Version,
		RunTest:           cfg.RunTest,
		SkipTests:         cfg.SkipTests,
		Passed:            []string{},
		Failed:            []string{},
		Skipped:           []string{},
	}
	for name, o := range r.outcomes {
		switch o {
		case Passed:
			res.Passed = append(res.Passed, name)
		case Failed:
			res.Failed = append(res.Failed, name)
		case Skipped:
			res.Skipped = append(res.Skipped, name)
		}
	}
	sort.Strings(res.Passed)
	sort.Strings(res.Failed)
	sort.Strings(res.Skipped)
	return res
}

func writeYAML(path string, v any) error {
	raw, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// readYAML decodes a YAML file strictly: an unknown field means the file is not what we think.
func readYAML(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(raw, v); err != nil {
		return fmt.Errorf("parsing %s: %w", path, err)
	}
	return nil
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

// recorderHelperEnv makes this test binary, re-executed, run wrapped tests that really fail;
// failures cannot be produced in-process without failing the parent test.
const recorderHelperEnv = "PYLON_RECORDER_HELPER_OUT"

func TestRecorderHelper(t *testing.T) {
	out := os.Getenv(recorderHelperEnv)
	if out == "" {
		t.Skip("helper for TestRecorderRecordsRealOutcomes")
	}
	rec := newRecorder()
	wrapped := rec.wrap([]suite.ConformanceTest{
		{ShortName: "Passes", Test: func(t *testing.T, _ *suite.ConformanceTestSuite) {}},
		{ShortName: "Errors", Test: func(t *testing.T, _ *suite.ConformanceTestSuite) { t.Error("boom") }},
		{ShortName: "FailsNow", Test: func(t *testing.T, _ *suite.ConformanceTestSuite) { t.Fatal("boom"); t.Log("unreached") }},
		{ShortName: "Skips", Test: func(t *testing.T, _ *suite.ConformanceTestSuite) { t.Skip("not today") }},
		{ShortName: "ParallelSubtestFails", Test: func(t *testing.T, _ *suite.ConformanceTestSuite) {
			t.Run("sub", func(t *testing.T) { t.Parallel(); t.Error("late failure") })
		}},
	})
	for _, test := range wrapped {
		t.Run(test.ShortName, func(t *testing.T) { test.Test(t, nil) })
	}
	// Record only after all subtests (and their cleanups) finished.
	t.Cleanup(func() {
		if err := writeYAML(out, rec.results(runConfig{Version: "0.1.0", RunTest: ""}, "v1.5.1")); err != nil {
			panic(err)
		}
	})
}

func TestRecorderRecordsRealOutcomes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tests.yaml")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRecorderHelper$")
	cmd.Env = append(os.Environ(), recorderHelperEnv+"="+out)
	output, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("helper run should fail (it has failing tests):\n%s", output)
	}
	var got TestResults
	if err := readYAML(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, output)
	}
	want := TestResults{
		GatewayAPIVersion: "v1.5.1", PylonVersion: "0.1.0",
		Passed:  []string{"Passes"},
		Failed:  []string{"Errors", "FailsNow", "ParallelSubtestFails"},
		Skipped: []string{"Skips"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results = %+v, want %+v", got, want)
	}
}

func TestDefaultResultsPath(t *testing.T) {
	for in, want := range map[string]string{
		"conformance/reports/v1.5.1/pylon-report.yaml": "conformance/reports/v1.5.1/pylon-tests.yaml",
		"/tmp/out.yaml": "/tmp/out.tests.yaml",
	} {
		if got := defaultResultsPath(in); got != want {
			t.Errorf("defaultResultsPath(%q) = %q, want %q", in, got, want)
		}
	}
}

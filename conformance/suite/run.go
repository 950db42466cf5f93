package main

// The "run" mode: the upstream suite driven from a plain binary. The suite's API takes a
// *testing.T, so the binary hands one test function to testing.Main, the standard library's
// entry point for running tests outside `go test`.

import (
	"fmt"
	"io/fs"
	"os"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientset "k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	v1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1alpha3"
	"sigs.k8s.io/gateway-api/apis/v1beta1"
	xv1alpha1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
	"sigs.k8s.io/gateway-api/conformance"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

// runSuite connects to the cluster named by KUBECONFIG, runs the suite, writes the report and
// the per-test results, and returns the exit code (1 if any test failed or setup failed).
func runSuite(cfg runConfig) int {
	// controller-runtime complains loudly unless a logger is set.
	log.SetLogger(zap.New(zap.WriteTo(os.Stdout), zap.UseDevMode(true)))

	opts := cfg.suiteOptions()
	if err := opts.Implementation.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "pylon-conformance: implementation details: %v\n", err)
		return 2
	}
	if err := addClients(&opts); err != nil {
		fmt.Fprintf(os.Stderr, "pylon-conformance: %v\n", err)
		return 1
	}
	opts.ManifestFS = []fs.FS{&conformance.Manifests}

	rec := newRecorder()
	conformanceTests := rec.wrap(tests.ConformanceTests)
	run := func(t *testing.T) {
		s, err := suite.NewConformanceTestSuite(opts)
		if err != nil {
			t.Fatalf("initializing the conformance suite: %v", err)
		}
		s.Setup(t, conformanceTests)
		if err := s.Run(t, conformanceTests); err != nil {
			t.Fatalf("running the conformance suite: %v", err)
		}
		report, err := s.Report()
		if err != nil {
			t.Fatalf("building the conformance report: %v", err)
		}
		if err := writeYAML(cfg.ReportPath, report); err != nil {
			t.Fatal(err)
		}
		if err := writeYAML(cfg.ResultsPath, rec.results(cfg, report.GatewayAPIVersion)); err != nil {
			t.Fatal(err)
		}
		t.Logf("report written to %s, per-test results to %s", cfg.ReportPath, cfg.ResultsPath)
	}

	// testing.Main parses the process arguments as test flags; ours were parsed already.
	os.Args = []string{os.Args[0], "-test.v"}
	testing.Main(
		func(_, _ string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: "GatewayAPIConformance", F: run}},
		nil, nil,
	)
	return 0 // not reached: testing.Main exits
}

// addClients fills the Kubernetes clients the suite uses, with every Gateway API kind in the
// client's scheme (as upstream's DefaultOptions does).
func addClients(opts *suite.ConformanceOptions) error {
	restCfg, err := ctrlconfig.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes client config (is KUBECONFIG set?): %w", err)
	}
	c, err := client.New(restCfg, client.Options{})
	if err != nil {
		return fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	cs, err := clientset.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("creating the Kubernetes clientset: %w", err)
	}
	for _, install := range []func(*runtime.Scheme) error{
		v1alpha3.Install, v1alpha2.Install, v1beta1.Install, xv1alpha1.Install, v1.Install, apiextensionsv1.AddToScheme,
	} {
		if err := install(c.Scheme()); err != nil {
			return fmt.Errorf("registering API types: %w", err)
		}
	}
	opts.Client, opts.Clientset, opts.RestConfig = c, cs, restCfg
	return nil
}

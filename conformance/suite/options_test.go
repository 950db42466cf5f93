package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/gateway-api/apis/v1beta1"
	conformanceconfig "sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

func TestDefaultsBuildInferringOptions(t *testing.T) {
	cfg, err := parseRunFlags([]string{"-version", "0.1.0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	opts := cfg.suiteOptions()
	if opts.GatewayClassName != "pylon" {
		t.Errorf("gateway class = %q, want pylon", opts.GatewayClassName)
	}
	// Feature inference from the GatewayClass status needs all of these empty/false.
	if opts.SupportedFeatures.Len() != 0 || opts.ExemptFeatures.Len() != 0 || opts.EnableAllSupportedFeatures || opts.RunTest != "" {
		t.Errorf("options would not infer features from the GatewayClass: %+v", opts)
	}
	if !opts.ConformanceProfiles.Has(suite.GatewayHTTPConformanceProfileName) ||
		!opts.ConformanceProfiles.Has(suite.GatewayGRPCConformanceProfileName) ||
		!opts.ConformanceProfiles.Has(suite.GatewayTLSConformanceProfileName) || opts.ConformanceProfiles.Len() != 3 {
		t.Errorf("profiles = %v, want GATEWAY-HTTP, GATEWAY-GRPC and GATEWAY-TLS", opts.ConformanceProfiles.UnsortedList())
	}
	impl := opts.Implementation
	if impl.Organization != "pylon-dev" || impl.Project != "pylon" || impl.URL != "https://github.com/pylon-dev/pylon" ||
		impl.Version != "0.1.0" || len(impl.Contact) != 1 || impl.Contact[0] != "https://github.com/pylon-dev/pylon/issues" {
		t.Errorf("implementation = %+v", impl)
	}
	if err := impl.Validate(); err != nil {
		t.Errorf("implementation invalid: %v", err)
	}
	if opts.TimeoutConfig != conformanceconfig.DefaultTimeoutConfig() {
		t.Errorf("timeouts differ from upstream defaults without a -timeout flag")
	}
	if !opts.CleanupBaseResources || opts.FailFast || opts.Debug {
		t.Errorf("cleanup/fail-fast/debug defaults wrong: %+v", opts)
	}
	if cfg.ReportPath != "conformance/reports/v1.5.1/pylon-report.yaml" || cfg.ResultsPath != "conformance/reports/v1.5.1/pylon-tests.yaml" {
		t.Errorf("paths = %q, %q", cfg.ReportPath, cfg.ResultsPath)
	}
	if opts.ReportOutputPath != cfg.ReportPath {
		t.Errorf("ReportOutputPath = %q", opts.ReportOutputPath)
	}
}

func TestFlagsOverride(t *testing.T) {
	cfg, err := parseRunFlags([]string{
		"-version", "1.2.3", "-gateway-class", "other", "-run-test", "HTTPRouteSimpleSameNamespace",
		"-skip-tests", "A, B,,", "-fail-fast", "-debug", "-cleanup-base-resources=false",
		"-timeout", "GatewayMustHaveAddress=3m", "-timeout", "MaxTimeToConsistency=90s",
		"-usable-address", "10.0.0.7", "-unusable-address", "nope.example",
		"-conformance-profiles", "GATEWAY-HTTP", "-report-output", "/tmp/r.yaml",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	opts := cfg.suiteOptions()
	if opts.GatewayClassName != "other" || opts.RunTest != "HTTPRouteSimpleSameNamespace" || !opts.FailFast || !opts.Debug || opts.CleanupBaseResources {
		t.Errorf("flags not applied: %+v", opts)
	}
	if strings.Join(opts.SkipTests, "|") != "A|B" {
		t.Errorf("skip tests = %q", opts.SkipTests)
	}
	want := conformanceconfig.DefaultTimeoutConfig()
	want.GatewayMustHaveAddress = 3 * time.Minute
	want.MaxTimeToConsistency = 90 * time.Second
	if opts.TimeoutConfig != want {
		t.Errorf("timeouts = %+v, want %+v", opts.TimeoutConfig, want)
	}
	if len(opts.UsableNetworkAddresses) != 1 || *opts.UsableNetworkAddresses[0].Type != v1beta1.IPAddressType {
		t.Errorf("usable address = %+v", opts.UsableNetworkAddresses)
	}
	if len(opts.UnusableNetworkAddresses) != 1 || *opts.UnusableNetworkAddresses[0].Type != v1beta1.HostnameAddressType {
		t.Errorf("unusable address = %+v", opts.UnusableNetworkAddresses)
	}
	if opts.ConformanceProfiles.Len() != 1 {
		t.Errorf("profiles = %v", opts.ConformanceProfiles.UnsortedList())
	}
	if cfg.ResultsPath != "/tmp/r.tests.yaml" {
		t.Errorf("results path = %q", cfg.ResultsPath)
	}
}

func TestBadFlagsAreNamed(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"no version":      {[]string{}, "-version is required"},
		"unknown profile": {[]string{"-version", "1", "-conformance-profiles", "GATEWAY-HTTP,HTTP"}, `unknown conformance profile "HTTP"`},
		"no profiles":     {[]string{"-version", "1", "-conformance-profiles", " , "}, "at least one profile"},
		"unknown timeout": {[]string{"-version", "1", "-timeout", "Nope=1s"}, `unknown timeout "Nope"`},
		"bad duration":    {[]string{"-version", "1", "-timeout", "GetTimeout=soon"}, "timeout GetTimeout"},
		"negative":        {[]string{"-version", "1", "-timeout", "GetTimeout=-1s"}, "must not be negative"},
		"no equals":       {[]string{"-version", "1", "-timeout", "GetTimeout"}, "want Name=Duration"},
		"empty class":     {[]string{"-version", "1", "-gateway-class", ""}, "-gateway-class must not be empty"},
		"stray argument":  {[]string{"-version", "1", "extra"}, "unexpected arguments"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseRunFlags(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

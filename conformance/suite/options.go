package main

// Command-line parsing for the "run" mode and its translation into the upstream suite's
// options. Everything here is pure (no cluster access) so it is unit-tested.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"

	"sigs.k8s.io/gateway-api/apis/v1beta1"
	conformanceconfig "sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

// Pylon's identity in the conformance report.
const (
	implOrganization = "pylon-dev"
	implProject      = "pylon"
	implURL          = "https://github.com/pylon-dev/pylon"
	implContact      = "https://github.com/pylon-dev/pylon/issues"
)

// defaultProfiles are the conformance profiles Pylon claims.
var defaultProfiles = []string{
	string(suite.GatewayHTTPConformanceProfileName),
	string(suite.GatewayGRPCConformanceProfileName),
	string(suite.GatewayTLSConformanceProfileName),
}

// knownProfiles are the profile names the v1.5.1 suite defines.
var knownProfiles = sets.New(
	string(suite.GatewayHTTPConformanceProfileName),
	string(suite.GatewayGRPCConformanceProfileName),
	string(suite.GatewayTLSConformanceProfileName),
	string(suite.MeshHTTPConformanceProfileName),
	string(suite.MeshGRPCConformanceProfileName),
)

// runConfig is what the runner was asked to do, after flag parsing and validation.
type runConfig struct {
	GatewayClass      string
	Version           string
	ReportPath        string
	ResultsPath       string
	Profiles          []string
	RunTest           string
	SkipTests         []string
	Debug             bool
	Cleanup           bool
	FailFast          bool
	AllowCRDsMismatch bool
	SkipProvisional   bool
	UsableAddress     string
	UnusableAddress   string
	// Timeouts overrides fields of the upstream default TimeoutConfig, by field name.
	Timeouts map[string]time.Duration
}

// flagError is a parse error the flag package has already reported, with the usage.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// timeoutFlag collects repeated -timeout Name=Duration flags.
type timeoutFlag map[string]time.Duration

func (f timeoutFlag) String() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+f[k].String())
	}
	return strings.Join(parts, ",")
}

func (f timeoutFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want Name=Duration (e.g. GatewayMustHaveAddress=3m), got %q", v)
	}
	if !timeoutFieldNames().Has(name) {
		return fmt.Errorf("unknown timeout %q; known: %s", name, strings.Join(sets.List(timeoutFieldNames()), ", "))
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		return fmt.Errorf("timeout %s: %w", name, err)
	}
	if d < 0 {
		return fmt.Errorf("timeout %s: must not be negative, got %s", name, d)
	}
	f[name] = d
	return nil
}

// timeoutFieldNames lists the time.Duration fields of the upstream TimeoutConfig, so the
// -timeout flag follows whatever the pinned suite version defines.
func timeoutFieldNames() sets.Set[string] {
	names := sets.New[string]()
	t := reflect.TypeOf(conformanceconfig.TimeoutConfig{})
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Type == reflect.TypeOf(time.Duration(0)) {
			names.Insert(t.Field(i).Name)
		}
	}
	return names
}

// parseRunFlags parses the run mode's arguments (without the program name).
func parseRunFlags(args []string, output io.Writer) (runConfig, error) {
	cfg := runConfig{Timeouts: map[string]time.Duration{}}
	fs := flag.NewFlagSet("pylon-conformance", flag.ContinueOnError)
	fs.SetOutput(output)
	var profiles, skipTests string
	fs.StringVar(&cfg.GatewayClass, "gateway-class", "pylon", "GatewayClass the suite's Gateways use")
	fs.StringVar(&cfg.Version, "version", "", "Pylon version recorded in the report (required)")
	fs.StringVar(&cfg.ReportPath, "report-output", "conformance/reports/v1.5.1/pylon-report.yaml", "where to write the conformance report")
	fs.StringVar(&cfg.ResultsPath, "results-output", "", "where to write the per-test results (default: next to the report, pylon-tests.yaml)")
	fs.StringVar(&profiles, "conformance-profiles", strings.Join(defaultProfiles, ","), "comma-separated conformance profiles")
	fs.StringVar(&cfg.RunTest, "run-test", "", "run only this test (by short name); for development, disables feature inference")
	fs.StringVar(&skipTests, "skip-tests", "", "comma-separated tests to skip; for development")
	fs.BoolVar(&cfg.Debug, "debug", false, "print the suite's debug logs")
	fs.BoolVar(&cfg.Cleanup, "cleanup-base-resources", true, "delete the suite's base resources after the run")
	fs.BoolVar(&cfg.FailFast, "fail-fast", false, "stop at the first failing test; for development")
	fs.BoolVar(&cfg.AllowCRDsMismatch, "allow-crds-mismatch", false, "run even if installed CRDs mix versions/channels")
	fs.BoolVar(&cfg.SkipProvisional, "skip-provisional-tests", false, "skip provisional tests")
	fs.StringVar(&cfg.UsableAddress, "usable-address", "", "an address Gateways may request (GatewayStaticAddresses)")
	fs.StringVar(&cfg.UnusableAddress, "unusable-address", "", "an address Gateways must fail to get (GatewayStaticAddresses)")
	fs.Var(timeoutFlag(cfg.Timeouts), "timeout", "override one upstream timeout, Name=Duration (repeatable), e.g. GatewayMustHaveAddress=3m")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return runConfig{}, err
		}
		return runConfig{}, &flagError{err}
	}
	if fs.NArg() > 0 {
		return runConfig{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.GatewayClass == "" {
		return runConfig{}, errors.New("-gateway-class must not be empty")
	}
	if cfg.Version == "" {
		return runConfig{}, errors.New("-version is required (the report records which Pylon version was tested)")
	}
	if cfg.ReportPath == "" {
		return runConfig{}, errors.New("-report-output must not be empty")
	}
	if cfg.ResultsPath == "" {
		cfg.ResultsPath = defaultResultsPath(cfg.ReportPath)
	}
	cfg.Profiles = splitList(profiles)
	if len(cfg.Profiles) == 0 {
		return runConfig{}, errors.New("-conformance-profiles must name at least one profile")
	}
	for _, p := range cfg.Profiles {
		if !knownProfiles.Has(p) {
			return runConfig{}, fmt.Errorf("unknown conformance profile %q; known: %s", p, strings.Join(sets.List(knownProfiles), ", "))
		}
	}
	cfg.SkipTests = splitList(skipTests)
	return cfg, nil
}

// defaultResultsPath puts the per-test results beside the report: X-report.yaml → X-tests.yaml.
func defaultResultsPath(reportPath string) string {
	if base, ok := strings.CutSuffix(reportPath, "-report.yaml"); ok {
		return base + "-tests.yaml"
	}
	return strings.TrimSuffix(reportPath, ".yaml") + ".tests.yaml"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// suiteOptions builds the upstream options, without the Kubernetes clients (added by the
// caller). SupportedFeatures and ExemptFeatures stay empty so the suite infers the supported
// features from the GatewayClass status.
func (cfg runConfig) suiteOptions() suite.ConformanceOptions {
	profiles := sets.New[suite.ConformanceProfileName]()
	for _, p := range cfg.Profiles {
		profiles.Insert(suite.ConformanceProfileName(p))
	}
	timeouts := conformanceconfig.DefaultTimeoutConfig()
	tv := reflect.ValueOf(&timeouts).Elem()
	for name, d := range cfg.Timeouts {
		tv.FieldByName(name).Set(reflect.ValueOf(d))
	}
	opts := suite.ConformanceOptions{
		GatewayClassName:     cfg.GatewayClass,
		Debug:                cfg.Debug,
		CleanupBaseResources: cfg.Cleanup,
		ConformanceProfiles:  profiles,
		TimeoutConfig:        timeouts,
		RunTest:              cfg.RunTest,
		SkipTests:            cfg.SkipTests,
		SkipProvisionalTests: cfg.SkipProvisional,
		AllowCRDsMismatch:    cfg.AllowCRDsMismatch,
		FailFast:             cfg.FailFast,
		ReportOutputPath:     cfg.ReportPath,
		Implementation:       suite.ParseImplementation(implOrganization, implProject, implURL, cfg.Version, implContact),
	}
	if cfg.UsableAddress != "" {
		opts.UsableNetworkAddresses = []v1beta1.GatewaySpecAddress{gatewayAddress(cfg.UsableAddress)}
	}
	if cfg.UnusableAddress != "" {
		opts.UnusableNetworkAddresses = []v1beta1.GatewaySpecAddress{gatewayAddress(cfg.UnusableAddress)}
	}
	return opts
}

// gatewayAddress types an address as IPAddress when it parses as one, else Hostname.
func gatewayAddress(v string) v1beta1.GatewaySpecAddress {
	if _, err := netip.ParseAddr(v); err == nil {
		return v1beta1.GatewaySpecAddress{Type: ptr.To(v1beta1.IPAddressType), Value: v}
	}
	return v1beta1.GatewaySpecAddress{Type: ptr.To(v1beta1.HostnameAddressType), Value: v}
}

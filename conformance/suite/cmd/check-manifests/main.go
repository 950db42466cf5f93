// Command check-manifests validates Kubernetes manifests offline (see package manifestcheck):
// Gateway API objects against the pinned CRDs (schema and CEL), built-in kinds strictly, and
// the references between the objects given together.
//
//	check-manifests [-gateway-class pylon] [-external-secret ns/name]... FILE|DIR|- ...
//
// Exit status: 0 valid, 1 problems found (each printed), 2 unusable input.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"pylon.dev/conformance/suite/manifestcheck"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var classes, secrets listFlag
	crdDir := flag.String("crds", "", "directory of CRDs to validate against (default: the pinned gateway-api module's experimental CRDs)")
	requireNS := flag.Bool("require-namespace", true, "namespaced objects must set metadata.namespace")
	flag.Var(&classes, "gateway-class", "a GatewayClass that exists without being in the manifests (repeatable; default pylon)")
	flag.Var(&secrets, "external-secret", "a Secret namespace/name created outside the manifests (repeatable)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: check-manifests [flags] FILE|DIR|- ...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if len(classes) == 0 {
		classes = listFlag{"pylon"}
	}
	dir := *crdDir
	if dir == "" {
		var err error
		if dir, err = manifestcheck.GatewayAPICRDDir(); err != nil {
			fatal(err)
		}
	}
	checker, err := manifestcheck.NewChecker(dir)
	if err != nil {
		fatal(err)
	}
	var objs []manifestcheck.Object
	for _, arg := range flag.Args() {
		more, err := load(arg)
		if err != nil {
			fatal(err)
		}
		objs = append(objs, more...)
	}
	problems := checker.Check(objs, manifestcheck.Options{RequireNamespace: *requireNS, GatewayClasses: classes, ExternalSecrets: secrets})
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "check-manifests: %d problem(s) in %d object(s)\n", len(problems), len(objs))
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "check-manifests: %d object(s) valid\n", len(objs))
}

// load reads a file, every *.yaml of a directory, or standard input for "-".
func load(arg string) ([]manifestcheck.Object, error) {
	if arg == "-" {
		return manifestcheck.Decode("<stdin>", os.Stdin)
	}
	info, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	paths := []string{arg}
	if info.IsDir() {
		if paths, err = filepath.Glob(filepath.Join(arg, "*.yaml")); err != nil {
			return nil, err
		}
		sort.Strings(paths)
	}
	var out []manifestcheck.Object
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		objs, err := manifestcheck.Decode(p, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "check-manifests: %v\n", err)
	os.Exit(2)
}

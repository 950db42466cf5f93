// Builds h2spec, the HTTP/2 conformance tester scripts/h2spec.sh runs (see ../../build-tools.sh).
// h2spec v2.2.1 (its last release) has no go.mod: the requirements below are the revisions of its
// Gopkg.lock, so the binary is built from the code its released binaries were.
module pylon.dev/cluster-tools/h2spec

go 1.26.0

require github.com/summerwind/h2spec v2.2.1+incompatible

require (
	github.com/fatih/color v0.0.0-20161025120501-bf82308e8c85 // indirect
	github.com/inconshreveable/mousetrap v1.0.0 // indirect
	github.com/mattn/go-colorable v0.1.0 // indirect
	github.com/mattn/go-isatty v0.0.4 // indirect
	github.com/spf13/cobra v0.0.0-20170118185516-dc208f4211e7 // indirect
	github.com/spf13/pflag v1.0.3 // indirect
	golang.org/x/net v0.0.0-20161104230106-55a3084c9119 // indirect
	golang.org/x/sys v0.0.0-20190209173611-3b5209105503 // indirect
)

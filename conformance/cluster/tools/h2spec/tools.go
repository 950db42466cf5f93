//go:build tools

// Package tools keeps the h2spec command's module (and `go mod tidy`) pinned; build-tools.sh
// builds github.com/summerwind/h2spec/cmd/h2spec from it. h2spec v2.2.1 predates modules (it
// has no go.mod, hence +incompatible), so go.mod pins its dependencies to the revisions of its
// own Gopkg.lock: the ones its released binaries were built with.
package tools

import _ "github.com/summerwind/h2spec/cmd/h2spec"

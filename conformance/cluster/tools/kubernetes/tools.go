// Package tools exists so that `go mod tidy` keeps every module the pinned binaries need.
package tools

package manifestcheck

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// GatewayAPICRDDir finds the experimental-channel CRDs of the gateway-api module version this
// binary was built with, in the Go module cache.
func GatewayAPICRDDir() (string, error) {
	version := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "sigs.k8s.io/gateway-api" {
				version = dep.Version
				if dep.Replace != nil {
					version = dep.Replace.Version
				}
			}
		}
	}
	if version == "" {
		// Test binaries carry no dependency list; ask the go command about the current module.
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "sigs.k8s.io/gateway-api").Output()
		if err != nil {
			return "", errors.New("cannot tell which sigs.k8s.io/gateway-api version to use; pass the CRD directory explicitly")
		}
		version = strings.TrimSpace(string(out))
	}
	modCache := os.Getenv("GOMODCACHE")
	if modCache == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			return "", fmt.Errorf("locating the Go module cache (go env GOMODCACHE): %w", err)
		}
		modCache = strings.TrimSpace(string(out))
	}
	dir := filepath.Join(modCache, "sigs.k8s.io", "gateway-api@"+version, "config", "crd", "experimental")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("gateway-api %s CRDs not in the module cache (%w); run `go mod download sigs.k8s.io/gateway-api` in conformance/suite", version, err)
	}
	return dir, nil
}

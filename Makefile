# Pylon's entry points. Everything a target needs is installed or built by the target itself,
# into caches outside the repository (see scripts/deps.sh and conformance/cluster/build-tools.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PYLON_CACHE ?= $(HOME)/.cache/pylon
export PYLON_CLUSTER_DIR ?= /var/lib/pylon-cluster
CARGO ?= cargo
K8S_KUBECTL = $(shell bash -c 'source conformance/cluster/versions.sh && echo $$K8S_BIN/kubectl')

.PHONY: help deps build lint unit fuzz helm-lint release-check h2spec images images-check test e2e check-clean cluster-up cluster-down conformance install demo bench bench-controlplane tools

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

deps: ## install the system packages the tests and the local cluster need
	@bash scripts/deps.sh

# The local cluster runs the dev-profile binaries by default (dependencies are optimised, see
# Cargo.toml), which shares the build with `cargo test`; PYLON_PROFILE=release for benchmarks: the
# shipped binaries, statically linked, in target/<host triple>/release (scripts/build.sh says why).
export PYLON_PROFILE ?= debug
# Debug builds the tests too: `cargo test` builds the binaries with the dev-dependencies' features
# unified in (tokio's test-util, …), so `--bins` alone builds every dependency a second time
# (2m14s in CI) and the cluster would not run what the tests ran. Release builds what ships.
BUILD_TARGETS = $(if $(filter debug,$(PYLON_PROFILE)),--all-targets,--bins)
build: deps ## build the Rust binaries (PYLON_PROFILE=debug|release)
	@CARGO="$(CARGO)" bash scripts/build.sh $(PYLON_PROFILE) --workspace $(BUILD_TARGETS) >/dev/null

lint: deps ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps tools ## unit, golden and loopback integration tests (the podlet test runs its own API server)
	$(CARGO) test --workspace
	cd conformance/suite && go vet ./... && go test ./...
	cd e2e/probe && go vet ./...
	cd bench/controlplane && go vet ./...

# Nightly only, in fuzz/ (a workspace of its own); README.md, "Fuzzing", says how to run longer.
fuzz: deps ## fuzz the HTTP/1.1 codec and the config decoder, 10 s a target (FUZZ_SECONDS, FUZZ_TARGETS)
	@bash scripts/fuzz.sh

helm-lint: deps ## helm lint + template of charts/pylon (default and ci/ values), validated offline
	@bash scripts/helm.sh lint

release-check: deps ## the release data plane as it ships: static, hot code first in .text, serving
	@bash scripts/release-check.sh

images: deps ## OCI images of the controller and the data plane, without a daemon, into target/images
	@bash scripts/images.sh

images-check: deps ## the images: reproducible, valid (umoci), non-root, self-contained
	@bash scripts/images-check.sh

h2spec: deps tools ## HTTP/2 conformance (h2spec, all cases) of the release data plane, TLS and h2c
	@bash scripts/h2spec.sh

tools: deps ## build the pinned Go tools (Kubernetes, etcd, CoreDNS, echo-basic, h2spec) into $(PYLON_CACHE)
	@bash conformance/cluster/build-tools.sh

cluster-up: deps tools build ## start the local cluster; prints a line to eval
	@bash conformance/cluster/up.sh

cluster-down: ## stop the local cluster and remove everything it made
	@bash conformance/cluster/down.sh

# Helm installs a chart's crds/ only on first install; apply them so upgrades get new versions.
install: cluster-up ## install Pylon into the local cluster with the Helm chart
	@export KUBECONFIG=$(PYLON_CLUSTER_DIR)/admin.kubeconfig; \
	  $(K8S_KUBECTL) apply --server-side -f charts/pylon/crds/ >/dev/null && \
	  chart=$$(bash scripts/helm.sh package) && \
	  bash scripts/helm.sh upgrade --install pylon "$$chart" \
	  --namespace pylon-system --create-namespace --wait --timeout 3m

conformance: install ## Gateway API v1.5.1 conformance: report, summary, regression check
	@bash scripts/conformance.sh

# Every suite runs even when an earlier one fails, so one run shows everything that is broken.
e2e: install ## end-to-end tests against the local cluster (leaves it up, Pylon uninstalled last)
	@failed=; \
	  for suite in e2e/cluster.sh e2e/gateway.sh e2e/faults.sh examples/e2e.sh scripts/conformance.sh e2e/uninstall.sh; do \
	    bash $$suite || failed="$$failed $$suite"; \
	  done; \
	  if [ -n "$$failed" ]; then echo "e2e: FAILED:$$failed (their 'not ok' lines above)"; exit 1; fi; \
	  echo "e2e: all suites passed"

demo: ## on a machine with no cluster: local cluster, Pylon, the quickstart, one request through it
	@bash scripts/demo.sh

bench: deps ## data-plane benchmark against nginx, haproxy and the backend directly (not a test)
	@bash bench/run.sh

# Installs Pylon (release) into the local cluster itself unless CP_BENCH_INSTALLED=1; leaves it up.
bench-controlplane: deps tools ## control-plane benchmark on the local cluster: route scale, status writes, propagation (not a test)
	@bash bench/controlplane.sh

check-clean: ## verify that cluster-down left nothing behind
	@bash conformance/cluster/check-clean.sh

# Stages that overlap where they do not compete for the CPU, each step timed: scripts/test.sh.
# The cluster is torn down (and checked to leave nothing behind) whether or not e2e passes.
test: ## everything CI runs: lint unit fuzz helm-lint release-check h2spec images-check e2e
	@MAKE="$(MAKE)" bash scripts/test.sh
	@echo "make test: all checks passed"

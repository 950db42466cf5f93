#!/usr/bin/env bash
# What `make test` (and so CI) runs: every check, in four stages that overlap work where it
# does not compete for the CPU (2 cores), so a fresh machine stays within CI's budget.
#
#   1. the Go tools (Kubernetes, etcd, CoreDNS, echo-basic, h2spec, helm; minutes cold, nothing
#      warm) build beside lint and the workspace's test build, at the same priority, so each
#      fills the other's idle core (at nice 19 the Go build waited for cargo: 21 min cold);
#   2. the unit, golden and loopback tests run; helm lint; the drift check of the generated
#      Gateway API types (scripts/gateway-types.sh check);
#   3. the end-to-end suites and conformance run on the local cluster, which is mostly waiting,
#      while the release binaries and the fuzz targets build beside them at the lowest CPU
#      priority (nice 19), so the cluster's timing is not disturbed; the cluster is torn down
#      and checked to leave nothing behind whether or not the suites pass;
#   4. what runs those builds: the fuzz run, release-check, h2spec, images-check.
#
# A failure in stage 1 or 2 stops the run (the later stages need their builds); from stage 3 on
# every check runs, so one run shows everything that is broken. Each step prints its time; the
# output of a background step is printed when it is joined. Exit status: 0 only if all passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
MAKE=${MAKE:-make}
logs=$repo/target/test-logs
rm -rf "$logs" && mkdir -p "$logs"
rc=0
start=$SECONDS

mk() { $MAKE --no-print-directory "$@"; }

# step NAME COMMAND...: runs it in the foreground and reports how long it took.
step() {
  local name=$1 s=$SECONDS; shift
  echo "test: $name ..."
  if "$@"; then
    echo "test: $name ok ($((SECONDS - s))s)"
  else
    echo "test: $name FAILED ($((SECONDS - s))s)"
    rc=1
  fi
}

# spawn [--nice] NAME COMMAND...: runs it in the background (at nice 19 with --nice), its output
# in $logs/NAME.log; join NAME prints that output and its result.
declare -A pids starts
spawn() {
  local niceness=0
  if [ "$1" = --nice ]; then niceness=19; shift; fi
  local name=$1; shift
  starts[$name]=$SECONDS
  # A subshell that sets its own priority: the commands may be functions, which nice cannot run.
  # It writes how long it took itself: join may come much later.
  (
    renice -n "$niceness" -p "$BASHPID" >/dev/null && "$@"
    status=$?
    echo "$((SECONDS - starts[$name]))" >"$logs/$name.time"
    exit "$status"
  ) >"$logs/$name.log" 2>&1 &
  pids[$name]=$!
}
join() {
  local name=$1 status=0
  wait "${pids[$name]}" || status=$?
  sed "s/^/[$name] /" "$logs/$name.log"
  local took
  took="$(cat "$logs/$name.time" 2>/dev/null || echo '?')s, joined after $((SECONDS - starts[$name]))s"
  if [ "$status" = 0 ]; then
    echo "test: $name ok (background, $took)"
  else
    echo "test: $name FAILED (background, $took)"
    rc=1
  fi
}
stop_if_failed() {
  [ "$rc" = 0 ] && return
  echo "test: stopped after a failure in stage $1 ($((SECONDS - start))s); the later stages need its builds"
  exit 1
}

go_tools() { mk tools && bash scripts/helm.sh >/dev/null; }
release_builds() {
  # The shipped binaries, as release-check, h2spec and images-check build them (then fresh).
  bash scripts/build.sh release -p pylon-dataplane >/dev/null &&
    bash scripts/build.sh release -p pylon-controller >/dev/null
}

step deps mk deps
stop_if_failed 0

# 1. Go tools beside lint and the test build (cargo test --no-run builds what `unit` runs, and
#    `make build`, debug, shares it).
spawn go-tools go_tools
step lint mk lint
[ "$rc" = 0 ] && step "unit build" cargo test --workspace --no-run --quiet
join go-tools
stop_if_failed 1

# 2. The tests that need no cluster.
step unit mk unit
step helm-lint mk helm-lint
step gateway-types bash scripts/gateway-types.sh check
stop_if_failed 2

# 3. The cluster suites, the release and fuzz builds beside them.
spawn --nice release-build release_builds
spawn --nice fuzz-build env FUZZ_BUILD_ONLY=1 bash scripts/fuzz.sh
# Its output is also kept, so the failures can be repeated at the end, where a truncated CI log
# still shows them.
e2e() { mk e2e 2>&1 | tee "$logs/e2e.log"; }
step e2e e2e
step cluster-down mk cluster-down
step check-clean bash conformance/cluster/check-clean.sh
join release-build
join fuzz-build

# 4. The checks that run the release binaries and the fuzz targets.
step fuzz mk fuzz
step release-check mk release-check
step h2spec mk h2spec
step images-check mk images-check

if [ "$rc" = 0 ]; then
  echo "test: all passed in $((SECONDS - start))s"
else
  # What failed, gathered from the suites' output: each "FAIL - " check with the first lines of
  # its output, and e2e's list of failed suites.
  awk '/^FAIL - |^e2e: FAILED/ { n = 12; print; next } n > 0 && /^       / { n--; print; next } { n = 0 }' \
    "$logs"/*.log 2>/dev/null | sed 's/^/test: failure: /'
  echo "test: FAILED after $((SECONDS - start))s (the steps marked FAILED above)"
fi
exit "$rc"

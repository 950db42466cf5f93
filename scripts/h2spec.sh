#!/usr/bin/env bash
# HTTP/2 conformance of the release data plane (scripts/build.sh release): h2spec (pinned in
# conformance/cluster/versions.sh, built by `make tools`) runs all its cases (generic, http2 and
# hpack sections; 145 with v2.2.1) against two listeners of one data plane:
# - tls: HTTPS with the test certificate (dataplane/tests/certs/example.pem), h2 by ALPN;
# - h2c: plain HTTP, HTTP/2 by prior knowledge (a plain listener serves HTTP/1.1 and h2c alike).
# Both route every request to a small HTTP/1.1 backend (python3, below) that answers 200 with a
# short body to any method, so the cases that need a response, or response DATA (flow control),
# get one.
#
# Prints `h2spec <listener>: N passed, N failed` for each listener, then each failing case's id
# (section/number, as h2spec numbers them), title, expected and actual outcome. Fails if any case
# fails or is skipped (h2spec skips the flow-control cases when a response has no body, and the
# concurrency case when the server sets no SETTINGS_MAX_CONCURRENT_STREAMS), or if fewer cases
# ran than h2spec has. h2spec's own output and JUnit report are kept in target/h2spec/.
#
# Arguments, if any, go to h2spec after the listener's: sections or cases to run (e.g.
# `scripts/h2spec.sh http2/3.5/2 -v`, -v for the frames each way); then not all cases need run.
# Environment: H2SPEC_TIMEOUT (seconds h2spec waits for each expected frame; its default is 2),
# H2SPEC_LISTENERS ("tls h2c": the ones to run), PYLON_BIN (skips the cargo build).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../conformance/cluster/versions.sh
source "$repo/conformance/cluster/versions.sh"
TLS_PORT=19370 H2C_PORT=19371 BACKEND_PORT=19372 ADMIN=19373
TIMEOUT=${H2SPEC_TIMEOUT:-2}
LISTENERS=${H2SPEC_LISTENERS:-tls h2c}
CASES=145 # h2spec v2.2.1's, without --strict
[ $# = 0 ] || CASES=0 # some: whatever the arguments select
out=$repo/target/h2spec

fail() { echo "h2spec.sh: FAIL: $*" >&2; exit 1; }

h2spec=$H2SPEC_BIN/h2spec
[ -x "$h2spec" ] || fail "$h2spec is not built: run \`make tools\`"
for tool in python3 jq curl; do command -v "$tool" >/dev/null || fail "$tool is not installed (make deps)"; done
if [ -n "${PYLON_BIN:-}" ]; then
  bin=$PYLON_BIN
else
  bin=$(bash "$repo/scripts/build.sh" release -p pylon-dataplane | tail -n 1)/pylon-dataplane
fi
[ -x "$bin" ] || fail "$bin was not built"

rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The backend: HTTP/1.1 keep-alive, any method, a request body read whole (Content-Length or
# chunked, which is how the data plane forwards an HTTP/2 body of unknown length), then 200.
cat >"$work/backend.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"h2spec backend\n"

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                self.rfile.read(size + 2)
        else:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self):
        self.read_body()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(BODY)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = answer

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
python3 "$work/backend.py" "$BACKEND_PORT" 2>"$out/backend.log" &
backend=$!
pids+=("$backend")
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$BACKEND_PORT/" && break
  kill -0 "$backend" 2>/dev/null || { cat "$out/backend.log" >&2; fail "the backend exited at start"; }
  sleep 0.1
done

# Both listeners route everything (no hostnames) to the backend.
jq -n --rawfile cert "$repo/dataplane/tests/certs/example.pem" \
  --rawfile key "$repo/dataplane/tests/certs/example.key" \
  --argjson tls "$TLS_PORT" --argjson h2c "$H2C_PORT" --arg backend "127.0.0.1:$BACKEND_PORT" '
  {kind: "HTTPRoute", namespace: "h2spec", name: "all",
   creationTimestamp: "2024-01-01T00:00:00Z",
   rules: [{backendRefs: [{type: "Backend", name: "backend"}]}]} as $route |
  {apiVersion: "pylon.dev/dataplane/v1",
   listeners: [
     {name: "tls", port: $tls, protocol: "HTTPS",
      tls: {certificates: [{certPem: $cert, keyPem: $key}]}, routes: [$route]},
     {name: "h2c", port: $h2c, protocol: "HTTP", routes: [$route]}],
   backends: {backend: {protocol: "http1", endpoints: [{address: $backend, ready: true}]}}}
' >"$work/config.json"
"$bin" --config "$work/config.json" --bind-addr 127.0.0.1 --admin-addr "127.0.0.1:$ADMIN" \
  --no-access-log >"$out/dataplane.log" 2>&1 &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$ADMIN/ready" && break
  kill -0 $pid 2>/dev/null || { cat "$out/dataplane.log" >&2; fail "$bin exited at start"; }
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/ready")" = 200 ] ||
  { cat "$out/dataplane.log" >&2; fail "/ready did not answer 200"; }

# Each listener speaks HTTP/2 and reaches the backend before h2spec runs, so a broken setup
# fails here with its own message instead of as 145 failed cases.
answer=$(curl -s -k --http2 -w ' %{http_version} %{http_code}' "https://127.0.0.1:$TLS_PORT/")
[ "$answer" = "h2spec backend
 2 200" ] || fail "the tls listener answered '$answer', not the backend's 200 over HTTP/2"
answer=$(curl -s --http2-prior-knowledge -w ' %{http_version} %{http_code}' "http://127.0.0.1:$H2C_PORT/")
[ "$answer" = "h2spec backend
 2 200" ] || fail "the h2c listener answered '$answer', not the backend's 200 over HTTP/2"

# The cases' numbers, which the JUnit report lacks: h2spec's list of every case, by section.
"$h2spec" --dryrun >"$out/cases.txt"

# summary LISTENER REPORT: prints the listener's line and its failing cases; 0 if all passed.
# h2spec's JUnit report names a case by its section (package) and title (classname); its number
# comes from cases.txt. A failure lands in <error> (its content: the expected lines, then the
# actual one) or in <failure>; a skipped case has <skipped/>.
summary() {
  python3 - "$1" "$2" "$out/cases.txt" "$CASES" "$out/$1.log" <<'PY'
import re
import sys
import xml.etree.ElementTree as ET

listener, report, listing, log = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
cases = int(sys.argv[4])
keys = {
    "Generic tests for HTTP/2 server": "generic",
    "Hypertext Transfer Protocol Version 2 (HTTP/2)": "http2",
    "HPACK: Header Compression for HTTP/2": "hpack",
}
numbers, key, section = {}, None, None
for line in open(listing):
    text = line.strip()
    if not text:
        continue
    if not line.startswith(" "):
        key = keys.get(text, text)
    elif m := re.fullmatch(r"(\d+): (.*)", text):
        numbers.setdefault((f"{key}/{section}", m[2]), []).append(m[1])
    elif m := re.fullmatch(r"([\d.]+?)\. .*", text):
        section = m[1]

try:
    root = ET.parse(report).getroot()
except ET.ParseError as e:
    # h2spec writes the failures' text into the XML unescaped: fall back to its own summary line.
    counts = re.search(r"(\d+) passed, (\d+) skipped, (\d+) failed", open(log).read())
    p, s, f = map(int, counts.groups()) if counts else (0, 0, 0)
    print("h2spec %s: %d passed, %d failed" % (listener, p, s + f))
    print("  the JUnit report does not parse (%s): the failures are in %s" % (e, log))
    sys.exit(1)
passed, bad = 0, []
for suite in root.iter("testsuite"):
    for seq, case in enumerate(suite.iter("testcase"), 1):
        package, title = case.get("package"), case.get("classname")
        found = numbers.get((package, title))
        name = "%s/%s %s" % (package, found.pop(0) if found else "#%d" % seq, title)
        problem = case.find("error")
        if problem is None:
            problem = case.find("failure")
        if problem is not None:
            lines = (problem.text or "").strip().splitlines()
            lines = [l.removeprefix("Expect:").removeprefix("Actual:").strip() for l in lines]
            lines = [l for l in lines if l]
            detail = ["expected: " + l for l in lines[:-1]] + ["actual:   " + l for l in lines[-1:]]
            bad.append(("failed", name, detail))
        elif case.find("skipped") is not None:
            bad.append(("skipped", name, []))
        else:
            passed += 1
ran = passed + len(bad)
print("h2spec %s: %d passed, %d failed" % (listener, passed, len(bad)))
for kind, name, detail in bad:
    print("  %s: %s" % (kind, name))
    for line in detail:
        print("      " + line)
if cases and ran != cases:
    print("  h2spec ran %d cases, not %d" % (ran, cases))
sys.exit(0 if not bad and ran == (cases or ran) else 1)
PY
}

rc=0
for listener in $LISTENERS; do
  case $listener in
  tls) args=(-p "$TLS_PORT" -t -k) ;;
  h2c) args=(-p "$H2C_PORT") ;;
  *) fail "H2SPEC_LISTENERS: no listener '$listener' (tls, h2c)" ;;
  esac
  report=$out/$listener.xml
  start=$SECONDS
  # Non-zero when a case fails; the report says which. Without a report h2spec did not finish
  # (it exits at once when it cannot connect).
  "$h2spec" -h 127.0.0.1 "${args[@]}" -o "$TIMEOUT" -j "$report" "$@" >"$out/$listener.log" 2>&1 || true
  if [ ! -s "$report" ]; then
    tail -n 20 "$out/$listener.log" >&2
    echo "h2spec $listener: no report: h2spec did not finish (log: $out/$listener.log)"
    rc=1
    continue
  fi
  summary "$listener" "$report" || rc=1
  echo "  ($((SECONDS - start))s; h2spec's output: $out/$listener.log)"
done
kill -0 $pid 2>/dev/null || { rc=1; echo "h2spec.sh: the data plane exited during the run" >&2; tail -n 20 "$out/dataplane.log" >&2; }
[ $rc = 0 ] || fail "h2spec found failing cases (reports: $out)"
echo "h2spec.sh: ok: all ${CASES/#0/selected} cases pass on $LISTENERS"

#!/usr/bin/env bash
# Checks the release data plane as it ships (scripts/build.sh release): built the way build.sh
# says, and serving. The benchmark measures what this buys (bench/README.md); this catches a
# toolchain or script change that silently drops it.
# - statically linked PIE (no INTERP program header, type DYN), with packed relative relocations;
# - the functions of dataplane/hot-code.txt first in .text: most of the list is found (otherwise
#   the list is stale: regenerate it with scripts/hot-code.sh), and little other code sits among
#   them (otherwise the link did not order them);
# - the binary starts from a config file and answers: a redirect route, an unrouted request, /ready.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIST=$repo/dataplane/hot-code.txt
PORT=19360 ADMIN=19361

fail() { echo "release-check: FAIL: $*" >&2; exit 1; }
ok() { echo "release-check: ok: $*"; }

bin=$(bash "$repo/scripts/build.sh" release -p pylon-dataplane | tail -n 1)/pylon-dataplane
[ -x "$bin" ] || fail "$bin was not built"
# build.sh builds static, RELR and hot-first only on glibc hosts, into target/<triple>/release.
if [[ $bin != */*-linux-gnu/release/* ]]; then
  echo "release-check: not a glibc host; only the smoke test runs"
else
  headers=$(readelf -lhW "$bin")
  grep -q 'INTERP' <<<"$headers" && fail "$bin asks for a dynamic loader (not statically linked)"
  grep -qE 'Type: +DYN' <<<"$headers" || fail "$bin is not position-independent (ELF type is not DYN)"
  readelf -dW "$bin" | grep -q '(RELR)' || fail "$bin has no packed relative relocations (DT_RELR)"
  ok "static-pie with RELR relocations"

  readelf -p .comment "$bin" | grep -q 'Linker: LLD' ||
    fail "$bin was not linked by lld, which link-hot-first.sh needs to put the hot code first"
  # One pass over the text symbols in address order: how many listed names are found, how many
  # bytes they hold, and how many bytes of other code lie before the last of them.
  read -r listed found hot cold < <(nm -n -S --defined-only "$bin" | awk -v hot="$LIST" -f "$repo/scripts/symbol-key.awk" -f <(cat <<'AWK'
    function hex(s,   i, n) { n = 0; for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }
    BEGIN { while ((getline l < hot) > 0) if (l !~ /^#/ && l != "") { want[l] = 1; listed++ } }
    $3 ~ /^[tTwW]$/ {
      k = key($4); size = hex($2)
      if (k in want) { if (!(k in seen)) { seen[k] = 1; found++ }; hot_bytes += size; cold_before = cold }
      else cold += size
    }
    END { print listed + 0, found + 0, hot_bytes + 0, cold_before + 0 }
AWK
))
  [ "$listed" -gt 0 ] || fail "$LIST lists no functions"
  [ $((found * 2)) -ge "$listed" ] ||
    fail "only $found of the $listed functions in $LIST are in the binary: the list is stale, regenerate it with scripts/hot-code.sh"
  [ $((cold * 4)) -le "$hot" ] ||
    fail "$cold bytes of other code lie among the $hot bytes of hot code: the link did not put it first (scripts/link-hot-first.sh)"
  ok "$found of $listed hot functions ($hot bytes) first in .text, $cold bytes of other code among them"
fi

work=$(mktemp -d)
cat >"$work/config.yaml" <<EOF
apiVersion: pylon.dev/dataplane/v1
listeners:
- name: http
  port: $PORT
  protocol: HTTP
  routes:
  - kind: HTTPRoute
    namespace: check
    name: moved
    creationTimestamp: '2024-01-01T00:00:00Z'
    hostnames: [release.check]
    rules: [{filters: [{type: RequestRedirect, hostname: moved.check, statusCode: 301}]}]
EOF
"$bin" --config "$work/config.yaml" --bind-addr 127.0.0.1 --admin-addr "127.0.0.1:$ADMIN" \
  --no-access-log >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$ADMIN/ready" && break
  kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; fail "$bin exited at start"; }
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/ready")" = 200 ] || fail "/ready did not answer 200"
answer=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: release.check' "http://127.0.0.1:$PORT/a?b=c")
[ "$answer" = "301 http://moved.check:$PORT/a?b=c" ] || fail "the redirect route answered '$answer'"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: elsewhere.check' "http://127.0.0.1:$PORT/")
[ "$code" = 404 ] || fail "an unrouted request answered $code, not 404"
ok "$bin serves: /ready 200, redirect 301, unrouted 404"

#!/usr/bin/env bash
# Data-plane benchmark (not a test): (a) the backend directly, (b) Pylon, (c) nginx and (d) haproxy
# configured as equivalent reverse proxies to the same backend, each with 1 route and with 5,000
# routes (by hostname and by path prefix, the request hitting the last route), keep-alive and
# new-connection (`Connection: close`) cases. Prints RPS and p50/p99 per case, the ratios
# Pylon/nginx and Pylon/direct, Pylon's RSS idle and with 5,000 routes, and ends with exactly one
# `BENCH {json}` line. Asserts nothing about speed; exits non-zero only if something failed to
# start or answer correctly, or a server died during the run. Loopback only.
#
# Each case (a table × connection mode: the 1-route one with the direct backend, Pylon, nginx and
# haproxy; the 5,000-route ones with the three proxies) is measured in BENCH_ROUNDS rounds. In every
# round each target of the case runs once (its warm-up, then its measured run), and the order
# rotates from round to round (round r starts at target r mod n), so no target always runs first
# or right after the same other one. RPS, p50, p99 and CPU per request are the medians over the
# rounds, and the ratios are computed from them; p99 also shows its min–max over the rounds, and
# every round's figures are printed on a line of their own. Why: this machine is shared and noisy:
# one run per target gave p99s whose spread from run to run (nginx 1.5–6.8 ms in consecutive 5 s
# runs) was larger than the differences between the proxies.
#
# Tunables (environment): BENCH_ROUNDS (5; 1 = one run per target, the former behaviour),
# BENCH_DURATION (5s), BENCH_WARMUP (1s), BENCH_CONNECTIONS (64), BENCH_THREADS (1),
# BENCH_ROUTES (5000), BENCH_CLIENT_CPU / BENCH_SERVER_CPU (the first two CPUs this process may
# use), PYLON_BIN (skips the cargo build), CARGO (cargo), BENCH_CASES (an extended regex: only the
# targets whose key, e.g. pylon/one/keepalive, matches are measured; the others are reported as
# null), BENCH_FLOOD_CONNECTIONS (4000; 0 skips the flood), BENCH_SLOW_HEADS ("2000 10000": the
# numbers of slow 48 KiB heads held at once, empty skips them).
#
# Why five rounds: some runs on this VM catch stalls of 20–36 ms (a p99.9 that high, on any
# target, in about one run in three), which move that run's p99; a median of three is moved
# whenever two of them are hit, a median of five needs three.
#
# Run time with the defaults: 20 targets × 5 rounds × (1 s + 5 s) = 600 s of wrk, plus 12 s of
# flood and ~3 s of start-up: about 10¼ min (three rounds took about 6¼ min; one 10 s run per
# target after a 2 s warm-up, the first defaults, about 4¼ min). A 5 s run still gives each p99
# about 300,000 requests with keep-alive, 160,000 with a new connection per request.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=bench/configs.sh
. "$BENCH_DIR/configs.sh"

ROUNDS=${BENCH_ROUNDS:-5}
DUR=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-1s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
ROUTES=${BENCH_ROUTES:-5000}
CASES=${BENCH_CASES:-}
FLOOD=${BENCH_FLOOD_CONNECTIONS:-4000}
SLOW_HEADS=${BENCH_SLOW_HEADS-2000 10000}
CARGO=${CARGO:-cargo}

fail() {
  echo "bench: $*" >&2
  exit 1
}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || fail "BENCH_ROUNDS must be a positive integer, not '$ROUNDS'"

# --- dependencies: Debian packages (idempotent) and the release data plane ------------------------
missing=()
declare -A PACKAGE=([wrk]=wrk [nginx]=nginx [haproxy]=haproxy [curl]=curl [taskset]=util-linux [flock]=util-linux)
for tool in "${!PACKAGE[@]}"; do command -v "$tool" >/dev/null || missing+=("${PACKAGE[$tool]}"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]} from Debian" >&2
  SUDO=()
  [ "$(id -u)" = 0 ] || SUDO=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  # Try without refreshing the package lists first: idempotent and quick when they are current.
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" ||
    { "${SUDO[@]}" apt-get update && "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; } ||
    fail "could not install ${missing[*]}"
fi
if [ -n "${PYLON_BIN:-}" ]; then
  PYLON=$PYLON_BIN
else
  # The data plane as shipped: release profile, statically linked (scripts/build.sh).
  bin_dir=$(CARGO=$CARGO bash "$ROOT/scripts/build.sh" release -p pylon-dataplane | tail -n 1) ||
    fail "building the release data plane failed"
  PYLON=$bin_dir/pylon-dataplane
fi
[ -x "$PYLON" ] || fail "$PYLON is not an executable"

# One run at a time on this machine: runs share fixed loopback ports (haproxy binds with
# SO_REUSEPORT, so a second run would silently split its traffic) and would skew each other's figures.
LOCK=${TMPDIR:-/tmp}/pylon-bench.lock
exec 9>"$LOCK" # the servers are started with 9>&- so that only this script holds it
if ! flock -n 9; then
  echo "bench: waiting for another run to release $LOCK" >&2
  flock -w 600 9 || fail "another bench run held $LOCK for 10 minutes"
fi

# --- CPU pinning: the client gets one CPU to itself; the backend and the proxy under test share the
# other, so every proxy pays the same backend cost and the direct case has the same budget. Every
# proxy runs one worker (nginx worker_processes 1, haproxy nbthread 1, Pylon TOKIO_WORKER_THREADS=1).
mapfile -t CPUS < <(awk -F'[:\t ]+' '/^Cpus_allowed_list/ {print $2}' /proc/self/status | tr ',' '\n' |
  awk -F- '{ if (NF == 2) for (c = $1; c <= $2; c++) print c; else print $1 }')
CLIENT_CPU=${BENCH_CLIENT_CPU:-${CPUS[0]}}
SERVER_CPU=${BENCH_SERVER_CPU:-${CPUS[1]:-${CPUS[0]}}}
# An array, not a function: a backgrounded function runs in a subshell and $! would not be the server.
ON_SERVER=(taskset -c "$SERVER_CPU")

WORK=$(mktemp -d)
declare -A PID
cleanup() {
  for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { # port, name
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "${PID[$2]}" 2>/dev/null || fail "$2 exited at start; its log: $(tail -5 "$WORK/$2.log" 2>/dev/null)"
    sleep 0.1
  done
  fail "$2 never opened port $1"
}

# --- start everything ---------------------------------------------------------------------------
BACKEND=19300
TABLES=(one hosts paths)
declare -A PORT NROUTES=([one]=1 [hosts]=$ROUTES [paths]=$ROUTES)
port=19301
for proxy in pylon nginx haproxy; do
  for t in "${TABLES[@]}"; do PORT[$proxy-$t]=$port && port=$((port + 1)); done
done
for p in $BACKEND "${PORT[@]}" $(seq 19320 19322); do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || fail "port $p is already in use (a previous run still alive?)"
done

start_nginx() { # name, conf generator args...
  local name=$1 dir=$WORK/$1
  shift
  mkdir -p "$dir"
  "$@" >"$dir/nginx.conf"
  "${ON_SERVER[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' >"$WORK/$name.log" 2>&1 9>&- &
  PID[$name]=$!
}
start_nginx backend nginx_backend_config "$WORK/backend" $BACKEND
wait_port $BACKEND backend

admin=19320
for t in "${TABLES[@]}"; do
  n=${NROUTES[$t]}
  pylon_config "$t" "$n" "${PORT[pylon-$t]}" $BACKEND >"$WORK/pylon-$t.yaml"
  TOKIO_WORKER_THREADS=1 "${ON_SERVER[@]}" "$PYLON" --config "$WORK/pylon-$t.yaml" --bind-addr 127.0.0.1 \
    --admin-addr "127.0.0.1:$admin" --no-access-log >"$WORK/pylon-$t.log" 2>&1 9>&- &
  PID[pylon-$t]=$!
  admin=$((admin + 1))
  start_nginx "nginx-$t" nginx_proxy_config "$WORK/nginx-$t" "$t" "$n" "${PORT[nginx-$t]}" $BACKEND
  mkdir -p "$WORK/haproxy-$t"
  haproxy_config "$WORK/haproxy-$t" "$t" "$n" "${PORT[haproxy-$t]}" $BACKEND >"$WORK/haproxy-$t/haproxy.cfg"
  "${ON_SERVER[@]}" haproxy -db -f "$WORK/haproxy-$t/haproxy.cfg" >"$WORK/haproxy-$t.log" 2>&1 9>&- &
  PID[haproxy-$t]=$!
done
for k in "${!PORT[@]}"; do wait_port "${PORT[$k]}" "$k"; done

# Equivalence check: the target route answers the backend's 200 "ok", a request matching no route
# is answered by the proxy itself.
for k in "${!PORT[@]}"; do
  t=${k#*-}
  h=$(target_host "$t" "${NROUTES[$t]}") p=$(target_path "$t" "${NROUTES[$t]}")
  body=$(curl -s -m 5 -H "Host: $h" "http://127.0.0.1:${PORT[$k]}$p") || true
  [ "$body" = ok ] || fail "$k: GET $h$p answered '$body', not the backend's 'ok'"
  code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Host: nowhere.invalid" "http://127.0.0.1:${PORT[$k]}/zz/x") || true
  case $code in 404 | 503) ;; *) fail "$k: a request matching no route answered $code, not 404/503" ;; esac
done

rss_kb() { # pid → VmRSS in kB, or null if the process is gone
  if [ -r "/proc/$1/status" ]; then awk '/^VmRSS/ {print $2}' "/proc/$1/status"; else echo null; fi
}
rss_parts() { # pid → "anon A kB, file F kB" (RssAnon, RssFile), or nothing if the process is gone
  [ -r "/proc/$1/status" ] && awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {printf "anon %s kB, file %s kB", a, f}' "/proc/$1/status"
}
sleep 1
declare -A RSS=([idle]=$(rss_kb "${PID[pylon-one]}") [routes_5k_hosts]=$(rss_kb "${PID[pylon-hosts]}")
  [routes_5k_paths]=$(rss_kb "${PID[pylon-paths]}"))
# Most of an idle data plane's RSS is the executable's code mapped from the page cache (RssFile),
# and how much of it the kernel maps around the pages used varies from run to run by up to ~1 MB
# for the same binary; RssAnon is the process's own memory.
IDLE_PARTS=$(rss_parts "${PID[pylon-one]}" || true)

# --- measurements -----------------------------------------------------------------------------------
to_ms() { # wrk latency ("812.00us", "1.20ms", "1.01s", "1.00m") → ms
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "null" }'
}
FAILURES=()
wrk_run() { # duration port host path extra-header
  taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$1" --latency -H "Host: $3" ${5:+-H "$5"} \
    "http://127.0.0.1:$2$4" 2>&1 || true
}
# CPU time (clock ticks, user + system) of a server: the process and its children (nginx workers).
cpu_ticks() {
  local p total=0
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    # Fields after "pid (comm)": utime and stime are the 12th and 13th.
    total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)
# Per target key (pylon/one/keepalive, direct/close, …): what wrk requests and which server serves
# it; each round's figures (space-separated lists, in the order of the rounds); and, once its rounds
# are done, the medians over the rounds (errors: their total) and p99's min and max.
declare -A SERVER TPORT THOST TPATH THDR DEAD
declare -A ROUND_RPS ROUND_P50 ROUND_P99 ROUND_CPU ROUND_ERR
declare -A RPS P50 P99 P99_MIN P99_MAX CPU_US ERR
run_once() { # key round-label: one warm-up and one measured run of the key's target
  local k=$1 s=${SERVER[$1]} out t0 t1 reqs rps p50 p99 cpu err
  # A server that died in an earlier round is not measured again (its failure is already recorded).
  [ -z "${DEAD[$s]:-}" ] || return 0
  wrk_run "$WARMUP" "${TPORT[$k]}" "${THOST[$k]}" "${TPATH[$k]}" "${THDR[$k]}" >/dev/null
  t0=$(cpu_ticks "${PID[$s]}")
  out=$(wrk_run "$DUR" "${TPORT[$k]}" "${THOST[$k]}" "${TPATH[$k]}" "${THDR[$k]}")
  t1=$(cpu_ticks "${PID[$s]}")
  # CPU per request of the server under test (the backend alone for direct): unlike RPS it hardly
  # moves when other jobs take the shared CPU away, so it is the steadier basis for comparison.
  reqs=$(awk '/requests in/ {print $1; f = 1} END {if (!f) print 0}' <<<"$out")
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" \
    'BEGIN { if (n > 0 && d >= 0) printf "%.1f", d * 1e6 / hz / n; else printf "null" }')
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2; f = 1} END {if (!f) print 0}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  # Socket errors (connect/read/write/timeout) plus non-2xx/3xx answers; with Connection: close,
  # wrk counts the server's close after the answer as a read error on some kernels, so these are
  # shown but not treated as failures.
  err=$(awk '/Socket errors/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF}
    END {print s + 0}' <<<"$out")
  ROUND_RPS[$k]+="$rps " ROUND_P50[$k]+="$p50 " ROUND_P99[$k]+="$p99 " ROUND_CPU[$k]+="$cpu " ROUND_ERR[$k]+="$err "
  printf "%-26s %-6s %9s rps  p50 %8s ms  p99 %8s ms  cpu %7s us/req  errors %s\n" "$k" "$2" "$rps" "$p50" \
    "$p99" "$cpu" "$err"
  if ! kill -0 "${PID[$s]}" 2>/dev/null; then
    DEAD[$s]=1
    FAILURES+=("$s died during $k")
    echo "bench: $s died during $k; last log lines:" >&2
    tail -20 "$WORK/$s.log" >&2 || true
  fi
}
# stats FORMAT "VALUES": "median min max" of the numbers among VALUES (nulls skipped), each printed
# with FORMAT, or "null null null" if there is none; of an even count, the median is the mean of
# the middle two.
stats() {
  tr ' ' '\n' <<<"$2" | awk 'NF && $1 != "null"' | sort -g | awk -v f="$1" '{ v[NR] = $1 }
    END { if (NR == 0) { print "null null null"; exit }
      printf f " " f " " f "\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'
}
p99_range() { # key → "min–max" of its p99 over the rounds, or null
  if [ "${P99_MIN[$1]}" = null ]; then echo null; else echo "${P99_MIN[$1]}–${P99_MAX[$1]}"; fi
}
summarize() { # key: its medians over the rounds, and a line with them when there are several rounds
  local k=$1 m lo hi
  read -r m _ _ <<<"$(stats %.0f "${ROUND_RPS[$k]:-}")" && RPS[$k]=$m
  read -r m _ _ <<<"$(stats %.3f "${ROUND_P50[$k]:-}")" && P50[$k]=$m
  read -r m lo hi <<<"$(stats %.3f "${ROUND_P99[$k]:-}")" && P99[$k]=$m P99_MIN[$k]=$lo P99_MAX[$k]=$hi
  read -r m _ _ <<<"$(stats %.1f "${ROUND_CPU[$k]:-}")" && CPU_US[$k]=$m
  ERR[$k]=$(tr ' ' '\n' <<<"${ROUND_ERR[$k]:-}" | awk 'NF {s += $1; n++} END {if (n) print s; else print "null"}')
  [ "$ROUNDS" -gt 1 ] || return 0
  printf "%-26s %-6s %9s rps  p50 %8s ms  p99 %8s ms (%s)  cpu %7s us/req  errors %s in all\n" "$k" median \
    "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "$(p99_range "$k")" "${CPU_US[$k]}" "${ERR[$k]}"
}

START=$(date +%s)
rounds_note="one run per target"
if [ "$ROUNDS" -gt 1 ]; then rounds_note="$ROUNDS rounds per case, the targets in rotating order, medians reported"; fi
echo "wrk -t$THREADS -c$CONNS -d$DUR --latency (after a $WARMUP warm-up), client on CPU $CLIENT_CPU," \
  "backend and proxy on CPU $SERVER_CPU, one worker per proxy; $(nproc) CPUs, shared with other jobs;" \
  "$rounds_note"
MODES=(keepalive close)
for mode in "${MODES[@]}"; do
  hdr=""
  [ "$mode" = close ] && hdr="Connection: close"
  for t in "${TABLES[@]}"; do
    # The case's targets: the backend directly (in the 1-route case only), then the three proxies.
    n=${NROUTES[$t]} keys=()
    if [ "$t" = one ]; then
      k=direct/$mode
      SERVER[$k]=backend TPORT[$k]=$BACKEND THOST[$k]=$BENCH_HOST TPATH[$k]=/ THDR[$k]=$hdr
      keys+=("$k")
    fi
    for proxy in pylon nginx haproxy; do
      k=$proxy/$t/$mode
      SERVER[$k]=$proxy-$t TPORT[$k]=${PORT[$proxy-$t]} THOST[$k]=$(target_host "$t" "$n") \
        TPATH[$k]=$(target_path "$t" "$n") THDR[$k]=$hdr
      keys+=("$k")
    done
    selected=()
    for k in "${keys[@]}"; do
      if [ -z "$CASES" ] || grep -Eq -- "$CASES" <<<"$k"; then
        selected+=("$k")
      else
        RPS[$k]=null P50[$k]=null P99[$k]=null P99_MIN[$k]=null P99_MAX[$k]=null CPU_US[$k]=null ERR[$k]=null
      fi
    done
    count=${#selected[@]}
    [ "$count" -gt 0 ] || continue
    # Round r runs the targets from the (r mod count)-th on, wrapping around.
    for ((r = 0; r < ROUNDS; r++)); do
      for ((i = 0; i < count; i++)); do run_once "${selected[(r + i) % count]}" "#$((r + 1))"; done
    done
    for k in "${selected[@]}"; do summarize "$k"; done
  done
done
RSS[routes_5k_hosts_after_load]=$(rss_kb "${PID[pylon-hosts]}")
RSS[routes_5k_paths_after_load]=$(rss_kb "${PID[pylon-paths]}")
RSS[idle_after_load]=$(rss_kb "${PID[pylon-one]}")

# --- flood: FLOOD concurrent keep-alive connections for 5 s against the 1-route Pylon and nginx,
# then the RSS once they are closed (2 s later): memory held for connections that are gone.
RSS[after_flood]=null NGINX_RSS_AFTER_FLOOD=null
if [ "$FLOOD" -gt 0 ]; then
  for proxy in pylon nginx; do
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$FLOOD" -d5s -H "Host: $BENCH_HOST" \
      "http://127.0.0.1:${PORT[$proxy-one]}$(target_path one 1)" >"$WORK/flood-$proxy.txt" 2>&1 || true
  done
  sleep 2
  RSS[after_flood]=$(rss_kb "${PID[pylon-one]}")
  # nginx's worker (the master's child) holds the connections.
  NGINX_RSS_AFTER_FLOOD=$(rss_kb "$(pgrep -P "${PID[nginx-one]}" | head -1)")
  for proxy in pylon nginx; do
    kill -0 "${PID[$proxy-one]}" 2>/dev/null || FAILURES+=("$proxy-one died during the flood")
  done
fi

# --- slow heads: for each N in SLOW_HEADS, N connections that each send 48 KiB of a request head
# that never ends, against the 1-route Pylon and nginx: the server's RSS while they are held (2 s
# after the last was sent, within both header-read timeouts: Pylon 10 s, nginx 60 s) and how many
# it kept open. Pylon bounds what unfinished heads hold together (--max-pending-head-bytes, 32 MiB)
# and answers 503 to heads beyond it; nginx holds every head it has room for.
declare -A SLOW
json_slow=""
for n in $SLOW_HEADS; do
  for proxy in pylon nginx; do
    pid=${PID[$proxy-one]}
    [ "$proxy" = pylon ] || pid=$(pgrep -P "$pid" | head -1)
    SLOW[$proxy-$n]=$(taskset -c "$CLIENT_CPU" python3 "$BENCH_DIR/slow_heads.py" "${PORT[$proxy-one]}" "$n" 49152 "$pid") ||
      FAILURES+=("slow heads ($n) against $proxy failed")
    kill -0 "${PID[$proxy-one]}" 2>/dev/null || FAILURES+=("$proxy-one died during the slow heads")
    sleep 1
  done
  field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"${SLOW[$2]}"; }
  json_slow+="\"$n\":{\"pylon_rss_kb\":$(field rss_kb pylon-$n),\"pylon_open\":$(field open pylon-$n),"
  json_slow+="\"nginx_rss_kb\":$(field rss_kb nginx-$n),\"nginx_open\":$(field open nginx-$n)},"
done

# --- report -------------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "null" && b + 0 > 0) printf "%.2f", a / b; else printf "null" }'; }
json_case() { # key → "name":{figures} for the BENCH line
  local k=$1 range=null
  [ "${P99_MIN[$k]}" = null ] || range="[${P99_MIN[$k]},${P99_MAX[$k]}]"
  printf '"%s":{"rps":%s,"p50_ms":%s,"p99_ms":%s,"p99_ms_range":%s,"cpu_us_per_req":%s,"errors":%s},' "${k//\//_}" \
    "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "$range" "${CPU_US[$k]}" "${ERR[$k]}"
}
pad() { # text width: the text, padded with spaces to width characters (printf counts bytes; – takes 3)
  printf "%s%*s" "$1" $(($2 > ${#1} ? $2 - ${#1} : 0)) ""
}
p99_cell() { # key width → "median (min–max)" of its p99, padded to width
  if [ "${P99[$1]}" = null ]; then pad null "$2"; else pad "${P99[$1]} ($(p99_range "$1"))" "$2"; fi
}
declare -A LABEL=([one]="1 route" [hosts]="$ROUTES routes (hosts)" [paths]="$ROUTES routes (paths)")
echo
printf "%-32s %9s %9s %9s %9s %7s %7s %7s  %s\n" case direct Pylon nginx haproxy P/nginx P/hapr P/direct \
  "p50/p99 ms: Pylon | nginx | haproxy | direct"
json_cases="" json_ratios="" cpu_table="" p99_table=""
for mode in "${MODES[@]}"; do
  d=direct/$mode
  json_cases+=$(json_case "$d")
  for t in "${TABLES[@]}"; do
    py=pylon/$t/$mode ng=nginx/$t/$mode ha=haproxy/$t/$mode
    rn=$(ratio "${RPS[$py]}" "${RPS[$ng]}") rh=$(ratio "${RPS[$py]}" "${RPS[$ha]}") rd=$(ratio "${RPS[$py]}" "${RPS[$d]}")
    printf "%-32s %9s %9s %9s %9s %6sx %6sx %6sx  %s/%s | %s/%s | %s/%s | %s/%s\n" "${LABEL[$t]}, $mode" \
      "${RPS[$d]}" "${RPS[$py]}" "${RPS[$ng]}" "${RPS[$ha]}" "$rn" "$rh" "$rd" "${P50[$py]}" "${P99[$py]}" \
      "${P50[$ng]}" "${P99[$ng]}" "${P50[$ha]}" "${P99[$ha]}" "${P50[$d]}" "${P99[$d]}"
    for k in "$py" "$ng" "$ha"; do json_cases+=$(json_case "$k"); done
    p99_table+="$(pad "${LABEL[$t]}, $mode" 33)$(p99_cell "$d" 24)$(p99_cell "$py" 24)$(p99_cell "$ng" 24)$(p99_cell "$ha" 0)"$'\n'
    cn=$(ratio "${CPU_US[$py]}" "${CPU_US[$ng]}") ch=$(ratio "${CPU_US[$py]}" "${CPU_US[$ha]}")
    cpu_table+=$(printf "%-32s %9s %9s %9s %9s %6sx %6sx" "${LABEL[$t]}, $mode" "${CPU_US[$d]}" "${CPU_US[$py]}" \
      "${CPU_US[$ng]}" "${CPU_US[$ha]}" "$cn" "$ch")$'\n'
    json_ratios+="\"${t}_$mode\":{\"pylon_over_nginx\":$rn,\"pylon_over_haproxy\":$rh,\"pylon_over_direct\":$rd,"
    json_ratios+="\"pylon_cpu_over_nginx\":$cn,\"pylon_cpu_over_haproxy\":$ch},"
  done
done
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "p99 ms, median (min–max) over $ROUNDS rounds:"
  printf "%-32s %-23s %-23s %-23s %s\n" case direct Pylon nginx haproxy
  printf "%s" "$p99_table"
fi
echo
echo "CPU per request of the server under test, us (the backend's own CPU not included; direct = backend):"
printf "%-32s %9s %9s %9s %9s %7s %7s\n" case direct Pylon nginx haproxy P/nginx P/hapr
printf "%s" "$cpu_table"
echo
echo "Pylon VmRSS: idle ${RSS[idle]} kB ($IDLE_PARTS); $ROUTES routes: ${RSS[routes_5k_hosts]} kB (hosts)," \
  "${RSS[routes_5k_paths]} kB (paths); after load: ${RSS[idle_after_load]} / ${RSS[routes_5k_hosts_after_load]} / ${RSS[routes_5k_paths_after_load]} kB"
echo "After $FLOOD concurrent connections (closed 2 s earlier), 1 route: Pylon ${RSS[after_flood]} kB," \
  "nginx worker $NGINX_RSS_AFTER_FLOOD kB"
for n in $SLOW_HEADS; do
  echo "With $n slow 48 KiB heads: Pylon ${SLOW[pylon-$n]}; nginx worker ${SLOW[nginx-$n]}"
done
echo "measured in $(($(date +%s) - START)) s"
json_rss=""
for k in idle routes_5k_hosts routes_5k_paths idle_after_load routes_5k_hosts_after_load routes_5k_paths_after_load after_flood; do
  json_rss+="\"$k\":${RSS[$k]},"
done
json_fail=""
for f in "${FAILURES[@]}"; do json_fail+="\"$f\","; done
echo "BENCH {\"wrk\":{\"threads\":$THREADS,\"connections\":$CONNS,\"duration\":\"$DUR\",\"warmup\":\"$WARMUP\",\"rounds\":$ROUNDS}," \
  "\"cpus\":{\"count\":$(nproc),\"client\":$CLIENT_CPU,\"server\":$SERVER_CPU},\"routes\":$ROUTES," \
  "\"cases\":{${json_cases%,}},\"ratios\":{${json_ratios%,}},\"pylon_rss_kb\":{${json_rss%,}}," \
  "\"nginx_rss_kb\":{\"after_flood\":$NGINX_RSS_AFTER_FLOOD},\"slow_heads\":{${json_slow%,}}," \
  "\"failures\":[${json_fail%,}]}" | tr -d '\n'
echo
[ ${#FAILURES[@]} -eq 0 ] || fail "${#FAILURES[@]} server(s) died during the run"

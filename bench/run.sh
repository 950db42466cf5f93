#!/usr/bin/env bash
# Data-plane benchmark (not a test): the backend directly, Pylon, and nginx and haproxy from
# Debian configured as equivalent reverse proxies to the same backend; 1 route and 5,000 routes;
# keep-alive and new-connection cases. Prints RPS and p50/p99 for each, the ratios Pylon/nginx
# and Pylon/direct, Pylon's RSS idle and with 5,000 routes, and a final `BENCH {json}` line.
#
# Everything binds 127.0.0.1. Tunables: BENCH_DURATION (5s), BENCH_CONNECTIONS (32),
# BENCH_THREADS (2), PYLON_BIN (default: target/release/pylon-dataplane, built if missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-5s}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
ROUTES=5000
PYLON=${PYLON_BIN:-$ROOT/target/release/pylon-dataplane}

for tool in wrk nginx haproxy; do
  command -v "$tool" >/dev/null || {
    echo "bench: $tool missing; install with: apt-get install -y wrk nginx-light haproxy" >&2
    exit 1
  }
done
[ -x "$PYLON" ] || (cd "$ROOT" && cargo build --release -p pylon-dataplane)

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

BACKEND=19300
declare -A PORT=([pylon1]=19301 [pylon5k]=19302 [nginx1]=19303 [nginx5k]=19304 [haproxy1]=19305 [haproxy5k]=19306)
HOST=bench.local
TARGET_PATH="/r$((ROUTES - 1))/x" # the last route: worst case for linear matchers

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: port $1 never opened" >&2
  exit 1
}

# --- the backend: nginx answering 200 "ok" itself -------------------------------------------
nginx_conf() { # name, body of http{}
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1/nginx.conf" <<NGX
worker_processes 2;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1; proxy_temp_path $WORK/$1; fastcgi_temp_path $WORK/$1;
  uwsgi_temp_path $WORK/$1; scgi_temp_path $WORK/$1;
  keepalive_requests 1000000;
$2
}
NGX
  nginx -p "$WORK/$1" -c "$WORK/$1/nginx.conf" -g 'daemon off;' &
  PIDS+=($!)
}
nginx_conf backend "  server { listen 127.0.0.1:$BACKEND; location / { return 200 \"ok\n\"; } }"
wait_port $BACKEND

# --- Pylon ------------------------------------------------------------------------------------
pylon_conf() { # port, routes
  {
    echo "apiVersion: pylon.dev/dataplane/v1"
    echo "listeners:"
    echo "- name: http"
    echo "  port: $1"
    echo "  protocol: HTTP"
    echo "  routes:"
    for i in $(seq $((ROUTES - $2)) $((ROUTES - 1))); do
      echo "  - {kind: HTTPRoute, namespace: bench, name: r$i, creationTimestamp: '2024-01-01T00:00:00Z', hostnames: [$HOST], rules: [{matches: [{path: {type: PathPrefix, value: /r$i}}], backendRefs: [{type: Backend, name: backend}]}]}"
    done
    echo "backends:"
    echo "  backend: {endpoints: [{address: '127.0.0.1:$BACKEND'}]}"
  }
}
pylon_conf "${PORT[pylon1]}" 1 >"$WORK/pylon1.yaml"
pylon_conf "${PORT[pylon5k]}" $ROUTES >"$WORK/pylon5k.yaml"
"$PYLON" --config "$WORK/pylon1.yaml" --bind-addr 127.0.0.1 --admin-addr 127.0.0.1:19311 --no-access-log 2>"$WORK/pylon1.log" &
PYLON1_PID=$!
PIDS+=($PYLON1_PID)
"$PYLON" --config "$WORK/pylon5k.yaml" --bind-addr 127.0.0.1 --admin-addr 127.0.0.1:19312 --no-access-log 2>"$WORK/pylon5k.log" &
PYLON5K_PID=$!
PIDS+=($PYLON5K_PID)
wait_port "${PORT[pylon1]}"
wait_port "${PORT[pylon5k]}"
sleep 0.5
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
RSS_IDLE=$(rss_kb $PYLON1_PID)
RSS_5K=$(rss_kb $PYLON5K_PID)

# --- nginx and haproxy as reverse proxies -------------------------------------------------------
nginx_proxy() { # name, port, routes
  local locs=""
  for i in $(seq $((ROUTES - $3)) $((ROUTES - 1))); do
    locs+="    location /r$i { proxy_pass http://be; }"$'\n'
  done
  nginx_conf "$1" "  upstream be { server 127.0.0.1:$BACKEND; keepalive 64; }
  proxy_http_version 1.1; proxy_set_header Connection \"\";
  server { listen 127.0.0.1:$2; server_name $HOST;
$locs  }"
}
nginx_proxy nginx1 "${PORT[nginx1]}" 1
nginx_proxy nginx5k "${PORT[nginx5k]}" $ROUTES

haproxy_proxy() { # name, port, routes
  {
    echo "global"
    echo "  nbthread 2"
    echo "  maxconn 4096"
    echo "defaults"
    echo "  mode http"
    echo "  option http-keep-alive"
    echo "  timeout connect 5s"
    echo "  timeout client 30s"
    echo "  timeout server 30s"
    echo "frontend fe"
    echo "  bind 127.0.0.1:$2"
    for i in $(seq $((ROUTES - $3)) $((ROUTES - 1))); do
      echo "  use_backend be if { hdr(host) -i $HOST } { path /r$i } || { hdr(host) -i $HOST } { path_beg /r$i/ }"
    done
    echo "backend be"
    echo "  http-reuse always"
    echo "  server s1 127.0.0.1:$BACKEND"
  } >"$WORK/$1.cfg"
  haproxy -f "$WORK/$1.cfg" 2>"$WORK/$1.log" &
  PIDS+=($!)
}
haproxy_proxy haproxy1 "${PORT[haproxy1]}" 1
haproxy_proxy haproxy5k "${PORT[haproxy5k]}" $ROUTES
for p in "${PORT[@]}"; do wait_port "$p"; done

# --- measurements -------------------------------------------------------------------------------
to_ms() { # wrk latency ("812.00us", "1.20ms", "1.01s") → ms
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "0" }'
}
declare -A RPS P50 P99
run() { # key, port, extra header
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -H "Host: $HOST" ${3:+-H "$3"} "http://127.0.0.1:$2$TARGET_PATH" 2>&1)
  if ! grep -q "Non-2xx" <<<"$out"; then :; else echo "bench: $1 had non-2xx answers" >&2; fi
  RPS[$1]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  P50[$1]=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  P99[$1]=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  printf "%-22s %10s rps   p50 %8s ms   p99 %8s ms\n" "$1" "${RPS[$1]}" "${P50[$1]}" "${P99[$1]}"
}

# Sanity: every proxy routes the target path to the backend.
for k in "${!PORT[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://127.0.0.1:${PORT[$k]}$TARGET_PATH")
  [ "$code" = 200 ] || { echo "bench: $k answered $code for $TARGET_PATH" >&2; exit 1; }
done

echo "duration $DUR, $CONNS connections, $THREADS wrk threads, $(nproc) CPUs shared by wrk, proxy and backend"
for mode in keepalive newconn; do
  hdr=""
  [ $mode = newconn ] && hdr="Connection: close"
  run "direct/$mode" $BACKEND "$hdr"
  for proxy in pylon nginx haproxy; do
    for routes in 1 5k; do
      run "$proxy$routes/$mode" "${PORT[$proxy$routes]}" "$hdr"
    done
  done
done
RSS_5K_LOADED=$(rss_kb $PYLON5K_PID)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "0" }'; }
echo
json="{"
for mode in keepalive newconn; do
  for routes in 1 5k; do
    k="pylon$routes/$mode"
    rn=$(ratio "${RPS[$k]}" "${RPS[nginx$routes/$mode]}")
    rd=$(ratio "${RPS[$k]}" "${RPS[direct/$mode]}")
    echo "$k: Pylon/nginx RPS ${rn}x, Pylon/direct RPS ${rd}x, p99 Pylon ${P99[$k]} ms vs nginx ${P99[nginx$routes/$mode]} ms"
    json+="\"pylon_over_nginx_${routes}_${mode}\":$rn,\"pylon_over_direct_${routes}_${mode}\":$rd,"
  done
done
echo "Pylon RSS: idle ${RSS_IDLE} kB, 5,000 routes ${RSS_5K} kB (${RSS_5K_LOADED} kB after load)"
for k in "${!RPS[@]}"; do
  json+="\"${k//\//_}\":{\"rps\":${RPS[$k]},\"p50_ms\":${P50[$k]},\"p99_ms\":${P99[$k]}},"
done
json+="\"rss_idle_kb\":$RSS_IDLE,\"rss_5k_routes_kb\":$RSS_5K,\"rss_5k_routes_loaded_kb\":$RSS_5K_LOADED}"
echo "BENCH $json"

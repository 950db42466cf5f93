# Config generators for bench/run.sh (sourced, not run): equivalent route tables for Pylon, nginx
# and haproxy, all forwarding to one backend over a keep-alive upstream pool.
#
# A table is one of:
#   one    1 route: host bench.local, path prefix /
#   hosts  N routes: host r<i>.bench.local, path prefix /        (exact-hostname lookup)
#   paths  N routes: host bench.local, path prefix /r<i>/        (path-prefix lookup on one host)
# The benchmark requests the last route (i = N-1). Anything that matches no route is answered
# by the proxy itself (404 from Pylon and nginx, 503 from haproxy), which run.sh checks so that
# "equivalent" is verified rather than assumed.

BENCH_HOST=bench.local

# route_ids TABLE N: the route indexes of the table, one per line.
route_ids() {
  if [ "$1" = one ]; then echo $(($2 - 1)); else seq 0 $(($2 - 1)); fi
}

# target_host TABLE N / target_path TABLE N: what wrk requests for this table.
target_host() { if [ "$1" = hosts ]; then echo "r$(($2 - 1)).$BENCH_HOST"; else echo "$BENCH_HOST"; fi; }
target_path() { echo "/r$(($2 - 1))/x"; }

# pylon_config TABLE N PORT BACKEND_PORT > file
pylon_config() {
  cat <<EOF
apiVersion: pylon.dev/dataplane/v1
listeners:
- name: http
  port: $3
  protocol: HTTP
  routes:
EOF
  route_ids "$1" "$2" | awk -v table="$1" -v host="$BENCH_HOST" '{
    h = host; p = "/"
    if (table == "hosts") h = "r" $1 "." host
    if (table == "paths") p = "/r" $1 "/"
    printf "  - {kind: HTTPRoute, namespace: bench, name: r%s, creationTimestamp: \x272024-01-01T00:00:00Z\x27, hostnames: [%s], rules: [{matches: [{path: {type: PathPrefix, value: %s}}], backendRefs: [{type: Backend, name: backend}]}]}\n", $1, h, p
  }'
  cat <<EOF
backends:
  backend: {endpoints: [{address: '127.0.0.1:$4'}]}
EOF
}

# nginx_main DIR HTTP_BODY > nginx.conf: one worker (pinned by run.sh), no access log; room for
# the slow-heads case (10,000 connections, heads of 48 KiB in 1 kB fields: the default large
# header buffers, 4 of 8 KiB, would answer them 400 instead of holding them as Pylon does).
nginx_main() {
  cat <<EOF
worker_processes 1;
worker_rlimit_nofile 32768;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1;
  uwsgi_temp_path $1; scgi_temp_path $1;
  keepalive_requests 1000000;
  large_client_header_buffers 8 8k;
  server_names_hash_max_size 16384;
  server_names_hash_bucket_size 64;
$2
}
EOF
}

# nginx_backend_config DIR PORT > nginx.conf: the backend every case ends at.
nginx_backend_config() {
  nginx_main "$1" "  server { listen 127.0.0.1:$2 backlog=4096; location / { return 200 \"ok\n\"; } }"
}

# nginx_proxy_config DIR TABLE N PORT BACKEND_PORT > nginx.conf
nginx_proxy_config() {
  local servers
  servers=$(route_ids "$2" "$3" | awk -v table="$2" -v host="$BENCH_HOST" -v port="$4" '
    table == "hosts" {
      printf "  server { listen 127.0.0.1:%s; server_name r%s.%s; location / { proxy_pass http://be; } }\n", port, $1, host
    }
    table == "paths" { locs = locs sprintf("    location /r%s/ { proxy_pass http://be; }\n", $1) }
    table == "one"   { locs = "    location / { proxy_pass http://be; }\n" }
    END {
      if (table != "hosts") printf "  server { listen 127.0.0.1:%s; server_name %s;\n%s  }\n", port, host, locs
    }')
  nginx_main "$1" "  upstream be { server 127.0.0.1:$5; keepalive 64; keepalive_requests 1000000; }
  proxy_http_version 1.1;
  proxy_set_header Connection \"\";
  server { listen 127.0.0.1:$4 default_server backlog=4096; return 404; }
$servers"
}

# haproxy_config DIR TABLE N PORT BACKEND_PORT > haproxy.cfg; writes DIR/routes.map for the
# 5,000-route tables (map_str is a tree lookup on the host, map_beg a prefix-tree lookup on the
# path: haproxy's idiomatic form for large tables, rather than 5,000 linear ACLs).
haproxy_config() {
  local rule
  case "$2" in
  one) rule="use_backend be if { hdr(host) -i $BENCH_HOST }" ;;
  hosts)
    route_ids "$2" "$3" | awk -v host="$BENCH_HOST" '{ printf "r%s.%s be\n", $1, host }' >"$1/routes.map"
    rule="use_backend %[req.hdr(host),lower,map_str($1/routes.map)]"
    ;;
  paths)
    route_ids "$2" "$3" | awk '{ printf "/r%s/ be\n", $1 }' >"$1/routes.map"
    rule="use_backend %[path,map_beg($1/routes.map)] if { hdr(host) -i $BENCH_HOST }"
    ;;
  esac
  cat <<EOF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
frontend fe
  bind 127.0.0.1:$4
  $rule
backend be
  http-reuse always
  server s1 127.0.0.1:$5
EOF
}

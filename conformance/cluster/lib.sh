# Shared by up.sh, down.sh and e2e.sh: the cluster's addresses, and process bookkeeping.
DIR=${PYLON_CLUSTER_DIR:-/var/lib/pylon-cluster}
NODE_NAME=pylon-node
NODE_IP=10.244.0.1
BRIDGE=pylon0
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
LB_CIDR=10.245.0.0/24
CLUSTER_DNS=10.96.0.10
PYLON_BIN_DIR=${PYLON_BIN_DIR:-$(bash "$repo/scripts/build.sh" --dir "${PYLON_PROFILE:-debug}")}
PODLET=${PODLET:-$PYLON_BIN_DIR/pylon-podlet}

# run NAME CMD...: start CMD in its own session, logging to $DIR/logs/NAME.log.
run() {
  local name=$1; shift
  setsid "$@" >>"$DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$DIR/run/$name.pid"
}

# alive NAME: the process started as NAME is still running.
alive() {
  local pid
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null
}

# wait_for WHAT SECONDS CMD...: retry CMD until it succeeds; on timeout show the log and fail.
wait_for() {
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster: $what not ready after ${limit}s" >&2
      local log=$DIR/logs/${what%% *}.log
      [ -f "$log" ] && tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.5
  done
}

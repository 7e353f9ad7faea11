#!/usr/bin/env bash
# The anchor: the same ten processes as compose.yaml, started by hand in the
# same order, each tier waiting (polling every 100 ms, as cove's
# start_interval) until the previous one accepts connections. Writes the
# PIDs to $1 (one per line) for the caller to stop them.
set -euo pipefail
pids="$1"
: > "$pids"
base=127.1.0
declare -A addr=([db]=1 [cache]=2 [mq]=3 [api1]=4 [api2]=5 [api3]=6 [worker1]=7 [worker2]=8 [web]=9 [edge]=10)
start() {
  for s in "$@"; do
    python3 -m http.server --bind "$base.${addr[$s]}" 8000 >/dev/null 2>&1 &
    echo $! >> "$pids"
  done
}
ready() {
  for s in "$@"; do
    until (exec 3<>"/dev/tcp/$base.${addr[$s]}/8000") 2>/dev/null; do sleep 0.1; done
  done
}
start db cache mq;            ready db cache mq
start api1 api2 api3;         ready api1 api2 api3
start worker1 worker2 web;    ready worker1 worker2 web
start edge;                   ready edge

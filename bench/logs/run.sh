#!/usr/bin/env bash
# `cove logs --grep` over a large log store against `grep -c` on the same
# files (the floor). Usage: bench/logs/run.sh [SIZE_BYTES] [REPLICAS]
# (default 1 GiB over 4 replicas). Needs a release build:
#   cargo build --profile release-fast -p cove   (or COVE=/path/to/cove)
# Measures, each run RUNS times (default 3), best wall time:
#   floor:  grep -c needle .cove/logs/*.log
#   files:  cove logs --grep needle   (no daemon: the query runs in the CLI)
#   daemon: the same with the app up (`cove up -d`): GET /v1/logs pages
# and prints a Markdown table row per measurement.
set -euo pipefail
size="${1:-1073741824}"
replicas="${2:-4}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cove="${COVE:-$root/target/release-fast/cove}"
[ -x "$cove" ] || { echo "no $cove: build it (cargo build --profile release-fast -p cove) or set COVE" >&2; exit 2; }
work="$(mktemp -d /tmp/cove-logs-bench.XXXXXX)"
cleanup() {
  (cd "$work" && "$cove" down >/dev/null 2>&1) || true
  # The daemon may still be removing its files as `down` returns.
  rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; }
}
trap cleanup EXIT
cat > "$work/compose.yaml" <<'YAML'
name: logbench
services:
  api:
    deploy: {replicas: 1}
    x-cove: {run: [sh, -c, 'sleep 600 & wait']}
YAML
mkdir -p "$work/.cove/logs"
chmod 700 "$work/.cove" "$work/.cove/logs"
python3 "$here/gen.py" "$work/.cove/logs" "$size" "$replicas" >&2
# The replicas' files are named api-1 .. api-N: the one replica `up -d`
# starts appends to api-1.log (nothing: it prints nothing).
sync
runs="${RUNS:-3}"
best() { # best wall time of $runs runs of "$@", in seconds; the output of the last
  local b=""
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$work/out" 2>"$work/err"
    t1=$(date +%s.%N)
    local d; d=$(echo "$t1 - $t0" | bc)
    if [ -z "$b" ] || [ "$(echo "$d < $b" | bc)" = 1 ]; then b=$d; fi
  done
  echo "$b"
}
cd "$work"
bytes=$(cat .cove/logs/*.log | wc -c)
floor=$(best grep -c needle .cove/logs/api-1.log .cove/logs/api-2.log .cove/logs/api-3.log .cove/logs/api-4.log)
want=$(awk -F: '{s+=$NF} END {print s}' out)
count() { "$cove" logs --grep needle --no-log-prefix | wc -l; }
files=$(best count)
got_files=$(cat out)
"$cove" up -d >/dev/null
daemon=$(best count)
got_daemon=$(cat out)
json=$(best sh -c "'$cove' logs --grep needle --format json | wc -l")
level=$(best sh -c "'$cove' logs --level error | wc -l")
"$cove" down >/dev/null
ratio() { echo "scale=1; $1 / $2" | bc; }
echo "| data | what | lines | best of $runs (s) | × grep -c |"
echo "|---|---|---|---|---|"
echo "| $bytes B, $replicas files | grep -c needle (floor) | $want | $floor | 1 |"
echo "| | cove logs --grep needle, no daemon (query in the CLI) | $got_files | $files | $(ratio "$files" "$floor") |"
echo "| | cove logs --grep needle, through the daemon | $got_daemon | $daemon | $(ratio "$daemon" "$floor") |"
echo "| | cove logs --grep needle --format json, through the daemon | | $json | $(ratio "$json" "$floor") |"
echo "| | cove logs --level error, through the daemon (JSON parsed per line) | | $level | $(ratio "$level" "$floor") |"

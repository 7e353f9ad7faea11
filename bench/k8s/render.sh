#!/usr/bin/env bash
# `cove k8s render` of the generated 500-service app
# (bench/config-load/generate.py: images, ports, environment, named volumes
# and bind-mounted directories, healthchecks, deploy, depends_on), timed
# over RUNS runs (wall time of the whole command: load, render, YAML to
# stdout, sent to /dev/null). The goal (issue 23): under 1 s. Measurements
# only; nothing is asserted. Results: bench/k8s/RESULTS.md.
#
#   bash bench/k8s/render.sh [SERVICES] [RUNS]     (default 500 10)
# cove: $COVE_BIN when set, else built here in release (`cargo build
# --release -p cove`, into $CARGO_TARGET_DIR, else target/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
n="${1:-500}"
runs="${2:-10}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cove="${COVE_BIN:-}"
if [ -z "$cove" ]; then
  cargo build -q --release -p cove --manifest-path "$root/Cargo.toml"
  cove="${CARGO_TARGET_DIR:-$root/target}/release/cove"
fi

python3 "$root/bench/config-load/generate.py" "$n" > "$work/compose.yaml"
# The bind-mounted directories (./conf/N), one small file each: render
# makes ConfigMaps of them.
for ((i = 0; i < n; i++)); do
  mkdir -p "$work/conf/$i"
  echo "level = $i" > "$work/conf/$i/app.conf"
done

# Once, to check it renders and count the objects.
if ! "$cove" -f "$work/compose.yaml" k8s render > "$work/out.yaml" 2> "$work/err"; then
  cat "$work/err" >&2
  exit 1
fi
objects="$(grep -c '^kind:' "$work/out.yaml")"
echo "cove: $cove ($("$cove" --version 2>/dev/null || echo '?'))"
echo "app: $n services -> $objects objects, $(wc -c < "$work/out.yaml") bytes of YAML"

# RUNS timed runs of `cove ARGS...` (output to /dev/null): min, median,
# max, mean.
timed() {
  local label="$1" times=() r t0 t1
  shift
  for ((r = 0; r < runs; r++)); do
    t0=$(date +%s%N)
    "$cove" -f "$work/compose.yaml" "$@" > /dev/null 2>&1
    t1=$(date +%s%N)
    times+=("$(( (t1 - t0) / 1000000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v runs="$runs" -v label="$label" '
    { t[NR] = $1; sum += $1 }
    END {
      med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
      printf "%-28s %d runs: min %d ms, median %d ms, max %d ms, mean %.0f ms\n", label, runs, t[1], med, t[NR], sum / NR
    }'
}
timed "cove k8s render" k8s render
# The same file loaded and checked only: what of render's time is the load.
timed "cove config -q (load only)" config -q
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

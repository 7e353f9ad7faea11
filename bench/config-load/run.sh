#!/usr/bin/env bash
# Loading a generated 500-service Compose file: `cove config` side by side
# with `docker-compose config` (Debian's docker-compose 1.29.2, the anchor
# available on these machines; Docker's Go `docker compose` plugin is not
# packaged here). Reports wall time (hyperfine) and peak memory (GNU time),
# and the ratios. Measurements only; nothing is asserted.
#
# Usage: bash bench/config-load/run.sh [SERVICES]   (default 500)
# Needs: hyperfine, time (GNU), docker-compose (apt-get install hyperfine time docker-compose)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
n="${1:-500}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build -q --release -p cove --manifest-path "$root/Cargo.toml"
cove="$root/target/release/cove"
python3 "$here/generate.py" "$n" > "$work/compose.yaml"
echo "file: $n services, $(wc -c < "$work/compose.yaml") bytes"

cmds=("$cove -f $work/compose.yaml config --format json")
names=("cove")
if command -v docker-compose >/dev/null; then
  cmds+=("docker-compose -f $work/compose.yaml config")
  names+=("docker-compose $(docker-compose version --short 2>/dev/null)")
fi

# Both must accept the file, else the comparison is meaningless.
for c in "${cmds[@]}"; do $c > /dev/null; done

hyperfine --warmup 2 --min-runs 10 --export-json "$work/h.json" "${cmds[@]}" > /dev/null
python3 - "$work/h.json" "${names[@]}" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
base = h[0]["mean"]
print(f"{'tool':<28}{'mean ms':>10}{'stddev':>9}{'ratio':>8}")
for name, r in zip(names, h):
    print(f"{name:<28}{r['mean']*1000:>10.1f}{r['stddev']*1000:>9.1f}{r['mean']/base:>8.2f}")
PY

if command -v /usr/bin/time >/dev/null; then
  echo "peak RSS (KiB):"
  for i in "${!cmds[@]}"; do
    kib=$( { /usr/bin/time -f '%M' ${cmds[$i]} > /dev/null; } 2>&1 | tail -1 )
    echo "  ${names[$i]}: $kib"
  done
fi

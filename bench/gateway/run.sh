#!/usr/bin/env bash
# The gateway (`cove gateway`, standalone) side by side with HAProxy, nginx
# and Caddy, with the shared harness (../shared/bench/proxy): keep-alive and
# connection-close, shared and pinned CPUs, RPS, p50/p99, RSS, CPU per
# request. Measurements only; nothing is asserted.
#
# Usage: bash bench/gateway/run.sh [harness options...]   e.g. --reps 3 --duration 5
# Needs: nginx haproxy caddy wrk (BENCH_INSTALL=1 installs them with apt-get).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
harness="${COVE_PROXY_HARNESS:-$root/../shared/bench/proxy/run.sh}"
[ -f "$harness" ] || { echo "the shared proxy harness is not at $harness (set COVE_PROXY_HARNESS)" >&2; exit 2; }
cargo build -q --release -p cove --manifest-path "$root/Cargo.toml"
cove="$(cd "$root" && pwd)/target/release/cove"
exec bash "$harness" --candidate-name cove \
  --candidate-cmd "$cove gateway --listen {LISTEN} --upstream {UP1} --upstream {UP2} --threads {THREADS}" \
  "$@"

#!/usr/bin/env bash
# The cost of scrubbing secret values out of captured output, per line
# (crates/cove-runtime/examples/scrub.rs, release build). Measurements only.
# Usage: bash bench/secrets/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cargo run -q --release --manifest-path "$root/Cargo.toml" -p cove-runtime --example scrub

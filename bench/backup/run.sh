#!/usr/bin/env bash
# Backup of a PostgreSQL database with `cove backup` (pg_dump -Fc -Z0 into
# the restic repository: chunked, deduplicated, zstd-compressed, encrypted)
# against the floor the issue names, `pg_dump -Fc` to a file on the same
# machine, in the same run; then the bytes a second backup adds after 1 % of
# the rows changed: spread evenly (every 100th row) and contiguous (the
# first 1 % of ids). Measurements only; nothing is asserted.
#
# Usage: bash bench/backup/run.sh [MB]   (the table's size to aim at; default 1024)
# cove: $COVE_BIN when set, else built here with the `release-fast` profile
# (release without LTO).
# Needs: postgresql (the native recipe) and psql/pg_dump, as scripts/test installs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mb="${1:-1024}"
cove="${COVE_BIN:-}"
if [ -z "$cove" ]; then
  cargo build -q --profile release-fast -p cove --manifest-path "$root/Cargo.toml"
  cove="${CARGO_TARGET_DIR:-$root/target}/release-fast/cove"
fi
work="$(mktemp -d)"
mkdir "$work/app"
export COVE_IDENTITY="$work/identity.txt" NO_COLOR=1
# The daemon may still write its state just after `down` returns: one retry.
trap '(cd "$work/app" && "$cove" down >/dev/null 2>&1 || true); rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; }' EXIT
cat > "$work/app/compose.yaml" <<'YAML'
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: bench
      POSTGRES_PASSWORD: bench-password
      POSTGRES_DB: bench
YAML
cd "$work/app"
"$cove" secrets init >/dev/null 2>&1
"$cove" up -d >/dev/null 2>&1

# SQL beside the replica, in its environment (the password never in argv).
sql() {
  "$cove" exec pg sh -c 'PGPASSWORD="$POSTGRES_PASSWORD" exec psql -h "$HOST" -p "$PORT" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tA -v ON_ERROR_STOP=1 -c "$1"' sh "$1"
}
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }

# ~150 bytes a row on disk: two md5 strings, a number, a 40-letter note.
rows=$(( mb * 1024 * 1024 / 150 ))
t0=$(now)
sql "CREATE TABLE items (id bigint PRIMARY KEY, a text, b text, n int, note text); INSERT INTO items SELECT g, md5(g::text), md5((g * 31)::text), g % 1000, repeat(chr(65 + (g % 26)::int), 40) FROM generate_series(1, $rows) g" >/dev/null
sql "VACUUM ANALYZE items" >/dev/null
t1=$(now)
size=$(sql "SELECT pg_database_size(current_database())")
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "database: $rows rows, $((size / 1024 / 1024)) MiB (pg_database_size), made in $(secs "$t0" "$t1") s"

# The floor: pg_dump -Fc to a file, as an operator would.
floor() {
  local out="$work/floor.dump" a b
  a=$(now)
  "$cove" exec pg sh -c 'PGPASSWORD="$POSTGRES_PASSWORD" exec pg_dump '"$1"' -h "$HOST" -p "$PORT" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$0"' "$out"
  b=$(now)
  echo "$(secs "$a" "$b") $(stat -c %s "$out")"
  rm -f "$out"
}
backup() {
  local a b
  a=$(now)
  "$cove" backup pg >/dev/null 2>&1
  b=$(now)
  local added
  added=$("$cove" backup ls --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["added"])')
  local stream
  stream=$("$cove" backup ls --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["size"])')
  echo "$(secs "$a" "$b") $added $stream"
}

read -r f1 f1b <<<"$(floor -Fc)"
read -r c1 c1added c1stream <<<"$(backup)"
read -r f2 f2b <<<"$(floor -Fc)"
read -r z1 z1b <<<"$(floor '-Fc -Z0')"
ratio=$(python3 -c "print(f'{$c1 / (($f1 + $f2) / 2):.2f}')")
echo
echo "| run | wall time (s) | bytes |"
echo "|---|---|---|"
echo "| \`pg_dump -Fc > file\` (before) | $f1 | $f1b (file) |"
echo "| \`cove backup pg\` (first) | $c1 | $c1stream stream, $c1added added to the repository |"
echo "| \`pg_dump -Fc > file\` (after) | $f2 | $f2b (file) |"
echo "| \`pg_dump -Fc -Z0 > file\` | $z1 | $z1b (file) |"
echo
echo "ratio cove backup / mean of the two pg_dump -Fc runs: $ratio"

. "$here/pairs.sh"
pairs "pg_dump -Fc" pg floor -Fc

sql "UPDATE items SET n = n + 1 WHERE id % 100 = 0" >/dev/null
read -r c2 c2added c2stream <<<"$(backup)"
sql "UPDATE items SET n = n + 1 WHERE id <= $rows / 100" >/dev/null
read -r c3 c3added c3stream <<<"$(backup)"
pct() { python3 -c "print(f'{100 * $1 / $2:.1f}')"; }
echo
echo "| second backup after 1 % of rows changed | wall time (s) | stream | added | added / first backup's added |"
echo "|---|---|---|---|---|"
echo "| spread (every 100th row) | $c2 | $c2stream | $c2added | $(pct "$c2added" "$c1added") % |"
echo "| contiguous (first 1 % of ids) | $c3 | $c3stream | $c3added | $(pct "$c3added" "$c1added") % |"
echo
echo "repository: $(du -sb "$work/app/.cove/backups" | cut -f1) bytes on disk after the three backups"

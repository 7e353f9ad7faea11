#!/usr/bin/env bash
# Backup of a MariaDB database with `cove backup` (mariadb-dump
# --single-transaction into the restic repository: chunked, deduplicated,
# zstd-compressed, encrypted) against the floor the issue names, plain
# `mariadb-dump --single-transaction | zstd` to a file on the same machine,
# in the same run; then the bytes a second backup adds after 1 % of the rows
# changed: spread evenly (every 100th row) and contiguous (the first 1 % of
# ids). Measurements only; nothing is asserted. bench/backup/run.sh is the
# same for PostgreSQL.
#
# Usage: bash bench/backup/mariadb.sh [MB]   (the table's size to aim at; default 1024)
# cove: $COVE_BIN when set, else built here with the `release-fast` profile.
# Needs: mariadb-server (the native recipe), mariadb, mariadb-dump and zstd.
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
trap '(cd "$work/app" && "$cove" down >/dev/null 2>&1 || true); rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; }' EXIT
cat > "$work/app/compose.yaml" <<'YAML'
services:
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: bench-password
      MARIADB_DATABASE: bench
YAML
cd "$work/app"
"$cove" secrets init >/dev/null 2>&1
"$cove" up -d >/dev/null 2>&1

# SQL beside the replica, in its environment (the password in MYSQL_PWD,
# never in argv).
sql() {
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec mariadb --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot -N -B bench -e "$1"' sh "$1"
}
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }

# The same rows as run.sh's: two md5 strings, a number, a 40-letter note.
rows=$(( mb * 1024 * 1024 / 150 ))
t0=$(now)
sql "CREATE TABLE items (id BIGINT PRIMARY KEY, a VARCHAR(32), b VARCHAR(32), n INT, note VARCHAR(40)) ENGINE=InnoDB" >/dev/null
batch=1000000
for ((lo = 1; lo <= rows; lo += batch)); do
  hi=$(( lo + batch - 1 < rows ? lo + batch - 1 : rows ))
  sql "INSERT INTO items SELECT seq, MD5(seq), MD5(seq * 31), seq % 1000, REPEAT(CHAR(65 + seq % 26), 40) FROM seq_${lo}_to_${hi}" >/dev/null
done
sql "ANALYZE TABLE items" >/dev/null
t1=$(now)
size=$(sql "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = 'bench'")
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "database: $rows rows, $((size / 1024 / 1024)) MiB (InnoDB data + index), made in $(secs "$t0" "$t1") s"

# The floor: mariadb-dump --single-transaction | zstd to a file, as an
# operator would (zstd's default level, 3).
floor() {
  local out="$work/floor.sql.zst" a b
  a=$(now)
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" mariadb-dump --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot --single-transaction --routines --events --databases bench | zstd -q -o "$0"' "$out"
  b=$(now)
  echo "$(secs "$a" "$b") $(stat -c %s "$out")"
  rm -f "$out"
}
backup() {
  local a b
  a=$(now)
  "$cove" backup db >/dev/null 2>&1
  b=$(now)
  local added stream
  added=$("$cove" backup ls --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["added"])')
  stream=$("$cove" backup ls --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["size"])')
  echo "$(secs "$a" "$b") $added $stream"
}

read -r f1 f1b <<<"$(floor)"
read -r c1 c1added c1stream <<<"$(backup)"
read -r f2 f2b <<<"$(floor)"
# cove's dump alone: mariadb-dump to a file, uncompressed.
plain() {
  local out="$work/plain.sql" a b
  a=$(now)
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec mariadb-dump --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot --single-transaction --routines --events --databases bench --result-file="$0"' "$out"
  b=$(now)
  echo "$(secs "$a" "$b") $(stat -c %s "$out")"
  rm -f "$out"
}
read -r p1 p1b <<<"$(plain)"
ratio=$(python3 -c "print(f'{$c1 / (($f1 + $f2) / 2):.2f}')")
echo
echo "| run | wall time (s) | bytes |"
echo "|---|---|---|"
echo "| \`mariadb-dump --single-transaction | zstd > file\` (before) | $f1 | $f1b (file) |"
echo "| \`cove backup db\` (first) | $c1 | $c1stream stream, $c1added added to the repository |"
echo "| \`mariadb-dump --single-transaction | zstd > file\` (after) | $f2 | $f2b (file) |"
echo "| \`mariadb-dump --single-transaction > file\` (cove's dump alone) | $p1 | $p1b (file) |"
echo
echo "ratio cove backup / mean of the two mariadb-dump | zstd runs: $ratio"

. "$here/pairs.sh"
pairs "mariadb-dump | zstd" db floor

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

#!/usr/bin/env bash
# What re-cutting mariadb-dump's INSERT statements where the rows say
# (cove_backup::sqlsplit, through crates/cove-backup/examples/resplit.rs)
# does to a second backup. chunks.sh's MariaDB table and its three dumps
# (as made; after `UPDATE ... WHERE id % 100 = 0`; then after the first
# 1 % of ids updated), stored as mariadb-dump wrote them and re-cut, each
# set as later backups of one stream into a new repository with restic's
# default chunk size (1 MiB on average; crates/cove-backup/examples/chunking.rs);
# the figures are the bytes each later backup added over the first's. Then
# the first dump and its re-cut copy are each loaded into a new database
# with the `mariadb` client (wall time, and CHECKSUM TABLE against the
# source). Measurements only.
#
# Usage: bash bench/backup/resplit.sh [MB]   (the table's size; default 256)
# cove: $COVE_BIN when set, else built here (`release-fast`); the examples
# are built here (`release-fast`) unless $RESPLIT_BIN and $CHUNKING_BIN are given.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mb="${1:-256}"
target="${CARGO_TARGET_DIR:-$root/target}"
cove="${COVE_BIN:-}"
if [ -z "$cove" ]; then
  cargo build -q --profile release-fast -p cove --manifest-path "$root/Cargo.toml"
  cove="$target/release-fast/cove"
fi
resplit="${RESPLIT_BIN:-}"
chunking="${CHUNKING_BIN:-}"
if [ -z "$resplit" ] || [ -z "$chunking" ]; then
  cargo build -q --profile release-fast -p cove-backup --example resplit --example chunking --manifest-path "$root/Cargo.toml"
  resplit="$target/release-fast/examples/resplit"
  chunking="$target/release-fast/examples/chunking"
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
"$cove" up -d >/dev/null 2>&1
# SQL beside the replica, in its environment (the password in MYSQL_PWD,
# never in argv).
maria() {
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec mariadb --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot -N -B bench -e "$1"' sh "$1"
}
maria_dump_to() {
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec mariadb-dump --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot --single-transaction --databases bench --result-file="$0"' "$1"
}
# FILE (a dump of `bench`) into the database DB, its USE rewritten: seconds.
load_into() {
  sed "s/^USE \`bench\`;/USE \`$2\`;/; s/^CREATE DATABASE .*bench.*;$//" "$1" > "$work/load.sql"
  maria "CREATE DATABASE $2" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec mariadb --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot "$1" < "$0"' "$work/load.sql" "$2"
  t1=$(date +%s.%N)
  rm -f "$work/load.sql"
  python3 -c "print(f'{$t1 - $t0:.1f}')"
}

rows=$(( mb * 1024 * 1024 / 150 ))
maria "CREATE TABLE items (id BIGINT PRIMARY KEY, a VARCHAR(32), b VARCHAR(32), n INT, note VARCHAR(40)) ENGINE=InnoDB" >/dev/null
batch=1000000
for ((lo = 1; lo <= rows; lo += batch)); do
  hi=$(( lo + batch - 1 < rows ? lo + batch - 1 : rows ))
  maria "INSERT INTO items SELECT seq, MD5(seq), MD5(seq * 31), seq % 1000, REPEAT(CHAR(65 + seq % 26), 40) FROM seq_${lo}_to_${hi}" >/dev/null
done
# a: as made; b: then 1 % of rows changed, spread (every 100th id);
# c: then 1 % changed, contiguous (the first 1 % of ids).
maria_dump_to "$work/maria.a"
src=$(maria "CHECKSUM TABLE bench.items EXTENDED" | cut -f2)
maria "UPDATE items SET n = n + 1 WHERE id % 100 = 0" >/dev/null
maria_dump_to "$work/maria.b"
maria "UPDATE items SET n = n + 1 WHERE id <= $rows / 100" >/dev/null
maria_dump_to "$work/maria.c"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $rows rows"
for x in a b c; do
  echo "resplit maria.$x: $("$resplit" < "$work/maria.$x" 2>&1 > "$work/split.$x")"
done
echo "INSERT statements: mariadb-dump $(grep -c '^INSERT' "$work/maria.a"), re-cut $(grep -c '^INSERT' "$work/split.a")"

added() {
  local repo="$work/repo-$1" out first spread contig
  out=$("$chunking" "$repo" 1024 "$work/$1.a" "$work/$1.b" "$work/$1.c")
  rm -rf "$repo"
  first=$(echo "$out" | sed -n 1p | awk '{print $6}')
  spread=$(echo "$out" | sed -n 2p | awk '{print $6}')
  contig=$(echo "$out" | sed -n 3p | awk '{print $6}')
  python3 -c "print(f'| $2 | $(stat -c %s "$work/$1.a") | $first | {100 * $spread / $first:.1f} % ($spread) | {100 * $contig / $first:.1f} % ($contig) |')"
}
echo
echo "Bytes the second (spread) and third (contiguous) backup added, over the first's (1 MiB chunks):"
echo
echo "| dump | bytes | first backup added | spread 1 % | contiguous 1 % |"
echo "|---|---|---|---|---|"
added maria "mariadb-dump (extended inserts, as cove)"
added split "the same, re-cut (sqlsplit)"

echo
for f in maria split; do
  db="restore_$f"
  secs=$(load_into "$work/$f.a" "$db")
  sum=$(maria "CHECKSUM TABLE $db.items EXTENDED" | cut -f2)
  same=$([ "$sum" = "$src" ] && echo "the same CHECKSUM TABLE as the table dumped" || echo "CHECKSUM TABLE $sum, the table dumped: $src")
  echo "load $f.a: $secs s, $same"
  maria "DROP DATABASE $db" >/dev/null
done

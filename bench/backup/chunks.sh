#!/usr/bin/env bash
# Why a second backup after 1 % of rows changed stores what it stores, and
# what would change it: the same dumps stored into repositories whose
# chunker cuts smaller chunks (restic's default is 1 MiB on average),
# PostgreSQL's table dumped in primary-key order rather than pg_dump's
# physical order, and mariadb-dump with one INSERT a row rather than
# extended inserts. Each layout's three dumps (as made; after `UPDATE ...
# WHERE id % 100 = 0`; then after the first 1 % of ids updated) go into a
# new repository made with that chunk size, by crates/cove-backup/examples/chunking.rs (cove's
# own Store, the repository made by rustic_core 0.13 with
# `ConfigOptions::set_chunk_size`); the figures are the bytes each later
# backup added over the first's. Then Debian's restic reads the smallest-chunk
# repository back (`check --read-data`, `dump`). Measurements only.
#
# (An average under 8 KiB makes rustic_core 0.13 panic: its chunker
# subtracts its 4 KiB read buffer from the minimum chunk size, half the
# average.)
#
# Usage: bash bench/backup/chunks.sh [MB]   (each table's size; default 256:
# the ratios depend on the rows' layout, not on the table's size)
# cove: $COVE_BIN when set, else built here (`release-fast`); the example is
# built here (`release-fast`) unless $CHUNKING_BIN is given.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mb="${1:-256}"
cove="${COVE_BIN:-}"
if [ -z "$cove" ]; then
  cargo build -q --profile release-fast -p cove --manifest-path "$root/Cargo.toml"
  cove="${CARGO_TARGET_DIR:-$root/target}/release-fast/cove"
fi
chunking="${CHUNKING_BIN:-}"
if [ -z "$chunking" ]; then
  cargo build -q --profile release-fast -p cove-backup --example chunking --manifest-path "$root/Cargo.toml"
  chunking="${CARGO_TARGET_DIR:-$root/target}/release-fast/examples/chunking"
fi
work="$(mktemp -d)"
mkdir "$work/app"
export COVE_IDENTITY="$work/identity.txt" NO_COLOR=1
trap '(cd "$work/app" && "$cove" down >/dev/null 2>&1 || true); rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; }' EXIT
cat > "$work/app/compose.yaml" <<'YAML'
services:
  pg:
    image: postgres:16
    environment:
      POSTGRES_USER: bench
      POSTGRES_PASSWORD: bench-password
      POSTGRES_DB: bench
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: bench-password
      MARIADB_DATABASE: bench
YAML
cd "$work/app"
"$cove" up -d >/dev/null 2>&1
pg() {
  "$cove" exec pg sh -c 'PGPASSWORD="$POSTGRES_PASSWORD" exec psql -h "$HOST" -p "$PORT" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tA -v ON_ERROR_STOP=1 -c "$1"' sh "$1"
}
maria() {
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec mariadb --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot -N -B bench -e "$1"' sh "$1"
}
pg_dump_to() {
  "$cove" exec pg sh -c 'PGPASSWORD="$POSTGRES_PASSWORD" exec pg_dump -Fc -Z0 -h "$HOST" -p "$PORT" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$0"' "$1"
}
pg_sorted_to() {
  "$cove" exec pg sh -c 'PGPASSWORD="$POSTGRES_PASSWORD" exec psql -h "$HOST" -p "$PORT" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -c "COPY (SELECT * FROM items ORDER BY id) TO STDOUT" -o "$0"' "$1"
}
maria_dump_to() {
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec mariadb-dump --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot --single-transaction --databases bench --result-file="$0"' "$1"
}

rows=$(( mb * 1024 * 1024 / 150 ))
pg "CREATE TABLE items (id bigint PRIMARY KEY, a text, b text, n int, note text); INSERT INTO items SELECT g, md5(g::text), md5((g * 31)::text), g % 1000, repeat(chr(65 + (g % 26)::int), 40) FROM generate_series(1, $rows) g" >/dev/null
pg "VACUUM ANALYZE items" >/dev/null
maria "CREATE TABLE items (id BIGINT PRIMARY KEY, a VARCHAR(32), b VARCHAR(32), n INT, note VARCHAR(40)) ENGINE=InnoDB" >/dev/null
batch=1000000
for ((lo = 1; lo <= rows; lo += batch)); do
  hi=$(( lo + batch - 1 < rows ? lo + batch - 1 : rows ))
  maria "INSERT INTO items SELECT seq, MD5(seq), MD5(seq * 31), seq % 1000, REPEAT(CHAR(65 + seq % 26), 40) FROM seq_${lo}_to_${hi}" >/dev/null
done
maria_rows_to() {
  "$cove" exec db sh -c 'MYSQL_PWD="$MARIADB_ROOT_PASSWORD" exec mariadb-dump --no-defaults --protocol=tcp -h "$HOST" -P "$PORT" -uroot --single-transaction --skip-extended-insert --databases bench --result-file="$0"' "$1"
}
dumps() {
  pg_dump_to "$work/pg.$1"
  pg_sorted_to "$work/pgsorted.$1"
  maria_dump_to "$work/maria.$1"
  maria_rows_to "$work/mariarows.$1"
}
# a: as made; b: then 1 % of rows changed, spread (every 100th id);
# c: then 1 % changed, contiguous (the first 1 % of ids).
dumps a
pg "UPDATE items SET n = n + 1 WHERE id % 100 = 0" >/dev/null
maria "UPDATE items SET n = n + 1 WHERE id % 100 = 0" >/dev/null
dumps b
pg "UPDATE items SET n = n + 1 WHERE id <= $rows / 100" >/dev/null
maria "UPDATE items SET n = n + 1 WHERE id <= $rows / 100" >/dev/null
dumps c
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $rows rows a table"
for f in pg pgsorted maria mariarows; do echo "$f: $(stat -c %s "$work/$f.a") bytes"; done

echo
echo "Bytes the second (spread) and third (contiguous) backup added, over the first's:"
echo
echo "| average chunk | pg_dump -Fc -Z0 (physical order) | PostgreSQL sorted by id (COPY ... ORDER BY id) | mariadb-dump (extended inserts, as cove) | mariadb-dump --skip-extended-insert |"
echo "|---|---|---|---|---|"
for kib in 1024 256 64 16; do
  line="| $kib KiB |"
  for f in pg pgsorted maria mariarows; do
    repo="$work/repo-$kib-$f"
    out=$("$chunking" "$repo" "$kib" "$work/$f.a" "$work/$f.b" "$work/$f.c")
    first=$(echo "$out" | sed -n 1p | awk '{print $6}')
    spread=$(echo "$out" | sed -n 2p | awk '{print $6}')
    contig=$(echo "$out" | sed -n 3p | awk '{print $6}')
    t=$(echo "$out" | sed -n 1p | awk '{print $8}')
    line="$line $(python3 -c "print(f'spread {100 * $spread / $first:.1f} %, contiguous {100 * $contig / $first:.1f} %')") (first: $first bytes, $t s) |"
    if [ "$kib" != 16 ] || [ "$f" != maria ]; then rm -rf "$repo"; fi
  done
  echo "$line"
done

# Debian's restic reads the smallest-chunk repository.
repo="$work/repo-16-maria"
printf chunking > "$work/pw"
echo
echo "restic $(restic version | awk '{print $2}') on a 16 KiB-chunk repository made by rustic_core:"
restic -r "$repo" --password-file "$work/pw" --no-cache snapshots --compact | tail -n +1 | head -5
restic -r "$repo" --password-file "$work/pw" --no-cache check --read-data 2>&1 | tail -1
restic -r "$repo" --password-file "$work/pw" --no-cache dump latest /db.dump | cmp - "$work/maria.c" && echo "restic dump: the same bytes as the dump"

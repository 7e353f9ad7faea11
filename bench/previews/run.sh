#!/usr/bin/env bash
# bench/previews: what previews that share a baseline cost (issue 22).
#
# 1. The baseline: examples/buffs (10 services: MariaDB, ActiveMQ, a 6-node
#    Redis cluster and its init job, `server` ×2, `dashboard`), copied into
#    a temp dir, its two Rust services run as release binaries; `cove up -d`.
#    Its memory: the RSS of every process of every replica (each replica's
#    process group, from `cove ps --format json` pids), per service and in
#    all: the cost of a full copy.
# 2. PREVIEWS previews p1..pN, each from its own copy of the baseline's
#    directory where one stateless service's config changed (an env var,
#    PREVIEW_MARK=pI), made with `cove preview up pI --base BASE`. Each
#    one's marginal memory, awake: `cove preview ls --format json`'s
#    `memory_bytes`, and, from /proc, the RSS of the process groups under
#    the daemon that appeared with it (not the baseline's), and the
#    daemon's own growth.
# 3. Every preview put to sleep (`cove preview sleep`): the same figures.
# 4. Each woken by one request through the baseline's gateway carrying
#    `X-Cove-Preview: pI`: the time to its answer.
# Prints a markdown table. Measurements only; nothing is asserted.
#
# Usage: bash bench/previews/run.sh
#   COVE_BIN   cove to run (default: target/release/cove; build it with
#              `cargo build --release -p cove`, or give target/debug/cove)
#   PREVIEWS   the service each preview changes, in order (default
#              "dashboard server dashboard server dashboard": buffs has two
#              stateless services with routes)
#   SETTLE     seconds to let memory settle before each measure (default 10)
#   SKIP_BUILD=1  do not build buffs-server and buffs-dashboard (release)
#   BUFFS_BIN  where their binaries are (default: target/release)
#   KEEP=1     leave the temp dir (its state, logs) after the run
# Needs: what examples/buffs needs natively (`bash scripts/install-packages
# redis-server mariadb-server activemq`), curl, python3.
# Loopback only (the gateway on 127.0.0.1, an ephemeral port). Everything
# started is stopped: the previews (`cove preview down`), the baseline
# (`cove down`), then the baseline's daemon by its PID if it is still
# there. Every wait is bounded.
#
# Assumes the CLI of /work/notes/task-pv-common.md: `preview up` run in the
# preview's checkout with `--base BASE_DIR`; `preview ls/sleep/down` run in
# the baseline's directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cove="${COVE_BIN:-$root/target/release/cove}"
read -r -a changes <<<"${PREVIEWS:-dashboard server dashboard server dashboard}"
settle="${SETTLE:-10}"
[ -x "$cove" ] || { echo "error: no cove at $cove" >&2; echo "hint: cargo build --release -p cove, or COVE_BIN=target/debug/cove" >&2; exit 2; }
cove="$(cd "$(dirname "$cove")" && pwd)/$(basename "$cove")"  # run from other directories
for p in redis-server mariadbd activemq curl python3; do
  command -v "$p" >/dev/null || { echo "error: \`$p\` is not installed" >&2; echo "hint: bash scripts/install-packages redis-server mariadb-server activemq" >&2; exit 2; }
done
if [ "${SKIP_BUILD:-}" != 1 ]; then
  cargo build -q --release -p buffs-server -p buffs-dashboard --manifest-path "$root/Cargo.toml"
fi
bin="${BUFFS_BIN:-${CARGO_TARGET_DIR:-$root/target}/release}"
bin="$(cd "$bin" && pwd)"
for s in server dashboard; do
  [ -x "$bin/buffs-$s" ] || { echo "error: no $bin/buffs-$s" >&2; echo "hint: cargo build --release -p buffs-$s, or BUFFS_BIN=DIR" >&2; exit 2; }
done
export COVE_IDENTITY="${COVE_IDENTITY:-$root/examples/buffs/demo-identity.txt}" NO_COLOR=1

work="$(mktemp -d /tmp/cove-previews-bench.XXXXXX)"
base="$work/base"
made=()       # previews made, for the clean-up
daemon=""     # the baseline's daemon's PID, once up
cleanup() {
  set +e
  for p in "${made[@]}"; do
    (cd "$base" && timeout 120 "$cove" preview down "$p" >/dev/null 2>&1)
  done
  [ -d "$base" ] && (cd "$base" && timeout 180 "$cove" down >/dev/null 2>&1)
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$daemon" 2>/dev/null && kill -KILL "$daemon" 2>/dev/null
  fi
  if [ "${KEEP:-}" = 1 ]; then
    echo "kept: $work" >&2
  else
    # The daemon may still write its state just after `down` returns.
    rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; }
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A copy of examples/buffs (no state), its Rust services as release
# binaries (no `cargo` outside the workspace), previews declared (nothing
# sleeps by itself during the run), the gateway on an ephemeral port;
# `$2`: a service whose environment gets PREVIEW_MARK=`$3`.
checkout() {
  local dir="$1" changed="${2:-}" mark="${3:-}"
  mkdir -p "$dir"
  (cd "$root/examples/buffs" && tar --exclude=./.cove -cf - .) | tar -xf - -C "$dir"
  {
    echo 'x-cove:'
    echo '  gateway: {listen: "127.0.0.1:0"}'
    echo '  previews: {idle_after: 24h, max_awake: 100}'
    echo 'services:'
    for s in dashboard server; do
      echo "  $s:"
      echo '    x-cove:'
      echo '      build: !reset null'
      echo "      run: $bin/buffs-$s"
      if [ "$s" = "$changed" ]; then
        echo '    environment:'
        echo "      PREVIEW_MARK: $mark"
      fi
    done
  } >"$dir/compose.override.yaml"
}

# Python over /proc and cove's JSON. Subcommands:
#   groups DAEMON        pgid rss_kib, for every process group under DAEMON
#   ps                   (cove ps JSON on stdin) service pgid, one a line
#   rss PGID...          summed RSS (KiB) of those groups' live processes
#   preview NAME FIELD   (preview ls JSON on stdin) the field of NAME
cat >"$work/measure.py" <<'PY'
import json, os, sys

def procs():
    """pid -> (ppid, pgid, rss KiB) of every live process."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            rss = 0
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
            out[int(p)] = (int(stat[1]), int(stat[2]), rss)
        except (OSError, IndexError, ValueError):
            pass
    return out

cmd = sys.argv[1]
if cmd == "groups":
    daemon = int(sys.argv[2])
    ps = procs()
    under = {}
    for pid in ps:
        p, hops = pid, 0
        while p in ps and p != daemon and p > 1 and hops < 64:
            p, hops = ps[p][0], hops + 1
        if p == daemon and pid != daemon:
            under[ps[pid][1]] = under.get(ps[pid][1], 0) + ps[pid][2]
    for g, kib in sorted(under.items()):
        print(g, kib)
elif cmd == "ps":
    for row in json.load(sys.stdin):
        if row.get("pid"):
            print(row["service"], row["pid"])
elif cmd == "rss":
    want = {int(g) for g in sys.argv[2:]}
    print(sum(r for (_, g, r) in procs().values() if g in want))
elif cmd == "preview":
    name, field = sys.argv[2], sys.argv[3]
    try:
        previews = json.load(sys.stdin)
    except ValueError:
        previews = []
    for p in previews:
        if p.get("name") == name:
            v = p.get(field)
            print(",".join(map(str, v)) if isinstance(v, list) else v)
            break
    else:
        print("")
PY
py() { python3 "$work/measure.py" "$@"; }

mib() { python3 -c "print(f'{$1 / 1024:.1f}')"; }          # KiB -> MiB
mib_b() { python3 -c "print(f'{($1 or 0) / 1048576:.1f}')"; }  # bytes -> MiB
ls_json() { (cd "$base" && timeout 60 "$cove" preview ls --format json); }

# Waits (at most $2 s) until `preview ls` says preview $1 is $3.
wait_state() {
  local i
  for i in $(seq 1 "$2"); do
    [ "$(ls_json | py preview "$1" state)" = "$3" ] && return 0
    sleep 1
  done
  echo "warning: preview $1 not $3 after $2 s" >&2
  return 1
}

# The baseline's process groups: `service pgid` lines.
base_groups() { (cd "$base" && timeout 60 "$cove" ps --format json) | py ps; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) MiB, load $(cut -d' ' -f1-3 /proc/loadavg); cove: $cove" >&2

# 1. The baseline.
checkout "$base"
echo "baseline: cove up -d in $base" >&2
(cd "$base" && timeout 900 "$cove" up -d >"$work/up.log" 2>&1) || { cat "$work/up.log" >&2; exit 1; }
daemon="$(cat "$base/.cove/daemon.pid" 2>/dev/null || true)"
[ -n "$daemon" ] || { echo "error: no $base/.cove/daemon.pid" >&2; exit 1; }
url="$(cd "$base" && "$cove" routes --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')"
sleep "$settle"
declare -A svc_kib=() svc_replicas=()
base_kib=0
while read -r svc pgid; do
  kib="$(py rss "$pgid")"
  svc_kib[$svc]=$(( ${svc_kib[$svc]:-0} + kib ))
  svc_replicas[$svc]=$(( ${svc_replicas[$svc]:-0} + 1 ))
  base_kib=$(( base_kib + kib ))
done < <(base_groups)
daemon_kib0="$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")"
echo "baseline: $(mib "$base_kib") MiB over ${#svc_kib[@]} services; gateway $url" >&2

# 2. The previews, one at a time; each one's new process groups.
declare -A groups_of=() ls_awake=() proc_awake=() run_of=() shared_of=() daemon_delta=()
i=0
for changed in "${changes[@]}"; do
  i=$((i + 1)); p="p$i"
  checkout "$work/$p" "$changed" "$p"
  before="$(py groups "$daemon" | cut -d' ' -f1 | sort)"
  d0="$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")"
  echo "preview $p: changes $changed" >&2
  made+=("$p")
  (cd "$work/$p" && timeout 600 "$cove" preview up "$p" --base "$base" >"$work/$p.log" 2>&1) || { cat "$work/$p.log" >&2; exit 1; }
  wait_state "$p" 120 awake || true
  sleep "$settle"
  after="$(py groups "$daemon" | cut -d' ' -f1 | sort)"
  ours="$(base_groups | cut -d' ' -f2 | sort)"
  # New since just before its `up`, and none of the baseline's (a restart there).
  groups_of[$p]="$(comm -13 <(echo "$before") <(echo "$after") | comm -23 - <(echo "$ours") | tr '\n' ' ')"
  proc_awake[$p]="$(py rss ${groups_of[$p]})"
  daemon_delta[$p]=$(( $(awk '/VmRSS/ {print $2}' "/proc/$daemon/status") - d0 ))
  json="$(ls_json)"
  ls_awake[$p]="$(py preview "$p" memory_bytes <<<"$json")"
  run_of[$p]="$(py preview "$p" run <<<"$json")"
  shared_of[$p]="$(py preview "$p" shared <<<"$json")"
done

# 3. Asleep.
declare -A ls_asleep=() proc_asleep=()
for p in "${made[@]}"; do
  (cd "$base" && timeout 120 "$cove" preview sleep "$p" >/dev/null 2>&1) || echo "warning: preview sleep $p failed" >&2
done
for p in "${made[@]}"; do wait_state "$p" 120 asleep || true; done
sleep "$settle"
json="$(ls_json)"
for p in "${made[@]}"; do
  ls_asleep[$p]="$(py preview "$p" memory_bytes <<<"$json")"
  proc_asleep[$p]="$(py rss ${groups_of[$p]})"
done

# 4. Woken by a request each (the route of the service it changed).
declare -A wake_ms=() wake_code=()
i=0
for changed in "${changes[@]}"; do
  i=$((i + 1)); p="p$i"
  case "$changed" in
    server) path=/buffs ;;
    dashboard) path=/buff ;;
    *) path=/ ;;
  esac
  out="$(curl -sS -o /dev/null -m 60 -H "X-Cove-Preview: $p" -w '%{http_code} %{time_total}' "$url$path" 2>/dev/null || echo "000 0")"
  wake_code[$p]="${out%% *}"
  wake_ms[$p]="$(python3 -c "print(round(${out##* } * 1000))")"
done

# The table.
echo
echo "## Previews of buffs: marginal memory ($(date -u +%Y-%m-%d), $(nproc) cores)"
echo
echo "Full copy (the baseline's replicas, RSS): **$(mib "$base_kib") MiB** (cove's daemon: $(mib "$daemon_kib0") MiB more)."
echo
echo "| preview | changes | runs / shares | service RSS in the baseline MiB (replicas) | awake: \`preview ls\` MiB | awake: /proc MiB | ratio (/proc ÷ service) | daemon Δ MiB | asleep: \`preview ls\` MiB | asleep: /proc MiB | first request after sleep ms (status) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
i=0
for changed in "${changes[@]}"; do
  i=$((i + 1)); p="p$i"
  s_kib="${svc_kib[$changed]:-0}"
  ratio="$(python3 -c "print(f'{${proc_awake[$p]} / $s_kib:.2f}' if $s_kib else '-')")"
  echo "| $p | $changed | ${run_of[$p]:-?} / ${shared_of[$p]:-?} | $(mib "$s_kib") (${svc_replicas[$changed]:-0}) | $(mib_b "${ls_awake[$p]:-0}") | $(mib "${proc_awake[$p]}") | $ratio | $(mib "${daemon_delta[$p]}") | $(mib_b "${ls_asleep[$p]:-0}") | $(mib "${proc_asleep[$p]}") | ${wake_ms[$p]} (${wake_code[$p]}) |"
done
echo
echo "Goal (issue 22): awake ≤ 1.2 × the service's RSS, ≈ 0 asleep, first request after sleep < 1 s."

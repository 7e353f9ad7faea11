#!/usr/bin/env bash
# `cove k8s apply` of examples/buffs against `kubectl apply --server-side`
# of the same rendered manifests, in the same run, on the test cluster
# (scripts/k8s-cluster: a real kube-apiserver, kwok's nodes), with kubectl
# of the same release (built by `scripts/k8s-cluster build`). Each round
# applies into fresh namespaces (creation), then applies again (nothing to
# change):
#   cove          `cove k8s apply --no-wait -n NS` (server-side apply, an
#                 applyset with prune; kubectl does not wait either)
#   kubectl       `kubectl apply --server-side -n NS -f buffs.yaml`
#   kubectl+prune the same with `--prune --applyset=secrets/cove-bench`
#                 (KUBECTL_APPLYSET=true): the work cove does
# Wall time of each command; medians over ROUNDS and the ratios cove/kubectl.
# Measurements only; nothing is asserted. Results: bench/k8s/RESULTS.md.
#
#   bash bench/k8s/apply.sh [ROUNDS]       (default 5)
# cove: $COVE_BIN when set, else built here in release.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rounds="${1:-5}"
work="$(mktemp -d)"
trap 'bash "$root/scripts/k8s-cluster" stop "$work/cluster" || true; rm -rf "$work"' EXIT

cove="${COVE_BIN:-}"
if [ -z "$cove" ]; then
  cargo build -q --release -p cove --manifest-path "$root/Cargo.toml"
  cove="${CARGO_TARGET_DIR:-$root/target}/release/cove"
fi
if ! "$cove" k8s apply --help >/dev/null 2>&1; then
  echo "$cove has no \`k8s apply\` (issue 23, helper C's part): nothing to compare" >&2
  exit 1
fi
bin="$(bash "$root/scripts/k8s-cluster" build)"
kubectl="$bin/kubectl"
[ -x "$kubectl" ] || { echo "no kubectl in $bin (scripts/k8s-cluster build makes it)" >&2; exit 1; }
export KUBECONFIG
KUBECONFIG="$(bash "$root/scripts/k8s-cluster" start "$work/cluster")"

buffs="$root/examples/buffs/compose.yaml"
registry=reg.test/buffs
# buffs' secrets are encrypted for its demo identity: cove apply creates
# their Secrets through the API; kubectl gets them in the manifests.
export COVE_IDENTITY="${COVE_IDENTITY:-$root/examples/buffs/demo-identity.txt}"
"$cove" -f "$buffs" k8s render --registry "$registry" --include-secrets > "$work/buffs.yaml"
echo "cove: $cove; kubectl: $("$kubectl" version --client 2>/dev/null | head -1)"
echo "buffs: $(grep -c '^kind:' "$work/buffs.yaml") objects"

ms() { echo $(( ($2 - $1) / 1000000 )); }
# `timed NAME CMD...`: runs CMD (its output to $work/NAME.log), appends
# its wall time in ms to $work/NAME.times; a failure stops the bench.
timed() {
  local name="$1" t0 t1
  shift
  t0=$(date +%s%N)
  if ! "$@" >> "$work/$name.log" 2>&1; then
    echo "$name failed:" >&2
    tail -20 "$work/$name.log" >&2
    exit 1
  fi
  t1=$(date +%s%N)
  ms "$t0" "$t1" >> "$work/$name.times"
}
ns() { "$kubectl" create namespace "$1" >/dev/null; }

for ((r = 0; r < rounds; r++)); do
  ns "cove-$r"
  ns "kubectl-$r"
  ns "prune-$r"
  for pass in first again; do
    timed "cove-$pass" "$cove" -f "$buffs" k8s apply --registry "$registry" -n "cove-$r" --no-wait
    timed "kubectl-$pass" "$kubectl" apply --server-side -n "kubectl-$r" -f "$work/buffs.yaml"
    timed "prune-$pass" env KUBECTL_APPLYSET=true "$kubectl" apply --server-side -n "prune-$r" \
      --prune --applyset=secrets/cove-bench -f "$work/buffs.yaml"
  done
done

# What each applied, to see that they did the same work.
count() { "$kubectl" get deploy,statefulset,job,service,secret,configmap -n "$1" --no-headers 2>/dev/null | grep -vc 'kube-root-ca' || true; }
echo "objects in the first round's namespaces (deployments, statefulsets, jobs, services, secrets, configmaps): cove $(count cove-0), kubectl $(count kubectl-0), kubectl+prune $(count prune-0)"

median() { sort -n "$1" | awk '{ t[NR] = $1 } END { print (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'; }
for pass in first again; do
  c="$(median "$work/cove-$pass.times")"
  k="$(median "$work/kubectl-$pass.times")"
  p="$(median "$work/prune-$pass.times")"
  echo "$pass apply, median of $rounds: cove $c ms; kubectl --server-side $k ms; kubectl --server-side --prune --applyset $p ms;" \
    "ratio cove/kubectl $(awk -v a="$c" -v b="$k" 'BEGIN { printf "%.2f", a / b }')," \
    "cove/kubectl+prune $(awk -v a="$c" -v b="$p" 'BEGIN { printf "%.2f", a / b }')"
  echo "  cove: $(tr '\n' ' ' < "$work/cove-$pass.times")ms; kubectl: $(tr '\n' ' ' < "$work/kubectl-$pass.times")ms; kubectl+prune: $(tr '\n' ' ' < "$work/prune-$pass.times")ms"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# Sourced by run.sh and mariadb.sh: `pairs LABEL SERVICE FLOOR...` times
# REPS more pairs (default 3), alternating: the floor (the command FLOOR...,
# whose first word of output is its seconds), then a first `cove backup
# SERVICE` into a new target directory; prints both series, their medians
# and the medians' ratio, which says more than one pair on a shared
# machine. Needs $cove, $work, now() and secs() of the sourcing script.
pairs() {
  local label="$1" service="$2" r a b t
  shift 2
  local reps="${REPS:-3}" fl=() cv=()
  for ((r = 1; r <= reps; r++)); do
    read -r t _ <<<"$("$@")"
    fl+=("$t")
    a=$(now)
    "$cove" backup "$service" --target "$work/rep$r" >/dev/null 2>&1
    b=$(now)
    cv+=("$(secs "$a" "$b")")
    rm -rf "$work/rep$r"
  done
  local mf mc
  mf=$(median "${fl[@]}")
  mc=$(median "${cv[@]}")
  echo
  echo "$reps more pairs, alternating, each backup into a new target: $label ${fl[*]} s (median $mf); cove backup ${cv[*]} s (median $mc)"
  echo "ratio of the medians: $(python3 -c "print(f'{$mc / $mf:.2f}')")"
}
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}

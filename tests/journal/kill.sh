#!/usr/bin/env bash
# The journal under kill -9: `brigade map` of a 20,000-item job is killed at KILLS random
# moments, each kill followed by the same command with --resume. After the last, the result
# must be byte-identical to an uninterrupted run's, and no item whose record was committed
# (in the journal when the process died) may have run again afterwards.
# usage: kill.sh BRIGADE SPIN_PLUGIN KILLS BACKEND...
set -u
brigade=$(realpath "$1") plugin=$(realpath "$2") kills=$3
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/bg-kill-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
N=20000
fail() { echo "FAIL: $*" >&2; exit 1; }

# The items recorded in journal $1, one index per line, sorted (none if no journal yet).
committed() {
  [ -e "$1" ] || return 0
  "$brigade" map --merge "$1" --status committed.csv >/dev/null 2>&1
  [ -e committed.csv ] || return 0
  awk -F, 'NR > 1 && $2 != "pending" { print $1 }' committed.csv | sort
  rm -f committed.csv
}

for backend in "$@"; do
  job=(map --task "$plugin:spin_hash" --n $N --backend "$backend" --workers 2 --no-progress)
  t0=$(date +%s%N)
  "$brigade" "${job[@]}" --out ref.npy 2>/dev/null || fail "$backend: the uninterrupted run failed"
  ms=$((($(date +%s%N) - t0) / 1000000 + 50))
  rm -f j out.npy
  landed=0 finished=0 jobs=1
  while ((landed < kills)); do
    committed j >before.txt
    BG_RUNLOG="$work/run.log" "$brigade" "${job[@]}" --out out.npy --journal j --resume \
      2>/dev/null &
    pid=$!
    sleep "$(awk -v r=$RANDOM -v ms=$ms 'BEGIN { printf "%.3f", r / 32768 * ms / 1000 }')"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    status=$?
    # No worker outlives the killed parent (procs workers die with it).
    for ((w = 0; w < 50; w++)); do
      pgrep -f "$plugin:spin_hash" >/dev/null 2>&1 || break
      sleep 0.1
    done
    ((w < 50)) || fail "$backend: workers outlived the killed parent"
    # Items committed before this run must not have run in it.
    if [ -e run.log ]; then
      sort -u run.log >ran.txt
      again=$(comm -12 before.txt ran.txt | head -3 | tr '\n' ' ')
      [ -z "$again" ] || fail "$backend: items committed before run $landed ran again: $again"
      rm -f run.log
    fi
    # A result file, when there is one, is whole: only a finished run writes it.
    if [ -e out.npy ]; then
      cmp -s out.npy ref.npy || fail "$backend: out.npy exists but differs from the reference"
    fi
    if [ $status -eq 0 ]; then
      # This job is done and right: start another, so that every kill lands in a live run.
      [ -e out.npy ] || fail "$backend: a finished run left no out.npy"
      finished=$((finished + 1)) jobs=$((jobs + 1))
      rm -f j out.npy
    else
      landed=$((landed + 1))
    fi
  done
  committed j >before.txt
  BG_RUNLOG="$work/run.log" "$brigade" "${job[@]}" --out out.npy --journal j --resume 2>final.err ||
    fail "$backend: the final resume failed: $(cat final.err)"
  if [ -e run.log ]; then
    sort -u run.log >ran.txt
    again=$(comm -12 before.txt ran.txt | head -3 | tr '\n' ' ')
    [ -z "$again" ] || fail "$backend: the final resume ran committed items again: $again"
  fi
  rm -f run.log
  cmp out.npy ref.npy || fail "$backend: the resumed result differs from the uninterrupted run's"
  echo "$backend: $kills kills in $jobs jobs ($finished finished between kills), every result identical"
  rm -f j out.npy ref.npy .j.* .out.npy.*
done

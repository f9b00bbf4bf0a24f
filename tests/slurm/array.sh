#!/usr/bin/env bash
# `brigade map` as a Slurm job array on a single-node Slurm started here (make test-slurm):
# 1. an array of 4 shards, merged, equals the one-shot run;
# 2. an array cancelled mid-run (as a time limit or a pre-emption would) and submitted again
#    with --resume finishes from the shards' journals, and merged equals the one-shot run.
# usage: array.sh BRIGADE SPIN_PLUGIN   (SLURM_CONF set, the local Slurm started)
set -u
bin=$(realpath "$1") spin=$(realpath "$2")
work=$(mktemp -d /tmp/bg-slurm-XXXXXX)
trap 'scancel --name=bg-test >/dev/null 2>&1; rm -rf "$work"' EXIT
cd "$work" || exit 1
fail() { echo "FAIL: $*" >&2; exit 1; }
N=200000
job() { # SCRIPT NAME EXTRA...: an array script running one shard per task
  cat >"$1" <<JOB
#!/bin/bash
#SBATCH --job-name=bg-test
#SBATCH --array=0-3
#SBATCH --cpus-per-task=1
#SBATCH --output=$work/%x_%A_%a.log
"$bin" map --task "$spin:spin_hash" --n $N --out "$work/$2.npy" --journal "$work/$2.j" --workers 1 --no-progress ${*:3}
JOB
}

"$bin" map --task "$spin:spin_hash" --n $N --out ref.npy --no-progress 2>/dev/null || fail "one-shot run"

job a.sh whole
sbatch --wait a.sh >/dev/null || fail "the array job failed: $(cat ./*.log)"
"$bin" map --merge whole.shard*-of-4.j --out whole.npy 2>merge.err || fail "merge: $(cat merge.err)"
cmp -s whole.npy ref.npy || fail "the merged array differs from the one-shot run"
echo "array of 4 shards merged: identical to the one-shot run"

job b.sh cut
id=$(sbatch --parsable b.sh)
sleep 1.5
scancel "$id"
sleep 1
for s in 0 1 2 3; do
  [ -e cut.shard$s-of-4.npy ] && fail "shard $s finished before the cancel: make N larger"
done
job c.sh cut --resume
sbatch --wait c.sh >/dev/null || fail "the resumed array failed: $(cat ./*.log)"
kept=$(cat bg-test_*.log | sed -n 's/.* \([0-9]*\) of them from the journal.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
grep -q 'crashed' bg-test_*.log && fail "an item was recorded as crashed by the cancel: $(grep -h crashed bg-test_*.log)"
"$bin" map --merge cut.shard*-of-4.j --out cut.npy 2>merge.err || fail "merge: $(cat merge.err)"
cmp -s cut.npy ref.npy || fail "the resumed array differs from the one-shot run"
echo "array cancelled with $kept of $N items kept, resumed: identical to the one-shot run"

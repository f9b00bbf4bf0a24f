#!/usr/bin/env bash
# `brigade map`: its usage errors, results, statuses, journal, resume, shards and merge, and
# Ctrl-C. usage: map.sh BRIGADE MYTASK_PLUGIN SPIN_PLUGIN
set -u
bin=$(realpath "$1") my=$(realpath "$2") spin=$(realpath "$3")
here=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

. "$here/expect.sh"
ok() { # WHAT COMMAND...: the command must succeed
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); else
    echo "FAIL: $what"
    fail=$((fail + 1))
  fi
}
# The int64 values of a 1-D .npy, one per line.
values() { python3 -c "
import struct, sys
b = open(sys.argv[1], 'rb').read()
h = struct.unpack('<H', b[8:10])[0]
d = b[10 + h:]
print('\n'.join(str(v) for v in struct.unpack('<%dq' % (len(d) // 8), d)))" "$1"; }

T="$my:digit_sum" F="$my:fail_on_seven"
expect 0 out '^usage: brigade map' -- map --help
expect 0 out '^usage: brigade map' -- help map
expect 2 err 'task LIB:FN is required' -- map --n 10
expect 2 err 'not both' -- map --task "$T" --n 10 --in x.npy
expect 2 err 'not neither' -- map --task "$T"
expect 2 err '--resume needs --journal' -- map --task "$T" --n 10 --resume
expect 2 err 'not both' -- map --task "$T" --n 10 --journal j --resume --resume-failed
expect 2 err '--sync goes with --journal' -- map --task "$T" --n 10 --sync every
expect 2 err "--sync 'sometimes'" -- map --task "$T" --n 10 --journal j --sync sometimes
expect 2 err 'timeout needs a backend that can stop' -- map --task "$T" --n 10 --backend threads --timeout 1s
expect 2 err "--timeout '0s'" -- map --task "$T" --n 10 --timeout 0s
expect 2 err "--timeout '5%'" -- map --task "$T" --n 10 --timeout 5%
expect 2 err '--halt now needs a backend that can stop a running item' -- map --task "$T" --n 10 --halt now,fail=1 --backend threads
expect 1 err 'not run' -- map --task "$F" --n 100000 --halt now,fail=3
expect 2 err "--halt 'sometimes'" -- map --task "$T" --n 10 --halt sometimes
expect 2 err 'percentage must be in' -- map --task "$T" --n 10 --halt soon,fail=120%
expect 2 err "--shard '3/3'" -- map --task "$T" --n 10 --shard 3/3
expect 2 err "--shard 'x'" -- map --task "$T" --n 10 --shard x
expect 2 err 'a shard must keep its results' -- map --task "$T" --n 10 --shard 0/2
expect 2 err "unknown backend 'gpu'" -- map --task "$T" --n 10 --backend gpu
expect 2 err '--out-size goes with raw results' -- map --task "$T" --n 10 --out r.npy --out-size 4
expect 2 err "no function 'nope'" -- map --task "$my:nope" --n 10
expect 2 err "unknown option '--frob'" -- map --task "$T" --n 10 --frob 1
expect 2 err "--n '0'" -- map --task "$T" --n 0
expect 2 err '--merge needs the shards' -- map --merge --out x.npy
expect 2 err 'it runs nothing' -- map --merge a.j --task "$T" --out x.npy
printf 'not an array' >bad.bin
expect 2 err 'is not a .npy file; for raw records' -- map --task "$T" --in bad.bin
expect 2 err 'not a whole number of records' -- map --task "$T" --in bad.bin --in-size 5
expect 2 err 'out: .*folder' -- map --task "$T" --n 10 --out /nonexistent/r.npy

# Results: a .npy of int64, the same on every backend, written whole.
expect 0 err '1000 of 1000 items ok' -- map --task "$T" --n 1000 --out ref.npy --backend seq
for b in threads procs procs-copy procs-persistent openmp; do
  expect 0 err '1000 of 1000 items ok' -- map --task "$T" --n 1000 --out "$b.npy" --backend "$b"
  ok "$b gives the result of seq" cmp ref.npy "$b.npy"
done
ok "digit_sum(999) is the digit sum of 998001" test "$(values ref.npy | sed -n 1000p)" = 27
expect 0 err 'ok' -- map --task "$T" --n 10 --out raw.bin
ok "raw results are 8 bytes each" test "$(stat -c %s raw.bin)" = 80

# Failures: the exit status, the first causes on stderr, every item in --status.
expect 1 err 'item 7: failed with code 7' -- map --task "$F" --n 1000 --out f.npy --status f.csv
ok "status lists every item" test "$(wc -l <f.csv)" = 1001
ok "status has the 100 failures" test "$(grep -c ',failed,7,1$' f.csv)" = 100
expect 1 err '5 failed .* not run' -- map --task "$F" --n 1000 --backend seq --halt soon,fail=5
expect 1 err 'item 3: ran past the timeout of 300 ms' -- map --task "$spin:hang_on_three" --n 8 --timeout 300ms --workers 2
expect 1 err 'item 5: crashed \(SIGSEGV\)' -- map --task "$spin:crash_on_five" --n 20 --out crash.npy
expect 1 err 'the first, item 5: crashed; --status FILE' -- map --task "$spin:crash_on_five" --n 2M --no-progress
expect 1 err 'item 3: ran past the timeout of [0-9]+ ms' -- map --task "$spin:hang_on_three" --n 40 --timeout 300% --workers 2
expect 2 err 'give --retries' -- map --task "$T" --n 10 --retry-on crashed
expect 2 err "--retry-on 'crash'" -- map --task "$T" --n 10 --retries 2 --retry-on crash
expect 1 err 'item 7: failed with code 7' -- map --task "$F" --n 20 --retries 2 --retry-on crashed,timeout --status rt.csv
ok "--retry-on crashed,timeout leaves a non-zero return alone" grep -q '^7,failed,7,1$' rt.csv
expect 1 err 'item 7: failed with code 7' -- map --task "$F" --n 20 --retries 2 --retry-on failed --status rt.csv
ok "--retry-on failed retries a non-zero return" grep -q '^7,failed,7,3$' rt.csv

# The journal: a finished run is refused without --resume, resumed with it; another job's is
# refused; --resume-failed reruns exactly the failed items, here with a mended function.
expect 1 err '900 of 1000 items ok' -- map --task "$F" --n 1000 --out r.npy --journal r.j --name job-v1
expect 2 err 'already holds 1000 records of this job; give --resume' -- map --task "$F" --n 1000 --journal r.j --name job-v1
expect 2 err "another job \(task 'job-v1', not 'fail_on_seven'\)" -- map --task "$F" --n 1000 --journal r.j --resume
expect 2 err 'another job \(items \[0, 1000\) of 1000, not \[0, 999\)' -- map --task "$F" --n 999 --journal r.j --name job-v1 --resume
expect 1 err '900 of 1000 items ok, 100 failed.*1000 of them from the journal' -- map --task "$F" --n 1000 --journal r.j --name job-v1 --resume
expect 0 err '1000 of 1000 items ok, 900 of them from the journal' -- map --task "$T" --n 1000 --out r.npy --journal r.j --name job-v1 --resume-failed
ok "the mended result equals a clean run" cmp r.npy ref.npy

# Items from a file: a .npy's rows, or raw records.
python3 -c "
import struct
rows = [(float(i) + 0.5, -1.0) for i in range(6)]
hdr = \"{'descr': '<f8', 'fortran_order': False, 'shape': (6, 2), }\"
hdr += ' ' * (64 - 10 - len(hdr) - 1) + '\n'
with open('items.npy', 'wb') as f:
    f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode())
    for r in rows: f.write(struct.pack('<2d', *r))
with open('items.bin', 'wb') as f:
    for r in rows: f.write(struct.pack('<2d', *r))
"
expect 0 err '6 of 6 items ok' -- map --task "$spin:first_value" --in items.npy --out col.npy --out-dtype f64
expect 0 err '6 of 6 items ok' -- map --task "$spin:first_value" --in items.bin --in-size 16 --out colraw.npy --out-dtype f64
ok "raw and .npy items give one result" cmp col.npy colraw.npy
ok "the first column comes back" python3 -c "
import struct; b = open('col.npy', 'rb').read(); v = struct.unpack('<6d', b[-48:])
assert v == tuple(i + 0.5 for i in range(6)), v"
expect 2 err 'drop --in-size' -- map --task "$spin:first_value" --in items.npy --in-size 16

# Shards: three slices, by --shard and by a Slurm array's variables, merged into the one-shot
# result; a missing or a repeated shard is refused.
expect 0 err 'shard 0 of 3 \(--shard\): items \[0, 333\) of 1000' -- map --task "$T" --n 1000 --shard 0/3 --out s.npy --journal s.j
SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=3 SLURM_ARRAY_TASK_STEP=2 \
  expect 0 err 'shard 1 of 3 \(Slurm array task 5' -- map --task "$T" --n 1000 --out s.npy --journal s.j
expect 0 err 'items \[666, 1000\)' -- map --task "$T" --n 1000 --shard 2/3 --out s.npy --journal s.j
ok "each shard wrote its own files" test -e s.shard0-of-3.npy -a -e s.shard1-of-3.j -a -e s.shard2-of-3.npy
expect 0 err '1000 of 1000 items ok' -- map --merge s.shard2-of-3.j s.shard0-of-3.j s.shard1-of-3.j --out merged.npy --status merged.csv
ok "merged shards equal the one-shot result" cmp merged.npy ref.npy
expect 1 err 'no shard holds items \[333, 666\) of 1000' -- map --merge s.shard0-of-3.j s.shard2-of-3.j --out m2.npy
expect 1 err 'overlap' -- map --merge s.shard0-of-3.j s.shard0-of-3.j s.shard1-of-3.j s.shard2-of-3.j --out m2.npy
expect 2 err 'results of 8 bytes, --out asks for 4' -- map --merge s.shard*-of-3.j --out m3.npy --out-dtype f32
SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=3 SLURM_ARRAY_TASK_STEP=2 \
  expect 2 err 'not a range with a step' -- map --task "$T" --n 10 --out x.npy

# A stranger's trial: outputs that would destroy an input or each other are refused; a FIFO is
# not waited on; a journal that cannot be written loses no result; two fresh runs on one
# journal never both go on; a whole job runs in a Slurm array task with --shard 0/1; a merge
# of unfinished shards writes no result; a small address-space limit does not hang.
cp "$my" mylib.so
expect 2 err "--out: 'mylib.so' is the same file as the input" -- map --task ./mylib.so:digit_sum --n 10 --out mylib.so
expect 2 err "--status: 'mylib.so' is the same file as the input" -- map --task ./mylib.so:digit_sum --n 10 --out y.npy --status mylib.so
expect 2 err '--out and --status both name' -- map --task "$T" --n 10 --out x.npy --status ./x.npy
expect 2 err '--out and --journal both name' -- map --task "$T" --n 10 --out x.j --journal x.j
expect 2 err '--status and --journal both name' -- map --task "$T" --n 10 --status x.j --journal x.j
expect 2 err "--out: 's.shard0-of-3.j' is the same file as the input" -- map --merge s.shard0-of-3.j s.shard1-of-3.j s.shard2-of-3.j --out s.shard0-of-3.j
ok "a merge's journal survives a refused --out" cmp -s s.shard0-of-3.j s.shard0-of-3.j
mkfifo fifo
expect 2 err "--in 'fifo': not a regular file" -- map --task "$spin:first_value" --in fifo --in-size 8
expect 2 err "--journal: 'j/x.j': cannot write: the folder j does not exist" -- map --task "$T" --n 10 --journal j/x.j
"$bin" map --task "$T" --n 100000 --out limref.npy 2>/dev/null
(ulimit -f 2000; "$bin" map --task "$T" --n 100000 --out lim.npy --journal lim.j >lim.out 2>lim.err)
if [ $? -eq 1 ] && grep -q "the journal 'lim.j' could not be written" lim.err && cmp -s lim.npy limref.npy; then
  pass=$((pass + 1))
else
  echo "FAIL: a journal past ulimit -f: the results must still be written"
  sed 's/^/  err: /' lim.err | head -5
  fail=$((fail + 1))
fi
both=0
for i in 1 2 3 4 5; do
  rm -f race.j
  "$bin" map --task "$spin:spin_hash" --n 20000 --journal race.j --name a --no-progress 2>/dev/null &
  p1=$!
  "$bin" map --task "$spin:spin_hash" --n 20000 --journal race.j --name b --no-progress 2>/dev/null &
  p2=$!
  wait $p1; c1=$?
  wait $p2; c2=$?
  [ $c1 -eq 0 ] && [ $c2 -eq 0 ] && both=$((both + 1))
done
ok "two fresh runs on one journal never both run ($both of 5 did)" test $both -eq 0
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=4 SLURM_ARRAY_TASK_MIN=0 \
  expect 0 err '1000 of 1000 items ok' -- map --task "$T" --n 1000 --out whole.npy --shard 0/1
ok "--shard 0/1 keeps the plain name and the whole job" cmp whole.npy ref.npy
expect 0 err 'items \[0, 500\) of 1000' -- map --task "$T" --n 1000 --shard 0/2 --journal part.j --name part
expect 1 err 'not run' -- map --task "$F" --n 1000 --shard 1/2 --journal part.j --name part --backend seq --halt soon,fail=1
expect 1 err "not merged into part.npy: 'part.shard1-of-2.j' \([0-9]+ of 500 not run\)" -- map --merge part.shard0-of-2.j part.shard1-of-2.j --out part.npy --status ps.csv
ok "an unfinished merge writes no result, but the statuses" test ! -e part.npy -a -e ps.csv
expect 0 err '1000 of 1000|500 of 500 items ok' -- map --task "$T" --n 1000 --shard 1/2 --journal part.j --name part --resume-failed
expect 0 err '1000 of 1000 items ok' -- map --merge part.shard*-of-2.j --out part.npy
ok "the resumed shards merge into the one-shot result" cmp part.npy ref.npy
# (Not under the sanitizers: they reserve terabytes of shadow address space at start.)
if ! "$bin" --version | grep -q 'sanitize='; then
  (ulimit -v 150000; timeout 60 "$bin" map --task "$T" --n 100000 --out v.npy 2>/dev/null)
  ok "under ulimit -v 150000 a procs map ends (OpenBLAS's threads once hung its fork)" test $? -eq 0
fi

# Ctrl-C: no result file, the journal keeps what finished, --resume completes it. A background
# job of a script starts with SIGINT ignored: python puts the default action back first.
python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
  "$bin" map --task "$spin:spin_hash" --n 100000 --out big.npy --journal big.j --no-progress 2>int.err &
pid=$!
sleep 0.5
kill -INT $pid
wait $pid
code=$?
if [ $code -eq 1 ] && grep -q 'interrupted; no result file written' int.err && [ ! -e big.npy ]; then
  pass=$((pass + 1))
else
  echo "FAIL: Ctrl-C: exit $code, big.npy $(test -e big.npy && echo exists || echo absent)"
  sed 's/^/  err: /' int.err
  fail=$((fail + 1))
fi
expect 0 err '100000 of 100000 items ok, [0-9]+ of them from the journal' -- map --task "$spin:spin_hash" --n 100000 --out big.npy --journal big.j --resume
ok "no temporary left" test -z "$(ls -A | grep '^\.')"

# The mpi backend under mpirun (where it is built and installed): rank 0 reports, keeps the
# statuses and the journal and writes the files; its journal resumes under mpirun with another
# number of ranks, or on one machine; a rank killed halfway loses only the chunks in flight.
expect 2 err 'runs under mpirun' -- map --task "$T" --n 10 --backend mpi --journal never.j
ok "no journal made without a launcher" test ! -e never.j
if command -v mpirun >/dev/null 2>&1 && "$bin" --version | grep -q 'mpi=on'; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  launch=(mpirun --timeout 120 --bind-to none -np 2)
  expect 0 err '1000 of 1000 items ok on 2 ranks' -- map --task "$T" --n 1000 --backend mpi --out mpi.npy
  ok "the mpi map's results equal one run's" cmp mpi.npy ref.npy
  "$bin" map --task "$F" --n 1000 --backend threads --status one.csv 2>/dev/null
  launch=(mpirun --timeout 120 --bind-to none -np 2)
  expect 1 err '900 of 1000 items ok on 2 ranks, 100 failed' -- \
    map --task "$F" --n 1000 --backend mpi --journal mj.j --name job-v1 --status mpi.csv
  ok "rank 0 writes every item's status, as one machine does" cmp one.csv mpi.csv
  launch=(mpirun --timeout 120 --bind-to none -np 4)
  expect 0 err '1000 of 1000 items ok on 4 ranks, 900 of them from the journal' -- \
    map --task "$T" --n 1000 --backend mpi --journal mj.j --name job-v1 --resume-failed --out mr.npy
  ok "the resumed mpi map's results equal one run's" cmp mr.npy ref.npy
  launch=()
  expect 0 err '1000 of 1000 items ok, 1000 of them from the journal' -- \
    map --task "$T" --n 1000 --backend threads --journal mj.j --name job-v1 --resume --out mt.npy
  ok "an mpi journal resumes on one machine" cmp mt.npy ref.npy
  # A journal rank 0 refuses stops every rank at once (they used to wait for it forever).
  launch=(timeout 60 mpirun --bind-to none -np 2)
  expect 2 err 'another job' -- map --task "$T" --n 999 --backend mpi --journal mj.j --name job-v1 --resume
  expect 2 err 'already holds [0-9]+ records of this job' -- map --task "$T" --n 1000 --backend mpi --journal mj.j --name job-v1
  # Failed items' results are zeros on every backend, and --halt counts failures on all ranks
  # (each rank may finish up to 5 in the chunk it is running when the count is reached).
  "$bin" map --task "$F" --n 1000 --backend threads --out ft.npy 2>/dev/null
  launch=(mpirun --timeout 120 --bind-to none -np 3)
  expect 1 err '900 of 1000 items ok on 3 ranks' -- map --task "$F" --n 1000 --backend mpi --out fm.npy
  ok "failed items' results under mpi equal one machine's" cmp ft.npy fm.npy
  expect 1 err ', ([5-9]|1[0-9]) failed' -- map --task "$F" --n 100000 --backend mpi --halt soon,fail=5
  # kill -9 of rank 0 halfway: mpirun ends the other ranks; the resume completes the job.
  mpirun --timeout 120 --bind-to none -np 2 "$bin" map --task "$spin:spin_hash" --n 100000 \
    --backend mpi --journal mk.j --out mk.npy --no-progress >/dev/null 2>mk.err &
  job=$!
  for _ in $(seq 50); do
    [ -s mk.j ] && [ "$(stat -c %s mk.j)" -gt 4096 ] && break
    sleep 0.1
  done
  pkill -KILL -f "map --task $spin:spin_hash --n 100000 --backend mpi" 2>/dev/null
  wait $job 2>/dev/null
  launch=(mpirun --timeout 120 --bind-to none -np 2)
  expect 0 err '100000 of 100000 items ok on 2 ranks, [1-9][0-9]{0,4} of them from the journal' -- \
    map --task "$spin:spin_hash" --n 100000 --backend mpi --journal mk.j --out mk.npy --resume
  ok "the killed and resumed mpi map equals one run's" cmp mk.npy big.npy
  launch=()
  ok "no brigade process outlives mpirun" test -z "$(pgrep -f "$bin map --task $spin" || true)"
fi

echo "cli map: $pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# CLI tests: exit codes, where help and errors go, and what the messages name. Each case runs
# the binary and compares; the first mismatch is printed with the command that caused it. This
# file covers help, info and the machine's limits, the catalogue and overhead suites, the Python
# peers, MPI, plots and traces; knn_suite.sh the knn suite, knn.sh `brigade knn`.
# usage: run.sh BRIGADE MYTASK_PLUGIN SCHEMA
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/setup.sh" "$@"

expect 0 out '^usage: brigade' -- --help
expect 0 out '^usage: brigade' -- -h
expect 0 out '^brigade [0-9]+\.[0-9]+\.[0-9]+ \(openmp=' -- --version
expect 2 err '^usage: brigade' --
expect 2 err "unknown command 'frobnicate'" -- frobnicate
expect 2 err "unknown option '--frob'" -- --frob
expect 0 out '^usage: brigade info' -- help info
expect 0 out '^usage: brigade bench' -- help bench
expect 0 out '^usage: brigade bench' -- bench --help
# The help and the README give the quick catalogue the same duration (they once said a minute
# and 10 s; 13 s was measured): one figure, kept in both places.
help_s=$("$bin" help bench | sed -n 's/.*whole catalogue in about \([0-9]*\) s).*/\1/p')
readme_s=$(sed -n 's/.*# the quick catalogue, about \([0-9]*\) s$/\1/p' "$here/../../README.md")
if [ -n "$help_s" ] && [ "$help_s" = "$readme_s" ]; then
  pass=$((pass + 1))
else
  echo "FAIL: help bench says the quick catalogue takes '$help_s' s, README '$readme_s' s"
  fail=$((fail + 1))
fi
expect 2 err "unknown command 'nope'" -- help nope
expect 0 out 'Number of logical cores: [0-9]+' -- info
# The GPU: without one (or without CUDA in the build) info says so and --backend cuda fails
# with the reason and the way out; with one, tests/gpu takes over.
if "$bin" info | grep -q '^  No GPU detected'; then
  expect 0 out '"gpu":\{"detected":false,"why":"[^"]+"\}' -- info --json
  if "$bin" --version | grep -q 'cuda=off'; then
    expect 2 err "backend 'cuda' is not compiled into this build" -- knn --backend cuda --nb-txt 10 --dim 2 --nb-new 2
  else
    expect 1 err 'No GPU detected .*--backend auto runs on the CPU' -- knn --backend cuda --nb-txt 10 --dim 2 --nb-new 2
  fi
else
  expect 0 out '^GPU$' -- info
  # With one: its SMs, memory and the measured bandwidth of pinned copies, in text and JSON.
  grep -Eq '^  SMs: +[1-9][0-9]*$' "$tmp/out" && grep -Eq '^  memory: .* free of ' "$tmp/out" &&
    grep -Eq '^  copies: +[0-9.]+ GB/s host-to-device, [0-9.]+ GB/s device-to-host' "$tmp/out" &&
    pass=$((pass + 1)) || { echo "FAIL: info's GPU section"; sed 's/^/  /' "$tmp/out"; fail=$((fail + 1)); }
  expect 0 out '"sm_count":[1-9][0-9]*,"h2d_gbps":[0-9.]+,"d2h_gbps":[0-9.]+\}' -- info --json
fi
expect 0 out 'Number of physical cores: [0-9]+' -- info
expect 0 out 'threads +usable' -- info
expect 0 out '"physical_total":[0-9]+' -- info --json
# Which instructions the knn kernels use, and what a cap on them changes.
expect 0 out '"knn_kernels":\{"exact":"(AVX-512|AVX2|portable)","bf16":("AMX"|"AVX-512 BF16"|null,"bf16_why":"[^"]+")\}' -- info --json
BRIGADE_KNN_ISA=generic expect 0 out '"knn_kernels":\{"exact":"portable","bf16":"portable emulation"\}' -- info --json
BRIGADE_KNN_ISA=avx2 expect 0 out "  bf16: +runs exact \((this CPU has no AVX-512 BF16|BRIGADE_KNN_ISA keeps it off this CPU's AVX-512 BF16)\)" -- info
BRIGADE_KNN_ISA=generic-amx expect 0 out 'precision: bf16 certified \(portable emulation of AMX\)' -- knn --nb-txt 3000 --dim 33 --nb-new 40 --k 3 --precision bf16
BRIGADE_KNN_ISA=avx2 expect 0 out "precision: exact \(bf16 ran exact: (this CPU has no AVX-512 BF16|BRIGADE_KNN_ISA keeps it off this CPU's AVX-512 BF16)\)" -- knn --nb-txt 3000 --dim 33 --nb-new 40 --precision bf16
BRIGADE_KNN_ISA=generic expect 0 out 'precision: exact \(bf16 ran exact: its buffers do not fit the memory budget' -- knn --nb-txt 20000 --dim 64 --nb-new 300 --k 10 --mem-budget 256K --precision bf16
BRIGADE_KNN_ISA=avx-512 expect 2 err "BRIGADE_KNN_ISA='avx-512' is none of generic, avx2, avx512" -- knn --nb-txt 10 --dim 2
BRIGADE_KNN_ISA=avx-512 expect 0 out 'usage: brigade knn' -- help knn
# --opt=value is not how options are written; the message says how.
expect 2 err "unknown option '--precision=bf16': options take their value as the next word \('--precision bf16'\)" -- knn --nb-txt 10 --dim 2 --precision=bf16
expect 2 err "unknown option '--repeat=3': options take their value as the next word" -- bench --repeat=3 --workload sleep
expect 2 err "unknown option '--yaml'" -- info --yaml
expect 2 err "--remeasure goes with --limits" -- info --remeasure
# The machine's limits: measured with figures in sane ranges, cached for this machine, measured
# again on request or when the cache is damaged, and never a failure when it cannot be cached.
limits_ok() { # FILE CACHED(true|false)
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["limits"]
want = sys.argv[2] == "true"
ranges = {"read_gbs_1": (0.1, 5000), "read_gbs_all": (0.1, 5000), "write_gbs_1": (0.1, 5000),
          "write_gbs_all": (0.1, 5000), "fault_us_4k": (0.005, 1000), "file_us_1": (0.1, 1e6),
          "file_us_shared": (0.1, 1e6), "file_us_private": (0.1, 1e6), "fork_us": (1, 1e6),
          "wake_us": (0, 1e5), "sgemm_gflops": (0, 1e6), "fault_us_4k_thp": (0, 1000)}
bad = [k for k, (lo, hi) in ranges.items() if not lo <= d[k] <= hi]
sys.exit(1 if bad or d["cached"] != want or d["workers"] < 1 or d["schema"] != 1 else 0)
PY
}
check_limits() { # WHAT CACHED ENV...
  local what=$1 cached=$2
  shift 2
  if env "$@" "$bin" info --limits --json >"$tmp/lim.json" 2>"$tmp/lim.err" &&
    limits_ok "$tmp/lim.json" "$cached"; then
    pass=$((pass + 1))
  else
    echo "FAIL: info --limits $what"
    head -c 600 "$tmp/lim.json" | sed 's/^/  out: /'
    sed 's/^/  err: /' "$tmp/lim.err" | head -5
    fail=$((fail + 1))
  fi
}
check_limits "(first run)" false XDG_CACHE_HOME="$tmp/xdg"
check_limits "(from the cache)" true XDG_CACHE_HOME="$tmp/xdg"
echo '{"schema":1,"machine":"x"' >"$tmp/xdg/brigade/limits.json"
check_limits "(damaged cache)" false XDG_CACHE_HOME="$tmp/xdg"
check_limits "(cache rewritten)" true XDG_CACHE_HOME="$tmp/xdg"
check_limits "(no cache folder)" false -u HOME -u XDG_CACHE_HOME
expect 0 out '^  memory read: .* GB/s one thread' -- info --limits
XDG_CACHE_HOME="$tmp/xdg" "$bin" info --limits --remeasure >/dev/null 2>"$tmp/lim.err"
grep -q "measuring this machine's limits" "$tmp/lim.err" && pass=$((pass + 1)) ||
  { echo "FAIL: info --limits --remeasure did not measure"; fail=$((fail + 1)); }
# With limits cached, the catalogue sets its rows against them; without, it says how to get them.
expect 0 out "Against this machine's limits: .* GB/s with .* of the .* GB/s that all its cores" -- \
  bench --workload vector-mean --repeat 1
XDG_CACHE_HOME="$tmp/none" expect 0 out 'Run `brigade info --limits` once' -- bench --workload \
  vector-mean --repeat 1
expect 2 err "unknown suite 'gpu'" -- bench --suite gpu
expect 2 err "unknown workload 'primes'" -- bench --workload primes
expect 2 err "unknown workload 'nope'" -- bench --workload sleep,nope
expect 2 err "--n '0': number too small" -- bench --workload sleep --n 0
expect 2 err "--n '-5': expected a non-negative whole number" -- bench --n -5
expect 2 err "--workers '0': number too small" -- bench --workers 0
expect 2 err "--workers 'x': expected a non-negative whole number" -- bench --workers x
expect 2 err "--workers '-3'" -- bench --workers -3
expect 2 err "--workers '1,,2': expected a list" -- bench --workers 1,,2
expect 2 err "--repeat '99999999999999999999999': number too large" -- bench --repeat 99999999999999999999999
expect 2 err "option '--format' needs a value" -- bench --format
expect 2 err "unknown format 'xml'" -- bench --format xml
expect 2 err "unknown size 'huge'" -- bench --size huge
expect 2 err "unknown backend 'cuda'" -- bench --backends cuda
expect 2 err "--param 'fast': expected a positive number" -- bench --param fast
expect 2 err "--task needs --n" -- bench --task ./nowhere.so:f
expect 2 err "cannot load './nowhere.so'" -- bench --task nowhere.so:f --n 10
expect 2 err "expected LIBRARY:FUNCTION" -- bench --task "$plugin" --n 10
expect 2 err "no function 'no_such_fn'" -- bench --task "$plugin:no_such_fn" --n 10
expect 2 err "--out '/nonexistent/dir/x': cannot write" -- bench --out /nonexistent/dir/x
expect 2 err "--out '$plugin' is the same file as the input" -- bench --task "$plugin:digit_sum" --n 10 --out "$plugin"
expect 2 err "--plot '$tmp': cannot write: it is a directory" -- bench --workload sleep --plot "$tmp"
BG_THREADS=lots expect 2 err "BG_THREADS='lots': expected a non-negative whole number" -- bench
[ "$(grep -c '^brigade bench:' "$tmp/err")" -eq 1 ] && pass=$((pass + 1)) || { echo "FAIL: BG_THREADS printed more than one error"; fail=$((fail + 1)); }

# Runs: every workload at a tiny size on every backend, each check passing.
for w in sleep prime-fixed prime-range disk-small disk-large alloc chunk-mean vector-mean; do
  expect 0 out "== $w: " -- bench --workload $w --n 40 --repeat 1 --workers 2
  if grep -q 'FAILED' "$tmp/out"; then echo "FAIL: $w reported a failed check"; fail=$((fail + 1)); fi
done
expect 0 out 'Fastest: ' -- bench --workload prime-range --n 20000 --repeat 1
expect 0 out '^suite,section,workload' -- bench --workload prime-fixed --n 100 --repeat 1 --format csv
expect 0 out '^### prime-fixed: 100 items' -- bench --workload prime-fixed --n 100 --repeat 1 --format markdown
# The overhead suite's cache folder is removed entirely (it used to stay, .lock inside).
mkdir -p "$tmp/ovh"
TMPDIR="$tmp/ovh" expect 0 out 'threads/auto speedup' -- bench --suite overhead --repeat 1 --workers 2 --peers python --peers-dir /nonexistent
# The map-cost section compares both procs modes, and names the peer script it could not find.
grep -q 'map cost: 1000 maps of 100 trivial items on 2 workers' "$tmp/out" && pass=$((pass + 1)) || { echo "FAIL: no map-cost note"; fail=$((fail + 1)); }
grep -q 'Python peers not run: /nonexistent/mapcost.py is missing' "$tmp/out" && pass=$((pass + 1)) || { echo "FAIL: the overhead suite's peer was not tried"; fail=$((fail + 1)); }
[ -z "$(ls -A "$tmp/ovh")" ] && pass=$((pass + 1)) || { echo "FAIL: the overhead suite left $(ls -A "$tmp/ovh")"; fail=$((fail + 1)); }
expect 0 out '== task digit_sum: 1000 items ==' -- bench --task "$plugin:digit_sum" --n 1000 --repeat 1
expect 1 out 'seq: .*100 of 1000 items failed: 100 returned non-zero \(the first, item 7, returned 7\)' -- bench --task "$plugin:fail_on_seven" --n 1000 --repeat 1
"$bin" bench --workload prime-fixed --n 100 --repeat 1 --workers sweep --format csv --out "$tmp/sweep.csv" &&
  [ -s "$tmp/sweep.csv" ] && grep -q ',"prime-fixed",threads,auto,0,4,' "$tmp/sweep.csv" && pass=$((pass + 1)) ||
  { echo "FAIL: --out with --workers sweep wrote no 4-worker row"; fail=$((fail + 1)); }

# The process backends and --insights: a note per row with each worker's figures; procs-copy
# pays for sending the chunks, and the explanation says so.
expect 0 out 'insights, procs x2 \(imbalance [0-9.]+%\): w0 [0-9]+ items, start [0-9.]+ ms, busy' -- \
  bench --workload prime-fixed --n 2000 --repeat 1 --backends procs --workers 2 --insights
expect 0 out 'Serialization: procs-copy sent the 80 MB of items through sockets' -- \
  bench --workload chunk-mean --repeat 1 --backends procs,procs-copy --workers 2
expect 2 err "unknown option '--insight'" -- bench --insight

# No temporary directory is left behind, even when every item fails (Ctrl-C stops all items).
# A private TMPDIR: other tests running at the same time (ctest -j) make their own.
mkdir -p "$tmp/tmpdir"
before=$(ls -d "$tmp/tmpdir"/brigade-disk-* 2>/dev/null | wc -l)
echo previous >"$tmp/kept.csv"
TMPDIR="$tmp/tmpdir" setsid "$bin" bench --workload disk-small --size lecture --n 10000000 --repeat 1 --out "$tmp/kept.csv" >/dev/null 2>"$tmp/int" &
pid=$!
sleep 1
kill -INT "$pid"
wait "$pid"
code=$?
after=$(ls -d "$tmp/tmpdir"/brigade-disk-* 2>/dev/null | wc -l)
# The interrupted run's partial report does not replace the previous --out file.
if [ "$code" -eq 130 ] && [ "$after" -eq "$before" ] && grep -q 'interrupted' "$tmp/int" &&
  [ "$(cat "$tmp/kept.csv")" = previous ] && [ -z "$(ls -A "$tmp" | grep '^\.kept')" ]; then
  pass=$((pass + 1))
else
  echo "FAIL: Ctrl-C during disk-small: exit $code (want 130), temp dirs $before -> $after"
  fail=$((fail + 1))
fi

# A run killed with SIGKILL cannot remove its folder: the next disk run removes such a folder
# (nobody holds its lock, unchanged for a minute) and spares one whose run still holds it, one
# made a moment ago, and a link.
mkdir -p "$tmp/stale/brigade-disk-dead/w0" "$tmp/stale/brigade-disk-held" "$tmp/stale/brigade-disk-new" "$tmp/stale/target"
echo x >"$tmp/stale/brigade-disk-dead/f1" && echo x >"$tmp/stale/brigade-disk-dead/w0/f2" && echo x >"$tmp/stale/target/keep"
ln -s "$tmp/stale/target" "$tmp/stale/brigade-disk-link"
touch -d '2 hours ago' "$tmp/stale/brigade-disk-dead" "$tmp/stale/brigade-disk-held" "$tmp/stale/target"
touch -h -d '2 hours ago' "$tmp/stale/brigade-disk-link"
flock "$tmp/stale/brigade-disk-held" sleep 60 &
holder=$!
sleep 0.5
TMPDIR="$tmp/stale" "$bin" bench --workload disk-small --n 20 --repeat 1 --backends threads >/dev/null 2>&1
[ ! -e "$tmp/stale/brigade-disk-dead" ] && [ -d "$tmp/stale/brigade-disk-held" ] &&
  [ -d "$tmp/stale/brigade-disk-new" ] && [ -L "$tmp/stale/brigade-disk-link" ] && [ -f "$tmp/stale/target/keep" ] &&
  [ "$(ls "$tmp/stale" | grep -c '^brigade-disk-')" -eq 3 ] && pass=$((pass + 1)) ||
  { echo "FAIL: stale disk folders: $(ls "$tmp/stale")"; fail=$((fail + 1)); }
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

# A procs worker killed from outside (the OOM killer, a user) is named as such, not as the
# library's code "returned -11". The kill lands when the procs row's workers exist.
"$bin" bench --workload sleep --backends procs --repeat 1 --n 4 --param 1 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 300); do
  kid=$(pgrep -P "$pid" | head -1)
  [ -n "$kid" ] && { kill -9 "$kid"; break; }
  sleep 0.1
done
wait "$pid"
code=$?
[ "$code" -eq 1 ] && grep -q 'procs: 1 of 4 items failed; the first, item [0-9], died with its worker process (a signal' "$tmp/out" &&
  pass=$((pass + 1)) || { echo "FAIL: a killed worker: exit $code"; sed 's/^/  /' "$tmp/out" | tail -4; fail=$((fail + 1)); }

# Outputs that are not regular files: a symlink's target is replaced and the link kept; a
# FIFO and a device are written in place, never replaced by a file; a replaced file keeps its
# permission bits.
echo old >"$tmp/target.txt"
ln -sf "$tmp/target.txt" "$tmp/link.txt"
echo old >"$tmp/mode.txt" && chmod 640 "$tmp/mode.txt"
"$bin" bench --workload prime-fixed --n 20 --repeat 1 --backends threads --out "$tmp/link.txt" >/dev/null &&
  "$bin" bench --workload prime-fixed --n 20 --repeat 1 --backends threads --out "$tmp/mode.txt" >/dev/null &&
  [ -L "$tmp/link.txt" ] && grep -q '^brigade' "$tmp/target.txt" && [ "$(stat -c %a "$tmp/mode.txt")" = 640 ] &&
  pass=$((pass + 1)) || { echo "FAIL: --out through a link or over a file with its mode"; fail=$((fail + 1)); }
mkfifo "$tmp/fifo"
(cat "$tmp/fifo" >"$tmp/from-fifo") &
"$bin" bench --workload prime-fixed --n 20 --repeat 1 --backends threads --out "$tmp/fifo" >/dev/null
wait
[ -p "$tmp/fifo" ] && grep -q '^brigade' "$tmp/from-fifo" && pass=$((pass + 1)) ||
  { echo "FAIL: --out to a FIFO"; fail=$((fail + 1)); }
if [ "$(id -u)" -eq 0 ] && mknod "$tmp/full" c 1 7 2>/dev/null; then
  expect 1 err "'$tmp/full': write failed: No space left on device" -- bench --workload prime-fixed --n 20 --repeat 1 --backends threads --out "$tmp/full"
  [ -c "$tmp/full" ] && pass=$((pass + 1)) || { echo "FAIL: --out replaced a device"; fail=$((fail + 1)); }
fi

# JSON output validates against the documented schema.
"$bin" bench --workload prime-range,sleep --n 50 --repeat 1 --format json >"$tmp/b.json" &&
  python3 "$here/validate_json.py" "$schema" "$tmp/b.json" && pass=$((pass + 1)) ||
  { echo "FAIL: bench --format json does not match $schema"; fail=$((fail + 1)); }

# --peers python: fake peers print fixed lines; their rows join the section with a vs peer
# column, skipped and wrong approaches are named, a killed peer is reported as killed, a missing
# script or interpreter is reported, and the real peers are not needed.
fake="$here/peers"
expect 0 out 'py:joblib +- +- +2 +1 s \[0\.9-1\.1\]' -- bench --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir "$fake/ok"
grep -Eq '^threads .* [0-9.]+x$' "$tmp/out" && grep -q 'py:mpire skipped: mpire not installed; install with make bench-peers' "$tmp/out" &&
  grep -q 'py:futures returned wrong results' "$tmp/out" && grep -q "the peer's timing fields are missing or malformed" "$tmp/out" &&
  grep -q "a peer printed a line brigade cannot read: 'some chatter" "$tmp/out" &&
  grep -q 'the best Python approach (py:joblib, 2 workers) 1 s' "$tmp/out" && pass=$((pass + 1)) ||
  { echo "FAIL: peer rows and notes"; sed 's/^/  /' "$tmp/out"; fail=$((fail + 1)); }
"$bin" bench --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir "$fake/ok" --format json >"$tmp/p.json" &&
  python3 "$here/validate_json.py" "$schema" "$tmp/p.json" && pass=$((pass + 1)) ||
  { echo "FAIL: peer rows in JSON"; fail=$((fail + 1)); }
expect 0 out 'the Python peer process was killed by signal 9 \(SIGKILL' -- bench --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir "$fake/crash"
grep -q '^py:seq ' "$tmp/out" && pass=$((pass + 1)) || { echo "FAIL: rows before a peer crash are kept"; fail=$((fail + 1)); }
expect 0 out 'Python peers not run: /nonexistent/catalogue.py is missing' -- bench --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir /nonexistent
expect 0 out 'Python peers not run: /nonexistent/python was not found' -- bench --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir "$fake/ok" --python /nonexistent/python
# An interpreter that exits non-zero without printing: the peer is reported as failed.
expect 0 out 'the Python peer process failed \(exit 1\)' -- bench --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir "$fake/ok" --python false
expect 2 err "unknown peers 'ruby'" -- bench --peers ruby
expect 2 err "--python, --peers-dir and --peer-timeout go with --peers python" -- bench --python python3
expect 2 err "--quiet-wait '0': expected seconds to wait" -- bench --quiet-wait 0
expect 2 err "--quiet-wait 'soon': expected seconds to wait" -- bench --quiet-wait soon
expect 2 err "--quiet-wait re-runs the catalogue's rows and --task's; --suite knn has none" -- bench --suite knn --quiet-wait 5
# Ctrl-C while --quiet-wait waits (a spinner per CPU keeps the machine busy, so the wait would
# last its 60 s): the run ends at once with 130, and the row whose first run finished is printed.
spinners=()
for _ in $(seq "$(nproc)"); do yes >/dev/null & spinners+=($!); done
setsid "$bin" bench --workload sleep --n 2 --param 0.1 --repeat 1 --backends threads --quiet-wait 60 >"$tmp/qw.out" 2>"$tmp/qw.err" &
qpid=$!
sleep 4
t0=$(date +%s)
kill -INT "$qpid"
wait "$qpid"
code=$? t1=$(date +%s)
kill "${spinners[@]}" 2>/dev/null
wait "${spinners[@]}" 2>/dev/null
[ "$code" -eq 130 ] && [ $((t1 - t0)) -le 3 ] && grep -Eq '^seq +' "$tmp/qw.out" && pass=$((pass + 1)) ||
  { echo "FAIL: Ctrl-C during --quiet-wait's wait: exit $code after $((t1 - t0)) s"; sed 's/^/  /' "$tmp/qw.out" "$tmp/qw.err" | tail -8; fail=$((fail + 1)); }

# MPI: --backends mpi outside mpirun says how to run it; --ranks starts mpirun itself; knn
# under mpirun answers exactly as one process does.
if "$bin" --version | grep -q 'mpi=on'; then
  expect 2 err 'the mpi backend runs under mpirun: add --ranks N' -- bench --workload prime-range --backends mpi
  expect 2 err '--ranks runs the catalogue on the mpi backend only' -- bench --suite knn --ranks 2
  expect 2 err "--ranks '0'" -- bench --ranks 0
  if command -v mpirun >/dev/null; then
    # Under ASan, Open MPI's allocations held at exit read as leaks (see tests/mpi/run.sh).
    saved_asan=${ASAN_OPTIONS-}
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    expect 0 out '^mpi +auto +- +2 +[0-9.]+ (us|ms)' -- bench --workload prime-range --n 20000 --repeat 1 --ranks 2
    grep -q '^seq ' "$tmp/out" && [ "$(grep -c '^== prime-range' "$tmp/out")" -eq 1 ] && pass=$((pass + 1)) ||
      { echo "FAIL: --ranks 2 prints one report, with seq and mpi rows"; sed 's/^/  /' "$tmp/out"; fail=$((fail + 1)); }
    "$bin" knn --nb-txt 10007 --dim 33 --nb-new 70 --k 4 --out "$tmp/one.npy" >/dev/null &&
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
        mpirun -np 3 "$bin" knn --nb-txt 10007 --dim 33 --nb-new 70 --k 4 --out "$tmp/three.npy" >"$tmp/out" &&
      grep -q 'distributed: 3 ranks' "$tmp/out" && cmp -s "$tmp/one.npy" "$tmp/three.npy" && pass=$((pass + 1)) ||
      { echo "FAIL: knn under mpirun -np 3 equals one process"; fail=$((fail + 1)); }
    # A job mpirun cannot start (4 ranks on fewer cores, oversubscription refused) or a bad
    # --out: said before or after, never a hang.
    if [ "$(nproc)" -lt 4 ]; then
      OMPI_MCA_rmaps_base_oversubscribe=0 expect 1 err 'the MPI job failed \(mpirun exit [0-9]+\)' -- bench --workload prime-range --ranks 4
    fi
    expect 2 err "--out '/nonexistent/r.txt': cannot write" -- bench --workload prime-range --ranks 2 --out /nonexistent/r.txt
    # mpirun missing: --ranks says how to install it.
    PATH=/nonexistent "$bin" bench --workload prime-range --ranks 2 >/dev/null 2>"$tmp/err"
    code=$?
    [ "$code" -eq 1 ] && grep -q -- '--ranks needs mpirun, which is not installed' "$tmp/err" && pass=$((pass + 1)) ||
      { echo "FAIL: --ranks without mpirun: exit $code"; fail=$((fail + 1)); }
    export ASAN_OPTIONS="$saved_asan"
  fi
fi

# Plots go through gnuplot when it is installed, and say how to install it when it is not.
if command -v gnuplot >/dev/null; then
  expect 0 out 'Fastest' -- bench --workload prime-fixed --n 1000 --repeat 1 --workers 1,2 --plot "$tmp/p.svg"
  grep -q '<svg' "$tmp/p.svg" && pass=$((pass + 1)) || { echo "FAIL: --plot wrote no SVG"; fail=$((fail + 1)); }
  # With the machine's limits known, a chart of each case's time over what they allow.
  expect 0 out 'Against this machine' -- bench --workload disk-small --n 300 --repeat 1 --limits --plot "$tmp/l.svg"
  grep -q 'times the limit' "$tmp/l.svg" && ! grep -q 'times the limit' "$tmp/p.svg" &&
    pass=$((pass + 1)) || { echo "FAIL: --plot against the limits"; fail=$((fail + 1)); }
  expect 0 out 'knn \(1000, 100, 100\)' -- bench --suite knn --backends blocked --repeat 1 --plot "$tmp/k.svg"
  grep -q 'GFLOP/s per case' "$tmp/k.svg" && pass=$((pass + 1)) || { echo "FAIL: knn --plot"; fail=$((fail + 1)); }
fi
# Without gnuplot on the PATH, --plot says how to install it (exit 1, the tables still printed).
PATH=/nonexistent "$bin" bench --workload prime-fixed --n 10 --repeat 1 --plot "$tmp/p.svg" >/dev/null 2>"$tmp/err"
code=$?
[ "$code" -eq 1 ] && grep -q "apt-get install gnuplot-nox" "$tmp/err" && pass=$((pass + 1)) ||
  { echo "FAIL: --plot without gnuplot: exit $code"; fail=$((fail + 1)); }
expect 1 err "must end in .svg or .png" -- bench --workload prime-fixed --n 10 --repeat 1 --plot "$tmp/p.pdf"

# --trace: a Chrome trace-event file in which every row is a process, every worker a track, and
# each track's spans tile its map from 0 to the row's end without overlap; every item of a
# chunk-scheduled row is in exactly one chunk span; a --task row run in a supervised child is
# named, not drawn; a bad path is refused before anything runs; another suite says why not.
trace_ok() { # FILE N_ITEMS
  python3 - "$1" "$2" <<'PY'
import json, sys, re, collections
ev = json.load(open(sys.argv[1]))["traceEvents"]
n = int(sys.argv[2])
names = {e["pid"]: e["args"]["name"] for e in ev if e["name"] == "process_name"}
assert len(names) >= 2, names
tracks = collections.defaultdict(list)
for e in ev:
    if e["ph"] == "X":
        assert e["dur"] >= 0 and e["ts"] >= 0, e
        tracks[(e["pid"], e["tid"])].append(e)
for pid, name in names.items():
    if "not traced" in name:
        continue
    items = [0] * n
    for (p, tid), spans in tracks.items():
        if p != pid:
            continue
        spans.sort(key=lambda e: e["ts"])
        assert spans[0]["ts"] <= 1.001 or spans[0]["cat"] == "wait", (name, spans[0])
        for a, b in zip(spans, spans[1:]):
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-3, (name, a, b)
        for e in spans:
            m = re.match(r"items (\d+)-(\d+)$", e["name"])
            if e["cat"] == "chunk" and m:
                for i in range(int(m[1]), int(m[2]) + 1):
                    items[i] += 1
    assert all(c == 1 for c in items), (name, [i for i, c in enumerate(items) if c != 1][:5])
PY
}
"$bin" bench --workload prime-range --n 3000 --repeat 2 --workers 2 --backends threads,procs \
  --trace "$tmp/t.json" >/dev/null 2>"$tmp/err" && trace_ok "$tmp/t.json" 3000 &&
  grep -q "trace wrote 3 rows" "$tmp/err" && pass=$((pass + 1)) ||
  { echo "FAIL: --trace"; head -c 400 "$tmp/t.json"; cat "$tmp/err"; fail=$((fail + 1)); }
"$bin" bench --task "$plugin:digit_sum" --n 500 --repeat 1 --backends threads,procs --trace "$tmp/t2.json" \
  >/dev/null 2>&1 && trace_ok "$tmp/t2.json" 500 && grep -q "threads x[0-9]* (not traced: a --task row" "$tmp/t2.json" &&
  pass=$((pass + 1)) || { echo "FAIL: --trace with --task"; fail=$((fail + 1)); }
expect 2 err "--trace '$tmp': cannot write: it is a directory" -- bench --workload sleep --trace "$tmp"
expect 2 err "--trace draws the catalogue's rows" -- bench --suite overhead --trace "$tmp/o.json"
# A trace that cannot be written is a failure (exit 1) that names the cause.
expect 1 err "--trace '/dev/full': write failed: No space left on device" -- bench --workload sleep --n 2 --param 0.001 --repeat 1 --backends threads --trace /dev/full
expect 2 err "--out and --trace both name" -- bench --workload sleep --trace "$tmp/same" --out "$tmp/same"
expect 2 err "--out and --plot both name" -- bench --workload sleep --plot "$tmp/same.svg" --out "$tmp/same.svg"
expect 2 err "procs-persistent cannot run the catalogue" -- bench --workload sleep --backends procs-persistent
# A folder where access() says yes to root but nothing can be created: found before the run.
expect 2 err "'/sys/x.json': cannot write" -- bench --workload sleep --out /sys/x.json

# OPENBLAS_CORETYPE=Haswell halves OpenBLAS on an AVX-512 CPU: info says so.
if grep -q avx512f /proc/cpuinfo && "$bin" --version | grep -q 'blas=openblas'; then
  OPENBLAS_CORETYPE=Haswell expect 0 out 'Warning: OpenBLAS runs an AVX2 kernel' -- info
  env -u OPENBLAS_CORETYPE "$bin" info --json | grep -q '"blas_degraded":false' && pass=$((pass + 1)) ||
    { echo "FAIL: info warns about OpenBLAS without OPENBLAS_CORETYPE"; fail=$((fail + 1)); }
fi

# An affinity mask narrows what brigade uses (the lecture's os.cpu_count() would still say all).
if command -v taskset >/dev/null; then
  taskset -c 0 "$bin" info --json | grep -Eq '"logical_usable":1,"physical_usable":1,.*"default_workers":1' \
    && pass=$((pass + 1)) || { echo "FAIL: taskset -c 0 brigade info --json ignores the affinity mask"; fail=$((fail + 1)); }
fi

# The JSON must parse, when python3 is there to parse it.
if command -v python3 >/dev/null; then
  "$bin" info --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["cpu"]["default_workers"] >= 1' \
    && pass=$((pass + 1)) || { echo "FAIL: info --json does not parse"; fail=$((fail + 1)); }
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

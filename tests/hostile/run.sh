#!/usr/bin/env bash
# `brigade bench --task` with hostile plug-ins (hostile.c): crashes, abort(), exit(), hangs,
# writes past the result, failures, a hanging or flooding peer. Each run must print every row
# with exact counts, exit with the documented status, stop within a second of SIGINT/SIGTERM,
# and leave no process, temporary file or /dev/shm entry behind.
set -u
bin=$1 lib=$2 mytask=$3
pass=0 fail=0
tmp=$(mktemp -d)
export TMPDIR="$tmp/tmpdir"
mkdir -p "$TMPDIR"
# What only this test's processes carry on their command lines: the bench and its forks (the
# plug-in's path after --task), the fake peers (under $tmp), the task's own child.
mine="bench --task $lib|$tmp/|sleep 373"
trap 'pkill -KILL -f -- "$mine" 2>/dev/null; rm -rf "$tmp"' EXIT
# /dev/shm is the machine's: other work may add entries while this test runs (it failed once
# beside another suite). What counts is an entry made since the start that no live process
# holds: one a dead child of ours left.
ls /dev/shm | sort >"$tmp/shm.before"
shm_left() {
  local n held
  ls /dev/shm | sort | comm -13 "$tmp/shm.before" - | while read -r n; do
    held=0
    for f in /proc/[0-9]*/fd/* /proc/[0-9]*/map_files/*; do
      [ "$(readlink "$f" 2>/dev/null)" = "/dev/shm/$n" ] && held=1 && break
    done
    [ "$held" -eq 1 ] || grep -qsF "/dev/shm/$n" /proc/[0-9]*/maps || echo "$n"
  done
}
# Under ASan, a task's exit() in a child process runs LeakSanitizer there, which replaces the
# exit status the test checks (the child's threads' memory reads as leaked).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

ok() { pass=$((pass + 1)); }
bad() {
  echo "FAIL: $*"
  sed 's/^/  out: /' "$tmp/out" | tail -15
  sed 's/^/  err: /' "$tmp/err" | tail -5
  fail=$((fail + 1))
}

# Nothing of a run may outlive it: no process running the plug-in (the bench's supervised
# children carry the same command line), no process the task started, no temporary file.
left_behind() {
  sleep 0.2
  local procs
  procs=$(pgrep -f -- "$mine" || true)
  if [ -n "$procs" ]; then
    echo "left running after '$1':"; ps -o pid,ppid,pgid,args -p $(echo $procs | tr ' ' ,)
    return 0
  fi
  [ -n "$(ls -A "$TMPDIR")" ] && { echo "left in TMPDIR after '$1':"; ls -A "$TMPDIR"; return 0; }
  return 1
}

# run CODE LABEL -- ARGS: runs bench with ARGS, wants exit CODE and nothing left behind.
run() {
  local code=$1 label=$2
  shift 3
  "$bin" bench "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -ne "$code" ]; then
    bad "$label: exit $got, want $code"
    return 1
  fi
  if left_behind "$label"; then
    bad "$label: left something behind"
    return 1
  fi
  return 0
}

# rows N: the table has N rows, all FAILED, with no timing.
all_failed() {
  local rows
  rows=$(grep -Ec '^(seq|threads|procs|procs-copy|openmp) +auto .* FAILED$' "$tmp/out")
  [ "$rows" -eq "$1" ] && ! grep -Eq '^(seq|threads|procs|procs-copy|openmp) +auto +- +[0-9]+ +[0-9.]+ (us|ms|s) ' "$tmp/out"
}

# note BACKEND TEXT: the backend's note under the table contains TEXT (a fixed string).
note() { grep -F -- "  > $1: " "$tmp/out" | grep -qF -- "$2"; }

# 1. The shipped example: every item ending in 7 fails on every backend; exit 1.
if run 1 fail_on_seven -- --task "$mytask:fail_on_seven" --n 1000 --repeat 1 --workers 2; then
  want='100 of 1000 items failed: 100 returned non-zero (the first, item 7, returned 7)'
  all_failed 5 && note seq "$want" && note threads "$want" && note procs "$want" &&
    note procs-copy "$want" && note openmp "$want" && grep -q '5 rows FAILED' "$tmp/err" && ok ||
    bad "fail_on_seven: rows and counts"
fi

# 2. The issue's plug-in: 10,000 items, 4 segfault, 4 abort, 2 exit(5), one hangs, 8 return 9.
start=$(date +%s.%N)
if run 1 mixed -- --task "$lib:mixed" --n 10000 --timeout 0.5 --repeat 1 --workers 2 --format json; then
  took=$(echo "$(date +%s.%N) - $start" | bc)
  python3 - "$tmp/out" <<'PY' && ok || bad "mixed: counts in JSON"
import json, sys
r = json.load(open(sys.argv[1]))
rows = [x for x in r["rows"] if not x["external"]]
assert sorted(x["backend"] for x in rows) == sorted(["seq", "threads", "procs", "procs-copy", "openmp"]), rows
for x in rows:
    got = (x["failed"], x["n_failed"], x["n_crashed"], x["n_exited"], x["n_timeout"], x["n_overflow"], x["first_failed"], x["median_s"])
    assert got == (True, 19, 8, 2, 1, 0, 13, 0), (x["backend"], got)
notes = " ".join(n["text"] for n in r["notes"])
assert "8 returned non-zero (the first, item 500, returned 9)" in notes, notes
assert "still running after --timeout 0.5 s, killed (the first, item 9000)" in notes, notes
PY
  # Each row may take the timeout (twice on a supervised row: the timed run, then the count)
  # and some seconds of forking; the issue's bound is timeout + 5 s per row.
  [ "$(echo "$took < 5 * 5.5" | bc)" -eq 1 ] && ok || bad "mixed took $took s"
fi

# 3. One kind of misbehaviour at a time, on every backend.
if run 1 segv -- --task "$lib:segv_some" --n 3000 --repeat 1 --workers 2; then
  w='3 of 3000 items failed: 3 crashed (the first, item 13, with SIGSEGV)'
  all_failed 5 && note seq "$w" && note threads "$w" && note procs "$w" && note openmp "$w" &&
    note seq "its process died of SIGSEGV, so it has no timing" && ok || bad "segv counts"
fi
if run 1 abort -- --task "$lib:abort_one" --n 100 --repeat 1 --workers 2; then
  w='1 of 100 items failed: 1 crashed (the first, item 13, with SIGABRT)'
  all_failed 5 && note seq "$w" && note threads "$w" && note procs-copy "$w" && note openmp "$w" && ok ||
    bad "abort counts"
fi
if run 1 exit3 -- --task "$lib:exit_one" --n 100 --repeat 1 --workers 2; then
  w='1 of 100 items failed: 1 called exit() (the first, item 42, with status 3)'
  all_failed 5 && note seq "$w" && note threads "$w" && note procs "$w" && note openmp "$w" && ok ||
    bad "exit(3) counts"
fi
# exit(0) inside a task is not success.
if run 1 exit0 -- --task "$lib:exit_zero" --n 10 --repeat 1 --workers 2; then
  note seq '1 called exit() (the first, item 3, with status 0)' && ok || bad "exit(0) counts"
fi
for fn in spin_one sleep_one; do
  item=$([ $fn = spin_one ] && echo 5 || echo 7)
  if run 1 $fn -- --task "$lib:$fn" --n 20 --timeout 0.3 --repeat 1 --workers 2; then
    w="1 of 20 items failed: 1 still running after --timeout 0.3 s, killed (the first, item $item)"
    all_failed 5 && note seq "$w" && note threads "$w" && note procs "$w" && note openmp "$w" && ok ||
      bad "$fn counts"
  fi
done

# 4. Writes past --out-size: a few bytes (the guard bytes: every item counted) and 64 KiB (the
# guard page: each item kills its process, so after 16 such deaths in a row the circuit breaker
# stops starting processes and the rest is reported as not run).
if run 1 write_16 -- --task "$lib:write_16" --n 50 --out-size 4 --repeat 1 --workers 2; then
  w='50 of 50 items failed: 50 wrote past their 4-byte result (the first, item 0: --out-size is too small?)'
  all_failed 5 && note seq "$w" && note threads "$w" && note procs "$w" && note openmp "$w" && ok ||
    bad "write_16 counts"
fi
if run 1 write_far -- --task "$lib:write_far" --n 50 --out-size 4 --repeat 1 --workers 2 --format json; then
  python3 - "$tmp/out" <<'PY' && ok || bad "write_far: overruns and the breaker in JSON"
import json, sys
r = json.load(open(sys.argv[1]))
for x in r["rows"]:
    assert x["failed"] and x["n_failed"] == 50 and x["first_failed"] == 0, x
    assert 16 <= x["n_overflow"] <= 18 and x["n_overflow"] + x["n_not_run"] == 50, x
notes = " ".join(n["text"] for n in r["notes"])
assert "wrote past their 4-byte result (the first, item 0: --out-size is too small?)" in notes
assert "were not run: the same death kept killing fresh processes, so a circuit breaker" in notes
PY
fi
# Enough room: no failure.
run 0 write_16_fits -- --task "$lib:write_16" --n 50 --out-size 16 --repeat 1 --workers 2 && ok

# 5. A process started by the task does not outlive the row.
run 0 spawn -- --task "$lib:spawn_sleeper" --n 10 --repeat 1 --workers 2 --backends threads && ok

# 5b. What the task prints goes to standard error, never into the report.
if run 0 noisy -- --task "$lib:noisy" --n 20 --repeat 1 --workers 2 --format json; then
  python3 -c 'import json, sys; assert len(json.load(open(sys.argv[1]))["rows"]) == 5' "$tmp/out" && ok ||
    bad "noisy: the JSON report is not valid"
fi

# 6. Symbols and bounds.
run 2 not_own_symbol -- --task "$lib:printf" --n 10 &&
  grep -q "'printf' is not defined in '.*' but in .*libc" "$tmp/err" && ok
run 2 not_a_function -- --task "$lib:not_a_function" --n 10 &&
  grep -q "'not_a_function' in '.*' is a variable, not a function" "$tmp/err" && ok
run 2 timeout_without_task -- --workload sleep --timeout 1 &&
  grep -q -- '--timeout applies to --task' "$tmp/err" && ok
run 2 bad_timeout -- --task "$lib:segv_some" --n 10 --timeout 0 &&
  grep -q -- "--timeout '0': expected seconds per item" "$tmp/err" && ok
args=()
for i in $(seq 40); do args+=(--workload sleep); done
run 2 many_workloads -- "${args[@]}" && grep -q -- '--workload: at most 32 workloads' "$tmp/err" && ok

# 7. Signals: SIGINT and SIGTERM during a hang (no --timeout) stop the bench within a second,
# exit 130 / 143, and kill every child. setsid: a background job's SIGINT is otherwise ignored.
stop_within() { # SIG WANT BACKEND|peer
  local sig=$1 want=$2 what=$3
  if [ "$what" = peer ]; then
    setsid "$bin" bench --workload prime-fixed --n 100 --repeat 1 --peers python \
      --peers-dir "$tmp/hang" >"$tmp/out" 2>"$tmp/err" &
  else
    setsid "$bin" bench --task "$lib:sleep_one" --n 20 --backends "$what" >"$tmp/out" 2>"$tmp/err" &
  fi
  local pid=$!
  sleep 1.5
  local t0 t1 code
  t0=$(date +%s.%N)
  kill -"$sig" "$pid"
  wait "$pid"
  code=$?
  t1=$(date +%s.%N)
  local took
  took=$(echo "$t1 - $t0" | bc)
  if [ "$code" -ne "$want" ] || [ "$(echo "$took < 1" | bc)" -ne 1 ]; then
    bad "SIG$sig during a hang ($what): exit $code in $took s (want $want within 1 s)"
  elif left_behind "SIG$sig $what"; then
    bad "SIG$sig during a hang ($what) left something behind"
  else
    ok
  fi
}
mkdir -p "$tmp/hang" "$tmp/flood"
printf 'import time\ntime.sleep(373)\n' >"$tmp/hang/catalogue.py"
printf 'import sys\nwhile True:\n    sys.stdout.write("garbage " * 100)\n' >"$tmp/flood/catalogue.py"
for backend in threads procs; do
  stop_within TERM 143 $backend
  stop_within INT 130 $backend
done
stop_within TERM 143 peer
stop_within INT 130 peer
grep -q 'interrupted by SIGINT' "$tmp/err" && ok || bad "the interruption is named"

# 8. Peers with a time limit of their own and a bound on what is read from them.
if run 0 peer_timeout -- --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir "$tmp/hang" --peer-timeout 1; then
  grep -q 'still running after 1 s (--peer-timeout) and was killed' "$tmp/out" && ok || bad "peer timeout note"
fi
if run 0 peer_flood -- --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir "$tmp/flood"; then
  grep -q 'printed more than 1024 KiB, which no peer should, and was killed' "$tmp/out" && ok || bad "peer flood note"
fi

# 9. kill -9 of the bench: its supervised children die with it (parent-death signal).
for backend in threads procs; do
  setsid "$bin" bench --task "$lib:sleep_one" --n 20 --backends "$backend" >/dev/null 2>&1 &
  pid=$!
  sleep 1.5
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null
  sleep 0.5
  left_behind "kill -9 ($backend)" && bad "kill -9 of the bench ($backend) left children" || ok
done

# ... and so do the Python peers it started.
setsid "$bin" bench --workload prime-fixed --n 100 --repeat 1 --peers python --peers-dir "$tmp/hang" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do pgrep -f -- "$tmp/hang/catalogue.py" >/dev/null && break; sleep 0.1; done
kill -KILL "$pid"
wait "$pid" 2>/dev/null
sleep 0.5
left_behind "kill -9 (peer)" && bad "kill -9 of the bench left its peer running" || ok

# brigade map: a task that writes 64 KiB past its result on procs-persistent (whose results and
# statuses share one mapping) leaves garbage statuses; the run must not then exit 0.
"$bin" map --task "$lib:write_far" --n 4 --backend procs-persistent --out "$tmp/far.npy" \
  >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "map write_far on procs-persistent: exit 0 beside items not run"

left=$(shm_left)
[ -z "$left" ] && ok || { echo "FAIL: /dev/shm entries left: $left"; fail=$((fail + 1)); }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

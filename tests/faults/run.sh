#!/usr/bin/env bash
# Fault injection against the CLI: full disks, signals in the middle of writes, address-space
# limits, inputs that overflow. Every case must end in a clear error or the right answer, with
# nothing left behind (no temporary file, no process) and no input modified.
set -u
bin=$1
pass=0 fail=0
tmp=$(mktemp -d)
trap 'mountpoint -q "$tmp/tiny" 2>/dev/null && umount "$tmp/tiny"; rm -rf "$tmp"' EXIT
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; sed 's/^/  err: /' "$tmp/err" 2>/dev/null | tail -4; fail=$((fail + 1)); }
npy=""
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import numpy' 2>/dev/null; then npy=$py; break; fi
done

# 1. A full disk (a 64 KiB tmpfs, where root may mount one): knn --out and bench --out fail with
# the errno, the previous file stays as it was, no temporary is left.
if [ "$(id -u)" -eq 0 ] && mkdir -p "$tmp/tiny" && mount -t tmpfs -o size=64k tmpfs "$tmp/tiny" 2>/dev/null; then
  echo previous >"$tmp/tiny/i.npy"
  echo previous >"$tmp/tiny/r.json"
  "$bin" knn --nb-txt 10000 --dim 8 --nb-new 8000 --k 32 --out "$tmp/tiny/i.npy" >/dev/null 2>"$tmp/err"
  code=$?
  [ $code -eq 1 ] && grep -q 'No space left on device' "$tmp/err" && [ "$(cat "$tmp/tiny/i.npy")" = previous ] && ok ||
    bad "knn --out on a full disk: exit $code"
  head -c 1M /dev/zero >"$tmp/tiny/filler" 2>/dev/null # fills the disk to the last block
  "$bin" bench --workload prime-fixed,sleep --n 200 --repeat 1 --format json --out "$tmp/tiny/r.json" >/dev/null 2>"$tmp/err"
  code=$?
  [ $code -eq 1 ] && grep -q 'No space left on device' "$tmp/err" && [ "$(cat "$tmp/tiny/r.json")" = previous ] && ok ||
    bad "bench --out on a full disk: exit $code"
  [ "$(ls -A "$tmp/tiny" | sort | tr '\n' ' ')" = "filler i.npy r.json " ] && ok || bad "temporaries left: $(ls -A "$tmp/tiny")"
  umount "$tmp/tiny"
else
  echo "skipped: the full-disk cases need root to mount a tmpfs"
fi

# 2. SIGTERM, then SIGKILL (which no handler sees), at random moments of a knn run that writes a
# 19 MiB .npy: afterwards the output is either absent or a whole, loadable array; never a
# truncated file or a temporary (the temporary has no name until it is whole, O_TMPFILE: with a
# named one a kill -9 during the write left '.i.npy.XXXXXX' behind).
mkdir -p "$tmp/sig"
for sig in TERM KILL; do
  for delay in 0.05 0.1 0.15 0.2 0.25 0.3 0.35 0.45 0.5 0.6 0.7 0.8 1.0 1.2; do
    rm -f "$tmp/sig/"* "$tmp/sig/".??* 2>/dev/null
    "$bin" knn --nb-txt 20000 --dim 16 --nb-new 60000 --k 40 --out "$tmp/sig/i.npy" >/dev/null 2>&1 &
    pid=$!
    sleep $delay
    kill -$sig $pid 2>/dev/null
    wait $pid 2>/dev/null
    left=$(ls -A "$tmp/sig")
    if [ -z "$left" ]; then
      ok
    elif [ "$left" = i.npy ] && { [ -z "$npy" ] || "$npy" -c "import numpy as np, sys; a = np.load(sys.argv[1]); sys.exit(a.shape != (60000, 40))" "$tmp/sig/i.npy"; }; then
      ok
    else
      bad "SIG$sig after $delay s left: $left"
    fi
  done
done

# 3. Address-space limits (ulimit -v, common on clusters): every knn backend and the alloc rows
# answer or refuse with a message; none is killed, spins or crashes.
# (Not under the sanitizers: ASan and TSan reserve terabytes of shadow address space at start.)
if "$bin" --version | grep -q 'sanitize='; then
  echo "skipped: the address-space sweep cannot run in a sanitizer build"
elif command -v prlimit >/dev/null; then
  for mib in 300 700 1500; do
    for backend in naive blocked blas; do
      timeout 120 prlimit --as=$((mib << 20)) "$bin" knn --nb-txt 100000 --dim 1000 --nb-new 100 \
        --backend $backend >"$tmp/out" 2>"$tmp/err"
      code=$?
      if [ $code -eq 0 ] && grep -q '^first query: best index' "$tmp/out"; then
        ok
      elif [ $code -eq 1 ] && grep -Eq 'available|budget|need' "$tmp/err"; then
        ok
      else
        bad "knn --backend $backend under --as=${mib}M: exit $code"
      fi
    done
    timeout 300 prlimit --as=$((mib << 20)) "$bin" bench --workload alloc --repeat 1 >"$tmp/out" 2>"$tmp/err"
    code=$?
    { [ $code -eq 0 ] || { [ $code -eq 1 ] && grep -Eq 'available|MiB' "$tmp/err"; }; } && ok ||
      bad "bench --workload alloc under --as=${mib}M: exit $code"
  done
fi

# 4. Inputs whose scores overflow float32 (rows of 3e38; data scaled by 1e20): the right answer
# or a clear refusal, never index -1 or a silent wrong answer; the inputs are not modified.
if [ -n "$npy" ]; then
  "$npy" - "$tmp" <<'PY'
import sys, numpy as np
t = sys.argv[1]
rng = np.random.default_rng(5)
db = rng.random((300, 8), dtype=np.float32); q = rng.random((20, 8), dtype=np.float32)
pad = db.copy(); pad[::7] = 3e38
np.save(f"{t}/pad.npy", pad); np.save(f"{t}/q.npy", q)
np.save(f"{t}/big.npy", (db * 1e20).astype(np.float32)); np.save(f"{t}/bigq.npy", (q * 1e20).astype(np.float32))
PY
  cp "$tmp/pad.npy" "$tmp/pad-copy.npy"
  for metric in ip cosine l2; do
    for pair in "pad q" "big bigq"; do
      set -- $pair
      "$bin" knn --db "$tmp/$1.npy" --queries "$tmp/$2.npy" --metric $metric --k 3 --out "$tmp/o.npy" >/dev/null 2>"$tmp/err"
      code=$?
      if [ $code -ne 0 ]; then
        [ $code -eq 1 ] && grep -qi 'overflow' "$tmp/err" && ok || bad "knn $metric on $1: exit $code"
        continue
      fi
      "$npy" - "$tmp" "$1" "$2" $metric <<'PY' && ok || bad "knn $metric on $1: a wrong answer"
import sys, numpy as np
t, d, qn, metric = sys.argv[1:]
db = np.load(f"{t}/{d}.npy").astype(np.float64); q = np.load(f"{t}/{qn}.npy").astype(np.float64)
got = np.load(f"{t}/o.npy")
if metric == "ip": s = q @ db.T
elif metric == "cosine": s = (q / np.linalg.norm(q, axis=1)[:, None]) @ (db / np.linalg.norm(db, axis=1)[:, None]).T
else: s = -((q[:, None, :] - db[None, :, :]) ** 2).sum(-1)
want = np.argsort(-s, axis=1, kind="stable")[:, :3]
sys.exit(0 if (got >= 0).all() and (np.take_along_axis(s, got, 1) == np.take_along_axis(s, want, 1)).all() else 1)
PY
    done
  done
  cmp -s "$tmp/pad.npy" "$tmp/pad-copy.npy" && ok || bad "an input was modified"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# CLI tests of `brigade knn`: argument errors, .npy files (round trip, hand-made headers,
# refusals), outputs that are inputs, a full disk, SIGTERM, and --precision bf16.
# usage: knn.sh BRIGADE MYTASK_PLUGIN SCHEMA
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/setup.sh" "$@"

# knn: argument errors, .npy round trip, refusals.
expect 0 out '^usage: brigade knn' -- help knn
expect 2 err "give --nb-txt, --dim and --nb-new" -- knn --nb-txt 10
expect 2 err "--dim '0': number too small" -- knn --nb-txt 10 --dim 0 --nb-new 3
expect 2 err "unknown metric 'dot'" -- knn --nb-txt 10 --dim 4 --nb-new 3 --metric dot
expect 2 err "unknown backend 'gpu'" -- knn --nb-txt 10 --dim 4 --nb-new 3 --backend gpu
expect 2 err "--k 11 is more than the 10 database vectors" -- knn --nb-txt 10 --dim 4 --nb-new 3 --k 11
expect 2 err "--db and --queries go together" -- knn --db x.npy
expect 2 err "--nb-txt applies to random inputs; with --db and --queries the files give the sizes" -- knn --db x.npy --queries y.npy --nb-txt 5
expect 2 err "--dim describes --raw files; a .npy file gives its own shape and dtype" -- knn --db x.npy --queries y.npy --dim 8
# SIGTERM while the inputs are made or searched ends the command with 143, saying that nothing
# was written (and nothing is).
"$bin" knn --nb-txt 100000 --dim 1000 --nb-new 20000 --out "$tmp/term.npy" >/dev/null 2>"$tmp/err" &
kpid=$!
sleep 1
kill -TERM "$kpid"
wait "$kpid"
krc=$?
[ "$krc" -eq 143 ] && grep -q 'brigade knn: interrupted; nothing written' "$tmp/err" &&
  [ -z "$(ls -A "$tmp" | grep term)" ] && pass=$((pass + 1)) ||
  { echo "FAIL: knn SIGTERM (exit $krc)"; sed 's/^/  /' "$tmp/err"; fail=$((fail + 1)); }
expect 1 err "the search needs at least .* but the budget is" -- knn --nb-txt 100000 --dim 64 --nb-new 10 --metric l2 --mem-budget 1K
expect 1 err "inputs and results need .* GiB" -- knn --nb-txt 1G --dim 1000 --nb-new 1000
for b in naive blocked blas; do
  expect 0 out 'plan: backend '"$b" -- knn --nb-txt 3000 --dim 33 --nb-new 50 --k 3 --backend $b --out "$tmp/$b.npy"
done
cmp -s "$tmp/naive.npy" "$tmp/blocked.npy" && cmp -s "$tmp/naive.npy" "$tmp/blas.npy" && pass=$((pass + 1)) ||
  { echo "FAIL: knn backends wrote different indices"; fail=$((fail + 1)); }
# --precision bf16: the same indices as the exact search (bit for bit), with the share of pairs
# scored again said; refused with f64 or another backend, or an unknown precision.
for m in ip cosine l2; do
  "$bin" knn --nb-txt 20000 --dim 100 --nb-new 300 --k 5 --metric $m --out "$tmp/x-$m.npy" >/dev/null &&
    "$bin" knn --nb-txt 20000 --dim 100 --nb-new 300 --k 5 --metric $m --precision bf16 \
      --out "$tmp/b-$m.npy" >"$tmp/out" && cmp -s "$tmp/x-$m.npy" "$tmp/b-$m.npy" &&
    grep -Eq '^precision: (bf16 certified \([^)]+\): [0-9]+ pairs|exact \(bf16 ran exact: )' "$tmp/out" &&
    pass=$((pass + 1)) || { echo "FAIL: knn --precision bf16 --metric $m"; sed 's/^/  /' "$tmp/out"; fail=$((fail + 1)); }
done
expect 2 err "unknown precision 'fp8' \(precisions: exact, bf16\)" -- knn --nb-txt 10 --dim 4 --nb-new 3 --precision fp8
expect 2 err "precision bf16 is for f32 data: use --dtype f32" -- knn --nb-txt 10 --dim 4 --nb-new 3 --precision bf16 --dtype f64
expect 2 err "precision bf16 runs on the blocked backend: use --backend auto or blocked, not 'naive'" -- knn --nb-txt 10 --dim 4 --nb-new 3 --precision bf16 --backend naive
# A usage error comes before looking for a GPU.
expect 2 err "precision bf16 runs on the blocked backend: use --backend auto or blocked, not 'cuda'" -- knn --nb-txt 10 --dim 4 --nb-new 3 --precision bf16 --backend cuda
expect 2 err "give --nb-txt, --dim and --nb-new" -- knn --backend cuda
# NumPy from Debian (the bootstrap installs python3-numpy) may sit beside another python3 on the
# PATH that lacks it: use whichever has it.
npy=""
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import numpy' 2>/dev/null; then npy=$py; break; fi
done
if [ -n "$npy" ]; then
  "$npy" - "$tmp" <<'PY' && pass=$((pass + 1)) || { echo "FAIL: knn .npy round trip with NumPy"; fail=$((fail + 1)); }
import sys, numpy as np, subprocess
t = sys.argv[1]
rng = np.random.default_rng(3)
db = rng.random((500, 20), dtype=np.float32); q = rng.random((40, 20), dtype=np.float32)
np.save(f"{t}/db.npy", db); np.save(f"{t}/q.npy", q)
PY
  expect 0 out 'plan: backend' -- knn --db "$tmp/db.npy" --queries "$tmp/q.npy" --k 2 --out "$tmp/i.npy"
  "$npy" -c "
import numpy as np, sys
t = '$tmp'
db, q, got = np.load(t + '/db.npy'), np.load(t + '/q.npy'), np.load(t + '/i.npy')
want = np.argsort(-(q.astype(np.float64) @ db.astype(np.float64).T), axis=1, kind='stable')[:, :2]
sys.exit(0 if got.dtype == np.int64 and (got == want).all() else 1)" && pass=$((pass + 1)) ||
    { echo "FAIL: knn indices differ from NumPy's"; fail=$((fail + 1)); }
fi
printf 'not numpy at all' >"$tmp/bad.npy"
expect 2 err "not a .npy file" -- knn --db "$tmp/bad.npy" --queries "$tmp/bad.npy"
# Hand-made headers: a wrong dtype, and a header promising more data than the file holds.
python3 - "$tmp" <<'PY'
import sys
def npy(path, descr, shape, data):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    d += " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + len(d).to_bytes(2, "little") + d.encode() + data)
npy(sys.argv[1] + "/i4.npy", "<i4", "(2, 2)", bytes(16))
npy(sys.argv[1] + "/short.npy", "<f4", "(9, 2)", bytes(8))
import struct
rows = [[(i * 7 + j * 3) % 11 - 5.0 for j in range(3)] for i in range(50)]
npy(sys.argv[1] + "/ok.npy", "<f4", "(50, 3)", b"".join(struct.pack("<3f", *r) for r in rows))
npy(sys.argv[1] + "/ok64.npy", "<f8", "(50, 3)", b"".join(struct.pack("<3d", *r) for r in rows))
nan = [r[:] for r in rows]
nan[7][1] = float("nan")
npy(sys.argv[1] + "/nan.npy", "<f4", "(50, 3)", b"".join(struct.pack("<3f", *r) for r in nan))
d = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }"
d += " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
open(sys.argv[1] + "/fortran.npy", "wb").write(b"\x93NUMPY\x01\x00" + len(d).to_bytes(2, "little") + d.encode() + bytes(16))
PY
expect 2 err "nan.npy contains NaN at row 7, column 1" -- knn --db "$tmp/nan.npy" --queries "$tmp/ok.npy"
expect 2 err "Fortran-ordered array" -- knn --db "$tmp/fortran.npy" --queries "$tmp/fortran.npy"
expect 2 err "--out '/nonexistent/i.npy': cannot write: the folder /nonexistent does not exist" -- knn --db "$tmp/ok.npy" --queries "$tmp/ok.npy" --out /nonexistent/i.npy
# An output that is an input (by any name) is refused before the search, and the input is kept.
cp "$tmp/ok.npy" "$tmp/ok-copy.npy"
ln -sf "$tmp/ok.npy" "$tmp/ok-link.npy"
expect 2 err "is the same file as the input" -- knn --db "$tmp/ok.npy" --queries "$tmp/ok64.npy" --out "$tmp/ok.npy"
expect 2 err "is the same file as the input" -- knn --db "$tmp/ok.npy" --queries "$tmp/ok.npy" --out "$tmp/ok-link.npy"
expect 2 err "cannot write: it is a directory" -- knn --db "$tmp/ok.npy" --queries "$tmp/ok.npy" --out "$tmp"
cmp -s "$tmp/ok.npy" "$tmp/ok-copy.npy" && pass=$((pass + 1)) || { echo "FAIL: knn --out changed its input"; fail=$((fail + 1)); }
# A full disk: the write fails with the errno, the previous file stays, no temporary is left.
if [ "$(id -u)" -eq 0 ] && mkdir -p "$tmp/tiny" && mount -t tmpfs -o size=64k tmpfs "$tmp/tiny" 2>/dev/null; then
  echo previous >"$tmp/tiny/i.npy"
  expect 1 err "'$tmp/tiny/i.npy': write failed: No space left on device" -- knn --nb-txt 10000 --dim 8 --nb-new 8000 --k 32 --out "$tmp/tiny/i.npy"
  [ "$(cat "$tmp/tiny/i.npy")" = previous ] && [ "$(ls -A "$tmp/tiny")" = i.npy ] && pass=$((pass + 1)) ||
    { echo "FAIL: a failed knn --out left $(ls -A "$tmp/tiny")"; fail=$((fail + 1)); }
  umount "$tmp/tiny"
fi
expect 0 out 'nb_txt=50 dim=3 nb_new=50 k=2 metric=ip dtype=f32' -- knn --db "$tmp/ok.npy" --queries "$tmp/ok.npy" --k 2
expect 0 out 'dtype=f64' -- knn --db "$tmp/ok64.npy" --queries "$tmp/ok64.npy" --out "$tmp/o.npy"
head -c 6 "$tmp/o.npy" | grep -q NUMPY && pass=$((pass + 1)) || { echo "FAIL: --out wrote no .npy"; fail=$((fail + 1)); }
expect 2 err "the dims and dtypes must match" -- knn --db "$tmp/ok.npy" --queries "$tmp/ok64.npy"
expect 2 err "unsupported dtype '<i4'" -- knn --db "$tmp/i4.npy" --queries "$tmp/i4.npy"
# A file brigade cannot read (truncated, missing) is a failure (1), not a usage error.
expect 1 err "truncated" -- knn --db "$tmp/short.npy" --queries "$tmp/short.npy"
expect 1 err "$tmp/none.npy: No such file or directory" -- knn --db "$tmp/none.npy" --queries "$tmp/ok.npy"
# Headers parsed as NumPy parses them: versions, keys, negative dimensions, by name.
python3 - "$tmp" <<'PY'
import sys
def raw(path, version, d):
    d += " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY" + bytes(version) + len(d).to_bytes(2, "little") + d.encode() + bytes(64))
raw(sys.argv[1] + "/v9.npy", (9, 0), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }")
raw(sys.argv[1] + "/neg.npy", (1, 0), "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 2), }")
raw(sys.argv[1] + "/trick.npy", (1, 0), "{\"x 'descr': '<f4'\": 0, 'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }")
raw(sys.argv[1] + "/dup.npy", (1, 0), "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }")
raw(sys.argv[1] + "/3d.npy", (1, 0), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }")
PY
expect 2 err "format version 9.0 is not one brigade reads" -- knn --db "$tmp/v9.npy" --queries "$tmp/v9.npy"
expect 2 err "the shape has a negative dimension \(-3\)" -- knn --db "$tmp/neg.npy" --queries "$tmp/neg.npy"
expect 2 err "unexpected or repeated key 'x 'descr': '<f4''" -- knn --db "$tmp/trick.npy" --queries "$tmp/trick.npy"
expect 2 err "unexpected or repeated key 'descr'" -- knn --db "$tmp/dup.npy" --queries "$tmp/dup.npy"
expect 2 err "expected a 2-D array \(rows, dim\), found 3 dimensions" -- knn --db "$tmp/3d.npy" --queries "$tmp/3d.npy"
# Size options say what is wrong with the value, not "must be > 0" for all of them.
expect 2 err "--mem-budget 'garbage': expected a non-negative whole number" -- knn --nb-txt 10 --dim 3 --nb-new 2 --mem-budget garbage
expect 2 err "--mem-budget '1.5G': expected a whole number \(no fraction: 1536M, not 1.5G\)" -- knn --nb-txt 10 --dim 3 --nb-new 2 --mem-budget 1.5G
expect 2 err "--mem-budget '12Q': unknown suffix" -- knn --nb-txt 10 --dim 3 --nb-new 2 --mem-budget 12Q
expect 2 err "--mem-budget '0': must be more than 0 bytes" -- knn --nb-txt 10 --dim 3 --nb-new 2 --mem-budget 0
# A refusal for memory suggests f32 only to an f64 search.
expect 1 err "available; use smaller sizes or --dtype f32" -- knn --nb-txt 1G --dim 1000 --nb-new 1000 --dtype f64
expect 1 err "available; use smaller sizes$" -- knn --nb-txt 1G --dim 1000 --nb-new 1000
head -c 100 /dev/urandom >"$tmp/raw.bin"
expect 2 err "must be a non-zero multiple of 12 bytes" -- knn --db "$tmp/raw.bin" --queries "$tmp/raw.bin" --raw --dim 3
# Raw rows from a pipe: read whole, sized at its end.
head -c 1200 /dev/zero >"$tmp/zero.raw"
expect 0 out 'first query: best index 0' -- knn --db <(cat "$tmp/zero.raw") --queries "$tmp/zero.raw" --raw --dim 3
expect 2 err "a raw stream of f32 rows with dim 3 must be a non-zero multiple of 12 bytes; it had 100" -- knn --db <(cat "$tmp/raw.bin") --queries "$tmp/zero.raw" --raw --dim 3
# A device or pipe that never ends is read whole through a growing buffer, at most half the memory
# available: refused with a message, where it once took the machine's memory until the kernel
# killed the process (under a ulimit here, so the test stays small; not under the sanitizers,
# which reserve terabytes of address space).
if ! "$bin" --version | grep -q 'sanitize='; then
  head -c 680 /dev/zero >"$tmp/q17.raw"
  (ulimit -v 3000000; timeout 120 "$bin" knn --db /dev/zero --queries "$tmp/q17.raw" --raw --dim 17 \
    >"$tmp/out" 2>"$tmp/err")
  got=$?
  [ "$got" -eq 1 ] && grep -q "a pipe or device is read whole into memory, and it passed half the memory available" "$tmp/err" &&
    pass=$((pass + 1)) || { echo "FAIL: --db /dev/zero -> exit $got"; sed 's/^/  err: /' "$tmp/err" | head -3; fail=$((fail + 1)); }
fi

# A --db file is searched in pieces mapped where they lie: one that another process cuts short
# during the search raises SIGBUS, which knn reports (exit 1, nothing written) where it died with
# no word. The file is cut as soon as its first piece is mapped, with more pieces to come.
head -c $((400000 * 100 * 4)) /dev/zero >"$tmp/big.raw"
head -c $((1000 * 100 * 4)) /dev/zero >"$tmp/q100.raw"
"$bin" knn --db "$tmp/big.raw" --queries "$tmp/q100.raw" --raw --dim 100 --mem-budget 32M \
  --workers 1 --out "$tmp/cut.npy" >"$tmp/out" 2>"$tmp/err" &
kpid=$!
for _ in $(seq 3000); do
  if grep -q "big.raw" "/proc/$kpid/maps" 2>/dev/null; then
    truncate -s 0 "$tmp/big.raw"
    break
  fi
  sleep 0.01
done
wait $kpid
got=$?
if [ "$got" -eq 1 ] && grep -q "big.raw was cut short by another process during the search" "$tmp/err" &&
  [ ! -e "$tmp/cut.npy" ]; then
  pass=$((pass + 1))
else
  echo "FAIL: a --db file cut short during the search -> exit $got (want 1 and a message)"
  sed 's/^/  err: /' "$tmp/err" | head -5
  fail=$((fail + 1))
fi
# A SIGBUS that another process sends is no fault of the file: its default action, no message.
head -c $((400000 * 100 * 4)) /dev/zero >"$tmp/big.raw"
"$bin" knn --db "$tmp/big.raw" --queries "$tmp/q100.raw" --raw --dim 100 --mem-budget 32M \
  --workers 1 >"$tmp/out" 2>"$tmp/err" &
kpid=$!
for _ in $(seq 3000); do
  if grep -q "big.raw" "/proc/$kpid/maps" 2>/dev/null; then
    kill -BUS $kpid
    break
  fi
  sleep 0.01
done
wait $kpid
got=$?
if [ "$got" -eq 135 ] && ! grep -q "cut short" "$tmp/err"; then
  pass=$((pass + 1))
else
  echo "FAIL: kill -BUS during a search -> exit $got (want 135, no message)"
  sed 's/^/  err: /' "$tmp/err" | head -5
  fail=$((fail + 1))
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

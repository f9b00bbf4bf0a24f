#!/usr/bin/env bash
# CLI tests of `brigade bench --suite knn`: its options, every row kind (bf16, file, the GPU
# rows with and without a GPU), skipping and refusals, --shapes, and the knn peers.
# usage: knn_suite.sh BRIGADE MYTASK_PLUGIN SCHEMA
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/setup.sh" "$@"

# The knn suite: its own options are checked, the catalogue's are refused, and a short run
# answers every case, cross-checks the backends and says what the memory wall would have cost.
expect 2 err "unknown knn backend 'seq'" -- bench --suite knn --backends seq
expect 2 err "--workload does not apply to --suite knn" -- bench --suite knn --workload sleep
expect 2 err "a list of --workers does not apply to --suite knn" -- bench --suite knn --workers 1,2
expect 2 err "apply to --suite knn only" -- bench --max-seconds 3
expect 2 err "--max-seconds 'x': expected a positive number" -- bench --suite knn --max-seconds x
expect 2 err "--mem-budget '0': must be more than 0 bytes" -- bench --suite knn --mem-budget 0
expect 2 err "unknown suite 'gpu' \(suites: catalogue, knn, overhead\)" -- bench --suite gpu
# The suite's own six cases on the cheapest backend that still runs brigade's top-k: blas
# (OpenBLAS's products), so that a sanitizer build, whose blocked kernel is ten times slower,
# does not spend minutes here; the backends are compared on small --shapes below.
one=blocked
"$bin" --version | grep -q 'blas=openblas' && one=blas
"$bin" bench --suite knn --backends $one --repeat 1 --max-seconds 1000 --format json \
  >"$tmp/k.json" && python3 "$here/validate_json.py" "$schema" "$tmp/k.json" &&
  python3 - "$tmp/k.json" <<'PY' && pass=$((pass + 1)) || { echo "FAIL: bench --suite knn"; fail=$((fail + 1)); }
import json, sys
r = json.load(open(sys.argv[1]))
assert r["suite"] == "knn"
sections = [x["section"] for x in r["rows"]]
assert len(set(sections)) == 6 and sections[-1].endswith("memory wall"), sections
assert not any(x["failed"] for x in r["rows"])
assert all(x["gflops"] > 0 for x in r["rows"])
notes = " ".join(n["text"] for n in r["notes"])
assert "CHECK FAILED" not in notes
assert "would build holds 381.5 MiB" in notes and "in a budget of 32.0 MiB" in notes, notes
PY
# --shapes: the user's cases instead of the suite's, in the order given, every backend kind
# beside the blocked one. The bf16 and file rows: answers checked like the others', the share
# re-scored and the file's budget in the plan, the file gone afterwards. A shape whose score
# matrix passes --mem-budget gets the memory-wall note; without a TMPDIR the file row is
# UNAVAILABLE.
mkdir -p "$tmp/kf"
TMPDIR="$tmp/kf" "$bin" bench --suite knn --shapes 1000x100x100,100Kx100x10,2000x100x3000 \
  --mem-budget 16M --backends blocked,auto,bf16,file --repeat 1 --max-seconds 1000 \
  --format json >"$tmp/k.json" && [ -z "$(ls -A "$tmp/kf")" ] &&
  python3 "$here/validate_json.py" "$schema" "$tmp/k.json" &&
  python3 - "$tmp/k.json" <<'PY' && pass=$((pass + 1)) || { echo "FAIL: bench --suite knn --shapes: bf16 and file rows"; fail=$((fail + 1)); }
import json, re, sys
r = json.load(open(sys.argv[1]))
sections = list(dict.fromkeys(x["section"] for x in r["rows"]))
assert sections == ["knn (1000, 100, 100)", "knn (100000, 100, 10)", "knn (2000, 100, 3000)"], sections
assert len(r["rows"]) == 12 and not any(x["failed"] or x["unavailable"] for x in r["rows"]), r["rows"]
assert all(x["gflops"] > 0 for x in r["rows"])
assert all("rescored" in x["plan"] or "ran exact" in x["plan"] for x in r["rows"] if x["backend"] == "bf16")
assert all(x["plan"].startswith("from file, budget") for x in r["rows"] if x["backend"] == "file")
notes = {}
for n in r["notes"]:
    notes.setdefault(n["section"], []).append(n["text"])
text = " ".join(" ".join(v) for v in notes.values())
assert "CHECK FAILED" not in text, text
assert re.search(r"brigade's CPU kernels ran on (AVX-512|AVX2|portable) \(exact\)", text), text
assert any("file searched the database from a 38.1 MiB .npy file within a 16.0 MiB budget" in t
           for t in notes["knn (100000, 100, 10)"]), notes
wall = [t for t in notes["knn (2000, 100, 3000)"] if "would build holds 22.9 MiB" in t]
assert wall and "in a budget of 16.0 MiB" in wall[0], notes
assert not any("would build" in t for t in notes["knn (1000, 100, 100)"]), notes
PY
TMPDIR=/nonexistent expect 0 out 'file not run: cannot create the database file in /nonexistent' -- bench --suite knn --shapes 1000x100x100 --backends blocked,file --repeat 1 --max-seconds 1000
expect 2 err "--shapes '100x10': expected DBxDIMxQUERIES, e.g. 100000x100x1000" -- bench --suite knn --shapes 100x10
expect 2 err "--shapes '100x10x5x2': the queries '5x2': unknown suffix" -- bench --suite knn --shapes 100x10x5x2
expect 2 err "--shapes '0x10x5': the database vectors '0': number too small" -- bench --suite knn --shapes 0x10x5
expect 2 err "--shapes '10xx5': the dimension '': " -- bench --suite knn --shapes 10xx5
expect 2 err "--shapes '10x1.5x5': the dimension '1.5'" -- bench --suite knn --shapes 1x1x1,10x1.5x5
expect 2 err "--shapes '1x1x1,,2x2x2': expected names separated by commas" -- bench --suite knn --shapes 1x1x1,,2x2x2
expect 2 err "--shapes: at most 16 shapes in one run" -- bench --suite knn --shapes "$(printf '1x1x1,%.0s' $(seq 16))1x1x1"
expect 2 err "--shapes, --max-seconds and --mem-budget apply to --suite knn only" -- bench --shapes 1x1x1
# Rows predicted to run past --max-seconds are skipped with their prediction; the first case has
# no prediction, so it always runs.
"$bin" bench --suite knn --backends naive,blocked --repeat 1 --max-seconds 0.000001 --format json \
  >"$tmp/k.json" && python3 - "$tmp/k.json" <<'PY' && pass=$((pass + 1)) || { echo "FAIL: knn --max-seconds"; fail=$((fail + 1)); }
import json, sys
r = json.load(open(sys.argv[1]))
assert {x["section"] for x in r["rows"]} == {"knn (1000, 100, 100)"}, r["rows"]
notes = [n["text"] for n in r["notes"]]
assert sum(t.startswith("naive skipped: predicted") for t in notes) == 5, notes
assert sum(t.startswith("blocked skipped: predicted") for t in notes) == 5, notes
PY
# A budget too small for any plan fails each row with the memory it would need (exit 1).
expect 1 out "blocked failed: the search needs at least .* beyond its inputs" -- \
  bench --suite knn --backends blocked --repeat 1 --mem-budget 1K
# The GPU rows: cuda and cublas-sgemm are accepted everywhere. Without a GPU (or CUDA in the
# build) each case lists them UNAVAILABLE with the reason in a note, not FAILED, and the CPU rows
# still make the run succeed; with one, cuBLAS's bare product reports its device and upload time.
knn_gpu="bench --suite knn --size quick --backends blocked,cuda,cublas-sgemm --repeat 1"
if "$bin" info | grep -q '^  No GPU detected'; then
  expect 0 out '^cuda +[0-9]+ +- .* UNAVAILABLE$' -- $knn_gpu
  grep -Eq '^cublas-sgemm +[0-9]+ +- .* UNAVAILABLE$' "$tmp/out" &&
    grep -Eq '^blocked +[0-9]+ +[0-9.]+ (us|ms|s) ' "$tmp/out" && ! grep -q 'FAILED' "$tmp/out" &&
    pass=$((pass + 1)) || { echo "FAIL: knn GPU rows without a GPU (table)"; sed 's/^/  /' "$tmp/out"; fail=$((fail + 1)); }
  "$bin" $knn_gpu --format json --out "$tmp/kg.json" &&
    python3 "$here/validate_json.py" "$schema" "$tmp/kg.json" &&
    python3 - "$tmp/kg.json" <<'PY' && pass=$((pass + 1)) || { echo "FAIL: knn GPU rows without a GPU (JSON)"; fail=$((fail + 1)); }
import json, re, sys
r = json.load(open(sys.argv[1]))
rows = {}
for x in r["rows"]:
    rows.setdefault(x["backend"], []).append(x)
assert rows["blocked"] and all(x["gflops"] > 0 and not x["failed"] for x in rows["blocked"]), rows
for b in ("cuda", "cublas-sgemm"):
    assert len(rows[b]) == 6, (b, rows.get(b))
    assert all(x["unavailable"] and not x["failed"] and x["median_s"] == 0 for x in rows[b]), rows[b]
    why = [n for n in r["notes"] if re.match(b + r" not run: (No GPU detected \(.+\)|this build has no CUDA)", n["text"])]
    assert {n["section"] for n in why} == {x["section"] for x in rows[b]}, (b, r["notes"])
PY
else
  # With one, every case runs on the GPU and answers as the CPU does; the quick memory wall's
  # 32 MiB budget cannot hold cuBLAS's workspace, so cuda runs within the device's and says so.
  "$bin" $knn_gpu --max-seconds 1000 --format json --out "$tmp/kg.json" &&
    python3 "$here/validate_json.py" "$schema" "$tmp/kg.json" &&
    python3 - "$tmp/kg.json" <<'PY' && pass=$((pass + 1)) || { echo "FAIL: knn GPU rows with a GPU"; cat "$tmp/kg.json"; fail=$((fail + 1)); }
import json, sys
r = json.load(open(sys.argv[1]))
cub = [x for x in r["rows"] if x["backend"] == "cublas-sgemm"]
assert len(cub) == 6 and all(x["gemm_s"] > 0 and x["h2d_s"] > 0 and not x["failed"] for x in cub), cub
cuda = [x for x in r["rows"] if x["backend"] == "cuda"]
assert len(cuda) == 6 and all(x["gflops"] > 0 and not x["failed"] for x in cuda), cuda
notes = " ".join(n["text"] for n in r["notes"])
assert "CHECK FAILED" not in notes, notes
assert "cuda ran within the GPU's own memory, not the case's 32.0 MiB budget" in notes, notes
PY
  # A budget the user gives is kept: too small for the GPU, the cuda row fails and says why.
  expect 1 out 'cuda failed: the search needs at least .* beyond its inputs' -- \
    bench --suite knn --shapes 1000x100x100 --backends blocked,cuda --repeat 1 --mem-budget 1M
fi

# knn peers: the fake numpy answers the smallest case right (checked against brigade's answer)
# and fails the others as NumPy does at the memory wall; the fake torch answers wrong; faiss
# writes no answer (and a stray file). Their files live in a private folder under TMPDIR that is
# removed afterwards, whatever the peers left in it.
fake="$here/peers"
mkdir -p "$tmp/knntmp"
TMPDIR="$tmp/knntmp" expect 0 out '^py:numpy +[0-9]+ +1 ms' -- bench --suite knn --backends blocked --repeat 1 --peers python --peers-dir "$fake/ok"
grep -Eq '^py:numpy .* FAILED$' "$tmp/out" && grep -q 'py:numpy failed: MemoryError: Unable to allocate (fake)' "$tmp/out" &&
  grep -q 'CHECK FAILED on py:torch' "$tmp/out" && ! grep -q 'CHECK FAILED on py:numpy' "$tmp/out" &&
  grep -Eq '^py:faiss .* FAILED$' "$tmp/out" && grep -q 'py:faiss wrote no readable answer' "$tmp/out" &&
  grep -Eq 'the best Python approach \(py:numpy, [0-9]+ workers\) 0.001 s' "$tmp/out" &&
  grep -Eq '^blocked .* [0-9.]+x +[0-9.]+ +blocked' "$tmp/out" && [ -z "$(ls -A "$tmp/knntmp")" ] &&
  pass=$((pass + 1)) || { echo "FAIL: knn peer rows, checks and notes"; sed 's/^/  /' "$tmp/out"; fail=$((fail + 1)); }
"$bin" bench --suite knn --backends blocked --repeat 1 --peers python --peers-dir "$fake/ok" --format json >"$tmp/kp.json" &&
  python3 "$here/validate_json.py" "$schema" "$tmp/kp.json" && pass=$((pass + 1)) ||
  { echo "FAIL: knn peer rows in JSON"; fail=$((fail + 1)); }
expect 0 out "py:numpy's process was killed by signal 9 \(SIGKILL" -- bench --suite knn --backends blocked --repeat 1 --peers python --peers-dir "$fake/crash"
TMPDIR=/nonexistent expect 0 out 'Python peers not run: cannot create a folder for their inputs in /nonexistent' -- bench --suite knn --backends blocked --repeat 1 --peers python --peers-dir "$fake/ok"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

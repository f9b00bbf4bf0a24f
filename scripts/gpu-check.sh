#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The one prepared check for a lent GPU machine (one GPU, 16 cores, about 8 minutes, no network):
# shows the GPU, builds what the GPU code needs for this GPU's architecture alone, runs the GPU
# and knn tests, then the knn suite with the cuda and cublas-sgemm rows, and writes every log to
# one folder. Each stage runs under `timeout`, so one that hangs costs its own limit and not the
# whole budget; a stage that fails does not stop the later ones, and the exit status is non-zero
# when any failed. Run from the repository root:
#
#   scripts/gpu-check.sh              # on the GPU machine; logs in ${OUT:-gpu-check-out}
#   scripts/gpu-check.sh --dry-run    # anywhere: no GPU needed, the GPU tests report skipped,
#                                     # and the bench runs its quick sizes (a minute or two)
#   scripts/gpu-check.sh --prebuilt DIR   # no build: the programs of scripts/gpu-bundle.sh,
#                                     # unpacked in DIR, for a GPU machine without hwloc,
#                                     # OpenBLAS or cmocka to build with (a lent one has none)
#
# BG_GPU_CHECK_ALLOW_NO_GPU=1 is the same as --dry-run. BG_GPU_CHECK_BUILD (default build-gpu)
# and BG_GPU_CHECK_JOBS (default 16, or the CPUs here in a dry run) change the build.
set -u

dry=${BG_GPU_CHECK_ALLOW_NO_GPU:-0}
pre=
while [ $# -gt 0 ]; do
  case $1 in
  --dry-run) dry=1 ;;
  --prebuilt)
    [ $# -ge 2 ] || {
      echo "gpu-check: --prebuilt needs the folder scripts/gpu-bundle.sh's archive unpacks to" >&2
      exit 2
    }
    pre=$2
    shift
    ;;
  -h | --help)
    sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "gpu-check: unknown argument '$1' (--dry-run, --prebuilt DIR, --help)" >&2
    exit 2
    ;;
  esac
  shift
done
if [ -n "$pre" ] && [ ! -x "$pre/bin/brigade" ]; then
  echo "gpu-check: --prebuilt '$pre': no bin/brigade in it (make it with scripts/gpu-bundle.sh" \
    "and unpack it there)" >&2
  exit 2
fi

if [ ! -f CMakeLists.txt ] || [ ! -d src/gpu ]; then
  echo "gpu-check: run it from the repository root (scripts/gpu-check.sh)" >&2
  exit 2
fi
out=${OUT:-gpu-check-out}
build=${BG_GPU_CHECK_BUILD:-build-gpu}
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)

# Seconds each stage may take. They add up to 570 s (375 s with --prebuilt, which neither
# configures nor builds), inside a lent machine's 15 minutes with room for its own start. The
# build is the largest: a cold build of the library, the CLI and the tests, with nvcc compiling
# for one architecture.
t_gpu=20 t_configure=45 t_build=150 t_info=25 t_test_gpu=75 t_test_knn=45 t_cli=120 t_bench=90

names=() states=() times=()
desc=
failed=0

# stage NAME LIMIT COMMAND...: runs the command under timeout, its output both shown and kept in
# $out/NAME.log, and records ok, failed (exit N) or timed out (after LIMIT s).
stage() {
  local name=$1 limit=$2
  shift 2
  local log="$out/$name.log" t0 t1 rc state
  printf '\n===== %s (at most %s s): %s\n' "$name" "$limit" "${desc:-$*}"
  desc=
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  t1=$(date +%s)
  case $rc in
  0) state=ok ;;
  124 | 137) state="timed out after ${limit} s" ;;
  *) state="failed (exit $rc)" ;;
  esac
  if [ "$rc" -eq 0 ] && grep -q '\*\*\*Skipped' "$log"; then
    state="ok, $(grep -c '\*\*\*Skipped' "$log") test(s) skipped (no GPU)"
  fi
  [ "$rc" -ne 0 ] && failed=1
  names+=("$name") states+=("$state") times+=("$((t1 - t0))")
  return "$rc"
}

# fn_stage NAME LIMIT FUNCTION ARGS...: a stage whose command is a function of this script.
fn_stage() {
  local name=$1 limit=$2 fn=$3
  shift 3
  desc="$fn $*"
  stage "$name" "$limit" bash -c "$(declare -f "$fn"); $fn"' "$@"' _ "$@"
}

skip() { # NAME WHY
  names+=("$1") states+=("skipped: $2") times+=(0)
  printf '\n===== %s: skipped: %s\n' "$1" "$2"
}

summary() {
  printf '\n===== summary (logs in %s)\n' "$out"
  for i in "${!names[@]}"; do
    printf '  %-10s %4s s  %s\n' "${names[$i]}" "${times[$i]}" "${states[$i]}"
  done | tee "$out/summary.txt"
}

# --- the GPU: what nvidia-smi sees, and its compute capability for the build ------------------
gpu_probe() {
  command -v nvidia-smi >/dev/null || {
    echo "no nvidia-smi on PATH: no NVIDIA driver on this machine"
    return 1
  }
  nvidia-smi || {
    echo "nvidia-smi failed: no GPU visible, or the driver is not loaded"
    return 1
  }
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv
}
have_gpu=1
fn_stage gpu "$t_gpu" gpu_probe || have_gpu=0
if [ "$have_gpu" -eq 0 ]; then
  if [ "$dry" != 1 ]; then
    echo "gpu-check: no GPU here (see $out/gpu.log). This check is for a machine with one;" \
      "run it with --dry-run (or BG_GPU_CHECK_ALLOW_NO_GPU=1) to exercise the stages without" \
      "one." >&2
    summary
    exit 1
  fi
  # A dry run: the stages run, and their GPU tests skip (exit 77) as on any machine without one.
  states[0]="no GPU (dry run: the GPU tests will skip)"
  failed=0
fi
arch=90
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')
if [[ $cap =~ ^([0-9]+)\.([0-9]+)$ ]]; then
  arch="${BASH_REMATCH[1]}${BASH_REMATCH[2]}"
fi
echo "CUDA architecture: $arch (compute capability '${cap:-unknown}'; 90 when unknown)"

# --- prebuilt: the bundle's libraries, and the machine's own cuBLAS, which brigade loads by name --
if [ -n "$pre" ]; then
  pre=$(cd "$pre" && pwd)
  major=$(sed -n 's/.*cuda=\([0-9]*\)\..*/\1/p' "$pre/VERSION" 2>/dev/null)
  cublas=$(ldconfig -p 2>/dev/null | awk -v n="libcublas.so.${major:-13}" '$1 == n { print $NF; exit }')
  [ -n "$cublas" ] || cublas=$(find /usr/local /usr/lib /opt -name "libcublas.so.${major:-13}" \
    2>/dev/null | head -n 1)
  echo "prebuilt: $(cat "$pre/VERSION" 2>/dev/null); cuBLAS: ${cublas:-not found}"
  export LD_LIBRARY_PATH="$pre/lib${cublas:+:$(dirname "$cublas")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# --- configure and build only what the checks run ----------------------------------------------
jobs=${BG_GPU_CHECK_JOBS:-16}
if [ "$dry" = 1 ] && [ -z "${BG_GPU_CHECK_JOBS:-}" ]; then
  jobs=$(nproc)
fi
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
built=0
if [ -n "$pre" ]; then
  skip configure "prebuilt in $pre"
  skip build "prebuilt in $pre"
  built=1
elif stage configure "$t_configure" cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DBRIGADE_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES="$arch"; then
  # The tests the later stages run (labelled gpu, or named test_knn* or test_gpu*), as far as
  # they are targets of this tree (test_gpu_plan may not exist yet), and the CLI.
  targets=(brigade_cli mytask)
  tests=$( (ctest --test-dir "$build" -N -L gpu &&
    ctest --test-dir "$build" -N -R 'test_knn|test_gpu') |
    sed -n 's/^ *Test *#[0-9]*: *\([A-Za-z0-9_]*\)$/\1/p' | sort -u)
  have=$(cmake --build "$build" --target help 2>/dev/null)
  for t in $tests; do
    if grep -Eq "^(\.\.\. )?$t(:| |$)" <<<"$have"; then
      targets+=("$t")
    fi
  done
  echo "targets: ${targets[*]}"
  stage build "$t_build" cmake --build "$build" -j "$jobs" --target "${targets[@]}" && built=1
else
  skip build "configure failed"
fi

# --- brigade info: the GPU's name, SMs, memory and measured copy bandwidth ---------------------
bin="$build/brigade" mytask="$build/libmytask.so"
[ -n "$pre" ] && bin="$pre/bin/brigade" mytask="$pre/lib/libmytask.so"
info_check() { # BIN OUT DRY
  "$1" info || return 1
  "$1" info --json >"$2/info.json" || return 1
  command -v python3 >/dev/null || {
    echo "(no python3: info.json not checked)"
    return 0
  }
  python3 - "$2/info.json" "$3" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["gpu"]
print("info --json gpu:", g)
if sys.argv[2] != "1":
    assert g["detected"], "brigade finds no GPU where nvidia-smi does"
    assert g["sm_count"] > 0, g
    assert g["h2d_gbps"] and g["h2d_gbps"] > 0 and g["d2h_gbps"] > 0, g
PY
}
if [ "$built" = 1 ]; then
  fn_stage info "$t_info" info_check "$bin" "$out" "$dry"
else
  skip info "no build"
fi

# --- the tests ---------------------------------------------------------------------------------
# -L gpu first, then the knn and GPU unit tests it did not already run (-LE gpu), so no test
# runs twice in the budget.
# The bundle's tests run as programs (no CTest files travel); 77 is a skip, as for CTest.
run_tests() { # DIR TEST...
  local dir=$1 t rc failed=0
  shift
  for t in "$@"; do
    echo "--- $t"
    "$dir/$t"
    rc=$?
    case $rc in
    0) echo "--- $t: passed" ;;
    77) echo "--- $t: ***Skipped" ;;
    *) echo "--- $t: FAILED (exit $rc)" && failed=1 ;;
    esac
  done
  return "$failed"
}
if [ -n "$pre" ]; then
  fn_stage test-gpu "$t_test_gpu" run_tests "$pre/tests" test_gpu_knn
  fn_stage test-knn "$t_test_knn" run_tests "$pre/tests" test_gpu_plan test_knn test_knn_stream \
    test_knn_bf16 test_knn_bits
elif [ "$built" = 1 ]; then
  stage test-gpu "$t_test_gpu" ctest --test-dir "$build" -L gpu --output-on-failure
  stage test-knn "$t_test_knn" ctest --test-dir "$build" -R 'test_knn|test_gpu' -LE gpu \
    --output-on-failure
else
  skip test-gpu "no build"
  skip test-knn "no build"
fi

# --- the CLI tests of the knn suite: with a GPU, its cuda and cublas-sgemm rows run -------------
if [ "$built" = 1 ]; then
  stage cli "$t_cli" tests/cli/knn_suite.sh "$bin" "$mytask" docs/bench-schema.json
else
  skip cli "no build"
fi

# --- the knn suite with the GPU rows -----------------------------------------------------------
# The lecture's sizes on the GPU machine (quick ones in a dry run, which has no GPU to measure).
# --max-seconds keeps a CPU row that would be predicted to run for minutes from eating the
# budget; it is skipped with its prediction in the notes instead.
bench_check() { # BIN OUT SIZE DRY
  "$1" bench --suite knn --size "$3" --backends blocked,cuda,cublas-sgemm --repeat 1 \
    --max-seconds 20 --format json --out "$2/bench-knn.json"
  local rc=$?
  if [ ! -s "$2/bench-knn.json" ]; then
    # Stopped by a signal (the stage's timeout), the bench prints what finished to standard
    # output, which is in bench.log, and leaves --out alone.
    echo "no $2/bench-knn.json: the bench did not finish (exit $rc); bench.log has its rows"
    return "$((rc ? rc : 1))"
  fi
  command -v python3 >/dev/null || return "$rc"
  python3 tests/cli/validate_json.py docs/bench-schema.json "$2/bench-knn.json" || rc=1
  python3 - "$2/bench-knn.json" "$4" <<'PY' || rc=1
import json, sys
r = json.load(open(sys.argv[1]))
section = None
for x in r["rows"]:
    if x["section"] != section:
        section = x["section"]
        print(f"\n== {section} ==")
        print(f"{'backend':12} {'median s':>10} {'GFLOP/s':>9} {'h2d s':>8} {'gemm s':>8} "
              f"{'select s':>8} {'d2h s':>8}  plan")
    mark = " FAILED" if x["failed"] else " UNAVAILABLE" if x["unavailable"] else ""
    print(f"{x['backend']:12} {x['median_s']:10.4f} {x['gflops']:9.1f} {x['h2d_s']:8.4f} "
          f"{x['gemm_s']:8.4f} {x['select_s']:8.4f} {x['d2h_s']:8.4f}  {x['plan']}{mark}")
print()
for n in r["notes"]:
    print(f"  [{n['section'] or 'run'}] {n['text']}")
bad = [n["text"] for n in r["notes"] if "CHECK FAILED" in n["text"]]
gpu_missing = [x for x in r["rows"] if x["unavailable"]]
if bad:
    sys.exit("wrong answers: " + "; ".join(bad))
if sys.argv[2] != "1" and gpu_missing:
    sys.exit(f"{len(gpu_missing)} GPU rows were UNAVAILABLE on a machine with a GPU")
PY
  return "$rc"
}
if [ "$built" = 1 ]; then
  size=lecture
  [ "$dry" = 1 ] && size=quick
  fn_stage bench "$t_bench" bench_check "$bin" "$out" "$size" "$dry"
else
  skip bench "no build"
fi

summary
if [ "$failed" -ne 0 ]; then
  echo "gpu-check: FAILED (a stage above failed; its log is in $out)"
  exit 1
fi
echo "gpu-check: ok"

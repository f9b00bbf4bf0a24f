#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A database larger than the memory the process may use (issue 20): `brigade knn --db` in a
# memory cgroup of 64 MiB searches a 160 MB .npy file, read in pieces, with the same answers as
# the search without the limit and a peak resident set within the budget plus the queries and
# results. Before pieces, the file was refused ("does not fit in the bytes available") or the
# process killed. The test creates the cgroup under its own (v2 memory.max or v1
# memory.limit_in_bytes); where it cannot (no memory controller, no permission) it skips (77).
# Usage: outofcore.sh BRIGADE
bin=$1
tmp=$(mktemp -d)
cg=
cleanup() {
  [ -n "$cg" ] && [ -d "$cg" ] && rmdir "$cg" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

limit=$((64 << 20))
# The memory cgroup this process is in, v2 first, then v1, and a child of it we may limit.
v2=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
v1=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
for cand in "v2:/sys/fs/cgroup$v2" "v2:/sys/fs/cgroup/unified$v2" "v1:/sys/fs/cgroup/memory$v1"; do
  kind=${cand%%:*} dir=${cand#*:}
  file=memory.max
  [ "$kind" = v1 ] && file=memory.limit_in_bytes
  [ "$kind" = v1 ] && [ -z "$v1" ] && continue
  [ -d "$dir" ] || continue
  if [ "$kind" = v2 ] && ! grep -qw memory "$dir/cgroup.controllers" 2>/dev/null; then
    continue
  fi
  try="$dir/brigade_ooc_$$"
  if mkdir "$try" 2>/dev/null; then
    if [ -e "$try/$file" ] && echo "$limit" >"$try/$file" 2>/dev/null; then
      cg=$try
      break
    fi
    rmdir "$try" 2>/dev/null
  fi
done
if [ -z "$cg" ]; then
  echo "skipped: no memory cgroup this test may create and limit here"
  exit 77
fi
# NumPy from Debian may sit beside another python3 on the PATH that lacks it.
npy=
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import numpy' 2>/dev/null; then npy=$py && break; fi
done
if [ -z "$npy" ]; then
  echo "skipped: no python3 with numpy to write the test's files"
  exit 77
fi

# 400,000 x 100 float32 (160 MB, 2.5 times the limit) and 200 queries.
"$npy" - "$tmp" <<'PY' || exit 1
import sys
import numpy as np
r = np.random.default_rng(7)
np.save(f"{sys.argv[1]}/db.npy", r.random((400000, 100), dtype=np.float32))
np.save(f"{sys.argv[1]}/q.npy", r.random((200, 100), dtype=np.float32))
PY

pass=0 fail=0
check() { # check NAME CONDITION-EXIT-STATUS
  if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else
    echo "FAIL: $1"
    sed 's/^/  /' "$tmp/log" | head -20
    fail=$((fail + 1))
  fi
}

# The answer without a limit.
"$bin" knn --db "$tmp/db.npy" --queries "$tmp/q.npy" --k 3 --out "$tmp/free.npy" >"$tmp/log" 2>&1
check "the search without a limit" $?

# The same search inside the cgroup: the default budget (half of what the cgroup leaves) and an
# explicit one of 16 MiB.
for budget in "" 16M; do
  opt=()
  [ -n "$budget" ] && opt=(--mem-budget "$budget")
  (
    echo "$BASHPID" >"$cg/cgroup.procs" || exit 3
    exec "$bin" knn --db "$tmp/db.npy" --queries "$tmp/q.npy" --k 3 --out "$tmp/cg.npy" "${opt[@]}"
  ) >"$tmp/log" 2>&1
  rc=$?
  check "a 160 MB database in a 64 MiB cgroup (budget ${budget:-default}): exit $rc" $rc
  cmp -s "$tmp/free.npy" "$tmp/cg.npy"
  check "the answers in the cgroup equal those without a limit (budget ${budget:-default})" $?
  # Peak resident memory within the budget planned, the queries (80 kB), the results and the
  # program itself (measured below with a search of one row).
  peak=$(sed -n 's/.*peak memory \([0-9.]*\) MiB.*/\1/p' "$tmp/log")
  planned=$(sed -n 's/.* \([0-9.]*\) MiB planned (budget.*/\1/p' "$tmp/log")
  "$bin" knn --nb-txt 10 --dim 100 --nb-new 1 >"$tmp/base" 2>&1
  base=$(sed -n 's/.*peak memory \([0-9.]*\) MiB.*/\1/p' "$tmp/base")
  "$npy" -c "import sys; p, pl, b = map(float, sys.argv[1:]); sys.exit(0 if p <= b + pl + 8 else 1)" \
    "${peak:-9999}" "${planned:-0}" "${base:-0}"
  check "peak ${peak:-?} MiB within the program's ${base:-?} MiB + ${planned:-?} MiB planned + 8 (budget ${budget:-default})" $?
done

# Under mpirun each rank reads only its slice of the file, piece by piece: the answer is the same.
if command -v mpirun >/dev/null; then
  # Under ASan, Open MPI's allocations held at exit read as leaks (see tests/mpi/run.sh).
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
    mpirun --bind-to none -np 3 "$bin" knn --db "$tmp/db.npy" --queries "$tmp/q.npy" --k 3 \
    --mem-budget 8M --out "$tmp/mpi.npy" >"$tmp/log" 2>&1 &&
    grep -q 'distributed: 3 ranks' "$tmp/log" && cmp -s "$tmp/free.npy" "$tmp/mpi.npy"
  check "3 ranks reading their slices in pieces answer as one process" $?
fi

echo "out of core: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

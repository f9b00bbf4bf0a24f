#!/bin/sh
# A rank dies during a map: the job must fail (non-zero) and end well before the timeout, not
# hang. Open MPI aborts the surviving ranks; mpirun --timeout would end a hang with 110.
prog=$1 ranks=$2
command -v mpirun >/dev/null 2>&1 || { echo "mpirun not found: skipped"; exit 77; }
[ -x "$prog" ] || { echo "$prog not built: skipped"; exit 77; }
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
start=$(date +%s)
mpirun --timeout 60 --bind-to none -np "$ranks" "$prog"
rc=$?
took=$(( $(date +%s) - start ))
echo "mpirun exit $rc after ${took}s"
[ "$rc" -ne 0 ] && [ "$rc" -ne 110 ] && [ "$took" -lt 50 ]

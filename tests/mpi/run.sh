#!/bin/sh
# Runs an MPI test program under mpirun with N ranks on this one machine. Skips (exit 77) when
# mpirun or the program is absent. The environment lets Open MPI run as root (CI containers)
# and start more ranks than cores (2 and 4 ranks on a 2-core machine); see FIELD-NOTES.
prog=$1 ranks=$2
command -v mpirun >/dev/null 2>&1 || { echo "mpirun not found: skipped (scripts/bootstrap.sh installs openmpi-bin)"; exit 77; }
[ -x "$prog" ] || { echo "$prog not built (no MPI at configure time): skipped"; exit 77; }
# Under ASan, Open MPI's own allocations still held at exit are reported as leaks through frames
# LeakSanitizer cannot symbolise, so leak checking is off here (memory errors are still caught).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Each rank runs 2 threads: unbound, or Open MPI would pin both to one core.
exec mpirun --timeout 240 --bind-to none -np "$ranks" "$prog"

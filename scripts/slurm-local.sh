#!/usr/bin/env bash
# A single-node Slurm on this machine, for `make test-slurm`: munge, then slurmctld and slurmd
# with a configuration of their own in DIR (nothing under /etc/slurm is touched). Root only:
# the daemons run as root here.
#   scripts/slurm-local.sh start DIR   start them (again, if they run already) and wait for the node
#   scripts/slurm-local.sh stop DIR    stop them
# Afterwards, export SLURM_CONF=DIR/slurm.conf for sbatch, squeue and scancel.
set -eu
cmd=${1:-} dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: scripts/slurm-local.sh start|stop DIR" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-local: run as root (the local Slurm daemons run as root)" >&2
  exit 1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export SLURM_CONF="$dir/slurm.conf"
stop() {
  for d in slurmd slurmctld; do
    [ -e "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
    rm -f "$dir/$d.pid"
  done
  sleep 1
}
if [ "$cmd" = stop ]; then
  stop
  exit 0
fi
[ "$cmd" = start ] || { echo "slurm-local: unknown command '$cmd' (start, stop)" >&2; exit 2; }
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" >/dev/null || {
    echo "slurm-local: no $tool; install Slurm with scripts/bootstrap.sh --slurm" >&2
    exit 1
  }
done
stop
host=$(hostname -s)
mkdir -p "$dir/ctld" "$dir/d"
cat >"$SLURM_CONF" <<CONF
ClusterName=brigade
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge
  chown munge:munge /run/munge 2>/dev/null || true
  [ -e /etc/munge/munge.key ] || mungekey --create 2>/dev/null || create-munge-key 2>/dev/null
  su -s /bin/sh munge -c munged 2>/dev/null || munged --force
fi
slurmctld
slurmd
for ((i = 0; i < 30; i++)); do
  if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
    echo "slurm-local: node $host idle; export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "slurm-local: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
exit 1

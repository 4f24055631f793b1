#!/usr/bin/env bash
# Runs `metaspin sweep bench/sweeps/slurm_4jobs.toml` (4 jobs: 2 values × 2 seeds, one SLURM job array)
# through a real single-node SLURM on this machine: installs Debian's slurm-wlm and munge if missing,
# writes a one-node slurm.conf (this host, its CPUs and memory, partition "debug", no accounting
# database), starts munged, slurmctld and slurmd, runs the sweep, aggregates it, and stops the daemons.
# Needs root (it writes /etc/slurm and starts daemons). Prints the wall time of the sweep.
#
#   sudo bash bench/slurm_sweep.sh [OUT]        (OUT default: runs/slurm-sweep)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/slurm-sweep}
[ "$(id -u)" = 0 ] || { echo "slurm_sweep.sh: needs root (configures and starts SLURM)" >&2; exit 2; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
fi
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=metaspin-bench
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
chown munge:munge /run/munge /etc/munge/munge.key 2>/dev/null || true
stop() { pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x munged || true; sleep 2; }
stop                                        # a fresh cluster: no daemons, no jobs from an earlier run
runuser -u munge -- munged
slurmctld -c                                # -c: clear the saved state (jobs of an earlier run)
slurmd
trap stop EXIT
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo
start=$(date +%s.%N)
.venv/bin/metaspin sweep bench/sweeps/slurm_4jobs.toml --out "$OUT" --wait
end=$(date +%s.%N)
.venv/bin/metaspin sweep bench/sweeps/slurm_4jobs.toml --out "$OUT" --aggregate
printf 'slurm_sweep.sh: 4 jobs through SLURM in %.1f s wall (array parallelism 2, %s CPUs)\n' \
  "$(echo "$end - $start" | bc)" "$CPUS"

#!/usr/bin/env bash
# Starts a one-node Slurm cluster on localhost, for the Slurm executor's
# end-to-end tests (test/slurm.e2e.test.ts) and bench/slurm.ts: Debian's
# slurm-wlm and munge, installed when missing, run as root without systemd or
# cgroups (proctrack/linuxproc, task/none) and without accounting, so job
# states come from squeue; MinJobAge keeps finished jobs visible there for an
# hour. Idempotent: a cluster that already answers is left as it is. Needs
# root. About 10 s (plus the install, once).
#
#   bash scripts/start-slurm.sh          start (or check) the cluster
#   bash scripts/start-slurm.sh stop     stop its daemons
set -euo pipefail

conf_dir=/etc/slurm
state=/var/spool/salgrid-slurm
logs=/var/log/salgrid-slurm

if [ "${1:-}" = stop ]; then
  pkill -x slurmd || true
  pkill -x slurmctld || true
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "start-slurm.sh: needs root (it installs packages and starts slurmctld, slurmd and munged)." >&2
  exit 1
fi

if scontrol ping 2>/dev/null | grep -q 'is UP' && sinfo --noheader --format=%T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  echo "slurm: already running on $(hostname -s)"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# munge authenticates every Slurm message; its key must exist and be private to the munge user.
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  # --force: a stale socket from a killed munged does not stop it.
  runuser -u munge -- munged --force
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

host=$(hostname -s)
cpus=$(nproc)
# Leave the node some memory of its own; Slurm refuses a node that reports less than RealMemory.
mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
mkdir -p "$conf_dir" "$state/ctld" "$state/d" "$logs"
cat > "$conf_dir/slurm.conf" <<EOF
# Written by salgrid's scripts/start-slurm.sh: a one-node test cluster.
ClusterName=salgrid-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job asks for the whole node's memory and runs alone.
DefMemPerCPU=512
ReturnToService=2
MinJobAge=3600
MaxJobCount=100000
SchedulerParameters=defer_batch
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF

pkill -x slurmd || true
pkill -x slurmctld || true
sleep 0.5
# -c: a clean start, without the job state a previous cluster saved.
slurmctld -c
for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.2; done
slurmd
for _ in $(seq 1 150); do
  if sinfo --noheader --format=%T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm: one-node cluster up on $host ($cpus CPUs, ${mem_mb} MB), partition debug"
    exit 0
  fi
  sleep 0.2
done
echo "start-slurm.sh: the cluster did not come up; see $logs/slurmctld.log and $logs/slurmd.log" >&2
sinfo >&2 || true
exit 1

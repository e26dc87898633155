#!/usr/bin/env bash
# Start or stop a single-node SLURM cluster on this machine for the integration test.
# Usage: cluster.sh start|stop. Needs root and Debian's slurm-wlm and munge packages.
# The daemons run in the foreground of nothing: they are started directly (no systemd).
set -euo pipefail
action=${1:?usage: cluster.sh start|stop}
state=${NFWS_SLURM_STATE:-/tmp/nfws-slurm}
conf=/etc/slurm/slurm.conf   # job steps drop SLURM_CONF, so the config must live here

stop() {
  for pidfile in "$state"/slurmd.pid "$state"/slurmctld.pid "$state"/munged.pid; do
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
}

if [ "$action" = stop ]; then stop; exit 0; fi
[ "$action" = start ] || { echo "cluster.sh: unknown action $action" >&2; exit 2; }

stop
mkdir -p "$state"/spool/ctld "$state"/spool/d /etc/slurm /run/munge /var/log/munge /etc/munge
# munge: a fresh key owned by the munge user
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
if ! munge -n >/dev/null 2>&1; then
  sudo_munge() { if id munge >/dev/null 2>&1; then su -s /bin/sh munge -c "$*"; else sh -c "$*"; fi; }
  sudo_munge "/usr/sbin/munged --pid-file=$state/munged.pid" || /usr/sbin/munged --force
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
fi
munge -n | unmunge >/dev/null

read -r cpus mem < <(slurmd -C | awk '/^NodeName/ {for (i=1;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}; print v["CPUs"], v["RealMemory"]}')
host=$(hostname -s)
cat > "$conf" <<CONF
ClusterName=nfws
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
ReturnToService=2
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
InactiveLimit=0
KillWait=5
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
/usr/sbin/slurmctld -c
/usr/sbin/slurmd -c
for _ in $(seq 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    sinfo; exit 0
  fi
  sleep 1
done
echo "cluster.sh: node did not become idle" >&2
sinfo >&2 || true
tail -20 "$state"/slurmctld.log "$state"/slurmd.log >&2 || true
exit 1

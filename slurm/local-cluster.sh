#!/usr/bin/env bash
# Starts (or stops) a one-node SLURM cluster on this machine for tests and local use, following
# the checked recipe in slurm/README.md. Needs root, munge and slurm-wlm (scripts/install-deps.sh).
# Usage: slurm/local-cluster.sh start RUN_DIR | stop RUN_DIR
set -euo pipefail
cmd=$1 RUN=$2
case "$cmd" in
start)
  mkdir -p "$RUN"/state "$RUN"/spool "$RUN"/log /run/munge
  chown munge:munge /run/munge && chmod 755 /run/munge
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null;
                                   chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    su -s /bin/sh munge -c /usr/sbin/munged
  fi
  H=$(hostname -s)
  MEM=$(( $(free -m | awk '/^Mem:/ {print $2}') - 1024 ))
  CPUS=$(nproc)
  mkdir -p /etc/slurm
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
JobRequeue=1
ReturnToService=2
KillWait=10
InactiveLimit=0
MinJobAge=300
MailProg=/bin/true
StateSaveLocation=$RUN/state
SlurmdSpoolDir=$RUN/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$RUN/log/slurmctld.log
SlurmdLogFile=$RUN/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
NodeName=$H CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  slurmctld && slurmd
  for _ in $(seq 1 100); do sinfo -h -o %T 2>/dev/null | grep -q idle && exit 0; sleep 0.1; done
  echo "local-cluster: node did not become idle; logs in $RUN/log" >&2; exit 1 ;;
stop)
  pids=()
  for f in "$RUN"/slurmd.pid "$RUN"/slurmctld.pid; do [ -s "$f" ] && pids+=("$(cat "$f")"); done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # The daemons save state as they exit: wait (up to 10 s) so RUN can be removed afterwards.
  for _ in $(seq 1 100); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break; sleep 0.1
  done ;;
esac

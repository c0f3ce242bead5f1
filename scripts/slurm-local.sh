#!/usr/bin/env bash
# A private single-node Slurm cluster on this machine, for tests and for trying
# `memfront sweep --launcher slurm` without a real cluster.
#
#   bash scripts/slurm-local.sh start DIR   writes DIR/slurm.conf, starts slurmctld and
#                                           slurmd, waits until the node is idle
#   bash scripts/slurm-local.sh stop DIR    cancels its jobs, stops both daemons by PID
#                                           (nothing to do when none runs)
#
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf. Everything the
# daemons write (state, spool, logs, PID files) stays under DIR, and nothing
# in /etc is touched, so it runs beside a real installation. Needs root (slurmd
# starts jobs as their user) and Debian's slurm-wlm (scripts/install-deps.sh).
#
# No slurmdbd: accounting is off, so sacct has nothing to say here. memfront
# then learns the state of finished jobs from `scontrol show job`, which keeps
# them for MinJobAge seconds (an hour here).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
(($# == 2)) || usage
action=$1
dir=$(realpath -m "$2")
conf=$dir/slurm.conf
export SLURM_CONF=$conf

fail() { echo "slurm-local: $*" >&2; exit 1; }

# The last lines of the daemons' logs, for a failure message.
log_tails() {
  local log
  for log in "$dir/slurmctld.log" "$dir/slurmd.log"; do
    [[ -f $log ]] && { echo "--- $log"; tail -n 15 "$log"; }
  done
}

# A TCP port nobody listens on, from a start that differs between folders so
# that two clusters started at once (two builds testing) rarely collide.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

daemon_pid() {
  local pid_file=$dir/$1.pid
  [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null && cat "$pid_file"
}

start() {
  [[ $(id -u) -eq 0 ]] || fail "must run as root (slurmd starts jobs as their user)"
  local tool
  for tool in slurmctld slurmd sinfo sbatch; do
    command -v "$tool" >/dev/null || fail "$tool not found: install slurm-wlm (bash scripts/install-deps.sh)"
  done
  # A cluster of this folder left running (a test run that was killed) goes first.
  if daemon_pid slurmctld >/dev/null || daemon_pid slurmd >/dev/null; then
    echo "slurm-local: stopping the cluster left running in $dir"
    stop
  fi
  # slurmd's step sockets live in the spool folder; a Unix socket path holds
  # at most 107 bytes.
  ((${#dir} <= 70)) || fail "$dir is too long a path for slurmd's sockets (at most 70 characters)"
  mkdir -p "$dir/state" "$dir/spool"

  # The node as slurmd sees this machine (CPUs, sockets, cores, threads,
  # memory), under the name localhost so that no DNS is needed.
  local hardware
  hardware=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
  local base=$((20000 + $(cksum <<<"$dir" | cut -d ' ' -f 1) % 20000))
  local ctld_port slurmd_port
  ctld_port=$(free_port "$base")
  slurmd_port=$(free_port $((ctld_port + 1)))

  cat >"$conf" <<CONF
# Written by scripts/slurm-local.sh: a single-node test cluster.
ClusterName=memfront-local
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
# Cores are the unit of allocation, so several array elements run at once.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Start the next array element as soon as one ends, not up to 3 s later.
SchedulerParameters=batch_sched_delay=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Finished jobs stay visible to scontrol for an hour (there is no sacct here).
MinJobAge=3600
# A cancelled job gets SIGKILL 5 s after SIGTERM, not 30.
KillWait=5
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

  # Both daemons detach and write their PID files; -c starts from a clean
  # state (no jobs of an earlier run).
  slurmctld -c -f "$conf" || { log_tails >&2; fail "slurmctld did not start"; }
  slurmd -N localhost -f "$conf" || { log_tails >&2; fail "slurmd did not start"; }

  local deadline=$((SECONDS + 60)) state=""
  while ((SECONDS < deadline)); do
    state=$(timeout 10 sinfo -h -N -o '%T' 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.5
  done
  if [[ $state != idle ]]; then
    log_tails >&2
    fail "the node is not idle after 60 s (sinfo says '${state:-nothing}'); logs above"
  fi
  echo "slurm-local: cluster up (slurmctld $(daemon_pid slurmctld), slurmd $(daemon_pid slurmd)); export SLURM_CONF=$conf"
}

stop() {
  if [[ ! -f $conf ]]; then
    echo "slurm-local: no cluster in $dir"
    return
  fi
  # Jobs first, so that no step outlives its slurmd.
  if daemon_pid slurmctld >/dev/null; then
    local jobs
    jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | sort -u || true)
    # shellcheck disable=SC2086 # one job id per word
    [[ -z $jobs ]] || timeout 10 scancel $jobs || true
  fi
  local name pid deadline
  for name in slurmd slurmctld; do
    pid=$(daemon_pid "$name") || continue
    kill -TERM "$pid"
    deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "slurm-local: $name ($pid) still running after 20 s; sending SIGKILL" >&2
      kill -KILL "$pid"
    fi
    rm -f "$dir/$name.pid"
  done
  echo "slurm-local: cluster in $dir stopped"
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac

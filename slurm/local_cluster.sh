#!/usr/bin/env bash
# A real two-node Slurm cluster on this one machine, for the tests and for trying the templates.
#
#   slurm/local_cluster.sh start    install Slurm and munge if missing, start all (idempotent)
#   slurm/local_cluster.sh status   exit 0 when the controller and both nodes answer
#   slurm/local_cluster.sh stop     cancel every job, then end each daemon by its recorded pid
#
# Clients need `export SLURM_CONF=$BATCHGAP_SLURM_DIR/slurm.conf` (printed by start and status).
# Two slurmd processes (-N n1, -N n2) share this host on distinct ports, so `srun -N2` runs one
# task on each; `n1` and `n2` resolve to 127.0.0.1 because Lightning takes the rendezvous
# address from the first node name. Runs as root: it installs packages and edits /etc/hosts.
# Limitation: one cluster per machine; a second state dir would need its own ports.
set -euo pipefail

DIR=${BATCHGAP_SLURM_DIR:-/tmp/batchgap-slurm}
PORT=${BATCHGAP_SLURM_PORT:-16817}  # slurmctld; the slurmds listen on PORT+1 and PORT+2
CONF=$DIR/slurm.conf
NODES=(n1 n2)
WAIT_S=30  # bound on every wait: daemons up, nodes idle, jobs drained, daemons gone

say() { echo "local_cluster: $*" >&2; }

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

recorded_pid() { cat "$DIR/pids/$1.pid" 2>/dev/null || true; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
      && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  say "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$DIR/log/apt.log" 2>&1
  apt-get install -y -qq slurmctld slurmd slurm-client munge \
    >>"$DIR/log/apt.log" 2>&1 || { say "apt-get install failed, see $DIR/log/apt.log"; exit 1; }
}

resolve_nodes_to_loopback() {
  local node
  for node in "${NODES[@]}"; do
    if ! grep -Eq "^127\.0\.0\.1([[:space:]].*)?[[:space:]]$node([[:space:]]|\$)" /etc/hosts; then
      echo "127.0.0.1 $node  # batchgap local Slurm cluster" >>/etc/hosts
    fi
  done
}

write_conf() {
  local cpus host
  cpus=$(nproc)
  host=$(hostname)
  cat >"$CONF" <<EOF
# Written by slurm/local_cluster.sh: two nodes sharing host $host.
ClusterName=batchgap
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays a requeued job's restart (Slurm's default: 120 s).
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
# A requeued job may start again at once; finished jobs stay visible to scontrol for 10 min.
JobRequeue=1
MinJobAge=600
# Seconds between SIGTERM and SIGKILL when a job is cancelled or requeued.
KillWait=10
# Schedule every 2 s, so a requeued job starts once its begin time passes (default: 60 s).
SchedulerParameters=sched_interval=2,bf_interval=2
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT + 1)) CPUs=$cpus State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT + 2)) CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF
}

# Start a foreground daemon in its own session, detached from the caller's pipes; record its pid.
spawn() {
  local name=$1
  shift
  SLURM_CONF=$CONF setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  echo $! >"$DIR/pids/$name.pid"
}

wait_for() {
  local what=$1 deadline=$((SECONDS + WAIT_S))
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "gave up after ${WAIT_S}s waiting for $what; logs in $DIR/log"
      return 1
    fi
    sleep 0.2
  done
}

nodes_idle() {
  [[ $(SLURM_CONF=$CONF sinfo -h -N -o '%N %t' | grep -Ec '^n[12] (idle|mix|alloc)') == 2 ]]
}

cluster_up() {
  local name
  for name in munged slurmctld slurmd-n1 slurmd-n2; do
    pid_alive "$(recorded_pid "$name")" || return 1
  done
  SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q UP && nodes_idle
}

start() {
  if [[ $(id -u) != 0 ]]; then
    say "must run as root (it installs packages, runs munged and edits /etc/hosts)"
    exit 1
  fi
  if [[ -f $CONF ]] && cluster_up; then
    echo "export SLURM_CONF=$CONF"
    return
  fi
  stop_daemons
  mkdir -p "$DIR"/{state,spool,run,log,pids,munge}
  chmod 700 "$DIR/munge"
  install_packages
  resolve_nodes_to_loopback
  if [[ ! -s $DIR/munge/munge.key ]]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
  fi
  write_conf

  spawn munged munged --foreground --force --socket="$DIR/munge/munge.socket" \
    --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
  wait_for "munged" test -S "$DIR/munge/munge.socket"
  spawn slurmctld slurmctld -D -i -f "$CONF"
  wait_for "slurmctld" bash -c "SLURM_CONF=$CONF scontrol ping | grep -q UP"
  local node
  for node in "${NODES[@]}"; do
    spawn "slurmd-$node" slurmd -D -N "$node" -f "$CONF"
  done
  wait_for "nodes n1 and n2" nodes_idle
  say "up: 2 nodes, state in $DIR"
  echo "export SLURM_CONF=$CONF"
}

# Cancel the queue and give job steps a bounded time to end before the daemons go.
drain_jobs() {
  local ctld
  ctld=$(recorded_pid slurmctld)
  pid_alive "$ctld" || return 0
  local jobs
  jobs=$(SLURM_CONF=$CONF squeue -h -o %A 2>/dev/null || true)
  [[ -z $jobs ]] && return 0
  # shellcheck disable=SC2086
  SLURM_CONF=$CONF scancel $jobs 2>/dev/null || true
  wait_for "jobs to end" bash -c "[[ -z \$(SLURM_CONF=$CONF squeue -h -o %A) ]]" || true
}

# Steps that outlived the drain: slurmstepds carrying this cluster's SLURM_CONF, with children.
kill_tree() {
  local child
  for child in $(pgrep -P "$1" || true); do kill_tree "$child"; done
  kill -KILL "$1" 2>/dev/null || true
}

kill_leftover_steps() {
  local pid
  for pid in $(pgrep -x slurmstepd || true); do
    if tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "SLURM_CONF=$CONF"; then
      kill_tree "$pid"
    fi
  done
}

stop_daemons() {
  local name pid deadline
  for name in slurmd-n1 slurmd-n2 slurmctld munged; do
    pid=$(recorded_pid "$name")
    if pid_alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
      pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/pids/$name.pid"
  done
}

stop() {
  [[ -d $DIR ]] || return 0
  drain_jobs
  kill_leftover_steps
  stop_daemons
  say "stopped (state kept in $DIR)"
}

status() {
  if [[ -f $CONF ]] && cluster_up; then
    echo "export SLURM_CONF=$CONF"
    SLURM_CONF=$CONF sinfo -N -o '%N %P %t %C' >&2
    return 0
  fi
  say "down"
  return 1
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 {start|stop|status}" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# A highly available PostgreSQL formation on this one machine, for CI and the
# failover tests: Debian's pg_auto_failover (pg_autoctl), a monitor and two
# PostgreSQL 15 nodes in synchronous replication, all on 127.0.0.1, all run as
# the postgres OS user, trust auth, no TLS (sslmode=disable: node-postgres takes
# pg_autoctl's default sslmode=prefer for verify-full). Never touches the main
# cluster.
#
#   up                 create the formation (or keep the healthy one) and print its URI
#   down               stop every process of the formation and remove its state dir
#   status             the nodes' states, for humans
#   uri                the formation's multi-host URI (read-write target, user postgres)
#   monitor-uri        the monitor's URI
#   node-pgdata N      node N's data directory (N = 1 or 2)
#   primary-node       the number (1 or 2) of the node the monitor has as primary
#   wait-healthy [S]   wait up to S seconds (default 120) for one primary and one secondary
#   failover           pg_autoctl perform failover, then wait-healthy
#   stop-node N [--immediate]  stop node N's pg_autoctl (and its PostgreSQL), wait until gone
#   start-node N       start node N's pg_autoctl again, in the background
#   kill-node N        kill -9 node N's pg_autoctl and PostgreSQL (a crashed machine)
#   autoctl ARGS...    run pg_autoctl as postgres with this formation's environment
#
# Environment: HA_DIR (state dir, default /tmp/esr-ha; its parent must be
# reachable by postgres), HA_PORT_BASE (default 6000: monitor on it, node N on
# base + N). Results go to stdout, everything else to stderr; logs are in
# $HA_DIR/log. pg_autoctl keeps its configuration, state and pid files under
# $HA_DIR/xdg (XDG_* variables), so run pg_autoctl through `autoctl`.
set -euo pipefail

HA_DIR="${HA_DIR:-/tmp/esr-ha}"
case "$HA_DIR" in /*) ;; *) HA_DIR="$PWD/$HA_DIR" ;; esac
HA_DIR="${HA_DIR%/}"
base="${HA_PORT_BASE:-6000}"
if ! [[ "$base" =~ ^[0-9]+$ ]] || ((base < 1 || base > 65533)); then
  echo "HA_PORT_BASE must be a port number, not '$base'" >&2
  exit 2
fi
PG_BIN="/usr/lib/postgresql/15/bin"
PACKAGE="postgresql-15-auto-failover"

# stdout is for results only: fd 3 is the real stdout, everything else goes to stderr
exec 3>&1 1>&2

log() { echo "ha-formation: $*" >&2; }
die() {
  log "$*"
  exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The monitor's health checks and timeouts, much shorter than pg_auto_failover's
# production defaults (checks every 5 s, a node unhealthy after 20 s without a
# report, 30 s for a dead primary to drain), so that a node that dies whole
# (pg_autoctl and PostgreSQL) is failed over in seconds, not in a minute. A
# killed postmaster under a live pg_autoctl does not wait for these: its
# pg_autoctl reports PostgreSQL down at once.
MONITOR_SETTINGS="shared_buffers = '128MB'
pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 3000
pgautofailover.startup_grace_period = 2000
pgautofailover.primary_demote_timeout = 5000"
# A primary cut off from the monitor and from its standby demotes itself after
# this many seconds (default 20): kept below the monitor's unhealthy timeout
# plus its demote timeout, as pg_auto_failover's defaults are.
NETWORK_PARTITION_TIMEOUT=3
# pg_autoctl's pg_basebackup asks for a spread checkpoint (no --checkpoint=fast):
# with checkpoint_completion_target = 0 it does not wait seconds for it. A
# standby retries a lost primary every 5 s by default, and until it is back the
# primary's commits wait for it (synchronous replication): retry every 0.5 s.
# WAL segments of 1 MB (initdb) and few of them kept: pg_basebackup and
# pg_rewind (a failed primary rejoining) copy a few MB of WAL, not 80.
NODE_SETTINGS="shared_buffers = '128MB'
checkpoint_completion_target = 0
wal_retrieve_retry_interval = '500ms'
min_wal_size = '8MB'"

# ---------------------------------------------------------------------------
# running things as postgres, with this formation's environment

# ESR_HA_DIR marks the formation's processes; the XDG variables keep pg_autoctl's
# files in the state dir
pg_env=(
  "PATH=/usr/bin:/bin"
  "HOME=${HA_DIR}"
  "LANG=C.UTF-8"
  "ESR_HA_DIR=${HA_DIR}"
  "XDG_CONFIG_HOME=${HA_DIR}/xdg/config"
  "XDG_DATA_HOME=${HA_DIR}/xdg/share"
  "XDG_RUNTIME_DIR=${HA_DIR}/xdg/run"
)

if [ "$(id -u)" = 0 ]; then
  as_pg() { (cd / && runuser -u postgres -- env -i "${pg_env[@]}" "$@"); }
elif [ "$(id -un)" = postgres ]; then
  as_pg() { (cd / && env -i "${pg_env[@]}" "$@"); }
else
  die "run as root or as postgres"
fi
autoctl() { as_pg pg_autoctl "$@"; }

# runs a command in the background, its output appended to a file, keeping none
# of our descriptors: not stdout (fd 3), not the lock (fd 9), not whatever the
# caller left open (a caller that reads our output would wait for it)
detach() {
  local out="$1" fd
  shift
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if ((fd > 2 && fd != 255)); then eval "exec $fd>&-"; fi
    done
    cd /
    exec "$@"
  ) >>"$out" 2>&1 </dev/null &
}

# a pg_autoctl command left running as postgres in its own session (so that its
# process group is the formation's to kill), its output appended to a log
start_bg() {
  local logfile="$1"
  shift
  if [ "$(id -u)" = 0 ]; then
    detach "$logfile" runuser -u postgres -- env -i "${pg_env[@]}" setsid pg_autoctl "$@"
  else
    detach "$logfile" env -i "${pg_env[@]}" setsid pg_autoctl "$@"
  fi
}

monitor_uri_local="postgres://postgres@127.0.0.1:${base}/pg_auto_failover?connect_timeout=2&sslmode=disable"
# what the nodes and pg_autoctl commands are given
monitor_uri="postgres://autoctl_node@127.0.0.1:${base}/pg_auto_failover?sslmode=disable"
mon_sql() { psql -XAtq -v ON_ERROR_STOP=1 "$monitor_uri_local" -c "$1"; }

node_dir() {
  case "${1:-}" in
    1 | 2) echo "$HA_DIR/node$1" ;;
    *) die "node number must be 1 or 2, not '${1:-}'" ;;
  esac
}
pid_file() { echo "$HA_DIR/xdg/run/pg_autoctl$1/pg_autoctl.pid"; }

# the pid of the pg_autoctl serving that data dir, if it runs
supervisor_pid() {
  local file pid
  file="$(pid_file "$1")"
  [ -r "$file" ] || return 1
  pid="$(head -n 1 "$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "pg_autoctl" || return 1
  echo "$pid"
}

# ---------------------------------------------------------------------------
# health

# one node primary and one secondary, both as assigned and in good health, both
# accepting connections
healthy() {
  local answer
  answer="$(mon_sql "select count(*) filter (where reportedstate = 'primary' and goalstate = 'primary' and health = 1) = 1
      and count(*) filter (where reportedstate = 'secondary' and goalstate = 'secondary' and health = 1) = 1
      and count(*) = 2
    from pgautofailover.node" 2>/dev/null)" || return 1
  [ "$answer" = t ] || return 1
  pg_isready -q -t 2 -h 127.0.0.1 -p $((base + 1)) && pg_isready -q -t 2 -h 127.0.0.1 -p $((base + 2))
}

node_states() {
  mon_sql "select string_agg(format('%s %s/%s', nodename, reportedstate, goalstate), ', ' order by nodeid)
    from pgautofailover.node" 2>/dev/null || echo "monitor not answering"
}

wait_healthy() {
  local seconds="${1:-120}" started last="" states
  [[ "$seconds" =~ ^[0-9]+$ ]] || die "wait-healthy takes a number of seconds, not '$seconds'"
  started="$(now)"
  while ! healthy; do
    states="$(node_states)"
    [ "$states" = "$last" ] || log "[$(since "$started") s] $states"
    last="$states"
    if awk -v a="$started" -v b="$(now)" -v s="$seconds" 'BEGIN { exit !(b - a > s) }'; then
      log "not one primary and one secondary after ${seconds} s: $(node_states)"
      return 1
    fi
    sleep 0.2
  done
  log "healthy after $(since "$started") s: $(node_states)"
}

log_tails() {
  local f
  for f in "$HA_DIR"/log/*.log; do
    [ -e "$f" ] || continue
    echo "---- tail of $f"
    tail -n 40 "$f"
  done
}

# every process of the formation still running (zombies aside): those with one
# of its data dirs as an argument (pg_autoctl's --pgdata, postgres' -D) or with
# its marker in their environment (every pg_autoctl service and postmaster);
# not pid files, whose pids may be another process's after a reboot
formation_pids() {
  local p
  {
    grep -lzxF -e "$HA_DIR/monitor" -e "$HA_DIR/node1" -e "$HA_DIR/node2" /proc/[0-9]*/cmdline 2>/dev/null
    grep -lzxF "ESR_HA_DIR=$HA_DIR" /proc/[0-9]*/environ 2>/dev/null
  } | sed -nE 's#^/proc/([0-9]+)/.*#\1#p' | sort -un | while read -r p; do
    [ "$p" = $$ ] && continue
    [ -r "/proc/$p/stat" ] || continue
    case "$(sed -E 's/^.*\) //' "/proc/$p/stat" 2>/dev/null)" in Z* | "") continue ;; esac
    echo "$p"
  done
  return 0
}

# stop everything of the formation (immediate shutdown, then SIGKILL) and remove
# the state dir; never fails when nothing runs
destroy() {
  local pids p
  pids="$(formation_pids)"
  if [ -n "$pids" ]; then
    log "stopping the formation's processes: ${pids//$'\n'/ }"
    # pg_autoctl takes SIGQUIT as "stop, PostgreSQL in immediate mode"
    for p in $pids; do kill -QUIT "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      pids="$(formation_pids)"
      [ -z "$pids" ] && break
      sleep 0.1
    done
    if [ -n "$pids" ]; then
      for p in $pids; do
        kill -KILL -- "-$p" 2>/dev/null || true
        kill -KILL "$p" 2>/dev/null || true
      done
      for _ in $(seq 1 50); do
        [ -z "$(formation_pids)" ] && break
        sleep 0.1
      done
    fi
  fi
  # removing ~170 MB takes seconds on a busy disk: out of the way, in the background
  if [ -e "$HA_DIR" ]; then
    local trash="$HA_DIR.removed.$$"
    mv "$HA_DIR" "$trash"
    detach /dev/null rm -rf "$trash"
  fi
}

# ---------------------------------------------------------------------------
# creation

ensure_installed() {
  if command -v pg_autoctl >/dev/null 2>&1 && [ -e /usr/share/postgresql/15/extension/pgautofailover.control ]; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "pg_autoctl is missing: apt-get install $PACKAGE (as root)"
  log "installing $PACKAGE"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$PACKAGE" >/dev/null
}

port_in_use() { (exec 4<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

create() {
  local started p
  started="$(now)"
  for p in "$base" $((base + 1)) $((base + 2)); do
    ! port_in_use "$p" || die "port $p is in use: choose another HA_PORT_BASE"
  done
  # PostgreSQL's Unix sockets go to Debian's default directory, as the main
  # cluster's do; it is gone after a reboot until something makes it again
  if [ "$(id -u)" = 0 ] && [ ! -d /var/run/postgresql ]; then
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  fi
  mkdir -p "$HA_DIR/log" "$HA_DIR/xdg/config" "$HA_DIR/xdg/share" "$HA_DIR/xdg/run"
  chmod 700 "$HA_DIR/xdg/run"
  echo "$base" >"$HA_DIR/port-base"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$HA_DIR"

  # one initdb for the monitor's and the first node's data dirs (a copy is
  # cheaper than a second initdb on a busy 2-core machine), with our settings
  # in postgresql.auto.conf, which overrides what pg_autoctl writes (the second
  # node gets the first's by pg_basebackup)
  as_pg "$PG_BIN/initdb" --auth=trust --no-sync --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --wal-segsize=1 -D "$HA_DIR/node1" >"$HA_DIR/log/initdb.log" 2>&1 || die "initdb failed: $(cat "$HA_DIR/log/initdb.log")"
  as_pg cp -a "$HA_DIR/node1" "$HA_DIR/monitor"
  log "[$(since "$started") s] initdb done"
  echo "$MONITOR_SETTINGS" | as_pg tee -a "$HA_DIR/monitor/postgresql.auto.conf" >/dev/null
  echo "$NODE_SETTINGS" | as_pg tee -a "$HA_DIR/node1/postgresql.auto.conf" >/dev/null

  # the monitor: created, told to listen on loopback only (it would on '*'), run
  autoctl create monitor --pgdata "$HA_DIR/monitor" --pgport "$base" --hostname 127.0.0.1 \
    --auth trust --no-ssl --ssl-mode disable --pgctl "$PG_BIN/pg_ctl" >>"$HA_DIR/log/monitor.log" 2>&1 ||
    die "pg_autoctl create monitor failed: $(tail -n 20 "$HA_DIR/log/monitor.log")"
  log "[$(since "$started") s] monitor created"
  autoctl config set --pgdata "$HA_DIR/monitor" postgresql.listen_addresses 127.0.0.1 >/dev/null
  start_bg "$HA_DIR/log/monitor.log" run --pgdata "$HA_DIR/monitor"
  for _ in $(seq 1 150); do
    mon_sql "select 1 from pgautofailover.formation where formationid = 'default'" >/dev/null 2>&1 && break
    sleep 0.1
  done
  mon_sql "select 1" >/dev/null || {
    log_tails
    die "the monitor did not start"
  }
  log "[$(since "$started") s] monitor up on port $base"

  # the nodes: node1 registers first (node id 1, the primary), node2 as soon as
  # node1 is known (it waits for node1 to be ready, then takes a base backup)
  local node_args=(--hostname 127.0.0.1 --pghost 127.0.0.1 --listen 127.0.0.1 --username postgres
    --dbname postgres --monitor "$monitor_uri" --auth trust --no-ssl --ssl-mode disable
    --pgctl "$PG_BIN/pg_ctl" --run)
  start_bg "$HA_DIR/log/node1.log" create postgres --pgdata "$HA_DIR/node1" --pgport $((base + 1)) \
    --name node1 "${node_args[@]}"
  for _ in $(seq 1 300); do
    [ "$(mon_sql "select count(*) from pgautofailover.node where nodename = 'node1'" 2>/dev/null)" = 1 ] && break
    sleep 0.1
  done
  start_bg "$HA_DIR/log/node2.log" create postgres --pgdata "$HA_DIR/node2" --pgport $((base + 2)) \
    --name node2 "${node_args[@]}"

  if ! wait_healthy 120; then
    log_tails
    die "the formation did not become healthy in 120 s (state dir $HA_DIR)"
  fi
  for p in 1 2; do
    autoctl config set --pgdata "$HA_DIR/node$p" timeout.network_partition_timeout "$NETWORK_PARTITION_TIMEOUT" \
      >/dev/null
  done
  log "formation up in $(since "$started") s"
}

# the formation in the state dir runs: its three pg_autoctl, on our ports
running() {
  [ -d "$HA_DIR" ] && [ "$(cat "$HA_DIR/port-base" 2>/dev/null)" = "$base" ] || return 1
  supervisor_pid "$HA_DIR/monitor" >/dev/null && supervisor_pid "$HA_DIR/node1" >/dev/null &&
    supervisor_pid "$HA_DIR/node2" >/dev/null
}

lock() {
  mkdir -p "$(dirname "$HA_DIR")"
  exec 9>"$HA_DIR.lock"
  flock -w 600 9 || die "could not lock $HA_DIR.lock"
}

# ---------------------------------------------------------------------------
# subcommands

uri() {
  local u
  u="$(autoctl show uri --pgdata "$HA_DIR/monitor" --formation default)" || die "no formation in $HA_DIR"
  u="$(echo "$u" | tail -n 1 | tr -d '[:space:]')"
  # pg_autoctl's URI names no user: a client run as root would log in as "root"
  case "$u" in
    postgres://*@*) ;;
    postgres://*) u="postgres://postgres@${u#postgres://}" ;;
  esac
  echo "$u"
}

cmd_up() {
  lock
  ensure_installed
  if running; then
    if healthy; then
      uri >&3
      return 0
    fi
    # up but between states (a failover, a node rejoining): give it a while
    log "the formation in $HA_DIR runs but is not healthy: $(node_states); waiting"
    if wait_healthy 60; then
      uri >&3
      return 0
    fi
  fi
  if [ -e "$HA_DIR" ] || [ -n "$(formation_pids)" ]; then
    log "removing the stale or broken formation in $HA_DIR"
    destroy
  fi
  create
  uri >&3
}

cmd_down() {
  lock
  destroy
  log "formation in $HA_DIR down"
}

cmd_status() {
  [ -d "$HA_DIR/monitor" ] || die "no formation in $HA_DIR"
  autoctl show state --pgdata "$HA_DIR/monitor" >&3
  local n primary
  primary="$(primary_node 2>/dev/null)" || primary=""
  if [ -n "$primary" ]; then
    n="$(psql -XAtq "postgres://postgres@127.0.0.1:$((base + primary))/postgres?connect_timeout=2" \
      -c "show synchronous_standby_names" 2>/dev/null)" || n="?"
    echo "node$primary is primary; synchronous_standby_names = '$n'" >&3
  fi
  for n in 1 2; do
    if supervisor_pid "$HA_DIR/node$n" >/dev/null; then
      echo "node$n: pg_autoctl runs (pid $(supervisor_pid "$HA_DIR/node$n"))" >&3
    else
      echo "node$n: pg_autoctl does not run" >&3
    fi
  done
  echo "uri: $(uri)" >&3
}

primary_node() {
  local name
  name="$(mon_sql "select nodename from pgautofailover.node
    where goalstate in ('primary', 'wait_primary', 'single') order by nodeid limit 1")" || die "the monitor does not answer"
  case "$name" in
    node1) echo 1 ;;
    node2) echo 2 ;;
    *) die "no primary now: $(node_states)" ;;
  esac
}

cmd_failover() {
  lock
  local started
  started="$(now)"
  # pg_autoctl 2.0 logs "ERROR Monitor ERROR: invalid input syntax for type
  # integer" (its get_nodes call after the failover is asked for) and goes on: harmless
  autoctl perform failover --monitor "$monitor_uri" \
    --formation default --group 0 || die "pg_autoctl perform failover failed"
  log "pg_autoctl perform failover returned after $(since "$started") s"
  wait_healthy "${1:-120}"
  log "failover done in $(since "$started") s"
}

cmd_stop_node() {
  local dir pid
  dir="$(node_dir "${1:-}")"
  lock
  pid="$(supervisor_pid "$dir")" || {
    log "node$1's pg_autoctl does not run"
    return 0
  }
  autoctl stop --pgdata "$dir" ${2:+"$2"}
  for _ in $(seq 1 300); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  [ ! -d "/proc/$pid" ] || die "node$1's pg_autoctl (pid $pid) did not stop in 30 s"
  log "node$1 stopped"
}

cmd_start_node() {
  local dir
  dir="$(node_dir "${1:-}")"
  lock
  if supervisor_pid "$dir" >/dev/null; then
    log "node$1's pg_autoctl already runs"
    return 0
  fi
  start_bg "$HA_DIR/log/node$1.log" run --pgdata "$dir"
  log "node$1's pg_autoctl started (log in $HA_DIR/log/node$1.log)"
}

cmd_kill_node() {
  local dir pid pm=""
  dir="$(node_dir "${1:-}")"
  lock
  # the postmaster runs in pg_autoctl's process group, unless started otherwise
  [ -r "$dir/postmaster.pid" ] && pm="$(head -n 1 "$dir/postmaster.pid")"
  grep -qzxF "$dir" "/proc/$pm/cmdline" 2>/dev/null || pm=""
  if pid="$(supervisor_pid "$dir")"; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [ -n "$pm" ]; then kill -KILL "$pm" 2>/dev/null || true; fi
  log "node$1 killed (pg_autoctl ${pid:-none}, postmaster ${pm:-none})"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  uri) uri >&3 ;;
  monitor-uri)
    autoctl show uri --pgdata "$HA_DIR/monitor" --formation monitor | tail -n 1 | tr -d '[:space:]' >&3
    echo >&3
    ;;
  node-pgdata) node_dir "${1:-}" >&3 ;;
  primary-node) primary_node >&3 ;;
  wait-healthy)
    [ -d "$HA_DIR/monitor" ] || die "no formation in $HA_DIR"
    wait_healthy "${1:-120}"
    ;;
  failover) cmd_failover "$@" ;;
  stop-node) cmd_stop_node "$@" ;;
  start-node) cmd_start_node "$@" ;;
  kill-node) cmd_kill_node "$@" ;;
  autoctl) autoctl "$@" >&3 ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac

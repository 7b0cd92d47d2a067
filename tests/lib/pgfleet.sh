# shellcheck shell=bash
# tests/lib/pgfleet.sh: helpers shared by pgfleet's shell tests (source it; needs bash).
#
# A test gets a private stack: its own state directory under /tmp (mktemp), PostgreSQL on a Unix
# socket only, nats-server on a free port, the gateway on a free port. Nothing is fixed or shared, so
# several copies of a test run side by side. Teardown (pgfleetctl down + rm) runs from an EXIT trap.
#
#   pf_init NAME                    state dir + traps; sets PF_STATE
#   pf_stack_up [pgfleetctl up options...]
#                                   private stack (agent at 1 s, socket only, free ports); loads stack.env
#   pf_env KEY                      a value from stack.env (parsed, not sourced)
#   pf_psql SQL                     runs SQL in database postgres; prints unaligned tuples-only output
#   pf_wait_until SECONDS CMD...    retries CMD every 0.5 s; 0 when it succeeded, 1 on timeout
#   pf_ok DESC / pf_not_ok DESC DETAIL / pf_check DESC CMD...
#                                   TAP-like result lines: "ok N - DESC", "not ok N - DESC: DETAIL"
#   pf_crash_check                  one check: no log under the state dir shows a crashed process
#   pf_finish                       prints "N passed, N failed"; returns 0 only if nothing failed
#
# Environment: PGFLEETCTL (default: the repository's control/pgfleetctl), PF_KEEP=1 keeps the state
# directory after the test (it is also kept, with log tails printed, when a check failed and
# PF_KEEP_ON_FAIL=1).

PF_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGFLEETCTL=${PGFLEETCTL:-$PF_REPO/control/pgfleetctl}
PF_PSQL=${PF_PSQL:-/usr/lib/postgresql/15/bin/psql}
PF_STATE=""
PF_NAME="test"
PF_PASSED=0
PF_FAILED=0
PF_N=0

# pf_log MSG: a diagnostic line (TAP comment) on stdout.
pf_log() { echo "# $*"; }

# pf_indent: copies stdin to stdout as indented comment lines.
pf_indent() {
  local l
  while IFS= read -r l; do echo "#   $l"; done
}

# pf_as_owner CMD...: runs CMD as the stack's user (postgres when root), from a directory it can read.
pf_as_owner() {
  if [ "$EUID" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# pf_init NAME: creates the private state directory and installs the teardown trap.
pf_init() {
  PF_NAME=${1:-test}
  PF_STATE=$(mktemp -d "/tmp/pgfleet-$PF_NAME.XXXXXX") || { echo "pf_init: mktemp failed" >&2; exit 1; }
  chmod 0700 "$PF_STATE"
  if [ "$EUID" -eq 0 ]; then chown postgres: "$PF_STATE"; fi
  trap pf_teardown EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# pf_teardown: stops the private stack and removes its state directory (EXIT trap).
pf_teardown() {
  local rc=$?
  [ -n "$PF_STATE" ] && [ -d "$PF_STATE" ] || return "$rc"
  if [ "$PF_FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then pf_dump_logs; fi
  "$PGFLEETCTL" --state "$PF_STATE" down >/dev/null 2>&1 || pf_log "pgfleetctl down failed for $PF_STATE"
  if [ "${PF_KEEP:-0}" = 1 ] || { [ "${PF_KEEP_ON_FAIL:-0}" = 1 ] && [ "$PF_FAILED" -gt 0 ]; }; then
    pf_log "state kept in $PF_STATE"
  else
    rm -rf "$PF_STATE"
  fi
  return "$rc"
}

# pf_dump_logs: prints the end of every log of the stack as comments (after a failure).
pf_dump_logs() {
  local f
  for f in "$PF_STATE"/log/*.log; do
    [ -f "$f" ] || continue
    pf_log "--- last lines of $f"
    tail -n 15 "$f" | pf_indent
  done
}

# pf_env KEY: prints KEY's value from the stack's stack.env.
pf_env() {
  sed -n "s/^$1='\\([^']*\\)'\$/\\1/p" "$PF_STATE/stack.env" 2>/dev/null
}

# pf_stack_up [OPTIONS...]: starts the private stack; extra options go to `pgfleetctl up`.
pf_stack_up() {
  local out
  if ! out=$("$PGFLEETCTL" --state "$PF_STATE" up --pg-listen '' --nats-port -1 --http-port 0 --interval 1 "$@" 2>&1); then
    pf_indent <<<"$out"
    return 1
  fi
  PF_PG_PORT=$(pf_env PG_PORT)
  PF_NATS_PORT=$(pf_env NATS_PORT)
  PF_HTTP_PORT=$(pf_env HTTP_PORT)
  export PF_PG_PORT PF_NATS_PORT PF_HTTP_PORT
}

# pf_psql SQL: runs SQL against the central database over the private socket, ON_ERROR_STOP.
pf_psql() {
  pf_as_owner "$PF_PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PF_STATE/run" -p "${PF_PG_PORT:-$(pf_env PG_PORT)}" \
    -d postgres -c "$1"
}

# pf_wait_until SECONDS CMD...: retries CMD (output discarded) until it succeeds or time runs out.
pf_wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# pf_sql_true SQL: succeeds if SQL returns exactly 't' (for pf_wait_until).
pf_sql_true() { [ "$(pf_psql "$1" 2>/dev/null)" = t ]; }

# pf_ok DESC: records a passed check.
pf_ok() {
  PF_N=$((PF_N + 1)); PF_PASSED=$((PF_PASSED + 1))
  echo "ok $PF_N - $1"
}

# pf_not_ok DESC DETAIL: records a failed check.
pf_not_ok() {
  PF_N=$((PF_N + 1)); PF_FAILED=$((PF_FAILED + 1))
  echo "not ok $PF_N - $1: ${2:-failed}"
}

# pf_check DESC CMD...: runs CMD; ok if it succeeds, else not ok with its output as the detail.
pf_check() {
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then pf_ok "$desc"; else pf_not_ok "$desc" "$(echo "$out" | tr '\n' ' ' | cut -c1-300)"; fi
}

# pf_agent_config DIR [TOP-LEVEL-LINE...]: writes DIR/agent.toml for an agent of the test's own that
# stands in for the stack's agent (agent_id central, every 1 s, spool DIR/spool, the stack's socket and
# the agent-central NATS user); extra top-level keys go before the tables, and the caller may append
# tables (cat >>). DIR is created as the stack's user.
pf_agent_config() {
  local dir=$1 line
  shift
  pf_as_owner mkdir -p "$dir"
  {
    echo 'agent_id = "central"'
    echo 'interval_seconds = 1'
    echo "spool_dir = \"$dir/spool\""
    for line in "$@"; do echo "$line"; done
    echo '[postgres]'
    echo "conninfo = \"host=$PF_STATE/run port=$PF_PG_PORT dbname=postgres\""
    echo '[nats]'
    echo "url = \"nats://agent-central:$(awk '{print $1}' "$PF_STATE/nats/auth/agent-central")@127.0.0.1:$PF_NATS_PORT\""
  } >"$dir/agent.toml"
  chmod 0644 "$dir/agent.toml"
}

# pf_agent_start DIR: starts a pgfleet-agent of the test's own with DIR/agent.toml, as the stack's user,
# logging to DIR/agent.log; sets PF_AGENT_PID (empty when it did not start). PGFLEET_AGENT picks the
# binary (default: the installed one, which the postgres user can reach).
PF_AGENT_PID=""
pf_agent_start() {
  local dir=$1 bin=${PGFLEET_AGENT:-$(command -v pgfleet-agent || echo "$PF_REPO/build/pgfleet-agent")}
  # the pid is written by the shell that exec()s the agent, so it is the agent's own pid
  pf_as_owner bash -c 'echo $$ >"$1/agent.pid"; exec "$2" --config "$1/agent.toml" >>"$1/agent.log" 2>&1' _ \
    "$dir" "$bin" &
  pf_wait_until 5 test -s "$dir/agent.pid" || true
  PF_AGENT_PID=$(cat "$dir/agent.pid" 2>/dev/null || true)
}

# pf_agent_stop: stops the agent pf_agent_start started (SIGTERM; SIGKILL after 5 s); idempotent.
pf_agent_stop() {
  [ -n "$PF_AGENT_PID" ] || return 0
  kill -TERM "$PF_AGENT_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$PF_AGENT_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PF_AGENT_PID" 2>/dev/null || true
  PF_AGENT_PID=""
}

# pf_mon_pgbench SECONDS LOG: pgbench (-c 2 -j 2 -R 100) on the monitored PostgreSQL (pf_mon_pg_start) for
# SECONDS, started again whenever the server went away; output appended to LOG. Needs PGBENCH.
pf_mon_pgbench() {
  local end=$((SECONDS + $1)) log=$2 left
  while left=$((end - SECONDS)) && [ "$left" -gt 0 ]; do
    pf_as_owner "$PGBENCH" -h "$PF_MON_DIR/run" -p "$PF_MON_PORT" -n -c 2 -j 2 -R 100 -T "$left" postgres \
      >>"$log" 2>&1 || sleep 0.3
  done
}

# pf_check_sealed_exactly_once AGENT_DIR MIN_BATCHES: stops the agent of AGENT_DIR (agent "central") and
# checks that the ledger holds exactly batch_seq 1..N of its boot, N being what the agent's shutdown line
# says it sealed (more than MIN_BATCHES); batches still in its spool are first published by a second boot.
# Then checks that no (series_id, ts) of instance PF_IID is stored twice. Two checks (pf_ok/pf_not_ok).
pf_check_sealed_exactly_once() {
  local dir=$1 min=$2 line sealed n boot left got dups
  pf_agent_stop
  line=$(grep 'shutting down:' "$dir/agent.log" | tail -n 1)
  sealed=$(sed -n 's/.*shutting down: \([0-9]*\) batches sealed in this boot (boot_id \([0-9a-f-]*\)), \([0-9]*\) left.*/\1 \2 \3/p' <<<"$line")
  read -r n boot left <<<"${sealed:-0 none 0}"
  if [ "$left" -gt 0 ]; then
    pf_log "$left batches left in the spool at the stop; a second boot publishes them"
    rm -f "$dir/agent.pid"  # else pf_agent_start would take the first boot's pid
    pf_agent_start "$dir"
    _pf_boot_drained() { ! find "$dir/spool" -maxdepth 1 -name "*-$boot-*.batch" | grep -q .; }
    pf_wait_until 20 _pf_boot_drained || true
    pf_agent_stop
  fi
  pf_log "agent: ${line#*LOG:  }"
  _pf_ledger() {
    pf_psql "SELECT count(*) || ' ' || count(DISTINCT batch_seq) || ' ' || coalesce(min(batch_seq), 0) || ' ' || coalesce(max(batch_seq), 0)
             FROM fleet.ingest_ledger WHERE agent_id = 'central' AND boot_id = '$boot'" 2>/dev/null
  }
  _pf_ledger_complete() { [ "$(_pf_ledger)" = "$n $n 1 $n" ]; }
  pf_wait_until 30 _pf_ledger_complete || true
  got=$(_pf_ledger || true)
  if [ "$n" -gt "$min" ] && [ "$got" = "$n $n 1 $n" ]; then
    pf_ok "fleet.ingest_ledger holds exactly batch_seq 1..$n of boot $boot, the $n batches the agent sealed"
  else
    pf_not_ok "fleet.ingest_ledger holds exactly the batches the agent sealed (more than $min)" \
      "sealed '$n' (boot $boot); ledger count/distinct/min/max: $got"
  fi
  dups=$(pf_psql "SELECT count(*) - count(DISTINCT (series_id, ts)) || ' of ' || count(*) FROM fleet.sample WHERE instance_id = $PF_IID" 2>&1 || true)
  if [[ $dups == "0 of "* ]] && [ "${dups#0 of }" -gt 0 ]; then
    pf_ok "no (series_id, ts) stored twice (${dups#0 of } samples)"
  else
    pf_not_ok "no (series_id, ts) stored twice" "$dups"
  fi
}

# pf_crash_check: a check that fails if any log under the state dir shows a crashed server process.
pf_crash_check() {
  local hits
  hits=$(grep -rEn 'terminated by signal|server process .* was terminated' \
    "$PF_STATE/log" 2>/dev/null | head -n 5 || true)
  if [ -z "$hits" ]; then
    pf_ok "no crashed process in the logs"
  else
    pf_not_ok "no crashed process in the logs" "$(echo "$hits" | tr '\n' ' ' | cut -c1-400)"
  fi
}

# pf_finish: prints the summary line; returns 0 only if every check passed (and there was one).
pf_finish() {
  echo "$PF_PASSED passed, $PF_FAILED failed"
  [ "$PF_FAILED" -eq 0 ] && [ "$PF_PASSED" -gt 0 ]
}

# --- a PostgreSQL of the test's own to monitor, and free ports ------------------------------------------
#   pf_free_ports N                 N distinct free TCP ports on 127.0.0.1, space-separated
#   pf_mon_pg_start DIR [SETTING...]
#                                   starts (after initdb, the first time) a PostgreSQL 15 as the stack's user
#                                   on a Unix socket in DIR/run only, pg_stat_statements preloaded and created
#                                   in database postgres; sets PF_MON_DIR and PF_MON_PORT
#   pf_mon_ctl ARGS...              pg_ctl -D DIR/data ARGS as the stack's user (restart, stop, start)
#   pf_mon_psql SQL                 like pf_psql, against the monitored PostgreSQL
#   pf_mon_pg_stop                  immediate stop if it runs (for EXIT traps); idempotent
#   pf_agent_monitor DIR            points DIR/agent.toml (pf_agent_config) at the monitored PostgreSQL
PF_MON_DIR=""
PF_MON_PORT=""
PF_PG_BIN=${PF_PG_BIN:-/usr/lib/postgresql/15/bin}

# pf_free_ports N: prints N distinct TCP ports that were free on 127.0.0.1 a moment ago (bound, then
# released together: a small race with other programs remains).
pf_free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# pf_mon_pg_start DIR [SETTING...]: see above. Returns non-zero (log in DIR) when initdb or the start failed.
pf_mon_pg_start() {
  local dir=$1 line
  shift
  PF_MON_DIR=$dir
  if [ ! -s "$dir/data/PG_VERSION" ]; then
    pf_as_owner mkdir -p "$dir/run" || return 1
    pf_as_owner "$PF_PG_BIN/initdb" -D "$dir/data" -A trust --no-locale -E UTF8 >"$dir/initdb.log" 2>&1 || return 1
    {
      echo "# pf_mon_pg_start"
      echo "listen_addresses = ''"
      echo "port = $(pf_free_ports 1)"
      echo "unix_socket_directories = '$dir/run'"
      echo "unix_socket_permissions = 0700"
      echo "shared_preload_libraries = 'pg_stat_statements'"
      for line in "$@"; do echo "$line"; done
    } | pf_as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
  fi
  PF_MON_PORT=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$dir/data/postgresql.conf" | tail -n 1)
  pf_mon_ctl -l "$dir/postgresql.log" -w -t 60 start >/dev/null || return 1
  pf_mon_psql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
}

# pf_mon_ctl ARGS...: pg_ctl of the monitored PostgreSQL.
pf_mon_ctl() { pf_as_owner "$PF_PG_BIN/pg_ctl" -D "$PF_MON_DIR/data" "$@"; }

# pf_mon_psql SQL: runs SQL in database postgres of the monitored PostgreSQL (unaligned tuples only).
pf_mon_psql() {
  pf_as_owner "$PF_PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PF_MON_DIR/run" -p "$PF_MON_PORT" -d postgres -c "$1"
}

# pf_mon_pg_stop: stops the monitored PostgreSQL (immediate) if it runs.
pf_mon_pg_stop() {
  [ -n "$PF_MON_DIR" ] && [ -s "$PF_MON_DIR/data/postmaster.pid" ] || return 0
  pf_mon_ctl -m immediate -w -t 20 stop >/dev/null 2>&1 || true
}

# pf_agent_monitor DIR: replaces the conninfo of DIR/agent.toml with the monitored PostgreSQL's socket.
pf_agent_monitor() {
  sed -i "s|^conninfo = .*|conninfo = \"host=$PF_MON_DIR/run port=$PF_MON_PORT dbname=postgres\"|" "$1/agent.toml"
}

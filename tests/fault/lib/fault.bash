# shellcheck shell=bash
# tests/fault/lib/fault.bash — helpers of the fault suite (tests/fault/*.sh); source it, needs bash.
#
# Each test gets a private stack: a mktemp directory, nats-server on a free port (-1, read back from
# its ports file, later restarted on the same port and store), PostgreSQL 15 on a Unix socket only
# (no TCP), started as the postgres OS user when run as root. Nothing fixed or shared, so copies of a
# test run side by side. Everything started here is stopped from the EXIT trap, by pid.
#
# Known traffic comes from build/tests/fleet_publish: batch seq of an agent carries SERIES samples
# seq*1000+k (k = 0..SERIES-1), so the exact count and sum of an agent's samples are known:
#   count = N*S, sum = S*1000*(sum of seqs) + N*S*(S-1)/2  (fault_expect prints "count/distinct/sum").
#
#   fault_init NAME                 private dir, traps, builds fleet_publish; sets FW (the directory)
#   fault_nats_start [PORT]         nats-server -js on PORT (default: a free one); sets NATS_PID NATS_PORT NATS_URL
#   fault_pg_init [CONF-LINES]      initdb + postgresql.conf (extra lines from the argument)
#   fault_pg_start / fault_pg_stop  pg_ctl start -w / stop -m fast
#   fault_sql SQL [DB]              psql -qAt over the private socket, ON_ERROR_STOP
#   fault_wait SECONDS SQL [DB]     polls until SQL returns t
#   fault_publish ARGS...           fleet_publish --url $NATS_URL ARGS... (foreground)
#   fault_agent_state AGENT [DB]    "count/distinct/sum" of AGENT's samples; ledger count via fault_ledger
#   fault_expect FIRST N S          the expected "count/distinct/sum" for seqs FIRST..FIRST+N-1 minus
#                                   FAULT_SKIP_SEQS (space-separated seqs replaced by garbage)
#   ok DESC CMD... / not_ok DESC DETAIL
#   fault_signal_check [PID...]     "terminated by signal" lines in the server log: none, or exactly one
#                                   per PID given (the processes the test itself killed)
#   fault_finish                    prints "fault: N passed, N failed"; exit status
set -uo pipefail
FAULT_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
FAULT_BUILD=${BUILD:-$FAULT_TOP/build}
PGBIN=/usr/lib/postgresql/15/bin
PUBLISH=$FAULT_BUILD/tests/fleet_publish
NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
FW="" NATS_PID="" NATS_PORT="" NATS_URL="" FAULT_NAME=test
FAULT_PASSED=0 FAULT_FAILED=0 FAULT_N=0 FAULT_BG_PIDS=() FAULT_FINISHED=0
AS_PG=()
[ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)

fault_log() { echo "# $*"; }

ok() {
  local desc=$1 out; shift
  FAULT_N=$((FAULT_N + 1))
  if out=$("$@" 2>&1); then
    FAULT_PASSED=$((FAULT_PASSED + 1)); echo "ok $FAULT_N - $desc"
  else
    FAULT_FAILED=$((FAULT_FAILED + 1))
    echo "not ok $FAULT_N - $desc${out:+: $(echo "$out" | tr '\n' ' ' | cut -c1-300)}"
  fi
}
not_ok() { FAULT_N=$((FAULT_N + 1)); FAULT_FAILED=$((FAULT_FAILED + 1)); echo "not ok $FAULT_N - $1: $2"; }
pass() { FAULT_N=$((FAULT_N + 1)); FAULT_PASSED=$((FAULT_PASSED + 1)); echo "ok $FAULT_N - $1"; }

# equals EXPECTED ACTUAL: for ok (prints both when they differ).
equals() { [ "$1" = "$2" ] || { echo "expected '$1', got '$2'"; return 1; }; }

fault_init() {
  FAULT_NAME=$1
  cd / || exit 1 # the servers run as postgres, which may not enter the checkout
  FW=$(mktemp -d "/tmp/pgfleet-fault-$FAULT_NAME.XXXXXX") || exit 1
  chmod 0700 "$FW"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$FW"
  trap fault_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if ! make -s -C "$FAULT_TOP/tests/tools" BUILD="$FAULT_BUILD" "$FAULT_BUILD/tests/fleet_publish" >"$FW/make.log" 2>&1; then
    cat "$FW/make.log"; not_ok "fleet_publish builds" "see above"; fault_finish; exit 1
  fi
}

fault_cleanup() {
  local rc=$? p
  for p in "${FAULT_BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -n "$NATS_PID" ] && kill -9 "$NATS_PID" 2>/dev/null
  if [ -f "$FW/pg/postmaster.pid" ]; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$FW/pg" -m immediate stop >/dev/null 2>&1
  fi
  if [ "$rc" -ne 0 ] && [ "$FAULT_FINISHED" = 0 ]; then fault_dump_log; fi
  if [ "${FAULT_KEEP:-0}" = 1 ]; then echo "# kept $FW"; else rm -rf "$FW"; fi
  return "$rc"
}

fault_nats_start() {
  local port=${1:--1}
  rm -f "$FW"/*.ports
  "$NATS_SERVER" -js -a 127.0.0.1 -p "$port" -sd "$FW/js" --ports_file_dir "$FW" >>"$FW/nats.log" 2>&1 &
  NATS_PID=$!
  disown "$NATS_PID" 2>/dev/null
  for _ in $(seq 100); do ls "$FW"/*.ports >/dev/null 2>&1 && break; sleep 0.05; done
  NATS_PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$FW"/*.ports 2>/dev/null | head -1)
  NATS_URL="nats://127.0.0.1:$NATS_PORT"
  [ -n "$NATS_PORT" ]
}

fault_pg_init() {
  "${AS_PG[@]}" "$PGBIN/initdb" -D "$FW/pg" -U postgres -A trust --no-sync >"$FW/initdb.log" 2>&1 || { cat "$FW/initdb.log"; return 1; }
  cat >>"$FW/pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$FW'
shared_preload_libraries = 'pgfleet'
pgfleet.database = 'postgres'
pgfleet.nats_url = '$NATS_URL'
pgfleet.batch_size = 100
fsync = on
log_line_prefix = '%m [%p] '
${1:-}
CONF
}
fault_pg_start() { "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$FW/pg" -l "$FW/pg.log" -w -t 60 start >/dev/null; }
fault_pg_stop() { "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$FW/pg" -m fast -w stop >/dev/null; }

fault_sql() { "${AS_PG[@]}" "$PGBIN/psql" -X -qAt -v ON_ERROR_STOP=1 -h "$FW" -d "${2:-postgres}" -c "$1"; }
fault_wait() {
  local deadline=$((SECONDS + $1))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(fault_sql "$2" "${3:-postgres}" 2>/dev/null)" = t ] && return 0
    sleep 0.2
  done
  echo "timed out after $1 s waiting for: $2"
  return 1
}

# Timestamps start 3 h before now: inside the raw retention (fleet.namespace.raw_retention, at least
# 1 h), which the maintenance worker applies, and in the past for up to 10,800 batches.
FAULT_BASE_MS=$(( ($(date +%s) - 3 * 3600) * 1000 ))
fault_publish() { "$PUBLISH" --url "$NATS_URL" --base-ms "$FAULT_BASE_MS" "$@"; }
# fault_publish_bg LOG ARGS...: fleet_publish in the background; sets BG_PID.
fault_publish_bg() {
  local log=$1; shift
  "$PUBLISH" --url "$NATS_URL" --base-ms "$FAULT_BASE_MS" "$@" >"$log" 2>&1 &
  BG_PID=$!
  FAULT_BG_PIDS+=("$BG_PID")
}

fault_agent_state() {
  fault_sql "SELECT count(*) || '/' || count(DISTINCT (s.series_id, s.ts)) || '/' || coalesce(sum(s.value), 0)
             FROM fleet.sample s JOIN fleet.instance i USING (instance_id) WHERE i.agent_id = '$1'" "${2:-postgres}"
}
fault_ledger() { fault_sql "SELECT count(*) FROM fleet.ingest_ledger WHERE agent_id = '$1'" "${2:-postgres}"; }

# fault_expect FIRST N S: expected "count/distinct/sum" (seqs in FAULT_SKIP_SEQS were garbage).
fault_expect() {
  local first=$1 n=$2 s=$3 seqsum cnt skip
  cnt=$n
  seqsum=$(( (first + first + n - 1) * n / 2 ))
  for skip in ${FAULT_SKIP_SEQS:-}; do seqsum=$((seqsum - skip)); cnt=$((cnt - 1)); done
  echo "$((cnt * s))/$((cnt * s))/$((s * 1000 * seqsum + cnt * s * (s - 1) / 2))"
}

# fault_wait_ledger SECONDS AGENT N [DB]: waits until AGENT has N ledger rows.
fault_wait_ledger() {
  fault_wait "$1" "SELECT count(*) = $3 FROM fleet.ingest_ledger WHERE agent_id = '$2'" "${4:-postgres}" ||
    { echo "ledger rows of $2: $(fault_ledger "$2" "${4:-postgres}" 2>&1), expected $3"; return 1; }
}

# fault_no_global_duplicates [DB]: no (series, ts) twice anywhere.
fault_no_global_duplicates() {
  equals t "$(fault_sql "SELECT count(*) = count(DISTINCT (series_id, ts)) FROM fleet.sample" "${1:-postgres}")"
}

# fault_signal_check DESC [PID...]: the server log's "terminated by signal" lines are exactly one per
# PID given (processes this test killed itself), and no other process was terminated by a signal.
fault_signal_check() {
  local desc=$1; shift
  local lines expected_n=$# p bad=""
  lines=$(grep -E 'terminated by signal' "$FW/pg.log" 2>/dev/null)
  local n; n=$(grep -c . <<<"$lines")
  [ -z "$lines" ] && n=0
  for p in "$@"; do
    [ "$(grep -c "(PID $p) was terminated by signal 9" <<<"$lines")" = 1 ] || bad="$bad no single line for killed pid $p;"
  done
  [ "$n" = "$expected_n" ] || bad="$bad $n 'terminated by signal' lines, expected $expected_n: $(echo "$lines" | cut -c1-200 | tr '\n' ' ');"
  if [ -z "$bad" ]; then pass "$desc"; else not_ok "$desc" "$bad"; fi
}

fault_worker_pids() {
  fault_sql "SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'pgfleet ingest'" "${1:-postgres}"
}

fault_dump_log() {
  echo "# --- last lines of the server log"; tail -n 25 "$FW/pg.log" 2>/dev/null | sed 's/^/#   /'
}

# fault_finish: the summary as the last line (the server log's tail before it when a check failed).
fault_finish() {
  [ "$FAULT_FAILED" -gt 0 ] && fault_dump_log
  FAULT_FINISHED=1
  echo "fault: $FAULT_PASSED passed, $FAULT_FAILED failed"
  [ "$FAULT_FAILED" -eq 0 ] && [ "$FAULT_PASSED" -gt 0 ]
}

# fault_standard_stack [CONF-LINES]: NATS + PostgreSQL + CREATE EXTENSION; workers running.
fault_standard_stack() {
  fault_nats_start || { not_ok "nats-server starts" "no ports file"; return 1; }
  fault_pg_init "${1:-}" || { not_ok "initdb" "failed"; return 1; }
  fault_pg_start || { not_ok "PostgreSQL starts" "$(tail -5 "$FW/pg.log")"; return 1; }
  fault_sql "CREATE EXTENSION pgfleet" >/dev/null || { not_ok "CREATE EXTENSION" "failed"; return 1; }
  fault_wait 30 "SELECT count(*) >= 1 AND bool_and(state = 'running') FROM fleet.worker_status WHERE pid IS NOT NULL" >/dev/null ||
    { not_ok "ingest workers running" "$(fault_sql "SELECT * FROM fleet.worker_status" 2>&1)"; return 1; }
}

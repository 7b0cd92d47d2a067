#!/usr/bin/env bash
# e2e: the activity collector sees waits, blocking and long transactions.
#
# A private stack (agent every 1 s, pg_stat_activity sampled every second). The test opens a session
# that takes an ACCESS EXCLUSIVE lock and then stays idle in its transaction, and a second session whose
# SELECT waits for that lock (psql with application_name set). Checks: fleet.activity has observations of
# the waiting session (state active, wait_event_type Lock) and of the idle-in-transaction session, about
# one observation per sample; fleet.blocking has an edge from the waiter's pid to the holder's pid with the
# waiter's query id; fleet.activity_interval reports the longest transaction and idle-in-transaction ages
# (at least the time the holder has been open); samples_taken matches the sampling rate.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 1 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-activity
echo "# e2e agent_activity (state $PF_STATE)"
HOLDER_PID="" WAITER_PID=""
# cleanup: EXIT trap: our two psql sessions, then the stack (pf_teardown keeps the exit status).
cleanup() {
  local rc=$?
  for p in $HOLDER_PID $WAITER_PID; do kill "$p" 2>/dev/null || true; done
  set +e; (exit $rc)  # pf_teardown reads the status; set -e must not end the trap here
  pf_teardown
}
trap cleanup EXIT

if ! pf_stack_up --no-gateway; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts"
pf_wait_until 30 pf_sql_true "SELECT count(*) > 0 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || echo 0)
IID=${IID:-0}
pf_psql "CREATE TABLE locked_t (a int)" >/dev/null

# psql_session APP SQL: a psql session with application_name APP running SQL, in the background.
psql_session() {
  pf_as_owner env PGAPPNAME="$1" "$PF_PSQL" -X -q -h "$PF_STATE/run" -p "$PF_PG_PORT" -d postgres -c "$2" >/dev/null 2>&1 &
}
start=$(date +%s.%N)
# The holder: locks the table, then stays idle in its transaction for 8 s (psql's \! runs on the client).
pf_as_owner env PGAPPNAME=holder "$PF_PSQL" -X -q -h "$PF_STATE/run" -p "$PF_PG_PORT" -d postgres >/dev/null 2>&1 <<'SQL' &
BEGIN;
LOCK TABLE locked_t IN ACCESS EXCLUSIVE MODE;
\! sleep 8
COMMIT;
SQL
HOLDER_PID=$!
sleep 0.5
psql_session waiter "SELECT count(*) FROM locked_t"
WAITER_PID=$!
sleep 2
holder_backend=$(pf_psql "SELECT pid FROM pg_stat_activity WHERE application_name = 'holder'" 2>/dev/null || true)
waiter_backend=$(pf_psql "SELECT pid FROM pg_stat_activity WHERE application_name = 'waiter'" 2>/dev/null || true)
sleep 4

pf_check "the waiting session is observed waiting on a Lock" \
  pf_wait_until 5 pf_sql_true "SELECT sum(observations) >= 3 FROM fleet.activity WHERE instance_id = $IID AND application_name = 'waiter'
                               AND state = 'active' AND wait_event_type = 'Lock' AND ts > to_timestamp($start)"
pf_check "the holder is observed idle in transaction" \
  pf_sql_true "SELECT sum(observations) >= 3 FROM fleet.activity WHERE instance_id = $IID AND application_name = 'holder'
               AND state = 'idle in transaction' AND ts > to_timestamp($start)"
pf_check "at most one observation per sample and session" \
  pf_sql_true "SELECT bool_and(a.observations <= i.samples_taken) FROM fleet.activity a JOIN fleet.activity_interval i USING (instance_id, ts)
               WHERE a.instance_id = $IID AND a.application_name IN ('holder', 'waiter') AND a.ts > to_timestamp($start)"
# (The waiter's query id is still 0 here: it waits while opening the table, before its query id is set.)
edges=$(pf_psql "SELECT string_agg(format('%s->%s q%s %ss', blocked_pid, blocking_pid, blocked_queryid, round(blocked_seconds::numeric, 1)), ', ')
                 FROM fleet.blocking WHERE instance_id = $IID AND ts > to_timestamp($start)" 2>&1 || true)
if pf_sql_true "SELECT count(*) > 0 FROM fleet.blocking WHERE instance_id = $IID AND blocked_pid = ${waiter_backend:-0}
                AND blocking_pid = ${holder_backend:-0} AND blocked_seconds > 0"; then
  pf_ok "a blocking edge waiter ($waiter_backend) -> holder ($holder_backend) is stored"
else
  pf_not_ok "a blocking edge waiter -> holder is stored" "waiter ${waiter_backend:-?}, holder ${holder_backend:-?}; edges: ${edges:-none}"
fi
pf_check "longest transaction and idle-in-transaction ages are reported" \
  pf_sql_true "SELECT max(longest_transaction_seconds) >= 4 AND max(longest_idle_in_transaction_seconds) >= 4
               FROM fleet.activity_interval WHERE instance_id = $IID AND ts > to_timestamp($start)"
pf_check "samples_taken is one per second of the interval" \
  pf_sql_true "SELECT bool_and(samples_taken BETWEEN 1 AND 2) FROM fleet.activity_interval WHERE instance_id = $IID AND ts > to_timestamp($start)"
wait "$HOLDER_PID" "$WAITER_PID" 2>/dev/null || true
HOLDER_PID="" WAITER_PID=""
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

#!/usr/bin/env bash
# e2e: the monitored PostgreSQL restarts under pgbench load; the agent survives, reconnects, reports each
# restart, keeps sending, and every batch it sealed is stored exactly once.
#
# A private central stack (no gateway, no stack agent), a PostgreSQL 15 of the test's own to monitor
# (pf_mon_pg_start: socket only, pg_stat_statements), pgbench -i, then an agent of the test's own on it,
# every collector at 1 s. Three phases of 14 s of pgbench (-c 2, 100 tps, started again whenever the
# server went away), the server going down 5 s into each:
#   1. `pg_ctl restart -m fast` (a clean shutdown: pg_stat_statements saves its statistics);
#   2. `pg_ctl stop -m immediate`, 1 s down, `pg_ctl start` (PostgreSQL 15 still runs pg_stat_statements'
#      shutdown hook then, so its statistics survive this too; the check below does not assume it);
#   3. the postmaster killed with SIGKILL, started again once its children are gone (nothing is saved:
#      pg_stat_statements starts from 0 with a new stats_reset).
# After each: the agent runs; postgres.restarted event number 1, 2, 3 names the new
# pg_postmaster_start_time(); the statements, per pgbench statement, by what the server did (its
# pg_stat_statements_info.stats_reset before and after): kept -> the sum of all deltas ever stored equals
# pg_stat_statements' calls and no delta since the restart is flagged reset (phase 1 must keep); reset ->
# the deltas stored since the server went down equal the calls now and the agent flagged the reset (phase 3
# must reset). So a lost, doubled or negative delta fails either way. Then: no stored delta is negative;
# metrics newer than the last start arrive; each outage the agent noticed is logged once at each end.
# Last the agent is stopped; its last log line says how many batches it sealed in its boot (N) and how many
# wait in the spool (a second boot drains them if any): fleet.ingest_ledger holds exactly batch_seq 1..N
# for that boot (no gap, nothing extra), fleet.sample holds no (series_id, ts) twice for the instance, no
# batch was dropped, and no dead letter exists.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 2 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-pg-restart
echo "# e2e agent_pg_restart (state $PF_STATE)"
AGENT_DIR=$PF_STATE/test-agent
PGBENCH=${PGBENCH:-$PF_PG_BIN/pgbench}
LOAD_LOG=$PF_STATE/pgbench.log
LOAD_PID=""
readonly PGBENCH_FILTER="(query LIKE 'UPDATE pgbench_accounts SET abalance%' OR query LIKE 'SELECT abalance FROM pgbench_accounts%'
  OR query LIKE 'UPDATE pgbench_tellers SET%' OR query LIKE 'UPDATE pgbench_branches SET%' OR query LIKE 'INSERT INTO pgbench_history%')"

# cleanup: EXIT trap: the load, our agent, the monitored PostgreSQL, then the stack.
cleanup() {
  local rc=$?
  set +e
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  pf_agent_stop
  pf_mon_pg_stop
  if [ "$PF_FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
    for f in "$AGENT_DIR/agent.log" "$PF_STATE/mon/postgresql.log" "$LOAD_LOG"; do
      [ -f "$f" ] && { pf_log "--- last lines of $f"; tail -n 12 "$f" | pf_indent; }
    done
  fi
  (exit $rc)
  pf_teardown
}
trap cleanup EXIT

# load SECONDS: pgbench on the monitored PostgreSQL for SECONDS (restarted whenever the server went away).
load() { pf_mon_pgbench "$1" "$LOAD_LOG"; }
# transactions: pgbench transactions processed so far (all runs).
transactions() { grep -o 'number of transactions actually processed: [0-9]*' "$LOAD_LOG" | awk '{ s += $NF } END { print s + 0 }'; }

# pgss_values: "(queryid, calls)" rows of pgbench's statements in the monitored pg_stat_statements, as SQL.
pgss_values() {
  pf_mon_psql "SELECT coalesce(string_agg(format('(%s::bigint, %s::bigint)', queryid, calls), ', '), '(0::bigint, -1::bigint)')
               FROM (SELECT queryid, sum(calls) AS calls FROM pg_stat_statements WHERE $PGBENCH_FILTER GROUP BY 1) p"
}
# compare_deltas SINCE_EPOCH: per pgbench statement "queryid|pgss calls|stored calls since SINCE_EPOCH".
compare_deltas() {
  pf_psql "WITH p(queryid, calls) AS (VALUES $(pgss_values)),
                d AS (SELECT queryid, sum(calls) AS calls FROM fleet.statement_delta WHERE instance_id = $IID
                      AND ts > to_timestamp($1) GROUP BY 1)
           SELECT p.queryid, p.calls, coalesce(d.calls, 0) FROM p LEFT JOIN d USING (queryid) ORDER BY 1"
}
# deltas_match SINCE_EPOCH: true when all 5 statements' stored calls since SINCE_EPOCH equal pg_stat_statements'.
deltas_match() {
  local rows
  rows=$(compare_deltas "$1") || return 1
  [ "$(grep -c '|' <<<"$rows")" = 5 ] && [ -z "$(awk -F'|' '$2 != $3' <<<"$rows")" ]
}
# restarted_events: number of postgres.restarted events of the instance.
restarted_events() { pf_psql "SELECT count(*) FROM fleet.event WHERE instance_id = $IID AND kind = 'postgres.restarted'" 2>/dev/null || echo 0; }
# start_ms: the monitored server's pg_postmaster_start_time() in unix milliseconds.
start_ms() { pf_mon_psql "SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000)::bigint"; }  # as the agent reads it
# event_names_start N: true when the newest postgres.restarted event names start time $1 and there are N.
event_names_start() {
  pf_sql_true "SELECT count(*) = $2 AND (array_agg(attributes->>'postmaster_start_unix_ms' ORDER BY event_id DESC))[1] = '$1'
               FROM fleet.event WHERE instance_id = $IID AND kind = 'postgres.restarted'"
}

if ! pf_stack_up --no-gateway --no-agent; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (without its agent)"
if pf_mon_pg_start "$PF_STATE/mon" && out=$(pf_as_owner "$PGBENCH" -h "$PF_MON_DIR/run" -p "$PF_MON_PORT" -i -q postgres 2>&1); then
  pf_ok "monitored PostgreSQL started and pgbench -i done"
else
  pf_not_ok "monitored PostgreSQL started and pgbench -i done" "$(tail -3 "$PF_STATE/mon/postgresql.log" 2>/dev/null | tr '\n' ' ') ${out:-}"
  pf_finish || exit 1
fi
# no_pgbench_entries: true while pg_stat_statements has none of pgbench's transaction statements.
no_pgbench_entries() { [ "$(pf_mon_psql "SELECT count(*) FROM pg_stat_statements WHERE $PGBENCH_FILTER")" = 0 ]; }
pf_check "pgbench's transaction statements are not in pg_stat_statements yet" no_pgbench_entries

pf_agent_config "$AGENT_DIR"
pf_agent_monitor "$AGENT_DIR"
pf_agent_start "$AGENT_DIR"
[ -n "$PF_AGENT_PID" ] && pf_ok "agent started (pid $PF_AGENT_PID, every 1 s)" || pf_not_ok "agent started" "no pid file"
pf_wait_until 30 pf_sql_true "SELECT count(*) = 1 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || true)
IID=${IID:-0}
if pf_wait_until 20 pf_sql_true "SELECT count(*) > 0 FROM fleet.series($IID, 'pg.database.xact_commit', now() - interval '1 hour', now() + interval '1 minute')"; then
  pf_ok "the agent's metrics arrive (instance_id $IID)"
else
  pf_not_ok "the agent's metrics arrive" "no pg.database.xact_commit for instance '$IID'"
fi
sleep 2  # the statements baseline is taken

# check_phase LABEL EVENTS RESET_BEFORE [EXPECT]: the checks after a phase whose server went down at
# DOWN_EPOCH (unix seconds): the agent runs, EVENTS postgres.restarted events of which the newest names the
# new start time, and the statements: if pg_stat_statements kept its statistics (stats_reset still
# RESET_BEFORE), the sum of all stored deltas equals its calls and no pgbench delta since DOWN_EPOCH is
# flagged reset; if it started again from 0, the deltas stored since DOWN_EPOCH equal its calls and the
# agent flagged the reset. EXPECT (kept or reset) makes the other outcome a failure.
check_phase() {
  local label=$1 events=$2 before=$3 expect=${4:-} after start kept
  after=$(stats_reset)
  start=$(start_ms)
  pf_check "$label: agent still runs" kill -0 "$PF_AGENT_PID"
  if pf_wait_until 15 event_names_start "$start" "$events"; then
    pf_ok "$label: postgres.restarted event number $events names the new start time ($start ms)"
  else
    pf_not_ok "$label: postgres.restarted event number $events names the new start time ($start ms)" \
      "$(restarted_events) events: $(pf_psql "SELECT string_agg(attributes::text, ' ') FROM fleet.event WHERE instance_id = $IID AND kind = 'postgres.restarted'" 2>&1)"
  fi
  kept=reset
  [ "$before" = "$after" ] && kept=kept
  if [ -n "$expect" ] && [ "$expect" != "$kept" ]; then
    pf_not_ok "$label: pg_stat_statements $expect its statistics" "stats_reset $before -> $after"
  fi
  if [ "$kept" = kept ]; then
    if pf_wait_until 15 deltas_match 0; then
      pf_ok "$label: pg_stat_statements kept its statistics; per statement the sum of all stored deltas equals its calls"
    else
      pf_not_ok "$label: statistics kept; the sum of all stored deltas equals pg_stat_statements' calls" \
        "queryid|pgss|stored: $(compare_deltas 0 | tr '\n' ' ')"
    fi
    pf_check "$label: no delta of a pgbench statement since the restart is flagged reset" \
      pf_sql_true "SELECT count(*) = 0 FROM fleet.statement_delta WHERE instance_id = $IID AND reset AND ts > to_timestamp($DOWN_EPOCH)
                   AND queryid IN (SELECT queryid FROM (VALUES $(pgss_values)) p(queryid, calls))"
  else
    if pf_wait_until 15 deltas_match "$DOWN_EPOCH"; then
      pf_ok "$label: pg_stat_statements started again from 0; per statement the deltas stored since equal its calls"
    else
      pf_not_ok "$label: statistics reset; the deltas stored since equal pg_stat_statements' calls" \
        "queryid|pgss|stored: $(compare_deltas "$DOWN_EPOCH" | tr '\n' ' ')"
    fi
    pf_check "$label: the agent flagged the reset (deltas with reset = true after the restart)" \
      pf_sql_true "SELECT count(*) > 0 FROM fleet.statement_delta WHERE instance_id = $IID AND reset AND ts > to_timestamp($DOWN_EPOCH)"
  fi
}
# stats_reset: pg_stat_statements_info.stats_reset of the monitored server.
stats_reset() { pf_mon_psql "SELECT stats_reset FROM pg_stat_statements_info"; }
# mon_start: starts the monitored server (again), retrying while the old one's processes still exit.
mon_start() { pf_mon_ctl -l "$PF_MON_DIR/postgresql.log" -w -t 30 start >/dev/null 2>&1; }

# --- phase 1: a fast (clean) restart under load -------------------------------------------------------------
reset0=$(stats_reset)
load 14 & LOAD_PID=$!
sleep 5
DOWN_EPOCH=$(date +%s.%N)
# -l: the new postmaster must not inherit this command substitution's pipe (it would never be closed)
if out=$(pf_mon_ctl -l "$PF_MON_DIR/postgresql.log" -m fast -w -t 30 restart 2>&1); then pf_ok "pg_ctl restart -m fast under load"; else pf_not_ok "pg_ctl restart -m fast" "$(tail -2 <<<"$out" | tr '\n' ' ')"; fi
wait "$LOAD_PID" || true; LOAD_PID=""
pf_log "pgbench: $(transactions) transactions so far"
check_phase "fast restart" 1 "$reset0" kept

# --- phase 2: an immediate stop and a start under load --------------------------------------------------------
reset1=$(stats_reset)
load 14 & LOAD_PID=$!
sleep 5
out=$(pf_mon_ctl -m immediate -w -t 30 stop 2>&1) || true
DOWN_EPOCH=$(date +%s.%N)
sleep 1
if mon_start; then pf_ok "pg_ctl stop -m immediate, 1 s down, pg_ctl start, under load"; else pf_not_ok "pg_ctl stop -m immediate and start" "$out"; fi
wait "$LOAD_PID" || true; LOAD_PID=""
pf_log "pgbench: $(transactions) transactions so far"
check_phase "immediate stop" 2 "$reset1"

# --- phase 3: the postmaster killed (SIGKILL, nothing saved), then a start under load --------------------------
reset2=$(stats_reset)
load 14 & LOAD_PID=$!
sleep 5
pm=$(head -n 1 "$PF_MON_DIR/data/postmaster.pid")
kill -KILL "$pm"
pf_wait_until 10 bash -c "! kill -0 $pm 2>/dev/null" || true
DOWN_EPOCH=$(date +%s.%N)
sleep 1
# its children exit once they notice the postmaster is gone; until then the shared memory is in use
if pf_wait_until 20 mon_start; then pf_ok "postmaster killed with SIGKILL, started again, under load"; else pf_not_ok "postmaster killed, started again" "$(tail -3 "$PF_MON_DIR/postgresql.log" | tr '\n' ' ')"; fi
wait "$LOAD_PID" || true; LOAD_PID=""
pf_log "pgbench: $(transactions) transactions in all"
check_phase "postmaster killed" 3 "$reset2" reset

pf_check "no stored delta is negative (calls, exec and plan time, rows, blocks)" \
  pf_sql_true "SELECT count(*) = 0 FROM fleet.statement_delta WHERE instance_id = $IID
               AND (calls < 0 OR total_exec_time_ms < 0 OR total_plan_time_ms < 0 OR rows < 0 OR shared_blks_hit < 0)"
pf_check "metrics newer than the last start arrive (xact_commit of database postgres)" \
  pf_wait_until 10 pf_sql_true "SELECT count(*) >= 3 FROM fleet.series($IID, 'pg.database.xact_commit', to_timestamp($(start_ms) / 1000.0), now() + interval '1 minute')
                                WHERE labels->>'datname' = 'postgres'"
n=$(grep -c 'PostgreSQL answers again' "$AGENT_DIR/agent.log" || true)
m=$(grep -c 'cannot collect from PostgreSQL' "$AGENT_DIR/agent.log" || true)
if [ "$n" -ge 2 ] && [ "$n" -le 3 ] && [ "$m" = "$n" ]; then
  pf_ok "each outage the agent noticed is logged once when it starts and once when it ends ($m)"
else
  pf_not_ok "each outage is logged once when it starts and once when it ends" "$m starts, $n ends"
fi

# --- every sealed batch stored exactly once ----------------------------------------------------------------
PF_IID=$IID pf_check_sealed_exactly_once "$AGENT_DIR" 50
pf_check "no batch dropped (agent.spool.dropped stays 0, no spool.dropped event)" \
  pf_sql_true "SELECT coalesce(max(value), -1) = 0 AND (SELECT count(*) = 0 FROM fleet.event WHERE instance_id = $IID AND kind = 'spool.dropped')
               FROM fleet.series($IID, 'agent.spool.dropped', now() - interval '1 hour', now() + interval '1 minute')"
pf_check "no dead letter" pf_sql_true "SELECT count(*) = 0 FROM fleet.dead_letter"
pf_check "the agent logged no ERROR" bash -c "! grep -E ' ERROR: ' '$AGENT_DIR/agent.log'"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

#!/usr/bin/env bash
# e2e: nats-server away for 60 s while pgbench runs and the agent collects every second: every batch the
# agent sealed is stored exactly once, nothing is dropped, the spool empties.
#
# A private central stack (no gateway, no stack agent), a PostgreSQL 15 of the test's own to monitor
# (pf_mon_pg_start) under pgbench (-c 2, 100 tps) for the whole test, and an agent of the test's own on it:
# every collector at 1 s, objects at 2 s. After a few seconds of normal operation nats-server is killed
# (SIGKILL: a publish may be in flight; its JetStream store is kept) and started again 60 s later on the
# same port by `pgfleetctl up`, as tests/e2e/ingest_nats_restart.sh does. Checks:
#   during the outage: the agent runs, spools (dozens of batches), logs the outage once;
#   after it: the spool empties, the agent logs how many spooled batches it delivered, no batch was
#   dropped (agent.spool.dropped 0, no spool.dropped event, no "spool exceeds" line);
#   then the agent is stopped; its last log line says how many batches it sealed in its boot (N):
#   fleet.ingest_ledger holds exactly batch_seq 1..N of that boot (contiguous, no gap, nothing extra);
#   no (series_id, ts) is stored twice for the instance; host.memory.total_bytes has no gap longer than
#   1.5 s across the outage (a sample every second, delivered late); no dead letter.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 2.5 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

readonly OUTAGE=${PF_NATS_OUTAGE:-60}
pf_init e2e-agent-nats-outage
echo "# e2e agent_nats_outage (state $PF_STATE, outage $OUTAGE s)"
AGENT_DIR=$PF_STATE/test-agent
PGBENCH=${PGBENCH:-$PF_PG_BIN/pgbench}
LOAD_LOG=$PF_STATE/pgbench.log
LOAD_PID=""

# cleanup: EXIT trap: the load, our agent, the monitored PostgreSQL, then the stack.
cleanup() {
  local rc=$?
  set +e
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  pf_agent_stop
  pf_mon_pg_stop
  if [ "$PF_FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
    for f in "$AGENT_DIR/agent.log" "$LOAD_LOG"; do
      [ -f "$f" ] && { pf_log "--- last lines of $f"; tail -n 12 "$f" | pf_indent; }
    done
  fi
  (exit $rc)
  pf_teardown
}
trap cleanup EXIT

# load SECONDS: pgbench on the monitored PostgreSQL for SECONDS (restarted whenever the server went away).
load() { pf_mon_pgbench "$1" "$LOAD_LOG"; }
# spool_count: batches waiting in the agent's spool.
spool_count() { find "$AGENT_DIR/spool" -maxdepth 1 -name '*.batch' | wc -l; }
spool_empty() { [ "$(spool_count)" -eq 0 ]; }

if ! pf_stack_up --no-gateway --no-agent; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (without its agent; nats port $PF_NATS_PORT)"
if pf_mon_pg_start "$PF_STATE/mon" && out=$(pf_as_owner "$PGBENCH" -h "$PF_MON_DIR/run" -p "$PF_MON_PORT" -i -q postgres 2>&1); then
  pf_ok "monitored PostgreSQL started and pgbench -i done"
else
  pf_not_ok "monitored PostgreSQL started and pgbench -i done" "$(tail -3 "$PF_STATE/mon/postgresql.log" 2>/dev/null | tr '\n' ' ') ${out:-}"
  pf_finish || exit 1
fi

pf_agent_config "$AGENT_DIR"
pf_agent_monitor "$AGENT_DIR"
cat >>"$AGENT_DIR/agent.toml" <<'TOML'
[collectors.objects]
interval_seconds = 2
TOML
pf_agent_start "$AGENT_DIR"
[ -n "$PF_AGENT_PID" ] && pf_ok "agent started (pid $PF_AGENT_PID, every 1 s, objects every 2 s)" || pf_not_ok "agent started" "no pid file"
pf_wait_until 30 pf_sql_true "SELECT count(*) = 1 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || true)
IID=${IID:-0}
if pf_wait_until 20 pf_sql_true "SELECT count(*) > 0 FROM fleet.series($IID, 'pg.database.xact_commit', now() - interval '1 hour', now() + interval '1 minute')"; then
  pf_ok "the agent's metrics arrive (instance_id $IID)"
else
  pf_not_ok "the agent's metrics arrive" "no pg.database.xact_commit for instance '$IID'"
fi

load $((OUTAGE + 25)) & LOAD_PID=$!
sleep 5

# --- the outage ---------------------------------------------------------------------------------------------
nats_pid=$(cat "$PF_STATE/nats/nats.pid")
kill_epoch=$(date +%s.%N)
kill -KILL "$nats_pid"
pf_wait_until 5 bash -c "! kill -0 $nats_pid 2>/dev/null" || true
pf_log "killed nats-server (pid $nats_pid); back in $OUTAGE s"
sleep $((OUTAGE - 5))
n=$(spool_count)
if [ "$n" -ge $((OUTAGE)) ]; then
  pf_ok "the agent spools while NATS is away ($n batches after $((OUTAGE - 5)) s)"
else
  pf_not_ok "the agent spools while NATS is away (at least one batch a second)" "$n batches after $((OUTAGE - 5)) s"
fi
pf_check "agent still runs" kill -0 "$PF_AGENT_PID"
n=$(grep -c 'cannot publish to NATS' "$AGENT_DIR/agent.log" || true)
[ "$n" = 1 ] && pf_ok "the outage is logged once" || pf_not_ok "the outage is logged once" "$n lines"
sleep 5
if out=$("$PGFLEETCTL" --state "$PF_STATE" up 2>&1) && [ "$(pf_env NATS_PORT)" = "$PF_NATS_PORT" ]; then
  restart_epoch=$(date +%s.%N)
  pf_ok "nats-server started again on port $PF_NATS_PORT after $(awk -v a="$kill_epoch" -v b="$restart_epoch" 'BEGIN { printf "%.1f", b - a }') s"
else
  restart_epoch=$(date +%s.%N)
  pf_not_ok "nats-server started again on the same port" "port $(pf_env NATS_PORT), was $PF_NATS_PORT: $(tail -2 <<<"$out" | tr '\n' ' ')"
fi
if pf_wait_until 40 spool_empty; then
  pf_ok "the spool empties after the outage"
else
  pf_not_ok "the spool empties after the outage" "$(spool_count) batches still spooled after 40 s"
fi
line=$(grep 'publishing to NATS again after' "$AGENT_DIR/agent.log" | head -n 1 || true)
delivered=$(sed -n 's/.*: \([0-9]*\) spooled batches delivered.*/\1/p' <<<"$line")
if [ -n "$delivered" ] && [ "$delivered" -ge "$OUTAGE" ]; then
  pf_ok "the agent logs the end of the outage: ${line#*LOG:  }"
else
  pf_not_ok "the agent logs the end of the outage with the spooled batches delivered" "'$line'"
fi
wait "$LOAD_PID" || true; LOAD_PID=""
pf_log "pgbench: $(grep -o 'number of transactions actually processed: [0-9]*' "$LOAD_LOG" | awk '{ s += $NF } END { print s + 0 }') transactions"
pf_check "no batch dropped from the spool (no drop logged)" \
  bash -c "! grep -E 'spool exceeds spool_max_bytes|batches were dropped' '$AGENT_DIR/agent.log'"
pf_check "agent.spool.dropped stays 0 and no spool.dropped event" \
  pf_wait_until 10 pf_sql_true "SELECT coalesce(max(value), -1) = 0 AND (SELECT count(*) = 0 FROM fleet.event WHERE instance_id = $IID AND kind = 'spool.dropped')
                                FROM fleet.series($IID, 'agent.spool.dropped', to_timestamp($restart_epoch), now() + interval '1 minute')"

# --- every sealed batch stored exactly once -------------------------------------------------------------------
PF_IID=$IID pf_check_sealed_exactly_once "$AGENT_DIR" $((OUTAGE * 2))
gap=$(pf_psql "
  WITH g AS (
    SELECT ts, ts - lag(ts) OVER (ORDER BY ts) AS d
    FROM fleet.series($IID, 'host.memory.total_bytes', now() - interval '1 hour', now() + interval '1 minute'))
  SELECT concat_ws(' ',
    CASE WHEN min(ts) >= to_timestamp($kill_epoch) THEN 'window starts after the outage;' END,
    CASE WHEN max(ts) <= to_timestamp($restart_epoch) THEN 'window ends before the restart;' END,
    (SELECT format('gap of %s s before %s;', round(extract(epoch FROM d)::numeric, 3), ts) FROM g
      WHERE d > interval '1.5 seconds' ORDER BY d DESC LIMIT 1),
    format('(%s samples from %s to %s, largest step %s s)', count(*), min(ts)::time(0), max(ts)::time(0),
      round(extract(epoch FROM max(d))::numeric, 3)))
  FROM g" 2>&1) || gap="query failed: $gap"
if [[ $gap == \(* ]]; then
  pf_ok "host.memory.total_bytes has no gap > 1.5 s across the outage $gap"
else
  pf_not_ok "host.memory.total_bytes has no gap > 1.5 s across the outage" "$gap"
fi
pf_check "no dead letter" pf_sql_true "SELECT count(*) = 0 FROM fleet.dead_letter"
pf_check "the agent logged no ERROR" bash -c "! grep -E ' ERROR: ' '$AGENT_DIR/agent.log'"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

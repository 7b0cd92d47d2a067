#!/usr/bin/env bash
# e2e: ingestion survives a NATS outage without loss or duplicates.
#
# Starts a private stack (agent every 1 s), waits for the agent's samples in SQL, kills nats-server
# (SIGKILL; its JetStream store is kept) for ~5 s, restarts it on the same port with the same config
# (`pgfleetctl up` starts only what is missing), waits until ingestion resumes and the agent's spool is
# drained, then checks in SQL: no duplicate timestamp in any series, and no gap longer than
# 1.5 x interval in host.memory.total_bytes across the whole window including the outage.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 2 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

readonly INTERVAL=1 OUTAGE=5 METRIC=host.memory.total_bytes
pf_init e2e-nats-restart
echo "# e2e ingest_nats_restart (state $PF_STATE)"

# spool_count: number of batches in the agent's spool.
spool_count() { pf_as_owner find "$PF_STATE/agent/spool" -maxdepth 1 -type f | wc -l; }

# spool_empty: true when the agent's spool holds no batch.
spool_empty() { [ "$(spool_count)" -eq 0 ]; }

# nats_gone: true once the killed nats-server has exited.
nats_gone() { ! kill -0 "$nats_pid" 2>/dev/null; }

# instance_id: the central agent's instance id, empty until it is known.
instance_id() {
  pf_psql "SELECT instance_id FROM fleet.instances WHERE namespace = 'default' AND agent_id = 'central'" 2>/dev/null
}

# samples_after EPOCH: true if a sample of METRIC newer than EPOCH (unix seconds) is in SQL.
samples_after() {
  pf_sql_true "SELECT count(*) > 0 FROM fleet.series($IID, '$METRIC', to_timestamp($1), now() + interval '1 minute')"
}

if ! pf_stack_up --interval "$INTERVAL"; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (nats port $PF_NATS_PORT, agent every $INTERVAL s)"

IID=""
deadline=$((SECONDS + 60))
until IID=$(instance_id) && [ -n "$IID" ] && samples_after 0; do
  if [ "$SECONDS" -ge "$deadline" ]; then break; fi
  sleep 0.5
done
if [ -z "$IID" ]; then
  pf_not_ok "agent's samples appear in SQL within 60 s" "no row in fleet.instances for default/central"
  pf_crash_check
  pf_finish || exit 1
fi
if samples_after 0; then
  pf_ok "agent's samples appear in SQL within 60 s (instance_id $IID)"
else
  pf_not_ok "agent's samples appear in SQL within 60 s" "fleet.series($IID, '$METRIC') is empty"
  pf_crash_check
  pf_finish || exit 1
fi
pf_check "fleet.instances shows the instance" \
  pf_sql_true "SELECT count(*) = 1 FROM fleet.instances WHERE instance_id = $IID AND hostname <> '' AND server_version LIKE '15%'"

# --- the outage ----------------------------------------------------------------------------------------
sleep 2
nats_pid=$(cat "$PF_STATE/nats/nats.pid")
kill_epoch=$(date +%s.%N)
kill -KILL "$nats_pid"
pf_wait_until 5 nats_gone || true
pf_log "killed nats-server (pid $nats_pid) at $kill_epoch"
sleep $((OUTAGE - 1))
n=$(spool_count)
if [ "$n" -gt 0 ]; then
  pf_ok "agent spools while NATS is away ($n batches)"
else
  pf_not_ok "agent spools while NATS is away" "spool is empty after $((OUTAGE - 1)) s"
fi
sleep 1

if out=$("$PGFLEETCTL" --state "$PF_STATE" up 2>&1); then
  restart_epoch=$(date +%s.%N)
  if [ "$(pf_env NATS_PORT)" = "$PF_NATS_PORT" ]; then
    pf_ok "nats-server restarted on the same port ($PF_NATS_PORT) by pgfleetctl up"
  else
    pf_not_ok "nats-server restarted on the same port" "port $(pf_env NATS_PORT), was $PF_NATS_PORT"
  fi
else
  restart_epoch=$(date +%s.%N)
  pf_not_ok "nats-server restarted on the same port" "$(echo "$out" | tr '\n' ' ' | cut -c1-300)"
fi

if pf_wait_until 20 samples_after "$restart_epoch"; then
  pf_ok "ingestion resumes after the restart"
else
  pf_not_ok "ingestion resumes after the restart" "no $METRIC sample newer than the restart after 20 s"
fi
if pf_wait_until 20 spool_empty; then
  pf_ok "agent's spool drains"
else
  pf_not_ok "agent's spool drains" "$(spool_count) batches still spooled after 20 s"
fi
sleep 3

# --- what SQL sees ---------------------------------------------------------------------------------------
dups=$(pf_psql "
  SELECT string_agg(format('%s %s: %s rows, %s timestamps', metric, labels, n, d), '; ')
  FROM (SELECT m.metric, f.labels::text AS labels, count(*) AS n, count(DISTINCT f.ts) AS d
        FROM (SELECT DISTINCT metric FROM fleet.instance_series($IID)) m
        CROSS JOIN LATERAL fleet.series($IID, m.metric, now() - interval '1 hour', now() + interval '1 minute') f
        GROUP BY 1, 2
        HAVING count(*) <> count(DISTINCT f.ts)) x" 2>&1) || dups="query failed: $dups"
nseries=$(pf_psql "SELECT count(*) FROM fleet.instance_series($IID)" 2>/dev/null || echo 0)
if [ -z "$dups" ] && [ "${nseries:-0}" -gt 0 ]; then
  pf_ok "no duplicate timestamp in any of the $nseries series"
else
  pf_not_ok "no duplicate timestamp in any series" "${dups:-no series}"
fi

gap=$(pf_psql "
  WITH g AS (
    SELECT ts, ts - lag(ts) OVER (ORDER BY ts) AS d
    FROM fleet.series($IID, '$METRIC', now() - interval '1 hour', now() + interval '1 minute')
    WHERE labels = '{}'::jsonb)
  SELECT concat_ws(' ',
    CASE WHEN min(ts) >= to_timestamp($kill_epoch) THEN 'window starts after the outage;' END,
    CASE WHEN max(ts) <= to_timestamp($restart_epoch) THEN 'window ends before the restart;' END,
    (SELECT format('gap of %s s before %s;', round(extract(epoch FROM d)::numeric, 3), ts) FROM g
      WHERE d > interval '1 second' * $INTERVAL * 1.5 ORDER BY d DESC LIMIT 1),
    format('(%s samples from %s to %s, largest step %s s)', count(*), min(ts)::time(0), max(ts)::time(0),
      round(extract(epoch FROM max(d))::numeric, 3)))
  FROM g" 2>&1) || gap="query failed: $gap"
if [[ $gap == \(* ]]; then
  pf_ok "no gap > 1.5 x interval in $METRIC across the outage $gap"
else
  pf_not_ok "no gap > 1.5 x interval in $METRIC across the outage" "$gap"
fi

pf_check "fleet.instances shows the instance as up" \
  pf_sql_true "SELECT status = 'up' AND last_seen > now() - interval '10 seconds' FROM fleet.instances WHERE instance_id = $IID"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

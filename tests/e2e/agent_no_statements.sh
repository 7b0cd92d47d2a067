#!/usr/bin/env bash
# e2e: a monitored instance without pg_stat_statements.
#
# A private stack without its own agent; pg_stat_statements is dropped from the central database, then an
# agent (the installed pgfleet-agent, agent_id "central", every 1 s) is started by this test. Checks: the
# statements collector reports itself unavailable exactly once (one fleet.event of kind
# collector.unavailable with attribute collector = statements, one log line), while metrics and activity
# keep flowing, and no statement delta is stored. Then CREATE EXTENSION again: the collector notices, an
# event collector.available follows, and statement deltas appear.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 1 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-no-statements
echo "# e2e agent_no_statements (state $PF_STATE)"
AGENT_DIR=$PF_STATE/test-agent

# cleanup: EXIT trap: our agent first, then the stack (pf_teardown keeps the exit status).
cleanup() { local rc=$?; pf_agent_stop; set +e; (exit $rc); pf_teardown; }
trap cleanup EXIT

if ! pf_stack_up --no-gateway --no-agent; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (without its agent)"
pf_check "DROP EXTENSION pg_stat_statements" pf_psql "DROP EXTENSION pg_stat_statements"

pf_agent_config "$AGENT_DIR"
start=$(date +%s.%N)
pf_agent_start "$AGENT_DIR"
[ -n "$PF_AGENT_PID" ] && pf_ok "agent started (pid $PF_AGENT_PID)" || pf_not_ok "agent started" "no pid file"

pf_wait_until 30 pf_sql_true "SELECT count(*) > 0 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || echo 0)
IID=${IID:-0}
pf_check "collector.unavailable event for statements arrives" \
  pf_wait_until 20 pf_sql_true "SELECT count(*) > 0 FROM fleet.event WHERE instance_id = $IID AND kind = 'collector.unavailable'
                                AND attributes->>'collector' = 'statements'"
sleep 5
pf_check "metrics keep flowing (pg.database.xact_commit samples in the last 3 s)" \
  pf_sql_true "SELECT count(*) > 0 FROM fleet.series($IID, 'pg.database.xact_commit', now() - interval '3 seconds', now() + interval '1 minute')"
pf_check "activity keeps flowing (activity intervals stored)" \
  pf_sql_true "SELECT count(*) >= 3 FROM fleet.activity_interval WHERE instance_id = $IID"
pf_check "the unavailable event was sent exactly once" \
  pf_sql_true "SELECT count(*) = 1 FROM fleet.event WHERE instance_id = $IID AND kind = 'collector.unavailable'"
n=$(grep -c 'statements collector not available' "$AGENT_DIR/agent.log" || true)
[ "$n" -eq 1 ] && pf_ok "logged once: $(grep -m1 -o 'statements collector not available.*' "$AGENT_DIR/agent.log" | cut -c1-120)" \
  || pf_not_ok "the unavailability is logged once" "$n lines"
pf_check "no statement delta stored" \
  pf_sql_true "SELECT count(*) = 0 FROM fleet.statement_delta WHERE instance_id = $IID"

pf_check "CREATE EXTENSION pg_stat_statements again" pf_psql "CREATE EXTENSION pg_stat_statements"
pf_check "collector.available event follows" \
  pf_wait_until 15 pf_sql_true "SELECT count(*) = 1 FROM fleet.event WHERE instance_id = $IID AND kind = 'collector.available'"
pf_check "statement deltas appear" \
  pf_wait_until 15 pf_sql_true "SELECT count(*) > 0 FROM fleet.statement_delta WHERE instance_id = $IID"
pf_check "agent still runs" kill -0 "$PF_AGENT_PID"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
[ "$PF_FAILED" -eq 0 ] || { pf_log "--- agent log"; tail -n 20 "$AGENT_DIR/agent.log" | pf_indent; }
pf_finish

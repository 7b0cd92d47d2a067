#!/usr/bin/env bash
# e2e: the objects collector (pg.table.*, pg.index.*, pg.sequence.*), sent only when an object changed.
#
# A private stack without its own agent; the test creates a table with rows, an index and a sequence, plus
# a second table that is never touched again, then starts an agent (agent_id "central", every 1 s, with
# [collectors.objects] interval_seconds = 1). Checks: the table arrives in pg.table.n_live_tup with its row
# count (labels datname, schema, table), the index (pg.index.invalid = 0, size) and the sequence
# (pg.sequence.used_ratio); DELETE + VACUUM arrives (n_live_tup drops, n_dead_tup = 0, vacuum_age_seconds
# appears); function statistics appear once track_functions is on; the untouched table is sent once and not again within the refresh period, while the objects
# collector keeps running (agent.collect.seconds{collector=objects}).
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 1 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-objects
echo "# e2e agent_objects (state $PF_STATE)"
AGENT_DIR=$PF_STATE/test-agent

# cleanup: EXIT trap: our agent first, then the stack (pf_teardown keeps the exit status).
cleanup() { local rc=$?; pf_agent_stop; set +e; (exit $rc); pf_teardown; }
trap cleanup EXIT

if ! pf_stack_up --no-gateway --no-agent; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (without its agent)"

pf_check "objects created (table with 100 rows, index, sequence, untouched table)" pf_psql "
  CREATE TABLE obj_probe (id int PRIMARY KEY, v text);
  INSERT INTO obj_probe SELECT g, 'x' FROM generate_series(1, 100) g;
  CREATE INDEX obj_probe_v ON obj_probe (v);
  CREATE SEQUENCE obj_seq MAXVALUE 1000;
  SELECT setval('obj_seq', 250);
  CREATE TABLE obj_still (id int);
  INSERT INTO obj_still SELECT generate_series(1, 5);"

pf_agent_config "$AGENT_DIR"
cat >>"$AGENT_DIR/agent.toml" <<TOML
[collectors.objects]
interval_seconds = 1
full_refresh_seconds = 600
TOML
pf_agent_start "$AGENT_DIR"
[ -n "$PF_AGENT_PID" ] && pf_ok "agent started (pid $PF_AGENT_PID)" || pf_not_ok "agent started" "no pid file"

pf_wait_until 30 pf_sql_true "SELECT count(*) > 0 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || echo 0)
IID=${IID:-0}
RANGE="now() - interval '10 minutes', now() + interval '1 minute'"

# last value of METRIC for the object whose label KEY is NAME
last_value() {
  echo "(SELECT value FROM fleet.series($IID, '$1', $RANGE) WHERE labels->>'$2' = '$3' ORDER BY ts DESC LIMIT 1)"
}

pf_check "pg.table.n_live_tup shows obj_probe with 100 rows" \
  pf_wait_until 20 pf_sql_true "SELECT $(last_value pg.table.n_live_tup table obj_probe) = 100"
pf_check "table labels are datname, schema, table" \
  pf_sql_true "SELECT labels = '{\"datname\": \"postgres\", \"schema\": \"public\", \"table\": \"obj_probe\"}'::jsonb
               FROM fleet.series($IID, 'pg.table.n_live_tup', $RANGE) WHERE labels->>'table' = 'obj_probe' LIMIT 1"
pf_check "pg.table.size_bytes and relfrozenxid_age arrive" \
  pf_sql_true "SELECT $(last_value pg.table.size_bytes table obj_probe) > 8192 AND $(last_value pg.table.relfrozenxid_age table obj_probe) >= 0"
pf_check "pg.index.invalid = 0 and size_bytes for obj_probe_v (labels with table and index)" \
  pf_wait_until 10 pf_sql_true "SELECT $(last_value pg.index.invalid index obj_probe_v) = 0 AND $(last_value pg.index.size_bytes index obj_probe_v) > 0
    AND (SELECT labels->>'table' = 'obj_probe' FROM fleet.series($IID, 'pg.index.size_bytes', $RANGE) WHERE labels->>'index' = 'obj_probe_v' LIMIT 1)"
pf_check "pg.sequence.used_ratio of obj_seq = 0.25" \
  pf_wait_until 10 pf_sql_true "SELECT $(last_value pg.sequence.used_ratio sequence obj_seq) = 0.25"
pf_check "no pg.function.* while track_functions = none" \
  pf_sql_true "SELECT count(*) = 0 FROM fleet.series($IID, 'pg.function.calls', $RANGE)"
pf_psql "ALTER SYSTEM SET track_functions = 'pl'" >/dev/null
pf_psql "SELECT pg_reload_conf()" >/dev/null
pf_psql "CREATE FUNCTION obj_fn(n int) RETURNS int LANGUAGE plpgsql AS 'BEGIN RETURN n + 1; END'" >/dev/null
pf_psql "SELECT obj_fn(1); SELECT obj_fn(2); SELECT obj_fn(3)" >/dev/null
pf_check "with track_functions = pl: pg.function.calls of obj_fn(n integer) = 3" \
  pf_wait_until 10 pf_sql_true "SELECT $(last_value pg.function.calls function 'obj_fn(n integer)') = 3"
pf_check "no vacuum_age_seconds before the first vacuum" \
  pf_sql_true "SELECT $(last_value pg.table.vacuum_age_seconds table obj_probe) IS NULL"

pf_psql "DELETE FROM obj_probe WHERE id <= 40" >/dev/null
pf_check "deleted rows arrive as n_dead_tup = 40" \
  pf_wait_until 10 pf_sql_true "SELECT $(last_value pg.table.n_dead_tup table obj_probe) = 40"
pf_psql "VACUUM obj_probe" >/dev/null
pf_check "after VACUUM: n_live_tup = 60, n_dead_tup = 0, vacuum_age_seconds appears" \
  pf_wait_until 10 pf_sql_true "SELECT $(last_value pg.table.n_live_tup table obj_probe) = 60
    AND $(last_value pg.table.n_dead_tup table obj_probe) = 0
    AND $(last_value pg.table.vacuum_age_seconds table obj_probe) BETWEEN 0 AND 30"

# The untouched table: sent once (first collection), then not again within full_refresh_seconds.
sleep 4
runs=$(pf_psql "SELECT count(*) FROM fleet.series($IID, 'agent.collect.seconds', $RANGE) WHERE labels->>'collector' = 'objects'")
pf_check "the objects collector keeps running (agent.collect.seconds{collector=objects}: $runs samples)" \
  test "${runs:-0}" -ge 3
still=$(pf_psql "SELECT count(*) FROM fleet.series($IID, 'pg.table.n_live_tup', $RANGE) WHERE labels->>'table' = 'obj_still'")
pf_check "the unchanged table obj_still was sent once, not re-sent ($still samples)" test "${still:-0}" -eq 1
probe=$(pf_psql "SELECT count(*) FROM fleet.series($IID, 'pg.table.n_live_tup', $RANGE) WHERE labels->>'table' = 'obj_probe'")
pf_check "the changed table obj_probe was sent again on its changes ($probe samples)" test "${probe:-0}" -ge 2
# agent.values_collected{source}: what the agent read (sent or not); it reads unchanged objects too
vc=$(pf_psql "SELECT coalesce(max(value) FILTER (WHERE labels->>'source' = 'postgres'), 0) - coalesce(min(value) FILTER (WHERE labels->>'source' = 'postgres'), 0)
                     || ' ' || coalesce(max(value) FILTER (WHERE labels->>'source' = 'host'), 0)
              FROM fleet.series($IID, 'agent.values_collected', $RANGE)")
read -r vc_pg vc_host <<<"$vc"
pf_check "agent.values_collected grows: postgres +${vc_pg:-0}, host ${vc_host:-0} in all" \
  test "${vc_pg%.*}" -ge 100 -a "${vc_host%.*}" -gt 0
pf_check "no objects collection error in the agent log" \
  bash -c "! grep -E 'could not collect object|ERROR' '$AGENT_DIR/agent.log'"
pf_psql "ALTER SYSTEM RESET track_functions" >/dev/null
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

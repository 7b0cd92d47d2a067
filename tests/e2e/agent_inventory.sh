#!/usr/bin/env bash
# e2e: the inventory collector (settings, extensions, databases) and the postgres.restarted event.
#
# A private stack (agent every 1 s). Checks: the first (full) inventory fills fleet.setting,
# fleet.instance_extension and fleet.instance_database; ALTER SYSTEM + pg_reload_conf() of work_mem
# arrives as a changed setting (fleet.setting_change old -> new) and shared_buffers as pending_restart;
# a new extension and a new database appear, and disappear again after DROP (a full inventory); a
# restart of PostgreSQL produces one postgres.restarted event, and collection goes on afterwards.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 1 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-inventory
echo "# e2e agent_inventory (state $PF_STATE)"
if ! pf_stack_up --no-gateway; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts"
pf_wait_until 30 pf_sql_true "SELECT count(*) > 0 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || echo 0)
IID=${IID:-0}

pf_check "settings arrive (all of pg_settings)" \
  pf_wait_until 10 pf_sql_true "SELECT count(*) = (SELECT count(*) FROM pg_settings) FROM fleet.setting WHERE instance_id = $IID"
pf_check "settings carry value, unit and source (shared_buffers)" \
  pf_sql_true "SELECT (f.setting, f.unit, f.source) = (s.setting, s.unit, s.source) FROM fleet.setting f JOIN pg_settings s USING (name)
               WHERE f.instance_id = $IID AND name = 'shared_buffers'"
pf_check "extensions arrive with versions" \
  pf_sql_true "SELECT count(*) = (SELECT count(*) FROM pg_extension) AND bool_and(version IS NOT NULL)
               FROM fleet.instance_extension WHERE instance_id = $IID"
pf_check "databases arrive" \
  pf_sql_true "SELECT array_agg(datname ORDER BY datname) = (SELECT array_agg(datname::text ORDER BY datname) FROM pg_database WHERE NOT datistemplate)
               FROM fleet.instance_database WHERE instance_id = $IID"

old_wm=$(pf_psql "SELECT setting FROM pg_settings WHERE name = 'work_mem'")
pf_psql "ALTER SYSTEM SET work_mem = '7MB'" >/dev/null
pf_psql "ALTER SYSTEM SET shared_buffers = '64MB'" >/dev/null
pf_psql "SELECT pg_reload_conf()" >/dev/null
pf_check "a reloaded setting arrives as a change ($old_wm -> 7168)" \
  pf_wait_until 10 pf_sql_true "SELECT count(*) = 1 FROM fleet.setting_change WHERE instance_id = $IID AND name = 'work_mem'
                                AND old_setting = '$old_wm' AND new_setting = '7168'"
pf_check "a setting needing a restart arrives as pending_restart (shared_buffers)" \
  pf_wait_until 10 pf_sql_true "SELECT pending_restart FROM fleet.setting WHERE instance_id = $IID AND name = 'shared_buffers'"

pf_psql "CREATE EXTENSION hstore" >/dev/null
pf_psql "CREATE DATABASE inventory_probe" >/dev/null
pf_check "a new extension and a new database appear" \
  pf_wait_until 10 pf_sql_true "SELECT (SELECT count(*) FROM fleet.instance_extension WHERE instance_id = $IID AND name = 'hstore') = 1
                                AND (SELECT count(*) FROM fleet.instance_database WHERE instance_id = $IID AND datname = 'inventory_probe') = 1"
pf_psql "DROP EXTENSION hstore" >/dev/null
pf_psql "DROP DATABASE inventory_probe" >/dev/null
pf_check "dropped ones disappear (full inventory)" \
  pf_wait_until 10 pf_sql_true "SELECT (SELECT count(*) FROM fleet.instance_extension WHERE instance_id = $IID AND name = 'hstore') = 0
                                AND (SELECT count(*) FROM fleet.instance_database WHERE instance_id = $IID AND datname = 'inventory_probe') = 0"

pf_psql "ALTER SYSTEM RESET ALL" >/dev/null
restart_epoch=$(date +%s.%N)
if pf_as_owner /usr/lib/postgresql/15/bin/pg_ctl -D "$PF_STATE/pg/data" restart -m fast -w -t 60 >/dev/null 2>&1; then
  pf_ok "PostgreSQL restarted (pg_ctl restart)"
else
  pf_not_ok "PostgreSQL restarted" "pg_ctl restart failed"
fi
pf_check "one postgres.restarted event arrives" \
  pf_wait_until 20 pf_sql_true "SELECT count(*) = 1 FROM fleet.event WHERE instance_id = $IID AND kind = 'postgres.restarted'"
pf_check "pending_restart clears after the restart" \
  pf_wait_until 10 pf_sql_true "SELECT NOT pending_restart FROM fleet.setting WHERE instance_id = $IID AND name = 'shared_buffers'"
pf_check "metrics flow after the restart" \
  pf_wait_until 10 pf_sql_true "SELECT count(*) > 0 FROM fleet.series($IID, 'pg.database.xact_commit', to_timestamp($restart_epoch) + interval '2 seconds', now() + interval '1 minute')"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

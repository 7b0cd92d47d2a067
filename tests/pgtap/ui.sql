-- pgTAP: the UI's read functions (extension/sql/60_ui.sql) and who may queue commands.
BEGIN;
SELECT plan(17);

SELECT has_function('fleet', 'instance_dashboard', ARRAY['bigint', 'timestamp with time zone', 'timestamp with time zone', 'interval']);
SELECT has_function('fleet', 'instance_sparklines', ARRAY['timestamp with time zone', 'timestamp with time zone', 'bigint[]', 'interval']);
SELECT has_function('fleet', 'instance_tables', ARRAY['bigint', 'timestamp with time zone', 'timestamp with time zone']);
SELECT has_function('fleet', 'instance_indexes', ARRAY['bigint', 'timestamp with time zone', 'timestamp with time zone']);
-- Read functions: stable, run as the caller (row-level security applies), executable by fleet_viewer.
SELECT is(array_agg(p.proname::text ORDER BY p.proname), NULL, 'the UI functions are STABLE or IMMUTABLE and SECURITY INVOKER')
FROM pg_proc p WHERE p.pronamespace = 'fleet'::regnamespace
  AND (p.proname LIKE 'instance\_%' OR p.proname LIKE '\_ui\_%')
  AND p.proname <> 'instance_series' AND (p.provolatile = 'v' OR p.prosecdef);
SELECT function_privs_are('fleet', 'instance_dashboard', ARRAY['bigint', 'timestamp with time zone', 'timestamp with time zone', 'interval'],
                          'fleet_viewer', ARRAY['EXECUTE']);
SELECT function_privs_are('fleet', 'instance_sparklines', ARRAY['timestamp with time zone', 'timestamp with time zone', 'bigint[]', 'interval'],
                          'fleet_viewer', ARRAY['EXECUTE']);
SELECT function_privs_are('fleet', 'instance_tables', ARRAY['bigint', 'timestamp with time zone', 'timestamp with time zone'],
                          'fleet_viewer', ARRAY['EXECUTE']);
SELECT function_returns('fleet', 'instance_dashboard', ARRAY['bigint', 'timestamp with time zone', 'timestamp with time zone', 'interval'], 'jsonb');
-- Commands: operators (and admins through them) may call send_command, nobody else; INSERT on fleet.command
-- only for the columns a caller may choose, under a policy.
SELECT function_privs_are('fleet', 'send_command', ARRAY['text', 'text', 'jsonb', 'interval'], 'public', ARRAY[]::text[]);
SELECT function_privs_are('fleet', 'send_command', ARRAY['text', 'text', 'jsonb', 'interval'], 'fleet_operator', ARRAY['EXECUTE']);
SELECT ok(NOT has_function_privilege('fleet_viewer', 'fleet.send_command(text, text, jsonb, interval)', 'EXECUTE'),
          'fleet_viewer may not execute fleet.send_command');
SELECT ok(has_column_privilege('fleet_operator', 'fleet.command', 'kind', 'INSERT')
          AND NOT has_column_privilege('fleet_operator', 'fleet.command', 'created_by', 'INSERT')
          AND NOT has_column_privilege('fleet_operator', 'fleet.command', 'sent_count', 'INSERT')
          AND NOT has_table_privilege('fleet_operator', 'fleet.command', 'UPDATE')
          AND NOT has_table_privilege('fleet_operator', 'fleet.command', 'DELETE'),
          'fleet_operator inserts agent_id, kind, args, expires_at only, and never updates or deletes commands');
SELECT ok(NOT has_table_privilege('fleet_viewer', 'fleet.command', 'INSERT'), 'fleet_viewer may not insert commands');
SELECT policies_are('fleet', 'command', ARRAY['command_visible', 'command_queue']);
SELECT policy_cmd_is('fleet', 'command', 'command_queue', 'INSERT', 'the command_queue policy is for INSERT');
SELECT policy_roles_are('fleet', 'command', 'command_queue', ARRAY['fleet_operator']);

SELECT * FROM finish();
ROLLBACK;

-- pgTAP: the shape of schema fleet — tables, keys, views, functions, privileges.
BEGIN;
SELECT plan(49);

SELECT has_schema('fleet');
-- (the tables of the schema, without the daily partitions of the sample tiers, whose names carry dates)
SELECT set_eq($$SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = 'fleet'::regnamespace
                AND c.relkind IN ('r', 'p') AND c.relname !~ '_[0-9]{8}$'$$,
              ARRAY['namespace', 'agent', 'instance', 'metric', 'series', 'series_set', 'sample_block', 'sample_chunk',
                                 'sample_block_default', 'sample_chunk_default',
                                 'metric_keyframe', 'ingest_ledger', 'dead_letter', 'namespace_member',
                                 'statement_text', 'statement_delta', 'statement_hourly', 'statement_6h', 'activity_interval', 'activity', 'blocking',
                                 'setting', 'setting_change', 'instance_extension', 'instance_database', 'event',
                                 'command_result', 'command', 'rollup_1m', 'rollup_1h', 'rollup_pending',
                                 'maintenance_run'], 'Schema fleet should have the correct tables');
SELECT views_are('fleet', ARRAY['instances', 'worker_status', 'commands', 'sample']);
SELECT col_is_pk('fleet', 'ingest_ledger', ARRAY['agent_id', 'boot_id', 'batch_seq'], 'the ledger key is the batch identity');
SELECT col_is_pk('fleet', 'series', ARRAY['instance_id', 'metric_id', 'labels'], 'series are unique per instance, metric, labels');
SELECT col_is_unique('fleet', 'dead_letter', ARRAY['stream', 'stream_seq'], 'a message is dead-lettered once');
SELECT col_is_pk('fleet', 'agent', ARRAY['agent_id'], 'an agent is known by its agent_id');
SELECT col_is_unique('fleet', 'instance', ARRAY['agent_id'], 'one instance per agent');
SELECT col_not_null('fleet', 'sample_block', c, 'sample_block.' || c || ' is not null')
FROM unnest(ARRAY['instance_id', 'ts', 'series_set_id', 'vals']) AS c;
SELECT has_index('fleet', 'sample_block', 'sample_block_instance_ts', ARRAY['instance_id', 'ts']);

-- Every table that holds instance data has instance_id first in its key (architecture §4).
SELECT is((SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = ('fleet.' || t)::regclass AND (i.indisprimary OR i.indexrelid::regclass::text LIKE '%instance%')
           ORDER BY i.indisprimary DESC LIMIT 1),
          'instance_id', 'fleet.' || t || ' is keyed by instance_id first')
FROM unnest(ARRAY['series', 'series_set', 'sample_block', 'sample_chunk', 'metric_keyframe']) AS t;

SELECT has_function('fleet', 'series', ARRAY['bigint', 'text', 'timestamp with time zone', 'timestamp with time zone']);
SELECT has_function('fleet', 'rate', ARRAY['bigint', 'text', 'timestamp with time zone', 'timestamp with time zone']);
SELECT has_function('fleet', 'instance_series', ARRAY['bigint']);
SELECT has_function('fleet', 'worker_status', ARRAY[]::text[]);
SELECT has_function('fleet', 'decode_envelope', ARRAY['bytea']);
SELECT function_lang_is('fleet', 'worker_status', ARRAY[]::text[], 'c');
SELECT function_lang_is('fleet', 'decode_envelope', ARRAY['bytea'], 'c');
SELECT volatility_is('fleet', 'series', ARRAY['bigint', 'text', 'timestamp with time zone', 'timestamp with time zone'], 'stable');
SELECT is_strict('fleet', 'decode_envelope', ARRAY['bytea']);

-- Functions pin their search_path (no search_path capture by callers' objects).
-- (One test for all of them, so the plan does not change with every new function.)
SELECT is(array_agg(proname::text ORDER BY proname), NULL, 'every SQL/PL/pgSQL function in fleet pins search_path')
FROM pg_proc WHERE pronamespace = 'fleet'::regnamespace
  AND prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
  AND NOT coalesce(proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);

-- Privileges: PUBLIC may use the schema and the read API, never the ingest function or raw tables.
SELECT schema_privs_are('fleet', 'public', ARRAY['USAGE']);
SELECT function_privs_are('fleet', '_ingest_metrics',
    ARRAY['text', 'text', 'text', 'bigint', 'bigint', 'jsonb', 'text[]', 'text[]', 'text[]', 'jsonb[]', 'integer[]',
          'timestamp with time zone[]', 'double precision[]'], 'public', ARRAY[]::text[]);
SELECT table_privs_are('fleet', t, 'public', ARRAY[]::text[], 'public has no privilege on fleet.' || t)
FROM unnest(ARRAY['sample', 'ingest_ledger', 'dead_letter', 'agent', 'instance']) AS t;

-- Access control (50_access.sql): group roles, RLS on every table of instance data, views as invoker.
SELECT has_role(r) FROM unnest(ARRAY['fleet_viewer', 'fleet_operator', 'fleet_admin']) AS r;
SELECT is_member_of('fleet_viewer', 'fleet_operator');
SELECT is_member_of('fleet_operator', 'fleet_admin');
SELECT is(array_agg(c.relname::text ORDER BY c.relname), NULL, 'every table with instance_id or agent_id has row-level security')
FROM pg_class c
WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname IN ('instance_id', 'agent_id'));
SELECT is(array_agg(c.relname::text ORDER BY c.relname), NULL, 'every view is security_invoker')
FROM pg_class c
WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind = 'v'
  AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false);
SELECT is(array_agg(p.proname::text ORDER BY p.proname), ARRAY['_create_user'],
          'the only SECURITY DEFINER function is fleet._create_user')
FROM pg_proc p WHERE p.pronamespace = 'fleet'::regnamespace AND p.prosecdef;
SELECT function_privs_are('fleet', '_create_user', ARRAY['text', 'text', 'text', 'text'], 'public', ARRAY[]::text[]);
SELECT table_privs_are('fleet', 'sample', 'fleet_viewer', ARRAY['SELECT']);
SELECT table_privs_are('fleet', 'ingest_ledger', 'fleet_viewer', ARRAY[]::text[]);
SELECT function_privs_are('fleet', 'instance_series', ARRAY['bigint'], 'fleet_viewer', ARRAY['EXECUTE']);

-- Behaviour through pgTAP: errors carry the documented SQLSTATE.
SELECT throws_ok($$SELECT fleet.decode_envelope('\x00'::bytea)$$, '22P03', NULL, 'garbage raises invalid_binary_representation');
SELECT throws_ok($$SET pgfleet.nonexistent = 1$$, '42602', NULL, 'the pgfleet. prefix is reserved');

SELECT * FROM finish();
ROLLBACK;

-- pgTAP: the shape of schema fleet — tables, keys, views, functions, privileges.
BEGIN;
SELECT plan(37);

SELECT has_schema('fleet');
SELECT tables_are('fleet', ARRAY['namespace', 'agent', 'instance', 'metric', 'series', 'sample',
                                 'ingest_ledger', 'dead_letter']);
SELECT views_are('fleet', ARRAY['instances', 'worker_status']);
SELECT col_is_pk('fleet', 'ingest_ledger', ARRAY['agent_id', 'boot_id', 'batch_seq'], 'the ledger key is the batch identity');
SELECT col_is_pk('fleet', 'series', ARRAY['instance_id', 'metric_id', 'labels'], 'series are unique per instance, metric, labels');
SELECT col_is_unique('fleet', 'dead_letter', ARRAY['stream', 'stream_seq'], 'a message is dead-lettered once');
SELECT col_is_pk('fleet', 'agent', ARRAY['agent_id'], 'an agent is known by its agent_id');
SELECT col_is_unique('fleet', 'instance', ARRAY['agent_id'], 'one instance per agent');
SELECT col_not_null('fleet', 'sample', c, 'sample.' || c || ' is not null')
FROM unnest(ARRAY['instance_id', 'series_id', 'ts', 'value']) AS c;
SELECT has_index('fleet', 'sample', 'sample_instance_series_ts', ARRAY['instance_id', 'series_id', 'ts']);

-- Every table that holds instance data has instance_id first in its key (architecture §4).
SELECT is((SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = ('fleet.' || t)::regclass AND (i.indisprimary OR i.indexrelid::regclass::text LIKE '%instance%')
           ORDER BY i.indisprimary DESC LIMIT 1),
          'instance_id', 'fleet.' || t || ' is keyed by instance_id first')
FROM unnest(ARRAY['series', 'sample']) AS t;

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
SELECT ok(proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], 'fleet.' || proname || ' pins search_path')
FROM pg_proc WHERE pronamespace = 'fleet'::regnamespace
  AND prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'));

-- Privileges: PUBLIC may use the schema and the read API, never the ingest function or raw tables.
SELECT schema_privs_are('fleet', 'public', ARRAY['USAGE']);
SELECT function_privs_are('fleet', '_ingest_metrics',
    ARRAY['text', 'text', 'text', 'bigint', 'bigint', 'jsonb', 'text[]', 'text[]', 'text[]', 'jsonb[]', 'integer[]',
          'timestamp with time zone[]', 'double precision[]'], 'public', ARRAY[]::text[]);
SELECT table_privs_are('fleet', t, 'public', ARRAY[]::text[], 'public has no privilege on fleet.' || t)
FROM unnest(ARRAY['sample', 'ingest_ledger', 'dead_letter', 'agent', 'instance']) AS t;

-- Behaviour through pgTAP: errors carry the documented SQLSTATE.
SELECT throws_ok($$SELECT fleet.decode_envelope('\x00'::bytea)$$, '22P03', NULL, 'garbage raises invalid_binary_representation');
SELECT throws_ok($$SET pgfleet.nonexistent = 1$$, '42602', NULL, 'the pgfleet. prefix is reserved');

SELECT * FROM finish();
ROLLBACK;

-- ui: the read functions of the web UI (extension/sql/60_ui.sql) on known data: the dashboard's buckets
-- (raw and 1-minute tiers), counters as reset-aware rates, connections by state, "not collected" charts,
-- sparklines, the tables and indexes pages, tenancy through them, and who may queue commands.
-- Timestamps are relative to now (retention keeps raw samples 14 days), so only facts are printed; all
-- in one transaction that is rolled back.
SET TIME ZONE 'UTC';
\set ON_ERROR_ROLLBACK on
BEGIN;
-- 30 minutes of one scrape every 10 s (k = 0..179), from the full hour two hours ago.
CREATE TEMP TABLE src AS
SELECT g AS k, date_trunc('hour', now()) - interval '2 hours' + g * interval '10 seconds' AS ts
FROM generate_series(0, 179) AS g;
SELECT date_trunc('hour', now()) - interval '2 hours' AS t0 \gset
SELECT sum(fleet._ingest_metrics('ui-a', 'ui-ns', 'boot-1', k + 1, k + 1, CASE WHEN k = 0 THEN '{"hostname": "ui-a-host"}'::jsonb END,
    ARRAY['host.cpu.utilization', 'host.memory.used_bytes', 'host.memory.available_bytes', 'pg.database.xact_commit',
          'pg.database.xact_commit', 'pg.database.xact_rollback', 'pg.database.blks_hit', 'pg.database.blks_read',
          'pg.database.numbackends', 'pg.database.numbackends', 'pg.wal.wal_bytes'],
    ARRAY['gauge', 'gauge', 'gauge', 'counter', 'counter', 'counter', 'counter', 'counter', 'gauge', 'gauge', 'counter'],
    ARRAY['percent', 'bytes', 'bytes', '', '', '', '', '', '', '', 'bytes'],
    ARRAY['{}', '{}', '{}', '{"datname": "app"}', '{"datname": "postgres"}', '{"datname": "app"}', '{"datname": "app"}',
          '{"datname": "app"}', '{"datname": "app"}', '{"datname": "postgres"}', '{}']::jsonb[],
    ARRAY[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ARRAY[ts, ts, ts, ts, ts, ts, ts, ts, ts, ts, ts],
    -- cpu alternates 20/30; commits: app 10/s, postgres 5/s with a reset to 5 at k = 90; rollbacks 1/s;
    -- 90 hits and 10 reads per second; 6 + 2 backends; 1000 WAL bytes per second
    ARRAY[20 + (k % 2) * 10, 1e9, 3e9, 1000 + 100 * k, CASE WHEN k < 90 THEN 50 * k ELSE 5 + 50 * (k - 90) END,
          10 * k, 900 * k, 100 * k, 6, 2, 10000 * k]::float8[])) AS stored
FROM src;
-- Activity every 10 s with 10 samples: one session active on CPU, one active waiting on a lock, one idle
-- in transaction; so 2 active, 1 idle in transaction, and 8 - 3 = 5 idle.
SELECT sum(fleet._ingest_payload('activity', 'ui-a', 'ui-ns', 'boot-act', k + 1, 1000 + k, NULL, jsonb_build_object(
    'interval_start_ms', (extract(epoch FROM ts) * 1000)::bigint - 10000, 'interval_end_ms', (extract(epoch FROM ts) * 1000)::bigint,
    'samples_taken', 10, 'longest_transaction_seconds', 1, 'longest_idle_in_transaction_seconds', 1,
    'groups', jsonb_build_array(
        jsonb_build_object('state', 'active', 'wait_event_type', '', 'wait_event', '', 'queryid', 1, 'backend_type', 'client backend',
                           'datname', 'app', 'usename', 'u', 'application_name', 'a', 'observations', 10),
        jsonb_build_object('state', 'active', 'wait_event_type', 'Lock', 'wait_event', 'relation', 'queryid', 2,
                           'backend_type', 'client backend', 'datname', 'app', 'usename', 'u', 'application_name', 'a', 'observations', 10),
        jsonb_build_object('state', 'idle in transaction', 'wait_event_type', 'Client', 'wait_event', 'ClientRead', 'queryid', 3,
                           'backend_type', 'client backend', 'datname', 'app', 'usename', 'u', 'application_name', 'a', 'observations', 10)),
    'blocking', '[]'::jsonb))) AS stored
FROM src WHERE k > 0;
-- Objects: table orders sent at k = 0 and, changed, at k = 60; table events and index orders_pkey at k = 0.
SELECT sum(fleet._ingest_metrics('ui-a', 'ui-ns', 'boot-obj', o.seq, 2000 + o.seq, NULL,
    ARRAY['pg.table.size_bytes', 'pg.table.n_live_tup', 'pg.table.n_dead_tup', 'pg.table.seq_scan', 'pg.table.idx_scan',
          'pg.table.vacuum_age_seconds', 'pg.table.relfrozenxid_age'],
    ARRAY['gauge', 'gauge', 'gauge', 'counter', 'counter', 'gauge', 'gauge'], ARRAY['bytes', '', '', '', '', 'seconds', ''],
    array_fill(o.labels, ARRAY[7]), ARRAY[0, 1, 2, 3, 4, 5, 6], array_fill(o.ts, ARRAY[7]), o.vals)) AS stored
FROM (VALUES (1, '{"datname": "app", "schema": "public", "table": "orders"}'::jsonb, :'t0'::timestamptz,
              ARRAY[8192, 100, 0, 5, 0, 60, 1000]::float8[]),
             (2, '{"datname": "app", "schema": "public", "table": "orders"}', :'t0'::timestamptz + interval '10 minutes',
              ARRAY[16384, 300, 100, 10, 30, 30, 1200]::float8[]),
             (3, '{"datname": "app", "schema": "public", "table": "events"}', :'t0'::timestamptz,
              ARRAY[65536, 1000, 10, 1, 3, 7200, 900]::float8[])) AS o(seq, labels, ts, vals);
SELECT fleet._ingest_metrics('ui-a', 'ui-ns', 'boot-obj', 4, 2004, NULL,
    ARRAY['pg.index.size_bytes', 'pg.index.idx_scan', 'pg.index.invalid'], ARRAY['gauge', 'counter', 'gauge'], ARRAY['bytes', '', ''],
    array_fill('{"datname": "app", "schema": "public", "table": "orders", "index": "orders_pkey"}'::jsonb, ARRAY[3]),
    ARRAY[0, 1, 2], array_fill(:'t0'::timestamptz, ARRAY[3]), ARRAY[16384, 30, 0]) AS stored;
-- A second namespace with one instance.
SELECT fleet._ingest_metrics('ui-b', 'ui-other', 'boot-1', 1, 3000, '{"hostname": "ui-b-host"}',
    ARRAY['host.cpu.utilization'], ARRAY['gauge'], ARRAY['percent'], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY[:'t0'::timestamptz], ARRAY[50]) AS stored;
SELECT instance_id AS a FROM fleet.instances WHERE agent_id = 'ui-a' \gset
SELECT instance_id AS b FROM fleet.instances WHERE agent_id = 'ui-b' \gset

-- The dashboard over the 30 minutes: 10 s raw buckets, one grid (181 bucket starts), charts in order.
CREATE TEMP TABLE d AS SELECT fleet.instance_dashboard(:a, :'t0', :'t0'::timestamptz + interval '30 minutes') AS j;
SELECT j->'step' AS step, j->>'tier' AS tier, jsonb_array_length(j->'ts') AS buckets,
       (j->'ts'->>0)::bigint = extract(epoch FROM :'t0'::timestamptz)::bigint AS starts_at_from FROM d;
-- Per series: how many buckets have a value, min and max.
SELECT c->>'id' AS chart, c->>'unit' AS unit, c->'stacked' AS stacked, c->'collected' AS collected, s->>'name' AS series,
       count(v.v) AS buckets, round(min(v.v::float8)::numeric, 2) AS min, round(max(v.v::float8)::numeric, 2) AS max
FROM d, jsonb_array_elements(j->'charts') WITH ORDINALITY AS ch(c, pos)
LEFT JOIN LATERAL jsonb_array_elements(c->'series') WITH ORDINALITY AS se(s, n) ON true
LEFT JOIN LATERAL (SELECT x AS v FROM jsonb_array_elements(s->'values') x WHERE x <> 'null') v ON true
GROUP BY ch.pos, c, se.n, s ORDER BY ch.pos, se.n;
-- Every series has one value (or null) per bucket; the chart not collected says why.
SELECT bool_and(jsonb_array_length(s->'values') = jsonb_array_length(j->'ts')) AS aligned
FROM d, jsonb_array_elements(j->'charts') c, jsonb_array_elements(c->'series') s;
SELECT c->>'id' AS chart, c->>'note' AS note FROM d, jsonb_array_elements(j->'charts') c WHERE c->>'note' IS NOT NULL;

-- 20 s buckets: two samples each, the gauge is their average.
SELECT j->'step' AS step, (SELECT array_agg(DISTINCT x::text) FROM jsonb_array_elements(c->'series'->0->'values') x) AS cpu_values
FROM (SELECT fleet.instance_dashboard(:a, :'t0', :'t0'::timestamptz + interval '30 minutes', '20 seconds') AS j) q,
     jsonb_array_elements(j->'charts') c WHERE c->>'id' = 'cpu';
-- 1-minute buckets come from the 1-minute rollups; a counter's rate only for complete buckets.
SELECT fleet.run_rollups() > 0 AS rolled_up;
SELECT j->'step' AS step, j->>'tier' AS tier, c->>'id' AS chart, s->>'name' AS series,
       (SELECT count(*) FROM jsonb_array_elements(s->'values') x WHERE x <> 'null') AS buckets,
       (SELECT array_agg(DISTINCT round(x::text::numeric, 2)) FROM jsonb_array_elements(s->'values') x WHERE x <> 'null') AS distinct_values
FROM (SELECT fleet.instance_dashboard(:a, :'t0', :'t0'::timestamptz + interval '30 minutes', '1 minute') AS j) q,
     jsonb_array_elements(j->'charts') c, jsonb_array_elements(c->'series') s
WHERE c->>'id' IN ('cpu', 'tps', 'wal', 'cache') ORDER BY 3, 4;
-- Explicit steps are rounded up to whole minutes (hours) beyond a minute (an hour).
SELECT j->'step' AS step, j->>'tier' AS tier, jsonb_array_length(j->'ts') AS buckets
FROM (VALUES (interval '90 seconds'), (interval '61 minutes')) AS s(step),
     LATERAL (SELECT fleet.instance_dashboard(:a, :'t0', :'t0'::timestamptz + interval '6 hours', s.step) AS j) q;
-- Default steps from the range.
SELECT r AS range, j->'step' AS step, j->>'tier' AS tier, jsonb_array_length(j->'ts') <= 201 AS at_most_201
FROM (VALUES (interval '15 minutes'), (interval '1 hour'), (interval '6 hours'), (interval '1 day'), (interval '7 days'),
             (interval '30 days')) AS x(r),
     LATERAL (SELECT fleet.instance_dashboard(:a, now() - x.r, now()) AS j) q;
-- Refused: an empty range, more than 1000 buckets. An unknown instance is NULL.
\set VERBOSITY terse
SELECT fleet.instance_dashboard(:a, now(), now() - interval '1 hour');
\set VERBOSITY default
SELECT fleet.instance_dashboard(:a, now() - interval '1 day', now(), '10 seconds');
SELECT fleet.instance_dashboard(-1, now() - interval '1 hour', now()) IS NULL AS unknown_is_null;

-- Sparklines: CPU and TPS per instance on one grid (1-minute buckets over an hour).
CREATE TEMP TABLE sp AS SELECT fleet.instance_sparklines(:'t0', :'t0'::timestamptz + interval '1 hour', ARRAY[:a, :b]::bigint[]) AS j;
SELECT j->'step' AS step, j->>'tier' AS tier, jsonb_array_length(j->'ts') AS buckets FROM sp;
SELECT (i->>'instance_id')::bigint = :a AS is_a,
       (SELECT count(*) FROM jsonb_array_elements(i->'cpu') x WHERE x <> 'null') AS cpu_buckets,
       (SELECT array_agg(DISTINCT x::text) FROM jsonb_array_elements(i->'cpu') x WHERE x <> 'null') AS cpu,
       (SELECT count(*) FROM jsonb_array_elements(i->'tps') x WHERE x <> 'null') AS tps_buckets,
       (SELECT max(round(x::text::numeric, 2)) FROM jsonb_array_elements(i->'tps') x WHERE x <> 'null') AS tps_max
FROM sp, jsonb_array_elements(j->'instances') i ORDER BY 1 DESC;

-- Tables and indexes: the latest values per object within the range; vacuum age grows with the time
-- since the sample (orders: 30 s at +10 min, so 30 + 20 min at +30 min).
SELECT datname, schema_name, table_name, size_bytes, n_live_tup, n_dead_tup, dead_ratio, seq_scan, idx_scan,
       idx_scan_share, vacuum_age_seconds, relfrozenxid_age, sampled_at - :'t0'::timestamptz AS sampled_after_t0
FROM fleet.instance_tables(:a, :'t0', :'t0'::timestamptz + interval '30 minutes');
SELECT table_name, size_bytes FROM fleet.instance_tables(:a, :'t0', :'t0'::timestamptz + interval '5 minutes');
SELECT datname, schema_name, table_name, index_name, size_bytes, idx_scan, invalid
FROM fleet.instance_indexes(:a, :'t0', :'t0'::timestamptz + interval '30 minutes');
SELECT count(*) AS tables_outside_the_range FROM fleet.instance_tables(:a, :'t0'::timestamptz + interval '11 minutes',
                                                                        :'t0'::timestamptz + interval '30 minutes');

-- Tenancy: a viewer of ui-ns sees nothing of ui-other through these functions.
SELECT fleet.create_user('regress_ui_viewer', 'viewer', 'a-long-password-1', 'ui-ns');
SELECT fleet.create_user('regress_ui_operator', 'operator', 'a-long-password-2', 'ui-ns');
SELECT fleet.create_user('regress_ui_admin', 'admin', 'a-long-password-3');
SET ROLE regress_ui_viewer;
SELECT fleet.instance_dashboard(:b, :'t0', :'t0'::timestamptz + interval '30 minutes') IS NULL AS b_dashboard_is_null;
SELECT jsonb_array_length(fleet.instance_dashboard(:a, :'t0', :'t0'::timestamptz + interval '30 minutes')->'charts') AS a_charts;
SELECT array_agg((i->>'instance_id')::bigint = :a) AS only_a
FROM jsonb_array_elements(fleet.instance_sparklines(:'t0', :'t0'::timestamptz + interval '1 hour', ARRAY[:a, :b]::bigint[])->'instances') i;
SELECT count(*) AS b_tables FROM fleet.instance_tables(:b, '-infinity', 'infinity');
-- A viewer may not queue commands: refused by the database.
SELECT fleet.send_command('ui-a', 'ping');
INSERT INTO fleet.command (agent_id, kind, expires_at) VALUES ('ui-a', 'ping', now() + interval '1 minute');
RESET ROLE;
-- An operator may queue ping and collect_now for the agents it sees, as itself, for at most a day.
SET ROLE regress_ui_operator;
SELECT fleet.send_command('ui-a', 'ping') IS NOT NULL AS queued;
SELECT fleet.send_command('ui-a', 'collect_now') IS NOT NULL AS queued;
SELECT agent_id, kind, created_by, state FROM fleet.commands ORDER BY kind;
SELECT fleet.send_command('ui-b', 'ping');
SELECT fleet.send_command('ui-a', 'shutdown');
INSERT INTO fleet.command (agent_id, kind, expires_at, created_by) VALUES ('ui-a', 'ping', now() + interval '1 minute', 'someone_else');
INSERT INTO fleet.command (agent_id, kind, expires_at) VALUES ('ui-a', 'ping', now() + interval '2 days');
INSERT INTO fleet.command (agent_id, kind, expires_at) VALUES ('ui-b', 'ping', now() + interval '1 minute');
UPDATE fleet.command SET kind = 'shutdown';
DELETE FROM fleet.command;
RESET ROLE;
-- Other kinds are for admins.
SET ROLE regress_ui_admin;
SELECT fleet.send_command('ui-b', 'shutdown') IS NOT NULL AS queued;
RESET ROLE;
SELECT agent_id, kind, created_by FROM fleet.command ORDER BY kind;
ROLLBACK;
\set ON_ERROR_ROLLBACK off
SELECT count(*) AS roles_left FROM pg_roles WHERE rolname LIKE 'regress\_ui%';
-- Sequences do not roll back: put them where the next test expects them.
SELECT setval(pg_get_serial_sequence('fleet.' || t, c), coalesce(m, 0) + 1, false) > 0 AS reset
FROM (VALUES ('namespace', 'namespace_id', (SELECT max(namespace_id) FROM fleet.namespace)),
             ('instance', 'instance_id', (SELECT max(instance_id) FROM fleet.instance)),
             ('metric', 'metric_id', (SELECT max(metric_id) FROM fleet.metric)),
             ('series', 'series_id', (SELECT max(series_id) FROM fleet.series))) AS s(t, c, m);

-- ingest: fleet._ingest_metrics stores a batch exactly once; the read API returns it.
SET TIME ZONE 'UTC';

-- First batch of agent a1: registers namespace, agent, instance, metrics and series.
SELECT fleet._ingest_metrics('a1', 'team-a', 'boot-1', 1, 101,
    '{"hostname": "db1", "server_version": "15.20", "system_identifier": "7300000000000000001", "in_recovery": false}',
    ARRAY['pg.database.xact_commit', 'host.memory.used_bytes'], ARRAY['counter', 'gauge'], ARRAY['', 'bytes'],
    ARRAY['{"datname": "app"}', '{}']::jsonb[],
    ARRAY[0, 1, 0, 1],
    ARRAY['2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00', '2026-01-01 00:00:10+00', '2026-01-01 00:00:10+00']::timestamptz[],
    ARRAY[100, 4096, 150, 8192]) AS stored;

-- The same batch again (a redelivery): the ledger makes it a no-op.
SELECT fleet._ingest_metrics('a1', 'team-a', 'boot-1', 1, 101, NULL,
    ARRAY['pg.database.xact_commit', 'host.memory.used_bytes'], ARRAY['counter', 'gauge'], ARRAY['', 'bytes'],
    ARRAY['{"datname": "app"}', '{}']::jsonb[],
    ARRAY[0, 1, 0, 1],
    ARRAY['2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00', '2026-01-01 00:00:10+00', '2026-01-01 00:00:10+00']::timestamptz[],
    ARRAY[100, 4096, 150, 8192]) AS stored;
SELECT count(*) AS samples FROM fleet.sample;

-- Second batch: the counter was reset (20 < 150) and the series is reused.
SELECT fleet._ingest_metrics('a1', 'team-a', 'boot-1', 2, 102, NULL,
    ARRAY['pg.database.xact_commit'], ARRAY['counter'], ARRAY[''], ARRAY['{"datname": "app"}']::jsonb[],
    ARRAY[0], ARRAY['2026-01-01 00:00:20+00']::timestamptz[], ARRAY[20]) AS stored;

SELECT instance_id > 0 AS has_id, namespace, agent_id, hostname, server_version, system_identifier, in_recovery, status
FROM fleet.instances;
SELECT metric, kind, unit, labels, last_ts FROM fleet.instance_series((SELECT instance_id FROM fleet.instances WHERE agent_id = 'a1'));
SELECT * FROM fleet.series((SELECT instance_id FROM fleet.instances WHERE agent_id = 'a1'), 'pg.database.xact_commit',
                           '2026-01-01', '2026-01-02');
-- rate: 50 per 10 s = 5/s, then a reset: 20 from zero in 10 s = 2/s.
SELECT * FROM fleet.rate((SELECT instance_id FROM fleet.instances WHERE agent_id = 'a1'), 'pg.database.xact_commit',
                         '2026-01-01', '2026-01-02');
SELECT agent_id, boot_id, batch_seq, stream_seq, samples FROM fleet.ingest_ledger ORDER BY batch_seq;

-- A batch the database must refuse for its data (labels not an object): an integrity error
-- (class 23), which the ingest worker dead-letters. Nothing of it is stored, not even its ledger row.
\set VERBOSITY terse
SELECT fleet._ingest_metrics('a1', 'team-a', 'boot-1', 3, 103, NULL,
    ARRAY['pg.database.xact_commit'], ARRAY['counter'], ARRAY[''], ARRAY['[1, 2]']::jsonb[],
    ARRAY[0], ARRAY['2026-01-01 00:00:30+00']::timestamptz[], ARRAY[30]);
\set VERBOSITY default
SELECT count(*) AS ledger_rows FROM fleet.ingest_ledger;

-- Ordinary users cannot call the ingest function nor read raw tables.
CREATE ROLE regress_fleet_nobody;
SET ROLE regress_fleet_nobody;
SELECT fleet._ingest_metrics('x', 'default', 'b', 1, 1, NULL, '{}', '{}', '{}', '{}', '{}', '{}', '{}');
SELECT count(*) FROM fleet.sample;
RESET ROLE;
DROP ROLE regress_fleet_nobody;

-- storage: the hot tier (one row per scrape over a shared series set), compaction into compressed
-- cold chunks, late data merged into a chunk, and one read path that gives the same samples before
-- and after. Timestamps are relative to now (retention keeps 14 days), so only facts are printed.
SET TIME ZONE 'UTC';

-- 3 hours of one scrape every 10 s (1,080 scrapes) of 4 series: a busy counter, a noisy integer
-- gauge, a fractional gauge and a constant; 2 ms of clock jitter on odd scrapes. They end in the
-- hour before the current one, which compaction (whole hours older than 1 hour) leaves hot.
CREATE TEMP TABLE src AS
SELECT g AS k,
       date_trunc('hour', now() - interval '3 hours') + g * interval '10 seconds'
         + CASE WHEN g % 2 = 1 THEN interval '2 milliseconds' ELSE interval '0' END AS ts
FROM generate_series(0, 1079) AS g;

SELECT sum(fleet._ingest_metrics('st1', 'store', 'boot-1', k + 1, k + 1, NULL,
    ARRAY['test.busy', 'test.noisy', 'test.frac', 'test.const'], ARRAY['counter', 'gauge', 'gauge', 'gauge'],
    ARRAY['', 'bytes', '', ''], ARRAY['{"db": "app"}', '{}', '{}', '{}']::jsonb[],
    ARRAY[0, 1, 2, 3], ARRAY[ts, ts, ts, ts],
    ARRAY[1000 + k * 57 + (k % 7), (k * 7919) % 4096, k / 3.0, 42])) AS stored
FROM src;

-- One series set for all those scrapes; one hot row per scrape.
SELECT count(*) AS sets, min(series_count) AS series_per_set FROM fleet.series_set ss
JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1';
SELECT count(*) AS hot_rows FROM fleet.sample_block b JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1';

-- What the read path gives before compaction.
CREATE TEMP TABLE before_compaction AS
SELECT m.name, x.labels, x.ts, x.value
FROM (VALUES ('test.busy'), ('test.noisy'), ('test.frac'), ('test.const')) AS m(name),
     fleet.series((SELECT instance_id FROM fleet.instances WHERE agent_id = 'st1'), m.name, now() - interval '1 day', now()) AS x;
SELECT count(*) AS samples_read, count(DISTINCT (name, ts)) AS distinct_read FROM before_compaction;

-- Compaction moves every whole hour older than 1 hour into chunks, one per series and hour.
SELECT fleet.compact(interval '1 hour') AS moved;
SELECT count(*) AS chunks, sum(sample_count) AS chunk_samples, count(DISTINCT window_start) AS hours
FROM fleet.sample_chunk c JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1';
SELECT count(*) AS hot_rows_left, bool_and(b.ts >= date_trunc('hour', now() - interval '1 hour')) AS only_recent
FROM fleet.sample_block b JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1';

-- Lossless: the read path gives the same rows, bit for bit (fractions and jittered timestamps included).
CREATE TEMP TABLE after_compaction AS
SELECT m.name, x.labels, x.ts, x.value
FROM (VALUES ('test.busy'), ('test.noisy'), ('test.frac'), ('test.const')) AS m(name),
     fleet.series((SELECT instance_id FROM fleet.instances WHERE agent_id = 'st1'), m.name, now() - interval '1 day', now()) AS x;
SELECT (SELECT count(*) FROM after_compaction) AS samples_read,
       (SELECT count(*) FROM (SELECT * FROM before_compaction EXCEPT ALL SELECT * FROM after_compaction) d) AS lost,
       (SELECT count(*) FROM (SELECT * FROM after_compaction EXCEPT ALL SELECT * FROM before_compaction) d) AS added;
-- Infinite bounds read everything of both tiers.
SELECT count(*) AS busy_all_time FROM fleet.series((SELECT instance_id FROM fleet.instances WHERE agent_id = 'st1'),
    'test.busy', '-infinity', 'infinity');
-- fleet.sample (every tier) agrees, and a range inside one chunk reads only that range.
SELECT count(*) AS via_view FROM fleet.sample s JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1';
SELECT count(*) AS one_minute FROM fleet.series((SELECT instance_id FROM fleet.instances WHERE agent_id = 'st1'),
    'test.busy', date_trunc('hour', now() - interval '3 hours') + interval '10 minutes',
                 date_trunc('hour', now() - interval '3 hours') + interval '10 minutes 59 seconds');

-- Late data for an hour already compacted: stored hot, then merged into that hour's chunk.
SELECT fleet._ingest_metrics('st1', 'store', 'boot-1', 5000, 5000, NULL,
    ARRAY['test.const'], ARRAY['gauge'], ARRAY[''], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY[date_trunc('hour', now() - interval '3 hours') + interval '5 seconds'], ARRAY[43]) AS late_stored;
SELECT fleet.compact(interval '1 hour') AS moved_late;
SELECT count(*) AS chunks_of_that_hour, sum(sample_count) AS samples_in_it
FROM fleet.sample_chunk c JOIN fleet.series s USING (series_id) JOIN fleet.metric m USING (metric_id)
WHERE m.name = 'test.const' AND c.window_start = date_trunc('hour', now() - interval '3 hours');
SELECT count(*) AS const_samples, sum(value) AS const_sum
FROM fleet.series((SELECT instance_id FROM fleet.instances WHERE agent_id = 'st1'), 'test.const', now() - interval '1 day', now());

-- Rollups read both tiers: every stored sample is counted once.
SELECT fleet.run_rollups() > 0 AS rolled_up;
SELECT (SELECT sum(r.count) FROM fleet.rollup_1m r JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1')
     = (SELECT count(*) FROM fleet.sample s JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1')
       AS rollups_count_every_sample;

-- A series set no row uses for an hour is removed (the late batch's); one in use stays.
SELECT count(*) AS sets_before FROM fleet.series_set ss JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1';
UPDATE fleet.series_set SET created_at = now() - interval '2 hours';
SELECT fleet.compact(interval '1 hour') AS moved_again;
SELECT count(*) AS sets_left FROM fleet.series_set ss JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'st1';

-- The codec's SQL functions: lossless round trip, and clear errors for what they refuse.
SELECT array_agg(d.ts) = ARRAY['2026-01-01 00:00:00.001+00', '2026-01-01 00:00:10+00']::timestamptz[]
       AND array_agg(d.value)::text = '{-0,NaN}' AS round_trip
FROM fleet._chunk_decode(fleet._chunk_encode(ARRAY['2026-01-01 00:00:00.001+00', '2026-01-01 00:00:10+00']::timestamptz[],
                                             ARRAY['-0', 'NaN']::float8[])) AS d;
SELECT fleet._chunk_encode(ARRAY['2026-01-01 00:00:00.0001+00']::timestamptz[], ARRAY[1]::float8[]);
SELECT fleet._chunk_encode(ARRAY['2026-01-01 00:00:10+00', '2026-01-01 00:00:00+00']::timestamptz[], ARRAY[1, 2]::float8[]);
SELECT fleet._chunk_encode(ARRAY['2026-01-01 00:00:00+00']::timestamptz[], ARRAY[1, 2]::float8[]);
SELECT fleet._chunk_encode(ARRAY['2026-01-01 00:00:00+00']::timestamptz[], ARRAY[NULL]::float8[]);
SELECT * FROM fleet._chunk_decode('\x01020304'::bytea);
-- A hot-tier timestamp must be whole milliseconds (the wire's resolution).
\set VERBOSITY terse
SELECT fleet._ingest_metrics('st1', 'store', 'boot-1', 6000, 6000, NULL,
    ARRAY['test.const'], ARRAY['gauge'], ARRAY[''], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY['2026-01-01 00:00:00.0001+00']::timestamptz[], ARRAY[1]);
\set VERBOSITY default

-- Time partitions: one per UTC day and tier, yesterday to two days ahead, made at install.
SELECT fleet._ensure_partitions() AS created_again;
SELECT count(*) FILTER (WHERE c.relname LIKE 'sample_block_2%') AS hot_days,
       count(*) FILTER (WHERE c.relname LIKE 'sample_chunk_2%') AS cold_days,
       bool_and(c.relrowsecurity) AS all_under_rls
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent IN ('fleet.sample_block'::regclass, 'fleet.sample_chunk'::regclass);
-- Recent samples sit in their day's partition, samples of days without one in the default partition.
SELECT count(*) FILTER (WHERE tableoid::regclass::text LIKE 'fleet.sample_block_2%') > 0 AS recent_in_day_partitions,
       count(*) FILTER (WHERE tableoid::regclass::text = 'fleet.sample_block_default') AS in_default
FROM fleet.sample_block b WHERE b.ts > now() - interval '1 day';
-- Days beyond every namespace's raw retention (14 days here) are dropped whole; hot partitions of
-- days before yesterday are dropped once empty (compacted); cold ones within retention stay.
SELECT fleet._ensure_partitions(20, 0) AS created_old;
SELECT fleet._drop_partitions() AS dropped;
SELECT min(fleet._partition_day(c.relname)) = (now() AT TIME ZONE 'UTC')::date - 14 AS oldest_cold_day_kept,
       min(fleet._partition_day(c.relname)) FILTER (WHERE c.relname LIKE 'sample_block_%') >= (now() AT TIME ZONE 'UTC')::date - 1
         AS hot_only_from_yesterday
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent IN ('fleet.sample_block'::regclass, 'fleet.sample_chunk'::regclass) AND c.relname ~ '_[0-9]{8}$';

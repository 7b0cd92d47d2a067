-- storage: the hot tier (one row per scrape over a shared series set), compaction into cold windows
-- (per instance and window one time list and one group per metric), late data merged into a window,
-- whole days consolidated into one window, and one read path that gives the same samples before and
-- after. Times are relative to the UTC day three days ago (day0; retention keeps 14 days), so the
-- windows are the same whenever the test runs; only facts are printed.
SET TIME ZONE 'UTC';
SELECT date_trunc('day', now(), 'UTC') - interval '3 days' AS day0 \gset

-- 3 hours of one scrape every 10 s (1,080 scrapes) from day0 10:00 of 6 series in 5 metrics: a busy
-- counter with two label sets, a noisy integer gauge, a fractional gauge, a constant, and a sparse
-- series missing from every fifth scrape; 2 ms of clock jitter on odd scrapes.
CREATE TEMP TABLE src AS
SELECT g AS k,
       :'day0'::timestamptz + interval '10 hours' + g * interval '10 seconds'
         + CASE WHEN g % 2 = 1 THEN interval '2 milliseconds' ELSE interval '0' END AS ts
FROM generate_series(0, 1079) AS g;

SELECT sum(fleet._ingest_metrics('st1', 'store', 'boot-1', k + 1, k + 1, NULL,
    ARRAY['test.busy', 'test.busy', 'test.noisy', 'test.frac', 'test.const', 'test.sparse'],
    ARRAY['counter', 'counter', 'gauge', 'gauge', 'gauge', 'gauge'],
    ARRAY['', '', 'bytes', '', '', ''], ARRAY['{"db": "app"}', '{"db": "web"}', '{}', '{}', '{}', '{}']::jsonb[],
    ARRAY[0, 1, 2, 3, 4] || CASE WHEN k % 5 = 0 THEN ARRAY[]::integer[] ELSE ARRAY[5] END,
    array_fill(ts, ARRAY[CASE WHEN k % 5 = 0 THEN 5 ELSE 6 END]),
    ARRAY[1000 + k * 57 + (k % 7), 5 + k * 3, (k * 7919) % 4096, k / 3.0, 42]::float8[]
      || CASE WHEN k % 5 = 0 THEN ARRAY[]::float8[] ELSE ARRAY[k % 2 * 0.25] END)) AS stored
FROM src;
SELECT instance_id AS st1 FROM fleet.instances WHERE agent_id = 'st1' \gset

-- Two series sets (with and without the sparse series); one hot row per scrape.
SELECT count(*) AS sets FROM fleet.series_set WHERE instance_id = :st1;
SELECT count(*) AS hot_rows FROM fleet.sample_block WHERE instance_id = :st1;

-- What the read path gives before compaction.
CREATE TEMP TABLE metrics (name text);
INSERT INTO metrics VALUES ('test.busy'), ('test.noisy'), ('test.frac'), ('test.const'), ('test.sparse');
CREATE TEMP TABLE before_compaction AS
SELECT m.name, x.labels, x.ts, x.value
FROM metrics m, fleet.series(:st1, m.name, :'day0'::timestamptz, :'day0'::timestamptz + interval '2 days') AS x;
SELECT count(*) AS samples_read, count(DISTINCT (name, labels, ts)) AS distinct_read FROM before_compaction;

-- Compaction up to 12:00 moves two hours into two hour windows: per window one time list (360 scrape
-- times) and one group per metric. The hour from 12:00 stays hot.
SELECT fleet._compact_instance(:st1, :'day0'::timestamptz + interval '12 hours') AS moved;
SELECT window_start - :'day0'::timestamptz AS window, window_end - window_start AS length,
       count(*) FILTER (WHERE metric_id = 0) AS time_lists, sum(sample_count) FILTER (WHERE metric_id = 0) AS scrapes,
       count(*) FILTER (WHERE metric_id <> 0) AS groups, sum(sample_count) FILTER (WHERE metric_id <> 0) AS samples
FROM fleet.sample_chunk WHERE instance_id = :st1 GROUP BY window_start, window_end ORDER BY 1;
SELECT count(*) AS hot_rows_left, bool_and(ts >= :'day0'::timestamptz + interval '12 hours') AS only_from_noon
FROM fleet.sample_block WHERE instance_id = :st1;

-- Lossless: the read path gives the same rows, bit for bit (fractions, jittered timestamps, the gaps of
-- the sparse series), and so does fleet.sample; a range inside one window reads only that range.
CREATE TEMP TABLE after_compaction AS
SELECT m.name, x.labels, x.ts, x.value
FROM metrics m, fleet.series(:st1, m.name, :'day0'::timestamptz, :'day0'::timestamptz + interval '2 days') AS x;
SELECT (SELECT count(*) FROM after_compaction) AS samples_read,
       (SELECT count(*) FROM (SELECT * FROM before_compaction EXCEPT ALL SELECT * FROM after_compaction) d) AS lost,
       (SELECT count(*) FROM (SELECT * FROM after_compaction EXCEPT ALL SELECT * FROM before_compaction) d) AS added;
SELECT count(*) AS via_view FROM fleet.sample WHERE instance_id = :st1;
SELECT count(*) AS busy_all_time FROM fleet.series(:st1, 'test.busy', '-infinity', 'infinity');
SELECT count(*) AS one_minute FROM fleet.series(:st1, 'test.busy',
    :'day0'::timestamptz + interval '10 hours 10 minutes', :'day0'::timestamptz + interval '10 hours 10 minutes 59 seconds');
SELECT count(*) AS sparse_at_10 FROM fleet.series(:st1, 'test.sparse',
    :'day0'::timestamptz + interval '10 hours', :'day0'::timestamptz + interval '11 hours' - interval '1 millisecond');

-- Late data for the hour from 10:00, already compacted: a constant's sample at an instant no scrape had
-- (a new time-list slot), and the sparse series' sample at 10:00:50.002, a scrape it was missing from
-- (an existing slot). Stored hot, then merged into that window: still one window, one more scrape time.
SELECT fleet._ingest_metrics('st1', 'store', 'boot-1', 5000, 5000, NULL,
    ARRAY['test.const', 'test.sparse'], ARRAY['gauge', 'gauge'], ARRAY['', ''], ARRAY['{}', '{}']::jsonb[],
    ARRAY[0, 1], ARRAY[:'day0'::timestamptz + interval '10 hours 5 seconds',
                       :'day0'::timestamptz + interval '10 hours 50.002 seconds'], ARRAY[43, 7]) AS late_stored;
SELECT fleet._compact_instance(:st1, :'day0'::timestamptz + interval '12 hours') AS moved_late;
SELECT window_start - :'day0'::timestamptz AS window, count(*) FILTER (WHERE metric_id = 0) AS time_lists,
       sum(sample_count) FILTER (WHERE metric_id = 0) AS scrapes, sum(sample_count) FILTER (WHERE metric_id <> 0) AS samples
FROM fleet.sample_chunk WHERE instance_id = :st1 GROUP BY window_start ORDER BY 1;
SELECT count(*) AS const_samples, sum(value) AS const_sum FROM fleet.series(:st1, 'test.const', '-infinity', 'infinity');
SELECT count(*) AS sparse_at_10 FROM fleet.series(:st1, 'test.sparse',
    :'day0'::timestamptz + interval '10 hours', :'day0'::timestamptz + interval '11 hours' - interval '1 millisecond');
CREATE TEMP TABLE after_late AS
SELECT m.name, x.labels, x.ts, x.value
FROM metrics m, fleet.series(:st1, m.name, :'day0'::timestamptz, :'day0'::timestamptz + interval '2 days') AS x;
SELECT (SELECT count(*) FROM (SELECT * FROM after_compaction EXCEPT ALL SELECT * FROM after_late) d) AS lost,
       (SELECT count(*) FROM (SELECT * FROM after_late EXCEPT ALL SELECT * FROM after_compaction) d) AS added;

-- A day that ended before the cutoff becomes one window: the last hot hour moves, then day0's three
-- hour windows are consolidated (time lists concatenated, every group re-encoded). Lossless again.
SELECT fleet._compact_instance(:st1, :'day0'::timestamptz + interval '1 day 1 hour') AS moved;
SELECT window_start - :'day0'::timestamptz AS window, window_end - window_start AS length,
       count(*) FILTER (WHERE metric_id = 0) AS time_lists, sum(sample_count) FILTER (WHERE metric_id = 0) AS scrapes,
       count(*) FILTER (WHERE metric_id <> 0) AS groups, sum(sample_count) FILTER (WHERE metric_id <> 0) AS samples
FROM fleet.sample_chunk WHERE instance_id = :st1 GROUP BY window_start, window_end ORDER BY 1;
CREATE TEMP TABLE after_consolidation AS
SELECT m.name, x.labels, x.ts, x.value
FROM metrics m, fleet.series(:st1, m.name, :'day0'::timestamptz, :'day0'::timestamptz + interval '2 days') AS x;
SELECT (SELECT count(*) FROM after_consolidation) AS samples_read,
       (SELECT count(*) FROM (SELECT * FROM after_late EXCEPT ALL SELECT * FROM after_consolidation) d) AS lost,
       (SELECT count(*) FROM (SELECT * FROM after_consolidation EXCEPT ALL SELECT * FROM after_late) d) AS added;
SELECT count(*) AS hot_rows_left FROM fleet.sample_block WHERE instance_id = :st1;

-- Late data for the consolidated day merges into the day window; two samples of one series at one
-- instant take two slots of that instant.
SELECT fleet._ingest_metrics('st1', 'store', 'boot-1', 5001, 5001, NULL,
    ARRAY['test.noisy'], ARRAY['gauge'], ARRAY['bytes'], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY[:'day0'::timestamptz + interval '20 hours'], ARRAY[1]) AS late_stored,
       fleet._ingest_metrics('st1', 'store', 'boot-1', 5002, 5002, NULL,
    ARRAY['test.noisy'], ARRAY['gauge'], ARRAY['bytes'], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY[:'day0'::timestamptz + interval '20 hours'], ARRAY[2]) AS late_stored_again;
SELECT fleet._compact_instance(:st1, :'day0'::timestamptz + interval '1 day 1 hour') AS moved_late;
SELECT count(DISTINCT window_start) AS windows, sum(sample_count) FILTER (WHERE metric_id = 0) AS scrapes,
       sum(sample_count) FILTER (WHERE metric_id <> 0) AS samples
FROM fleet.sample_chunk WHERE instance_id = :st1;
SELECT x.ts - :'day0'::timestamptz AS at, x.value FROM fleet.series(:st1, 'test.noisy',
    :'day0'::timestamptz + interval '13 hours', :'day0'::timestamptz + interval '1 day') AS x ORDER BY 2;
SELECT (SELECT count(*) FROM fleet.sample WHERE instance_id = :st1)
     = (SELECT count(*) FROM after_consolidation) + 2 AS every_sample_once;

-- instance_series: series no hot row holds any more show their newest cold sample.
SELECT s.metric, s.labels, s.last_ts = (SELECT max(x.ts) FROM fleet.sample x WHERE x.series_id = s.series_id) AS newest
FROM fleet.instance_series(:st1) s ORDER BY s.metric, s.labels::text;

-- Rollups read both tiers: every stored sample is counted once.
SELECT fleet.run_rollups() > 0 AS rolled_up;
SELECT (SELECT sum(r.count) FROM fleet.rollup_1m r WHERE r.instance_id = :st1)
     = (SELECT count(*) FROM fleet.sample s WHERE s.instance_id = :st1) AS rollups_count_every_sample;

-- fleet.compact finds instances with hot hours or unconsolidated days; a series set no row uses for an
-- hour is removed.
SELECT count(*) AS sets_before FROM fleet.series_set WHERE instance_id = :st1;
UPDATE fleet.series_set SET created_at = now() - interval '2 hours' WHERE instance_id = :st1;
SELECT fleet.compact(interval '1 hour') >= 0 AS compacted;
SELECT count(*) AS sets_left FROM fleet.series_set WHERE instance_id = :st1;

-- Retention: a window goes when its whole window is beyond the namespace's raw retention.
UPDATE fleet.namespace SET raw_retention = interval '3 days' WHERE name = 'store';
SELECT fleet.apply_retention() IS NOT NULL AS retention_ran;
SELECT count(*) AS cold_rows_left FROM fleet.sample_chunk WHERE instance_id = :st1;
UPDATE fleet.namespace SET raw_retention = interval '2 days' WHERE name = 'store';
SELECT fleet.apply_retention() IS NOT NULL AS retention_ran;
SELECT count(*) AS cold_rows_left FROM fleet.sample_chunk WHERE instance_id = :st1;
UPDATE fleet.namespace SET raw_retention = interval '14 days' WHERE name = 'store';

-- The codec's SQL functions: lossless round trip (any order, equal instants, signed zero, NaN), one
-- series alone, and clear errors for what they refuse.
SELECT array_agg(d.series_id ORDER BY d.series_id, d.ts, d.value) AS series,
       array_agg(d.ts - '2026-01-01'::timestamptz ORDER BY d.series_id, d.ts, d.value) AS at,
       array_agg(d.value ORDER BY d.series_id, d.ts, d.value)::text AS values
FROM fleet._chunk_encode(ARRAY[2, 1, 1, 1]::bigint[],
                         ARRAY['2026-01-01 00:00:10+00', '2026-01-01 00:00:10+00', '2026-01-01 00:00:00.001+00',
                               '2026-01-01 00:00:10+00']::timestamptz[],
                         ARRAY['NaN', 1.5, '-0', 2.5]::float8[]) AS e,
     fleet._chunk_decode(e.times, e.data) AS d;
SELECT d.* FROM fleet._chunk_encode(ARRAY[1, 2]::bigint[], ARRAY['2026-01-01', '2026-01-02']::timestamptz[],
                                    ARRAY[3, 4]::float8[]) AS e, fleet._chunk_decode(e.times, e.data, 2) AS d;
SELECT d.series_id, d.value FROM fleet._chunk_encode(ARRAY[1, 1, 2]::bigint[],
        ARRAY['2026-01-01 00:00:00.001', '2026-01-01 00:00:10', '2026-01-01 00:00:10.001']::timestamptz[],
        ARRAY[5, 6, 7]::float8[]) AS e,
    fleet._chunk_decode(e.times, e.data, '2026-01-01 00:00:00.0005', '2026-01-01 00:00:10') AS d;
SELECT fleet._chunk_encode(ARRAY[1], ARRAY['2026-01-01 00:00:00.0001+00']::timestamptz[], ARRAY[1]::float8[]);
SELECT fleet._chunk_encode(ARRAY[1], ARRAY['2026-01-01 00:00:00+00']::timestamptz[], ARRAY[1, 2]::float8[]);
SELECT fleet._chunk_encode(ARRAY[1], ARRAY['2026-01-01 00:00:00+00']::timestamptz[], ARRAY[NULL]::float8[]);
SELECT fleet._chunk_encode(ARRAY[]::bigint[], ARRAY[]::timestamptz[], ARRAY[]::float8[]);
SELECT * FROM fleet._chunk_decode('\x01020304'::bytea, '\x0302'::bytea);
SELECT d.* FROM fleet._chunk_encode(ARRAY[1], ARRAY['2026-01-01']::timestamptz[], ARRAY[1]::float8[]) AS a,
                fleet._chunk_encode(ARRAY[1, 1], ARRAY['2026-01-01', '2026-01-02']::timestamptz[], ARRAY[1, 2]::float8[]) AS b,
                fleet._chunk_decode(a.times, b.data) AS d;
-- A hot-tier timestamp must be whole milliseconds (the wire's resolution).
\set VERBOSITY terse
SELECT fleet._ingest_metrics('st1', 'store', 'boot-1', 6000, 6000, NULL,
    ARRAY['test.const'], ARRAY['gauge'], ARRAY[''], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY['2026-01-01 00:00:00.0001+00']::timestamptz[], ARRAY[1]);
\set VERBOSITY default

-- Time partitions: one per UTC day and tier, yesterday to two days ahead, made at install.
SELECT fleet._ensure_partitions() AS created_again;
SELECT fleet._ingest_metrics('st1', 'store', 'boot-1', 7000, 7000, NULL,
    ARRAY['test.const'], ARRAY['gauge'], ARRAY[''], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY[date_trunc('second', now()) - interval '1 minute'], ARRAY[42]) AS recent_stored;
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

-- rollups: 1-minute and 1-hour rollups computed from raw samples (counters reset-aware), recomputed
-- exactly when late data arrives; fleet.rollup reads the tier that fits the step; retention per namespace.
SET TIME ZONE 'UTC';

-- A counter (with a reset at 00:01:30) and a gauge, every 30 s from 00:00:00 to 00:02:00.
SELECT fleet._ingest_metrics('r1', 'roll', 'b', 1, 1, NULL,
    ARRAY['test.counter', 'test.gauge'], ARRAY['counter', 'gauge'], ARRAY['', ''], ARRAY['{}', '{}']::jsonb[],
    ARRAY[0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
    ARRAY['2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00', '2026-01-01 00:00:30+00', '2026-01-01 00:00:30+00',
          '2026-01-01 00:01:00+00', '2026-01-01 00:01:00+00', '2026-01-01 00:01:30+00', '2026-01-01 00:01:30+00',
          '2026-01-01 00:02:00+00', '2026-01-01 00:02:00+00']::timestamptz[],
    ARRAY[100, 1, 160, 3, 220, 5, 30, 7, 90, 9]) AS stored;
SELECT count(*) AS pending FROM fleet.rollup_pending;
SELECT fleet.run_rollups() > 0 AS rolled_up;
SELECT count(*) AS pending_after FROM fleet.rollup_pending;

-- Counter: minute 0 has 100,160 (increase 60 inside; the first sample has no predecessor);
-- minute 1 has 220 (+60) and 30 (reset: +30); minute 2 has 90 (+60).
SELECT m.name, r.bucket, r.count, r.min, r.max, r.sum, r.last, r.increase
FROM fleet.rollup_1m r JOIN fleet.series s USING (series_id) JOIN fleet.metric m USING (metric_id)
WHERE m.name LIKE 'test.%' ORDER BY m.name, r.bucket;
SELECT m.name, r.bucket, r.count, r.min, r.max, r.last, r.increase
FROM fleet.rollup_1h r JOIN fleet.series s USING (series_id) JOIN fleet.metric m USING (metric_id)
WHERE m.name LIKE 'test.%' ORDER BY m.name, r.bucket;

-- Late data (a spooled batch delivered after the rollup ran): 00:00:45 and 00:01:15.
SELECT fleet._ingest_metrics('r1', 'roll', 'b', 2, 2, NULL,
    ARRAY['test.counter'], ARRAY['counter'], ARRAY[''], ARRAY['{}']::jsonb[],
    ARRAY[0, 0], ARRAY['2026-01-01 00:00:45+00', '2026-01-01 00:01:15+00']::timestamptz[], ARRAY[190, 250]) AS stored;
SELECT fleet.run_rollups() > 0 AS rolled_up;
SELECT r.bucket, r.count, r.last, r.increase
FROM fleet.rollup_1m r JOIN fleet.series s USING (series_id) JOIN fleet.metric m USING (metric_id)
WHERE m.name = 'test.counter' ORDER BY r.bucket;

-- The read path picks the tier from the step; rate is per second and reset-aware.
SELECT labels, bucket, count, min, max, avg, last, rate, tier
FROM fleet.rollup((SELECT instance_id FROM fleet.instances WHERE agent_id = 'r1'), 'test.counter',
                  '2026-01-01 00:00', '2026-01-01 00:03', '1 minute');
SELECT bucket, count, rate, tier
FROM fleet.rollup((SELECT instance_id FROM fleet.instances WHERE agent_id = 'r1'), 'test.counter',
                  '2026-01-01 00:00', '2026-01-01 00:03', '30 seconds');
SELECT bucket, count, min, max, avg, rate, tier
FROM fleet.rollup((SELECT instance_id FROM fleet.instances WHERE agent_id = 'r1'), 'test.gauge',
                  '2026-01-01', '2026-01-02', '1 day');
SELECT * FROM fleet.rollup(1, 'test.gauge', '2026-01-02', '2026-01-01');

-- Retention: this namespace keeps raw samples one hour and rollups ten years: the 2026-01-01 samples
-- go, their rollups stay.
UPDATE fleet.namespace SET raw_retention = '1 hour', rollup_1m_retention = '10 years',
                           rollup_1h_retention = '10 years' WHERE name = 'roll';
SELECT fleet.apply_retention() > 0 AS removed;
SELECT count(*) AS raw_left FROM fleet.sample s JOIN fleet.instances i USING (instance_id) WHERE i.namespace = 'roll';
SELECT count(*) AS rollups_left FROM fleet.rollup_1m r JOIN fleet.instances i USING (instance_id) WHERE i.namespace = 'roll';
-- Less than an hour is refused.
\set VERBOSITY terse
UPDATE fleet.namespace SET raw_retention = '10 minutes' WHERE name = 'roll';
\set VERBOSITY default

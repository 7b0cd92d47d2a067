-- Rollup tiers of metric samples: per series and 1-minute / 1-hour bucket, count, min, max, sum and
-- last value, and for counters the increase within the bucket (reset-aware: a value lower than its
-- predecessor counts from zero). The increase between the last sample of one bucket and the first of
-- the next belongs to the later bucket, so sums of increases over buckets are exact.
-- rollup_pending lists raw time ranges that received samples since the rollups were last computed;
-- it is written in the same transaction as the samples, so no sample is ever missed by a rollup.

CREATE TABLE fleet.rollup_1m (
    instance_id bigint NOT NULL,
    series_id bigint NOT NULL,
    bucket timestamptz NOT NULL,
    count integer NOT NULL,
    min double precision,
    max double precision,
    sum double precision,
    last double precision,
    increase double precision,
    PRIMARY KEY (instance_id, series_id, bucket)
);

CREATE TABLE fleet.rollup_1h (LIKE fleet.rollup_1m INCLUDING ALL);

CREATE TABLE fleet.rollup_pending (
    instance_id bigint NOT NULL,
    from_ts timestamptz NOT NULL,
    to_ts timestamptz NOT NULL
);
CREATE INDEX rollup_pending_instance ON fleet.rollup_pending (instance_id);

-- What the maintenance worker did last (one row per task).
CREATE TABLE fleet.maintenance_run (
    task text PRIMARY KEY,
    last_started timestamptz,
    last_finished timestamptz,
    last_rows bigint,
    last_error text
);

-- Rollups, retention and the maintenance entry point run by the maintenance background worker.

-- _rollup_range: recomputes the 1-minute and 1-hour rollups of one instance for every bucket that
-- overlaps [p_from, p_to]. Buckets are recomputed whole from the raw samples (plus, for counters, the
-- sample just before each bucket), so running it again, or after late data, gives the same result.
CREATE FUNCTION fleet._rollup_range(p_instance_id bigint, p_from timestamptz, p_to timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_lo timestamptz := date_trunc('minute', p_from);
    v_hi timestamptz := date_trunc('minute', p_to) + interval '1 minute';
    v_hour_lo timestamptz := date_trunc('hour', p_from);
    v_hour_hi timestamptz := date_trunc('hour', p_to) + interval '1 hour';
    v_rows bigint;
BEGIN
    WITH pts AS (
        SELECT x.series_id, x.ts, x.value, lag(x.value) OVER w AS prev
        -- look back an hour for each series' sample before the first bucket (a counter's increase
        -- into the bucket needs it); series sampled less than hourly lose that first increase
        FROM fleet._instance_samples(p_instance_id, v_lo - interval '1 hour', v_hi) AS x
        WINDOW w AS (PARTITION BY x.series_id ORDER BY x.ts)
    )
    INSERT INTO fleet.rollup_1m AS r (instance_id, series_id, bucket, count, min, max, sum, last, increase)
    SELECT p_instance_id, series_id, date_trunc('minute', ts), count(*), min(value), max(value), sum(value),
           (array_agg(value ORDER BY ts DESC))[1],
           sum(CASE WHEN prev IS NULL THEN NULL WHEN value >= prev THEN value - prev ELSE value END)
    FROM pts
    WHERE ts >= v_lo
    GROUP BY series_id, date_trunc('minute', ts)
    ON CONFLICT (instance_id, series_id, bucket) DO UPDATE
        SET count = excluded.count, min = excluded.min, max = excluded.max, sum = excluded.sum,
            last = excluded.last, increase = excluded.increase;
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    INSERT INTO fleet.rollup_1h AS r (instance_id, series_id, bucket, count, min, max, sum, last, increase)
    SELECT p_instance_id, m.series_id, date_trunc('hour', m.bucket), sum(m.count), min(m.min), max(m.max), sum(m.sum),
           (array_agg(m.last ORDER BY m.bucket DESC))[1], sum(m.increase)
    FROM fleet.rollup_1m m
    WHERE m.instance_id = p_instance_id AND m.bucket >= v_hour_lo AND m.bucket < v_hour_hi
    GROUP BY m.series_id, date_trunc('hour', m.bucket)
    ON CONFLICT (instance_id, series_id, bucket) DO UPDATE
        SET count = excluded.count, min = excluded.min, max = excluded.max, sum = excluded.sum,
            last = excluded.last, increase = excluded.increase;
    RETURN v_rows;
END
$$;

-- run_rollups: takes the pending raw ranges (those committed so far) and recomputes their buckets.
CREATE FUNCTION fleet.run_rollups()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_rows bigint := 0;
BEGIN
    FOR r IN
        WITH taken AS (DELETE FROM fleet.rollup_pending RETURNING instance_id, from_ts, to_ts)
        SELECT instance_id, min(from_ts) AS from_ts, max(to_ts) AS to_ts FROM taken GROUP BY instance_id
    LOOP
        v_rows := v_rows + fleet._rollup_range(r.instance_id, r.from_ts, r.to_ts);
    END LOOP;
    RETURN v_rows;
END
$$;

-- apply_retention: drops what each namespace no longer keeps (raw samples, 1-minute and 1-hour
-- rollups), ledger entries older than both the raw retention and a week (far beyond the stream's
-- redelivery horizon), and dead letters older than 30 days.
CREATE FUNCTION fleet.apply_retention()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record;
    v_rows bigint := 0;
    v_count bigint;
BEGIN
    FOR n IN SELECT ns.namespace_id, ns.raw_retention, ns.rollup_1m_retention, ns.rollup_1h_retention,
                    array_agg(i.instance_id) AS instances, array_agg(i.agent_id) AS agents
             FROM fleet.namespace ns
             JOIN fleet.agent a USING (namespace_id)
             JOIN fleet.instance i USING (agent_id)
             GROUP BY ns.namespace_id
    LOOP
        DELETE FROM fleet.sample_block WHERE instance_id = ANY (n.instances) AND ts < now() - n.raw_retention;
        GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
        -- a chunk goes when its whole window is beyond the retention
        DELETE FROM fleet.sample_chunk WHERE instance_id = ANY (n.instances)
            AND window_end <= now() - n.raw_retention;
        GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
        DELETE FROM fleet.statement_delta WHERE instance_id = ANY (n.instances) AND ts < now() - n.raw_retention;
        GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
        DELETE FROM fleet.statement_hourly WHERE instance_id = ANY (n.instances) AND hour < now() - n.rollup_1h_retention;
        DELETE FROM fleet.statement_6h WHERE instance_id = ANY (n.instances) AND block < now() - n.rollup_1h_retention;
        GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
        DELETE FROM fleet.rollup_1m WHERE instance_id = ANY (n.instances) AND bucket < now() - n.rollup_1m_retention;
        GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
        DELETE FROM fleet.rollup_1h WHERE instance_id = ANY (n.instances) AND bucket < now() - n.rollup_1h_retention;
        GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
        DELETE FROM fleet.ingest_ledger WHERE agent_id = ANY (n.agents)
            AND stored_at < now() - greatest(n.raw_retention, interval '7 days');
        GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    END LOOP;
    -- A keyframe goes once a newer one of its set has been stored for longer than a scrape based on the
    -- older one can still be on its way: those were published before the newer keyframe, and the
    -- ingest workers retry them for at most pgfleet.series_set_wait (plus an hour of margin). "Newer"
    -- is by the centre's clock (stored_at), never by the agent's (ts): a keyframe stamped in the future
    -- by a wrong agent clock must not make every later one look old.
    DELETE FROM fleet.metric_keyframe old
    WHERE EXISTS (SELECT 1 FROM fleet.metric_keyframe newer
                  WHERE newer.instance_id = old.instance_id AND newer.series_set_id = old.series_set_id
                    AND newer.stored_at > old.stored_at
                    AND newer.stored_at < now() - interval '1 hour'
                                          - coalesce(current_setting('pgfleet.series_set_wait', true), '900')::interval);
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    DELETE FROM fleet.dead_letter WHERE received_at < now() - interval '30 days';
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_rows + v_count;
END
$$;

-- run_maintenance: one round of the maintenance worker: rollups, the coming days' partitions and
-- compaction (at most 50 instances a round, so that one round stays short) every call; retention and
-- dropping expired partitions at most hourly.
-- Each task's outcome is recorded in fleet.maintenance_run.
CREATE FUNCTION fleet.run_maintenance()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_rows bigint;
BEGIN
    v_rows := fleet.run_rollups();
    INSERT INTO fleet.maintenance_run AS m (task, last_started, last_finished, last_rows, last_error)
    VALUES ('rollups', v_started, clock_timestamp(), v_rows, NULL)
    ON CONFLICT (task) DO UPDATE SET last_started = excluded.last_started, last_finished = excluded.last_finished,
                                     last_rows = excluded.last_rows, last_error = NULL;
    v_started := clock_timestamp();
    v_rows := fleet._ensure_partitions();
    v_rows := v_rows + fleet.compact(interval '1 hour', 50);
    INSERT INTO fleet.maintenance_run AS m (task, last_started, last_finished, last_rows, last_error)
    VALUES ('compaction', v_started, clock_timestamp(), v_rows, NULL)
    ON CONFLICT (task) DO UPDATE SET last_started = excluded.last_started, last_finished = excluded.last_finished,
                                     last_rows = excluded.last_rows, last_error = NULL;
    IF NOT EXISTS (SELECT 1 FROM fleet.maintenance_run
                   WHERE task = 'retention' AND last_finished > now() - interval '1 hour') THEN
        v_started := clock_timestamp();
        v_rows := fleet.apply_retention() + fleet._drop_partitions();
        INSERT INTO fleet.maintenance_run AS m (task, last_started, last_finished, last_rows, last_error)
        VALUES ('retention', v_started, clock_timestamp(), v_rows, NULL)
        ON CONFLICT (task) DO UPDATE SET last_started = excluded.last_started, last_finished = excluded.last_finished,
                                         last_rows = excluded.last_rows, last_error = NULL;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION fleet._rollup_range(bigint, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION fleet.run_rollups() FROM PUBLIC;
REVOKE ALL ON FUNCTION fleet.apply_retention() FROM PUBLIC;
REVOKE ALL ON FUNCTION fleet.run_maintenance() FROM PUBLIC;

-- rollup: one metric of one instance in buckets of p_step (default: about 300 buckets over the range,
-- at least 10 s), from the cheapest tier that has that resolution: raw samples below 1 minute,
-- 1-minute rollups below 1 hour, else 1-hour rollups. rate is the per-second increase of a counter
-- (reset-aware); NULL for gauges.
CREATE FUNCTION fleet.rollup(p_instance_id bigint, p_metric text, p_from timestamptz, p_to timestamptz,
                             p_step interval DEFAULT NULL)
RETURNS TABLE (labels jsonb, bucket timestamptz, count bigint, min double precision, max double precision,
               avg double precision, last double precision, rate double precision, tier text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step interval := coalesce(p_step, greatest(interval '10 seconds', date_trunc('second', (p_to - p_from) / 300)));
    v_kind text;
BEGIN
    IF p_to <= p_from THEN
        RAISE EXCEPTION 'the range must end after it starts' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_step < interval '1 second' THEN
        RAISE EXCEPTION 'step must be at least 1 second' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.kind INTO v_kind FROM fleet.metric m WHERE m.name = p_metric;

    IF v_step < interval '1 minute' THEN
        RETURN QUERY
        SELECT d.labels, date_bin(v_step, d.ts, timestamptz '2000-01-01') AS b, count(*), min(d.value), max(d.value),
               avg(d.value), (array_agg(d.value ORDER BY d.ts DESC))[1],
               CASE WHEN v_kind = 'counter' THEN sum(d.increase) / extract(epoch FROM v_step)::double precision END,
               'raw'::text
        FROM (SELECT x.labels, x.ts, x.value,
                     CASE WHEN lag(x.value) OVER w IS NULL THEN NULL
                          WHEN x.value >= lag(x.value) OVER w THEN x.value - lag(x.value) OVER w
                          ELSE x.value END AS increase
              FROM fleet.series(p_instance_id, p_metric, p_from, p_to) AS x
              WHERE x.ts < p_to
              WINDOW w AS (PARTITION BY x.labels ORDER BY x.ts)) d
        GROUP BY d.labels, b
        ORDER BY d.labels::text, b;
    ELSE
        -- the same query over either rollup table: 1-minute rollups below a 1-hour step, else 1-hour
        RETURN QUERY EXECUTE format($q$
            SELECT s.labels, date_bin($5, r.bucket, timestamptz '2000-01-01') AS b, sum(r.count)::bigint, min(r.min),
                   max(r.max), sum(r.sum) / nullif(sum(r.count), 0), (array_agg(r.last ORDER BY r.bucket DESC))[1],
                   CASE WHEN $6 = 'counter' THEN sum(r.increase) / extract(epoch FROM $5)::double precision END,
                   %L::text
            FROM fleet.series s JOIN fleet.metric m USING (metric_id)
            JOIN fleet.%I r ON r.instance_id = s.instance_id AND r.series_id = s.series_id
            WHERE s.instance_id = $1 AND m.name = $2 AND r.bucket >= $3 AND r.bucket < $4
            GROUP BY s.labels, b
            ORDER BY s.labels::text, b$q$,
            CASE WHEN v_step < interval '1 hour' THEN '1m' ELSE '1h' END,
            CASE WHEN v_step < interval '1 hour' THEN 'rollup_1m' ELSE 'rollup_1h' END)
        USING p_instance_id, p_metric, p_from, p_to, v_step, v_kind;
    END IF;
END
$$;

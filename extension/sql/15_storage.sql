-- Sample storage across tiers (docs/storage.md): the hot tier (fleet.sample_block, one row per
-- scrape), the cold tier (fleet.sample_chunk, one compressed row per series and hour), compaction
-- from one to the other, and the one read path every reader goes through.

-- The chunk codec (extension/chunks.cpp over core/chunk_codec).
CREATE FUNCTION fleet._chunk_encode(p_ts timestamptz[], p_values double precision[])
RETURNS bytea
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pgfleet_chunk_encode';

CREATE FUNCTION fleet._chunk_decode(p_chunk bytea)
RETURNS TABLE (ts timestamptz, value double precision)
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE ROWS 360
AS 'MODULE_PATHNAME', 'pgfleet_chunk_decode';

-- sample: every stored sample, whatever its tier, one row each. For counting and checking (tests,
-- audits); readers of a range use fleet.series (one metric) or fleet._instance_samples (rollups),
-- which touch only the rows of that range.
CREATE VIEW fleet.sample AS
SELECT b.instance_id, u.series_id, b.ts, u.value
FROM fleet.sample_block b
JOIN fleet.series_set ss ON ss.series_set_id = b.series_set_id
CROSS JOIN LATERAL unnest(ss.series_ids, b.vals) AS u(series_id, value)
UNION ALL
SELECT c.instance_id, c.series_id, d.ts, d.value
FROM fleet.sample_chunk c
CROSS JOIN LATERAL fleet._chunk_decode(c.data) AS d;

-- _instance_samples: every sample of one instance with p_from <= ts < p_to, from both tiers.
CREATE FUNCTION fleet._instance_samples(p_instance_id bigint, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (series_id bigint, ts timestamptz, value double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.series_id, b.ts, u.value
    FROM fleet.sample_block b
    JOIN fleet.series_set ss ON ss.series_set_id = b.series_set_id
    CROSS JOIN LATERAL unnest(ss.series_ids, b.vals) AS u(series_id, value)
    WHERE b.instance_id = p_instance_id AND b.ts >= p_from AND b.ts < p_to
    UNION ALL
    SELECT c.series_id, d.ts, d.value
    FROM fleet.sample_chunk c
    CROSS JOIN LATERAL fleet._chunk_decode(c.data) AS d
    WHERE c.instance_id = p_instance_id
      AND c.window_start >= date_trunc('hour', p_from) AND c.window_start < p_to
      AND c.last_ts >= p_from AND c.first_ts < p_to
      AND d.ts >= p_from AND d.ts < p_to
$$;

-- _compact_instance: moves the hot-tier rows of one instance older than p_cutoff (an hour boundary)
-- into cold chunks, one per series and hour, merging with a chunk already there (late data), all in
-- the caller's transaction: every sample is in exactly one tier at every commit. Returns the number
-- of samples moved.
CREATE FUNCTION fleet._compact_instance(p_instance_id bigint, p_cutoff timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_moved bigint;
BEGIN
    IF to_regclass('pg_temp.pgfleet_compact_samples') IS NULL THEN
        CREATE TEMP TABLE pgfleet_compact_samples (
            series_id bigint, ts timestamptz, value double precision) ON COMMIT DELETE ROWS;
    END IF;
    TRUNCATE pgfleet_compact_samples;

    WITH moved AS (
        DELETE FROM fleet.sample_block b
        WHERE b.instance_id = p_instance_id AND b.ts < p_cutoff
        RETURNING b.ts, b.series_set_id, b.vals
    )
    INSERT INTO pgfleet_compact_samples
    SELECT u.series_id, m.ts, u.value
    FROM moved m
    JOIN fleet.series_set ss ON ss.series_set_id = m.series_set_id
    CROSS JOIN LATERAL unnest(ss.series_ids, m.vals) AS u(series_id, value);
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved = 0 THEN
        RETURN 0;
    END IF;

    -- late data: samples of hours that already have a chunk join that chunk's samples
    WITH windows AS (
        SELECT DISTINCT series_id, date_trunc('hour', ts) AS window_start FROM pgfleet_compact_samples
    ), old AS (
        DELETE FROM fleet.sample_chunk c
        USING windows w
        WHERE c.instance_id = p_instance_id AND c.series_id = w.series_id AND c.window_start = w.window_start
        RETURNING c.series_id, c.data
    )
    INSERT INTO pgfleet_compact_samples
    SELECT old.series_id, d.ts, d.value FROM old CROSS JOIN LATERAL fleet._chunk_decode(old.data) AS d;

    INSERT INTO fleet.sample_chunk (instance_id, series_id, window_start, first_ts, last_ts, sample_count, data)
    SELECT p_instance_id, s.series_id, date_trunc('hour', s.ts), min(s.ts), max(s.ts), count(*),
           fleet._chunk_encode(array_agg(s.ts ORDER BY s.ts), array_agg(s.value ORDER BY s.ts))
    FROM pgfleet_compact_samples s
    GROUP BY s.series_id, date_trunc('hour', s.ts);
    TRUNCATE pgfleet_compact_samples;
    RETURN v_moved;
END
$$;

-- compact: compacts every instance whose hot tier holds whole hours older than p_older_than (at most
-- p_max_instances of them per call; NULL: all), then removes series sets that no row uses any more.
-- Returns the number of samples moved. The maintenance worker calls it every round.
CREATE FUNCTION fleet.compact(p_older_than interval DEFAULT '1 hour', p_max_instances integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz := date_trunc('hour', now() - p_older_than);
    v_instance_id bigint;
    v_moved bigint := 0;
BEGIN
    IF p_older_than < interval '0' THEN
        RAISE EXCEPTION 'p_older_than must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_instance_id IN
        SELECT i.instance_id FROM fleet.instance i
        WHERE EXISTS (SELECT 1 FROM fleet.sample_block b WHERE b.instance_id = i.instance_id AND b.ts < v_cutoff)
        ORDER BY i.instance_id
        LIMIT p_max_instances
    LOOP
        v_moved := v_moved + fleet._compact_instance(v_instance_id, v_cutoff);
    END LOOP;

    -- Sets unused for an hour go. A set an ingest transaction is using right now is skipped (locked
    -- by its foreign-key check); one that loses a race with a new block makes that insert fail and the
    -- batch retry, which registers the set again: never a lost sample.
    BEGIN
        DELETE FROM fleet.series_set ss
        WHERE ss.series_set_id IN (
            SELECT s.series_set_id FROM fleet.series_set s
            WHERE s.created_at < now() - interval '1 hour'
              AND NOT EXISTS (SELECT 1 FROM fleet.sample_block b WHERE b.series_set_id = s.series_set_id)
            FOR UPDATE SKIP LOCKED);
    EXCEPTION WHEN foreign_key_violation THEN
        NULL; -- a block arrived for one of them meanwhile: the sets stay until the next round
    END;
    RETURN v_moved;
END
$$;

REVOKE ALL ON FUNCTION fleet._compact_instance(bigint, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION fleet.compact(interval, integer) FROM PUBLIC;

-- Sample storage across tiers (docs/storage.md): the hot tier (fleet.sample_block, one row per
-- scrape), the cold tier (fleet.sample_chunk: per instance and window, an hour or a whole UTC day, one
-- row of scrape times and one compressed row per metric), compaction from one to the other, and the
-- one read path every reader goes through.

-- The codec (extension/chunks.cpp over core/chunk_codec.h). _chunk_encode builds one window (time list
-- and one group) from samples in any order: for tests and audits; compaction encodes in C++.
CREATE FUNCTION fleet._chunk_encode(p_series bigint[], p_ts timestamptz[], p_values double precision[],
                                    OUT times bytea, OUT data bytea)
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pgfleet_chunk_encode';

-- _chunk_decode: a group's samples, given its window's time list (the row with metric_id 0).
CREATE FUNCTION fleet._chunk_decode(p_times bytea, p_data bytea)
RETURNS TABLE (series_id bigint, ts timestamptz, value double precision)
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE ROWS 3600
AS 'MODULE_PATHNAME', 'pgfleet_chunk_decode';

-- _chunk_decode: one series of a group (decodes only that series).
CREATE FUNCTION fleet._chunk_decode(p_times bytea, p_data bytea, p_series_id bigint)
RETURNS TABLE (ts timestamptz, value double precision)
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE ROWS 360
AS 'MODULE_PATHNAME', 'pgfleet_chunk_decode';

-- _chunk_decode: the samples of a group with p_from <= ts < p_to (the readers of a range).
CREATE FUNCTION fleet._chunk_decode(p_times bytea, p_data bytea, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (series_id bigint, ts timestamptz, value double precision)
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
SELECT c.instance_id, d.series_id, d.ts, d.value
FROM fleet.sample_chunk c
JOIN fleet.sample_chunk t ON t.instance_id = c.instance_id AND t.metric_id = 0 AND t.window_start = c.window_start
CROSS JOIN LATERAL fleet._chunk_decode(t.data, c.data) AS d
WHERE c.metric_id <> 0;

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
    SELECT d.series_id, d.ts, d.value
    FROM fleet.sample_chunk c
    JOIN fleet.sample_chunk t ON t.instance_id = c.instance_id AND t.metric_id = 0 AND t.window_start = c.window_start
    CROSS JOIN LATERAL fleet._chunk_decode(t.data, c.data, p_from, p_to) AS d
    WHERE c.instance_id = p_instance_id AND c.metric_id <> 0
      AND c.window_start > p_from - interval '1 day' AND c.window_start < p_to AND c.window_end > p_from
$$;

-- _compact_instance (extension/compact.cpp): moves the hot-tier rows of one instance older than
-- p_cutoff into cold windows, one UTC hour at a time, merging with a window already there (late data),
-- then stores every UTC day that ended at or before p_cutoff as one day window; all in the caller's
-- transaction: every sample is in exactly one tier at every commit. Returns the number of samples moved.
CREATE FUNCTION fleet._compact_instance(p_instance_id bigint, p_cutoff timestamptz)
RETURNS bigint
LANGUAGE c STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pgfleet_compact_instance';

-- compact: compacts every instance whose hot tier holds whole hours older than p_older_than, or whose
-- cold tier still has hour windows of a UTC day that ended before them (at most p_max_instances of them
-- per call; NULL: all), then removes series sets that no row uses any more. Returns the number of
-- samples moved. The maintenance worker calls it every round.
CREATE FUNCTION fleet.compact(p_older_than interval DEFAULT '1 hour', p_max_instances integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz := date_trunc('hour', now() - p_older_than, 'UTC');
    v_cutoff_day timestamptz := date_trunc('day', v_cutoff, 'UTC');
    v_instance_id bigint;
    v_moved bigint := 0;
BEGIN
    IF p_older_than < interval '0' THEN
        RAISE EXCEPTION 'p_older_than must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_instance_id IN
        SELECT i.instance_id FROM fleet.instance i
        WHERE EXISTS (SELECT 1 FROM fleet.sample_block b WHERE b.instance_id = i.instance_id AND b.ts < v_cutoff)
           OR EXISTS (SELECT 1 FROM fleet.sample_chunk c WHERE c.instance_id = i.instance_id AND c.metric_id = 0
                      AND c.window_start < v_cutoff_day AND c.window_end - c.window_start < interval '1 day')
        ORDER BY i.instance_id
        LIMIT p_max_instances
    LOOP
        v_moved := v_moved + fleet._compact_instance(v_instance_id, v_cutoff);
    END LOOP;

    -- Sets unused for an hour go, unless a keyframe of theirs is still kept (a scrape based on it may
    -- still be on its way; fleet.apply_retention decides when a keyframe goes). A set an ingest
    -- transaction is using right now is skipped (locked by its foreign-key check); one that loses a
    -- race with a new block or keyframe makes that insert fail and the batch retry, which registers
    -- the set again: never a lost sample.
    BEGIN
        DELETE FROM fleet.series_set ss
        WHERE ss.series_set_id IN (
            SELECT s.series_set_id FROM fleet.series_set s
            WHERE s.created_at < now() - interval '1 hour'
              AND NOT EXISTS (SELECT 1 FROM fleet.sample_block b WHERE b.series_set_id = s.series_set_id)
              AND NOT EXISTS (SELECT 1 FROM fleet.metric_keyframe k
                              WHERE k.instance_id = s.instance_id AND k.series_set_id = s.series_set_id)
            FOR UPDATE SKIP LOCKED);
    EXCEPTION WHEN foreign_key_violation THEN
        NULL; -- a block arrived for one of them meanwhile: the sets stay until the next round
    END;
    RETURN v_moved;
END
$$;

REVOKE ALL ON FUNCTION fleet._compact_instance(bigint, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION fleet.compact(interval, integer) FROM PUBLIC;

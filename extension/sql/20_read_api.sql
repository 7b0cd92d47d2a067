-- The read API over metrics: instances, series, rates, worker status, envelope decoding.

-- instances: every monitored instance with its agent, namespace and liveness.
-- status is 'up' when the instance's agent delivered a batch within the last 60 seconds.
CREATE VIEW fleet.instances AS
SELECT i.instance_id, n.name AS namespace, i.agent_id, i.hostname, i.server_version, i.system_identifier,
       i.in_recovery, i.first_seen, i.last_seen,
       CASE WHEN i.last_seen > now() - interval '60 seconds' THEN 'up' ELSE 'stale' END AS status
FROM fleet.instance i
JOIN fleet.agent a USING (agent_id)
JOIN fleet.namespace n USING (namespace_id);

-- instance_series: the series of one instance, with the time of its newest sample (the newest scrape
-- row of a set holding it, else its newest sample in the newest cold window holding it).
CREATE FUNCTION fleet.instance_series(p_instance_id bigint)
RETURNS TABLE (series_id bigint, metric text, kind text, unit text, labels jsonb, last_ts timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH hot AS (
        SELECT u.sid, max(newest.ts) AS ts
        FROM fleet.series_set ss
        CROSS JOIN LATERAL (SELECT b.ts FROM fleet.sample_block b
                            WHERE b.series_set_id = ss.series_set_id ORDER BY b.ts DESC LIMIT 1) AS newest
        CROSS JOIN LATERAL unnest(ss.series_ids) AS u(sid)
        WHERE ss.instance_id = p_instance_id
        GROUP BY u.sid
    )
    SELECT s.series_id, m.name, m.kind, m.unit, s.labels,
           coalesce((SELECT hot.ts FROM hot WHERE hot.sid = s.series_id),
                    (SELECT x.ts FROM fleet.sample_chunk c
                     JOIN fleet.sample_chunk t ON t.instance_id = c.instance_id AND t.metric_id = 0
                                              AND t.window_start = c.window_start
                     CROSS JOIN LATERAL (SELECT max(d.ts) AS ts FROM fleet._chunk_decode(t.data, c.data, s.series_id) d) x
                     WHERE c.instance_id = s.instance_id AND c.metric_id = s.metric_id AND x.ts IS NOT NULL
                     ORDER BY c.window_start DESC LIMIT 1))
    FROM fleet.series s JOIN fleet.metric m USING (metric_id)
    WHERE s.instance_id = p_instance_id
    ORDER BY m.name, s.labels::text
$$;

-- series: the samples of one metric of one instance between two times (inclusive), per label set
-- (ordered by the labels' text, then by time), from both storage tiers (extension/chunks.cpp; its
-- queries run as the caller, so row-level security applies).
CREATE FUNCTION fleet.series(p_instance_id bigint, p_metric text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (labels jsonb, ts timestamptz, value double precision)
LANGUAGE c STRICT STABLE ROWS 8640
AS 'MODULE_PATHNAME', 'pgfleet_series';

-- rate: per-second increase of a counter between consecutive samples; after a reset (the value went
-- down) the counter is taken to have restarted from zero.
CREATE FUNCTION fleet.rate(p_instance_id bigint, p_metric text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (labels jsonb, ts timestamptz, value double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT labels, ts,
           (CASE WHEN value >= prev_value THEN value - prev_value ELSE value END)
             / extract(epoch FROM ts - prev_ts)::double precision
    FROM (SELECT labels, ts, value,
                 lag(value) OVER w AS prev_value, lag(ts) OVER w AS prev_ts
          FROM fleet.series(p_instance_id, p_metric, p_from, p_to)
          WINDOW w AS (PARTITION BY labels ORDER BY ts)) AS d
    WHERE prev_ts IS NOT NULL AND ts > prev_ts
    ORDER BY labels::text, ts
$$;

-- worker_status: what each ingest worker is doing (from shared memory).
CREATE FUNCTION fleet.worker_status()
RETURNS TABLE (worker integer, pid integer, state text, messages bigint, batches bigint, samples bigint,
               duplicates bigint, dead_letters bigint, errors bigint, last_stream_seq bigint,
               consumer_pending bigint, last_batch_at timestamptz, last_error text)
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'pgfleet_worker_status';
CREATE VIEW fleet.worker_status AS SELECT * FROM fleet.worker_status();

-- decode_envelope: a raw wire message (e.g. fleet.dead_letter.raw) as JSON, or an error saying why
-- it is not a valid pgfleet envelope.
CREATE FUNCTION fleet.decode_envelope(raw bytea)
RETURNS jsonb
LANGUAGE c STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'pgfleet_decode_envelope';


-- Activity: pg_stat_activity sampled by the agent (every second by default) and aggregated per
-- interval: how many (sample, backend) observations fell in each (state, wait event, query, ...)
-- group. Average active sessions of a group = observations / samples_taken.

CREATE TABLE fleet.activity_interval (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    ts timestamptz NOT NULL,                 -- end of the interval
    interval_start timestamptz NOT NULL,
    samples_taken integer NOT NULL CHECK (samples_taken >= 0),
    longest_transaction_seconds double precision,
    longest_idle_in_transaction_seconds double precision,
    PRIMARY KEY (instance_id, ts)
);

CREATE TABLE fleet.activity (
    instance_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    state text NOT NULL,
    wait_event_type text NOT NULL,
    wait_event text NOT NULL,
    queryid bigint NOT NULL,
    backend_type text NOT NULL,
    datname text NOT NULL,
    usename text NOT NULL,
    application_name text NOT NULL,
    observations integer NOT NULL CHECK (observations >= 0)
);
CREATE INDEX activity_instance_ts ON fleet.activity (instance_id, ts);

CREATE TABLE fleet.blocking (
    instance_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    blocked_pid integer NOT NULL,
    blocking_pid integer NOT NULL,
    blocked_queryid bigint,
    blocking_queryid bigint,
    blocked_seconds double precision
);
CREATE INDEX blocking_instance_ts ON fleet.blocking (instance_id, ts);

-- _ingest_activity: stores one activity payload (see core/wire_payloads.cpp for its JSON shape).
CREATE FUNCTION fleet._ingest_activity(p_instance_id bigint, p jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ts timestamptz := to_timestamp((p->>'interval_end_ms')::double precision / 1000);
    v_rows integer;
BEGIN
    INSERT INTO fleet.activity_interval
    VALUES (p_instance_id, v_ts, to_timestamp((p->>'interval_start_ms')::double precision / 1000),
            (p->>'samples_taken')::integer, (p->>'longest_transaction_seconds')::double precision,
            (p->>'longest_idle_in_transaction_seconds')::double precision)
    ON CONFLICT (instance_id, ts) DO NOTHING;

    INSERT INTO fleet.activity
    SELECT p_instance_id, v_ts, g.state, g.wait_event_type, g.wait_event, g.queryid, g.backend_type,
           g.datname, g.usename, g.application_name, g.observations
    FROM jsonb_to_recordset(p->'groups') AS g(state text, wait_event_type text, wait_event text, queryid bigint,
         backend_type text, datname text, usename text, application_name text, observations integer);
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    INSERT INTO fleet.blocking
    SELECT p_instance_id, v_ts, b.blocked_pid, b.blocking_pid, b.blocked_queryid, b.blocking_queryid, b.blocked_seconds
    FROM jsonb_to_recordset(p->'blocking') AS b(blocked_pid integer, blocking_pid integer, blocked_queryid bigint,
         blocking_queryid bigint, blocked_seconds double precision);
    RETURN v_rows;
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_activity(bigint, jsonb) FROM PUBLIC;

-- wait_profile: average active sessions per wait event in time buckets of p_step (default: chosen from
-- the range, about 120 buckets). Active sessions not waiting count as wait_event_type 'CPU'.
CREATE FUNCTION fleet.wait_profile(p_instance_id bigint, p_from timestamptz, p_to timestamptz,
                                   p_step interval DEFAULT NULL)
RETURNS TABLE (bucket timestamptz, wait_event_type text, wait_event text, average_active_sessions double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH step AS (
        SELECT coalesce(p_step, greatest(interval '10 seconds',
                        date_trunc('second', (p_to - p_from) / 120))) AS s
    ), samples AS (
        SELECT date_bin((SELECT s FROM step), i.ts, timestamptz '2000-01-01') AS bucket, sum(i.samples_taken) AS n
        FROM fleet.activity_interval i
        WHERE i.instance_id = p_instance_id AND i.ts > p_from AND i.ts <= p_to
        GROUP BY 1
    )
    SELECT date_bin((SELECT s FROM step), a.ts, timestamptz '2000-01-01') AS bucket,
           coalesce(nullif(a.wait_event_type, ''), 'CPU'), coalesce(nullif(a.wait_event, ''), 'CPU'),
           sum(a.observations)::double precision / max(s.n)
    FROM fleet.activity a
    JOIN samples s ON s.bucket = date_bin((SELECT s FROM step), a.ts, timestamptz '2000-01-01')
    WHERE a.instance_id = p_instance_id AND a.ts > p_from AND a.ts <= p_to AND a.state = 'active' AND s.n > 0
    GROUP BY 1, 2, 3
    ORDER BY 1, 4 DESC
$$;

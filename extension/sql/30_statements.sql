-- Statement statistics: per-interval deltas of pg_stat_statements entries, keyed like
-- pg_stat_statements (dbid, userid, queryid, toplevel), with the normalized text stored once per
-- (instance, queryid). The agent sends only entries that changed; it never resets the statistics.

CREATE TABLE fleet.statement_text (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    queryid bigint NOT NULL,
    query text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, queryid)
);

CREATE TABLE fleet.statement_delta (
    instance_id bigint NOT NULL,
    ts timestamptz NOT NULL,                 -- end of the interval
    interval_start timestamptz NOT NULL,
    dbid oid NOT NULL,
    userid oid NOT NULL,
    queryid bigint NOT NULL,
    toplevel boolean NOT NULL,
    datname text,
    username text,
    calls bigint NOT NULL,
    total_exec_time_ms double precision,
    total_plan_time_ms double precision,
    rows bigint,
    shared_blks_hit bigint,
    shared_blks_read bigint,
    shared_blks_dirtied bigint,
    shared_blks_written bigint,
    local_blks_hit bigint,
    local_blks_read bigint,
    temp_blks_read bigint,
    temp_blks_written bigint,
    blk_read_time_ms double precision,
    blk_write_time_ms double precision,
    wal_records bigint,
    wal_fpi bigint,
    wal_bytes numeric,
    reset boolean NOT NULL DEFAULT false
);
CREATE INDEX statement_delta_instance_ts ON fleet.statement_delta (instance_id, ts);
CREATE INDEX statement_delta_instance_query_ts ON fleet.statement_delta (instance_id, queryid, ts);

-- statement_hourly: the deltas summed per hour (by the hour their interval ended in), written in the
-- same transaction as the deltas (so exact, late data included). Long ranges read it instead of the
-- deltas; it is kept as long as the 1-hour metric rollups.
CREATE TABLE fleet.statement_hourly (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    hour timestamptz NOT NULL,
    queryid bigint NOT NULL,
    dbid oid NOT NULL,
    userid oid NOT NULL,
    toplevel boolean NOT NULL,
    datname text,
    username text,
    calls bigint NOT NULL,
    total_exec_time_ms double precision NOT NULL,
    rows bigint NOT NULL,
    shared_blks_hit bigint NOT NULL,
    shared_blks_read bigint NOT NULL,
    io_time_ms double precision NOT NULL,
    PRIMARY KEY (instance_id, hour, queryid, dbid, userid, toplevel)
);

-- statement_6h: the same sums per 6-hour block (UTC 00-06, 06-12, 12-18, 18-24), written beside the
-- hourly ones. A long range reads whole blocks from here and only its ragged ends from the hourly sums:
-- 24 h of 5,000 statements is ~70k rows to aggregate instead of 125k.
CREATE TABLE fleet.statement_6h (LIKE fleet.statement_hourly INCLUDING ALL);
ALTER TABLE fleet.statement_6h RENAME COLUMN hour TO block;
ALTER TABLE fleet.statement_6h ADD FOREIGN KEY (instance_id) REFERENCES fleet.instance ON DELETE CASCADE;

-- _hour, _block6: the start of the UTC hour / 6-hour block holding t, whatever the session's time zone
-- (date_trunc follows it, and a zone like +05:30 would shift the buckets).
CREATE FUNCTION fleet._hour(t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT to_timestamp(floor(extract(epoch FROM t) / 3600) * 3600) $$;
CREATE FUNCTION fleet._block6(t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT to_timestamp(floor(extract(epoch FROM t) / 21600) * 21600) $$;

-- _ingest_statements: stores one statements payload (see core/wire_payloads.cpp for its JSON shape).
CREATE FUNCTION fleet._ingest_statements(p_instance_id bigint, p jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows integer;
    v_end timestamptz := to_timestamp((p->>'interval_end_ms')::double precision / 1000);
    v_hour timestamptz := fleet._hour(v_end);
    v_block timestamptz := fleet._block6(v_end);
BEGIN
    INSERT INTO fleet.statement_text (instance_id, queryid, query)
    SELECT p_instance_id, t.queryid, t.query
    FROM jsonb_to_recordset(p->'texts') AS t(queryid bigint, query text)
    ON CONFLICT (instance_id, queryid) DO NOTHING;

    INSERT INTO fleet.statement_delta
    SELECT p_instance_id,
           to_timestamp((p->>'interval_end_ms')::double precision / 1000),
           to_timestamp((p->>'interval_start_ms')::double precision / 1000),
           d.dbid, d.userid, d.queryid, d.toplevel,
           p->'databases'->>d.dbid::text, p->'users'->>d.userid::text,
           d.calls, d.total_exec_time_ms, d.total_plan_time_ms, d.rows,
           d.shared_blks_hit, d.shared_blks_read, d.shared_blks_dirtied, d.shared_blks_written,
           d.local_blks_hit, d.local_blks_read, d.temp_blks_read, d.temp_blks_written,
           d.blk_read_time_ms, d.blk_write_time_ms, d.wal_records, d.wal_fpi, d.wal_bytes, d.reset
    FROM jsonb_to_recordset(p->'deltas') AS d(
        dbid oid, userid oid, queryid bigint, toplevel boolean, calls bigint,
        total_exec_time_ms double precision, total_plan_time_ms double precision, rows bigint,
        shared_blks_hit bigint, shared_blks_read bigint, shared_blks_dirtied bigint, shared_blks_written bigint,
        local_blks_hit bigint, local_blks_read bigint, temp_blks_read bigint, temp_blks_written bigint,
        blk_read_time_ms double precision, blk_write_time_ms double precision,
        wal_records bigint, wal_fpi bigint, wal_bytes numeric, reset boolean);
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    -- the hourly and 6-hour sums of this payload (rows in key order, so that two workers never wait
    -- on each other crosswise)
    WITH sums AS (
        SELECT d.queryid, d.dbid, d.userid, d.toplevel,
               p->'databases'->>d.dbid::text AS datname, p->'users'->>d.userid::text AS username,
               sum(d.calls) AS calls, sum(coalesce(d.total_exec_time_ms, 0)) AS total_exec_time_ms,
               sum(coalesce(d.rows, 0)) AS rows, sum(coalesce(d.shared_blks_hit, 0)) AS shared_blks_hit,
               sum(coalesce(d.shared_blks_read, 0)) AS shared_blks_read,
               sum(coalesce(d.blk_read_time_ms, 0) + coalesce(d.blk_write_time_ms, 0)) AS io_time_ms
        FROM jsonb_to_recordset(p->'deltas') AS d(
            dbid oid, userid oid, queryid bigint, toplevel boolean, calls bigint, total_exec_time_ms double precision,
            rows bigint, shared_blks_hit bigint, shared_blks_read bigint,
            blk_read_time_ms double precision, blk_write_time_ms double precision)
        GROUP BY d.queryid, d.dbid, d.userid, d.toplevel),
    hourly AS (
        INSERT INTO fleet.statement_hourly AS h
        SELECT p_instance_id, v_hour, s.* FROM sums s ORDER BY s.queryid, s.dbid, s.userid, s.toplevel
        ON CONFLICT (instance_id, hour, queryid, dbid, userid, toplevel) DO UPDATE SET
            datname = coalesce(excluded.datname, h.datname), username = coalesce(excluded.username, h.username),
            calls = h.calls + excluded.calls, total_exec_time_ms = h.total_exec_time_ms + excluded.total_exec_time_ms,
            rows = h.rows + excluded.rows, shared_blks_hit = h.shared_blks_hit + excluded.shared_blks_hit,
            shared_blks_read = h.shared_blks_read + excluded.shared_blks_read, io_time_ms = h.io_time_ms + excluded.io_time_ms)
    INSERT INTO fleet.statement_6h AS b
    SELECT p_instance_id, v_block, s.* FROM sums s ORDER BY s.queryid, s.dbid, s.userid, s.toplevel
    ON CONFLICT (instance_id, block, queryid, dbid, userid, toplevel) DO UPDATE SET
        datname = coalesce(excluded.datname, b.datname), username = coalesce(excluded.username, b.username),
        calls = b.calls + excluded.calls, total_exec_time_ms = b.total_exec_time_ms + excluded.total_exec_time_ms,
        rows = b.rows + excluded.rows, shared_blks_hit = b.shared_blks_hit + excluded.shared_blks_hit,
        shared_blks_read = b.shared_blks_read + excluded.shared_blks_read, io_time_ms = b.io_time_ms + excluded.io_time_ms;
    RETURN v_rows;
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_statements(bigint, jsonb) FROM PUBLIC;

-- top_statements: the statements of one instance over a time range, summed over the intervals inside
-- it, ordered by one of total_time, calls, mean_time, rows, io (shared blocks read), io_time.
-- Ranges of 6 hours or more are answered from the hourly sums, widened to whole hours (from rounded
-- down, to rounded up): at that length a DBA looks for the heavy statements, not for minutes, and the
-- answer stays fast with thousands of statements. Shorter ranges are exact to the interval.
CREATE FUNCTION fleet.top_statements(
    p_instance_id bigint, p_from timestamptz, p_to timestamptz,
    p_order_by text DEFAULT 'total_time', p_limit integer DEFAULT 20)
RETURNS TABLE (queryid bigint, dbid oid, userid oid, toplevel boolean, datname text, username text,
               query text, calls bigint, total_exec_time_ms double precision, mean_exec_time_ms double precision,
               rows bigint, shared_blks_hit bigint, shared_blks_read bigint, io_time_ms double precision,
               share_of_total_time double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- the aggregation is ~100k rows at most: a parallel plan's start-up costs more than it saves
SET max_parallel_workers_per_gather = 0
-- planned for its actual range every time (~1 ms): a generic plan cannot tell the short range's deltas
-- from the long range's sums, and was slower by half
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    -- the whole 6-hour blocks inside [first hour, last hour + 1 h) of the range (none: from = to)
    -- (bounds computed once here: in a query's filter they would be evaluated for every row)
    v_hours_from timestamptz := fleet._hour(p_from);
    v_blocks_from timestamptz := fleet._block6(v_hours_from + interval '6 hours' - interval '1 microsecond');
    v_blocks_to timestamptz := greatest(fleet._block6(fleet._hour(p_to) + interval '1 hour'), v_blocks_from);
BEGIN
    IF p_order_by NOT IN ('total_time', 'calls', 'mean_time', 'rows', 'io', 'io_time') THEN
        RAISE EXCEPTION 'invalid order_by "%"', p_order_by
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use one of total_time, calls, mean_time, rows, io, io_time.';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH agg AS (
        SELECT d.queryid, d.dbid, d.userid, d.toplevel, max(d.datname) AS datname, max(d.username) AS username,
               sum(d.calls)::bigint AS calls, sum(d.total_exec_time_ms) AS total_time,
               sum(d.rows)::bigint AS rows, sum(d.shared_blks_hit)::bigint AS hit,
               sum(d.shared_blks_read)::bigint AS read,
               sum(coalesce(d.blk_read_time_ms, 0) + coalesce(d.blk_write_time_ms, 0)) AS io_time
        FROM fleet.statement_delta d
        WHERE p_to - p_from < interval '6 hours'
          AND d.instance_id = p_instance_id AND d.ts > p_from AND d.ts <= p_to
        GROUP BY d.queryid, d.dbid, d.userid, d.toplevel
        UNION ALL
        SELECT h.queryid, h.dbid, h.userid, h.toplevel, max(h.datname), max(h.username),
               sum(h.calls)::bigint, sum(h.total_exec_time_ms), sum(h.rows)::bigint, sum(h.shared_blks_hit)::bigint,
               sum(h.shared_blks_read)::bigint, sum(h.io_time_ms)
        FROM (-- the whole 6-hour blocks inside the hours of the range, then the hours outside them
              SELECT b.queryid, b.dbid, b.userid, b.toplevel, b.datname, b.username, b.calls, b.total_exec_time_ms,
                     b.rows, b.shared_blks_hit, b.shared_blks_read, b.io_time_ms
              FROM fleet.statement_6h b
              WHERE p_to - p_from >= interval '6 hours'
                AND b.instance_id = p_instance_id AND b.block >= v_blocks_from AND b.block < v_blocks_to
              UNION ALL
              SELECT h.queryid, h.dbid, h.userid, h.toplevel, h.datname, h.username, h.calls, h.total_exec_time_ms,
                     h.rows, h.shared_blks_hit, h.shared_blks_read, h.io_time_ms
              FROM fleet.statement_hourly h
              WHERE p_to - p_from >= interval '6 hours'
                AND h.instance_id = p_instance_id AND h.hour >= v_hours_from AND h.hour <= p_to
                AND NOT (h.hour >= v_blocks_from AND h.hour < v_blocks_to)) AS h
        GROUP BY h.queryid, h.dbid, h.userid, h.toplevel
    )
    -- ranked first, texts joined for the returned rows only
    SELECT r.queryid, r.dbid, r.userid, r.toplevel, r.datname, r.username, t.query, r.calls, r.total_time,
           r.total_time / nullif(r.calls, 0), r.rows, r.hit, r.read, r.io_time, r.share
    FROM (SELECT a.*, a.total_time / nullif(sum(a.total_time) OVER (), 0) AS share,
                 CASE p_order_by
                     WHEN 'total_time' THEN a.total_time
                     WHEN 'calls' THEN a.calls::double precision
                     WHEN 'mean_time' THEN a.total_time / nullif(a.calls, 0)
                     WHEN 'rows' THEN a.rows::double precision
                     WHEN 'io' THEN a.read::double precision
                     WHEN 'io_time' THEN a.io_time
                 END AS sort_key
          FROM agg a
          ORDER BY sort_key DESC NULLS LAST, a.queryid
          LIMIT p_limit) AS r
    LEFT JOIN fleet.statement_text t ON t.instance_id = p_instance_id AND t.queryid = r.queryid
    ORDER BY r.sort_key DESC NULLS LAST, r.queryid;
END
$$;

-- statement_history: one statement's per-interval calls and times (all dbids/users summed).
CREATE FUNCTION fleet.statement_history(p_instance_id bigint, p_queryid bigint, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (ts timestamptz, calls bigint, total_exec_time_ms double precision,
               mean_exec_time_ms double precision, rows bigint, shared_blks_read bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.ts, sum(d.calls)::bigint, sum(d.total_exec_time_ms),
           sum(d.total_exec_time_ms) / nullif(sum(d.calls), 0), sum(d.rows)::bigint, sum(d.shared_blks_read)::bigint
    FROM fleet.statement_delta d
    WHERE d.instance_id = p_instance_id AND d.queryid = p_queryid AND d.ts > p_from AND d.ts <= p_to
    GROUP BY d.ts
    ORDER BY d.ts
$$;

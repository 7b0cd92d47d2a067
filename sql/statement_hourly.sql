-- statement_hourly: statement deltas summed per hour in the ingest transaction; top_statements over
-- 6 hours or more reads those sums (the range widened to whole hours) and agrees with the deltas.
SET TIME ZONE 'UTC';

-- 30 statements, one delta each every 5 minutes over 12 hours (a batch per interval); statement g
-- has g calls per interval, each of 2 ms, and g blocks read.
SELECT sum(fleet._ingest_payload('statements', 'sh1', 'default', 'b1', k, k, NULL, jsonb_build_object(
    'interval_start_ms', extract(epoch FROM t - interval '5 minutes') * 1000,
    'interval_end_ms', extract(epoch FROM t) * 1000,
    'databases', '{"5": "app"}'::jsonb, 'users', '{"10": "alice"}'::jsonb,
    'texts', CASE WHEN k = 1 THEN (SELECT jsonb_agg(jsonb_build_object('queryid', g, 'query', 'SELECT ' || g))
                                   FROM generate_series(1, 30) g) ELSE '[]'::jsonb END,
    'deltas', (SELECT jsonb_agg(jsonb_build_object('dbid', 5, 'userid', 10, 'queryid', g, 'toplevel', true,
                                                   'calls', g, 'total_exec_time_ms', g * 2.0, 'rows', g,
                                                   'shared_blks_read', g, 'blk_read_time_ms', 0.5, 'reset', false))
               FROM generate_series(1, 30) g)))) AS stored
FROM (SELECT k, date_trunc('hour', now()) - interval '12 hours' + k * interval '5 minutes' AS t
      FROM generate_series(1, 144) k) AS intervals;

-- One hourly row per statement and hour (the deltas end in 13 distinct hours).
SELECT count(*) AS hourly_rows, count(DISTINCT hour) AS hours, sum(calls) AS calls
FROM fleet.statement_hourly h JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'sh1';

-- 24 hours (hourly path) and the exact sums of the deltas agree, statement by statement.
WITH top AS (
    SELECT * FROM fleet.top_statements((SELECT instance_id FROM fleet.instances WHERE agent_id = 'sh1'),
                                       now() - interval '24 hours', now(), 'calls', 100)
), exact AS (
    SELECT d.queryid, sum(d.calls) AS calls, sum(d.total_exec_time_ms) AS total, sum(d.shared_blks_read) AS reads,
           sum(d.blk_read_time_ms) AS io
    FROM fleet.statement_delta d JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'sh1'
    GROUP BY d.queryid
)
SELECT count(*) AS statements, bool_and(t.calls = e.calls AND t.total_exec_time_ms = e.total
                                        AND t.shared_blks_read = e.reads AND t.io_time_ms = e.io) AS all_equal,
       (array_agg(t.queryid ORDER BY t.calls DESC))[1:3] AS top3, min(t.query) FILTER (WHERE t.queryid = 30) AS text30
FROM top t JOIN exact e USING (queryid);

-- The 6-hour sums hold what the hourly sums hold; ranges with ragged ends (whole 6-hour blocks plus the
-- hours outside them) agree with the deltas of their whole hours.
SELECT (SELECT sum(calls) FROM fleet.statement_6h b JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'sh1')
     = (SELECT sum(calls) FROM fleet.statement_hourly h JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'sh1')
       AS six_hour_sums_equal;
WITH i AS (SELECT instance_id AS iid FROM fleet.instances WHERE agent_id = 'sh1'),
r AS (SELECT * FROM (VALUES (1, now() - interval '11 hours 17 minutes', now() - interval '2 hours 41 minutes'),
                            (2, now() - interval '7 hours 5 minutes', now() - interval '55 minutes'),
                            (3, now() - interval '13 hours', now()),
                            (4, now() - interval '6 hours 30 minutes', now() - interval '20 minutes')) AS v(k, f, t))
SELECT r.k, (SELECT sum(s.calls) FROM fleet.top_statements(i.iid, r.f, r.t, 'calls', 100) s)
          = (SELECT sum(d.calls) FROM fleet.statement_delta d
             WHERE d.instance_id = i.iid AND fleet._hour(d.ts) >= fleet._hour(r.f) AND fleet._hour(d.ts) <= r.t) AS agrees
FROM r, i ORDER BY r.k;

-- A redelivered batch changes nothing (the ledger stops it before the hourly sums).
SELECT fleet._ingest_payload('statements', 'sh1', 'default', 'b1', 1, 1, NULL,
    '{"texts": [], "deltas": [{"dbid": 5, "userid": 10, "queryid": 1, "toplevel": true, "calls": 99}]}') AS redelivered;
SELECT sum(calls) AS calls_after FROM fleet.statement_hourly h JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'sh1';

-- A short range is still exact to the interval: the last 30 minutes hold 6 intervals.
SELECT calls FROM fleet.top_statements((SELECT instance_id FROM fleet.instances WHERE agent_id = 'sh1'),
    date_trunc('hour', now()) - interval '30 minutes', date_trunc('hour', now()), 'calls', 1);

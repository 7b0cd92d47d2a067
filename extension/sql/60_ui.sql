-- Read functions for the web UI (one round-trip per page) and the operator's right to queue commands.
--
--   fleet.instance_dashboard(instance_id, from, to, step DEFAULT NULL) -> jsonb
--       the fixed chart set of the instance page (CPU, memory, transactions, connections by state, cache
--       hit ratio, WAL, replication lag, wait events), every chart aligned on one bucket grid
--   fleet.instance_sparklines(from, to, instance_ids DEFAULT NULL, step DEFAULT NULL) -> jsonb
--       CPU and transactions per second of every visible instance (at most 500), for the fleet overview
--   fleet.instance_tables(instance_id, from, to) / fleet.instance_indexes(instance_id, from, to)
--       the latest pg.table.* / pg.index.* values per object sent within [from, to]
--
-- Design. These functions only combine the public read API (fleet.series, fleet.rate, fleet.rollup,
-- fleet.wait_profile) plus the metric catalog (fleet.series, fleet.metric: which series exist) and the
-- activity tables (fleet.activity, fleet.activity_interval: sessions per state), so the storage behind
-- the read API may change without touching them. They are SECURITY INVOKER like every read function:
-- row-level security limits them to the caller's namespaces (an invisible instance gives NULL / no rows).
--
-- Buckets. fleet._ui_step picks a "nice" bucket width from the range (about 200 buckets for the dashboard,
-- 60 for sparklines). Below one minute the buckets are computed from raw samples: gauges as the average of
-- fleet.series, counters as the average of fleet.rate (per-sample rates, so a bucket holding one or two
-- samples is still exact). From one minute on, fleet.rollup does the work (1-minute tier below an hour,
-- 1-hour tier above) and the width is a whole number of minutes (hours), so every bucket holds whole tier
-- buckets; a counter's rate there is only given for buckets that are complete (entirely inside the range
-- and ended at least a minute before its end, so the maintenance worker has rolled them up): a partial
-- bucket would read as a drop. Buckets are aligned like fleet.rollup's and fleet.wait_profile's
-- (date_bin from 2000-01-01), so the charts of one page share one time axis.
--
-- Connections by state: the agent samples pg_stat_activity every second but sends only the non-idle
-- sessions (fleet.activity: observations per state and interval), so "active", "idle in transaction", ...
-- are average sessions from there, and "idle" is pg.database.numbackends (summed over databases) minus
-- those, never below zero. Where no activity was sampled the total is shown as "state not sampled".
--
-- Commands: fleet.send_command (46_commands.sql) is SECURITY INVOKER, so the caller's privileges decide.
-- Here: EXECUTE for fleet_operator only (not PUBLIC), INSERT on the columns a caller may choose, and an
-- INSERT policy: only for agents the caller sees, created_by is the caller, and operators may queue the
-- harmless kinds (ping, collect_now) only; other kinds need fleet_admin. A viewer is refused by the
-- database itself (42501), whatever the gateway does.

-- _ui_step: the bucket width for [p_from, p_to]: p_step rounded up (to whole seconds; from one minute on
-- to whole minutes, from one hour on to whole hours), or without p_step the smallest nice width giving at
-- most p_target buckets. Refuses empty ranges and more than 1000 buckets.
CREATE FUNCTION fleet._ui_step(p_from timestamptz, p_to timestamptz, p_step interval, p_target integer)
RETURNS interval
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_range double precision := extract(epoch FROM p_to - p_from);
    v_want double precision;
    v_secs bigint;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to <= p_from THEN
        RAISE EXCEPTION 'the range must end after it starts' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Got from %s and to %s.', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL'));
    END IF;
    IF p_step IS NOT NULL AND p_step < interval '1 second' THEN
        RAISE EXCEPTION 'step must be at least 1 second' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_want := coalesce(extract(epoch FROM p_step), v_range / greatest(p_target, 1));
    IF p_step IS NOT NULL THEN
        v_secs := ceil(v_want);
    ELSE
        SELECT min(n) INTO v_secs FROM unnest(ARRAY[10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800,
                                                    3600, 7200, 10800, 14400, 21600, 43200, 86400]) AS n
        WHERE n >= v_want;
        v_secs := coalesce(v_secs, ceil(v_want / 86400) * 86400);
    END IF;
    IF v_secs >= 3600 THEN
        v_secs := ceil(v_secs / 3600.0) * 3600;
    ELSIF v_secs >= 60 THEN
        v_secs := ceil(v_secs / 60.0) * 60;
    END IF;
    IF v_range / v_secs > 1000 THEN
        RAISE EXCEPTION 'too many buckets' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('A step of %s seconds over %s seconds gives more than 1000 buckets.', v_secs, round(v_range::numeric)),
            HINT = 'Use a larger step or a shorter range.';
    END IF;
    RETURN make_interval(secs => v_secs);
END
$$;

-- _ui_tier: the storage tier fleet.rollup reads for a bucket width (raw, 1m, 1h).
CREATE FUNCTION fleet._ui_tier(p_step interval)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_step < interval '1 minute' THEN 'raw' WHEN p_step < interval '1 hour' THEN '1m' ELSE '1h' END
$$;

-- _ui_buckets: the bucket starts covering [p_from, p_to] (the first one may start before p_from).
CREATE FUNCTION fleet._ui_buckets(p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS timestamptz[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY(SELECT generate_series(date_bin(p_step, p_from, timestamptz '2000-01-01 00:00:00+00'), p_to, p_step))
$$;

-- _ui_align: p_values (at p_buckets) as a JSON array aligned on p_ts: null where a bucket has no value or
-- a value JSON cannot carry (NaN, infinity); duplicates of a bucket keep the largest value.
CREATE FUNCTION fleet._ui_align(p_ts timestamptz[], p_buckets timestamptz[], p_values double precision[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(CASE WHEN v.value IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN NULL
                                   ELSE to_jsonb(v.value) END ORDER BY t.i), '[]'::jsonb)
    FROM unnest(p_ts) WITH ORDINALITY AS t(ts, i)
    LEFT JOIN (SELECT u.b, max(u.value) AS value FROM unnest(p_buckets, p_values) AS u(b, value)
               WHERE u.b IS NOT NULL GROUP BY u.b) v ON v.b = t.ts
$$;

-- _ui_metric: one metric of one instance in buckets of p_step, per label set: the average of a gauge, or
-- (p_rate) the per-second rate of a counter. See the header for how each tier is read.
CREATE FUNCTION fleet._ui_metric(p_instance_id bigint, p_metric text, p_from timestamptz, p_to timestamptz,
                                 p_step interval, p_rate boolean)
RETURNS TABLE (labels jsonb, bucket timestamptz, value double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_step < interval '1 minute' THEN
        IF p_rate THEN
            RETURN QUERY
            SELECT r.labels, date_bin(p_step, r.ts, timestamptz '2000-01-01 00:00:00+00') AS b, avg(r.value)
            FROM fleet.rate(p_instance_id, p_metric, p_from, p_to) r
            GROUP BY r.labels, b;
        ELSE
            RETURN QUERY
            SELECT s.labels, date_bin(p_step, s.ts, timestamptz '2000-01-01 00:00:00+00') AS b, avg(s.value)
            FROM fleet.series(p_instance_id, p_metric, p_from, p_to) s
            GROUP BY s.labels, b;
        END IF;
    ELSE
        RETURN QUERY
        SELECT r.labels, r.bucket, CASE WHEN p_rate THEN r.rate ELSE r.avg END
        FROM fleet.rollup(p_instance_id, p_metric, p_from, p_to, p_step) r
        WHERE NOT p_rate OR (r.bucket >= p_from AND r.bucket + p_step <= p_to - interval '1 minute');
    END IF;
END
$$;

-- _ui_dashboard_series: the points of every dashboard chart: (chart, series name, order, bucket, value).
CREATE FUNCTION fleet._ui_dashboard_series(p_instance_id bigint, p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS TABLE (chart text, series text, ord integer, bucket timestamptz, value double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    -- CPU: busy share of all CPUs (percent).
    RETURN QUERY SELECT 'cpu', 'busy', 0, m.bucket, m.value
        FROM fleet._ui_metric(p_instance_id, 'host.cpu.utilization', p_from, p_to, p_step, false) m;
    -- Memory (stacked, bytes): used and available, which add up to the total.
    RETURN QUERY SELECT 'memory', x.name, x.ord, m.bucket, m.value
        FROM (VALUES ('used', 0, 'host.memory.used_bytes'), ('available', 1, 'host.memory.available_bytes')) AS x(name, ord, metric)
        CROSS JOIN LATERAL fleet._ui_metric(p_instance_id, x.metric, p_from, p_to, p_step, false) m;
    -- Transactions per second, all databases: commits and rollbacks (stacked).
    RETURN QUERY SELECT 'tps', x.name, x.ord, m.bucket, sum(m.value)
        FROM (VALUES ('commit', 0, 'pg.database.xact_commit'), ('rollback', 1, 'pg.database.xact_rollback')) AS x(name, ord, metric)
        CROSS JOIN LATERAL fleet._ui_metric(p_instance_id, x.metric, p_from, p_to, p_step, true) m
        GROUP BY x.name, x.ord, m.bucket;
    -- Connections by state (stacked, average sessions).
    RETURN QUERY
        WITH total AS (
            SELECT m.bucket, sum(m.value) AS n
            FROM fleet._ui_metric(p_instance_id, 'pg.database.numbackends', p_from, p_to, p_step, false) m
            GROUP BY m.bucket
        ), intervals AS (
            SELECT date_bin(p_step, i.ts, timestamptz '2000-01-01 00:00:00+00') AS bucket, sum(i.samples_taken) AS samples
            FROM fleet.activity_interval i
            WHERE i.instance_id = p_instance_id AND i.ts > p_from AND i.ts <= p_to
            GROUP BY 1
        ), states AS (
            SELECT s.bucket, s.state, s.observations::double precision / i.samples AS n
            FROM (SELECT date_bin(p_step, a.ts, timestamptz '2000-01-01 00:00:00+00') AS bucket, a.state,
                         sum(a.observations) AS observations
                  FROM fleet.activity a
                  WHERE a.instance_id = p_instance_id AND a.ts > p_from AND a.ts <= p_to
                  GROUP BY 1, 2) s
            JOIN intervals i ON i.bucket = s.bucket
            WHERE i.samples > 0
        )
        SELECT 'connections', s.state,
               CASE s.state WHEN 'active' THEN 0 WHEN 'idle in transaction' THEN 1
                            WHEN 'idle in transaction (aborted)' THEN 2 ELSE 3 END,
               s.bucket, s.n
        FROM states s
        UNION ALL
        SELECT 'connections', CASE WHEN i.bucket IS NULL THEN 'state not sampled' ELSE 'idle' END,
               CASE WHEN i.bucket IS NULL THEN 5 ELSE 4 END, t.bucket,
               greatest(t.n - coalesce((SELECT sum(s.n) FROM states s WHERE s.bucket = t.bucket), 0), 0)
        FROM total t LEFT JOIN intervals i ON i.bucket = t.bucket AND i.samples > 0;
    -- Cache hit ratio (percent), all databases: blks_hit / (blks_hit + blks_read) of the bucket's rates.
    RETURN QUERY
        WITH h AS (SELECT m.bucket, sum(m.value) AS v
                   FROM fleet._ui_metric(p_instance_id, 'pg.database.blks_hit', p_from, p_to, p_step, true) m GROUP BY 1),
             r AS (SELECT m.bucket, sum(m.value) AS v
                   FROM fleet._ui_metric(p_instance_id, 'pg.database.blks_read', p_from, p_to, p_step, true) m GROUP BY 1)
        SELECT 'cache', 'hit ratio', 0, h.bucket,
               CASE WHEN h.v + coalesce(r.v, 0) > 0 THEN 100 * h.v / (h.v + coalesce(r.v, 0)) END
        FROM h LEFT JOIN r ON r.bucket = h.bucket;
    -- WAL written (bytes per second).
    RETURN QUERY SELECT 'wal', 'WAL bytes', 0, m.bucket, m.value
        FROM fleet._ui_metric(p_instance_id, 'pg.wal.wal_bytes', p_from, p_to, p_step, true) m;
    -- Replication lag (bytes): per standby on a primary, replay lag on a standby.
    RETURN QUERY SELECT 'replication',
               coalesce(nullif(m.labels->>'application_name', ''), 'standby')
                 || coalesce(' (' || nullif(m.labels->>'client_addr', '') || ')', ''), 0, m.bucket, m.value
        FROM fleet._ui_metric(p_instance_id, 'pg.replication.lag_bytes', p_from, p_to, p_step, false) m;
    RETURN QUERY SELECT 'replication', 'this standby: received, not replayed', 1, m.bucket, m.value
        FROM fleet._ui_metric(p_instance_id, 'pg.wal_receiver.replay_lag_bytes', p_from, p_to, p_step, false) m;
    -- Wait events (stacked): average active sessions per wait event type; not waiting counts as CPU.
    RETURN QUERY SELECT 'waits', w.wait_event_type, CASE WHEN w.wait_event_type = 'CPU' THEN 0 ELSE 1 END,
               w.bucket, sum(w.average_active_sessions)
        FROM fleet.wait_profile(p_instance_id, p_from, p_to, p_step) w
        GROUP BY w.wait_event_type, w.bucket;
END
$$;

-- instance_dashboard: the fixed chart set of one instance over [p_from, p_to], one JSON document:
--   {"instance_id", "from", "to", "step" (seconds), "tier" (raw, 1m, 1h), "ts": [bucket starts, unix s],
--    "charts": [{"id", "title", "unit", "stacked", "collected", "note", "series": [{"name", "values"}]}]}
-- Chart ids in order: cpu, memory, tps, connections, cache, wal, replication, waits. values are aligned
-- with ts (null: no data in that bucket). collected is false when the instance has never sent the chart's
-- data (no series of its metrics; for waits: no activity interval); note then says why, plainly.
-- Counters are per-second rates. NULL for an unknown instance or one the caller may not see.
CREATE FUNCTION fleet.instance_dashboard(p_instance_id bigint, p_from timestamptz, p_to timestamptz,
                                         p_step interval DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step interval := fleet._ui_step(p_from, p_to, p_step, 200);
    v_ts timestamptz[];
    v_charts jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM fleet.instances i WHERE i.instance_id = p_instance_id) THEN
        RETURN NULL;
    END IF;
    v_ts := fleet._ui_buckets(p_from, p_to, v_step);
    WITH pts AS MATERIALIZED (
        SELECT * FROM fleet._ui_dashboard_series(p_instance_id, p_from, p_to, v_step)
    ), aligned AS (
        SELECT p.chart, p.series, min(p.ord) AS ord,
               fleet._ui_align(v_ts, array_agg(p.bucket), array_agg(p.value)) AS vals
        FROM pts p GROUP BY p.chart, p.series
    ), defs (chart, pos, title, unit, stacked, metrics, note) AS (VALUES
        ('cpu', 1, 'CPU', 'percent', false, ARRAY['host.cpu.utilization'],
         'the agent has sent no host.cpu.utilization for this instance: it reads /proc/stat of the host it runs on (Linux only).'),
        ('memory', 2, 'Memory', 'bytes', true, ARRAY['host.memory.used_bytes', 'host.memory.available_bytes'],
         'the agent has sent no host.memory.* for this instance: it reads /proc/meminfo of the host it runs on (Linux only).'),
        ('tps', 3, 'Transactions per second', 'tx/s', true, ARRAY['pg.database.xact_commit', 'pg.database.xact_rollback'],
         'the agent has sent no pg.database.xact_commit for this instance (the metrics collector is off or cannot read pg_stat_database).'),
        ('connections', 4, 'Connections by state', 'sessions', true, ARRAY['pg.database.numbackends'],
         'the agent has sent no pg.database.numbackends for this instance (the metrics collector is off or cannot read pg_stat_database).'),
        ('cache', 5, 'Cache hit ratio', 'percent', false, ARRAY['pg.database.blks_hit', 'pg.database.blks_read'],
         'the agent has sent no pg.database.blks_hit for this instance (the metrics collector is off or cannot read pg_stat_database).'),
        ('wal', 6, 'WAL written', 'bytes/s', false, ARRAY['pg.wal.wal_bytes'],
         'the agent has sent no pg.wal.wal_bytes for this instance (pg_stat_wal, PostgreSQL 14 and later).'),
        ('replication', 7, 'Replication lag', 'bytes', false, ARRAY['pg.replication.lag_bytes', 'pg.wal_receiver.replay_lag_bytes'],
         'no standby has been attached to this instance (pg_stat_replication was always empty) and it is not a standby itself.'),
        ('waits', 8, 'Wait events (average active sessions)', 'sessions', true, NULL::text[],
         'no activity samples have arrived from this instance (the agent''s activity collector is off or has not run yet).')
    )
    SELECT jsonb_agg(jsonb_build_object(
               'id', d.chart, 'title', d.title, 'unit', d.unit, 'stacked', d.stacked, 'collected', c.yes,
               'note', CASE WHEN NOT c.yes THEN d.note END,
               'series', coalesce((SELECT jsonb_agg(jsonb_build_object('name', a.series, 'values', a.vals)
                                                    ORDER BY a.ord, a.series)
                                   FROM aligned a WHERE a.chart = d.chart), '[]'::jsonb))
           ORDER BY d.pos)
    INTO v_charts
    FROM defs d
    CROSS JOIN LATERAL (
        SELECT CASE WHEN d.metrics IS NULL
                    THEN EXISTS (SELECT 1 FROM fleet.activity_interval i WHERE i.instance_id = p_instance_id)
                    ELSE EXISTS (SELECT 1 FROM fleet.series s JOIN fleet.metric m USING (metric_id)
                                 WHERE s.instance_id = p_instance_id AND m.name = ANY (d.metrics)) END AS yes
    ) c;
    RETURN jsonb_build_object(
        'instance_id', p_instance_id, 'from', p_from, 'to', p_to,
        'step', extract(epoch FROM v_step)::bigint, 'tier', fleet._ui_tier(v_step),
        'ts', (SELECT coalesce(jsonb_agg(extract(epoch FROM t)::bigint ORDER BY t), '[]'::jsonb) FROM unnest(v_ts) t),
        'charts', v_charts);
END
$$;

-- instance_sparklines: CPU (percent busy) and transactions per second (commits + rollbacks, all
-- databases) of every visible instance, or of those in p_instance_ids, in about 60 buckets over
-- [p_from, p_to] (the 1-minute rollups for an hour), ordered like fleet.instances in the UI; at most 500:
--   {"from", "to", "step", "tier", "ts": [...], "instances": [{"instance_id", "cpu": [...], "tps": [...]}]}
CREATE FUNCTION fleet.instance_sparklines(p_from timestamptz, p_to timestamptz, p_instance_ids bigint[] DEFAULT NULL,
                                          p_step interval DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step interval := fleet._ui_step(p_from, p_to, p_step, 60);
    v_ts timestamptz[] := fleet._ui_buckets(p_from, p_to, v_step);
BEGIN
    RETURN jsonb_build_object(
        'from', p_from, 'to', p_to, 'step', extract(epoch FROM v_step)::bigint, 'tier', fleet._ui_tier(v_step),
        'ts', (SELECT coalesce(jsonb_agg(extract(epoch FROM t)::bigint ORDER BY t), '[]'::jsonb) FROM unnest(v_ts) t),
        'instances', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'instance_id', i.instance_id,
                       'cpu', (SELECT fleet._ui_align(v_ts, array_agg(m.bucket), array_agg(m.value))
                               FROM fleet._ui_metric(i.instance_id, 'host.cpu.utilization', p_from, p_to, v_step, false) m),
                       'tps', (SELECT fleet._ui_align(v_ts, array_agg(x.bucket), array_agg(x.v))
                               FROM (SELECT m.bucket, sum(m.value) AS v
                                     FROM unnest(ARRAY['pg.database.xact_commit', 'pg.database.xact_rollback']) AS k(metric)
                                     CROSS JOIN LATERAL fleet._ui_metric(i.instance_id, k.metric, p_from, p_to, v_step, true) m
                                     GROUP BY m.bucket) x))
                   ORDER BY i.namespace, i.hostname, i.instance_id)
            FROM (SELECT * FROM fleet.instances v
                  WHERE p_instance_ids IS NULL OR v.instance_id = ANY (p_instance_ids)
                  ORDER BY v.namespace, v.hostname, v.instance_id
                  LIMIT 500) i), '[]'::jsonb));
END
$$;

-- _latest_values: per metric of p_metrics and label set, the newest sample within [p_from, p_to].
CREATE FUNCTION fleet._latest_values(p_instance_id bigint, p_metrics text[], p_from timestamptz, p_to timestamptz)
RETURNS TABLE (metric text, labels jsonb, ts timestamptz, value double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.metric, x.labels, x.ts, x.value
    FROM unnest(p_metrics) AS k(metric)
    CROSS JOIN LATERAL (
        SELECT DISTINCT ON (s.labels) s.labels, s.ts, s.value
        FROM fleet.series(p_instance_id, k.metric, p_from, p_to) s
        ORDER BY s.labels, s.ts DESC) x
$$;

-- instance_tables: per table (labels datname, schema, table of pg.table.*), the latest values sent within
-- [p_from, p_to] (default: the last 15 minutes; the agent sends an object when it changed and every
-- object at least every 10 minutes). vacuum_age_seconds is extrapolated to p_to (age at the sample plus
-- the time since; NULL when never vacuumed); idx_scan_share = idx_scan / (seq_scan + idx_scan);
-- dead_ratio = n_dead_tup / (n_live_tup + n_dead_tup). Biggest first.
CREATE FUNCTION fleet.instance_tables(p_instance_id bigint, p_from timestamptz DEFAULT now() - interval '15 minutes',
                                      p_to timestamptz DEFAULT now())
RETURNS TABLE (datname text, schema_name text, table_name text, size_bytes double precision,
               n_live_tup double precision, n_dead_tup double precision, dead_ratio double precision,
               seq_scan double precision, idx_scan double precision, idx_scan_share double precision,
               vacuum_age_seconds double precision, relfrozenxid_age double precision, sampled_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH latest AS (
        SELECT * FROM fleet._latest_values(p_instance_id,
            ARRAY['pg.table.size_bytes', 'pg.table.n_live_tup', 'pg.table.n_dead_tup', 'pg.table.seq_scan',
                  'pg.table.idx_scan', 'pg.table.vacuum_age_seconds', 'pg.table.relfrozenxid_age'], p_from, p_to)
    ), t AS (
        SELECT l.labels,
               max(l.value) FILTER (WHERE l.metric = 'pg.table.size_bytes') AS size_bytes,
               max(l.value) FILTER (WHERE l.metric = 'pg.table.n_live_tup') AS live,
               max(l.value) FILTER (WHERE l.metric = 'pg.table.n_dead_tup') AS dead,
               max(l.value) FILTER (WHERE l.metric = 'pg.table.seq_scan') AS seq,
               max(l.value) FILTER (WHERE l.metric = 'pg.table.idx_scan') AS idx,
               max(l.value + extract(epoch FROM p_to - l.ts)::double precision) FILTER (WHERE l.metric = 'pg.table.vacuum_age_seconds') AS vacuum_age,
               max(l.value) FILTER (WHERE l.metric = 'pg.table.relfrozenxid_age') AS xid_age,
               max(l.ts) AS sampled_at
        FROM latest l GROUP BY l.labels
    )
    SELECT t.labels->>'datname', t.labels->>'schema', t.labels->>'table', t.size_bytes, t.live, t.dead,
           CASE WHEN t.live + t.dead > 0 THEN t.dead / (t.live + t.dead) END,
           t.seq, t.idx, CASE WHEN t.seq + t.idx > 0 THEN t.idx / (t.seq + t.idx) END,
           t.vacuum_age, t.xid_age, t.sampled_at
    FROM t
    ORDER BY t.size_bytes DESC NULLS LAST, 1, 2, 3
$$;

-- instance_indexes: per index (labels datname, schema, table, index of pg.index.*), the latest values sent
-- within [p_from, p_to] (default: the last 15 minutes). invalid: pg_index.indisvalid is false. Biggest first.
CREATE FUNCTION fleet.instance_indexes(p_instance_id bigint, p_from timestamptz DEFAULT now() - interval '15 minutes',
                                       p_to timestamptz DEFAULT now())
RETURNS TABLE (datname text, schema_name text, table_name text, index_name text, size_bytes double precision,
               idx_scan double precision, invalid boolean, sampled_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH latest AS (
        SELECT * FROM fleet._latest_values(p_instance_id,
            ARRAY['pg.index.size_bytes', 'pg.index.idx_scan', 'pg.index.invalid'], p_from, p_to)
    ), t AS (
        SELECT l.labels,
               max(l.value) FILTER (WHERE l.metric = 'pg.index.size_bytes') AS size_bytes,
               max(l.value) FILTER (WHERE l.metric = 'pg.index.idx_scan') AS scans,
               max(l.value) FILTER (WHERE l.metric = 'pg.index.invalid') AS invalid,
               max(l.ts) AS sampled_at
        FROM latest l GROUP BY l.labels
    )
    SELECT t.labels->>'datname', t.labels->>'schema', t.labels->>'table', t.labels->>'index', t.size_bytes, t.scans,
           t.invalid > 0, t.sampled_at
    FROM t
    ORDER BY t.size_bytes DESC NULLS LAST, 1, 2, 3, 4
$$;

-- Commands: queued by operators (harmless kinds) and admins (any kind), enforced by the database.
REVOKE EXECUTE ON FUNCTION fleet.send_command(text, text, jsonb, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fleet.send_command(text, text, jsonb, interval) TO fleet_operator;
GRANT INSERT (agent_id, kind, args, expires_at) ON fleet.command TO fleet_operator;
CREATE POLICY command_queue ON fleet.command FOR INSERT TO fleet_operator
    WITH CHECK (agent_id IN (SELECT a.agent_id FROM fleet.agent a)
                AND created_by = current_user AND sent_count = 0 AND last_sent_at IS NULL
                AND expires_at <= now() + interval '1 day'
                AND (kind IN ('ping', 'collect_now') OR (SELECT fleet.is_fleet_admin())));

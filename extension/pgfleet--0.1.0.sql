-- pgfleet 0.1.0 — install script (schema fleet).
--
-- Tables
--   namespace       a tenant of the fleet; every agent belongs to one (taken from the NATS subject)
--   agent           one per monitored host process; agent_id is its stable name
--   instance        the PostgreSQL instance an agent monitors (one per agent)
--   metric          metric names with kind (gauge/counter) and unit
--   series          one metric with one label set on one instance
--   sample          hot tier: one row per (series, ts) — bulk-written by the ingest workers
--   ingest_ledger   every batch stored, (agent_id, boot_id, batch_seq): the exactly-once key
--   dead_letter     messages put aside with the reason; never silently dropped
-- Every table that holds instance data carries instance_id first in its key.

\echo Use "CREATE EXTENSION pgfleet" to load this file. \quit

CREATE TABLE fleet.namespace (
    namespace_id serial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO fleet.namespace (name) VALUES ('default');

CREATE TABLE fleet.agent (
    agent_id text PRIMARY KEY CHECK (agent_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    namespace_id integer NOT NULL REFERENCES fleet.namespace,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    last_boot_id text
);

CREATE TABLE fleet.instance (
    instance_id bigserial PRIMARY KEY,
    agent_id text NOT NULL UNIQUE REFERENCES fleet.agent ON DELETE CASCADE,
    system_identifier text,
    server_version text,
    server_version_num integer,
    hostname text,
    data_directory text,
    port integer,
    in_recovery boolean,
    postmaster_start timestamptz,
    labels jsonb NOT NULL DEFAULT '{}',
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fleet.metric (
    metric_id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('gauge', 'counter')),
    unit text NOT NULL DEFAULT ''
);

CREATE TABLE fleet.series (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    series_id bigserial NOT NULL UNIQUE,
    metric_id integer NOT NULL REFERENCES fleet.metric,
    labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    PRIMARY KEY (instance_id, metric_id, labels)
);

CREATE TABLE fleet.sample (
    instance_id bigint NOT NULL,
    series_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    value double precision NOT NULL
);
CREATE INDEX sample_instance_series_ts ON fleet.sample (instance_id, series_id, ts);

CREATE TABLE fleet.ingest_ledger (
    agent_id text NOT NULL,
    boot_id text NOT NULL,
    batch_seq bigint NOT NULL,
    stream_seq bigint NOT NULL,
    samples integer NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, boot_id, batch_seq)
);

CREATE TABLE fleet.dead_letter (
    dead_letter_id bigserial PRIMARY KEY,
    stream text NOT NULL,
    stream_seq bigint NOT NULL,
    subject text NOT NULL,
    reason text NOT NULL,
    detail text NOT NULL,
    raw bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream, stream_seq)
);

-- _ingest_metrics: stores one decoded metrics batch; called by the ingest workers only.
-- Returns the number of samples stored, or -1 when the ledger already holds the batch (a redelivery).
-- Series are given as parallel arrays (metric, kind, unit, labels); samples refer to them by 0-based
-- index. The C++ decoder has validated everything; constraints here are the last line of defence.
CREATE FUNCTION fleet._ingest_metrics(
    p_agent_id text, p_namespace text, p_boot_id text, p_batch_seq bigint, p_stream_seq bigint,
    p_instance jsonb,
    p_metric text[], p_kind text[], p_unit text[], p_labels jsonb[],
    p_sample_series integer[], p_sample_ts timestamptz[], p_sample_value double precision[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_namespace_id integer;
    v_instance_id bigint;
    v_series_ids bigint[];
BEGIN
    INSERT INTO fleet.ingest_ledger (agent_id, boot_id, batch_seq, stream_seq, samples)
    VALUES (p_agent_id, p_boot_id, p_batch_seq, p_stream_seq, cardinality(p_sample_value))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;

    INSERT INTO fleet.namespace (name) VALUES (p_namespace) ON CONFLICT (name) DO NOTHING;
    SELECT namespace_id INTO STRICT v_namespace_id FROM fleet.namespace WHERE name = p_namespace;

    INSERT INTO fleet.agent AS a (agent_id, namespace_id, last_boot_id)
    VALUES (p_agent_id, v_namespace_id, p_boot_id)
    ON CONFLICT (agent_id) DO UPDATE
        SET last_seen = now(), namespace_id = excluded.namespace_id, last_boot_id = excluded.last_boot_id;

    INSERT INTO fleet.instance AS i (agent_id, system_identifier, server_version, server_version_num, hostname,
                                     data_directory, port, in_recovery, postmaster_start)
    VALUES (p_agent_id, p_instance->>'system_identifier', p_instance->>'server_version',
            (p_instance->>'server_version_num')::integer, p_instance->>'hostname', p_instance->>'data_directory',
            (p_instance->>'port')::integer, (p_instance->>'in_recovery')::boolean,
            to_timestamp((p_instance->>'postmaster_start_unix_ms')::double precision / 1000))
    ON CONFLICT (agent_id) DO UPDATE SET
        last_seen = now(),
        system_identifier = coalesce(excluded.system_identifier, i.system_identifier),
        server_version = coalesce(excluded.server_version, i.server_version),
        server_version_num = coalesce(excluded.server_version_num, i.server_version_num),
        hostname = coalesce(excluded.hostname, i.hostname),
        data_directory = coalesce(excluded.data_directory, i.data_directory),
        port = coalesce(excluded.port, i.port),
        in_recovery = coalesce(excluded.in_recovery, i.in_recovery),
        postmaster_start = coalesce(excluded.postmaster_start, i.postmaster_start)
    RETURNING instance_id INTO v_instance_id;

    INSERT INTO fleet.metric (name, kind, unit)
    SELECT DISTINCT ON (m) m, k, u FROM unnest(p_metric, p_kind, p_unit) AS d(m, k, u) ORDER BY m
    ON CONFLICT (name) DO NOTHING;

    INSERT INTO fleet.series (instance_id, metric_id, labels)
    SELECT v_instance_id, mt.metric_id, d.l
    FROM unnest(p_metric, p_labels) AS d(m, l) JOIN fleet.metric mt ON mt.name = d.m
    ON CONFLICT DO NOTHING;

    SELECT array_agg(s.series_id ORDER BY d.ord) INTO v_series_ids
    FROM unnest(p_metric, p_labels) WITH ORDINALITY AS d(m, l, ord)
    JOIN fleet.metric mt ON mt.name = d.m
    JOIN fleet.series s ON s.instance_id = v_instance_id AND s.metric_id = mt.metric_id AND s.labels = d.l;

    INSERT INTO fleet.sample (instance_id, series_id, ts, value)
    SELECT v_instance_id, v_series_ids[u.r + 1], u.t, u.v
    FROM unnest(p_sample_series, p_sample_ts, p_sample_value) AS u(r, t, v);

    RETURN cardinality(p_sample_value);
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_metrics(text, text, text, bigint, bigint, jsonb, text[], text[], text[],
                                             jsonb[], integer[], timestamptz[], double precision[]) FROM PUBLIC;

-- instances: every monitored instance with its agent, namespace and liveness.
-- status is 'up' when the instance's agent delivered a batch within the last 60 seconds.
CREATE VIEW fleet.instances AS
SELECT i.instance_id, n.name AS namespace, i.agent_id, i.hostname, i.server_version, i.system_identifier,
       i.in_recovery, i.first_seen, i.last_seen,
       CASE WHEN i.last_seen > now() - interval '60 seconds' THEN 'up' ELSE 'stale' END AS status
FROM fleet.instance i
JOIN fleet.agent a USING (agent_id)
JOIN fleet.namespace n USING (namespace_id);

-- instance_series: the series of one instance, with the time of its newest sample.
CREATE FUNCTION fleet.instance_series(p_instance_id bigint)
RETURNS TABLE (series_id bigint, metric text, kind text, unit text, labels jsonb, last_ts timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.series_id, m.name, m.kind, m.unit, s.labels,
           (SELECT x.ts FROM fleet.sample x
             WHERE x.instance_id = s.instance_id AND x.series_id = s.series_id
             ORDER BY x.ts DESC LIMIT 1)
    FROM fleet.series s JOIN fleet.metric m USING (metric_id)
    WHERE s.instance_id = p_instance_id
    ORDER BY m.name, s.labels::text
$$;

-- series: the samples of one metric of one instance between two times (inclusive), per label set.
CREATE FUNCTION fleet.series(p_instance_id bigint, p_metric text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (labels jsonb, ts timestamptz, value double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.labels, x.ts, x.value
    FROM fleet.series s
    JOIN fleet.metric m USING (metric_id)
    JOIN fleet.sample x ON x.instance_id = s.instance_id AND x.series_id = s.series_id
    WHERE s.instance_id = p_instance_id AND m.name = p_metric AND x.ts BETWEEN p_from AND p_to
    ORDER BY s.labels::text, x.ts
$$;

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

-- Raw tables are for the extension's own functions and for administrators; readers use the API.
REVOKE ALL ON ALL TABLES IN SCHEMA fleet FROM PUBLIC;
GRANT USAGE ON SCHEMA fleet TO PUBLIC;

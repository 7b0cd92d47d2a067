-- Ingest of metrics batches (called by the ingest workers).

-- _ingest_begin: the part of storing a batch common to every payload kind, called first inside the
-- batch's (sub)transaction: records the batch in the ledger and registers namespace, agent and
-- instance (updating the instance's facts when the batch carries them). Returns the instance_id, or
-- NULL when the ledger already holds the batch (a redelivery: the caller stores nothing).
CREATE FUNCTION fleet._ingest_begin(
    p_agent_id text, p_namespace text, p_boot_id text, p_batch_seq bigint, p_stream_seq bigint,
    p_rows integer, p_instance jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_namespace_id integer;
    v_instance_id bigint;
BEGIN
    INSERT INTO fleet.ingest_ledger (agent_id, boot_id, batch_seq, stream_seq, samples)
    VALUES (p_agent_id, p_boot_id, p_batch_seq, p_stream_seq, p_rows)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
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
    RETURN v_instance_id;
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_begin(text, text, text, bigint, bigint, integer, jsonb) FROM PUBLIC;

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
    v_instance_id bigint;
    v_series_ids bigint[];
BEGIN
    v_instance_id := fleet._ingest_begin(p_agent_id, p_namespace, p_boot_id, p_batch_seq, p_stream_seq,
                                         cardinality(p_sample_value), p_instance);
    IF v_instance_id IS NULL THEN
        RETURN -1;
    END IF;

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

    -- The raw time range this batch touched: the rollup job recomputes those buckets (late data included).
    INSERT INTO fleet.rollup_pending (instance_id, from_ts, to_ts)
    SELECT v_instance_id, min(t), max(t) FROM unnest(p_sample_ts) AS t HAVING count(*) > 0;

    RETURN cardinality(p_sample_value);
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_metrics(text, text, text, bigint, bigint, jsonb, text[], text[], text[],
                                             jsonb[], integer[], timestamptz[], double precision[]) FROM PUBLIC;


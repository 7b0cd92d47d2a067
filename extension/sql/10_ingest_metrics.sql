-- Ingest of metrics batches (called by the ingest workers).

-- _register_instance: registers namespace, agent and instance (updating the instance's facts when
-- p_instance carries them) and returns the instance_id.
CREATE FUNCTION fleet._register_instance(p_agent_id text, p_namespace text, p_boot_id text, p_instance jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_namespace_id integer;
    v_instance_id bigint;
BEGIN
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
REVOKE ALL ON FUNCTION fleet._register_instance(text, text, text, jsonb) FROM PUBLIC;

-- _ingest_begin: the part of storing a batch common to every payload kind, called first inside the
-- batch's (sub)transaction: records the batch in the ledger, then registers namespace, agent and
-- instance. Returns the instance_id, or NULL when the ledger already holds the batch (a redelivery:
-- the caller stores nothing).
CREATE FUNCTION fleet._ingest_begin(
    p_agent_id text, p_namespace text, p_boot_id text, p_batch_seq bigint, p_stream_seq bigint,
    p_rows integer, p_instance jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO fleet.ingest_ledger (agent_id, boot_id, batch_seq, stream_seq, samples)
    VALUES (p_agent_id, p_boot_id, p_batch_seq, p_stream_seq, p_rows)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN fleet._register_instance(p_agent_id, p_namespace, p_boot_id, p_instance);
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_begin(text, text, text, bigint, bigint, integer, jsonb) FROM PUBLIC;

-- _register_series_sets: makes sure the series sets of a batch exist (and with them namespace, agent,
-- instance, metrics and series). Set k has key p_set_keys[k] and the next p_set_len[k] entries of
-- p_set_series, each a 0-based index into the series declarations (p_metric, p_kind, p_unit,
-- p_labels). Writes no ledger row: the batch itself is stored by _ingest_metric_blocks afterwards.
CREATE FUNCTION fleet._register_series_sets(
    p_agent_id text, p_namespace text, p_boot_id text, p_instance jsonb,
    p_set_keys bytea[], p_set_len integer[], p_set_series integer[],
    p_metric text[], p_kind text[], p_unit text[], p_labels jsonb[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_instance_id bigint;
    v_series_ids bigint[];
    v_rows integer;
BEGIN
    v_instance_id := fleet._register_instance(p_agent_id, p_namespace, p_boot_id, p_instance);

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

    INSERT INTO fleet.series_set (instance_id, set_key, series_count, series_ids)
    SELECT v_instance_id, k.set_key, k.l,
           ARRAY(SELECT v_series_ids[p_set_series[j] + 1] FROM generate_series(k.e - k.l + 1, k.e) AS j ORDER BY j)
    FROM (SELECT u.set_key, u.l, sum(u.l) OVER (ORDER BY u.ord)::integer AS e
          FROM unnest(p_set_keys, p_set_len) WITH ORDINALITY AS u(set_key, l, ord)) AS k
    ON CONFLICT (instance_id, set_key) DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
REVOKE ALL ON FUNCTION fleet._register_series_sets(text, text, text, jsonb, bytea[], integer[], integer[], text[],
                                                   text[], text[], jsonb[]) FROM PUBLIC;

-- _ingest_metric_blocks: stores one metrics batch in the hot tier, one fleet.sample_block row per
-- scrape. Scrape k has timestamp p_scrape_ts[k], series set p_set_keys[k] and the next p_scrape_len[k]
-- values of p_values; when p_keyframe[k] it is also kept in fleet.metric_keyframe. Returns the number
-- of samples stored, -1 when the ledger already holds the batch (a redelivery), or -2 when a series
-- set (or the instance) is not registered yet: then nothing was written, and the caller registers the
-- sets (_register_series_sets) and calls again.
CREATE FUNCTION fleet._ingest_metric_blocks(
    p_agent_id text, p_namespace text, p_boot_id text, p_batch_seq bigint, p_stream_seq bigint,
    p_instance jsonb, p_set_keys bytea[], p_scrape_ts timestamptz[], p_scrape_len integer[],
    p_values double precision[], p_keyframe boolean[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_instance_id bigint;
    v_set_ids bigint[];
    v_found integer;
    v_samples integer := coalesce(cardinality(p_values), 0);
BEGIN
    IF coalesce(cardinality(p_set_keys), 0) > 0 THEN
        SELECT i.instance_id INTO v_instance_id FROM fleet.instance i WHERE i.agent_id = p_agent_id;
        IF v_instance_id IS NULL THEN
            RETURN -2;
        END IF;
        SELECT array_agg(ss.series_set_id ORDER BY k.ord),
               count(*) FILTER (WHERE ss.series_count = p_scrape_len[k.ord])
          INTO v_set_ids, v_found
          FROM unnest(p_set_keys) WITH ORDINALITY AS k(set_key, ord)
          LEFT JOIN fleet.series_set ss ON ss.instance_id = v_instance_id AND ss.set_key = k.set_key;
        IF v_found < cardinality(p_set_keys) THEN
            RETURN -2;
        END IF;
    END IF;

    v_instance_id := fleet._ingest_begin(p_agent_id, p_namespace, p_boot_id, p_batch_seq, p_stream_seq,
                                         v_samples, p_instance);
    IF v_instance_id IS NULL THEN
        RETURN -1;
    END IF;
    IF v_samples = 0 THEN
        RETURN 0;
    END IF;

    INSERT INTO fleet.sample_block (instance_id, ts, series_set_id, vals)
    SELECT v_instance_id, x.t, v_set_ids[x.ord], p_values[x.e - x.l + 1 : x.e]
    FROM (SELECT u.t, u.l, u.ord, sum(u.l) OVER (ORDER BY u.ord)::integer AS e
          FROM unnest(p_scrape_ts, p_scrape_len) WITH ORDINALITY AS u(t, l, ord)) AS x;

    -- The raw time range this batch touched: the rollup job recomputes those buckets (late data included).
    INSERT INTO fleet.rollup_pending (instance_id, from_ts, to_ts)
    SELECT v_instance_id, min(t), max(t) FROM unnest(p_scrape_ts) AS t;

    IF true = ANY (p_keyframe) THEN
        INSERT INTO fleet.metric_keyframe (instance_id, boot_id, batch_seq, series_set_id, ts, vals)
        SELECT v_instance_id, p_boot_id, p_batch_seq, v_set_ids[x.ord], x.t, p_values[x.e - x.l + 1 : x.e]
        FROM (SELECT u.t, u.l, u.ord, sum(u.l) OVER (ORDER BY u.ord)::integer AS e
              FROM unnest(p_scrape_ts, p_scrape_len) WITH ORDINALITY AS u(t, l, ord)) AS x
        WHERE p_keyframe[x.ord]
        ON CONFLICT DO NOTHING;
    END IF;

    RETURN v_samples;
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_metric_blocks(text, text, text, bigint, bigint, jsonb, bytea[], timestamptz[],
                                                   integer[], double precision[], boolean[]) FROM PUBLIC;

-- _metric_keyframes: the keyframe values the based scrapes of a batch need, concatenated in scrape
-- order: scrape k is based on the keyframe of set p_set_keys[k] in batch p_base_seq[k] of the same
-- agent and boot (each exactly as long as its set, so the caller can cut the concatenation by the
-- sets' lengths). Returns '{}' when the ledger already holds the batch (a redelivery: the caller's
-- store finds the duplicate), NULL when a keyframe is not (or not yet) stored.
CREATE FUNCTION fleet._metric_keyframes(
    p_agent_id text, p_boot_id text, p_batch_seq bigint, p_base_seq bigint[], p_set_keys bytea[])
RETURNS double precision[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_instance_id bigint;
    v_found integer;
    v_vals double precision[];
BEGIN
    IF EXISTS (SELECT 1 FROM fleet.ingest_ledger
               WHERE agent_id = p_agent_id AND boot_id = p_boot_id AND batch_seq = p_batch_seq) THEN
        RETURN '{}';
    END IF;
    SELECT i.instance_id INTO v_instance_id FROM fleet.instance i WHERE i.agent_id = p_agent_id;
    IF v_instance_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(kf.vals) INTO v_found
    FROM unnest(p_base_seq, p_set_keys) WITH ORDINALITY AS k(base_seq, set_key, ord)
    LEFT JOIN fleet.series_set ss ON ss.instance_id = v_instance_id AND ss.set_key = k.set_key
    LEFT JOIN fleet.metric_keyframe kf ON kf.instance_id = v_instance_id AND kf.boot_id = p_boot_id
                                      AND kf.batch_seq = k.base_seq AND kf.series_set_id = ss.series_set_id
                                      AND cardinality(kf.vals) = ss.series_count;
    IF v_found < cardinality(p_base_seq) THEN
        RETURN NULL;
    END IF;
    -- (array_agg of arrays would need equal lengths: concatenate instead)
    SELECT array_agg(v.x ORDER BY k.ord, v.o) INTO v_vals
    FROM unnest(p_base_seq, p_set_keys) WITH ORDINALITY AS k(base_seq, set_key, ord)
    JOIN fleet.series_set ss ON ss.instance_id = v_instance_id AND ss.set_key = k.set_key
    JOIN fleet.metric_keyframe kf ON kf.instance_id = v_instance_id AND kf.boot_id = p_boot_id
                                 AND kf.batch_seq = k.base_seq AND kf.series_set_id = ss.series_set_id
                                 AND cardinality(kf.vals) = ss.series_count
    CROSS JOIN LATERAL unnest(kf.vals) WITH ORDINALITY AS v(x, o);
    RETURN v_vals;
END
$$;
REVOKE ALL ON FUNCTION fleet._metric_keyframes(text, text, bigint, bigint[], bytea[]) FROM PUBLIC;

-- _ingest_metrics: stores one metrics batch given as plain arrays (series declarations, and per
-- sample its 0-based series index, timestamp and value), as SQL scripts and tests write them. Samples
-- with one timestamp form one scrape. Goes through the same two functions as the ingest workers;
-- the set keys are SHA-256 digests of the scrape's series indexes and declarations.
-- Returns the number of samples stored, or -1 when the ledger already holds the batch.
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
    v_keys bytea[];
    v_ts timestamptz[];
    v_len integer[];
    v_set_series integer[];
    v_values double precision[];
    v_stored integer;
BEGIN
    WITH samples AS (
        SELECT u.r, u.t, u.v, u.ord FROM unnest(p_sample_series, p_sample_ts, p_sample_value) WITH ORDINALITY AS u(r, t, v, ord)
    ), scrapes AS (
        SELECT s.t, count(*)::integer AS l,
               array_agg(s.r ORDER BY s.ord) AS refs, array_agg(s.v ORDER BY s.ord) AS vals,
               sha256(convert_to(string_agg(p_metric[s.r + 1] || E'\x1f' || p_kind[s.r + 1] || E'\x1f' ||
                                            p_unit[s.r + 1] || E'\x1f' || p_labels[s.r + 1]::text, E'\x1e' ORDER BY s.ord),
                                 'UTF8')) AS set_key
        FROM samples s GROUP BY s.t
    )
    SELECT array_agg(set_key ORDER BY t), array_agg(t ORDER BY t), array_agg(l ORDER BY t)
      INTO v_keys, v_ts, v_len FROM scrapes;
    SELECT array_agg(u.r ORDER BY u.t, u.ord), array_agg(u.v ORDER BY u.t, u.ord) INTO v_set_series, v_values
      FROM unnest(p_sample_series, p_sample_ts, p_sample_value) WITH ORDINALITY AS u(r, t, v, ord);

    v_stored := fleet._ingest_metric_blocks(p_agent_id, p_namespace, p_boot_id, p_batch_seq, p_stream_seq,
                                            p_instance, coalesce(v_keys, '{}'), coalesce(v_ts, '{}'),
                                            coalesce(v_len, '{}'), coalesce(v_values, '{}'));
    IF v_stored = -2 THEN
        PERFORM fleet._register_series_sets(p_agent_id, p_namespace, p_boot_id, p_instance, v_keys, v_len,
                                            v_set_series, p_metric, p_kind, p_unit, p_labels);
        v_stored := fleet._ingest_metric_blocks(p_agent_id, p_namespace, p_boot_id, p_batch_seq, p_stream_seq,
                                                p_instance, v_keys, v_ts, v_len, v_values);
        IF v_stored = -2 THEN
            RAISE EXCEPTION 'series sets of batch % of agent "%" are missing after registration', p_batch_seq, p_agent_id
                USING ERRCODE = 'internal_error';
        END IF;
    END IF;
    RETURN v_stored;
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_metrics(text, text, text, bigint, bigint, jsonb, text[], text[], text[],
                                             jsonb[], integer[], timestamptz[], double precision[]) FROM PUBLIC;

-- _ingest_metric_fetch: records many metrics batches at once (the ingest worker's fast path for a
-- whole fetch), in a few set-oriented statements instead of several per batch. Batch m (1-based) is
-- (p_agent_id[m], p_namespace[m], p_boot_id[m], p_batch_seq[m], p_stream_seq[m]) with p_samples[m]
-- values; scrape k belongs to batch p_scrape_msg[k] and has timestamp p_scrape_ts[k], series set
-- p_set_keys[k] and p_scrape_len[k] values. Only batches whose agent, namespace and every series set
-- are already registered are taken; the rest are left alone (nothing of them written) for the
-- per-batch path (_register_series_sets, _ingest_metric_blocks), which also handles instance facts.
-- For the batches taken it writes the ledger, the rollup work and last_seen; the caller then inserts
-- their blocks (fleet.sample_block) in the same transaction, with the returned instance and set of
-- each scrape (the values stay out of PL/pgSQL, which would copy a large array at every slice).
-- p_result: per batch, samples to store, -1 when the ledger already holds it (or it appears twice in
-- this call), -2 when it was left alone. p_instance: per batch; p_set: per scrape.
CREATE FUNCTION fleet._ingest_metric_fetch(
    p_agent_id text[], p_namespace text[], p_boot_id text[], p_batch_seq bigint[], p_stream_seq bigint[],
    p_samples integer[], p_scrape_msg integer[], p_set_keys bytea[], p_scrape_ts timestamptz[],
    p_scrape_len integer[], OUT p_result integer[], OUT p_instance bigint[], OUT p_set bigint[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_instance bigint[];   -- per batch: its instance, NULL when the agent or namespace is not registered
    v_set bigint[];        -- per scrape: its series set, NULL when unknown
    v_left int[];          -- batches left to the per-batch path
    v_new int[];           -- batches recorded in the ledger by this call
BEGIN
    SELECT array_agg(CASE WHEN n.namespace_id IS NOT NULL THEN i.instance_id END ORDER BY m.ord) INTO v_instance
    FROM unnest(p_agent_id, p_namespace) WITH ORDINALITY AS m(a, ns, ord)
    LEFT JOIN fleet.agent ag ON ag.agent_id = m.a
    LEFT JOIN fleet.namespace n ON n.namespace_id = ag.namespace_id AND n.name = m.ns
    LEFT JOIN fleet.instance i ON i.agent_id = m.a;

    SELECT array_agg(ss.series_set_id ORDER BY k.ord) INTO v_set
    FROM unnest(p_set_keys, p_scrape_msg, p_scrape_len) WITH ORDINALITY AS k(set_key, msg, len, ord)
    LEFT JOIN fleet.series_set ss
           ON ss.instance_id = v_instance[k.msg] AND ss.set_key = k.set_key AND ss.series_count = k.len;

    SELECT coalesce(array_agg(DISTINCT x.msg), '{}') INTO v_left
    FROM (SELECT m.ord::int AS msg FROM unnest(v_instance) WITH ORDINALITY AS m(inst, ord) WHERE m.inst IS NULL
          UNION ALL
          SELECT p_scrape_msg[k.ord] FROM unnest(v_set) WITH ORDINALITY AS k(set_id, ord) WHERE k.set_id IS NULL) AS x;

    WITH candidate AS (
        SELECT DISTINCT ON (u.a, u.b, u.s) u.ord::int AS ord, u.a, u.b, u.s, u.sseq, u.n
        FROM unnest(p_agent_id, p_boot_id, p_batch_seq, p_stream_seq, p_samples) WITH ORDINALITY AS u(a, b, s, sseq, n, ord)
        WHERE NOT (u.ord::int = ANY (v_left))
        ORDER BY u.a, u.b, u.s, u.ord),
    recorded AS (
        INSERT INTO fleet.ingest_ledger (agent_id, boot_id, batch_seq, stream_seq, samples)
        SELECT c.a, c.b, c.s, c.sseq, c.n FROM candidate c ORDER BY c.a, c.b, c.s
        ON CONFLICT DO NOTHING
        RETURNING agent_id, boot_id, batch_seq)
    SELECT coalesce(array_agg(c.ord), '{}') INTO v_new
    FROM recorded r JOIN candidate c ON (c.a, c.b, c.s) = (r.agent_id, r.boot_id, r.batch_seq);

    IF cardinality(v_new) > 0 THEN
        -- the raw time range each instance's batches touched: the rollup job recomputes those buckets
        INSERT INTO fleet.rollup_pending (instance_id, from_ts, to_ts)
        SELECT v_instance[u.msg], min(u.t), max(u.t)
        FROM unnest(p_scrape_ts, p_scrape_msg) AS u(t, msg)
        WHERE u.msg = ANY (v_new)
        GROUP BY v_instance[u.msg];

        -- what _register_instance does for every batch, once per agent here (in agent order)
        UPDATE fleet.agent ag SET last_seen = now(), last_boot_id = x.b
        FROM (SELECT DISTINCT ON (u.a) u.a, u.b
              FROM unnest(p_agent_id, p_boot_id) WITH ORDINALITY AS u(a, b, ord)
              WHERE u.ord::int = ANY (v_new) ORDER BY u.a, u.ord DESC) AS x
        WHERE ag.agent_id = x.a;
        UPDATE fleet.instance i SET last_seen = now()
        WHERE i.instance_id IN (SELECT v_instance[m] FROM unnest(v_new) AS m);
    END IF;

    p_result := ARRAY(SELECT CASE WHEN m::int = ANY (v_left) THEN -2
                                  WHEN m::int = ANY (v_new) THEN p_samples[m]
                                  ELSE -1 END
                      FROM generate_series(1, cardinality(p_agent_id)) AS m ORDER BY m);
    p_instance := v_instance;
    p_set := v_set;
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_metric_fetch(text[], text[], text[], bigint[], bigint[], integer[], integer[],
                                                  bytea[], timestamptz[], integer[]) FROM PUBLIC;

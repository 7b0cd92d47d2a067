-- Inventory (settings, extensions, databases: sent when they change), events, and command results.

CREATE TABLE fleet.setting (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    name text NOT NULL,
    setting text,
    unit text,
    source text,
    pending_restart boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, name)
);

CREATE TABLE fleet.setting_change (
    instance_id bigint NOT NULL,
    name text NOT NULL,
    old_setting text,
    new_setting text,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX setting_change_instance_time ON fleet.setting_change (instance_id, changed_at);

CREATE TABLE fleet.instance_extension (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    name text NOT NULL,
    version text,
    PRIMARY KEY (instance_id, name)
);

CREATE TABLE fleet.instance_database (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    datname text NOT NULL,
    PRIMARY KEY (instance_id, datname)
);

CREATE TABLE fleet.event (
    instance_id bigint NOT NULL,
    event_id bigserial NOT NULL,
    agent_id text NOT NULL,
    ts timestamptz NOT NULL,
    kind text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    message text NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (instance_id, event_id)
);
CREATE INDEX event_instance_ts ON fleet.event (instance_id, ts);

CREATE TABLE fleet.command_result (
    agent_id text NOT NULL,
    command_id text NOT NULL,
    kind text NOT NULL,
    ok boolean NOT NULL,
    message text NOT NULL,
    output jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz,
    finished_at timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, command_id)
);

-- _ingest_inventory: upserts settings (recording changes), extensions and databases; a full inventory
-- also removes what it no longer lists.
CREATE FUNCTION fleet._ingest_inventory(p_instance_id bigint, p jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO fleet.setting_change (instance_id, name, old_setting, new_setting)
    SELECT p_instance_id, n.name, o.setting, n.setting
    FROM jsonb_to_recordset(p->'settings') AS n(name text, setting text)
    JOIN fleet.setting o ON o.instance_id = p_instance_id AND o.name = n.name
    WHERE o.setting IS DISTINCT FROM n.setting;

    INSERT INTO fleet.setting AS s (instance_id, name, setting, unit, source, pending_restart)
    SELECT p_instance_id, n.name, n.setting, n.unit, n.source, n.pending_restart
    FROM jsonb_to_recordset(p->'settings') AS n(name text, setting text, unit text, source text, pending_restart boolean)
    ON CONFLICT (instance_id, name) DO UPDATE
        SET setting = excluded.setting, unit = excluded.unit, source = excluded.source,
            pending_restart = excluded.pending_restart, updated_at = now()
        WHERE (s.setting, s.unit, s.source, s.pending_restart)
              IS DISTINCT FROM (excluded.setting, excluded.unit, excluded.source, excluded.pending_restart);

    INSERT INTO fleet.instance_extension AS e (instance_id, name, version)
    SELECT p_instance_id, key, value FROM jsonb_each_text(p->'extensions')
    ON CONFLICT (instance_id, name) DO UPDATE SET version = excluded.version;
    INSERT INTO fleet.instance_database (instance_id, datname)
    SELECT p_instance_id, value FROM jsonb_array_elements_text(p->'databases')
    ON CONFLICT DO NOTHING;

    IF (p->>'full')::boolean THEN
        DELETE FROM fleet.setting s WHERE s.instance_id = p_instance_id
            AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p->'settings') AS n WHERE n->>'name' = s.name);
        DELETE FROM fleet.instance_extension e WHERE e.instance_id = p_instance_id
            AND NOT (p->'extensions' ? e.name);
        DELETE FROM fleet.instance_database d WHERE d.instance_id = p_instance_id
            AND NOT (p->'databases' ? d.datname);
    END IF;
    RETURN jsonb_array_length(p->'settings');
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_inventory(bigint, jsonb) FROM PUBLIC;

-- _ingest_events: stores an events payload.
CREATE FUNCTION fleet._ingest_events(p_instance_id bigint, p_agent_id text, p jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows integer;
BEGIN
    INSERT INTO fleet.event (instance_id, agent_id, ts, kind, severity, message, attributes)
    SELECT p_instance_id, p_agent_id, to_timestamp(e.ts_ms::double precision / 1000), e.kind, e.severity, e.message,
           coalesce(e.attributes, '{}')
    FROM jsonb_to_recordset(p->'events') AS e(ts_ms bigint, kind text, severity text, message text, attributes jsonb);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_events(bigint, text, jsonb) FROM PUBLIC;

-- _ingest_result: stores a command result (once per command).
CREATE FUNCTION fleet._ingest_result(p_agent_id text, p jsonb)
RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH ins AS (
        INSERT INTO fleet.command_result (agent_id, command_id, kind, ok, message, output, started_at, finished_at)
        VALUES (p_agent_id, p->>'command_id', p->>'kind', (p->>'ok')::boolean, p->>'message', p->'output',
                to_timestamp((p->>'started_ms')::double precision / 1000),
                to_timestamp((p->>'finished_ms')::double precision / 1000))
        ON CONFLICT (agent_id, command_id) DO NOTHING
        RETURNING 1)
    SELECT count(*)::integer FROM ins
$$;
REVOKE ALL ON FUNCTION fleet._ingest_result(text, jsonb) FROM PUBLIC;

-- pgfleet 0.1.0 — install script (schema fleet).
--
-- Tables
--   namespace       a tenant of the fleet; every agent belongs to one (taken from the NATS subject)
--   agent           one per monitored host process; agent_id is its stable name
--   instance        the PostgreSQL instance an agent monitors (one per agent)
--   metric          metric names with kind (gauge/counter) and unit
--   series          one metric with one label set on one instance
--   series_set      an ordered list of one instance's series ids: the columns of hot-tier rows
--   sample_block    hot tier: one row per scrape (instance, ts, series_set, values[]), bulk-written
--   sample_chunk    cold tier: per instance and window (hour or day) its scrape times and one row per
--                   metric, compressed (core/chunk_codec.h)
--   (the view fleet.sample, 15_storage.sql, shows both tiers as one row per sample)
--   metric_keyframe scrapes agents base later scrapes on (their counters travel as differences)
--   ingest_ledger   every batch stored, (agent_id, boot_id, batch_seq): the exactly-once key
--   dead_letter     messages put aside with the reason; never silently dropped
-- Every table that holds instance data carries instance_id first in its key.

CREATE TABLE fleet.namespace (
    namespace_id serial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- how long each tier keeps data of this namespace's instances (fleet.apply_retention)
    raw_retention interval NOT NULL DEFAULT '14 days' CHECK (raw_retention >= interval '1 hour'),
    rollup_1m_retention interval NOT NULL DEFAULT '90 days' CHECK (rollup_1m_retention >= interval '1 hour'),
    rollup_1h_retention interval NOT NULL DEFAULT '2 years' CHECK (rollup_1h_retention >= interval '1 hour')
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

-- Storage of samples (docs/storage.md). A scrape's series list repeats scrape after scrape, so the hot
-- tier stores it once (series_set, found by the key the ingest worker hashes from the series
-- declarations: core/series_key.cpp) and each scrape as one row of values in the set's order.
CREATE TABLE fleet.series_set (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    series_set_id bigserial NOT NULL UNIQUE,
    set_key bytea NOT NULL,
    series_count integer NOT NULL CHECK (series_count > 0),
    series_ids bigint[] NOT NULL CHECK (cardinality(series_ids) = series_count),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, set_key)
);

-- (NO ACTION, not CASCADE, from a block to its set: a set is only ever deleted when no block uses it,
-- and a concurrent insert that loses that race fails and is retried, instead of losing its block.)
CREATE TABLE fleet.sample_block (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    ts timestamptz NOT NULL CHECK (ts = date_trunc('milliseconds', ts)),
    series_set_id bigint NOT NULL REFERENCES fleet.series_set (series_set_id),
    vals double precision[] NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX sample_block_instance_ts ON fleet.sample_block (instance_id, ts);
CREATE INDEX sample_block_series_set ON fleet.sample_block (series_set_id, ts);
-- values of a scrape are rarely compressible by pglz (and decompressing costs reads): stored as is
ALTER TABLE fleet.sample_block ALTER COLUMN vals SET STORAGE EXTERNAL;

-- Cold tier (15_storage.sql, extension/compact.cpp): per instance and window (a UTC hour, or a whole UTC
-- day once it is over) one row of the window's scrape times (metric_id 0) and one row per metric holding
-- its series' presence and values on those times.
CREATE TABLE fleet.sample_chunk (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    metric_id integer NOT NULL CHECK (metric_id >= 0), -- 0: the window's time list
    sample_count integer NOT NULL CHECK (sample_count > 0), -- samples (time list: scrape times)
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL CHECK (window_end > window_start AND window_end <= window_start + interval '1 day'),
    data bytea NOT NULL,
    PRIMARY KEY (instance_id, metric_id, window_start)
) PARTITION BY RANGE (window_start);
-- chunks are already compressed
ALTER TABLE fleet.sample_chunk ALTER COLUMN data SET STORAGE EXTERNAL;

-- Both tiers are partitioned by UTC day (fleet._ensure_partitions, 55_partitions.sql); what falls outside
-- the days that have a partition (old late data, a clock far ahead) lands in the default partitions.
CREATE TABLE fleet.sample_block_default PARTITION OF fleet.sample_block DEFAULT;
CREATE TABLE fleet.sample_chunk_default PARTITION OF fleet.sample_chunk DEFAULT;

-- Keyframes (wire schema_minor 3): scrapes an agent marked as bases. Its later scrapes of the same set
-- carry their integral values as differences to the keyframe's, named by (boot, batch_seq); the ingest
-- worker adds them back before storing (fleet._metric_keyframes). A keyframe is also stored as an
-- ordinary sample_block row: this copy is only kept until nothing can still be based on it
-- (fleet.apply_retention).
CREATE TABLE fleet.metric_keyframe (
    instance_id bigint NOT NULL REFERENCES fleet.instance ON DELETE CASCADE,
    boot_id text NOT NULL,
    batch_seq bigint NOT NULL,
    -- (NO ACTION, like sample_block: a set is deleted only when no keyframe of it is kept)
    series_set_id bigint NOT NULL REFERENCES fleet.series_set (series_set_id),
    ts timestamptz NOT NULL,
    vals double precision[] NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, boot_id, batch_seq, series_set_id)
);
CREATE INDEX metric_keyframe_instance_set ON fleet.metric_keyframe (instance_id, series_set_id, ts);
-- (like sample_block.vals: counters rarely compress, and every based scrape reads its keyframe back)
ALTER TABLE fleet.metric_keyframe ALTER COLUMN vals SET STORAGE EXTERNAL;

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


-- Time partitions of the sample tiers: one partition per UTC day for fleet.sample_block (by ts) and
-- fleet.sample_chunk (by window_start), plus a default partition each (00_catalog.sql).
--
-- The maintenance worker keeps partitions from yesterday to two days ahead (fleet._ensure_partitions)
-- and drops a day's partitions once the whole day is beyond the longest raw retention of any namespace,
-- and the hot tier's partitions of days compaction has emptied (fleet._drop_partitions). Retention per
-- namespace still deletes rows (fleet.apply_retention) where namespaces keep data for different times;
-- dropping is the fast path for what no namespace keeps.
--
-- A day whose rows already sit in the default partition (late data that arrived before the day's
-- partition existed) gets no partition: its rows stay in the default partition, read and expired the
-- same way. Each new partition gets the row-level security policy of the tables of instance data
-- (50_access.sql), so a partition read directly shows no more than its parent does.

-- _partition_day: the UTC day a partition named <table>_YYYYMMDD covers.
CREATE FUNCTION fleet._partition_day(p_name text)
RETURNS date
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_name ~ '_[0-9]{8}$' THEN to_date(right(p_name, 8), 'YYYYMMDD') END
$$;

-- _ensure_partitions: creates the daily partitions of both tiers from p_days_back days before today
-- (UTC) to p_days_ahead days after it. Returns the number created.
CREATE FUNCTION fleet._ensure_partitions(p_days_back integer DEFAULT 1, p_days_ahead integer DEFAULT 2)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_today date := (now() AT TIME ZONE 'UTC')::date;
    v_day date;
    v_tier record;
    v_name text;
    v_busy boolean;
    v_created integer := 0;
BEGIN
    FOR v_day IN SELECT generate_series(v_today - p_days_back, v_today + p_days_ahead, interval '1 day')::date LOOP
        FOR v_tier IN VALUES ('sample_block', 'ts'), ('sample_chunk', 'window_start') LOOP
            v_name := v_tier.column1 || '_' || to_char(v_day, 'YYYYMMDD');
            CONTINUE WHEN to_regclass(format('fleet.%I', v_name)) IS NOT NULL;
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM fleet.%I WHERE %I >= $1 AND %I < $2)',
                           v_tier.column1 || '_default', v_tier.column2, v_tier.column2)
                INTO v_busy USING v_day::timestamp AT TIME ZONE 'UTC', (v_day + 1)::timestamp AT TIME ZONE 'UTC';
            CONTINUE WHEN v_busy;
            EXECUTE format('CREATE TABLE fleet.%I PARTITION OF fleet.%I FOR VALUES FROM (%L) TO (%L)',
                           v_name, v_tier.column1, v_day::timestamp AT TIME ZONE 'UTC',
                           (v_day + 1)::timestamp AT TIME ZONE 'UTC');
            IF v_tier.column1 = 'sample_block' THEN
                EXECUTE format('ALTER TABLE fleet.%I SET (toast_tuple_target = 8160)', v_name);
            END IF;
            EXECUTE format('ALTER TABLE fleet.%I ENABLE ROW LEVEL SECURITY', v_name);
            EXECUTE format('CREATE POLICY %I ON fleet.%I FOR SELECT USING ((SELECT fleet.is_fleet_admin()) '
                           'OR instance_id = ANY ((SELECT fleet.visible_instance_ids())::bigint[]))',
                           v_name || '_visible', v_name);
            v_created := v_created + 1;
        END LOOP;
    END LOOP;
    RETURN v_created;
END
$$;

-- _drop_partitions: drops the daily partitions of days that every namespace's raw retention has
-- passed (both tiers), and the hot tier's partitions of days before yesterday that are empty (their
-- rows were compacted). Returns the number dropped.
CREATE FUNCTION fleet._drop_partitions()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_keep_after timestamptz := now() - coalesce((SELECT max(raw_retention) FROM fleet.namespace), interval '14 days');
    v_today date := (now() AT TIME ZONE 'UTC')::date;
    v_part record;
    v_empty boolean;
    v_dropped integer := 0;
BEGIN
    FOR v_part IN
        SELECT c.relname, p.relname AS parent, fleet._partition_day(c.relname) AS day
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.oid IN ('fleet.sample_block'::regclass, 'fleet.sample_chunk'::regclass)
          AND fleet._partition_day(c.relname) IS NOT NULL
        ORDER BY 3, 1
    LOOP
        IF (v_part.day + 1)::timestamp AT TIME ZONE 'UTC' <= v_keep_after THEN
            EXECUTE format('DROP TABLE fleet.%I', v_part.relname);
            v_dropped := v_dropped + 1;
        ELSIF v_part.parent = 'sample_block' AND v_part.day < v_today - 1 THEN
            EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM fleet.%I)', v_part.relname) INTO v_empty;
            IF v_empty THEN
                EXECUTE format('DROP TABLE fleet.%I', v_part.relname);
                v_dropped := v_dropped + 1;
            END IF;
        END IF;
    END LOOP;
    RETURN v_dropped;
END
$$;

REVOKE ALL ON FUNCTION fleet._ensure_partitions(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION fleet._drop_partitions() FROM PUBLIC;

-- The partitions of the days around the installation.
SELECT fleet._ensure_partitions();

-- A scrape of up to ~1,000 values (8 KB) stays in its hot row instead of going to TOAST: a row per page,
-- but no TOAST rows and index entries to write and read per scrape. (Partitioned tables take no storage
-- parameters: each partition gets it, the default one here.)
ALTER TABLE fleet.sample_block_default SET (toast_tuple_target = 8160);

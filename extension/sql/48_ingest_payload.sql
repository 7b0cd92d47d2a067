-- _ingest_payload: stores one batch of any kind but metrics (those take the columnar path in
-- _ingest_metrics). Ledger and registration first (_ingest_begin); returns the rows stored, or -1
-- when the ledger already holds the batch.
CREATE FUNCTION fleet._ingest_payload(
    p_kind text, p_agent_id text, p_namespace text, p_boot_id text, p_batch_seq bigint, p_stream_seq bigint,
    p_instance jsonb, p_payload jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_instance_id bigint;
BEGIN
    v_instance_id := fleet._ingest_begin(p_agent_id, p_namespace, p_boot_id, p_batch_seq, p_stream_seq, 0, p_instance);
    IF v_instance_id IS NULL THEN
        RETURN -1;
    END IF;
    CASE p_kind
        WHEN 'statements' THEN RETURN fleet._ingest_statements(v_instance_id, p_payload);
        WHEN 'activity' THEN RETURN fleet._ingest_activity(v_instance_id, p_payload);
        WHEN 'inventory' THEN RETURN fleet._ingest_inventory(v_instance_id, p_payload);
        WHEN 'events' THEN RETURN fleet._ingest_events(v_instance_id, p_agent_id, p_payload);
        WHEN 'results' THEN RETURN fleet._ingest_result(p_agent_id, p_payload);
        ELSE RAISE EXCEPTION 'unknown payload kind "%"', p_kind USING ERRCODE = 'invalid_parameter_value';
    END CASE;
END
$$;
REVOKE ALL ON FUNCTION fleet._ingest_payload(text, text, text, text, bigint, bigint, jsonb, jsonb) FROM PUBLIC;

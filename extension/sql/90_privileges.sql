-- Privileges, last: every object above exists by now.

-- Raw tables are closed to PUBLIC. The fleet group roles (50_access.sql) read the tables of instance
-- data, whose row-level security policies limit every role to the namespaces it may see; the views and
-- read functions run as the caller (security_invoker), so the same policies apply through them.
REVOKE ALL ON ALL TABLES IN SCHEMA fleet FROM PUBLIC;
GRANT USAGE ON SCHEMA fleet TO PUBLIC;

DO $$
DECLARE
    t regclass;
BEGIN
    -- Every table under row-level security, plus the metric catalog (names and units, no instance data).
    FOR t IN SELECT c.oid::regclass FROM pg_class c
             WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p')
               AND (c.relrowsecurity OR c.relname = 'metric')
               AND c.relname NOT IN ('ingest_ledger', 'dead_letter')
             ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO fleet_viewer', t);
    END LOOP;
    FOR t IN SELECT c.oid::regclass FROM pg_class c
             WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind = 'v' ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO fleet_viewer', t);
    END LOOP;
END
$$;
-- The read API: every fleet function that does not start with '_' and only reads (STABLE/IMMUTABLE).
-- (PUBLIC keeps its default EXECUTE; without table privileges a non-fleet role still reads nothing.)
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'fleet'::regnamespace AND p.proname !~ '^_' AND p.provolatile IN ('s', 'i')
             ORDER BY 1::text
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO fleet_viewer', f);
    END LOOP;
END
$$;
-- The ingest bookkeeping is for administrators.
GRANT SELECT ON fleet.ingest_ledger, fleet.dead_letter TO fleet_admin;
GRANT EXECUTE ON FUNCTION fleet._create_user(text, text, text, text) TO fleet_admin;
GRANT EXECUTE ON FUNCTION fleet.create_user(text, text, text, text) TO fleet_viewer;

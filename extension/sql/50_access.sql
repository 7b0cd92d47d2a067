-- Access control: group roles, namespace membership, row-level security on every table of instance data.
--
-- Roles (cluster-wide, NOLOGIN, created only when missing, never dropped by DROP EXTENSION):
--   fleet_viewer    reads the fleet of the namespaces it (or a role it belongs to) is a member of
--   fleet_operator  member of fleet_viewer; room for harmless actions later
--   fleet_admin     member of fleet_operator; sees every namespace, manages users (fleet.create_user)
-- Login roles (people, the gateway's users) are members of one group role and are listed with their
-- namespaces in fleet.namespace_member (a group role may be listed too: membership is transitive).
--
-- Row-level security: every table in schema fleet with an instance_id or agent_id column (whichever
-- area file created it before this one), plus fleet.namespace and fleet.namespace_member, gets a SELECT
-- policy. Superusers and the table owner bypass RLS: the ingest workers run as the bootstrap superuser.
-- Views are security_invoker so that RLS applies to the querying role through them; the read API
-- functions are SECURITY INVOKER (LANGUAGE sql without SECURITY DEFINER) for the same reason.
--
-- Why visible_namespace_ids() is SECURITY INVOKER and not DEFINER: inside a SECURITY DEFINER function
-- current_user is the function's owner, so the function could not tell which role is asking (every
-- caller would be judged as the superuser owner and see everything). Instead it reads
-- fleet.namespace_member under its own RLS policy (a role sees the membership rows of the roles it is a
-- member of) and pg_has_role(current_user, ...). Policies call the helpers through scalar sub-selects,
-- so each is evaluated once per query (an InitPlan), not once per row.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_viewer') THEN
        CREATE ROLE fleet_viewer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_operator') THEN
        CREATE ROLE fleet_operator NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_admin') THEN
        CREATE ROLE fleet_admin NOLOGIN;
    END IF;
    IF NOT pg_has_role('fleet_operator', 'fleet_viewer', 'MEMBER') THEN
        GRANT fleet_viewer TO fleet_operator;
    END IF;
    IF NOT pg_has_role('fleet_admin', 'fleet_operator', 'MEMBER') THEN
        GRANT fleet_operator TO fleet_admin;
    END IF;
END
$$;

-- namespace_member: which roles may see which namespace.
CREATE TABLE fleet.namespace_member (
    namespace_id integer NOT NULL REFERENCES fleet.namespace ON DELETE CASCADE,
    role_name name NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace_id, role_name)
);
CREATE INDEX namespace_member_role ON fleet.namespace_member (role_name);

-- is_fleet_admin: the current role is a superuser or a member of fleet_admin.
CREATE FUNCTION fleet.is_fleet_admin()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
        OR pg_has_role(current_user, 'fleet_admin', 'MEMBER')
$$;

-- member_namespace_ids: the namespaces listed for the current role or any role it is a member of.
CREATE FUNCTION fleet.member_namespace_ids()
RETURNS integer[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(DISTINCT m.namespace_id), '{}')
    FROM fleet.namespace_member m JOIN pg_roles r ON r.rolname = m.role_name
    WHERE pg_has_role(current_user, r.oid, 'MEMBER')
$$;

-- visible_namespace_ids: the namespaces the current role may see (all of them for admins/superusers).
CREATE FUNCTION fleet.visible_namespace_ids()
RETURNS integer[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN fleet.is_fleet_admin()
                THEN (SELECT coalesce(array_agg(n.namespace_id ORDER BY n.namespace_id), '{}') FROM fleet.namespace n)
                ELSE fleet.member_namespace_ids() END
$$;

-- visible_instance_ids: the instances of the visible namespaces (fleet.instance and fleet.agent are
-- read under their own policies).
CREATE FUNCTION fleet.visible_instance_ids()
RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(i.instance_id), '{}') FROM fleet.instance i
$$;

ALTER TABLE fleet.namespace_member ENABLE ROW LEVEL SECURITY;
CREATE POLICY namespace_member_visible ON fleet.namespace_member FOR SELECT
    USING ((SELECT fleet.is_fleet_admin())
           OR role_name IN (SELECT r.rolname FROM pg_roles r WHERE pg_has_role(current_user, r.oid, 'MEMBER')));

ALTER TABLE fleet.namespace ENABLE ROW LEVEL SECURITY;
CREATE POLICY namespace_visible ON fleet.namespace FOR SELECT
    USING ((SELECT fleet.is_fleet_admin()) OR namespace_id = ANY ((SELECT fleet.member_namespace_ids())::integer[]));

ALTER TABLE fleet.agent ENABLE ROW LEVEL SECURITY;
CREATE POLICY agent_visible ON fleet.agent FOR SELECT
    USING ((SELECT fleet.is_fleet_admin()) OR namespace_id = ANY ((SELECT fleet.member_namespace_ids())::integer[]));

ALTER TABLE fleet.instance ENABLE ROW LEVEL SECURITY;
CREATE POLICY instance_visible ON fleet.instance FOR SELECT
    USING ((SELECT fleet.is_fleet_admin()) OR agent_id IN (SELECT a.agent_id FROM fleet.agent a));

-- Every other table with instance data: by instance_id, else by agent_id. Tables created by area files
-- that sort after this one must add their own policy (and a check in tests/pgtap/schema.sql).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS tab, c.relname,
               bool_or(a.attname = 'instance_id') AS has_instance, bool_or(a.attname = 'agent_id') AS has_agent
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname NOT IN ('namespace', 'namespace_member', 'agent', 'instance')
        GROUP BY c.oid, c.relname
        HAVING bool_or(a.attname IN ('instance_id', 'agent_id'))
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t.tab);
        IF t.has_instance THEN
            EXECUTE format('CREATE POLICY %I ON %s FOR SELECT USING ((SELECT fleet.is_fleet_admin()) '
                           'OR instance_id = ANY ((SELECT fleet.visible_instance_ids())::bigint[]))',
                           t.relname || '_visible', t.tab);
        ELSE
            EXECUTE format('CREATE POLICY %I ON %s FOR SELECT USING ((SELECT fleet.is_fleet_admin()) '
                           'OR agent_id IN (SELECT a.agent_id FROM fleet.agent a))',
                           t.relname || '_visible', t.tab);
        END IF;
    END LOOP;
END
$$;

-- Views run with the privileges (and RLS) of the querying role.
DO $$
DECLARE
    v regclass;
BEGIN
    FOR v IN SELECT c.oid::regclass FROM pg_class c
             WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind = 'v' ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER VIEW %s SET (security_invoker = true)', v);
    END LOOP;
END
$$;

-- create_user: creates a LOGIN role with a password, makes it a member of fleet_<role>, and lists it
-- in the namespace (created if missing) unless p_namespace is NULL. Only superusers and fleet_admin
-- members may call it (checked against current_user, which SECURITY DEFINER turns into the owner: so
-- the check runs in a SECURITY INVOKER wrapper, fleet.create_user, before the definer part).
CREATE FUNCTION fleet._create_user(p_name text, p_role text, p_password text, p_namespace text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_namespace_id integer;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid user name' USING ERRCODE = '22023',
            DETAIL = 'expected 1-63 characters [a-z0-9_] starting with a letter';
    END IF;
    IF p_name LIKE 'pg\_%' OR p_name LIKE 'fleet\_%' THEN
        RAISE EXCEPTION 'reserved user name' USING ERRCODE = '22023', DETAIL = 'names starting with pg_ or fleet_ are reserved';
    END IF;
    IF p_role IS NULL OR p_role NOT IN ('viewer', 'operator', 'admin') THEN
        RAISE EXCEPTION 'invalid role' USING ERRCODE = '22023', DETAIL = 'expected viewer, operator or admin';
    END IF;
    IF p_password IS NULL OR length(p_password) < 12 THEN
        RAISE EXCEPTION 'invalid password' USING ERRCODE = '22023', DETAIL = 'at least 12 characters';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_name) THEN
        RAISE EXCEPTION 'role "%" already exists', p_name USING ERRCODE = '42710';
    END IF;
    EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I', p_name, p_password, 'fleet_' || p_role);
    IF p_namespace IS NOT NULL THEN
        IF p_namespace !~ '^[A-Za-z0-9_-]{1,64}$' THEN
            RAISE EXCEPTION 'invalid namespace' USING ERRCODE = '22023', DETAIL = 'expected 1-64 characters [A-Za-z0-9_-]';
        END IF;
        INSERT INTO fleet.namespace (name) VALUES (p_namespace) ON CONFLICT (name) DO NOTHING;
        SELECT namespace_id INTO STRICT v_namespace_id FROM fleet.namespace WHERE name = p_namespace;
        INSERT INTO fleet.namespace_member (namespace_id, role_name) VALUES (v_namespace_id, p_name)
        ON CONFLICT DO NOTHING;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION fleet._create_user(text, text, text, text) FROM PUBLIC;

CREATE FUNCTION fleet.create_user(p_name text, p_role text, p_password text, p_namespace text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT fleet.is_fleet_admin() THEN
        RAISE EXCEPTION 'permission denied to create users' USING ERRCODE = '42501',
            DETAIL = 'only members of fleet_admin may create users';
    END IF;
    PERFORM fleet._create_user(p_name, p_role, p_password, p_namespace);
END
$$;
REVOKE ALL ON FUNCTION fleet.create_user(text, text, text, text) FROM PUBLIC;

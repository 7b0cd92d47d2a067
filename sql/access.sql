-- access: roles, namespace membership and row-level security. A viewer of namespace A sees nothing of
-- namespace B through the tables, the views or the read functions; an admin sees both. Everything
-- happens in one transaction that is rolled back (roles are cluster-wide).
SET TIME ZONE 'UTC';
\set ON_ERROR_ROLLBACK on
BEGIN;
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'fleet\_%' ORDER BY rolname;
SELECT pg_has_role('fleet_admin', 'fleet_viewer', 'MEMBER') AS admin_is_viewer,
       pg_has_role('fleet_operator', 'fleet_viewer', 'MEMBER') AS operator_is_viewer;
-- Views run as the caller, and every instance table has row-level security.
SELECT c.relname AS view_not_security_invoker FROM pg_class c
WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind = 'v'
  AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false);
SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind = 'r' AND a.attname IN ('instance_id', 'agent_id')
  AND NOT c.relrowsecurity;

-- Two namespaces with one agent each.
SELECT fleet._ingest_metrics('acc-a1', 'acc-a', 'boot-1', 1, 1, '{"hostname": "dba"}',
    ARRAY['host.memory.used_bytes'], ARRAY['gauge'], ARRAY['bytes'], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY['2026-01-01 00:00:00+00']::timestamptz[], ARRAY[1]) AS stored;
SELECT fleet._ingest_metrics('acc-b1', 'acc-b', 'boot-1', 1, 2, '{"hostname": "dbb"}',
    ARRAY['host.memory.used_bytes'], ARRAY['gauge'], ARRAY['bytes'], ARRAY['{}']::jsonb[],
    ARRAY[0], ARRAY['2026-01-01 00:00:00+00']::timestamptz[], ARRAY[2]) AS stored;

-- Users through the API function: a viewer of acc-a, an admin without namespace.
SELECT fleet.create_user('regress_viewer_a', 'viewer', 'a-long-password-1', 'acc-a');
SELECT fleet.create_user('regress_admin', 'admin', 'a-long-password-2');
SELECT fleet.create_user('regress_bad', 'root', 'a-long-password-3');
SELECT fleet.create_user('Robert''); DROP TABLE fleet.sample; --', 'viewer', 'a-long-password-3');
SELECT n.name, m.role_name FROM fleet.namespace_member m JOIN fleet.namespace n USING (namespace_id) ORDER BY 1, 2;
SELECT instance_id AS b_instance_id FROM fleet.instance WHERE agent_id = 'acc-b1' \gset

SET ROLE regress_viewer_a;
SELECT fleet.visible_namespace_ids() = ARRAY[(SELECT namespace_id FROM fleet.namespace WHERE name = 'acc-a')] AS only_a;
SELECT namespace, agent_id, hostname FROM fleet.instances ORDER BY agent_id;
SELECT name FROM fleet.namespace ORDER BY name;
SELECT agent_id FROM fleet.agent ORDER BY agent_id;
SELECT count(*) AS b_series FROM fleet.series WHERE instance_id = :b_instance_id;
SELECT count(*) AS b_samples FROM fleet.sample WHERE instance_id = :b_instance_id;
SELECT count(*) AS b_api_series FROM fleet.instance_series(:b_instance_id);
SELECT count(*) AS b_api_samples FROM fleet.series(:b_instance_id, 'host.memory.used_bytes', '-infinity', 'infinity');
SELECT count(*) AS visible_samples FROM fleet.sample;
SELECT role_name FROM fleet.namespace_member;
-- A viewer may not create users, nor write, nor read the ingest bookkeeping.
SELECT fleet.create_user('regress_x', 'admin', 'a-long-password-4');
SELECT fleet._create_user('regress_x', 'admin', 'a-long-password-4', NULL);
INSERT INTO fleet.namespace_member VALUES ((SELECT namespace_id FROM fleet.namespace LIMIT 1), 'regress_viewer_a');
SELECT count(*) FROM fleet.ingest_ledger;
RESET ROLE;

SET ROLE regress_admin;
SELECT namespace, agent_id FROM fleet.instances WHERE agent_id LIKE 'acc-%' ORDER BY agent_id;
SELECT count(*) AS all_samples FROM fleet.sample WHERE instance_id IN (SELECT instance_id FROM fleet.instances WHERE agent_id LIKE 'acc-%');
RESET ROLE;
ROLLBACK;
SELECT count(*) AS roles_left FROM pg_roles WHERE rolname LIKE 'regress\_%';
-- Sequences do not roll back: put them where the next test expects them.
SELECT setval(pg_get_serial_sequence('fleet.' || t, c), coalesce(m, 0) + 1, false) > 0 AS reset
FROM (VALUES ('namespace', 'namespace_id', (SELECT max(namespace_id) FROM fleet.namespace)),
             ('instance', 'instance_id', (SELECT max(instance_id) FROM fleet.instance)),
             ('metric', 'metric_id', (SELECT max(metric_id) FROM fleet.metric)),
             ('series', 'series_id', (SELECT max(series_id) FROM fleet.series))) AS s(t, c, m);

-- worker_status: the ingest worker of the regression server (pgfleet.database = postgres) cannot
-- reach NATS (the URL points at a closed port) and says so; the view reads shared memory.
SELECT worker, state, pid IS NOT NULL AS has_pid, errors > 0 AS has_errors,
       last_error LIKE 'could not connect to nats://127.0.0.1:1%' AS explains_why
FROM fleet.worker_status;
SELECT name, setting FROM pg_settings WHERE name LIKE 'pgfleet.%' ORDER BY name;
-- Unknown settings under the reserved prefix are refused.
SET pgfleet.no_such_setting = 1;
-- The launcher also runs one maintenance worker (rollups, retention).
SELECT count(*) AS maintenance_workers FROM pg_stat_activity WHERE backend_type = 'pgfleet maintenance';
-- The NATS URL may carry credentials: only superusers may read it.
CREATE ROLE regress_fleet_reader;
SET ROLE regress_fleet_reader;
SHOW pgfleet.nats_url;
SELECT count(*) AS visible FROM pg_settings WHERE name = 'pgfleet.nats_url';
RESET ROLE;
DROP ROLE regress_fleet_reader;

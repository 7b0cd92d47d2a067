-- payloads: the low-volume kinds (statements, activity, inventory, events, results), stored through
-- fleet._ingest_payload exactly as the ingest worker calls it, and read back through the API.
SET TIME ZONE 'UTC';

-- A statements envelope as the agent encodes it (protoc --encode), as the core renders it.
SELECT jsonb_pretty(fleet.decode_envelope('\x08011a0d726567726573732d6167656e74220262312802320764656661756c748a01620880d0eab6b73310909eebb6b7331a1608d6ffffffffffffffff01120953454c454354202431221e0805100a18d6ffffffffffffffff012001280331000000000000f83f40032a0c08051208706f737467726573320c080a1208706f737467726573'::bytea)->'payload');

-- Two statement intervals for instance of agent s1.
SELECT fleet._ingest_payload('statements', 's1', 'default', 'b1', 1, 1, '{"hostname": "db-s1"}', '{
  "interval_start_ms": 1767225600000, "interval_end_ms": 1767225610000, "stats_reset": false,
  "texts": [{"queryid": 11, "query": "SELECT * FROM t WHERE id = $1"}, {"queryid": 22, "query": "UPDATE t SET v = $1"}],
  "deltas": [
    {"dbid": 5, "userid": 10, "queryid": 11, "toplevel": true, "calls": 100, "total_exec_time_ms": 50, "rows": 100,
     "shared_blks_hit": 300, "shared_blks_read": 4, "blk_read_time_ms": 1, "blk_write_time_ms": 0, "wal_bytes": 0, "reset": false},
    {"dbid": 5, "userid": 10, "queryid": 22, "toplevel": true, "calls": 10, "total_exec_time_ms": 200, "rows": 10,
     "shared_blks_hit": 40, "shared_blks_read": 40, "blk_read_time_ms": 9, "blk_write_time_ms": 1, "wal_bytes": 8000, "reset": false}],
  "databases": {"5": "app"}, "users": {"10": "alice"}}') AS stored;
SELECT fleet._ingest_payload('statements', 's1', 'default', 'b1', 2, 2, NULL, '{
  "interval_start_ms": 1767225610000, "interval_end_ms": 1767225620000, "stats_reset": false,
  "texts": [],
  "deltas": [{"dbid": 5, "userid": 10, "queryid": 11, "toplevel": true, "calls": 50, "total_exec_time_ms": 25, "rows": 50,
              "shared_blks_hit": 150, "shared_blks_read": 0, "reset": false}],
  "databases": {"5": "app"}, "users": {"10": "alice"}}') AS stored;
-- Redelivered: a no-op.
SELECT fleet._ingest_payload('statements', 's1', 'default', 'b1', 2, 2, NULL, '{"texts": [], "deltas": []}') AS stored;

SELECT queryid, datname, username, query, calls, total_exec_time_ms, mean_exec_time_ms, rows, shared_blks_read,
       io_time_ms, round(share_of_total_time::numeric, 3) AS share
FROM fleet.top_statements((SELECT instance_id FROM fleet.instances WHERE agent_id = 's1'),
                          '2026-01-01', '2026-01-02');
SELECT queryid, calls FROM fleet.top_statements((SELECT instance_id FROM fleet.instances WHERE agent_id = 's1'),
                                                '2026-01-01', '2026-01-02', 'calls', 1);
SELECT * FROM fleet.statement_history((SELECT instance_id FROM fleet.instances WHERE agent_id = 's1'), 11,
                                      '2026-01-01', '2026-01-02');
SELECT * FROM fleet.top_statements(1, '2026-01-01', '2026-01-02', 'bogus');

-- Activity: 10 samples; one session on CPU and one waiting on a lock in every sample (1 each), idle
-- sessions not counted.
SELECT fleet._ingest_payload('activity', 's1', 'default', 'b1', 3, 3, NULL, '{
  "interval_start_ms": 1767225600000, "interval_end_ms": 1767225610000, "samples_taken": 10,
  "longest_transaction_seconds": 12.5, "longest_idle_in_transaction_seconds": 0,
  "groups": [
    {"state": "active", "wait_event_type": "", "wait_event": "", "queryid": 11, "backend_type": "client backend",
     "datname": "app", "usename": "alice", "application_name": "psql", "observations": 10},
    {"state": "active", "wait_event_type": "Lock", "wait_event": "transactionid", "queryid": 22,
     "backend_type": "client backend", "datname": "app", "usename": "alice", "application_name": "psql", "observations": 10},
    {"state": "idle", "wait_event_type": "Client", "wait_event": "ClientRead", "queryid": 0,
     "backend_type": "client backend", "datname": "app", "usename": "alice", "application_name": "psql", "observations": 30}],
  "blocking": [{"blocked_pid": 200, "blocking_pid": 100, "blocked_queryid": 22, "blocking_queryid": 22, "blocked_seconds": 4.5}]}') AS stored;
SELECT * FROM fleet.wait_profile((SELECT instance_id FROM fleet.instances WHERE agent_id = 's1'),
                                 '2026-01-01', '2026-01-02', '1 minute');
SELECT blocked_pid, blocking_pid, blocked_seconds FROM fleet.blocking;

-- Inventory: a full list, then a change of one setting and the removal of another.
SELECT fleet._ingest_payload('inventory', 's1', 'default', 'b1', 4, 4, NULL, '{"full": true,
  "settings": [{"name": "work_mem", "setting": "4096", "unit": "kB", "source": "default", "pending_restart": false},
               {"name": "shared_buffers", "setting": "16384", "unit": "8kB", "source": "configuration file", "pending_restart": false}],
  "extensions": {"plpgsql": "1.0"}, "databases": ["postgres", "app"]}') AS stored;
SELECT fleet._ingest_payload('inventory', 's1', 'default', 'b1', 5, 5, NULL, '{"full": true,
  "settings": [{"name": "work_mem", "setting": "8192", "unit": "kB", "source": "configuration file", "pending_restart": false}],
  "extensions": {"plpgsql": "1.0", "pg_stat_statements": "1.10"}, "databases": ["postgres"]}') AS stored;
SELECT name, setting, source FROM fleet.setting ORDER BY name;
SELECT name, old_setting, new_setting FROM fleet.setting_change;
SELECT name, version FROM fleet.instance_extension ORDER BY name;
SELECT datname FROM fleet.instance_database;

-- Events and command results (a result is stored once per command).
SELECT fleet._ingest_payload('events', 's1', 'default', 'b1', 6, 6, NULL, '{"events": [
  {"ts_ms": 1767225600000, "kind": "spool.dropped", "severity": "warning", "message": "3 batches dropped",
   "attributes": {"count": "3"}}]}') AS stored;
SELECT agent_id, ts, kind, severity, message, attributes FROM fleet.event;
SELECT fleet._ingest_payload('results', 's1', 'default', 'b1', 7, 7, NULL, '{"command_id": "c-1", "kind": "ping",
  "ok": true, "message": "", "output": {"pong": "0.1.0"}, "started_ms": 1767225600000, "finished_ms": 1767225600001}') AS stored;
SELECT fleet._ingest_payload('results', 's1', 'default', 'b1', 8, 8, NULL, '{"command_id": "c-1", "kind": "ping",
  "ok": true, "message": "", "output": {}, "started_ms": 0, "finished_ms": 0}') AS stored;
SELECT agent_id, command_id, kind, ok, output FROM fleet.command_result;

-- An unknown kind is the message's fault: class 22, which the worker dead-letters.
SELECT fleet._ingest_payload('plans', 's1', 'default', 'b1', 9, 9, NULL, '{}');
SELECT count(*) AS ledger_rows_of_s1 FROM fleet.ingest_ledger WHERE agent_id = 's1';

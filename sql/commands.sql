-- commands: the outbox toward agents — queueing, claiming for dispatch (and re-sending after 5 s),
-- states, results, expiry and validation. In one transaction, rolled back: later suites see nothing of it.
SET TIME ZONE 'UTC';
\set ON_ERROR_ROLLBACK on
BEGIN;
SELECT fleet._ingest_payload('events', 'cmd-agent', 'default', 'b', 1, 1, NULL, '{"events": []}') AS registered;

SELECT fleet.send_command('cmd-agent', 'ping') IS NOT NULL AS queued;
SELECT fleet.send_command('cmd-agent', 'collect_now', '{"collector": "statements"}') IS NOT NULL AS queued;
SELECT agent_id, kind, args, state, sent_count FROM fleet.commands ORDER BY created_at, kind;

-- The dispatcher claims both (args as parallel arrays); an immediate second claim finds nothing due.
SELECT agent_id, kind, arg_names, arg_values FROM fleet._commands_to_send(10) ORDER BY kind;
SELECT count(*) AS due_again FROM fleet._commands_to_send(10);
SELECT kind, state, sent_count FROM fleet.commands ORDER BY kind;

-- Five seconds without a result: due again (the agent may have been offline).
UPDATE fleet.command SET last_sent_at = last_sent_at - interval '6 seconds';
SELECT kind FROM fleet._commands_to_send(10) ORDER BY kind;

-- The agent's result for ping arrives: done, and never sent again.
SELECT fleet._ingest_payload('results', 'cmd-agent', 'default', 'b', 2, 2, NULL,
    jsonb_build_object('command_id', (SELECT command_id::text FROM fleet.command WHERE kind = 'ping'),
                       'kind', 'ping', 'ok', true, 'message', '', 'output', '{"pong": "0.1.0"}'::jsonb,
                       'started_ms', 0, 'finished_ms', 0)) AS stored;
UPDATE fleet.command SET last_sent_at = last_sent_at - interval '6 seconds';
SELECT kind FROM fleet._commands_to_send(10);
SELECT kind, state, output FROM fleet.commands ORDER BY kind;

-- Expired commands are not sent.
UPDATE fleet.command SET expires_at = now() - interval '1 second' WHERE kind = 'collect_now';
SELECT count(*) AS due_after_expiry FROM fleet._commands_to_send(10);
SELECT kind, state FROM fleet.commands ORDER BY kind;

-- Refused: unknown agent, bad kind, non-string arguments, silly timeouts.
SELECT fleet.send_command('nobody', 'ping');
\set VERBOSITY terse
SELECT fleet.send_command('cmd-agent', 'Drop Table');
\set VERBOSITY default
SELECT fleet.send_command('cmd-agent', 'ping', '{"n": 1}');
SELECT fleet.send_command('cmd-agent', 'ping', '{}', '2 days');
ROLLBACK;
\set ON_ERROR_ROLLBACK off
SELECT count(*) AS commands_left FROM fleet.command;

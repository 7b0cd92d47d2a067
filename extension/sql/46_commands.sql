-- Commands: the centre's outbox toward agents. fleet.send_command() queues one; ingest worker 0
-- publishes pending commands on fleet.cmd.<agent_id> (core NATS: the agent subscribes there), again
-- every 5 s until the agent's result arrives (fleet.command_result, through the results payload) or the
-- command expires. An agent may therefore run a command more than once; results are stored once.

CREATE TABLE fleet.command (
    command_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id text NOT NULL REFERENCES fleet.agent ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,63}$'),
    args jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(args) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by name NOT NULL DEFAULT current_user,
    expires_at timestamptz NOT NULL,
    sent_count integer NOT NULL DEFAULT 0,
    last_sent_at timestamptz
);
CREATE INDEX command_agent ON fleet.command (agent_id, created_at);

-- send_command: queues a command for an agent; returns its id. args is a JSON object of strings.
CREATE FUNCTION fleet.send_command(p_agent_id text, p_kind text, p_args jsonb DEFAULT '{}',
                                   p_timeout interval DEFAULT '5 minutes')
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM fleet.agent WHERE agent_id = p_agent_id) THEN
        RAISE EXCEPTION 'agent "%" does not exist', p_agent_id
            USING ERRCODE = 'undefined_object', HINT = 'fleet.instances lists the agents that have reported.';
    END IF;
    IF jsonb_typeof(p_args) IS DISTINCT FROM 'object'
       OR EXISTS (SELECT 1 FROM jsonb_each(p_args) WHERE jsonb_typeof(value) <> 'string') THEN
        RAISE EXCEPTION 'command arguments must be a JSON object of strings'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', left(p_args::text, 200));
    END IF;
    IF p_timeout <= interval '0' OR p_timeout > interval '1 day' THEN
        RAISE EXCEPTION 'command timeout must be between 0 and 1 day' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO fleet.command (agent_id, kind, args, expires_at)
    VALUES (p_agent_id, p_kind, p_args, now() + p_timeout)
    RETURNING command_id INTO v_id;
    RETURN v_id;
END
$$;

-- commands: every command with its state (pending, sent, done, failed, expired) and result.
CREATE VIEW fleet.commands AS
SELECT c.command_id, c.agent_id, c.kind, c.args, c.created_at, c.created_by, c.expires_at, c.sent_count,
       c.last_sent_at,
       CASE WHEN r.command_id IS NOT NULL THEN CASE WHEN r.ok THEN 'done' ELSE 'failed' END
            WHEN c.expires_at <= now() THEN 'expired'
            WHEN c.sent_count = 0 THEN 'pending'
            ELSE 'sent' END AS state,
       r.message, r.output, r.finished_at
FROM fleet.command c
LEFT JOIN fleet.command_result r ON r.agent_id = c.agent_id AND r.command_id = c.command_id::text;

-- _commands_to_send: for the dispatcher: claims up to p_limit commands due for (re)sending (never sent,
-- or sent more than 5 s ago without a result, and not expired) and counts the send.
CREATE FUNCTION fleet._commands_to_send(p_limit integer)
RETURNS TABLE (command_id text, agent_id text, kind text, arg_names text[], arg_values text[])
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH due AS (
        SELECT c.command_id FROM fleet.command c
        WHERE c.expires_at > now()
          AND (c.last_sent_at IS NULL OR c.last_sent_at < now() - interval '5 seconds')
          AND NOT EXISTS (SELECT 1 FROM fleet.command_result r
                          WHERE r.agent_id = c.agent_id AND r.command_id = c.command_id::text)
        ORDER BY c.created_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE fleet.command c SET sent_count = c.sent_count + 1, last_sent_at = now()
    FROM due WHERE c.command_id = due.command_id
    RETURNING c.command_id::text, c.agent_id, c.kind,
              ARRAY(SELECT key FROM jsonb_each_text(c.args) ORDER BY key),
              ARRAY(SELECT value FROM jsonb_each_text(c.args) ORDER BY key)
$$;
REVOKE ALL ON FUNCTION fleet._commands_to_send(integer) FROM PUBLIC;

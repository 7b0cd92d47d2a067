-- guard: C++ exceptions raised inside SQL-callable functions become clean PostgreSQL errors
-- (errcode, message, detail, hint) and the session goes on (docs/cpp-in-postgres.md, rule 12).
CREATE EXTENSION pgfleet;

-- A valid wire v1 envelope (made with protoc --encode from a text envelope) decodes.
SELECT e->>'agent_id' AS agent, e->>'batch_seq' AS seq, jsonb_array_length(e->'series') AS series,
       jsonb_array_length(e->'samples') AS samples, e->'instance'->>'hostname' AS host
FROM fleet.decode_envelope('\x08011a0d726567726573732d6167656e74220262312801320764656661756c743880d0eab6b73342210a1337333030303030303030303030303030303031120531352e32302203646231820192010a2d080a121770672e64617461626173652e786163745f636f6d6d697418022a0e0a076461746e616d6512036170700a23080b1216686f73742e6d656d6f72792e757365645f6279746573180122056279746573121d0880d0eab6b73312020a0b1a100000000000005940000000000000b040121d08909eebb6b73312020a0b1a100000000000c06240000000000000c040'::bytea) AS e;
SELECT jsonb_pretty(fleet.decode_envelope('\x08011a0d726567726573732d6167656e74220262312801320764656661756c743880d0eab6b73342210a1337333030303030303030303030303030303031120531352e32302203646231820192010a2d080a121770672e64617461626173652e786163745f636f6d6d697418022a0e0a076461746e616d6512036170700a23080b1216686f73742e6d656d6f72792e757365645f6279746573180122056279746573121d0880d0eab6b73312020a0b1a100000000000005940000000000000b040121d08909eebb6b73312020a0b1a100000000000c06240000000000000c040'::bytea)->'series');

-- Garbage: the decoder refuses it, the SQL function throws a C++ SqlError, and the guard turns it
-- into an ERROR with errcode, detail and hint.
SELECT fleet.decode_envelope('\xfffe0001'::bytea);
-- The session is intact.
SELECT 1 AS still_alive;

-- The errcode is the documented one, catchable in PL/pgSQL.
DO $$
BEGIN
    PERFORM fleet.decode_envelope('\x0a'::bytea);
EXCEPTION WHEN invalid_binary_representation THEN
    RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM;
END
$$;

-- An unknown major version is refused with that reason.
SELECT fleet.decode_envelope('\x08021a0d726567726573732d6167656e74220262312801320764656661756c743880d0eab6b73342210a1337333030303030303030303030303030303031120531352e32302203646231820192010a2d080a121770672e64617461626173652e786163745f636f6d6d697418022a0e0a076461746e616d6512036170700a23080b1216686f73742e6d656d6f72792e757365645f6279746573180122056279746573121d0880d0eab6b73312020a0b1a100000000000005940000000000000b040121d08909eebb6b73312020a0b1a100000000000c06240000000000000c040'::bytea);

-- Inside a transaction block: the error aborts the transaction, which rolls back cleanly.
BEGIN;
SELECT fleet.decode_envelope(''::bytea);
SELECT 1;
ROLLBACK;
SELECT 2 AS after_rollback;

-- Many failures in a row leak nothing that breaks the session.
DO $$
DECLARE n int := 0;
BEGIN
    FOR i IN 1..1000 LOOP
        BEGIN
            PERFORM fleet.decode_envelope(decode(lpad(to_hex(i), 8, '0'), 'hex'));
        EXCEPTION WHEN invalid_binary_representation THEN
            n := n + 1;
        END;
    END LOOP;
    RAISE NOTICE '% of 1000 garbage inputs refused', n;
END
$$;

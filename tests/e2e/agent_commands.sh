#!/usr/bin/env bash
# e2e: commands from the centre to the agent, and their results back through the spool.
#
# A private stack whose agent's NATS user may only publish fleet.in.default.central.> and subscribe
# fleet.cmd.central and its own inbox _INBOX_central.> (PGFLEET_NATS_STRICT_INBOX=1: no "_INBOX.>").
# tests/tools/fleet_command publishes Commands on fleet.cmd.central as the centre's NATS user; the agent
# executes them on its main loop and sends a CommandResult envelope (subject kind "results") through its
# spool; the ingest worker stores it in fleet.command_result. Checks: ping -> ok with output
# {"pong": <agent version>}; collect_now -> ok, and a metrics batch sealed after the command arrives at
# once (not at the next interval: the test stack's agent runs every 10 s here); an unknown kind -> ok =
# false with message 'unknown command "X"'; a garbage message is ignored and the agent keeps running.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 1 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-commands
echo "# e2e agent_commands (state $PF_STATE)"
build=${BUILD:-$PF_REPO/build}
tool=$build/tests/fleet_command
AGENT_BIN=${PGFLEET_AGENT:-$(command -v pgfleet-agent || echo "$PF_REPO/build/pgfleet-agent")}

if ! make -s -C "$PF_REPO/tests/tools" BUILD="$build" "$tool" >/dev/null; then
  pf_not_ok "tests/tools/fleet_command builds" "make -C tests/tools failed"
  pf_finish || exit 1
fi
# The stack's agent every 10 s, so that "collect_now" is distinguishable from the regular schedule.
if ! PGFLEET_NATS_STRICT_INBOX=1 pf_stack_up --no-gateway --interval 10; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (agent's NATS user limited to its own subjects and inbox)"
NATS_URL="nats://ingest:$(awk '{print $1}' "$PF_STATE/nats/auth/ingest")@127.0.0.1:$PF_NATS_PORT"

pf_wait_until 30 pf_sql_true "SELECT count(*) > 0 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || true)
if [ -z "$IID" ]; then
  pf_not_ok "agent's first batch arrives (PubAcks reach its own inbox)" "no instance for agent central after 30 s"
  pf_crash_check
  pf_finish || exit 1
fi
pf_ok "agent's first batch arrives (PubAcks reach its own inbox)"

# send KIND: publishes one command and prints its id.
send() { "$tool" --url "$NATS_URL" --agent central --kind "$1"; }
# result_is ID CONDITION: true when the result row of command ID exists and satisfies CONDITION.
result_is() { pf_sql_true "SELECT count(*) = 1 AND bool_and($2) FROM fleet.command_result WHERE command_id = '$1'"; }
# result_row ID: the stored result of command ID, for failure details.
result_row() { pf_psql "SELECT kind, ok, message, output FROM fleet.command_result WHERE command_id = '$1'" 2>&1 | tr '\n' ' '; }

# The agent subscribes right after its connection; a core NATS message sent before that is lost, so the
# first ping is retried until one is answered.
ping_id=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
  ping_id=$(send ping) || true
  if [ -n "$ping_id" ] && pf_wait_until 3 result_is "$ping_id" "true"; then break; fi
done
version=$("$AGENT_BIN" --version | awk '{print $2}')
if result_is "$ping_id" "ok AND output = jsonb_build_object('pong', '$version') AND message = '' AND kind = 'ping'
    AND finished_at >= started_at AND agent_id = 'central'"; then
  pf_ok "ping -> ok with output {\"pong\": \"$version\"}"
else
  pf_not_ok "ping -> ok with output {\"pong\": \"$version\"}" "$(result_row "$ping_id")"
fi

# Send it well away from the regular schedule (3 to 7 s past a multiple of 10 s).
until [ $(( $(date +%s) % 10 )) -ge 3 ] && [ $(( $(date +%s) % 10 )) -le 6 ]; do sleep 0.2; done
before=$(date +%s.%N)
cn_id=$(send collect_now) || true
if pf_wait_until 5 result_is "$cn_id" "ok AND kind = 'collect_now'"; then
  pf_ok "collect_now -> ok"
else
  pf_not_ok "collect_now -> ok" "$(result_row "$cn_id")"
fi
# The command's own metrics batch: a sample within 2 s of the command that is not on the regular schedule
# (every 10 s, on wall-clock multiples of 10 s: those samples have ts within a few ms after a multiple).
sent=$(pf_psql "SELECT extract(epoch FROM started_at) FROM fleet.command_result WHERE command_id = '$cn_id'" 2>/dev/null || echo 0)
pf_check "collect_now produced a metrics batch at once" \
  pf_sql_true "SELECT count(*) >= 1 FROM fleet.series($IID, 'host.memory.total_bytes', to_timestamp(${sent:-0}) - interval '0.5 second',
               to_timestamp(${sent:-0}) + interval '2 seconds')
               WHERE ts >= to_timestamp($before) AND extract(epoch FROM ts)::numeric % 10 > 0.5"

bad_id=$(send frobnicate) || true
if pf_wait_until 5 result_is "$bad_id" "NOT ok AND message = 'unknown command \"frobnicate\"' AND kind = 'frobnicate'"; then
  pf_ok "unknown command -> ok = false, message 'unknown command \"frobnicate\"'"
else
  pf_not_ok "unknown command -> ok = false with a message" "$(result_row "$bad_id")"
fi

# Garbage on the command subject: logged and ignored; the agent still answers afterwards.
pw=$(awk '{print $1}' "$PF_STATE/nats/auth/ingest")
python3 - "$PF_NATS_PORT" "$pw" <<'PY' || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.recv(4096)
body = b"\xff\xfe not a protobuf"
s.sendall(b'CONNECT {"verbose":false,"user":"ingest","pass":"%s"}\r\nPUB fleet.cmd.central %d\r\n%s\r\nPING\r\n' % (sys.argv[2].encode(), len(body), body))
s.recv(4096)
s.close()
PY
ping2=$(send ping) || true
if pf_wait_until 5 result_is "$ping2" "ok"; then
  pf_ok "after an undecodable command message the agent still answers"
else
  pf_not_ok "after an undecodable command message the agent still answers" "$(result_row "$ping2")"
fi
pf_check "the agent logged the undecodable command" grep -q 'ignoring an undecodable command message' "$PF_STATE/log/agent.log"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

#!/usr/bin/env bash
# e2e: the spool bound (spool_max_bytes) while NATS is away.
#
# A private stack without its own agent; nats-server is stopped, then an agent with spool_max_bytes =
# 16384 (a few batches) and interval 1 s is started by this test. While NATS is away: the spool stays
# within the bound (plus at most the newest batch), the drops are logged once for the episode, and the
# agent keeps running. Then nats-server comes back on the same port (pgfleetctl up): the spool drains, an
# event spool.dropped arrives in fleet.event with the number of dropped batches, and the agent's own
# series agent.spool.dropped reaches that number.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 1 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-spool-full
echo "# e2e agent_spool_full (state $PF_STATE)"
AGENT_DIR=$PF_STATE/test-agent
readonly MAX_BYTES=16384

# cleanup: EXIT trap: our agent first, then the stack (pf_teardown keeps the exit status).
cleanup() { local rc=$?; pf_agent_stop; set +e; (exit $rc); pf_teardown; }
trap cleanup EXIT
# spool_bytes: bytes of the batch files in the agent's spool.
spool_bytes() { find "$AGENT_DIR/spool" -maxdepth 1 -name '*.batch' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
# largest_batch: bytes of the largest batch file in the spool.
largest_batch() { find "$AGENT_DIR/spool" -maxdepth 1 -name '*.batch' -printf '%s\n' | sort -n | tail -1; }

if ! pf_stack_up --no-gateway --no-agent; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (without its agent)"
nats_pid=$(cat "$PF_STATE/nats/nats.pid")
kill -TERM "$nats_pid"
pf_wait_until 10 bash -c "! kill -0 $nats_pid" && pf_ok "nats-server stopped" || pf_not_ok "nats-server stopped" "pid $nats_pid still runs"

pf_agent_config "$AGENT_DIR" "spool_max_bytes = $MAX_BYTES"
pf_agent_start "$AGENT_DIR"
[ -n "$PF_AGENT_PID" ] && pf_ok "agent started (pid $PF_AGENT_PID, spool_max_bytes $MAX_BYTES)" || pf_not_ok "agent started" "no pid file"

sleep 8
bytes=$(spool_bytes) largest=$(largest_batch)
if [ "$bytes" -le $((MAX_BYTES + ${largest:-0})) ] && [ "$bytes" -gt 0 ]; then
  pf_ok "spool stays within spool_max_bytes + one batch ($bytes bytes, largest batch ${largest:-0})"
else
  pf_not_ok "spool stays within spool_max_bytes + one batch" "$bytes bytes, largest batch ${largest:-0}"
fi
n=$(grep -c 'spool exceeds spool_max_bytes' "$AGENT_DIR/agent.log" || true)
[ "$n" -eq 1 ] && pf_ok "the drop episode is logged once" || pf_not_ok "the drop episode is logged once" "$n lines"
pf_check "agent still runs while dropping" kill -0 "$PF_AGENT_PID"

if out=$("$PGFLEETCTL" --state "$PF_STATE" up 2>&1); then pf_ok "nats-server restarted (pgfleetctl up)"; else
  pf_not_ok "nats-server restarted" "$(echo "$out" | tail -3 | tr '\n' ' ')"; fi
pf_wait_until 30 pf_sql_true "SELECT count(*) > 0 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || echo 0)
IID=${IID:-0}
pf_check "spool.dropped event arrives with a count" \
  pf_wait_until 30 pf_sql_true "SELECT count(*) = 1 FROM fleet.event WHERE instance_id = $IID AND kind = 'spool.dropped'
                                AND (attributes->>'count')::int > 0"
logged=$(grep -o '[0-9]* batches were dropped from the full spool' "$AGENT_DIR/agent.log" | head -1 | awk '{print $1}')
reported=$(pf_psql "SELECT attributes->>'count' FROM fleet.event WHERE instance_id = $IID AND kind = 'spool.dropped'" 2>/dev/null || true)
if [ -n "$logged" ] && [ "$logged" = "$reported" ]; then
  pf_ok "the event's count equals the logged count ($reported batches)"
else
  pf_not_ok "the event's count equals the logged count" "log '${logged}', event '${reported}'"
fi
pf_check "agent.spool.dropped reaches the reported count" \
  pf_wait_until 10 pf_sql_true "SELECT max(value) >= ${reported:-1} FROM fleet.series($IID, 'agent.spool.dropped', now() - interval '10 minutes', now() + interval '1 minute')"
pf_check "the spool drains" pf_wait_until 15 bash -c "[ \"\$(find '$AGENT_DIR/spool' -name '*.batch' | wc -l)\" -eq 0 ]"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
[ "$PF_FAILED" -eq 0 ] || { pf_log "--- agent log"; tail -n 20 "$AGENT_DIR/agent.log" | pf_indent; }
pf_finish

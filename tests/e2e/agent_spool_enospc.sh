#!/usr/bin/env bash
# e2e: a full disk under the spool (ENOSPC) does not lose batches nor stop the agent.
#
# Needs root (it mounts a 48 KiB tmpfs as the agent's spool directory); otherwise it reports a skip.
# A private stack without its own agent; nats-server is stopped; an agent (every 1 s) is started with its
# spool on the tiny file system. The spool fills up within a few seconds: writes fail with ENOSPC, the
# agent logs it once, keeps the batches in memory (in order) and keeps running. nats-server comes back:
# everything is published (no gap in host.memory.total_bytes over the whole window), the event
# spool.write_failed (reason "disk full") arrives, agent.spool.write_errors > 0, and the spool recovers.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 1 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-spool-enospc
echo "# e2e agent_spool_enospc (state $PF_STATE)"
AGENT_DIR=$PF_STATE/test-agent
MOUNTED=0

# cleanup: EXIT trap: our agent, the tmpfs, then the stack (pf_teardown keeps the exit status).
cleanup() {
  local rc=$?
  pf_agent_stop
  if [ "$MOUNTED" = 1 ]; then umount "$AGENT_DIR/spool" 2>/dev/null || umount -l "$AGENT_DIR/spool" || true; fi
  set +e; (exit $rc)  # pf_teardown reads the status; set -e must not end the trap here
  pf_teardown
}
trap cleanup EXIT

# skip REASON: says the test did not run; a skip is counted as neither passed nor failed.
skip() {
  echo "ok - # SKIP $1"
  echo "$PF_PASSED passed, $PF_FAILED failed, 1 skipped"
  exit 0
}

if [ "$EUID" -ne 0 ]; then
  skip "needs root to mount a tiny tmpfs"
fi
if ! pf_stack_up --no-gateway --no-agent; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (without its agent)"
mkdir -p "$AGENT_DIR/spool" && chown postgres: "$AGENT_DIR" "$AGENT_DIR/spool"
if ! mount -t tmpfs -o "size=48k,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres)" tmpfs "$AGENT_DIR/spool" 2>/dev/null; then
  skip "cannot mount a tmpfs here"
fi
MOUNTED=1
pf_ok "48 KiB tmpfs mounted as the spool"

nats_pid=$(cat "$PF_STATE/nats/nats.pid")
kill -TERM "$nats_pid"
pf_wait_until 10 bash -c "! kill -0 $nats_pid" || true

pf_agent_config "$AGENT_DIR"
start_epoch=$(date +%s.%N)
pf_agent_start "$AGENT_DIR"

# logged TEXT: true when the agent's log has TEXT.
logged() { grep -qF "$1" "$AGENT_DIR/agent.log"; }
pf_check "ENOSPC is logged (disk full)" pf_wait_until 20 logged "cannot write to the spool (disk full)"
sleep 3
n=$(grep -c 'cannot write to the spool' "$AGENT_DIR/agent.log" || true)
[ "$n" -eq 1 ] && pf_ok "logged once for the episode" || pf_not_ok "logged once for the episode" "$n lines"
pf_check "the agent keeps running on a full disk" kill -0 "$PF_AGENT_PID"

"$PGFLEETCTL" --state "$PF_STATE" up >/dev/null 2>&1 && pf_ok "nats-server restarted" || pf_not_ok "nats-server restarted" "pgfleetctl up failed"
pf_check "the spool drains (files and batches held in memory)" \
  pf_wait_until 30 bash -c "[ \"\$(find '$AGENT_DIR/spool' -name '*.batch' | wc -l)\" -eq 0 ]"
pf_check "the spool is writable again" pf_wait_until 10 logged "spool is writable again"
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || echo 0)
IID=${IID:-0}
pf_check "spool.write_failed event (reason disk full) arrives" \
  pf_wait_until 15 pf_sql_true "SELECT count(*) >= 1 FROM fleet.event WHERE instance_id = $IID AND kind = 'spool.write_failed'
                                AND attributes->>'reason' = 'disk full'"
pf_check "agent.spool.write_errors > 0" \
  pf_wait_until 10 pf_sql_true "SELECT max(value) > 0 FROM fleet.series($IID, 'agent.spool.write_errors', now() - interval '10 minutes', now() + interval '1 minute')"
sleep 2
gap=$(pf_psql "
  WITH g AS (SELECT ts, ts - lag(ts) OVER (ORDER BY ts) AS d
             FROM fleet.series($IID, 'host.memory.total_bytes', to_timestamp($start_epoch), now() + interval '1 minute'))
  SELECT format('%s samples, largest step %s s', count(*), round(extract(epoch FROM max(d))::numeric, 3)),
         coalesce(max(d) <= interval '1.5 seconds', false) FROM g" 2>&1 || true)
if [[ $gap == *'|t' ]]; then pf_ok "no batch lost: no gap > 1.5 s in host.memory.total_bytes (${gap%|*})"; else
  pf_not_ok "no batch lost: no gap > 1.5 s in host.memory.total_bytes" "$gap"; fi
pf_crash_check
pf_log "elapsed ${SECONDS} s"
[ "$PF_FAILED" -eq 0 ] || { pf_log "--- agent log"; tail -n 20 "$AGENT_DIR/agent.log" | pf_indent; }
pf_finish

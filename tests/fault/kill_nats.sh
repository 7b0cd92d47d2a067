#!/usr/bin/env bash
# tests/fault/kill_nats.sh — fault (c): nats-server killed with SIGKILL under sustained load (two
# producers publishing thousands of batches, two ingest workers consuming), restarted after 1 s on the
# same port and the same store directory. The producers retry until PubAck (Msg-Id dedup drops a
# republished batch), the workers reconnect; acks lost with the server make redeliveries that the
# ledger absorbs. End state: every batch once, every sample once, nothing dead-lettered, no server
# process terminated by a signal.
# shellcheck source=tests/fault/lib/fault.bash
. "$(dirname "$0")/lib/fault.bash"
fault_init kill-nats
N=${FAULT_BATCHES:-20000} S=10
fault_standard_stack "pgfleet.ingest_workers = 2" || { fault_finish; exit 1; }

fault_publish_bg "$FW/producer1.log" --agent fc1 --boot b1 --count "$N" --series "$S"; p1=$BG_PID
fault_publish_bg "$FW/producer2.log" --agent fc2 --boot b1 --count "$N" --series "$S"; p2=$BG_PID
fault_wait 60 "SELECT count(*) >= 500 FROM fleet.ingest_ledger" >/dev/null # early: ingest keeps pace with the producers
before=$(fault_sql "SELECT count(*) FROM fleet.ingest_ledger")
old_nats=$NATS_PID
kill -9 "$NATS_PID"; while kill -0 "$old_nats" 2>/dev/null; do sleep 0.05; done
fault_log "killed nats-server $old_nats with SIGKILL after $before of $((2 * N)) batches were stored"
sleep 1
old_port=$NATS_PORT
fault_nats_start "$NATS_PORT" # not inside ok: it sets NATS_PID, which the cleanup kills
ok "nats-server restarts on the same port ($old_port) and store" equals "$old_port" "$NATS_PORT"
ok "the workers reconnect and ingest again" \
  fault_wait 60 "SELECT count(*) > $before FROM fleet.ingest_ledger"
wait "$p1"; r1=$?; wait "$p2"; r2=$?
ok "both producers got every batch acknowledged across the restart (exit $r1, $r2)" test "$r1$r2" = 00
ok "all $N batches of fc1 in the ledger exactly once" fault_wait_ledger 90 fc1 "$N"
ok "all $N batches of fc2 in the ledger exactly once" fault_wait_ledger 60 fc2 "$N"
ok "every sample of fc1 exactly once (count/distinct/checksum)" equals "$(fault_expect 1 "$N" "$S")" "$(fault_agent_state fc1)"
ok "every sample of fc2 exactly once (count/distinct/checksum)" equals "$(fault_expect 1 "$N" "$S")" "$(fault_agent_state fc2)"
ok "no duplicate (series, ts) anywhere" fault_no_global_duplicates
ok "nothing dead-lettered" equals 0 "$(fault_sql "SELECT count(*) FROM fleet.dead_letter")"
ok "the workers logged the NATS loss (once per worker at most 2 lines each)" \
  test "$(grep -cE 'lost NATS|cannot reach NATS' "$FW/pg.log")" -le 4
fault_signal_check "no server process was terminated by a signal"
fault_finish

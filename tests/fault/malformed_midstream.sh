#!/usr/bin/env bash
# tests/fault/malformed_midstream.sh — fault (d): malformed messages in the middle of a sustained
# stream (two producers, thousands of batches, two workers): raw garbage at one sequence of each
# producer and a batch the database refuses (instance port out of integer range) in a third. End
# state: each malformed message exactly once in fleet.dead_letter with its reason, every other batch
# and sample exactly once, the workers never restarted, no process terminated by a signal.
# shellcheck source=tests/fault/lib/fault.bash
. "$(dirname "$0")/lib/fault.bash"
fault_init malformed
N=${FAULT_BATCHES:-2000} S=10
fault_standard_stack "pgfleet.ingest_workers = 2" || { fault_finish; exit 1; }
workers_before=$(fault_worker_pids)

fault_publish_bg "$FW/p1.log" --agent fd1 --boot b1 --count "$N" --series "$S" --garbage-at $((N / 2)); p1=$BG_PID
fault_publish_bg "$FW/p2.log" --agent fd2 --boot b1 --count "$N" --series "$S" --garbage-at $((N / 3)); p2=$BG_PID
fault_publish_bg "$FW/p3.log" --agent fd3 --boot b1 --count 300 --series "$S" --bad-port-at 150; p3=$BG_PID
wait "$p1"; r1=$?; wait "$p2"; r2=$?; wait "$p3"; r3=$?
ok "the producers got every message acknowledged (exit $r1 $r2 $r3)" test "$r1$r2$r3" = 000
ok "fd1: $((N - 1)) good batches stored" fault_wait_ledger 90 fd1 $((N - 1))
ok "fd2: $((N - 1)) good batches stored" fault_wait_ledger 60 fd2 $((N - 1))
ok "fd3: 299 good batches stored" fault_wait_ledger 60 fd3 299
ok "fd1: every sample exactly once" equals "$(FAULT_SKIP_SEQS=$((N / 2)) fault_expect 1 "$N" "$S")" "$(fault_agent_state fd1)"
ok "fd2: every sample exactly once" equals "$(FAULT_SKIP_SEQS=$((N / 3)) fault_expect 1 "$N" "$S")" "$(fault_agent_state fd2)"
ok "fd3: every sample exactly once" equals "$(FAULT_SKIP_SEQS=150 fault_expect 1 300 "$S")" "$(fault_agent_state fd3)"
ok "no duplicate (series, ts) anywhere" fault_no_global_duplicates
ok "exactly the 3 malformed messages are dead-lettered, with their reasons" equals \
  "fleet.in.default.fd1.metrics|malformed protobuf|30;fleet.in.default.fd2.metrics|malformed protobuf|30;fleet.in.default.fd3.metrics|rejected by database|" \
  "$(fault_sql "SELECT string_agg(subject || '|' || reason || '|' || CASE WHEN reason = 'malformed protobuf' THEN length(raw)::text ELSE '' END, ';' ORDER BY subject) FROM fleet.dead_letter")"
ok "fleet.decode_envelope shows the refused batch's content (batch_seq 150)" \
  equals t "$(fault_sql "SELECT fleet.decode_envelope(raw)::text LIKE '%150%' FROM fleet.dead_letter WHERE subject LIKE '%.fd3.%'")"
ok "the workers survived (same pids: $workers_before)" equals "$workers_before" "$(fault_worker_pids)"
ok "worker_status counts 3 dead letters" equals 3 "$(fault_sql "SELECT sum(dead_letters) FROM fleet.worker_status")"
fault_signal_check "no server process was terminated by a signal"
fault_finish

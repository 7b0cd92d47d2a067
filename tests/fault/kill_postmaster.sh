#!/usr/bin/env bash
# tests/fault/kill_postmaster.sh — fault (b): kill -9 of the postmaster while fleet_publish publishes
# thousands of batches. Its children notice the postmaster's death and exit (the ingest workers wait
# with WL_EXIT_ON_PM_DEATH); pg_ctl start then runs crash recovery ("database system was interrupted",
# "redo starts"). Batches committed before the kill survive, batches in flight were never acked and are
# redelivered: every sample exactly once. Nobody logs the postmaster's own death, so the log must show
# no "terminated by signal" at all.
# shellcheck source=tests/fault/lib/fault.bash
. "$(dirname "$0")/lib/fault.bash"
fault_init kill-postmaster
N=${FAULT_BATCHES:-20000} S=10
fault_standard_stack "pgfleet.ingest_workers = 2" || { fault_finish; exit 1; }

fault_publish_bg "$FW/producer.log" --agent fb --boot b1 --count "$N" --series "$S"
producer=$BG_PID
fault_wait 60 "SELECT count(*) >= 500 FROM fleet.ingest_ledger" >/dev/null # early: ingest keeps pace with the producers
pm=$(head -1 "$FW/pg/postmaster.pid")
children=$(ps -o pid= --ppid "$pm" | tr -s ' \n' ' ')
stored_before=$(fault_ledger fb)
kill -9 "$pm"
killed_at=$(date +%s.%N)
fault_log "killed the postmaster $pm with SIGKILL after $stored_before of $N batches were stored"
# Every former child must be gone before the restart (they hold the old shared memory).
deadline=$((SECONDS + 10)) left=""
while [ "$SECONDS" -lt "$deadline" ]; do
  left=""; for c in $children; do kill -0 "$c" 2>/dev/null && left="$left $c"; done
  [ -z "$left" ] && break; sleep 0.1
done
if [ -z "$left" ]; then
  pass "every child of the killed postmaster exited within 10 s"
else
  detail=$(for c in $left; do echo "$c $(ps -o cmd= -p "$c") wchan=$(cat /proc/$c/wchan 2>/dev/null)"; done | tr '\n' ';')
  if [ -n "${FAULT_DEBUG_PM:-}" ]; then for c in $left; do gdb -p "$c" -batch -ex bt 2>/dev/null | grep '^#' | head -20; done; fi
  not_ok "every child of the killed postmaster exited within 10 s" "still alive: $detail (killed with SIGKILL to go on)"
  for c in $left; do kill -9 "$c" 2>/dev/null; done
  sleep 0.5
fi
restarted_at=$(date +%s.%N)
ok "pg_ctl start brings the server back" fault_pg_start
fault_log "batches committed after the postmaster died (by an orphaned worker): $(fault_sql "SELECT count(*) FROM fleet.ingest_ledger
  WHERE stored_at > to_timestamp($killed_at) AND stored_at < to_timestamp($restarted_at)" 2>&1)"
ok "the restart ran crash recovery" grep -q "database system was interrupted" "$FW/pg.log"
ok "the launcher starts 2 ingest workers again" \
  fault_wait 60 "SELECT count(*) = 2 AND bool_and(state = 'running') FROM fleet.worker_status WHERE pid IS NOT NULL"
wait "$producer"; prc=$?
ok "the producer got every batch acknowledged (exit $prc)" test "$prc" -eq 0
ok "all $N batches in the ledger exactly once" fault_wait_ledger 90 fb "$N"
ok "every sample exactly once (count/distinct/checksum)" equals "$(fault_expect 1 "$N" "$S")" "$(fault_agent_state fb)"
ok "no duplicate (series, ts) anywhere" fault_no_global_duplicates
ok "nothing dead-lettered" equals 0 "$(fault_sql "SELECT count(*) FROM fleet.dead_letter")"
fault_signal_check "no process was terminated by a signal (the postmaster's death is not logged)"
fault_finish

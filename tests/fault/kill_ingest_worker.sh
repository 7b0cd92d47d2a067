#!/usr/bin/env bash
# tests/fault/kill_ingest_worker.sh — fault (a): kill -9 of an ingest worker while fleet_publish is
# publishing 20,000 batches (ingest keeps pace with a synchronous producer, so the stream must be long for the kill to land mid-stream). PostgreSQL treats a background worker killed by a signal as a crash
# of shared memory: it logs "terminated by signal 9" for that pid, resets every process and runs crash
# recovery; the launcher then starts the workers again. End state: every batch once (ledger), every
# sample once (count, distinct (series, ts), checksum), nothing dead-lettered, the producer never
# failed, and the only "terminated by signal" line is the killed worker's.
# shellcheck source=tests/fault/lib/fault.bash
. "$(dirname "$0")/lib/fault.bash"
fault_init kill-worker
N=${FAULT_BATCHES:-20000} S=10
fault_standard_stack "pgfleet.ingest_workers = 2" || { fault_finish; exit 1; }

fault_publish_bg "$FW/producer.log" --agent fa --boot b1 --count "$N" --series "$S"
producer=$BG_PID
fault_wait 60 "SELECT count(*) >= 500 FROM fleet.ingest_ledger" >/dev/null
victim=$(fault_sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgfleet ingest' ORDER BY pid LIMIT 1")
stored_before=$(fault_ledger fa)
kill -9 "$victim"
fault_log "killed ingest worker $victim with SIGKILL after $stored_before of $N batches were stored"
ok "the killed worker died mid-stream (before the last batch was stored)" test "$stored_before" -lt "$N"
ok "the server comes back and the launcher starts 2 ingest workers again" \
  fault_wait 60 "SELECT count(*) = 2 AND bool_and(state = 'running') FROM fleet.worker_status WHERE pid IS NOT NULL AND pid <> $victim"
wait "$producer"; prc=$?
ok "the producer got every batch acknowledged (exit $prc)" test "$prc" -eq 0
ok "all $N batches in the ledger exactly once" fault_wait_ledger 90 fa "$N"
ok "every sample exactly once (count/distinct/checksum)" equals "$(fault_expect 1 "$N" "$S")" "$(fault_agent_state fa)"
ok "no duplicate (series, ts) anywhere" fault_no_global_duplicates
ok "nothing dead-lettered" equals 0 "$(fault_sql "SELECT count(*) FROM fleet.dead_letter")"
ok "the server reinitialized after the crash (crash recovery ran)" \
  grep -q "all server processes terminated; reinitializing" "$FW/pg.log"
fault_signal_check "only the killed worker ($victim) was terminated by a signal" "$victim"
fault_finish

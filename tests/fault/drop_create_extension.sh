#!/usr/bin/env bash
# tests/fault/drop_create_extension.sh — fault (e): DROP EXTENSION pgfleet and CREATE EXTENSION pgfleet
# while the workers ingest a sustained stream. The ledger's rows at the moment of the drop are saved
# in the same transaction (tables locked first), so the end state is exact: every batch of the stream
# in exactly one of the old ledger (dropped) and the new one, the new samples matching the new ledger,
# every batch published after CREATE stored exactly once. The workers must wait quietly (a few log
# lines, not one per second), keep their pids (no crash, no restart) and resume by themselves.
# shellcheck source=tests/fault/lib/fault.bash
. "$(dirname "$0")/lib/fault.bash"
fault_init drop-create
N=${FAULT_BATCHES:-20000} S=10
fault_standard_stack "pgfleet.ingest_workers = 2" || { fault_finish; exit 1; }
workers_before=$(fault_worker_pids)

fault_publish_bg "$FW/p1.log" --agent fe1 --boot b1 --count "$N" --series "$S"; p1=$BG_PID
fault_wait 60 "SELECT count(*) >= 500 FROM fleet.ingest_ledger" >/dev/null # early: ingest keeps pace with the producers
# The workers lock some of these tables before the ledger and others after it, so taking them all can
# deadlock with a worker's transaction; PostgreSQL then aborts one side (either is safe: a worker's
# batch is redelivered). The drop is retried, as a DBA would.
drop_extension() {
  local attempt out
  for attempt in 1 2 3 4 5; do
    out=$(fault_sql "
      BEGIN;
      LOCK TABLE fleet.ingest_ledger, fleet.sample IN ACCESS EXCLUSIVE MODE;
      CREATE TABLE public.saved_ledger AS SELECT agent_id, batch_seq FROM fleet.ingest_ledger;
      DROP EXTENSION pgfleet;
      COMMIT" 2>&1) && return 0
    case $out in *"deadlock detected"*) fault_log "drop attempt $attempt: deadlock, retried"; sleep 0.5 ;; *) echo "$out"; return 1 ;; esac
  done
  echo "$out"; return 1
}
ok "DROP EXTENSION pgfleet succeeds while the workers ingest" drop_extension
saved=$(fault_sql "SELECT count(*) FROM public.saved_ledger")
fault_log "dropped the extension after $saved of $N batches were stored"
log_at_drop=$(wc -l <"$FW/pg.log")
sleep 3
log_after_3s=$(wc -l <"$FW/pg.log")
sleep 3
ok "the workers wait quietly: no log line in 3 s of waiting" equals "$log_after_3s" "$(wc -l <"$FW/pg.log")"
ok "the drop cost at most a few log lines ($((log_after_3s - log_at_drop)))" test $((log_after_3s - log_at_drop)) -le 30
ok "the workers are still alive (same pids)" equals "$workers_before" "$(fault_worker_pids)"
ok "CREATE EXTENSION pgfleet succeeds" fault_sql "CREATE EXTENSION pgfleet"
ok "the workers resume by themselves" \
  fault_wait 30 "SELECT count(*) = 2 AND bool_and(state = 'running') FROM fleet.worker_status WHERE pid IS NOT NULL"
fault_publish_bg "$FW/p2.log" --agent fe2 --boot b1 --count 500 --series "$S"; p2=$BG_PID
wait "$p1"; r1=$?; wait "$p2"; r2=$?
ok "the producers got every batch acknowledged (exit $r1 $r2)" test "$r1$r2" = 00
ok "fe2 (published after CREATE): 500 batches stored exactly once" fault_wait_ledger 60 fe2 500
ok "fe2: every sample exactly once (count/distinct/checksum)" equals "$(fault_expect 1 500 "$S")" "$(fault_agent_state fe2)"
ok "fe1: every batch in exactly one of the old (dropped) and the new ledger" fault_wait 60 "
  SELECT count(*) = $N AND count(DISTINCT batch_seq) = $N AND sum(batch_seq) = $((N * (N + 1) / 2))
  FROM (SELECT batch_seq FROM public.saved_ledger WHERE agent_id = 'fe1'
        UNION ALL SELECT batch_seq FROM fleet.ingest_ledger WHERE agent_id = 'fe1') b"
ok "fe1: the new tables hold exactly the samples of the new ledger's batches" equals \
  "$(fault_sql "SELECT (count(*) * $S) || '/' || (count(*) * $S) || '/' || coalesce(sum(batch_seq * 1000 * $S + $((S * (S - 1) / 2))), 0) FROM fleet.ingest_ledger WHERE agent_id = 'fe1'")" \
  "$(fault_agent_state fe1)"
ok "no duplicate (series, ts) anywhere" fault_no_global_duplicates
ok "nothing dead-lettered" equals 0 "$(fault_sql "SELECT count(*) FROM fleet.dead_letter")"
ok "the workers never restarted (same pids)" equals "$workers_before" "$(fault_worker_pids)"
ok "no background worker exited with an error" bash -c "! grep -E 'background worker .* exited with exit code' '$FW/pg.log'"
fault_signal_check "no server process was terminated by a signal"
fault_finish

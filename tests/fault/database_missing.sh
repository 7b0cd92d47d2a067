#!/usr/bin/env bash
# tests/fault/database_missing.sh — fault (f): pgfleet.database names a database that does not exist
# yet. The launcher logs that once and waits: no worker starts, nothing restarts in a loop (log lines
# counted over several seconds). CREATE DATABASE then starts the workers, which wait quietly for the
# extension; CREATE EXTENSION in that database starts ingestion: every batch and sample exactly once.
# shellcheck source=tests/fault/lib/fault.bash
. "$(dirname "$0")/lib/fault.bash"
fault_init db-missing
N=500 S=10 DB=fleet_later
fault_nats_start || { not_ok "nats-server starts" "no ports file"; fault_finish; exit 1; }
fault_pg_init "pgfleet.database = '$DB'
pgfleet.ingest_workers = 2" && fault_pg_start || { not_ok "PostgreSQL starts" "$(tail -5 "$FW/pg.log")"; fault_finish; exit 1; }
fault_publish_bg "$FW/p1.log" --agent ff --boot b1 --count "$N" --series "$S"; p1=$BG_PID  # waits in the stream
sleep 6
ok "the launcher says once that the database does not exist yet" \
  equals 1 "$(grep -c "database \"$DB\" does not exist yet" "$FW/pg.log")"
ok "the launcher started once (no restart loop)" equals 1 "$(grep -c 'pgfleet launcher started' "$FW/pg.log")"
ok "no ingest worker runs" equals 0 "$(fault_sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgfleet ingest'")"
lines=$(wc -l <"$FW/pg.log")
sleep 3
ok "nothing was logged in 3 more seconds of waiting" equals "$lines" "$(wc -l <"$FW/pg.log")"
ok "CREATE DATABASE $DB" fault_sql "CREATE DATABASE $DB"
ok "the launcher starts 2 ingest workers, which wait for the extension" \
  fault_wait 30 "SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'pgfleet ingest' AND datname = '$DB'"
sleep 3
ok "each ingest worker said once that it waits for the extension" \
  equals 2 "$(grep -cE "ingest worker [0-9]+ waits for the pgfleet extension in database \"$DB\"" "$FW/pg.log")"
ok "CREATE EXTENSION pgfleet in $DB" fault_sql "CREATE EXTENSION pgfleet" "$DB"
wait "$p1"; r1=$?
ok "the producer got every batch acknowledged (exit $r1)" test "$r1" -eq 0
ok "ingestion starts: all $N batches stored exactly once" fault_wait_ledger 60 ff "$N" "$DB"
ok "every sample exactly once (count/distinct/checksum)" equals "$(fault_expect 1 "$N" "$S")" "$(fault_agent_state ff "$DB")"
ok "the launcher still started once, no worker exited with an error" \
  bash -c "[ \$(grep -c 'pgfleet launcher started' '$FW/pg.log') = 1 ] && ! grep -E 'background worker .* exited with exit code' '$FW/pg.log'"
fault_signal_check "no server process was terminated by a signal"
fault_finish

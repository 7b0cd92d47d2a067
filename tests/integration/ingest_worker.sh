#!/usr/bin/env bash
# tests/integration/ingest_worker.sh — the ingest worker against a real PostgreSQL and a real
# nats-server, fed by tests/tools/fleet_publish with known batches, so every expectation is exact:
#   - a poison message mid-stream lands in fleet.dead_letter; the worker survives it and the rest of
#     the stream is stored exactly once (count and checksum);
#   - republishing the same batches (redelivery, duplicates) changes nothing;
#   - SIGTERM stops the worker within a second; the launcher restarts it and ingestion goes on;
#   - a message that decodes but that the database refuses for its data (SQLSTATE 22003) is
#     dead-lettered as "rejected by database", alone: the rest of its batch is stored;
#   - a batch the database refuses as a whole (a table renamed away) is retried, not dead-lettered,
#     and stored exactly once when the table is back;
#   - a restarted launcher does not start a second worker for a slot;
#   - nats-server killed with SIGKILL and restarted while a producer publishes: every batch once;
#   - series sets named by key: references that arrive before their declaration are stored once it
#     is; a reference to a set never declared goes to dead letter after pgfleet.series_set_wait;
#   - keyframes: batches based on a keyframe are stored with its values added back, also when they
#     arrive first; one based on a keyframe never sent is dead-lettered; retention prunes keyframes;
#   - the maintenance worker's rollups count every raw sample exactly once;
#   - the server log never says "terminated by signal".
# Private directories, a free NATS port, a Unix-socket-only PostgreSQL: runs beside copies of itself.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
bindir=/usr/lib/postgresql/15/bin
publish=$build/tests/fleet_publish
cd / # servers run as postgres, which may not enter the checkout
work=$(mktemp -d /tmp/pgfleet-integration.XXXXXX)
as_postgres=()
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$work"; as_postgres=(runuser -u postgres --); fi
passed=0 failed=0 test_no=0 nats_pid=

# ok NAME COND-COMMAND...: one TAP-style check.
ok() {
  local name=$1; shift; test_no=$((test_no + 1))
  if "$@"; then echo "ok $test_no - $name"; passed=$((passed + 1)); else echo "not ok $test_no - $name"; failed=$((failed + 1)); fi
}
sql() { (cd / && "${as_postgres[@]}" psql -X -qAt -h "$work" -d postgres -c "$1"); }
# wait_for SECONDS SQL-BOOLEAN: polls until the query returns t.
wait_for() {
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do [ "$(sql "$2" 2>/dev/null)" = t ] && return 0; sleep 0.2; done
  return 1
}
start_nats() {
  nats-server -js -a 127.0.0.1 -p "$1" -sd "$work/js" --ports_file_dir "$work" > "$work/nats.log" 2>&1 &
  nats_pid=$!
  disown "$nats_pid"
}
cleanup() {
  [ -n "$nats_pid" ] && kill -9 "$nats_pid" 2>/dev/null
  "${as_postgres[@]}" "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# Recent timestamps (3 h ago): data older than a namespace's retention would be deleted by the
# maintenance worker in the middle of the test.
base_ms=$(( ($(date +%s) - 3 * 3600) * 1000 ))
publish_batches() { "$publish" --url "$nats_url" --base-ms "$base_ms" "$@"; } # a later --base-ms wins
# stored_checksum AGENT: "samples/distinct (series, ts)/sum of values" stored for the agent's instance.
stored_checksum() {
  sql "SELECT count(*) || '/' || count(DISTINCT (series_id, ts)) || '/' || sum(value) FROM fleet.sample s
       JOIN fleet.instance i USING (instance_id) WHERE i.agent_id = '$1'"
}
# dead_lettered AGENT REASON: true once one message of the agent is in dead letter for REASON, after the wait.
dead_lettered() {
  wait_for 40 "SELECT count(*) = 1 FROM fleet.dead_letter WHERE reason = '$2'
               AND detail LIKE '%pgfleet.series_set_wait%' AND subject LIKE '%.$1.%'"
}

make -s -C "$top/tests/tools" BUILD="$build" >/dev/null || { echo "fleet_publish did not build"; echo "integration: 0 passed, 1 failed"; exit 1; }

# NATS on a free port (-1), read back from its ports file.
start_nats -1
for _ in $(seq 50); do ls "$work"/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
nats_port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work"/*.ports | head -1)
nats_url="nats://127.0.0.1:$nats_port"

"${as_postgres[@]}" "$bindir/initdb" -D "$work/pg" -U postgres -A trust >/dev/null
cat >> "$work/pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'pgfleet'
pgfleet.database = 'postgres'
pgfleet.nats_url = '$nats_url'
pgfleet.batch_size = 100
pgfleet.maintenance_interval = 1
track_functions = all
CONF
"${as_postgres[@]}" "$bindir/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
sql "CREATE EXTENSION pgfleet" >/dev/null

# 1. 50 batches of 4 series, batch 20 replaced by garbage.
publish_batches --agent poison-test --boot b1 --count 50 --series 4 --garbage-at 20 >/dev/null
ok "49 good batches stored and the poison message dead-lettered" \
  wait_for 30 "SELECT (SELECT count(*) FROM fleet.ingest_ledger) = 49 AND (SELECT count(*) FROM fleet.dead_letter) = 1"
worker_pid=$(sql "SELECT pid FROM fleet.worker_status WHERE worker = 0")
# sum over seq in 1..50 except 20 of (seq*1000*4 + 0+1+2+3)
ok "every sample exactly once (count and checksum)" \
  test "$(sql "SELECT count(*) || '/' || count(DISTINCT (series_id, ts)) || '/' || sum(value) FROM fleet.sample")" = "196/196/$(( (1275 - 20) * 4000 + 49 * 6 ))"
ok "the dead letter keeps reason, subject, sequence and raw bytes" \
  test "$(sql "SELECT reason || '|' || subject || '|' || stream_seq || '|' || length(raw) FROM fleet.dead_letter")" = "malformed protobuf|fleet.in.default.poison-test.metrics|20|30"
ok "the worker survived the poison message (same pid, running, 1 dead letter)" \
  test "$(sql "SELECT pid = $worker_pid AND state = 'running' AND dead_letters = 1 FROM fleet.worker_status")" = t

# 2. The same 50 batches again, each twice (with and without Msg-Id): the ledger absorbs them.
publish_batches --agent poison-test --boot b1 --count 50 --series 4 --garbage-at 20 --republish >/dev/null
ok "redelivered batches are recognised as duplicates" \
  wait_for 30 "SELECT duplicates >= 49 FROM fleet.worker_status"
# The garbage sent again without a Msg-Id is a new message, so it is a second dead letter.
ok "duplicates changed nothing; the resent garbage is a second dead letter" \
  test "$(sql "SELECT count(*) FROM fleet.sample")/$(sql "SELECT count(*) FROM fleet.dead_letter")" = "196/2"

# 3. SIGTERM: the worker is gone within a second; the launcher starts a new one.
kill -TERM "$worker_pid"
start_ns=$(date +%s%N)
while kill -0 "$worker_pid" 2>/dev/null; do sleep 0.01; [ $(( ($(date +%s%N) - start_ns) / 1000000 )) -gt 3000 ] && break; done
stop_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
echo "# worker stopped ${stop_ms} ms after SIGTERM"
ok "SIGTERM stops the ingest worker within 1 s (${stop_ms} ms)" test "$stop_ms" -lt 1000
ok "the launcher restarts the worker" \
  wait_for 20 "SELECT pid IS NOT NULL AND pid <> $worker_pid AND state = 'running' FROM fleet.worker_status"
publish_batches --agent poison-test --boot b2 --count 10 --series 4 --base-ms $((base_ms + 1000000)) >/dev/null
ok "the restarted worker ingests" wait_for 20 "SELECT count(*) = 59 FROM fleet.ingest_ledger"

# 4. nats-server killed with SIGKILL while a producer publishes, then restarted on the same port.
publish_batches --agent nats-kill --boot b1 --count 300 --series 2 > "$work/producer.log" 2>&1 &
producer=$!
sleep 0.5
kill -9 "$nats_pid"; while kill -0 "$nats_pid" 2>/dev/null; do sleep 0.05; done
sleep 2
start_nats "$nats_port"
wait "$producer"; producer_rc=$?
ok "the producer got every batch acknowledged across the NATS restart" test "$producer_rc" -eq 0
ok "all 300 batches stored exactly once after the NATS restart" \
  wait_for 60 "SELECT count(*) = 300 FROM fleet.ingest_ledger WHERE agent_id = 'nats-kill'"
ok "no duplicate sample anywhere" \
  test "$(sql "SELECT count(*) = count(DISTINCT (series_id, ts)) FROM fleet.sample")" = t
ok "nats-kill checksum exact" \
  test "$(sql "SELECT sum(value) FROM fleet.sample s JOIN fleet.instance i USING (instance_id) WHERE i.agent_id = 'nats-kill'")" = "$(( 45150 * 2000 + 300 ))"

# 5. A message the database refuses (port out of integer range): dead-lettered alone.
publish_batches --agent db-reject --boot b1 --count 5 --series 1 --bad-port-at 3 >/dev/null
ok "a message the database refuses is dead-lettered as rejected by database, the others stored" \
  wait_for 20 "SELECT (SELECT count(*) FROM fleet.ingest_ledger WHERE agent_id = 'db-reject') = 4
               AND (SELECT count(*) FROM fleet.dead_letter WHERE reason = 'rejected by database'
                    AND detail LIKE '%out of range%' AND subject LIKE '%.db-reject.%') = 1"

# 6. The database refuses whole batches (table renamed away): nothing is acked, nothing lost.
sql "ALTER TABLE fleet.sample_block RENAME TO sample_away" >/dev/null
publish_batches --agent outage --boot b1 --count 20 --series 2 >/dev/null
ok "batches failing as a whole are retried, not dead-lettered" \
  wait_for 20 "SELECT errors > 0 AND last_error LIKE 'batch not stored:%' FROM fleet.worker_status"
dead_before=$(sql "SELECT count(*) FROM fleet.dead_letter")
sql "ALTER TABLE fleet.sample_away RENAME TO sample_block" >/dev/null
ok "after the repair every batch is stored exactly once" \
  wait_for 30 "SELECT count(*) = 20 FROM fleet.ingest_ledger WHERE agent_id = 'outage'"
ok "no dead letter came of it" test "$(sql "SELECT count(*) FROM fleet.dead_letter")" = "$dead_before"

# 7. The launcher restarted (SIGTERM) finds its worker still running and starts no second one.
launcher_pid=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgfleet launcher'")
kill -TERM "$launcher_pid"
ok "the launcher is restarted by the postmaster" \
  wait_for 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pgfleet launcher' AND pid <> $launcher_pid"
sleep 2
ok "one ingest worker per slot after the launcher restart" \
  test "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgfleet ingest'")" = 1

# 9. Series sets by key (wire schema_minor 2): references that arrive before the batch declaring their
# set are retried until it is stored; a reference to a set never declared is dead-lettered after
# pgfleet.series_set_wait (5 s here: retries after 1, 2 and 4 s, then dead letter at the 4th delivery).
sql "ALTER SYSTEM SET pgfleet.series_set_wait = 5" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
publish_batches --agent sets-agent --boot b1 --first-seq 2 --count 5 --series 3 --references >/dev/null
publish_batches --agent sets-agent --boot b1 --first-seq 1 --count 1 --series 3 >/dev/null
ok "references published before their declaration are stored once it is (6 batches)" \
  wait_for 30 "SELECT count(*) = 6 FROM fleet.ingest_ledger WHERE agent_id = 'sets-agent'"
# sum over seq in 1..6 of (seq*1000*3 + 0+1+2)
ok "their samples exactly once (count and checksum)" \
  test "$(stored_checksum sets-agent)" = "18/18/$(( 21 * 3000 + 6 * 3 ))"
ok "the references share the declared batch's series set (one set, three series)" \
  test "$(sql "SELECT count(*) || '/' || min(series_count) FROM fleet.series_set ss JOIN fleet.instance i USING (instance_id)
               WHERE i.agent_id = 'sets-agent'")" = "1/3"
publish_batches --agent sets-agent --boot b1 --first-seq 7 --count 1 --series 4 --references >/dev/null
ok "a reference to a set never declared is dead-lettered as unknown series set after the wait" \
  dead_lettered sets-agent 'unknown series set'
ok "nothing of it was stored" \
  test "$(sql "SELECT count(*) FROM fleet.ingest_ledger WHERE agent_id = 'sets-agent'")" = 6

# 10. Keyframes (wire schema_minor 3): batches based on a keyframe that arrive before it are retried
# until it is stored, then stored with their differences added back; a batch based on a keyframe that
# never comes is dead-lettered after the wait; retention keeps a keyframe until a newer one of its set
# is older than the wait plus an hour.
publish_batches --agent kf-agent --boot b1 --first-seq 2 --count 4 --series 3 --references --based-on 1 >/dev/null
publish_batches --agent kf-agent --boot b1 --first-seq 1 --count 1 --series 3 --keyframe-at 1 >/dev/null
ok "batches based on a keyframe published before it are stored once it is (5 batches)" \
  wait_for 30 "SELECT count(*) = 5 FROM fleet.ingest_ledger WHERE agent_id = 'kf-agent'"
# every value is seq * 1000 + k again: sum over seq in 1..5 of (seq*1000*3 + 0+1+2)
ok "their values are the keyframe's plus the differences (count and checksum)" \
  test "$(stored_checksum kf-agent)" = "15/15/$(( 15 * 3000 + 5 * 3 ))"
ok "the keyframe is kept as a base (one row, its values)" \
  test "$(sql "SELECT count(*) || '/' || min(k.vals::text) FROM fleet.metric_keyframe k JOIN fleet.instance i USING (instance_id)
               WHERE i.agent_id = 'kf-agent'")" = "1/{1000,1001,1002}"
publish_batches --agent kf-agent --boot b1 --first-seq 6 --count 1 --series 3 --references --based-on 5 >/dev/null
ok "a batch based on a keyframe never sent (batch 5 was no keyframe) is dead-lettered as unknown keyframe after the wait" \
  dead_lettered kf-agent 'unknown keyframe'
# The same through the fast path (a fetch of several metrics messages without instance facts): a keyframe
# in the middle of a run, the batches after it based on it, then 19 more once it is stored.
publish_batches --agent kf-fast --boot f1 --first-seq 1 --count 1 --series 3 >/dev/null
publish_batches --agent kf-fast --boot f1 --first-seq 2 --count 31 --series 3 --references --keyframe-at 4 --based-on 4 >/dev/null
wait_for 30 "SELECT count(*) = 32 FROM fleet.ingest_ledger WHERE agent_id = 'kf-fast'" >/dev/null
# The next 20 are published while the worker is stopped (SIGSTOP), so that it fetches them together:
# the fast path must add their keyframe back itself. Only the first of them (it carries instance facts)
# should need fleet._metric_keyframes, the per-message path; a fast path that could not apply keyframes
# would send all 20 there.
calls_of() { sql "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE schemaname = 'fleet' AND funcname = '$1'"; }
# flush_function_stats: a worker reports its function statistics at a commit at least 1 s after its
# last report, so an idle worker may hold some back: give it one more batch (another agent) to commit.
flushes=0
flush_function_stats() {
  sleep 1.2
  flushes=$((flushes + 1))
  publish_batches --agent stats-flush --boot "flush-$flushes" --first-seq 1 --count 1 --series 1 >/dev/null
  wait_for 20 "SELECT count(*) = $flushes FROM fleet.ingest_ledger WHERE agent_id = 'stats-flush'" >/dev/null
}
flush_function_stats
per_message_before=$(calls_of _metric_keyframes) fast_before=$(calls_of _ingest_metric_fetch)
fast_pid=$(sql "SELECT pid FROM fleet.worker_status WHERE worker = 0")
kill -STOP "$fast_pid"
publish_batches --agent kf-fast --boot f1 --first-seq 33 --count 20 --series 3 --references --based-on 4 >/dev/null
kill -CONT "$fast_pid"
ok "a run with a keyframe in the middle, and later batches based on it, are stored (52 batches)" \
  wait_for 30 "SELECT count(*) = 52 FROM fleet.ingest_ledger WHERE agent_id = 'kf-fast'"
flush_function_stats
per_message=$(( $(calls_of _metric_keyframes) - per_message_before )) fast=$(( $(calls_of _ingest_metric_fetch) - fast_before ))
ok "the fast path added their keyframe back ($fast fast-path calls; $per_message of 20 batches looked up one by one)" \
  test "$fast" -ge 1 -a "$per_message" -lt 10
ok "with the keyframe's values added back (count and checksum)" \
  test "$(stored_checksum kf-fast)" = "156/156/$(( 1378 * 3000 + 52 * 3 ))"
ok "nothing of it was dead-lettered" \
  test "$(sql "SELECT count(*) FROM fleet.dead_letter WHERE subject LIKE '%.kf-fast.%'")" = 0
publish_batches --agent kf-agent --boot b1 --first-seq 7 --count 1 --series 3 --references --keyframe-at 7 >/dev/null
wait_for 20 "SELECT count(*) = 2 FROM fleet.metric_keyframe WHERE boot_id = 'b1' AND batch_seq IN (1, 7)" >/dev/null
sql "SELECT fleet.apply_retention()" >/dev/null
ok "retention keeps a keyframe while its successor is young" \
  test "$(sql "SELECT string_agg(batch_seq::text, ',' ORDER BY batch_seq) FROM fleet.metric_keyframe WHERE boot_id = 'b1'")" = "1,7"
sql "UPDATE fleet.metric_keyframe SET stored_at = now() - CASE batch_seq WHEN 1 THEN interval '2 hours' ELSE interval '1 hour 10 seconds' END
     WHERE boot_id = 'b1' AND batch_seq IN (1, 7)" >/dev/null
sql "SELECT fleet.apply_retention()" >/dev/null
ok "and drops it once the successor is older than the wait plus an hour" \
  test "$(sql "SELECT string_agg(batch_seq::text, ',' ORDER BY batch_seq) FROM fleet.metric_keyframe WHERE boot_id = 'b1'")" = "7"
sql "ALTER SYSTEM RESET pgfleet.series_set_wait" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null

# 8. The maintenance worker rolled everything up: every raw sample is counted once in the rollups.
ok "the maintenance worker's 1-minute rollups count every raw sample exactly once" \
  wait_for 30 "SELECT NOT EXISTS (SELECT 1 FROM fleet.rollup_pending)
               AND (SELECT sum(count) FROM fleet.rollup_1m) = (SELECT count(*) FROM fleet.sample)
               AND (SELECT sum(count) FROM fleet.rollup_1h) = (SELECT count(*) FROM fleet.sample)"
ok "maintenance rounds are recorded" \
  test "$(sql "SELECT string_agg(task, ',' ORDER BY task) FROM fleet.maintenance_run WHERE last_error IS NULL")" = compaction,retention,rollups

ok "no server process was terminated by a signal" bash -c "! grep -q 'terminated by signal' '$work/pg.log'"
if [ "$failed" -gt 0 ]; then echo "# --- server log ---"; tail -40 "$work/pg.log"; sql "SELECT * FROM fleet.worker_status"; fi
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

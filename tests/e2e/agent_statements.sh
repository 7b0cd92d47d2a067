#!/usr/bin/env bash
# e2e: the agent's statements and activity collectors under a pgbench load.
#
# A private stack (the central instance monitors itself, pg_stat_statements preloaded, agent every 1 s).
# pgbench -i, then checks that none of pgbench's five transaction statements is in pg_stat_statements yet
# (so the agent, whose baseline predates them, must send their whole totals as deltas), then
# pgbench -T 20 -c 2, a pause of 3 intervals, and pgbench -T 3 -c 1 (increments of entries the agent
# already knows). Then, per statement, the sum of the deltas stored in fleet.statement_delta must equal
# pg_stat_statements now: calls exactly, total_exec_time within 1 %. The two sides are independent (the
# centre only sees what the agent sent), so a lost, duplicated or wrongly computed delta fails the check;
# nothing is reset. Also: texts stored once, names filled; a 40 kB statement text arrives cut at 32 KiB;
# 2200 new entries in one poll (more than one envelope holds) all arrive; activity groups of the pgbench
# sessions, no activity of the agent's own backend, fleet.wait_profile answers. Last, somebody else calls
# pg_stat_statements_reset() during a short pgbench run: the agent flags the reset (reset = true) and the
# deltas stored since then add up to pg_stat_statements' new totals. Then the database counters, which
# travel as differences to a keyframe: the newest stored values of a fresh database equal
# pg_stat_database's exactly.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 2 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-statements
echo "# e2e agent_statements (state $PF_STATE)"
PGBENCH=${PGBENCH:-/usr/lib/postgresql/15/bin/pgbench}
# The five statements of pgbench's built-in TPC-B-like script.
readonly PGBENCH_FILTER="(query LIKE 'UPDATE pgbench_accounts SET abalance%' OR query LIKE 'SELECT abalance FROM pgbench_accounts%'
  OR query LIKE 'UPDATE pgbench_tellers SET%' OR query LIKE 'UPDATE pgbench_branches SET%' OR query LIKE 'INSERT INTO pgbench_history%')"

# pgbench_run ARGS...: runs pgbench over the stack's socket as the stack's user.
pgbench_run() { pf_as_owner "$PGBENCH" -h "$PF_STATE/run" -p "$PF_PG_PORT" "$@" postgres; }

if ! pf_stack_up --no-gateway; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts"

IID=""
pf_wait_until 60 pf_sql_true "SELECT count(*) > 0 FROM fleet.statement_delta d JOIN fleet.instances i USING (instance_id) WHERE i.agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || true)
if [ -z "$IID" ] || ! pf_sql_true "SELECT count(*) > 0 FROM fleet.statement_delta WHERE instance_id = $IID"; then
  pf_not_ok "agent's statement deltas appear in SQL within 60 s" "none for agent central (instance '${IID}')"
  pf_crash_check
  pf_finish || exit 1
fi
pf_ok "agent's statement deltas appear in SQL (instance_id $IID)"

if out=$(pgbench_run -i -q 2>&1); then pf_ok "pgbench -i"; else pf_not_ok "pgbench -i" "$(echo "$out" | tail -3 | tr '\n' ' ')"; fi
pf_check "pgbench's transaction statements are not in pg_stat_statements before the run" \
  pf_sql_true "SELECT count(*) = 0 FROM pg_stat_statements WHERE $PGBENCH_FILTER"
sleep 2  # at least one more poll of the agent before the entries appear

if out=$(pgbench_run -T 20 -c 2 2>&1); then
  pf_ok "pgbench -T 20 -c 2 ($(echo "$out" | grep -o 'number of transactions actually processed: [0-9]*' | grep -o '[0-9]*$') transactions)"
else
  pf_not_ok "pgbench -T 20 -c 2" "$(echo "$out" | tail -3 | tr '\n' ' ')"
fi
sleep 3
if out=$(pgbench_run -T 3 -c 1 2>&1); then pf_ok "pgbench -T 3 -c 1 (increments of known entries)"; else pf_not_ok "pgbench -T 3 -c 1" "$(echo "$out" | tail -3 | tr '\n' ' ')"; fi

# compare_sql: one row per pgbench statement: queryid, pgss calls, stored calls, pgss time, stored time.
compare_sql="
  WITH p AS (SELECT queryid, sum(calls) AS calls, sum(total_exec_time) AS t FROM pg_stat_statements
             WHERE $PGBENCH_FILTER AND dbid = (SELECT oid FROM pg_database WHERE datname = 'postgres') GROUP BY 1),
       d AS (SELECT queryid, sum(calls) AS calls, sum(total_exec_time_ms) AS t FROM fleet.statement_delta
             WHERE instance_id = $IID AND queryid IN (SELECT queryid FROM p) GROUP BY 1)
  SELECT p.queryid, p.calls, coalesce(d.calls, 0), p.t, coalesce(d.t, 0) FROM p LEFT JOIN d USING (queryid)"
# calls_match: true when every pgbench statement's stored calls equal pg_stat_statements' calls.
calls_match() {
  pf_sql_true "SELECT count(*) = 5 AND bool_and(pc = dc) FROM ($compare_sql) x(q, pc, dc, pt, dt)"
}
pf_wait_until 20 calls_match || true
rows=$(pf_psql "SELECT q, pc, dc, round(pt::numeric, 3), round(dt::numeric, 3) FROM ($compare_sql) x(q, pc, dc, pt, dt)" 2>&1 || true)
pf_log "queryid | pg_stat_statements calls | stored calls | pgss exec ms | stored exec ms"
pf_indent <<<"$rows"
n=$(grep -c '|' <<<"$rows" || true)
bad_calls=$(awk -F'|' '$2 != $3' <<<"$rows")
bad_time=$(awk -F'|' '{ d = $4 - $5; if (d < 0) d = -d; if ($4 <= 0 || d > 0.01 * $4) print }' <<<"$rows")
if [ "$n" -eq 5 ] && [ -z "$bad_calls" ]; then
  pf_ok "stored calls equal pg_stat_statements exactly for the 5 pgbench statements"
else
  pf_not_ok "stored calls equal pg_stat_statements for the 5 pgbench statements" "$n rows; mismatches: $(tr '\n' ';' <<<"$bad_calls")"
fi
if [ "$n" -eq 5 ] && [ -z "$bad_time" ]; then
  pf_ok "stored total_exec_time within 1 % of pg_stat_statements"
else
  pf_not_ok "stored total_exec_time within 1 % of pg_stat_statements" "$n rows; off: $(tr '\n' ';' <<<"$bad_time")"
fi
pf_check "deltas of known entries were sent in several intervals (not one lump)" \
  pf_sql_true "SELECT min(n) >= 3 FROM (SELECT queryid, count(*) AS n FROM fleet.statement_delta WHERE instance_id = $IID
               AND queryid IN (SELECT queryid FROM pg_stat_statements WHERE $PGBENCH_FILTER) GROUP BY 1) x"
pf_check "no delta of a pgbench statement is marked reset" \
  pf_sql_true "SELECT count(*) = 0 FROM fleet.statement_delta WHERE instance_id = $IID AND reset
               AND queryid IN (SELECT queryid FROM pg_stat_statements WHERE $PGBENCH_FILTER)"
pf_check "each pgbench statement's text is stored once, as pg_stat_statements shows it" \
  pf_sql_true "SELECT count(*) = 5 FROM (SELECT queryid, query FROM pg_stat_statements WHERE $PGBENCH_FILTER) s
               JOIN fleet.statement_text t ON t.instance_id = $IID AND t.queryid = s.queryid AND t.query = s.query"
pf_check "deltas carry database and user names" \
  pf_sql_true "SELECT bool_and(datname = 'postgres' AND username = 'postgres') FROM fleet.statement_delta
               WHERE instance_id = $IID AND queryid IN (SELECT queryid FROM pg_stat_statements WHERE $PGBENCH_FILTER)"

# --- large texts and many entries -------------------------------------------------------------------------
# A statement whose normalized text is about 40 kB (aliases are kept, constants become $n).
long_sql="SELECT $(seq -f '1 AS a_long_column_alias_%05g' 1 1300 | paste -sd,)"
pf_psql "$long_sql" >/dev/null
long_qid=$(pf_psql "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'SELECT \$1 AS a_long_column_alias_00001,%' LIMIT 1")
pf_check "a long statement text arrives cut at 32 KiB, a prefix of pg_stat_statements' text" \
  pf_wait_until 10 pf_sql_true "SELECT octet_length(t.query) BETWEEN 32000 AND 32768 AND starts_with(s.query, t.query)
    AND octet_length(s.query) > 32768 FROM fleet.statement_text t JOIN pg_stat_statements s USING (queryid)
    WHERE t.instance_id = $IID AND t.queryid = ${long_qid:-0}"
# 2200 new entries at once (nested statements, tracked with track = all): two envelopes in one poll.
pf_psql "CREATE TABLE wide1 AS SELECT $(seq -f '1 AS c%g' 1 1100 | paste -sd,);
         CREATE TABLE wide2 AS SELECT $(seq -f '1 AS c%g' 1 1100 | paste -sd,)" >/dev/null
# many_entries SUFFIX REGEX_TAIL: runs 2200 new statements "SELECT cN FROM wideK SUFFIX" right after a poll
# (the agent polls on whole seconds) and waits until their deltas are stored (REGEX_TAIL matches SUFFIX as
# pg_stat_statements normalizes it); true when they all came from one poll, 1 if from two, 2 if missing.
many_entries() {
  sleep "$(python3 -c 'import time; print(round(1.05 - time.time() % 1, 3))')"
  pf_psql "SET pg_stat_statements.track = 'all';
           DO \$\$ BEGIN FOR i IN 1..1100 LOOP EXECUTE format('SELECT c%s FROM wide1 $1', i);
           EXECUTE format('SELECT c%s FROM wide2 $1', i); END LOOP; END \$\$" >/dev/null
  wide_filter="queryid IN (SELECT queryid FROM pg_stat_statements WHERE query ~ '^SELECT c[0-9]+ FROM wide[12]$2\$')"
  pf_wait_until 15 pf_sql_true "SELECT count(DISTINCT queryid) = 2200 FROM fleet.statement_delta WHERE instance_id = $IID AND NOT toplevel AND $wide_filter" || return 2
  pf_sql_true "SELECT count(DISTINCT ts) = 1 FROM fleet.statement_delta WHERE instance_id = $IID AND NOT toplevel AND $wide_filter" || return 1
}
# A second try (other statements) only if a slow machine spread the first over two polls.
rc=0; many_entries "" "" || rc=$?
if [ "$rc" = 1 ]; then pf_log "the 2200 statements spanned two polls; trying once more"; rc=0; many_entries "WHERE c1 = 1" ' WHERE c1 = \$1' || rc=$?; fi
case $rc in
  0) pf_ok "2200 new entries of one poll all arrive" ;;
  1) pf_not_ok "2200 new entries of one poll all arrive" "they arrived, but spread over two polls twice (machine too slow?)" ;;
  *) pf_not_ok "2200 new entries of one poll all arrive" "not all 2200 deltas stored within 15 s" ;;
esac
pf_check "the agent split that poll into 2 batches (at most 2000 deltas each)" \
  grep -qE 'statements: 22[0-9][0-9] changed entries in this interval, sent in 2 batches' "$PF_STATE/log/agent.log"
pf_check "the agent logged no error" bash -c "! grep -E 'ERROR|WARNING' '$PF_STATE/log/agent.log'"

# --- activity -------------------------------------------------------------------------------------------
pf_check "activity: pgbench sessions were sampled (observations with application_name pgbench)" \
  pf_sql_true "SELECT sum(observations) >= 10 FROM fleet.activity WHERE instance_id = $IID AND application_name = 'pgbench'"
pf_check "activity: the agent's own backend is never sampled" \
  pf_sql_true "SELECT count(*) = 0 FROM fleet.activity WHERE instance_id = $IID AND application_name = 'pgfleet-agent'"
pf_check "activity: query ids of pgbench statements are seen in samples" \
  pf_sql_true "SELECT count(DISTINCT queryid) >= 1 FROM fleet.activity WHERE instance_id = $IID
               AND queryid IN (SELECT queryid FROM pg_stat_statements WHERE $PGBENCH_FILTER)"
pf_check "fleet.wait_profile answers for the window" \
  pf_sql_true "SELECT count(*) > 0 FROM fleet.wait_profile($IID, now() - interval '5 minutes', now(), interval '10 seconds')"
# --- a reset by somebody else ---------------------------------------------------------------------------------
reset_epoch=$(date +%s.%N)
sleep 1.2
pf_psql "SELECT pg_stat_statements_reset()" >/dev/null
pgbench_run -T 3 -c 1 >/dev/null 2>&1 || true
acct="(SELECT queryid FROM pg_stat_statements WHERE query LIKE 'UPDATE pgbench_accounts SET abalance%')"
# after_reset_matches: stored calls since the reset equal pg_stat_statements' calls for pgbench_accounts' UPDATE.
after_reset_matches() {
  pf_sql_true "SELECT (SELECT sum(calls) FROM pg_stat_statements WHERE queryid = $acct)
                = (SELECT sum(calls) FROM fleet.statement_delta WHERE instance_id = $IID AND queryid = $acct
                   AND ts > to_timestamp($reset_epoch))"
}
pf_check "after pg_stat_statements_reset() the first delta is flagged reset" \
  pf_wait_until 10 pf_sql_true "SELECT count(*) >= 1 FROM fleet.statement_delta WHERE instance_id = $IID AND reset
                                AND ts > to_timestamp($reset_epoch)"
pf_check "deltas since the reset add up to the new totals" pf_wait_until 10 after_reset_matches
# --- counters as differences to a keyframe (wire schema_minor 3) ----------------------------------------------
# The agent sends its counters as differences to an acknowledged keyframe; the centre adds the keyframe
# back. A fresh database (a new series set: declared, then a keyframe, then based scrapes) gets known
# counts, and the newest stored values must be pg_stat_database's own, exactly.
pf_psql "CREATE DATABASE kfcheck" >/dev/null
pf_as_owner "$PF_PSQL" -X -q -v ON_ERROR_STOP=1 -h "$PF_STATE/run" -p "$PF_PG_PORT" -d kfcheck \
  -c "CREATE TABLE t AS SELECT g FROM generate_series(1, 12345) g" -c "DELETE FROM t WHERE g <= 345" >/dev/null
# stored_equals_pg: the newest stored tup_inserted, tup_deleted and xact_commit of database kfcheck are
# pg_stat_database's, and both the keyframe and later (based) scrapes of that set were stored.
stored_equals_pg() {
  pf_sql_true "WITH s AS (SELECT DISTINCT ON (metric) metric, value FROM unnest(ARRAY['pg.database.tup_inserted',
                 'pg.database.tup_deleted', 'pg.database.xact_commit']) AS metric,
                 LATERAL fleet.series($IID, metric, now() - interval '1 minute', now() + interval '1 minute') x
                 WHERE x.labels->>'datname' = 'kfcheck' ORDER BY metric, x.ts DESC)
               SELECT (SELECT value FROM s WHERE metric = 'pg.database.tup_inserted') = d.tup_inserted
                  AND (SELECT value FROM s WHERE metric = 'pg.database.tup_deleted') = d.tup_deleted
                  AND (SELECT value FROM s WHERE metric = 'pg.database.xact_commit') = d.xact_commit
                  AND d.tup_inserted >= 12345 AND d.tup_deleted >= 345
               FROM pg_stat_database d WHERE d.datname = 'kfcheck'"
}
pf_check "counters sent as differences to a keyframe are stored as pg_stat_database's values" \
  pf_wait_until 30 stored_equals_pg
pf_check "the agent's keyframes are kept at the centre" \
  pf_sql_true "SELECT count(*) > 0 FROM fleet.metric_keyframe WHERE instance_id = $IID"
# The stream itself (bench/agent/stream_stats reads every message back): the agent did send scrapes
# based on keyframes, each after its keyframe, so the checks above were about differences.
stats=$(make -s -C "$PF_REPO/bench/agent" BUILD="$PF_REPO/build" >/dev/null 2>&1 &&
        "$PF_REPO/build/bench/stream_stats" --url "$(pf_psql "SHOW pgfleet.nats_url")" count --from-ms 0 --to-ms 9000000000000 2>&1) || true
based=$(sed -n 's/^metrics_based_scrapes=//p' <<<"$stats")
unresolved=$(sed -n 's/^metrics_unresolved_keyframes=//p' <<<"$stats")
if [ "${based:-0}" -gt 10 ] && [ "$unresolved" = 0 ]; then
  pf_ok "the stream holds $based scrapes based on keyframes, none before its keyframe"
else
  pf_not_ok "the stream holds scrapes based on keyframes" "based=${based:-?} unresolved=${unresolved:-?}: $(tail -3 <<<"$stats" | tr '\n' ' ')"
fi
pf_check "no batch was dead-lettered" pf_sql_true "SELECT count(*) = 0 FROM fleet.dead_letter"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

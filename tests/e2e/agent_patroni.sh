#!/usr/bin/env bash
# e2e: the agent's Patroni collector against real Patroni: a two-node cluster with a switchover, and TLS.
#
# Patroni (Debian's /usr/bin/patroni 3.0.2) runs two nodes, node1 and node2, as the postgres user, each
# bootstrapping or cloning its own PostgreSQL 15 (free ports, data in the test's state directory). DCS:
# Patroni's built-in Raft (pysyncobj), not etcd: Debian's patroni package satisfies its DCS dependency with
# python3-pysyncobj, and its etcd3 module needs python3-etcd (and python3-dnspython), which install-deps
# does not install, so the etcd-server that is installed cannot be used by this Patroni. node1's Raft
# starts alone (a one-voter Raft, so node1 bootstraps without waiting for node2), node2 joins it.
#
# A private central stack (pf_stack_up, no gateway, no stack agent) and an agent of the test's own that
# monitors node1's PostgreSQL (socket, every second) and node1's Patroni REST API (every 2 s, so a poll has
# a budget of 2 s on a busy machine). Checks, in SQL of the
# centre unless said otherwise:
#   --check refuses bad [patroni] tables (no url, not http, user without password, CA file for http, bad
#   timeout, unknown key), says ok for the Patroni url and fails with a clear message for a dead one;
#   TLS against a third Patroni (tls1, alone in cluster pftls, REST API on https with client certificates
#   required, certificates made with openssl): --check ok with ca_file, cert_file and key_file (basic auth
#   set too, which Patroni does not ask for on GET), failed without the client certificate, failed
#   without ca_file (Patroni's certificate cannot be verified);
#   patroni.up = 1; patroni.member.is_leader is 1 for exactly the member /cluster calls leader (node1) and
#   0 for node2; node1's own series (primary 1, replica 0, postgres_running 1, timeline = /patroni's,
#   xlog.location > 0); node2's lag_bytes; patroni.cluster.members = 2; changed-only: patroni.primary was
#   sent once while the metrics collector sent a sample every second;
#   switchover (POST /switchover to node2): a patroni.leader_changed event node1 -> node2, member_changed
#   events of both, and the roles flipped in the series (node1 replica, node2 leader, timeline 2);
#   maintenance mode (PATCH /config pause): patroni.paused = 1 arrives;
#   Patroni on node1 stopped (paused, so its PostgreSQL keeps running): patroni.up = 0 arrives, the
#   collector.unavailable event, agent.patroni.errors grows, exactly one log line for the outage, and the
#   agent keeps sending PostgreSQL and host metrics; Patroni started again: collector.available, up = 1.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 2 min.
set -euo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-patroni
echo "# e2e agent_patroni (state $PF_STATE)"
AGENT_DIR=$PF_STATE/test-agent
PAT=$PF_STATE/patroni
PATRONI=${PATRONI:-/usr/bin/patroni}
AGENT_BIN=${PGFLEET_AGENT:-$(command -v pgfleet-agent || echo "$PF_REPO/build/pgfleet-agent")}
readonly SCOPE=pftest

# patroni_stop_all: kills the Patronis and stops their PostgreSQLs (EXIT trap; also on failure).
patroni_stop_all() {
  local n pid
  for n in 1 2 3; do
    pid=$(cat "$PAT/n$n/patroni.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for n in 1 2 3; do
    if [ -s "$PAT/n$n/data/postmaster.pid" ]; then
      pf_as_owner "$PF_PG_BIN/pg_ctl" -D "$PAT/n$n/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    fi
  done
}
# cleanup: EXIT trap: our agent, Patroni and its PostgreSQLs, then the stack (pf_teardown keeps the status).
cleanup() {
  local rc=$?
  set +e
  pf_agent_stop
  patroni_stop_all
  if [ "$PF_FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
    for f in "$AGENT_DIR/agent.log" "$PAT/n1/patroni.log" "$PAT/n2/patroni.log" "$PAT/n3/patroni.log" "$PAT/tls.log"; do
      [ -f "$f" ] && { pf_log "--- last lines of $f"; tail -n 12 "$f" | pf_indent; }
    done
  fi
  (exit $rc)
  pf_teardown
}
trap cleanup EXIT

# patroni_yml N: writes node N's patroni.yml: node1 and node2 form cluster SCOPE (node1's Raft alone,
# node2's joins it); node 3 is tls1, alone in cluster pftls, its REST API on https with client
# certificates required.
patroni_yml() {
  local n=$1 pg_port api_port raft_port partners="" scope=$SCOPE name=node$1 tls=""
  eval "pg_port=\$PG$n api_port=\$API$n raft_port=\$RAFT$n"
  [ "$n" = 2 ] && partners="  partner_addrs: ['127.0.0.1:$RAFT1']"
  if [ "$n" = 3 ]; then
    scope=pftls name=tls1
    tls=$(printf '  %s\n' "certfile: $TLS/server.crt" "keyfile: $TLS/server.key" "cafile: $TLS/ca.crt" "verify_client: required")
  fi
  pf_as_owner mkdir -p "$PAT/n$n/raft" "$PAT/n$n/sock"
  cat >"$PAT/n$n/patroni.yml" <<YML
scope: $scope
name: $name
log:
  level: INFO
restapi:
  listen: 127.0.0.1:$api_port
  connect_address: 127.0.0.1:$api_port
$tls
raft:
  data_dir: $PAT/n$n/raft
  self_addr: 127.0.0.1:$raft_port
$partners
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 104857600
    postgresql:
      use_pg_rewind: false
      use_slots: true
      parameters:
        shared_preload_libraries: pg_stat_statements
        wal_level: replica
        max_wal_senders: 5
        max_replication_slots: 5
  initdb:
  - encoding: UTF8
  - no-locale
postgresql:
  listen: 127.0.0.1:$pg_port
  connect_address: 127.0.0.1:$pg_port
  data_dir: $PAT/n$n/data
  bin_dir: $PF_PG_BIN
  pgpass: $PAT/n$n/pgpass
  authentication:
    superuser: {username: postgres, password: unused}
    replication: {username: replicator, password: unused}
  parameters:
    unix_socket_directories: '$PAT/n$n/sock'
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
YML
  chmod 0644 "$PAT/n$n/patroni.yml"
}

# patroni_start N: starts node N's Patroni as the stack's user (pid in patroni.pid, log in patroni.log).
patroni_start() {
  local n=$1
  rm -f "$PAT/n$n/patroni.pid"
  pf_as_owner bash -c 'echo $$ >"$1/patroni.pid"; exec "$2" "$1/patroni.yml" >>"$1/patroni.log" 2>&1' _ \
    "$PAT/n$n" "$PATRONI" 2>/dev/null &  # runuser's own "Killed" when we SIGKILL Patroni
  disown $!  # nor a job notice
  pf_wait_until 5 test -s "$PAT/n$n/patroni.pid" || true
}

# make_tls: a CA, a server certificate for 127.0.0.1 and a client certificate in $TLS (openssl comes with
# PostgreSQL's ssl-cert dependency), owned by the stack's user.
make_tls() {
  pf_as_owner mkdir -p "$TLS"
  pf_as_owner bash -c '
    cd "$1" && umask 077 && ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" &&
    openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj "/CN=pgfleet test CA" &&
    openssl req $ec -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
    echo "subjectAltName=IP:127.0.0.1" >server.ext &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt &&
    openssl req $ec -keyout client.key -out client.csr -subj "/CN=pgfleet-agent" &&
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out client.crt &&
    chmod 0644 ca.crt' _ "$TLS" >"$PAT/tls.log" 2>&1
}
# tls_ready: true once tls1 leads (asked over https with the client certificate).
tls_ready() {
  curl -s -m 2 --cacert "$TLS/ca.crt" --cert "$TLS/client.crt" --key "$TLS/client.key" "https://127.0.0.1:$API3/patroni" |
    grep -q '"role": "master"'
}

# api N PATH: GET on node N's REST API (body on stdout).
api() { local port; eval "port=\$API$1"; curl -s -m 3 "http://127.0.0.1:$port$2"; }
# jget EXPR: evaluates the Python expression EXPR on the JSON document on stdin (bound to d).
jget() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
# cluster_leader: the name of the leader in node1's /cluster ("" when none).
cluster_leader() { api 1 /cluster | jget "next((m['name'] for m in d['members'] if m['role'] == 'leader'), '')"; }
# cluster_ready: true once node1 leads and node2 runs as a replica with a known lag.
cluster_ready() {
  api 1 /cluster | jget "sorted((m['name'], m['role'], m['state'], type(m.get('lag')).__name__) for m in d['members'])" |
    grep -qF "[('node1', 'leader', 'running', 'NoneType'), ('node2', 'replica', 'running', 'int')]"
}

# latest METRIC [MEMBER]: the newest value of METRIC (with that member label) stored for the instance.
latest() {
  local filter="true"
  [ -n "${2:-}" ] && filter="labels->>'member' = '$2'"
  pf_psql "SELECT value FROM fleet.series($IID, '$1', now() - interval '1 hour', now() + interval '1 minute')
           WHERE $filter ORDER BY ts DESC LIMIT 1" 2>/dev/null
}
# latest_is METRIC MEMBER VALUE: true when latest METRIC for MEMBER equals VALUE (for pf_wait_until).
latest_is() { [ "$(latest "$1" "$2")" = "$3" ]; }
# event_count SQL_CONDITION: number of events of the instance matching the condition.
event_count() { pf_psql "SELECT count(*) FROM fleet.event WHERE instance_id = $IID AND ($1)" 2>/dev/null || echo 0; }
event_is() { [ "$(event_count "$1")" -ge 1 ]; }

if ! pf_stack_up --no-gateway --no-agent; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"
  pf_finish || exit 1
fi
pf_ok "private stack starts (without its agent)"

# shellcheck disable=SC2034  # PG2, API2, RAFT2, PG3, RAFT3 are read by patroni_yml through eval
read -r PG1 PG2 PG3 API1 API2 API3 RAFT1 RAFT2 RAFT3 < <(pf_free_ports 9)
TLS=$PAT/tls
pf_as_owner mkdir -p "$PAT"
make_tls || pf_not_ok "test certificates made with openssl" "$(tail -3 "$PAT/tls.log" | tr '\n' ' ')"
patroni_yml 1
patroni_yml 2
patroni_yml 3
patroni_start 1
patroni_start 3
if pf_wait_until 60 bash -c "curl -s -m 2 http://127.0.0.1:$API1/patroni | grep -q '\"role\": \"master\"'"; then
  pf_ok "Patroni node1 bootstrapped its PostgreSQL and leads (Raft DCS, REST API on port $API1)"
else
  pf_not_ok "Patroni node1 bootstrapped its PostgreSQL and leads" "$(api 1 /patroni || echo 'no answer')"
  pf_finish || exit 1
fi
patroni_start 2
if pf_wait_until 60 cluster_ready; then
  pf_ok "Patroni node2 cloned node1 and streams as a replica"
else
  pf_not_ok "Patroni node2 cloned node1 and streams as a replica" "$(api 1 /cluster || echo 'no answer')"
  pf_finish || exit 1
fi

# --- the agent -------------------------------------------------------------------------------------------
pf_agent_config "$AGENT_DIR"
sed -i "s|^conninfo = .*|conninfo = \"host=$PAT/n1/sock port=$PG1 dbname=postgres\"|" "$AGENT_DIR/agent.toml"
cp "$AGENT_DIR/agent.toml" "$AGENT_DIR/base.toml"
# bad_patroni NAME LINES EXPECTED: --check refuses the agent's file plus "[patroni]" LINES with EXPECTED.
bad_patroni() {
  local file="$AGENT_DIR/bad-$1.toml" err rc=0
  { cat "$AGENT_DIR/agent.toml"; printf '[patroni]\n%b\n' "$2"; } >"$file"
  "$AGENT_BIN" --check --config "$file" >/dev/null 2>"$file.err" || rc=$?
  err=$(cat "$file.err")
  if [ "$rc" = 1 ] && grep -qF "invalid configuration \"$file\": $3" <<<"$err"; then
    pf_ok "--check refuses [patroni] $1: $3"
  else
    pf_not_ok "--check refuses [patroni] $1" "exit $rc, stderr '$err' (expected '$3')"
  fi
}
bad_patroni "without url" 'enabled = true' 'patroni.url is required'
bad_patroni "with a non-http url" 'url = "ftp://127.0.0.1:8008"' 'patroni.url must be an http:// or https:// url, got "ftp://127.0.0.1:8008"'
bad_patroni "with a user but no password" 'url = "http://127.0.0.1:8008"\nusername = "u"' 'patroni.username and patroni.password must be given together'
bad_patroni "with a CA file for http" 'url = "http://127.0.0.1:8008"\nca_file = "/etc/ssl/ca.pem"' 'patroni.ca_file needs an https:// patroni.url'
bad_patroni "with timeout_seconds 0" 'url = "http://127.0.0.1:8008"\ntimeout_seconds = 0' 'patroni.timeout_seconds must be between 1 and 60'
bad_patroni "with an unknown key" 'url = "http://127.0.0.1:8008"\ntimeout = 3' 'unknown key "patroni.timeout"'
cat >>"$AGENT_DIR/agent.toml" <<TOML
[patroni]
url = "http://127.0.0.1:$API1/"
interval_seconds = 2
TOML
# --check: ok for the real Patroni, a clear failure for a url where nothing listens.
out=$(pf_as_owner "$AGENT_BIN" --check --config "$AGENT_DIR/agent.toml" 2>&1 || true)
if grep -qE "^patroni: ok \(member node1 of cluster \"$SCOPE\", Patroni 3\.[0-9.]+: role master, state running, timeline 1; 2 members, leader node1\)$" <<<"$out"; then
  pf_ok "--check: $(grep '^patroni:' <<<"$out")"
else
  pf_not_ok "--check says ok for the Patroni REST API" "$(tr '\n' ' ' <<<"$out")"
fi
read -r DEAD < <(pf_free_ports 1)
sed "s|^url = \"http://127.0.0.1:$API1/\"|url = \"http://127.0.0.1:$DEAD\"|" "$AGENT_DIR/agent.toml" >"$AGENT_DIR/dead.toml"
chmod 0644 "$AGENT_DIR/dead.toml"
rc=0; out=$(pf_as_owner "$AGENT_BIN" --check --config "$AGENT_DIR/dead.toml" 2>&1) || rc=$?
if [ "$rc" = 1 ] && grep -qE "^patroni: failed: could not read http://127\.0\.0\.1:$DEAD/patroni: .*(onnect|refused)" <<<"$out"; then
  pf_ok "--check fails for a dead url (exit 1): $(grep '^patroni:' <<<"$out")"
else
  pf_not_ok "--check fails for a dead url" "exit $rc: $(tr '\n' ' ' <<<"$out")"
fi

# tls_check NAME LINES: --check with [patroni] url https://127.0.0.1:API3 and LINES; prints its patroni line,
# exit status 1 when it failed.
tls_check() {
  local file="$AGENT_DIR/tls-$1.toml"
  { cat "$AGENT_DIR/base.toml"; printf '[patroni]\nurl = "https://127.0.0.1:%s"\n%b\n' "$API3" "$2"; } >"$file"
  chmod 0644 "$file"
  pf_as_owner "$AGENT_BIN" --check --config "$file" 2>&1 | grep '^patroni:'
}
if pf_wait_until 60 tls_ready; then
  pf_ok "Patroni tls1 leads its own cluster, REST API on https with client certificates required"
  certs="ca_file = \"$TLS/ca.crt\"\ncert_file = \"$TLS/client.crt\"\nkey_file = \"$TLS/client.key\""
  out=$(tls_check full "$certs\nusername = \"pgfleet\"\npassword = \"unused\"" || true)
  if grep -qE '^patroni: ok \(member tls1 of cluster "pftls", Patroni 3\.[0-9.]+: role master, state running, timeline 1; 1 member, leader tls1\)$' <<<"$out"; then
    pf_ok "--check over https with ca_file, cert_file, key_file (and basic auth): $out"
  else
    pf_not_ok "--check over https with ca_file, cert_file, key_file" "'$out'"
  fi
  out=$(tls_check no-client-cert "ca_file = \"$TLS/ca.crt\"" || true)
  if grep -qE "^patroni: failed: could not read https://127\.0\.0\.1:$API3/patroni: " <<<"$out"; then
    pf_ok "--check fails without the client certificate: $out"
  else
    pf_not_ok "--check fails without the client certificate" "'$out'"
  fi
  out=$(tls_check no-ca "cert_file = \"$TLS/client.crt\"\nkey_file = \"$TLS/client.key\"" || true)
  if grep -qE "^patroni: failed: could not read https://127\.0\.0\.1:$API3/patroni: .*certificate" <<<"$out"; then
    pf_ok "--check fails when Patroni's certificate cannot be verified (no ca_file): $out"
  else
    pf_not_ok "--check fails when Patroni's certificate cannot be verified" "'$out'"
  fi
else
  pf_not_ok "Patroni tls1 leads its own cluster, REST API on https" "$(tail -3 "$PAT/n3/patroni.log" 2>/dev/null | tr '\n' ' ')"
fi
pid=$(cat "$PAT/n3/patroni.pid" 2>/dev/null || echo 0)
kill -KILL "$pid" 2>/dev/null || true  # not needed any more (its PostgreSQL is stopped by the EXIT trap)

pf_agent_start "$AGENT_DIR"
[ -n "$PF_AGENT_PID" ] && pf_ok "agent started (pid $PF_AGENT_PID, Patroni every 2 s)" || pf_not_ok "agent started" "no pid file"
pf_wait_until 30 pf_sql_true "SELECT count(*) = 1 FROM fleet.instances WHERE agent_id = 'central'" || true
IID=$(pf_psql "SELECT instance_id FROM fleet.instances WHERE agent_id = 'central'" 2>/dev/null || true)
IID=${IID:-0}
if pf_wait_until 30 latest_is patroni.member.is_leader node2 0; then
  pf_ok "patroni series arrive (instance_id $IID)"
else
  pf_not_ok "patroni series arrive" "no patroni.member.is_leader for node2 in 30 s (instance '$IID')"
fi
sleep 4  # several more polls with nothing changed

leader=$(cluster_leader || true)
got="up=$(latest patroni.up) leader:node1=$(latest patroni.member.is_leader node1) node2=$(latest patroni.member.is_leader node2)"
if [ "$leader" = node1 ] && [ "$got" = "up=1 leader:node1=1 node2=0" ]; then
  pf_ok "patroni.member.is_leader is 1 for the member /cluster calls leader ($leader) only; patroni.up = 1"
else
  pf_not_ok "patroni.member.is_leader matches /cluster's leader" "/cluster leader '$leader'; stored $got"
fi
tl=$(api 1 /patroni | jget "d['timeline']" || true)
got="$(latest patroni.primary node1)/$(latest patroni.replica node1)/$(latest patroni.postgres_running node1)/$(latest patroni.timeline node1)"
if [ "$got" = "1/0/1/$tl" ]; then
  pf_ok "node1's own series: primary 1, replica 0, postgres_running 1, timeline $tl (as /patroni says)"
else
  pf_not_ok "node1's own series: primary/replica/postgres_running/timeline" "stored $got, expected 1/0/1/$tl"
fi
pf_check "node1's patroni.xlog.location is a WAL position (> 0, labels member and scope)" \
  pf_sql_true "SELECT value > 0 AND labels = '{\"member\": \"node1\", \"scope\": \"$SCOPE\"}' FROM fleet.series($IID, 'patroni.xlog.location',
               now() - interval '1 hour', now() + interval '1 minute') ORDER BY ts DESC LIMIT 1"
lag=$(api 1 /cluster | jget "[m for m in d['members'] if m['name'] == 'node2'][0]['lag']" || true)
got=$(latest patroni.member.lag_bytes node2)
if [ -n "$got" ] && awk -v a="$got" -v b="$lag" 'BEGIN { exit !(a >= 0 && (a - b < 1048576 && b - a < 1048576)) }'; then
  pf_ok "node2's patroni.member.lag_bytes arrives ($got bytes; /cluster says $lag now)"
else
  pf_not_ok "node2's patroni.member.lag_bytes arrives" "stored '$got', /cluster '$lag'"
fi
got=$(pf_psql "SELECT value FROM fleet.series($IID, 'patroni.cluster.members', now() - interval '1 hour', now() + interval '1 minute')
               WHERE labels = '{\"scope\": \"$SCOPE\"}' ORDER BY ts DESC LIMIT 1" 2>/dev/null || true)
[ "$got" = 2 ] && pf_ok "patroni.cluster.members = 2 (label scope only)" || pf_not_ok "patroni.cluster.members = 2" "stored '$got'"
counts=$(pf_psql "SELECT (SELECT count(*) FROM fleet.series($IID, 'patroni.primary', now() - interval '1 hour', now() + interval '1 minute'))
                  || '/' || (SELECT count(*) FROM fleet.series($IID, 'host.memory.total_bytes', now() - interval '1 hour', now() + interval '1 minute'))" 2>/dev/null || true)
if [ "${counts%/*}" = 1 ] && [ "${counts#*/}" -ge 5 ]; then
  pf_ok "changed-only: patroni.primary sent once while host metrics were sent ${counts#*/} times"
else
  pf_not_ok "changed-only: patroni.primary sent once while host metrics were sent >= 5 times" "counts $counts"
fi
pf_check "no patroni event and no Patroni error before the switchover" \
  pf_sql_true "SELECT count(*) = 0 FROM fleet.event WHERE instance_id = $IID AND (kind LIKE 'patroni.%' OR attributes->>'collector' = 'patroni')"

# --- switchover ------------------------------------------------------------------------------------------
switch_epoch=$(date +%s.%N)
out=$(curl -s -m 30 -X POST -d '{"leader": "node1", "candidate": "node2"}' "http://127.0.0.1:$API1/switchover" 2>&1 || true)
# switched: true once node2 leads and node1 runs as its replica.
switched() {
  api 1 /cluster | jget "sorted((m['name'], m['role'], m['state']) for m in d['members'])" |
    grep -qF "[('node1', 'replica', 'running'), ('node2', 'leader', 'running')]"
}
if pf_wait_until 30 switched; then
  pf_ok "switchover to node2 (POST /switchover: $out)"
else
  pf_not_ok "switchover to node2" "POST /switchover: '$out'; /cluster: $(api 1 /cluster)"
fi
if pf_wait_until 15 event_is "kind = 'patroni.leader_changed' AND attributes->>'leader' = 'node2'
                             AND attributes->>'previous_leader' = 'node1' AND attributes->>'scope' = '$SCOPE'"; then
  pf_ok "event patroni.leader_changed node1 -> node2: $(pf_psql "SELECT message FROM fleet.event WHERE instance_id = $IID AND kind = 'patroni.leader_changed' LIMIT 1")"
else
  pf_not_ok "event patroni.leader_changed node1 -> node2" "events: $(pf_psql "SELECT string_agg(kind || ' ' || attributes::text, '; ') FROM fleet.event WHERE instance_id = $IID" 2>&1)"
fi
n=$(event_count "kind = 'patroni.leader_changed'")
[ "$n" = 1 ] && pf_ok "exactly one leader_changed event" || pf_not_ok "exactly one leader_changed event" "$n events"
pf_check "member_changed events: node1 leader -> replica and node2 replica -> leader" \
  pf_sql_true "SELECT bool_or(attributes->>'member' = 'node1' AND attributes->>'previous_role' = 'leader')
                 AND bool_or(attributes->>'member' = 'node1' AND attributes->>'role' = 'replica')
                 AND bool_or(attributes->>'member' = 'node2' AND attributes->>'previous_role' = 'replica' AND attributes->>'role' = 'leader')
               FROM fleet.event WHERE instance_id = $IID AND kind = 'patroni.member_changed' AND ts > to_timestamp($switch_epoch) - interval '2 seconds'"
flipped() {
  [ "$(latest patroni.member.is_leader node1)/$(latest patroni.member.is_leader node2)/$(latest patroni.member.is_replica node1)" = 0/1/1 ] &&
    [ "$(latest patroni.primary node1)/$(latest patroni.replica node1)/$(latest patroni.timeline node1)" = 0/1/2 ]
}
if pf_wait_until 15 flipped; then
  pf_ok "roles flipped in the series: node1 replica (primary 0, replica 1, timeline 2), node2 is_leader 1"
else
  pf_not_ok "roles flipped in the series" "is_leader node1/node2 $(latest patroni.member.is_leader node1)/$(latest patroni.member.is_leader node2), node1 primary/replica/timeline $(latest patroni.primary node1)/$(latest patroni.replica node1)/$(latest patroni.timeline node1)"
fi
pf_check "node1 as a replica sends received and replayed WAL positions" \
  pf_wait_until 10 pf_sql_true "SELECT count(DISTINCT metric) = 2 FROM fleet.instance_series($IID) WHERE metric IN
    ('patroni.xlog.received_location', 'patroni.xlog.replayed_location') AND last_ts > to_timestamp($switch_epoch)"

# --- maintenance mode, then Patroni on node1 stopped ----------------------------------------------------
curl -s -m 5 -X PATCH -d '{"pause": true}' "http://127.0.0.1:$API1/config" >/dev/null || true
pf_check "maintenance mode: patroni.paused = 1 arrives" pf_wait_until 15 latest_is patroni.paused node1 1
errors_before=$(latest agent.patroni.errors)
pid=$(cat "$PAT/n1/patroni.pid" 2>/dev/null || echo 0)
log_mark=$(wc -l <"$AGENT_DIR/agent.log")  # the outage's lines are counted from here
stop_epoch=$(date +%s.%N)
kill -TERM "$pid"
pf_wait_until 15 bash -c "! kill -0 $pid" || true
sleep 5  # several failed polls
pf_check "node1's PostgreSQL still runs (Patroni paused)" \
  pf_as_owner "$PF_PSQL" -X -q -A -t -h "$PAT/n1/sock" -p "$PG1" -d postgres -c "SELECT 1"
pf_check "patroni.up = 0 arrives" pf_wait_until 10 latest_is patroni.up "" 0
pf_check "event collector.unavailable (collector patroni) with the reason" \
  pf_wait_until 10 event_is "kind = 'collector.unavailable' AND attributes->>'collector' = 'patroni'
                             AND attributes->>'reason' LIKE 'could not read http://127.0.0.1:$API1/patroni: %'"
errors_check() {
  local now
  now=$(latest agent.patroni.errors)
  awk -v a="${now:-0}" -v b="${errors_before:-0}" 'BEGIN { exit !(a >= b + 2) }'
}
if pf_wait_until 10 errors_check; then
  pf_ok "agent.patroni.errors counts the failed polls ($errors_before -> $(latest agent.patroni.errors))"
else
  pf_not_ok "agent.patroni.errors counts the failed polls" "$errors_before -> $(latest agent.patroni.errors)"
fi
n=$(tail -n +$((log_mark + 1)) "$AGENT_DIR/agent.log" | grep -c "cannot read Patroni's REST API" || true)
[ "$n" = 1 ] && pf_ok "the outage is logged once" || pf_not_ok "the outage is logged once" "$n lines"
pf_check "the agent keeps sending PostgreSQL and host metrics while Patroni is away" \
  pf_wait_until 10 pf_sql_true "SELECT count(*) >= 3 FROM fleet.series($IID, 'pg.database.xact_commit', to_timestamp($stop_epoch) + interval '1 second', now() + interval '1 minute')
                                WHERE labels->>'datname' = 'postgres'
                                AND (SELECT count(*) >= 3 FROM fleet.series($IID, 'host.memory.total_bytes', to_timestamp($stop_epoch) + interval '1 second', now() + interval '1 minute'))"
patroni_start 1
# patroni_back: true once the agent reported the REST API available again and patroni.up = 1 arrived.
patroni_back() { event_is "kind = 'collector.available' AND attributes->>'collector' = 'patroni'" && latest_is patroni.up "" 1; }
pf_check "Patroni back: event collector.available and patroni.up = 1" pf_wait_until 30 patroni_back
n=$(tail -n +$((log_mark + 1)) "$AGENT_DIR/agent.log" | grep -c "Patroni's REST API answers again" || true)
[ "$n" = 1 ] && pf_ok "the end of the outage is logged once" || pf_not_ok "the end of the outage is logged once" "$n lines"
pf_check "agent still runs" kill -0 "$PF_AGENT_PID"
pf_check "the agent logged no ERROR" bash -c "! grep -E ' ERROR: ' '$AGENT_DIR/agent.log'"
pf_crash_check
pf_log "elapsed ${SECONDS} s"
pf_finish

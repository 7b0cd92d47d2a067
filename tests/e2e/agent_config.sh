#!/usr/bin/env bash
# e2e: agent configuration errors and reload on SIGHUP (no stack needed).
#
# 1. pgfleet-agent --check --config BAD exits 1, prints "config: failed" and a one-line reason naming the
#    key, for each of a set of bad files (new keys: spool_max_bytes, activity_sample_seconds,
#    [collectors.<name>]).
# 2. An agent pointed at nothing (PostgreSQL socket and NATS port that do not exist: it keeps running and
#    retrying) reloads its file on SIGHUP: an invalid file is refused with a clear message and the running
#    configuration stays; a valid one is applied (logged with its new values); a change of agent_id is
#    logged as needing a restart. SIGTERM then stops it within 2 s.
# Output: "ok N - ..." / "not ok N - ...: detail" per check, then "N passed, N failed". Budget < 30 s.
set -uo pipefail
# shellcheck source=tests/lib/pgfleet.sh
. "$(dirname "$0")/../lib/pgfleet.sh"

pf_init e2e-agent-config
echo "# e2e agent_config (state $PF_STATE)"
AGENT_BIN=${PGFLEET_AGENT:-$(command -v pgfleet-agent || echo "$PF_REPO/build/pgfleet-agent")}
DIR=$PF_STATE/cfg
mkdir -p "$DIR"
AGENT_PID=""
# cleanup: EXIT trap: stops the agent this test started, then removes the state directory.
cleanup() {
  local rc=$?
  if [ -n "$AGENT_PID" ]; then kill -KILL "$AGENT_PID" 2>/dev/null || true; fi
  set +e; (exit $rc)  # pf_teardown reads the status; set -e must not end the trap here
  pf_teardown
}
trap cleanup EXIT

# base_config [EXTRA_LINES]: a valid file (nothing listens at its addresses) plus EXTRA_LINES at the end.
base_config() {
  cat <<TOML
agent_id = "cfgtest"
interval_seconds = 1
spool_dir = "$DIR/spool"
$1
[postgres]
conninfo = "host=$DIR/nosocket port=1 dbname=postgres"
[nats]
url = "nats://127.0.0.1:1"
TOML
}

# check_bad NAME TOML EXPECTED: --check on TOML must exit 1 with "config: failed" and EXPECTED in stderr.
check_bad() {
  local name=$1 file="$DIR/$1.toml" out err rc
  printf '%s\n' "$2" >"$file"
  out=$("$AGENT_BIN" --check --config "$file" 2>"$DIR/err") && rc=0 || rc=$?
  err=$(cat "$DIR/err")
  if [ "$rc" -eq 1 ] && [ "$out" = "config: failed" ] &&
    grep -qF "pgfleet-agent: invalid configuration \"$file\": $3" <<<"$err"; then
    pf_ok "--check refuses $name: ${err#*: invalid configuration \"$file\": }"
  else
    pf_not_ok "--check refuses $name" "exit $rc, stdout '$out', stderr '$err' (expected '$3')"
  fi
}

check_bad spool_max_bytes_too_small "$(base_config 'spool_max_bytes = 10')" \
  "spool_max_bytes must be between 4096 and"
check_bad activity_sample_seconds_string "$(base_config 'activity_sample_seconds = "1"')" \
  "activity_sample_seconds must be an integer"
check_bad unknown_collector "$(base_config $'[collectors.plans]\nenabled = true')" \
  'unknown collector "collectors.plans" (known: metrics, statements, activity, inventory, objects)'
check_bad collector_interval_zero "$(base_config $'[collectors.statements]\ninterval_seconds = 0')" \
  "collectors.statements.interval_seconds must be between 1 and 3600"
check_bad collector_enabled_text "$(base_config $'[collectors.activity]\nenabled = "yes"')" \
  "collectors.activity.enabled must be true or false"
check_bad collector_unknown_key "$(base_config $'[collectors.metrics]\nintervall = 5')" \
  'unknown key "collectors.metrics.intervall"'
check_bad syntax_error "$(base_config 'spool_max_bytes = = 3')" "syntax error at line"

# --- reload on SIGHUP -------------------------------------------------------------------------------------
base_config $'spool_max_bytes = 1048576\n[collectors.activity]\ninterval_seconds = 5' >"$DIR/agent.toml"
"$AGENT_BIN" --config "$DIR/agent.toml" >>"$DIR/agent.log" 2>&1 &
AGENT_PID=$!
# logged TEXT: true when the agent's log has TEXT.
logged() { grep -qF "$1" "$DIR/agent.log"; }
pf_check "agent starts with nothing to talk to" pf_wait_until 5 logged "started: agent_id=cfgtest"

printf 'agent_id = "cfgtest"\ninterval_seconds = 0\n' >"$DIR/agent.toml"
kill -HUP "$AGENT_PID"
pf_check "an invalid file is refused on SIGHUP and the running configuration stays" \
  pf_wait_until 5 logged "invalid configuration \"$DIR/agent.toml\": interval_seconds must be between 1 and 3600; keeping the previous configuration"
pf_check "the agent still runs after the refused reload" kill -0 "$AGENT_PID"

base_config $'activity_sample_seconds = 2\n[collectors.statements]\nenabled = false' | sed 's/^interval_seconds = 1$/interval_seconds = 3/' >"$DIR/agent.toml"
kill -HUP "$AGENT_PID"
pf_check "a valid file is applied on SIGHUP" \
  pf_wait_until 5 logged "configuration reloaded: interval=3s metrics=on/3s statements=off/3s activity=on/3s sample=2s inventory=on/3s spool_max_bytes=268435456"

base_config "" | sed 's/^agent_id = "cfgtest"$/agent_id = "renamed"/' >"$DIR/agent.toml"
kill -HUP "$AGENT_PID"
pf_check "an agent_id change is logged as needing a restart" \
  pf_wait_until 5 logged 'agent_id changed; that takes effect only after a restart (keeping "cfgtest")'

kill -TERM "$AGENT_PID"
stopped=1
for _ in $(seq 20); do kill -0 "$AGENT_PID" 2>/dev/null || { stopped=0; break; }; sleep 0.1; done
if [ "$stopped" = 0 ]; then pf_ok "SIGTERM stops the agent within 2 s"; AGENT_PID=""; else pf_not_ok "SIGTERM stops the agent within 2 s" "still running"; fi
[ "$PF_FAILED" -eq 0 ] || { pf_log "--- agent log"; tail -n 20 "$DIR/agent.log" | pf_indent; }
pf_finish

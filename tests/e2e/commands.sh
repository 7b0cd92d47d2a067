#!/usr/bin/env bash
# tests/e2e/commands.sh — commands from the centre to a real agent and back, on a private stack:
# fleet.send_command() queues a command in the outbox, ingest worker 0 publishes it on
# fleet.cmd.<agent_id>, the agent runs it and its result comes back through JetStream into
# fleet.command_result; fleet.commands shows the state. ping is answered; an unknown command is
# refused by the agent with a clear message; collect_now makes the agent collect at once.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/pgfleet.sh
. "$here/../lib/pgfleet.sh"

pf_init e2e-commands
# A long interval: a batch arriving within seconds of collect_now can only be its answer.
if ! pf_stack_up --interval 60; then
  pf_not_ok "private stack starts" "pgfleetctl up failed"; pf_finish; exit 1
fi
pf_ok "private stack starts (agent every 60 s)"
# Conditions polled by pf_wait_until (functions, so they run in this shell with pf_psql).
instance_registered() { [ "$(pf_psql "SELECT count(*) FROM fleet.instances")" = 1 ]; }
command_outcome_is() { [ "$(pf_psql "SELECT state || ': ' || coalesce(message, '') || ': ' || coalesce(output ? 'pong', false)
                                      FROM fleet.commands WHERE command_id = '$1'")" = "$2" ]; }
command_state_is() { [ "$(pf_psql "SELECT state FROM fleet.commands WHERE command_id = '$1'")" = "$2" ]; }
new_batch_since() { [ "$(pf_psql "SELECT count(*) > $2 FROM fleet.ingest_ledger WHERE agent_id = '$1'")" = t ]; }

pf_check "the agent has registered" pf_wait_until 90 instance_registered
agent=$(pf_psql "SELECT agent_id FROM fleet.instances LIMIT 1")

ping_id=$(pf_psql "SELECT fleet.send_command('$agent', 'ping')")
pf_check "ping is answered (state done, pong in the output)" \
  pf_wait_until 30 command_outcome_is "$ping_id" "done: : true"

bad_id=$(pf_psql "SELECT fleet.send_command('$agent', 'no_such_command')")
pf_check "an unknown command is refused by the agent, saying so" \
  pf_wait_until 30 command_outcome_is "$bad_id" 'failed: unknown command "no_such_command": false'

batches_before=$(pf_psql "SELECT count(*) FROM fleet.ingest_ledger WHERE agent_id = '$agent'")
now_id=$(pf_psql "SELECT fleet.send_command('$agent', 'collect_now')")
pf_check "collect_now is answered" pf_wait_until 30 command_state_is "$now_id" done
pf_check "collect_now brings a new batch at once (the interval is 60 s)" \
  pf_wait_until 15 new_batch_since "$agent" "$batches_before"

pf_check "each result is stored once" \
  test "$(pf_psql "SELECT count(*) = count(DISTINCT command_id) FROM fleet.command_result")" = t
pf_crash_check
pf_finish

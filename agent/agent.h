// The agent's two entry points after the command line is parsed: the collection loop and --check.
#pragma once

#include "agent/config.h"

#include <string>

namespace pgfleet::agent {

// The agent's version, reported by --version and by the ping command.
constexpr const char *kAgentVersion = "0.2.0";

// Installs SIGTERM/SIGINT/SIGHUP handlers and the self-pipe they write to; false with *error on failure.
bool install_signal_handlers(std::string *error);

// Runs the agent in the foreground until SIGTERM/SIGINT; with once=true runs every enabled collector once,
// publishes (plus anything already spooled) and returns. config_path is re-read on SIGHUP. Returns the
// process exit code: 0, or 1 when the spool cannot be opened or, with once, when batches are left
// unpublished.
int run_agent(const AgentConfig &config, const std::string &config_path, bool once);

// Checks (read-only) the spool directory, PostgreSQL, Patroni's REST API (when [patroni] is configured) and
// NATS, printing one line per check on stdout; returns 0
// when everything passed, 1 otherwise. The configuration file itself was validated by the caller.
int run_check(const AgentConfig &config);

}  // namespace pgfleet::agent

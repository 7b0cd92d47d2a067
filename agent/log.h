// Logging for pgfleet-agent: one line per message on stderr, written with a single write(2) so that
// lines from the main thread and from nats.c's internal threads (connection callbacks) never interleave.
//
// Line format:  2024-05-01T12:00:00.123Z pgfleet-agent[1234]: LOG:  message
// Levels follow PostgreSQL's vocabulary (LOG, WARNING, ERROR) because the readers are DBAs.
#pragma once

namespace pgfleet::agent {

enum class LogLevel { debug, log, warning, error };

// Writes one formatted line at the given level; safe to call from any thread (not from a signal handler).
void log_message(LogLevel level, const char *format, ...) __attribute__((format(printf, 2, 3)));

// Enables or disables debug lines (off by default).
void set_debug_logging(bool enabled);

}  // namespace pgfleet::agent

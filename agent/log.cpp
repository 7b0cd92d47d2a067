// See log.h. The line is assembled in a stack buffer and emitted with one write(2): POSIX makes a single
// write to a pipe/tty/file of this size atomic enough for log readers, and it avoids stdio locking.
#include "agent/log.h"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>

namespace pgfleet::agent {

namespace {
std::atomic<bool> g_debug_enabled{false};

// Returns the text shown for a level.
const char *level_tag(LogLevel level) {
    switch (level) {
    case LogLevel::debug: return "DEBUG";
    case LogLevel::log: return "LOG";
    case LogLevel::warning: return "WARNING";
    case LogLevel::error: return "ERROR";
    }
    return "LOG";
}
}  // namespace

void set_debug_logging(bool enabled) { g_debug_enabled.store(enabled, std::memory_order_relaxed); }

void log_message(LogLevel level, const char *format, ...) {
    if (level == LogLevel::debug && !g_debug_enabled.load(std::memory_order_relaxed)) return;

    char line[2048];
    struct timeval now;
    gettimeofday(&now, nullptr);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);
    int len = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ pgfleet-agent[%d]: %s:  ",
                       utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                       static_cast<int>(now.tv_usec / 1000), static_cast<int>(getpid()), level_tag(level));
    va_list args;
    va_start(args, format);
    int body = vsnprintf(line + len, sizeof line - len - 1, format, args);
    va_end(args);
    if (body < 0) body = 0;
    len += body;
    if (len > static_cast<int>(sizeof line) - 2) len = sizeof line - 2;  // truncated message
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;  // nothing sensible to do when stderr is gone
}

}  // namespace pgfleet::agent

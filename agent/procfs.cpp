// See procfs.h. /proc files are read with open/read into a reused buffer: stdio and iostreams would add
// buffering and allocation for files that are a few kilobytes and read once per interval.
#include "agent/procfs.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace pgfleet::agent {

const char *const kCpuModeNames[kCpuModeCount] = {"user", "nice", "system", "idle",
                                                  "iowait", "irq", "softirq", "steal"};

namespace {

// Returns the line of text that starts with prefix (without the newline), or an empty view.
std::string_view find_line(std::string_view text, std::string_view prefix) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        if (line.substr(0, prefix.size()) == prefix) return line;
        pos = end + 1;
    }
    return {};
}

// Parses the next unsigned decimal in line starting at *pos (skipping blanks); false when there is none.
bool next_unsigned(std::string_view line, size_t *pos, uint64_t *out) {
    size_t i = *pos;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i >= line.size() || line[i] < '0' || line[i] > '9') return false;
    uint64_t value = 0;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') value = value * 10 + (line[i++] - '0');
    *pos = i;
    *out = value;
    return true;
}

// Parses "Key:   123 kB" for the given key (including the colon) into bytes.
bool meminfo_field(std::string_view text, std::string_view key_with_colon, uint64_t *bytes) {
    std::string_view line = find_line(text, key_with_colon);
    if (line.empty()) return false;
    size_t pos = key_with_colon.size();
    uint64_t kilobytes;
    if (!next_unsigned(line, &pos, &kilobytes)) return false;
    *bytes = kilobytes * 1024;
    return true;
}

}  // namespace

bool parse_proc_stat(std::string_view text, CpuTimes *out) {
    std::string_view line = find_line(text, "cpu ");
    if (line.empty()) return false;
    size_t pos = 4;
    CpuTimes times;
    int parsed = 0;
    for (; parsed < kCpuModeCount; parsed++)
        if (!next_unsigned(line, &pos, &times.jiffies[parsed])) break;
    if (parsed < 4) return false;  // user nice system idle exist on every kernel
    *out = times;
    return true;
}

bool parse_meminfo(std::string_view text, MemInfo *out) {
    MemInfo info;
    if (!meminfo_field(text, "MemTotal:", &info.total_bytes)) return false;
    if (!meminfo_field(text, "MemAvailable:", &info.available_bytes)) return false;
    *out = info;
    return true;
}

bool cpu_utilization_percent(const CpuTimes &previous, const CpuTimes &current, double *out) {
    // Signed deltas: iowait is known to step backwards on some kernels; the total must still grow.
    int64_t total = 0;
    int64_t idle = 0;
    for (int mode = 0; mode < kCpuModeCount; mode++) {
        int64_t delta = static_cast<int64_t>(current.jiffies[mode] - previous.jiffies[mode]);
        total += delta;
        if (mode == 3 || mode == 4) idle += delta;  // idle, iowait
    }
    if (total <= 0) return false;
    double busy = 100.0 * static_cast<double>(total - idle) / static_cast<double>(total);
    *out = busy < 0.0 ? 0.0 : (busy > 100.0 ? 100.0 : busy);
    return true;
}

bool read_proc_file(const char *path, std::string *buffer) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    if (buffer->capacity() < 4096) buffer->reserve(4096);
    buffer->resize(buffer->capacity());
    size_t used = 0;
    for (;;) {
        if (used == buffer->size()) buffer->resize(buffer->size() * 2);
        ssize_t n = read(fd, &(*buffer)[used], buffer->size() - used);
        if (n < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return false;
        }
        if (n == 0) break;
        used += static_cast<size_t>(n);
    }
    close(fd);
    buffer->resize(used);
    return true;
}

}  // namespace pgfleet::agent

// See procfs.h. /proc files are read with open/read into a reused buffer: stdio and iostreams would add
// buffering and allocation for files that are a few kilobytes and read once per interval.
#include "agent/procfs.h"

#include <cerrno>
#include <cstdlib>
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
    if (!meminfo_field(text, "SwapTotal:", &info.swap_total_bytes) ||
        !meminfo_field(text, "SwapFree:", &info.swap_free_bytes))
        info.swap_total_bytes = info.swap_free_bytes = 0;
    *out = info;
    return true;
}

namespace {

// Returns the next blank-separated token of line starting at *pos, advancing *pos.
std::string_view next_token(std::string_view line, size_t *pos) {
    size_t i = *pos;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') i++;
    *pos = i;
    return line.substr(start, i - start);
}

// Calls fn(line) for every line of text.
template <typename Fn>
void for_each_line(std::string_view text, Fn fn) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        fn(text.substr(pos, end - pos));
        pos = end + 1;
    }
}

}  // namespace

bool parse_loadavg(std::string_view text, double out[3]) {
    size_t pos = 0;
    for (int i = 0; i < 3; i++) {
        std::string_view token = next_token(text, &pos);
        if (token.empty()) return false;
        std::string copy(token);
        char *end = nullptr;
        out[i] = strtod(copy.c_str(), &end);
        if (end == copy.c_str()) return false;
    }
    return true;
}

bool parse_diskstats(std::string_view text, std::vector<DiskStats> *out, bool (*keep)(std::string_view device)) {
    size_t used = 0;
    bool any_line = false;
    for_each_line(text, [&](std::string_view line) {
        size_t pos = 0;
        uint64_t major, minor;
        if (!next_unsigned(line, &pos, &major) || !next_unsigned(line, &pos, &minor)) return;
        std::string_view device = next_token(line, &pos);
        uint64_t f[10];
        for (uint64_t &field : f)
            if (!next_unsigned(line, &pos, &field)) return;
        any_line = true;
        if (device.empty() || device.substr(0, 4) == "loop" || device.substr(0, 3) == "ram") return;
        if (keep != nullptr && !keep(device)) return;
        if (f[0] == 0 && f[4] == 0) return;  // never did any I/O
        if (used == out->size()) out->emplace_back();
        DiskStats &disk = (*out)[used++];
        disk.device.assign(device);
        disk.reads = f[0];
        disk.read_bytes = f[2] * 512;
        disk.writes = f[4];
        disk.write_bytes = f[6] * 512;
        disk.io_ms = f[9];
    });
    out->resize(used);
    return any_line;
}

bool parse_net_dev(std::string_view text, std::vector<NetStats> *out) {
    size_t used = 0;
    bool any_line = false;
    for_each_line(text, [&](std::string_view line) {
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) return;  // the two header lines
        std::string_view name = line.substr(0, colon);
        while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
        uint64_t f[12];
        size_t pos = colon + 1;
        for (uint64_t &field : f)
            if (!next_unsigned(line, &pos, &field)) return;
        any_line = true;
        if (name == "lo") return;
        if (used == out->size()) out->emplace_back();
        NetStats &net = (*out)[used++];
        net.interface.assign(name);
        net.receive_bytes = f[0];
        net.receive_packets = f[1];
        net.receive_errors = f[2];
        net.receive_drops = f[3];
        net.transmit_bytes = f[8];
        net.transmit_packets = f[9];
        net.transmit_errors = f[10];
        net.transmit_drops = f[11];
    });
    out->resize(used);
    return any_line;
}

bool parse_statm_rss(std::string_view text, uint64_t page_size, uint64_t *rss_bytes) {
    size_t pos = 0;
    uint64_t size, resident;
    if (!next_unsigned(text, &pos, &size) || !next_unsigned(text, &pos, &resident)) return false;
    *rss_bytes = resident * page_size;
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

// Host metrics from /proc: CPU time by mode (/proc/stat) and memory (/proc/meminfo).
//
// Parsers take the file text as a string so they can be tested with sample contents; read_proc_file()
// reads a /proc file into a caller-owned buffer that is reused from one interval to the next (no allocation
// once the buffer has grown to the file size).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgfleet::agent {

// CPU modes in /proc/stat column order; also the values of the "mode" label of host.cpu.seconds.
constexpr int kCpuModeCount = 8;
extern const char *const kCpuModeNames[kCpuModeCount];  // user nice system idle iowait irq softirq steal

// Aggregate jiffies of all CPUs (the "cpu " line). guest/guest_nice are already included in user/nice.
struct CpuTimes {
    uint64_t jiffies[kCpuModeCount] = {};
};

struct MemInfo {
    uint64_t total_bytes = 0;
    uint64_t available_bytes = 0;
};

// Parses the aggregate "cpu " line of /proc/stat; false when it is missing or malformed. Kernels older
// than 2.6.11 lack the steal column; missing trailing columns count as 0.
bool parse_proc_stat(std::string_view text, CpuTimes *out);

// Parses MemTotal and MemAvailable (kB) of /proc/meminfo into bytes; false when either is missing.
bool parse_meminfo(std::string_view text, MemInfo *out);

// Busy share of all CPUs between two readings, in percent (0..100): 100 * (1 - (idle + iowait) / total).
// False when no time elapsed (or the counters went backwards as a whole), so no value should be sent.
bool cpu_utilization_percent(const CpuTimes &previous, const CpuTimes &current, double *out);

// Reads a whole (small, /proc) file into *buffer, reusing its capacity; false with errno set on failure.
bool read_proc_file(const char *path, std::string *buffer);

}  // namespace pgfleet::agent

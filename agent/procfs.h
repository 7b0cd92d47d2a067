// Host metrics from /proc: CPU time by mode (/proc/stat), memory and swap (/proc/meminfo), load
// (/proc/loadavg), disk I/O per device (/proc/diskstats), network per interface (/proc/net/dev), and the
// agent's own resident memory (/proc/self/statm).
//
// Parsers take the file text as a string so they can be tested with sample contents; read_proc_file()
// reads a /proc file into a caller-owned buffer that is reused from one interval to the next (no allocation
// once the buffer has grown to the file size).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
    uint64_t swap_total_bytes = 0;  // 0 when the kernel shows no swap lines
    uint64_t swap_free_bytes = 0;
};

// One line of /proc/diskstats (counters since boot).
struct DiskStats {
    std::string device;
    uint64_t reads = 0;         // reads completed
    uint64_t read_bytes = 0;    // sectors read * 512
    uint64_t writes = 0;        // writes completed
    uint64_t write_bytes = 0;   // sectors written * 512
    uint64_t io_ms = 0;         // milliseconds spent doing I/O
};

// One interface of /proc/net/dev (counters since boot).
struct NetStats {
    std::string interface;
    uint64_t receive_bytes = 0, receive_packets = 0, receive_errors = 0, receive_drops = 0;
    uint64_t transmit_bytes = 0, transmit_packets = 0, transmit_errors = 0, transmit_drops = 0;
};

// Parses the aggregate "cpu " line of /proc/stat; false when it is missing or malformed. Kernels older
// than 2.6.11 lack the steal column; missing trailing columns count as 0.
bool parse_proc_stat(std::string_view text, CpuTimes *out);

// Parses MemTotal and MemAvailable (kB) of /proc/meminfo into bytes; false when either is missing.
bool parse_meminfo(std::string_view text, MemInfo *out);

// Parses the three load averages of /proc/loadavg; false when malformed.
bool parse_loadavg(std::string_view text, double out[3]);

// Parses /proc/diskstats into *out (reused), skipping loop and ram devices and devices with no I/O at all.
// Partitions are kept only when keep(device) says so (the caller keeps whole disks: /sys/block/<name>).
bool parse_diskstats(std::string_view text, std::vector<DiskStats> *out, bool (*keep)(std::string_view device));

// Parses /proc/net/dev into *out (reused), skipping the loopback interface "lo".
bool parse_net_dev(std::string_view text, std::vector<NetStats> *out);

// Resident set size in bytes from /proc/self/statm text (second field, pages); false when malformed.
bool parse_statm_rss(std::string_view text, uint64_t page_size, uint64_t *rss_bytes);

// Busy share of all CPUs between two readings, in percent (0..100): 100 * (1 - (idle + iowait) / total).
// False when no time elapsed (or the counters went backwards as a whole), so no value should be sent.
bool cpu_utilization_percent(const CpuTimes &previous, const CpuTimes &current, double *out);

// Reads a whole (small, /proc) file into *buffer, reusing its capacity; false with errno set on failure.
bool read_proc_file(const char *path, std::string *buffer);

}  // namespace pgfleet::agent

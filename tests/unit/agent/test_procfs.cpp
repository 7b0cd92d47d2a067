// /proc parsers fed with sample file contents, and the CPU utilization arithmetic.
#include "agent/procfs.h"

#include <gtest/gtest.h>

using namespace pgfleet::agent;

namespace {

const char *const kProcStat =
    "cpu  7436 12 2418 155600 543 0 80 11 0 0\n"
    "cpu0 3700 6 1200 77800 270 0 40 5 0 0\n"
    "cpu1 3736 6 1218 77800 273 0 40 6 0 0\n"
    "intr 1234 0 0\n"
    "ctxt 99999\n"
    "btime 1700000000\n";

const char *const kMeminfo =
    "MemTotal:       24684084 kB\n"
    "MemFree:        23000000 kB\n"
    "MemAvailable:   24221644 kB\n"
    "Buffers:          100000 kB\n";

}  // namespace

TEST(ProcStat, ParsesAggregateLineNotPerCpu) {
    CpuTimes times;
    ASSERT_TRUE(parse_proc_stat(kProcStat, &times));
    const uint64_t expected[kCpuModeCount] = {7436, 12, 2418, 155600, 543, 0, 80, 11};
    for (int mode = 0; mode < kCpuModeCount; mode++) EXPECT_EQ(times.jiffies[mode], expected[mode]) << mode;
}

TEST(ProcStat, ModeNamesInColumnOrder) {
    const char *expected[] = {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"};
    for (int mode = 0; mode < kCpuModeCount; mode++) EXPECT_STREQ(kCpuModeNames[mode], expected[mode]);
}

TEST(ProcStat, OldKernelWithoutStealColumn) {
    CpuTimes times;
    ASSERT_TRUE(parse_proc_stat("cpu  1 2 3 4 5 6 7\n", &times));
    EXPECT_EQ(times.jiffies[6], 7u);
    EXPECT_EQ(times.jiffies[7], 0u);
}

TEST(ProcStat, RejectsMissingOrMalformed) {
    CpuTimes times;
    EXPECT_FALSE(parse_proc_stat("cpu0 1 2 3 4\nintr 5\n", &times));
    EXPECT_FALSE(parse_proc_stat("cpu  1 2 x\n", &times));
    EXPECT_FALSE(parse_proc_stat("", &times));
}

TEST(Meminfo, ParsesTotalAndAvailableInBytes) {
    MemInfo info;
    ASSERT_TRUE(parse_meminfo(kMeminfo, &info));
    EXPECT_EQ(info.total_bytes, 24684084ull * 1024);
    EXPECT_EQ(info.available_bytes, 24221644ull * 1024);
}

TEST(Meminfo, MissingAvailableIsAnError) {
    MemInfo info;
    EXPECT_FALSE(parse_meminfo("MemTotal:       1000 kB\nMemFree:  10 kB\n", &info));
    EXPECT_FALSE(parse_meminfo("", &info));
}

TEST(CpuUtilization, BusyShareOfElapsedTime) {
    CpuTimes before;
    CpuTimes after;
    ASSERT_TRUE(parse_proc_stat("cpu  100 0 100 1000 50 0 0 0\n", &before));
    // +60 user, +20 system, +100 idle, +20 iowait: busy 80 of 200.
    ASSERT_TRUE(parse_proc_stat("cpu  160 0 120 1100 70 0 0 0\n", &after));
    double percent = -1;
    ASSERT_TRUE(cpu_utilization_percent(before, after, &percent));
    EXPECT_DOUBLE_EQ(percent, 40.0);
}

TEST(CpuUtilization, NoElapsedTimeGivesNoValue) {
    CpuTimes same;
    ASSERT_TRUE(parse_proc_stat("cpu  1 2 3 4 5 6 7 8\n", &same));
    double percent = -1;
    EXPECT_FALSE(cpu_utilization_percent(same, same, &percent));
}

TEST(CpuUtilization, IowaitSteppingBackIsClamped) {
    CpuTimes before;
    CpuTimes after;
    ASSERT_TRUE(parse_proc_stat("cpu  100 0 0 1000 50 0 0 0\n", &before));
    ASSERT_TRUE(parse_proc_stat("cpu  100 0 0 1100 40 0 0 0\n", &after));  // idle +100, iowait -10
    double percent = -1;
    ASSERT_TRUE(cpu_utilization_percent(before, after, &percent));
    EXPECT_GE(percent, 0.0);
    EXPECT_LE(percent, 100.0);
}

TEST(ReadProcFile, ReadsRealProcFilesIntoReusedBuffer) {
    std::string buffer;
    ASSERT_TRUE(read_proc_file("/proc/stat", &buffer));
    CpuTimes times;
    EXPECT_TRUE(parse_proc_stat(buffer, &times));
    ASSERT_TRUE(read_proc_file("/proc/meminfo", &buffer));
    MemInfo info;
    EXPECT_TRUE(parse_meminfo(buffer, &info));
    EXPECT_GT(info.total_bytes, info.available_bytes);
    EXPECT_FALSE(read_proc_file("/proc/does-not-exist", &buffer));
}

TEST(Meminfo, SwapIsOptional) {
    MemInfo info;
    ASSERT_TRUE(pgfleet::agent::parse_meminfo("MemTotal: 100 kB\nMemAvailable: 40 kB\nSwapTotal: 8 kB\nSwapFree: 2 kB\n",
                                              &info));
    EXPECT_EQ(info.swap_total_bytes, 8u * 1024);
    EXPECT_EQ(info.swap_free_bytes, 2u * 1024);
    ASSERT_TRUE(pgfleet::agent::parse_meminfo("MemTotal: 100 kB\nMemAvailable: 40 kB\n", &info));
    EXPECT_EQ(info.swap_total_bytes, 0u);
}

TEST(Loadavg, ParsesThreeAverages) {
    double load[3];
    ASSERT_TRUE(pgfleet::agent::parse_loadavg("0.52 1.25 2.00 3/456 7890\n", load));
    EXPECT_DOUBLE_EQ(load[0], 0.52);
    EXPECT_DOUBLE_EQ(load[1], 1.25);
    EXPECT_DOUBLE_EQ(load[2], 2.0);
    EXPECT_FALSE(pgfleet::agent::parse_loadavg("0.5 x", load));
    EXPECT_FALSE(pgfleet::agent::parse_loadavg("", load));
}

namespace {
// Keeps whole disks in the diskstats test: names without a trailing digit, plus nvme0n1.
bool fake_whole_disk(std::string_view device) { return device == "sda" || device == "nvme0n1" || device == "vdb"; }
}  // namespace

TEST(Diskstats, WholeDisksWithIoInBytes) {
    const char *text =
        "   7       0 loop0 10 0 20 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        "   8       0 sda 100 5 2000 30 50 7 800 40 0 123 70 0 0 0 0 0 0\n"
        "   8       1 sda1 90 5 1800 30 50 7 800 40 0 120 70 0 0 0 0 0 0\n"
        " 259       0 nvme0n1 1 0 8 0 2 0 16 0 0 9 0\n"
        " 252      16 vdb 0 0 0 0 0 0 0 0 0 0 0\n";
    std::vector<pgfleet::agent::DiskStats> disks;
    ASSERT_TRUE(pgfleet::agent::parse_diskstats(text, &disks, fake_whole_disk));
    ASSERT_EQ(disks.size(), 2u);  // loop0 skipped, sda1 a partition, vdb never did I/O
    EXPECT_EQ(disks[0].device, "sda");
    EXPECT_EQ(disks[0].reads, 100u);
    EXPECT_EQ(disks[0].read_bytes, 2000u * 512);
    EXPECT_EQ(disks[0].writes, 50u);
    EXPECT_EQ(disks[0].write_bytes, 800u * 512);
    EXPECT_EQ(disks[0].io_ms, 123u);
    EXPECT_EQ(disks[1].device, "nvme0n1");
    // Reused vector shrinks.
    ASSERT_TRUE(pgfleet::agent::parse_diskstats("   8       0 sda 1 0 2 0 0 0 0 0 0 0 0\n", &disks, fake_whole_disk));
    EXPECT_EQ(disks.size(), 1u);
    EXPECT_FALSE(pgfleet::agent::parse_diskstats("garbage\n", &disks, fake_whole_disk));
}

TEST(NetDev, InterfacesWithoutLoopback) {
    const char *text =
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
        "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n"
        "  eth0: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0\n";
    std::vector<pgfleet::agent::NetStats> nets;
    ASSERT_TRUE(pgfleet::agent::parse_net_dev(text, &nets));
    ASSERT_EQ(nets.size(), 1u);
    EXPECT_EQ(nets[0].interface, "eth0");
    EXPECT_EQ(nets[0].receive_bytes, 5000u);
    EXPECT_EQ(nets[0].receive_packets, 50u);
    EXPECT_EQ(nets[0].receive_errors, 1u);
    EXPECT_EQ(nets[0].receive_drops, 2u);
    EXPECT_EQ(nets[0].transmit_bytes, 7000u);
    EXPECT_EQ(nets[0].transmit_packets, 70u);
    EXPECT_EQ(nets[0].transmit_errors, 3u);
    EXPECT_EQ(nets[0].transmit_drops, 4u);
}

TEST(Statm, ResidentPagesToBytes) {
    uint64_t rss = 0;
    ASSERT_TRUE(pgfleet::agent::parse_statm_rss("2000 300 100 10 0 500 0\n", 4096, &rss));
    EXPECT_EQ(rss, 300u * 4096);
    EXPECT_FALSE(pgfleet::agent::parse_statm_rss("2000", 4096, &rss));
}

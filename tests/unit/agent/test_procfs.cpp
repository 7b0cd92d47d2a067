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

// Statement deltas: baseline, new entries, increments, unchanged entries, resets/deallocation, a
// pg_stat_statements_info.stats_reset change, and the per-boot text bookkeeping.
#include "agent/statements.h"

#include <gtest/gtest.h>

#include <vector>

using pgfleet::agent::StatementChange;
using pgfleet::agent::StatementCounters;
using pgfleet::agent::StatementKey;
using pgfleet::agent::StatementRow;
using pgfleet::agent::StatementTracker;

namespace {

// A row with the given key parts and counters derived from calls (time = 2 ms per call, rows = calls).
StatementRow row(int64_t queryid, int64_t calls, uint32_t dbid = 5, uint32_t userid = 10, bool toplevel = true) {
    StatementRow r;
    r.key = {dbid, userid, queryid, toplevel};
    r.counters.calls = calls;
    r.counters.total_exec_time_ms = 2.0 * calls;
    r.counters.rows = calls;
    r.counters.wal_bytes = 100u * static_cast<uint64_t>(calls);
    return r;
}

// The change for queryid in changes, or nullptr.
const StatementChange *find(const std::vector<StatementChange> &changes, int64_t queryid, bool toplevel = true) {
    for (const StatementChange &c : changes)
        if (c.key.queryid == queryid && c.key.toplevel == toplevel) return &c;
    return nullptr;
}

}  // namespace

TEST(StatementTracker, FirstPollIsBaselineOnly) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    EXPECT_FALSE(tracker.has_baseline());
    EXPECT_FALSE(tracker.diff({row(1, 10), row(2, 20)}, "t0", &changes));
    EXPECT_TRUE(changes.empty());
    EXPECT_TRUE(tracker.has_baseline());
    EXPECT_EQ(tracker.tracked(), 2u);
}

TEST(StatementTracker, IncrementsOfChangedEntriesOnly) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    tracker.diff({row(1, 10), row(2, 20)}, "t0", &changes);
    EXPECT_FALSE(tracker.diff({row(1, 15), row(2, 20)}, "t0", &changes));
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].key.queryid, 1);
    EXPECT_EQ(changes[0].delta.calls, 5);
    EXPECT_DOUBLE_EQ(changes[0].delta.total_exec_time_ms, 10.0);
    EXPECT_EQ(changes[0].delta.rows, 5);
    EXPECT_EQ(changes[0].delta.wal_bytes, 500u);
    EXPECT_FALSE(changes[0].reset);
}

TEST(StatementTracker, NewEntrySendsItsTotals) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    tracker.diff({row(1, 10)}, "t0", &changes);
    tracker.diff({row(1, 10), row(3, 7)}, "t0", &changes);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].key.queryid, 3);
    EXPECT_EQ(changes[0].delta.calls, 7);
    EXPECT_FALSE(changes[0].reset);
}

TEST(StatementTracker, KeyIncludesDbUserAndToplevel) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    tracker.diff({row(1, 10, 5, 10, true), row(1, 4, 5, 10, false), row(1, 3, 6, 10), row(1, 2, 5, 11)}, "t0",
                 &changes);
    tracker.diff({row(1, 11, 5, 10, true), row(1, 6, 5, 10, false), row(1, 3, 6, 10), row(1, 2, 5, 11)}, "t0",
                 &changes);
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_EQ(find(changes, 1, true)->delta.calls, 1);
    EXPECT_EQ(find(changes, 1, false)->delta.calls, 2);
}

TEST(StatementTracker, CallsGoingDownMeansResetWithCurrentTotals) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    tracker.diff({row(1, 100), row(2, 50)}, "t0", &changes);
    // Entry 1 was deallocated and came back with 3 calls; entry 2 went on.
    EXPECT_FALSE(tracker.diff({row(1, 3), row(2, 60)}, "t0", &changes));
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_TRUE(find(changes, 1)->reset);
    EXPECT_EQ(find(changes, 1)->delta.calls, 3);
    EXPECT_FALSE(find(changes, 2)->reset);
    EXPECT_EQ(find(changes, 2)->delta.calls, 10);
}

TEST(StatementTracker, AnyCounterGoingDownIsAReset) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    StatementRow before = row(1, 10);
    tracker.diff({before}, "t0", &changes);
    StatementRow after = before;
    after.counters.calls = 12;
    after.counters.shared_blks_hit = 0;
    before.counters.shared_blks_hit = 0;
    after.counters.total_exec_time_ms = 1.0;  // below 20: the entry restarted between polls
    tracker.diff({after}, "t0", &changes);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_TRUE(changes[0].reset);
    EXPECT_EQ(changes[0].delta.calls, 12);
}

TEST(StatementTracker, StatsResetChangeResetsEverything) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    tracker.diff({row(1, 100), row(2, 50)}, "t0", &changes);
    // After pg_stat_statements_reset(): entry 2 has more calls than before by coincidence.
    EXPECT_TRUE(tracker.diff({row(1, 2), row(2, 70)}, "t1", &changes));
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_TRUE(find(changes, 1)->reset);
    EXPECT_TRUE(find(changes, 2)->reset);
    EXPECT_EQ(find(changes, 2)->delta.calls, 70);
    // The next poll is normal again.
    EXPECT_FALSE(tracker.diff({row(1, 3), row(2, 70)}, "t1", &changes));
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].delta.calls, 1);
    EXPECT_FALSE(changes[0].reset);
}

TEST(StatementTracker, SumOfDeltasEqualsGrowthOverManyPolls) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    tracker.diff({}, "t0", &changes);
    int64_t sum = 0;
    for (int64_t calls = 1; calls <= 50; calls += 3) {
        tracker.diff({row(9, calls)}, "t0", &changes);
        for (const StatementChange &c : changes) sum += c.delta.calls;
    }
    EXPECT_EQ(sum, 49);  // the last value seen (1 + 3 * 16)
}

TEST(StatementTracker, VanishedEntriesAreForgotten) {
    StatementTracker tracker;
    std::vector<StatementChange> changes;
    tracker.diff({row(1, 10), row(2, 10)}, "t0", &changes);
    tracker.diff({row(1, 10)}, "t0", &changes);
    EXPECT_TRUE(changes.empty());
    EXPECT_EQ(tracker.tracked(), 1u);
    tracker.diff({row(1, 10), row(2, 4)}, "t0", &changes);  // came back: whole totals, not reset
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].delta.calls, 4);
}

TEST(StatementTracker, TextsAreRememberedPerBootAndBounded) {
    StatementTracker tracker;
    EXPECT_FALSE(tracker.text_sent(42));
    tracker.mark_text_sent(42);
    EXPECT_TRUE(tracker.text_sent(42));
    for (int64_t id = 0; id < static_cast<int64_t>(StatementTracker::kMaxRememberedTexts); id++)
        tracker.mark_text_sent(1000 + id);
    EXPECT_FALSE(tracker.text_sent(42));  // cleared at the bound: only means a text is sent again
    tracker.forget_baseline();
    EXPECT_FALSE(tracker.has_baseline());
}

// Activity aggregation: observations per group over the samples of an interval, maxima of transaction
// ages, blocking edges of the last sample, and reuse across intervals.
#include "agent/activity.h"

#include <gtest/gtest.h>

using pgfleet::agent::ActivityAggregator;
using pgfleet::agent::ActivityObservation;
using pgfleet::agent::BlockingEdgeRow;

namespace {

// An observation of a client backend of app "app" in database "db" as user "u".
ActivityObservation obs(const char *state, const char *wait_type, const char *wait, int64_t queryid) {
    ActivityObservation o;
    o.state = state;
    o.wait_event_type = wait_type;
    o.wait_event = wait;
    o.queryid = queryid;
    o.backend_type = "client backend";
    o.datname = "db";
    o.usename = "u";
    o.application_name = "app";
    return o;
}

}  // namespace

TEST(ActivityAggregator, GroupsObservationsAcrossSamples) {
    ActivityAggregator agg;
    agg.begin_interval(1000);
    for (int sample = 0; sample < 3; sample++) {
        agg.begin_sample();
        agg.observe(obs("active", "", "", 7));
        agg.observe(obs("active", "", "", 7));
        agg.observe(obs("active", "Lock", "transactionid", 7));
        if (sample == 2) agg.observe(obs("idle in transaction", "Client", "ClientRead", 8));
    }
    EXPECT_EQ(agg.samples_taken(), 3u);
    EXPECT_EQ(agg.group_count(), 3u);
    pgfleet::wire::v1::ActivityBatch batch;
    agg.flush(4000, &batch);
    EXPECT_EQ(batch.interval_start_unix_ms(), 1000);
    EXPECT_EQ(batch.interval_end_unix_ms(), 4000);
    EXPECT_EQ(batch.samples_taken(), 3u);
    ASSERT_EQ(batch.groups_size(), 3);
    uint32_t total = 0;
    for (const auto &g : batch.groups()) {
        total += g.observations();
        if (g.wait_event_type().empty()) {
            EXPECT_EQ(g.observations(), 6u);
        }
        if (g.wait_event() == "transactionid") {
            EXPECT_EQ(g.observations(), 3u);
        }
        if (g.state() == "idle in transaction") {
            EXPECT_EQ(g.observations(), 1u);
            EXPECT_EQ(g.queryid(), 8);
            EXPECT_EQ(g.application_name(), "app");
            EXPECT_EQ(g.backend_type(), "client backend");
        }
    }
    EXPECT_EQ(total, 10u);
}

TEST(ActivityAggregator, EveryFieldSeparatesGroups) {
    ActivityAggregator agg;
    agg.begin_interval(0);
    agg.begin_sample();
    ActivityObservation base = obs("active", "IO", "DataFileRead", 1);
    agg.observe(base);
    ActivityObservation other = base;
    other.datname = "db2";
    agg.observe(other);
    other = base;
    other.usename = "u2";
    agg.observe(other);
    other = base;
    other.application_name = "app2";
    agg.observe(other);
    other = base;
    other.backend_type = "autovacuum worker";
    agg.observe(other);
    other = base;
    other.queryid = 2;
    agg.observe(other);
    // Joined text must not make ("a", "bc") equal to ("ab", "c").
    other = base;
    other.wait_event_type = "IOD";
    other.wait_event = "ataFileRead";
    agg.observe(other);
    EXPECT_EQ(agg.group_count(), 7u);
}

TEST(ActivityAggregator, AgesAreMaximaAndBlockingIsLastSample) {
    ActivityAggregator agg;
    agg.begin_interval(0);
    agg.begin_sample();
    agg.note_ages(5.0, 1.0);
    agg.set_blocking({{10, 20, 1, 2, 0.5}});
    agg.begin_sample();
    agg.note_ages(3.0, 4.0);
    agg.set_blocking({{11, 21, 3, 4, 1.5}, {12, 21, 3, 4, 0.25}});
    pgfleet::wire::v1::ActivityBatch batch;
    agg.flush(2000, &batch);
    EXPECT_DOUBLE_EQ(batch.longest_transaction_seconds(), 5.0);
    EXPECT_DOUBLE_EQ(batch.longest_idle_in_transaction_seconds(), 4.0);
    ASSERT_EQ(batch.blocking_size(), 2);
    EXPECT_EQ(batch.blocking(0).blocked_pid(), 11);
    EXPECT_EQ(batch.blocking(0).blocking_pid(), 21);
    EXPECT_DOUBLE_EQ(batch.blocking(0).blocked_seconds(), 1.5);
}

TEST(ActivityAggregator, FlushStartsTheNextIntervalEmpty) {
    ActivityAggregator agg;
    agg.begin_interval(0);
    agg.begin_sample();
    agg.observe(obs("active", "", "", 1));
    agg.note_ages(9, 9);
    pgfleet::wire::v1::ActivityBatch batch;
    agg.flush(1000, &batch);
    EXPECT_EQ(agg.samples_taken(), 0u);
    EXPECT_EQ(agg.group_count(), 0u);
    EXPECT_EQ(agg.interval_start_ms(), 1000);
    agg.begin_sample();
    agg.observe(obs("active", "", "", 2));
    agg.flush(2000, &batch);
    ASSERT_EQ(batch.groups_size(), 1);
    EXPECT_EQ(batch.groups(0).queryid(), 2);
    EXPECT_EQ(batch.groups(0).observations(), 1u);
    EXPECT_DOUBLE_EQ(batch.longest_transaction_seconds(), 0.0);
    EXPECT_EQ(batch.blocking_size(), 0);
}

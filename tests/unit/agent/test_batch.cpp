// Envelope encoding: what BatchBuilder seals decodes with the generated class into the same header,
// series, labels (sorted) and values; a reused builder carries nothing over from the previous batch.
#include "agent/batch.h"

#include "core/wire_pack.h"

#include <gtest/gtest.h>

using namespace pgfleet::agent;
using pgfleet::wire::v1::COUNTER;
using pgfleet::wire::v1::Envelope;
using pgfleet::wire::v1::GAUGE;

namespace {
// The metrics of a sealed envelope as the centre reads them: zstd-decompressed, then unpacked.
pgfleet::wire::v1::MetricBatch open_metrics(const Envelope &envelope) {
    pgfleet::wire::v1::MetricBatch batch;
    std::string error;
    EXPECT_TRUE(envelope.has_metrics_zstd()) << "the agent seals metrics compressed";
    EXPECT_TRUE(pgfleet::wire::decompress_metrics(envelope.metrics_zstd(), 64u << 20, batch, error)) << error;
    EXPECT_TRUE(batch.has_packed()) << "the agent packs values";
    EXPECT_TRUE(pgfleet::wire::unpack_metric_batch(batch, error)) << error;
    return batch;
}
}  // namespace

TEST(Batch, EncodeDecodeRoundTrip) {
    BatchBuilder builder;
    builder.begin("central", "default", "0b6f3c2e-8d4a-4c1e-9f00-1234567890ab", 7, 1700000000123);
    builder.add("host.cpu.seconds", COUNTER, "seconds", {{"mode", "user"}}, 74.36);
    builder.add("host.memory.used_bytes", GAUGE, "bytes", {}, 473538560.0);
    builder.add("test.metric", GAUGE, "", {{"zeta", "1"}, {"alpha", "2"}, {"mid", "3"}}, -1.5);
    EXPECT_EQ(builder.sample_count(), 3u);
    std::string bytes = builder.seal();

    Envelope decoded;
    ASSERT_TRUE(decoded.ParseFromString(bytes));
    EXPECT_EQ(decoded.schema_major(), 1u);
    EXPECT_EQ(decoded.schema_minor(), 1u);
    EXPECT_EQ(decoded.agent_id(), "central");
    EXPECT_EQ(decoded.namespace_(), "default");
    EXPECT_EQ(decoded.boot_id(), "0b6f3c2e-8d4a-4c1e-9f00-1234567890ab");
    EXPECT_EQ(decoded.batch_seq(), 7u);
    EXPECT_EQ(decoded.created_unix_ms(), 1700000000123);
    EXPECT_FALSE(decoded.has_instance());
    EXPECT_FALSE(decoded.has_metrics());

    const auto batch = open_metrics(decoded);
    ASSERT_EQ(batch.series_size(), 3);
    ASSERT_EQ(batch.scrapes_size(), 1);
    const auto &scrape = batch.scrapes(0);
    EXPECT_EQ(scrape.ts_unix_ms(), 1700000000123);
    ASSERT_EQ(scrape.refs_size(), 3);
    ASSERT_EQ(scrape.values_size(), 3);

    EXPECT_EQ(batch.series(0).metric(), "host.cpu.seconds");
    EXPECT_EQ(batch.series(0).kind(), COUNTER);
    EXPECT_EQ(batch.series(0).unit(), "seconds");
    ASSERT_EQ(batch.series(0).labels_size(), 1);
    EXPECT_EQ(batch.series(0).labels(0).name(), "mode");
    EXPECT_EQ(batch.series(0).labels(0).value(), "user");
    EXPECT_EQ(batch.series(1).labels_size(), 0);
    EXPECT_EQ(batch.series(1).kind(), GAUGE);

    const auto &labels = batch.series(2).labels();
    ASSERT_EQ(labels.size(), 3);
    EXPECT_EQ(labels[0].name(), "alpha");
    EXPECT_EQ(labels[0].value(), "2");
    EXPECT_EQ(labels[1].name(), "mid");
    EXPECT_EQ(labels[2].name(), "zeta");

    // Values are found through the refs, as a decoder would.
    const double expected[] = {74.36, 473538560.0, -1.5};
    for (int i = 0; i < 3; i++) {
        uint32_t ref = scrape.refs(i);
        int index = -1;
        for (int s = 0; s < batch.series_size(); s++)
            if (batch.series(s).ref() == ref) index = s;
        ASSERT_EQ(index, i);
        EXPECT_DOUBLE_EQ(scrape.values(i), expected[i]);
    }
}

TEST(Batch, InstanceInfoAndBuilderReuse) {
    InstanceFacts facts;
    facts.system_identifier = "7311469710282776239";
    facts.server_version = "15.20";
    facts.server_version_num = 150020;
    facts.hostname = "db1";
    facts.data_directory = "/var/lib/postgresql/15/main";
    facts.in_recovery = true;
    facts.postmaster_start_unix_ms = 1700000000000;
    facts.port = 5432;

    BatchBuilder builder;
    builder.begin("a", "n", "boot", 1, 1000);
    builder.set_instance(facts);
    builder.add("pg.database.numbackends", GAUGE, "", {{"datname", "postgres"}}, 3);
    Envelope first;
    ASSERT_TRUE(first.ParseFromString(builder.seal()));
    ASSERT_TRUE(first.has_instance());
    EXPECT_EQ(first.instance().system_identifier(), "7311469710282776239");
    EXPECT_EQ(first.instance().server_version(), "15.20");
    EXPECT_EQ(first.instance().server_version_num(), 150020u);
    EXPECT_EQ(first.instance().hostname(), "db1");
    EXPECT_EQ(first.instance().data_directory(), "/var/lib/postgresql/15/main");
    EXPECT_TRUE(first.instance().in_recovery());
    EXPECT_EQ(first.instance().postmaster_start_unix_ms(), 1700000000000);
    EXPECT_EQ(first.instance().port(), 5432u);

    builder.begin("a", "n", "boot", 2, 2000);
    builder.add("host.memory.total_bytes", GAUGE, "bytes", {}, 1);
    Envelope second;
    ASSERT_TRUE(second.ParseFromString(builder.seal()));
    EXPECT_EQ(second.batch_seq(), 2u);
    EXPECT_FALSE(second.has_instance());
    const auto second_metrics = open_metrics(second);
    ASSERT_EQ(second_metrics.series_size(), 1);
    EXPECT_EQ(second_metrics.series(0).metric(), "host.memory.total_bytes");
    EXPECT_EQ(second_metrics.series(0).ref(), 0u);
    EXPECT_EQ(second_metrics.scrapes(0).ts_unix_ms(), 2000);

    InstanceFacts changed = facts;
    EXPECT_TRUE(changed == facts);
    changed.in_recovery = false;
    EXPECT_TRUE(changed != facts);
}

TEST(BatchDeathTest, DuplicateLabelNameIsABrokenInvariant) {
    BatchBuilder builder;
    builder.begin("a", "n", "boot", 1, 1000);
    EXPECT_DEATH(builder.add("m", GAUGE, "", {{"x", "1"}, {"x", "2"}}, 0), "duplicate label \"x\"");
}

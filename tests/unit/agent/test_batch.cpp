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
    EXPECT_EQ(decoded.schema_minor(), 3u);
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

// ---- series sets by key (wire schema_minor 2) ----------------------------------------------------

namespace {
// A metrics batch of the agent's shape: three series, values shifted by delta.
void fill(BatchBuilder &builder, uint64_t batch_seq, int64_t ts, double delta) {
    builder.begin("central", "default", "boot-1", batch_seq, ts);
    builder.add("host.cpu.seconds", COUNTER, "seconds", {{"mode", "user"}}, 74.36 + delta);
    builder.add("host.memory.used_bytes", GAUGE, "bytes", {}, 473538560.0 + delta);
    builder.add("test.metric", GAUGE, "", {{"zeta", "1"}, {"alpha", "2"}}, -1.5 - delta);
}

// What the centre's decoder makes of sealed bytes.
pgfleet::wire::Envelope decode_sealed(const std::string &bytes) {
    pgfleet::wire::Envelope out;
    pgfleet::wire::DecodeStatus st = pgfleet::wire::decode_envelope(bytes.data(), bytes.size(), out);
    EXPECT_TRUE(st.ok) << st.reason << ": " << st.detail;
    return out;
}
}  // namespace

TEST(SeriesSetMemory, ASetIsNameableOnlyAfterTheStreamAcknowledgedItsDeclaration) {
    SeriesSetMemory sets;
    pgfleet::wire::SeriesSetKey a{}, b{};
    a.bytes[0] = 1;
    b.bytes[0] = 2;
    const int64_t t = 1700000000000;
    EXPECT_FALSE(sets.may_refer(a, t));
    sets.declared(5, a);
    EXPECT_FALSE(sets.may_refer(a, t)) << "declared but not acknowledged";
    sets.acknowledged(4, t);
    EXPECT_FALSE(sets.may_refer(a, t)) << "an earlier batch's acknowledgement says nothing of batch 5";
    sets.acknowledged(5, t);
    EXPECT_TRUE(sets.may_refer(a, t + 1000));
    EXPECT_FALSE(sets.may_refer(b, t + 1000));
    EXPECT_TRUE(sets.may_refer(a, t + SeriesSetMemory::kSeriesSetFreshMs - 1));
    EXPECT_FALSE(sets.may_refer(a, t + SeriesSetMemory::kSeriesSetFreshMs)) << "declared again every 10 minutes";
    EXPECT_FALSE(sets.may_refer(a, t - 1)) << "a clock stepped back does not extend the window";
}

TEST(SeriesSetMemory, ADroppedDeclarationNeverMakesItsSetNameable) {
    SeriesSetMemory sets;
    pgfleet::wire::SeriesSetKey a{};
    a.bytes[3] = 7;
    const int64_t t = 1700000000000;
    sets.declared(10, a);  // batch 10 is dropped from the spool: never acknowledged
    sets.acknowledged(11, t);
    EXPECT_FALSE(sets.may_refer(a, t));
    sets.acknowledged(10, t);  // (cannot happen after 11, but must not resurrect it)
    EXPECT_FALSE(sets.may_refer(a, t));
}

TEST(Batch, ScrapesNameTheirSetByKeyOnceItIsAcknowledged) {
    BatchBuilder builder;
    SeriesSetMemory sets;
    const int64_t t = 1700000000000;

    fill(builder, 1, t, 0);
    pgfleet::wire::Envelope first = decode_sealed(builder.seal(&sets));
    ASSERT_EQ(first.metrics.scrape_end.size(), 1u);
    EXPECT_EQ(first.metrics.scrape_is_reference[0], 0) << "the first batch declares its series";
    EXPECT_EQ(first.metrics.series.size(), 3u);

    fill(builder, 2, t + 10000, 1);
    pgfleet::wire::Envelope second = decode_sealed(builder.seal(&sets));
    EXPECT_EQ(second.metrics.scrape_is_reference[0], 0) << "batch 1 is not acknowledged yet";

    sets.acknowledged(1, t + 10500);
    fill(builder, 3, t + 20000, 2);
    const std::string third_bytes = builder.seal(&sets);
    pgfleet::wire::Envelope third = decode_sealed(third_bytes);
    EXPECT_EQ(third.metrics.scrape_is_reference[0], 1);
    EXPECT_TRUE(third.metrics.series.empty()) << "a reference carries no declarations";
    EXPECT_TRUE(third.metrics.scrape_key[0] == first.metrics.scrape_key[0])
        << "the agent's key is the one the decoder computes from the declarations";
    ASSERT_EQ(third.metrics.sample_value.size(), 3u);
    EXPECT_EQ(third.metrics.sample_value[0], 76.36);
    EXPECT_EQ(third.metrics.sample_value[1], 473538562.0);
    EXPECT_EQ(third.metrics.sample_value[2], -3.5);
    EXPECT_EQ(third.metrics.sample_series, (std::vector<int32_t>{-1, -1, -1}));

    fill(builder, 4, t + 10500 + SeriesSetMemory::kSeriesSetFreshMs, 3);
    pgfleet::wire::Envelope fourth = decode_sealed(builder.seal(&sets));
    EXPECT_EQ(fourth.metrics.scrape_is_reference[0], 0) << "10 minutes after its acknowledgement a set is declared again";

    BatchBuilder other;
    fill(other, 1, t, 0);
    other.add("extra.series", GAUGE, "", {}, 1.0);
    pgfleet::wire::Envelope changed = decode_sealed(other.seal(&sets));
    EXPECT_EQ(changed.metrics.scrape_is_reference[0], 0) << "a different series list is a different set";
    EXPECT_FALSE(changed.metrics.scrape_key[0] == first.metrics.scrape_key[0]);
}

// ---- keyframes (wire schema_minor 3) --------------------------------------------------------------

namespace {
// A batch of large counters that moved by step since the previous one, plus a fraction.
void fill_counters(BatchBuilder &builder, uint64_t batch_seq, int64_t ts, double step) {
    builder.begin("central", "default", "boot-1", batch_seq, ts);
    for (int i = 0; i < 50; i++) {
        std::string db = "db" + std::to_string(i);
        builder.add("pg.database.blks_hit", COUNTER, "", {{"datname", db}}, 981234567890.0 + i * 1000 + step * i);
    }
    builder.add("pg.database.cache_ratio", GAUGE, "", {}, 0.25 + step);
}
}  // namespace

TEST(Batch, CountersTravelAsDifferencesToTheAcknowledgedKeyframe) {
    BatchBuilder builder;
    SeriesSetMemory sets;
    const int64_t t = 1700000000000;
    fill_counters(builder, 1, t, 0);
    decode_sealed(builder.seal(&sets));
    sets.acknowledged(1, t + 100);  // the set is known: its scrapes are references from now on

    fill_counters(builder, 2, t + 10000, 1);
    const std::string keyframe_bytes = builder.seal(&sets);
    pgfleet::wire::Envelope keyframe = decode_sealed(keyframe_bytes);
    EXPECT_EQ(keyframe.metrics.scrape_is_keyframe[0], 1) << "no base yet: the scrape becomes a keyframe";
    EXPECT_EQ(keyframe.metrics.scrape_base_seq[0], 0u);
    const std::vector<double> keyframe_values = keyframe.metrics.sample_value;

    fill_counters(builder, 3, t + 20000, 2);
    pgfleet::wire::Envelope waiting = decode_sealed(builder.seal(&sets));
    EXPECT_EQ(waiting.metrics.scrape_is_keyframe[0], 0) << "one keyframe at a time waits for its acknowledgement";
    EXPECT_EQ(waiting.metrics.scrape_base_seq[0], 0u) << "an unacknowledged keyframe is no base";
    EXPECT_FALSE(waiting.metrics.has_based_scrape());

    sets.acknowledged(2, t + 20100);
    sets.acknowledged(3, t + 20100);
    fill_counters(builder, 4, t + 30000, 3);
    const std::string based_bytes = builder.seal(&sets);
    pgfleet::wire::Envelope based = decode_sealed(based_bytes);
    EXPECT_EQ(based.metrics.scrape_base_seq[0], 2u);
    EXPECT_EQ(based.metrics.scrape_is_keyframe[0], 0);
    EXPECT_LT(based_bytes.size() * 3, keyframe_bytes.size() * 2) << based_bytes.size() << " vs " << keyframe_bytes.size();
    std::string error;
    ASSERT_TRUE(pgfleet::wire::apply_keyframe(based.metrics, 0, keyframe_values.data(), keyframe_values.size(), error))
        << error;
    for (int i = 0; i < 50; i++) EXPECT_EQ(based.metrics.sample_value[i], 981234567890.0 + i * 1000 + 3.0 * i);
    EXPECT_EQ(based.metrics.sample_value[50], 3.25);

    // five minutes after the keyframe was taken, the next scrape is a keyframe again
    fill_counters(builder, 5, t + 10000 + SeriesSetMemory::kKeyframeMaxAgeMs - 1, 4);
    EXPECT_EQ(decode_sealed(builder.seal(&sets)).metrics.scrape_base_seq[0], 2u);
    fill_counters(builder, 6, t + 10000 + SeriesSetMemory::kKeyframeMaxAgeMs, 5);
    pgfleet::wire::Envelope next = decode_sealed(builder.seal(&sets));
    EXPECT_EQ(next.metrics.scrape_is_keyframe[0], 1);
    EXPECT_EQ(next.metrics.scrape_base_seq[0], 0u);
}

TEST(SeriesSetMemory, ADroppedKeyframeIsNeverABase) {
    SeriesSetMemory sets;
    pgfleet::wire::SeriesSetKey a{};
    a.bytes[0] = 9;
    const int64_t t = 1700000000000;
    sets.declared(1, a);
    sets.acknowledged(1, t);
    EXPECT_TRUE(sets.wants_keyframe(a, t + 1000));
    sets.keyframe_sealed(2, a, t + 1000, {1.0, 2.0});
    EXPECT_FALSE(sets.wants_keyframe(a, t + 2000)) << "the keyframe of batch 2 is waiting";
    sets.acknowledged(3, t + 3000);  // batch 2 was dropped from the spool
    EXPECT_EQ(sets.base_for(a, t + 3000), nullptr);
    EXPECT_FALSE(sets.wants_keyframe(a, t + 3000)) << "at most one keyframe per set and window";
    EXPECT_TRUE(sets.wants_keyframe(a, t + 1000 + SeriesSetMemory::kKeyframeMaxAgeMs));
    sets.keyframe_sealed(4, a, t + 1000 + SeriesSetMemory::kKeyframeMaxAgeMs, {3.0, 4.0});
    sets.acknowledged(4, t + 2000 + SeriesSetMemory::kKeyframeMaxAgeMs);
    const SeriesSetMemory::Keyframe *base = sets.base_for(a, t + 3000 + SeriesSetMemory::kKeyframeMaxAgeMs);
    ASSERT_NE(base, nullptr);
    EXPECT_EQ(base->batch_seq, 4u);
    EXPECT_EQ(base->values, (std::vector<double>{3.0, 4.0}));
    pgfleet::wire::SeriesSetKey unknown{};
    EXPECT_FALSE(sets.wants_keyframe(unknown, t)) << "a set the centre may not know is not a keyframe";
}

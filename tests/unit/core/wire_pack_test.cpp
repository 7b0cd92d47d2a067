/*
 * tests/unit/core/wire_pack_test.cpp — packed values and zstd metrics (wire schema_minor 1): lossless
 * round trips through the decoder, the size they save, and every inconsistency refused.
 */
#include "core/wire_pack.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "core/wire.h"

namespace v1 = pgfleet::wire::v1;
using pgfleet::wire::DecodeStatus;
using pgfleet::wire::Envelope;

namespace {

constexpr int64_t kTs = 1767225600000LL; /* 2026-01-01 */

/* An envelope with 200 series and 6 scrapes: counters, gauges, fractions and special doubles. */
v1::Envelope sample_envelope()
{
    v1::Envelope e;
    e.set_schema_major(1);
    e.set_schema_minor(1);
    e.set_agent_id("agent-1");
    e.set_boot_id("boot");
    e.set_batch_seq(1);
    e.set_namespace_("default");
    auto *m = e.mutable_metrics();
    for (uint32_t r = 0; r < 200; r++) {
        auto *d = m->add_series();
        d->set_ref(r);
        d->set_metric("pg.test.m" + std::to_string(r % 20));
        d->set_kind(r % 2 ? v1::COUNTER : v1::GAUGE);
        auto *l = d->add_labels();
        l->set_name("n");
        l->set_value(std::to_string(r));
    }
    std::mt19937_64 rng(42);
    const double specials[] = {-0.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                               9007199254740993.0, -9007199254740992.0, 1e300, 0.1};
    for (int k = 0; k < 6; k++) {
        auto *s = m->add_scrapes();
        s->set_ts_unix_ms(kTs + k * 10000 + static_cast<int64_t>(rng() % 3));
        for (uint32_t r = 0; r < 200; r++) {
            s->add_refs(r);
            double v;
            if (r < 7)
                v = specials[r];
            else if (r % 2)
                v = 1e9 + r * 1000.0 + k * (r % 50); /* a counter */
            else if (r % 3)
                v = static_cast<double>(rng() % 4096); /* an integer gauge */
            else
                v = static_cast<double>(rng() % 100000) / 7.0; /* a fraction */
            s->add_values(v);
        }
    }
    return e;
}

DecodeStatus decode(const v1::Envelope &e, Envelope &out)
{
    std::string bytes;
    e.SerializeToString(&bytes);
    return pgfleet::wire::decode_envelope(bytes.data(), bytes.size(), out);
}

/* The decoded samples of a and b are identical bit for bit. */
void expect_same_samples(const Envelope &a, const Envelope &b)
{
    ASSERT_EQ(a.metrics.sample_value.size(), b.metrics.sample_value.size());
    EXPECT_EQ(a.metrics.sample_series, b.metrics.sample_series);
    EXPECT_EQ(a.metrics.sample_ts_unix_ms, b.metrics.sample_ts_unix_ms);
    EXPECT_EQ(a.metrics.scrape_end, b.metrics.scrape_end);
    for (size_t i = 0; i < a.metrics.sample_value.size(); i++)
        EXPECT_EQ(0, memcmp(&a.metrics.sample_value[i], &b.metrics.sample_value[i], sizeof(double))) << "value " << i;
}

} // namespace

TEST(WirePack, PackedRoundTripIsBitExactAndSmaller)
{
    v1::Envelope plain = sample_envelope();
    v1::Envelope packed = plain;
    pgfleet::wire::pack_metric_batch(*packed.mutable_metrics());
    EXPECT_TRUE(packed.metrics().has_packed());
    EXPECT_LT(packed.ByteSizeLong(), plain.ByteSizeLong());
    Envelope a, b;
    ASSERT_TRUE(decode(plain, a).ok);
    DecodeStatus st = decode(packed, b);
    ASSERT_TRUE(st.ok) << st.reason << ": " << st.detail;
    expect_same_samples(a, b);
    EXPECT_TRUE(std::signbit(b.metrics.sample_value[0])) << "-0.0 keeps its sign";
}

TEST(WirePack, ZstdRoundTripIsBitExactAndMuchSmaller)
{
    v1::Envelope plain = sample_envelope();
    v1::Envelope compact = plain;
    pgfleet::wire::pack_metric_batch(*compact.mutable_metrics());
    std::string error;
    ASSERT_TRUE(pgfleet::wire::compress_metrics(compact, 3, error)) << error;
    EXPECT_FALSE(compact.has_metrics());
    EXPECT_LT(compact.ByteSizeLong() * 4, plain.ByteSizeLong());
    Envelope a, b;
    ASSERT_TRUE(decode(plain, a).ok);
    DecodeStatus st = decode(compact, b);
    ASSERT_TRUE(st.ok) << st.reason << ": " << st.detail;
    EXPECT_EQ(b.kind, pgfleet::wire::PayloadKind::Metrics);
    expect_same_samples(a, b);
}

TEST(WirePack, InconsistentPackedValuesAreRefused)
{
    auto packed_envelope = [] {
        v1::Envelope e = sample_envelope();
        pgfleet::wire::pack_metric_batch(*e.mutable_metrics());
        return e;
    };
    Envelope out;
    v1::Envelope e = packed_envelope();
    e.mutable_metrics()->mutable_packed()->add_int_deltas(1);
    EXPECT_EQ(decode(e, out).reason, "invalid packed values");
    e = packed_envelope();
    e.mutable_metrics()->mutable_packed()->mutable_double_bitmap()->push_back('\0');
    EXPECT_EQ(decode(e, out).reason, "invalid packed values");
    e = packed_envelope();
    e.mutable_metrics()->mutable_packed()->add_ts_deltas_ms(10);
    EXPECT_EQ(decode(e, out).reason, "invalid packed values");
    e = packed_envelope();
    e.mutable_metrics()->mutable_scrapes(0)->add_values(1.0);
    EXPECT_EQ(decode(e, out).reason, "invalid packed values");
    e = packed_envelope();
    e.mutable_metrics()->mutable_packed()->set_int_deltas(0, std::numeric_limits<int64_t>::max());
    EXPECT_EQ(decode(e, out).reason, "invalid packed values");
    /* a wrapped timestamp is caught by the decoder's range check */
    e = packed_envelope();
    e.mutable_metrics()->mutable_packed()->set_ts_deltas_ms(1, std::numeric_limits<int64_t>::min());
    EXPECT_EQ(decode(e, out).reason, "invalid scrape");
}

TEST(WirePack, HostileZstdIsRefused)
{
    Envelope out;
    v1::Envelope e = sample_envelope();
    e.set_metrics_zstd("not zstd at all");
    EXPECT_EQ(decode(e, out).reason, "invalid compressed metrics");
    /* a frame that claims 1 GiB of content: refused before any allocation */
    v1::Envelope big = sample_envelope();
    std::string error;
    ASSERT_TRUE(pgfleet::wire::compress_metrics(big, 1, error));
    std::string frame = big.metrics_zstd();
    /* rewrite as a frame of zeros declaring a huge size: compress 1 GiB lazily is too slow, so check
     * the size limit through decompress_metrics directly with a small limit instead */
    v1::MetricBatch batch;
    EXPECT_FALSE(pgfleet::wire::decompress_metrics(frame, 16, batch, error));
    EXPECT_NE(error.find("more than 16"), std::string::npos) << error;
    /* a truncated frame */
    e.set_metrics_zstd(frame.substr(0, frame.size() / 2));
    EXPECT_EQ(decode(e, out).reason, "invalid compressed metrics");
}

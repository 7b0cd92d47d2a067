/*
 * tests/unit/core/chunk_test.cpp — the cold-tier chunk codec: exact round trips, sizes on realistic
 * series, and corrupt input.
 */
#include "core/chunk_codec.h"

#include <cmath>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

namespace {

/* Encodes, decodes, and expects bit-identical values and identical timestamps; returns the size. */
size_t round_trip(const std::vector<int64_t> &ts, const std::vector<double> &values)
{
    std::string bytes, error;
    EXPECT_TRUE(pgfleet::chunk::encode(ts.data(), values.data(), ts.size(), bytes, error)) << error;
    std::vector<int64_t> ts2;
    std::vector<double> v2;
    EXPECT_TRUE(pgfleet::chunk::decode(bytes.data(), bytes.size(), ts2, v2, error)) << error;
    EXPECT_EQ(ts2, ts);
    EXPECT_EQ(v2.size(), values.size());
    for (size_t i = 0; i < values.size() && i < v2.size(); i++)
        EXPECT_EQ(std::memcmp(&values[i], &v2[i], sizeof(double)), 0) << "value " << i;
    return bytes.size();
}

/* n timestamps every 10 s from 2026-01-01 with up to `jitter` ms of noise, like an agent's scrapes. */
std::vector<int64_t> scrape_times(size_t n, int jitter, std::mt19937 &rng)
{
    std::vector<int64_t> ts(n);
    for (size_t i = 0; i < n; i++)
        ts[i] = 1767225600000LL + static_cast<int64_t>(i) * 10000 + (jitter ? static_cast<int64_t>(rng() % jitter) : 0);
    return ts;
}

} // namespace

TEST(ChunkCodec, SingleSampleAndConstants)
{
    round_trip({1767225600000LL}, {42.0});
    std::mt19937 rng(1);
    auto ts = scrape_times(360, 0, rng);
    size_t size = round_trip(ts, std::vector<double>(360, 8.0));
    EXPECT_LT(size, 120u) << "a constant series on a regular clock is about 2 bits a sample";
}

TEST(ChunkCodec, SpecialDoublesSurviveBitForBit)
{
    std::vector<int64_t> ts = {1, 2, 3, 4, 5, 6, 7};
    double nan_payload;
    uint64_t bits = 0x7ff8000000000abcULL;
    std::memcpy(&nan_payload, &bits, sizeof(bits));
    round_trip(ts, {0.0, -0.0, std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                    nan_payload, std::numeric_limits<double>::denorm_min(), 1e308});
}

TEST(ChunkCodec, IntegerModeForCountersAndLargeValues)
{
    std::mt19937 rng(2);
    auto ts = scrape_times(360, 3, rng);
    std::vector<double> counter(360);
    double c = 123456789;
    for (auto &v : counter) {
        c += 50 + rng() % 20; /* a busy counter: ~60 per interval */
        v = c;
    }
    size_t size = round_trip(ts, counter);
    EXPECT_LT(static_cast<double>(size) / 360, 3.0) << "bytes per sample of a jittery counter";
    round_trip({1, 2, 3}, {9007199254740992.0, -9007199254740992.0, 0});
    round_trip({1, 2}, {1e300, 3}); /* beyond 2^53: XOR mode */
}

TEST(ChunkCodec, RandomDoublesAndTimestamps)
{
    std::mt19937_64 rng(3);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + rng() % 500;
        std::vector<int64_t> ts(n);
        std::vector<double> values(n);
        int64_t t = static_cast<int64_t>(rng() % 4000000000000ULL) - 1000000000000LL;
        for (size_t i = 0; i < n; i++) {
            t += static_cast<int64_t>(rng() % (round % 3 == 0 ? 5 : 100000000000ULL)); /* dense and sparse */
            ts[i] = t;
            uint64_t b = rng();
            std::memcpy(&values[i], &b, sizeof(b));
            if (round % 2)
                values[i] = std::round(std::ldexp(static_cast<double>(rng() % 1000000), static_cast<int>(rng() % 20)));
        }
        round_trip(ts, values);
    }
}

TEST(ChunkCodec, RefusesBadInput)
{
    std::string bytes, error;
    int64_t ts[] = {2, 1};
    double v[] = {1, 2};
    EXPECT_FALSE(pgfleet::chunk::encode(ts, v, 2, bytes, error));
    EXPECT_EQ(error, "timestamps must not decrease");
    EXPECT_FALSE(pgfleet::chunk::encode(ts, v, 0, bytes, error));
}

TEST(ChunkCodec, CorruptChunksAreRefusedNotCrashed)
{
    std::mt19937 rng(4);
    auto ts = scrape_times(100, 7, rng);
    std::vector<double> values(100);
    for (auto &x : values)
        x = std::sin(static_cast<double>(rng() % 1000)) * 100;
    std::string good, error;
    ASSERT_TRUE(pgfleet::chunk::encode(ts.data(), values.data(), ts.size(), good, error));
    std::vector<int64_t> t2;
    std::vector<double> v2;
    for (size_t len = 0; len < good.size(); len++) /* every truncation */
        EXPECT_FALSE(pgfleet::chunk::decode(good.data(), len, t2, v2, error)) << len;
    for (int i = 0; i < 20000; i++) { /* random bit flips: any outcome but a crash */
        std::string bad = good;
        bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
        (void) pgfleet::chunk::decode(bad.data(), bad.size(), t2, v2, error);
    }
    std::string huge = {'\x01', '\x00', '\xff', '\xff', '\xff', '\x07', '\x00'}; /* claims 16M samples */
    EXPECT_FALSE(pgfleet::chunk::decode(huge.data(), huge.size(), t2, v2, error));
}

TEST(ChunkCodec, EveryBucketEdgeRoundTrips)
{
    /* Deltas-of-deltas and value deltas right at and beyond each bucket's two's-complement range. */
    for (int64_t edge : {63LL, 64LL, 2047LL, 2048LL, 524287LL, 524288LL, (1LL << 40)}) {
        for (int64_t d : {edge, -edge, edge + 1, -edge - 1}) {
            const int64_t base = int64_t{1} << 42; /* larger than any |d|: timestamps stay increasing */
            std::vector<int64_t> ts = {0, base, 2 * base + d, 3 * base + 2 * d}; /* dods: base, d, 0 */
            std::vector<double> v = {0, static_cast<double>(d), 0, static_cast<double>(-d)};
            round_trip(ts, v);
        }
    }
}

/* Found by the fuzzer (tests/fuzz/regression-chunk-ts-overflow): timestamps whose differences overflow
 * int64 must round-trip (wrapping arithmetic on both sides), not hit signed overflow. */
TEST(ChunkCodec, ExtremeTimestampsRoundTrip)
{
    const int64_t ts[] = {INT64_MIN + 1, -1, 0, INT64_MAX - 1, INT64_MAX};
    const double values[] = {1, 2, 3, 4, 5};
    std::string out, error;
    ASSERT_TRUE(pgfleet::chunk::encode(ts, values, 5, out, error)) << error;
    std::vector<int64_t> ts2;
    std::vector<double> values2;
    ASSERT_TRUE(pgfleet::chunk::decode(out.data(), out.size(), ts2, values2, error)) << error;
    EXPECT_EQ(ts2, std::vector<int64_t>(ts, ts + 5));
    EXPECT_EQ(values2, std::vector<double>(values, values + 5));
}

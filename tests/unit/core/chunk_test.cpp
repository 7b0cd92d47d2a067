/*
 * tests/unit/core/chunk_test.cpp — the cold tier's formats (core/chunk_codec.h): exact round trips of
 * time lists and groups, sizes on realistic series, the slot layout of a window, and corrupt input.
 */
#include "core/chunk_codec.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <gtest/gtest.h>

namespace chunk = pgfleet::chunk;

namespace {

/* Encodes a time list, decodes it and expects it back; returns the size. */
size_t times_round_trip(const std::vector<int64_t> &ts)
{
    std::string bytes, error;
    EXPECT_TRUE(chunk::encode_times(ts.data(), ts.size(), bytes, error)) << error;
    std::vector<int64_t> back;
    EXPECT_TRUE(chunk::decode_times(bytes.data(), bytes.size(), back, error)) << error;
    EXPECT_EQ(back, ts);
    return bytes.size();
}

/* Encodes a group, decodes every series and expects identical slots and bit-identical values; returns
 * the size. */
size_t group_round_trip(size_t slot_count, const std::vector<chunk::Column> &columns)
{
    std::string bytes, error;
    EXPECT_TRUE(chunk::encode_group(slot_count, columns, bytes, error)) << error;
    chunk::GroupReader reader;
    EXPECT_TRUE(reader.open(bytes.data(), bytes.size(), error)) << error;
    EXPECT_EQ(reader.slot_count(), slot_count);
    EXPECT_EQ(reader.size(), columns.size());
    size_t found = 0;
    for (size_t i = 0; i < reader.size(); i++) {
        chunk::Column c;
        EXPECT_TRUE(reader.column(i, c, error)) << error;
        for (const auto &original : columns) {
            if (original.series_id != c.series_id)
                continue;
            found++;
            EXPECT_EQ(c.slots, original.slots) << "series " << c.series_id;
            EXPECT_EQ(c.values.size(), original.values.size());
            for (size_t k = 0; k < c.values.size() && k < original.values.size(); k++)
                EXPECT_EQ(std::memcmp(&c.values[k], &original.values[k], sizeof(double)), 0)
                    << "series " << c.series_id << " value " << k;
        }
    }
    EXPECT_EQ(found, columns.size());
    return bytes.size();
}

/* A series present in every one of n slots. */
chunk::Column full_column(int64_t id, std::vector<double> values)
{
    chunk::Column c;
    c.series_id = id;
    for (size_t i = 0; i < values.size(); i++)
        c.slots.push_back(static_cast<uint32_t>(i));
    c.values = std::move(values);
    return c;
}

/* n timestamps every 10 s from 2026-01-01 with up to `jitter` ms of noise, like an agent's scrapes. */
std::vector<int64_t> scrape_times(size_t n, int jitter, std::mt19937 &rng)
{
    std::vector<int64_t> ts(n);
    for (size_t i = 0; i < n; i++)
        ts[i] = 1767225600000LL + static_cast<int64_t>(i) * 10000 + (jitter ? static_cast<int64_t>(rng() % jitter) : 0);
    return ts;
}

double bits_to_double(uint64_t bits)
{
    double d;
    std::memcpy(&d, &bits, sizeof(d));
    return d;
}

} // namespace

TEST(ChunkTimes, ScrapeTimesAreCheap)
{
    std::mt19937 rng(1);
    EXPECT_LT(times_round_trip(scrape_times(360, 0, rng)), 16u) << "a regular clock costs a few bytes an hour";
    EXPECT_LT(times_round_trip(scrape_times(360, 4, rng)), 180u) << "0-3 ms of jitter: ~3-4 bits a scrape";
    times_round_trip({1767225600000LL});
    times_round_trip({5, 5, 5, 7, 7}); /* repeated instants: several slots */
    times_round_trip({30, 10, 20});    /* any order round-trips */
}

TEST(ChunkTimes, ExtremeTimestampsRoundTrip)
{
    /* differences overflow int64: wrapping arithmetic on both sides */
    times_round_trip({INT64_MIN + 1, -1, 0, INT64_MAX - 1, INT64_MAX});
    times_round_trip({INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX});
    times_round_trip({0, INT64_MIN, 0, INT64_MIN, 0}); /* differences of INT64_MIN only: no divisor */
}

TEST(ChunkGroup, ValueKindsRoundTripAndShrink)
{
    const size_t n = 360;
    std::mt19937 rng(2);
    std::vector<double> constant(n, 8.0), counter(n), gauge(n), decimals(n), sums(n), noise(n);
    double c = 123456789, s = 5741.68;
    for (size_t i = 0; i < n; i++) {
        c += 50 + rng() % 20; /* a busy counter: ~60 per interval */
        counter[i] = c;
        gauge[i] = static_cast<double>(rng() % 4096);
        decimals[i] = static_cast<double>(rng() % 1000) / 100; /* two decimals, as text gives them */
        s += static_cast<double>(100 + rng() % 90) / 100;      /* a float counter: sums of decimals */
        sums[i] = s;
        uint64_t b = (static_cast<uint64_t>(rng()) << 32) | rng();
        noise[i] = bits_to_double(b);
    }
    EXPECT_LE(group_round_trip(n, {full_column(1, constant)}), 16u) << "a constant: its value once";
    EXPECT_LT(group_round_trip(n, {full_column(1, counter)}), n * 6 / 8 + 40) << "a jittery counter: ~5 bits";
    EXPECT_LT(group_round_trip(n, {full_column(1, gauge)}), n * 14 / 8 + 40) << "a noisy 12-bit gauge";
    EXPECT_LT(group_round_trip(n, {full_column(1, decimals)}), n * 11 / 8 + 40) << "two decimals: as integers";
    EXPECT_LT(group_round_trip(n, {full_column(1, sums)}), n * 2) << "sums of decimals: integers + residuals";
    group_round_trip(n, {full_column(1, noise)});
    group_round_trip(n, {full_column(1, constant), full_column(2, counter), full_column(3, gauge),
                         full_column(4, decimals), full_column(5, sums), full_column(6, noise)});
}

TEST(ChunkGroup, SpecialDoublesSurviveBitForBit)
{
    const double inf = std::numeric_limits<double>::infinity();
    const double nan_payload = bits_to_double(0x7ff8000000000abcULL);
    const double tiny = std::numeric_limits<double>::denorm_min();
    group_round_trip(7, {full_column(9, {0.0, -0.0, inf, -inf, nan_payload, tiny, 1e308})});
    group_round_trip(3, {full_column(9, {-0.0, 0.0, -0.0})});               /* signed zeros among integers */
    group_round_trip(3, {full_column(9, {9007199254740992.0, -9007199254740992.0, 0})}); /* +-2^53 */
    group_round_trip(2, {full_column(9, {1e300, 3})});                      /* beyond 2^53 */
    group_round_trip(2, {full_column(9, {nan_payload, nan_payload})});      /* a constant NaN */
    group_round_trip(4, {full_column(9, {0.1, 0.2, 0.30000000000000004, 1e-15})});
}

TEST(ChunkGroup, PresenceRunsBitmapsAndIds)
{
    std::mt19937 rng(3);
    const size_t n = 500;
    chunk::Column gaps, random, single, last;
    gaps.series_id = INT64_MIN;
    random.series_id = -1;
    single.series_id = 0;
    last.series_id = INT64_MAX;
    for (uint32_t s = 0; s < n; s++) {
        if (s % 100 >= 3) { /* missing from three scrapes in every hundred */
            gaps.slots.push_back(s);
            gaps.values.push_back(s);
        }
        if (rng() % 2) {
            random.slots.push_back(s);
            random.values.push_back(s * 0.5);
        }
    }
    single.slots = {250};
    single.values = {1};
    last.slots = {n - 1};
    last.values = {2};
    group_round_trip(n, {gaps, random, single, last});
}

TEST(ChunkGroup, RandomGroupsRoundTrip)
{
    std::mt19937_64 rng(4);
    for (int round = 0; round < 200; round++) {
        const size_t slots = 1 + rng() % 700;
        std::vector<chunk::Column> columns(1 + rng() % 5);
        for (size_t k = 0; k < columns.size(); k++) {
            columns[k].series_id = static_cast<int64_t>(k * 1000 + rng() % 1000);
            for (uint32_t s = 0; s < slots; s++) {
                if (round % 3 != 0 && rng() % 4 == 0)
                    continue;
                columns[k].slots.push_back(s);
                double v = bits_to_double(rng());
                if (round % 2)
                    v = std::round(std::ldexp(static_cast<double>(rng() % 1000000), static_cast<int>(rng() % 20)));
                if (round % 5 == 1)
                    v = static_cast<double>(static_cast<int64_t>(rng() % 100000) - 50000) / 1000;
                columns[k].values.push_back(v);
            }
            if (columns[k].slots.empty()) {
                columns[k].slots.push_back(0);
                columns[k].values.push_back(1);
            }
        }
        group_round_trip(slots, columns);
    }
}

TEST(ChunkGroup, RefusesBadInput)
{
    std::string bytes, error;
    EXPECT_FALSE(chunk::encode_group(3, {}, bytes, error));
    EXPECT_FALSE(chunk::encode_group(3, {full_column(1, {1, 2}), full_column(1, {3, 4})}, bytes, error));
    EXPECT_EQ(error, "series 1 appears twice in a group");
    EXPECT_FALSE(chunk::encode_group(1, {full_column(1, {1, 2})}, bytes, error)) << "a slot beyond the time list";
    chunk::Column c = full_column(1, {1, 2});
    c.slots = {1, 0};
    EXPECT_FALSE(chunk::encode_group(2, {c}, bytes, error)) << "slots must ascend";
    c.slots = {0};
    EXPECT_FALSE(chunk::encode_group(2, {c}, bytes, error)) << "as many values as slots";
    EXPECT_FALSE(chunk::encode_times(nullptr, 0, bytes, error));
}

TEST(ChunkLayout, SlotsForMergedWindows)
{
    /* two disjoint source windows, and series asking for instants of their own */
    chunk::SlotNeeds needs;
    needs.add_source({10, 20, 30});
    needs.add_source({40, 50});
    needs.add_series({20, 20, 25}); /* two samples at 20, one at a new instant */
    needs.add_series({20, 50});
    const std::vector<int64_t> times = needs.times();
    EXPECT_EQ(times, (std::vector<int64_t>{10, 20, 20, 25, 30, 40, 50}));

    chunk::SeriesSamples s;
    s.series_id = 7;
    s.ts_ms = {20, 20, 25, 50};
    s.values = {1, 2, 3, 4};
    chunk::Column c;
    std::string error;
    ASSERT_TRUE(chunk::to_column(times, s, c, error)) << error;
    EXPECT_EQ(c.slots, (std::vector<uint32_t>{1, 2, 3, 6}));
    chunk::SeriesSamples back;
    chunk::append_samples(times, c, back);
    EXPECT_EQ(back.ts_ms, s.ts_ms);
    EXPECT_EQ(back.values, s.values);

    s.ts_ms = {20, 20, 20}; /* three at 20: the list has two slots there */
    s.values = {1, 2, 3};
    EXPECT_FALSE(chunk::to_column(times, s, c, error));
    s.ts_ms = {15};
    s.values = {1};
    EXPECT_FALSE(chunk::to_column(times, s, c, error));
    s.ts_ms = {30, 20};
    s.values = {1, 2};
    EXPECT_FALSE(chunk::to_column(times, s, c, error)) << "samples must be in time order";
}

TEST(ChunkCorrupt, RefusedNotCrashed)
{
    std::mt19937 rng(5);
    const auto ts = scrape_times(100, 7, rng);
    std::vector<double> sines(100), ints(100);
    for (size_t i = 0; i < 100; i++) {
        sines[i] = std::sin(static_cast<double>(rng() % 1000)) * 100;
        ints[i] = static_cast<double>(rng() % 100000);
    }
    chunk::Column gaps = full_column(3, ints);
    gaps.slots.erase(gaps.slots.begin() + 10, gaps.slots.begin() + 20);
    gaps.values.resize(gaps.slots.size());
    std::string times, group, error;
    ASSERT_TRUE(chunk::encode_times(ts.data(), ts.size(), times, error));
    ASSERT_TRUE(chunk::encode_group(100, {full_column(1, sines), full_column(2, ints), gaps}, group, error));

    std::vector<int64_t> t2;
    chunk::GroupReader reader;
    chunk::Column c;
    auto decodes_whole = [&](const std::string &g, size_t len) {
        if (!reader.open(g.data(), len, error))
            return false;
        for (size_t i = 0; i < reader.size(); i++)
            if (!reader.column(i, c, error))
                return false;
        return true;
    };
    for (size_t len = 0; len < times.size(); len++) /* every truncation */
        EXPECT_FALSE(chunk::decode_times(times.data(), len, t2, error)) << len;
    for (size_t len = 0; len < group.size(); len++)
        EXPECT_FALSE(decodes_whole(group, len)) << len;
    for (int i = 0; i < 20000; i++) { /* random bit flips: any outcome but a crash */
        std::string bad = group;
        bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
        (void) decodes_whole(bad, bad.size());
        bad = times;
        bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
        (void) chunk::decode_times(bad.data(), bad.size(), t2, error);
    }
    const std::string huge_times = {'\x02', '\xff', '\xff', '\xff', '\x7f', '\x00'}; /* claims 2^28 slots */
    EXPECT_FALSE(chunk::decode_times(huge_times.data(), huge_times.size(), t2, error));
    const std::string many_series = {'\x03', '\x01', '\xff', '\xff', '\x3f', '\x00'}; /* 1M series in 6 bytes */
    EXPECT_FALSE(reader.open(many_series.data(), many_series.size(), error));
}

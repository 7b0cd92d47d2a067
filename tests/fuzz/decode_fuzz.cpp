/*
 * tests/fuzz/decode_fuzz.cpp — libFuzzer target: any bytes on any subject through the wire decoder.
 * Invariants checked beyond "no crash, no sanitizer report": a successful decode yields columns of
 * equal length whose series indexes are in range, and every string it yields is valid text.
 * The same bytes also go through the cold tier's decoders (core/chunk_codec.h: a window's time list, a
 * group of series): whatever they accept must re-encode and decode to the same slots and values, bit
 * for bit.
 */
#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/chunk_codec.h"
#include "core/wire.h"

#include <cstring>
#include <vector>

namespace {

namespace chunk = pgfleet::chunk;

bool same_column(const chunk::Column &a, const chunk::Column &b)
{
    return a.series_id == b.series_id && a.slots == b.slots && a.values.size() == b.values.size() &&
           std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(double)) == 0;
}

/* Re-encodes decoded columns as a group of slot_count slots and expects them back. */
void expect_group_round_trip(size_t slot_count, const std::vector<chunk::Column> &columns)
{
    std::string bytes, error;
    chunk::GroupReader again;
    chunk::Column c;
    if (!chunk::encode_group(slot_count, columns, bytes, error) || !again.open(bytes.data(), bytes.size(), error) ||
        again.size() != columns.size() || again.slot_count() != slot_count)
        abort();
    for (size_t i = 0; i < again.size(); i++) /* ids ascend in both */
        if (!again.column(i, c, error) || !same_column(c, columns[i]))
            abort();
}

void check_chunk_codec(const uint8_t *data, size_t size)
{
    std::vector<int64_t> times, times2;
    std::string error, again;
    if (chunk::decode_times(data, size, times, error)) {
        if (!chunk::encode_times(times.data(), times.size(), again, error) ||
            !chunk::decode_times(again.data(), again.size(), times2, error) || times2 != times)
            abort();
    } else if (error.empty()) {
        abort();
    }

    chunk::GroupReader group;
    if (!group.open(data, size, error)) {
        if (error.empty())
            abort();
        return;
    }
    /* small groups are re-encoded whole; large ones (a few bytes can declare millions of slots) one
     * series at a time and only their first series, so memory and time stay bounded */
    const bool whole = group.size() * group.slot_count() <= (size_t{1} << 20);
    const size_t limit = whole ? group.size() : std::max<size_t>(1, (size_t{1} << 24) / group.slot_count());
    std::vector<chunk::Column> columns;
    chunk::Column c;
    for (size_t i = 0; i < group.size() && i < limit; i++) {
        if (!group.column(i, c, error)) {
            if (error.empty())
                abort();
            return;
        }
        if (whole)
            columns.push_back(c);
        else
            expect_group_round_trip(group.slot_count(), {c});
    }
    if (whole)
        expect_group_round_trip(group.slot_count(), columns);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    using namespace pgfleet::wire;
    /* The first byte picks a subject, so subject checks are fuzzed too. */
    static const char *subjects[] = {"fleet.in.default.a.metrics", "fleet.in.x.y.metrics", "fleet.in.default.a.logs",
                                     "fleet.in..a.metrics", "fleet.out.default.a.metrics"};
    Subject subject;
    DecodeStatus sst = parse_subject(size > 0 ? subjects[data[0] % 5] : subjects[0], subject);
    Envelope e;
    DecodeStatus st = decode_envelope(data, size, e);
    if (st.ok) {
        const MetricBatch &m = e.metrics;
        if (m.sample_series.size() != m.sample_value.size() || m.sample_ts_unix_ms.size() != m.sample_value.size())
            abort();
        for (int32_t idx : m.sample_series)
            if (idx < 0 || static_cast<size_t>(idx) >= m.series.size())
                abort();
        if (to_valid_text(e.agent_id) != e.agent_id || to_valid_text(e.boot_id) != e.boot_id)
            abort();
        for (const SeriesDecl &s : m.series)
            if (to_valid_text(s.labels_json) != s.labels_json || s.labels_json.front() != '{')
                abort();
        if (sst.ok)
            (void) check_subject(subject, e);
        (void) envelope_to_json(e);
    } else if (st.reason.empty()) {
        abort();
    }

    check_chunk_codec(data, size);
    return 0;
}

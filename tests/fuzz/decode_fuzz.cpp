/*
 * tests/fuzz/decode_fuzz.cpp — libFuzzer target: any bytes on any subject through the wire decoder.
 * Invariants checked beyond "no crash, no sanitizer report": a successful decode yields columns of
 * equal length whose series indexes are in range, and every string it yields is valid text.
 * The same bytes also go through the cold-tier chunk decoder: whatever it accepts must re-encode
 * and decode to the same samples, bit for bit.
 */
#include <cstdlib>
#include <string>

#include "core/chunk_codec.h"
#include "core/wire.h"

#include <cstring>
#include <vector>

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

    std::vector<int64_t> ts, ts2;
    std::vector<double> values, values2;
    std::string error, again;
    if (pgfleet::chunk::decode(data, size, ts, values, error)) {
        bool sorted = true;
        for (size_t i = 1; i < ts.size(); i++)
            sorted = sorted && ts[i] >= ts[i - 1];
        if (sorted) {
            if (!pgfleet::chunk::encode(ts.data(), values.data(), ts.size(), again, error) ||
                !pgfleet::chunk::decode(again.data(), again.size(), ts2, values2, error) || ts2 != ts ||
                values2.size() != values.size() ||
                std::memcmp(values2.data(), values.data(), values.size() * sizeof(double)) != 0)
                abort();
        }
    } else if (error.empty()) {
        abort();
    }
    return 0;
}

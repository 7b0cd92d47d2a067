/*
 * core/series_key.cpp — the key that identifies one scrape's ordered series list (wire.h,
 * series_set_key).
 *
 * The hot tier stores a scrape as one row of values whose positions refer to a fleet.series_set row
 * (the ordered series ids). Agents send the same series in the same order scrape after scrape, so
 * the ingest worker hashes the scrape's series declarations and looks the set up by that key instead
 * of resolving every series in SQL for every batch.
 *
 * The hash: every sample's declaration is streamed as metric NUL kind NUL unit NUL labels NUL (a
 * NUL never occurs inside these texts: the decoder rejects it), consumed eight bytes at a time by two
 * independent 64-bit multiply-rotate lanes, and finished with the length and a murmur3 fmix64 of
 * each lane. Fast (a few GB/s) and well mixed; not cryptographic, which is acceptable because a key
 * is only ever compared with keys of the same instance (see wire.h).
 */
#include "core/pure.h"

#include <cstring>

#include "core/wire.h"

namespace pgfleet::wire {
namespace {

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

} // namespace

bool SeriesSetKey::operator==(const SeriesSetKey &other) const
{
    return memcmp(bytes, other.bytes, sizeof bytes) == 0;
}

void SeriesSetHasher::add_series(std::string_view metric, std::string_view kind, std::string_view unit,
                                 std::string_view labels_json)
{
    add_terminated(metric);
    add_terminated(kind);
    add_terminated(unit);
    add_terminated(labels_json);
}

void SeriesSetHasher::add_terminated(std::string_view text)
{
    add(text.data(), text.size());
    add("", 1);
}

/* Feeds bytes to the two lanes eight at a time, keeping a partial word for the next call. */
void SeriesSetHasher::add(const char *data, size_t size)
{
    length_ += size;
    while (size > 0) {
        size_t take = size < 8 - fill_ ? size : 8 - fill_;
        memcpy(pending_ + fill_, data, take);
        fill_ += take;
        data += take;
        size -= take;
        if (fill_ == 8) {
            uint64_t word;
            memcpy(&word, pending_, 8);
            mix(word);
            fill_ = 0;
        }
    }
}

void SeriesSetHasher::mix(uint64_t word)
{
    a_ = rotl(a_ ^ (word * kPrime1), 31) * kPrime2;
    b_ = rotl(b_ + (word * kPrime2), 27) * kPrime1 + kPrime3;
}

SeriesSetKey SeriesSetHasher::finish() const
{
    uint64_t a = a_, b = b_;
    if (fill_ > 0) {
        uint64_t word = 0;
        memcpy(&word, pending_, fill_);
        a = rotl(a ^ (word * kPrime1), 31) * kPrime2;
        b = rotl(b + (word * kPrime2), 27) * kPrime1 + kPrime3;
    }
    a = fmix64(a ^ length_);
    b = fmix64(b ^ (length_ * kPrime3));
    a += b;
    b += a;
    SeriesSetKey key;
    memcpy(key.bytes, &a, 8);
    memcpy(key.bytes + 8, &b, 8);
    return key;
}

SeriesSetKey series_set_key(const MetricBatch &batch, size_t begin, size_t end)
{
    SeriesSetHasher hasher;
    for (size_t i = begin; i < end && i < batch.sample_series.size(); i++) {
        int32_t index = batch.sample_series[i];
        if (index < 0)
            continue; /* a reference's samples: never passed here by the decoder */
        const SeriesDecl &decl = batch.series[static_cast<size_t>(index)];
        hasher.add_series(decl.metric, decl.kind, decl.unit, decl.labels_json);
    }
    return hasher.finish();
}

void append_labels_json(std::string &out, const std::vector<std::pair<std::string_view, std::string_view>> &sorted_labels)
{
    out.push_back('{');
    for (size_t i = 0; i < sorted_labels.size(); i++) {
        if (i > 0)
            out.push_back(',');
        append_json_string(out, sorted_labels[i].first);
        out.push_back(':');
        append_json_string(out, sorted_labels[i].second);
    }
    out.push_back('}');
}

} // namespace pgfleet::wire

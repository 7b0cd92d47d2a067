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

/* Two-lane streaming hash over a byte sequence fed in pieces. */
class KeyHasher {
public:
    void add(const char *data, size_t size)
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
    void add_terminated(const std::string &text)
    {
        add(text.data(), text.size());
        add("", 1);
    }
    SeriesSetKey finish()
    {
        uint64_t word = 0;
        if (fill_ > 0) {
            memcpy(&word, pending_, fill_);
            mix(word);
        }
        uint64_t a = fmix64(a_ ^ length_);
        uint64_t b = fmix64(b_ ^ (length_ * kPrime3));
        a += b;
        b += a;
        SeriesSetKey key;
        memcpy(key.bytes, &a, 8);
        memcpy(key.bytes + 8, &b, 8);
        return key;
    }

private:
    void mix(uint64_t word)
    {
        a_ = rotl(a_ ^ (word * kPrime1), 31) * kPrime2;
        b_ = rotl(b_ + (word * kPrime2), 27) * kPrime1 + kPrime3;
    }

    uint64_t a_ = 0x243F6A8885A308D3ULL;
    uint64_t b_ = 0x13198A2E03707344ULL;
    uint64_t length_ = 0;
    char pending_[8] = {0};
    size_t fill_ = 0;
};

} // namespace

SeriesSetKey series_set_key(const MetricBatch &batch, size_t begin, size_t end)
{
    KeyHasher hasher;
    for (size_t i = begin; i < end && i < batch.sample_series.size(); i++) {
        const SeriesDecl &decl = batch.series[static_cast<size_t>(batch.sample_series[i])];
        hasher.add_terminated(decl.metric);
        hasher.add_terminated(decl.kind);
        hasher.add_terminated(decl.unit);
        hasher.add_terminated(decl.labels_json);
    }
    return hasher.finish();
}

} // namespace pgfleet::wire

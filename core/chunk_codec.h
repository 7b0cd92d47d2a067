/*
 * core/chunk_codec.h — the cold tier's storage formats (fleet.sample_chunk, docs/storage.md).
 *
 * The cold tier stores one instance's samples per time window (an hour, or a whole UTC day once the
 * day is over) as one row of scrape times and one row per metric:
 *
 *   times   the window's time list: every scrape timestamp (ms since the Unix epoch), sorted, each
 *           as often as the series with the most samples at that instant needs (usually once). A
 *           position in this list is a slot. Stored once for all series of the instance.
 *   group   the series of one metric: per series its presence (which slots it has) and its values.
 *           A series present in every scrape of the window stores no timestamps at all.
 *
 * Formats (v2; every read is bounds-checked, so corrupt input yields an error, never a crash, and
 * whatever decodes re-encodes to the same samples):
 *
 *   times   byte 0x02, varint n (slot count, 1..kMaxSlots), int stream of the n timestamps
 *   group   byte 0x03, varint m (slot count of the time list it was encoded against), varint k
 *           (series, 1..kMaxSeries), k x (varint series-id step: the first id zigzag, then the
 *           difference to the previous id, >= 1), k x varint payload length, then the k payloads.
 *           Decoding one series skips the others' payloads.
 *   payload presence byte: 0 = every slot; 1 = runs (varint count, then alternating absent/present
 *           run lengths, absent first); 2 = bitmap of m bits. Then the values of the c present slots:
 *           value byte 0 = constant (8 bytes, IEEE little-endian); 1 = decimal: byte d (0..15), int
 *           stream of the integers m_i with value_i = double(m_i) / 10^d exactly; 2 = decimal with
 *           residuals: as 1, plus an int stream of r_i added to the bits of double(m_i) / 10^d (floats
 *           a few ulps off a short decimal, as sums of decimals are); 3 = Gorilla XOR of the IEEE bits.
 *           The encoder keeps the smallest. Integral values are decimals with d = 0.
 *   int stream  byte o (0..2, the order of differences), o leading values as zigzag varints (the
 *           first value; for o = 2 also the first difference), varint g (the greatest common divisor
 *           of the order-o differences; 0 = all zero, nothing follows), then the differences / g in
 *           blocks of 16, bit-packed: per block a header ('1' = same as the previous block's, or '0',
 *           7 bits width w, Exp-Golomb zigzag of the change of the block minimum), then each value
 *           minus the block minimum in w bits; padded to a byte. The encoder keeps the smallest order.
 *           All arithmetic wraps modulo 2^64, so any int64 round-trips.
 *
 * Lossless: NaN payloads, infinities and signed zeros come back bit for bit (XOR or residuals).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pgfleet::chunk {

constexpr size_t kMaxSlots = size_t{1} << 22;  /* per window: 48 scrapes a second for a whole day */
constexpr size_t kMaxSeries = size_t{1} << 20; /* per group */

/* One series in a group: the slots it has (strictly ascending, < the slot count) and their values. */
struct Column {
    int64_t series_id = 0;
    std::vector<uint32_t> slots;
    std::vector<double> values;
};

/* One series' samples in time order (equal timestamps allowed). */
struct SeriesSamples {
    int64_t series_id = 0;
    std::vector<int64_t> ts_ms;
    std::vector<double> values;
};

/* The time list of a window; false (and why) when n is 0 or beyond kMaxSlots. */
bool encode_times(const int64_t *ts_ms, size_t n, std::string &out, std::string &error);
bool decode_times(const void *data, size_t size, std::vector<int64_t> &ts_ms, std::string &error);

/* A group of series over a time list of slot_count slots; columns in any order, series ids distinct,
 * each with at least one slot. False and why on invalid input. */
bool encode_group(size_t slot_count, const std::vector<Column> &columns, std::string &out, std::string &error);

/* Reads a group: the header at open(), one series' payload on demand. The data must outlive the
 * reader. */
class GroupReader {
public:
    bool open(const void *data, size_t size, std::string &error);
    size_t slot_count() const { return slot_count_; }
    size_t size() const { return ids_.size(); }
    int64_t series_id(size_t i) const { return ids_[i]; }
    /* Decodes series i (i < size()) into out; false and why when its payload is corrupt. */
    bool column(size_t i, Column &out, std::string &error) const;

private:
    const uint8_t *data_ = nullptr;
    size_t slot_count_ = 0;
    std::vector<int64_t> ids_;
    std::vector<size_t> offsets_; /* size() + 1 payload boundaries */
};

/*
 * Building a window. SlotNeeds collects how many slots each timestamp needs: a source window's time
 * list adds its slots (sources are disjoint windows being merged, so their counts add up), a series
 * asks for as many slots as it has samples at each instant (the largest ask wins). times() is the
 * resulting time list; to_column places a series on it.
 */
class SlotNeeds {
public:
    void add_source(const std::vector<int64_t> &times);
    void add_series(const std::vector<int64_t> &sorted_ts);
    std::vector<int64_t> times() const;
    bool empty() const { return sources_.empty() && series_.empty(); }

private:
    std::vector<std::pair<int64_t, uint32_t>> sources_, series_;
};

/* The slots of a series' samples (ts sorted) on a sorted time list; false when the list lacks one. */
bool to_column(const std::vector<int64_t> &times, const SeriesSamples &samples, Column &out, std::string &error);

/* Appends a decoded column's samples, with their timestamps from the time list, to out (same series). */
void append_samples(const std::vector<int64_t> &times, const Column &column, SeriesSamples &out);

} // namespace pgfleet::chunk

/*
 * core/wire_pack.cpp — packing and zstd compression of metrics payloads (see wire_pack.h).
 *
 * Integral test: a value v is sent as an integer delta when it is finite, equal to its truncation,
 * within +-2^53 (so int64 arithmetic and the conversion back are exact) and not -0.0 (whose sign the
 * integer form would lose). The delta is taken against the previous integral value of the same series
 * (scrape ref) in this batch, so a counter scraped several times per batch costs a small varint per
 * scrape; the first value of a series is a delta against 0. A based scrape's (schema_minor 3) integral
 * values are differences to the keyframe's values at the same positions, in their own list
 * (base_deltas, so that an older decoder refuses them rather than store differences as values). A
 * based scrape's series appear in no other scrape of its batch (the decoder checks it), so its
 * differences never chain with other scrapes'.
 */
#include "core/pure.h"

#include "core/wire_pack.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include <zstd.h>

namespace pgfleet::wire {
namespace {

constexpr double kMaxExactInteger = 9007199254740992.0; /* 2^53 */

bool is_integral(double v)
{
    if (!std::isfinite(v) || std::fabs(v) > kMaxExactInteger || v != std::trunc(v))
        return false;
    return !(v == 0.0 && std::signbit(v));
}

constexpr int kMaxDecimalScale = 15; /* 10^15 < 2^53: every power used is an exact double */
const double kPowersOfTen[kMaxDecimalScale + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* Decimal form only pays when the mantissa's varint is well under a double's 8 bytes: at most 6
 * bytes, |m| < 2^41 (about 12 significant digits). */
constexpr double kMaxDecimalMantissa = 2199023255552.0; /* 2^41 */

/* The smallest scale s in 1..15 with v == m / 10^s bit for bit for an integer |m| < 2^41 (m set),
 * or 0 when there is none (NaN, infinities, -0.0, binary fractions like 1/3, 17-digit values). */
int decimal_scale(double v, int64_t &m)
{
    if (!std::isfinite(v))
        return 0;
    for (int s = 1; s <= kMaxDecimalScale; s++) {
        double scaled = v * kPowersOfTen[s];
        if (std::fabs(scaled) > kMaxDecimalMantissa)
            return 0;
        int64_t candidate = static_cast<int64_t>(std::nearbyint(scaled));
        double back = static_cast<double>(candidate) / kPowersOfTen[s]; /* exactly what the decoder computes */
        if (std::memcmp(&back, &v, sizeof v) == 0) {
            m = candidate;
            return s;
        }
    }
    return 0;
}

/* A scrape that refers to a series set by key (schema_minor 2) instead of naming its series. */
bool is_reference(const v1::Scrape &scrape)
{
    return scrape.refs_size() == 0 && !scrape.set_key().empty();
}

/* The previous integral values a delta is taken against: per series ref for declared scrapes, per
 * (set key, position) for references. Both start at 0. */
class DeltaBases {
public:
    int64_t &at(const v1::Scrape &scrape, int k)
    {
        if (!is_reference(scrape))
            return by_ref_[scrape.refs(k)];
        std::vector<int64_t> &set = by_set_[scrape.set_key()];
        if (set.size() <= static_cast<size_t>(k))
            set.resize(static_cast<size_t>(k) + 1, 0);
        return set[static_cast<size_t>(k)];
    }

private:
    std::unordered_map<uint32_t, int64_t> by_ref_;
    std::unordered_map<std::string, std::vector<int64_t>> by_set_;
};

} // namespace

void pack_metric_batch(v1::MetricBatch &batch, const std::vector<const std::vector<double> *> *bases)
{
    if (batch.has_packed())
        return;
    v1::PackedValues *packed = batch.mutable_packed();
    size_t total = 0;
    for (const auto &scrape : batch.scrapes())
        total += static_cast<size_t>(scrape.values_size());
    std::string bitmap((total + 7) / 8, '\0');
    std::string scales;
    DeltaBases previous;
    int64_t previous_ts = 0;
    size_t j = 0;
    for (int s = 0; s < batch.scrapes_size(); s++) {
        v1::Scrape &scrape = *batch.mutable_scrapes(s);
        packed->add_ts_deltas_ms(scrape.ts_unix_ms() - previous_ts);
        previous_ts = scrape.ts_unix_ms();
        if (is_reference(scrape))
            scrape.set_value_count(static_cast<uint32_t>(scrape.values_size()));
        const std::vector<double> *base =
            scrape.base_seq() != 0 && bases != nullptr && static_cast<size_t>(s) < bases->size() ? (*bases)[s] : nullptr;
        if (scrape.base_seq() != 0 && (base == nullptr || base->size() != static_cast<size_t>(scrape.values_size())))
            scrape.clear_base_seq(); /* no usable keyframe values: the scrape goes whole */
        for (int k = 0; k < scrape.values_size(); k++, j++) {
            double v = scrape.values(k);
            if (base != nullptr && scrape.base_seq() != 0) {
                double b = (*base)[static_cast<size_t>(k)];
                if (is_integral(v) && is_integral(b)) {
                    int64_t difference = static_cast<int64_t>(v) - static_cast<int64_t>(b);
                    if (difference <= static_cast<int64_t>(kMaxExactInteger) &&
                        difference >= -static_cast<int64_t>(kMaxExactInteger)) {
                        packed->add_base_deltas(difference);
                        continue;
                    } /* else whole, as a double: the difference would not be an exact double */
                }
            } else if (is_integral(v)) {
                int64_t iv = static_cast<int64_t>(v);
                int64_t &prev = previous.at(scrape, k); /* 0 for a series' first value */
                packed->add_int_deltas(iv - prev);
                prev = iv;
                continue;
            }
            bitmap[j / 8] = static_cast<char>(static_cast<unsigned char>(bitmap[j / 8]) | (1u << (j % 8)));
            int64_t mantissa = 0;
            int scale = decimal_scale(v, mantissa);
            scales.push_back(static_cast<char>(scale));
            if (scale > 0)
                packed->add_decimal_mantissas(mantissa);
            else
                packed->add_doubles(v);
        }
        scrape.set_ts_unix_ms(0);
        scrape.clear_values();
    }
    packed->set_double_bitmap(std::move(bitmap));
    if (packed->decimal_mantissas_size() > 0) /* otherwise every non-integral value is a double: no scales */
        packed->set_decimal_scales(std::move(scales));
}

bool unpack_metric_batch(v1::MetricBatch &batch, std::string &error, std::vector<uint8_t> *base_relative)
{
    if (base_relative != nullptr)
        base_relative->clear();
    if (!batch.has_packed())
        return true;
    const v1::PackedValues &packed = batch.packed();
    if (packed.ts_deltas_ms_size() != batch.scrapes_size()) {
        error = "packed values carry " + std::to_string(packed.ts_deltas_ms_size()) + " timestamps for " +
                std::to_string(batch.scrapes_size()) + " scrapes";
        return false;
    }
    size_t total = 0;
    for (const auto &scrape : batch.scrapes()) {
        if (scrape.values_size() != 0 || scrape.ts_unix_ms() != 0) {
            error = "a scrape of a packed batch carries its own timestamp or values";
            return false;
        }
        if (!is_reference(scrape) && scrape.value_count() != 0) {
            error = "a scrape with refs carries a value count";
            return false;
        }
        total += static_cast<size_t>(is_reference(scrape) ? scrape.value_count() : scrape.refs_size());
    }
    const std::string &bitmap = packed.double_bitmap();
    if (bitmap.size() != (total + 7) / 8) {
        error = "the double bitmap has " + std::to_string(bitmap.size()) + " bytes for " + std::to_string(total) + " values";
        return false;
    }
    size_t non_integral = 0;
    for (size_t j = 0; j < total; j++)
        non_integral += (static_cast<unsigned char>(bitmap[j / 8]) >> (j % 8)) & 1u;
    const std::string &scales = packed.decimal_scales();
    size_t decimals = 0;
    for (char c : scales) {
        if (static_cast<unsigned char>(c) > kMaxDecimalScale) {
            error = "a decimal scale is above 15";
            return false;
        }
        decimals += c != 0;
    }
    if ((!scales.empty() && scales.size() != non_integral) ||
        non_integral - decimals != static_cast<size_t>(packed.doubles_size()) ||
        decimals != static_cast<size_t>(packed.decimal_mantissas_size()) ||
        total - non_integral != static_cast<size_t>(packed.int_deltas_size()) + static_cast<size_t>(packed.base_deltas_size())) {
        error = "packed values do not add up: " + std::to_string(total) + " values, " +
                std::to_string(packed.doubles_size()) + " doubles, " + std::to_string(packed.decimal_mantissas_size()) +
                " decimals, " + std::to_string(packed.int_deltas_size()) + " integer deltas, " +
                std::to_string(packed.base_deltas_size()) + " differences to keyframes";
        return false;
    }
    const bool any_based = std::any_of(batch.scrapes().begin(), batch.scrapes().end(),
                                       [](const v1::Scrape &scrape) { return scrape.base_seq() != 0; });
    if (any_based && base_relative != nullptr)
        base_relative->assign(total, 0);
    DeltaBases previous;
    int64_t ts = 0;
    size_t j = 0, next_double = 0, next_int = 0, next_base = 0, next_scale = 0, next_decimal = 0;
    const size_t int_count = static_cast<size_t>(packed.int_deltas_size());
    const size_t base_count = static_cast<size_t>(packed.base_deltas_size());
    for (int s = 0; s < batch.scrapes_size(); s++) {
        v1::Scrape *scrape = batch.mutable_scrapes(s);
        const bool based = scrape->base_seq() != 0;
        /* wrapping arithmetic: a hostile delta must not be undefined behaviour; the decoder checks the range */
        ts = static_cast<int64_t>(static_cast<uint64_t>(ts) + static_cast<uint64_t>(packed.ts_deltas_ms(s)));
        scrape->set_ts_unix_ms(ts);
        const int count = static_cast<int>(is_reference(*scrape) ? scrape->value_count() : scrape->refs_size());
        scrape->set_value_count(0);
        for (int k = 0; k < count; k++, j++) {
            if ((static_cast<unsigned char>(bitmap[j / 8]) >> (j % 8)) & 1u) {
                int scale = scales.empty() ? 0 : static_cast<unsigned char>(scales[next_scale++]);
                if (scale == 0) {
                    scrape->add_values(packed.doubles(static_cast<int>(next_double++)));
                    continue;
                }
                int64_t mantissa = packed.decimal_mantissas(static_cast<int>(next_decimal++));
                if (mantissa > static_cast<int64_t>(kMaxExactInteger) || mantissa < -static_cast<int64_t>(kMaxExactInteger)) {
                    error = "a decimal mantissa is outside +-2^53";
                    return false;
                }
                scrape->add_values(static_cast<double>(mantissa) / kPowersOfTen[scale]);
                continue;
            }
            if (based ? next_base >= base_count : next_int >= int_count) {
                error = based ? "a based scrape has more integral values than base_deltas" :
                                "the scrapes have more integral values than int_deltas";
                return false;
            }
            const int64_t delta = based ? packed.base_deltas(static_cast<int>(next_base++))
                                        : packed.int_deltas(static_cast<int>(next_int++));
            if (based) { /* a difference to the keyframe: the caller adds the keyframe's value */
                if (delta > static_cast<int64_t>(kMaxExactInteger) || delta < -static_cast<int64_t>(kMaxExactInteger)) {
                    error = "a difference to a keyframe is outside +-2^53";
                    return false;
                }
                if (base_relative != nullptr)
                    (*base_relative)[j] = 1;
                scrape->add_values(static_cast<double>(delta));
                continue;
            }
            int64_t &prev = previous.at(*scrape, k);
            prev = static_cast<int64_t>(static_cast<uint64_t>(prev) + static_cast<uint64_t>(delta));
            if (prev > static_cast<int64_t>(kMaxExactInteger) || prev < -static_cast<int64_t>(kMaxExactInteger)) {
                error = "an integer value is outside +-2^53";
                return false;
            }
            scrape->add_values(static_cast<double>(prev));
        }
    }
    if (next_base != base_count) { /* (then next_int != int_count too: the totals add up) */
        error = "base_deltas carries values of no based scrape";
        return false;
    }
    batch.clear_packed();
    return true;
}

bool scrape_set_key(const v1::MetricBatch &batch, const v1::Scrape &scrape, SeriesSetKey &key, std::string &error)
{
    std::unordered_map<uint32_t, const v1::SeriesDecl *> decl_of_ref;
    decl_of_ref.reserve(static_cast<size_t>(batch.series_size()));
    for (const auto &decl : batch.series())
        decl_of_ref.emplace(decl.ref(), &decl);
    SeriesSetHasher hasher;
    std::vector<std::pair<std::string_view, std::string_view>> labels;
    std::string labels_json;
    for (uint32_t ref : scrape.refs()) {
        auto it = decl_of_ref.find(ref);
        if (it == decl_of_ref.end()) {
            error = "series ref " + std::to_string(ref) + " is not declared";
            return false;
        }
        const v1::SeriesDecl &decl = *it->second;
        labels.clear();
        for (const auto &label : decl.labels())
            labels.emplace_back(label.name(), label.value());
        std::sort(labels.begin(), labels.end());
        labels_json.clear();
        append_labels_json(labels_json, labels);
        hasher.add_series(decl.metric(), decl.kind() == v1::COUNTER ? "counter" : "gauge", decl.unit(), labels_json);
    }
    key = hasher.finish();
    return true;
}

void make_references(v1::MetricBatch &batch, const std::vector<SeriesSetKey> &keys)
{
    for (int k = 0; k < batch.scrapes_size() && static_cast<size_t>(k) < keys.size(); k++) {
        v1::Scrape *scrape = batch.mutable_scrapes(k);
        scrape->clear_refs();
        scrape->set_set_key(keys[static_cast<size_t>(k)].bytes, sizeof keys[static_cast<size_t>(k)].bytes);
    }
    batch.clear_series();
}

bool compress_metrics(v1::Envelope &envelope, int level, std::string &error)
{
    if (!envelope.has_metrics()) {
        error = "the envelope carries no metrics";
        return false;
    }
    std::string plain;
    if (!envelope.metrics().SerializeToString(&plain)) {
        error = "cannot serialize the metrics";
        return false;
    }
    std::string compressed(ZSTD_compressBound(plain.size()), '\0');
    size_t n = ZSTD_compress(compressed.data(), compressed.size(), plain.data(), plain.size(), level);
    if (ZSTD_isError(n)) {
        error = std::string("zstd: ") + ZSTD_getErrorName(n);
        return false;
    }
    compressed.resize(n);
    envelope.set_metrics_zstd(std::move(compressed)); /* replaces the metrics member of the oneof */
    return true;
}

bool decompress_metrics(const std::string &compressed, size_t max_bytes, v1::MetricBatch &batch, std::string &error)
{
    unsigned long long size = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
    if (size == ZSTD_CONTENTSIZE_ERROR) {
        error = "metrics_zstd is not a zstd frame";
        return false;
    }
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
        error = "the zstd frame does not state its content size";
        return false;
    }
    if (size > max_bytes) {
        error = "the zstd frame decompresses to " + std::to_string(size) + " bytes, more than " + std::to_string(max_bytes);
        return false;
    }
    std::string plain(static_cast<size_t>(size), '\0');
    size_t n = ZSTD_decompress(plain.data(), plain.size(), compressed.data(), compressed.size());
    if (ZSTD_isError(n) || n != plain.size()) {
        error = ZSTD_isError(n) ? std::string("zstd: ") + ZSTD_getErrorName(n) : "the zstd frame is shorter than it says";
        return false;
    }
    if (!batch.ParseFromString(plain)) {
        error = "the decompressed metrics are not a pgfleet.wire.v1.MetricBatch";
        return false;
    }
    return true;
}

} // namespace pgfleet::wire

/*
 * core/chunk_codec.cpp — the chunk codec (see chunk_codec.h for the format).
 */
#include "core/pure.h"

#include "core/chunk_codec.h"

#include <cmath>
#include <cstring>

namespace pgfleet::chunk {

namespace {

constexpr uint8_t kVersion = 1;
constexpr uint8_t kModeXor = 0;
constexpr uint8_t kModeIntegerDod = 1;
constexpr uint8_t kModeIntegerDelta = 2;
constexpr size_t kMaxSamples = 1u << 24;
constexpr double kMaxExactInteger = 9007199254740992.0; /* 2^53 */

/* Appends bits, most significant first. */
class BitWriter {
public:
    explicit BitWriter(std::string &out) : out_(out) {}
    void write(uint64_t value, int bits)
    {
        for (int i = bits - 1; i >= 0; i--) {
            if (used_ == 0)
                out_.push_back('\0');
            if ((value >> i) & 1u)
                out_.back() = static_cast<char>(static_cast<uint8_t>(out_.back()) | (0x80u >> used_));
            used_ = (used_ + 1) & 7;
        }
    }

private:
    std::string &out_;
    int used_ = 0; /* bits used in the last byte, 0 = start a new byte */
};

/* Reads bits, most significant first; every read is bounds-checked. */
class BitReader {
public:
    BitReader(const uint8_t *data, size_t size) : data_(data), size_(size) {}
    bool read(int bits, uint64_t &value)
    {
        if (bits > 64 || pos_ + static_cast<size_t>(bits) > size_ * 8)
            return false;
        value = 0;
        for (int i = 0; i < bits; i++, pos_++)
            value = (value << 1) | ((data_[pos_ >> 3] >> (7 - (pos_ & 7))) & 1u);
        return true;
    }
    bool bit(bool &b)
    {
        uint64_t v;
        if (!read(1, v))
            return false;
        b = v != 0;
        return true;
    }

private:
    const uint8_t *data_;
    size_t size_;
    size_t pos_ = 0;
};

uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

void put_varint(std::string &out, uint64_t v)
{
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7F) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

bool get_varint(const uint8_t *data, size_t size, size_t &pos, uint64_t &v)
{
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (pos >= size)
            return false;
        uint8_t b = data[pos++];
        v |= static_cast<uint64_t>(b & 0x7F) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* Sign-extends the low `bits` bits of v. */
int64_t sign_extend(uint64_t v, int bits)
{
    const uint64_t m = uint64_t{1} << (bits - 1);
    return static_cast<int64_t>((v ^ m) - m);
}

/* Writes a delta-of-delta in the smallest bucket that holds it (two's complement in 7, 12, 20 or 64 bits). */
void write_dod(BitWriter &w, int64_t dod)
{
    if (dod == 0) {
        w.write(0, 1);
    } else if (dod >= -64 && dod <= 63) {
        w.write(0b10, 2);
        w.write(static_cast<uint64_t>(dod) & 0x7F, 7);
    } else if (dod >= -2048 && dod <= 2047) {
        w.write(0b110, 3);
        w.write(static_cast<uint64_t>(dod) & 0xFFF, 12);
    } else if (dod >= -524288 && dod <= 524287) {
        w.write(0b1110, 4);
        w.write(static_cast<uint64_t>(dod) & 0xFFFFF, 20);
    } else {
        w.write(0b1111, 4);
        w.write(static_cast<uint64_t>(dod), 64);
    }
}

bool read_dod(BitReader &r, int64_t &dod)
{
    static const int widths[] = {7, 12, 20};
    bool b;
    int ones = 0;
    while (ones < 4) {
        if (!r.bit(b))
            return false;
        if (!b)
            break;
        ones++;
    }
    if (ones == 0) {
        dod = 0;
        return true;
    }
    uint64_t v;
    if (ones == 4) {
        if (!r.read(64, v))
            return false;
        dod = static_cast<int64_t>(v);
        return true;
    }
    if (!r.read(widths[ones - 1], v))
        return false;
    dod = sign_extend(v, widths[ones - 1]);
    return true;
}

int count_leading_zeros(uint64_t v) { return v == 0 ? 64 : __builtin_clzll(v); }
int count_trailing_zeros(uint64_t v) { return v == 0 ? 64 : __builtin_ctzll(v); }

uint64_t bits_of(double d)
{
    uint64_t u;
    std::memcpy(&u, &d, sizeof(u));
    return u;
}

double double_of(uint64_t u)
{
    double d;
    std::memcpy(&d, &u, sizeof(d));
    return d;
}

/* True when every value is an integer that a double holds exactly, and not -0.0. */
bool all_integral(const double *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = values[i];
        if (!std::isfinite(v) || std::fabs(v) > kMaxExactInteger || v != std::trunc(v) || (v == 0 && std::signbit(v)))
            return false;
    }
    return true;
}

} // namespace

namespace {

/* Encodes with one value mode (see the format); the input is already checked. */
void encode_with_mode(const int64_t *ts_ms, const double *values, size_t n, uint8_t mode, std::string &out)
{
    out.clear();
    out.push_back(static_cast<char>(kVersion));
    out.push_back(static_cast<char>(mode));
    put_varint(out, n);
    put_varint(out, zigzag(ts_ms[0]));

    BitWriter w(out);
    int64_t prev_delta = 0;
    for (size_t i = 1; i < n; i++) {
        /* wrapping arithmetic, as in decode: extreme timestamps (anything the decoder accepted) round-trip
         * modulo 2^64 without signed overflow */
        int64_t delta = static_cast<int64_t>(static_cast<uint64_t>(ts_ms[i]) - static_cast<uint64_t>(ts_ms[i - 1]));
        write_dod(w, static_cast<int64_t>(static_cast<uint64_t>(delta) - static_cast<uint64_t>(prev_delta)));
        prev_delta = delta;
    }

    if (mode != kModeXor) {
        int64_t prev = 0, prev_d = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t v = static_cast<int64_t>(values[i]);
            int64_t d = v - prev; /* |v| <= 2^53, so no overflow */
            write_dod(w, mode == kModeIntegerDod ? d - prev_d : d);
            prev = v;
            prev_d = d;
        }
    } else {
        uint64_t prev = bits_of(values[0]);
        w.write(prev, 64);
        int prev_lead = -1, prev_trail = 0;
        for (size_t i = 1; i < n; i++) {
            uint64_t cur = bits_of(values[i]);
            uint64_t x = cur ^ prev;
            prev = cur;
            if (x == 0) {
                w.write(0, 1);
                continue;
            }
            int lead = count_leading_zeros(x), trail = count_trailing_zeros(x);
            if (lead > 63)
                lead = 63;
            if (prev_lead >= 0 && lead >= prev_lead && trail >= prev_trail) {
                w.write(0b10, 2);
                w.write(x >> prev_trail, 64 - prev_lead - prev_trail);
            } else {
                int len = 64 - lead - trail;
                w.write(0b11, 2);
                w.write(static_cast<uint64_t>(lead), 6);
                w.write(static_cast<uint64_t>(len - 1), 6);
                w.write(x >> trail, len);
                prev_lead = lead;
                prev_trail = trail;
            }
        }
    }
}

} // namespace

bool encode(const int64_t *ts_ms, const double *values, size_t n, std::string &out, std::string &error)
{
    if (n == 0 || n > kMaxSamples) {
        error = "a chunk holds 1 to 16777216 samples";
        return false;
    }
    for (size_t i = 1; i < n; i++)
        if (ts_ms[i] < ts_ms[i - 1]) {
            error = "timestamps must not decrease";
            return false;
        }
    const bool integers = all_integral(values, n);
    if (integers) { /* try both integer modes, keep the smaller */
        std::string other;
        encode_with_mode(ts_ms, values, n, kModeIntegerDod, out);
        encode_with_mode(ts_ms, values, n, kModeIntegerDelta, other);
        if (other.size() < out.size())
            out.swap(other);
    } else {
        encode_with_mode(ts_ms, values, n, kModeXor, out);
    }
    return true;
}



bool decode(const void *data, size_t size, std::vector<int64_t> &ts_ms, std::vector<double> &values, std::string &error)
{
    const auto *p = static_cast<const uint8_t *>(data);
    size_t pos = 2;
    uint64_t n = 0, first = 0;
    if (size < 2 || p[0] != kVersion || p[1] > kModeIntegerDelta) {
        error = "not a version 1 chunk";
        return false;
    }
    if (!get_varint(p, size, pos, n) || n == 0 || n > kMaxSamples || !get_varint(p, size, pos, first)) {
        error = "chunk header is corrupt";
        return false;
    }
    /* Each sample needs at least two bits (one per stream): a count beyond that is corrupt. */
    if (n > (size - pos) * 8) {
        error = "chunk is shorter than its sample count";
        return false;
    }
    ts_ms.assign(n, 0);
    values.assign(n, 0.0);
    BitReader r(p + pos, size - pos);
    int64_t ts = unzigzag(first), delta = 0;
    ts_ms[0] = ts;
    for (size_t i = 1; i < n; i++) {
        int64_t dod;
        if (!read_dod(r, dod)) {
            error = "chunk timestamps are truncated";
            return false;
        }
        delta = static_cast<int64_t>(static_cast<uint64_t>(delta) + static_cast<uint64_t>(dod));
        ts = static_cast<int64_t>(static_cast<uint64_t>(ts) + static_cast<uint64_t>(delta));
        ts_ms[i] = ts;
    }
    if (p[1] != kModeXor) {
        int64_t v = 0, d = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t dod;
            if (!read_dod(r, dod)) {
                error = "chunk values are truncated";
                return false;
            }
            d = p[1] == kModeIntegerDod ? static_cast<int64_t>(static_cast<uint64_t>(d) + static_cast<uint64_t>(dod)) : dod;
            v = static_cast<int64_t>(static_cast<uint64_t>(v) + static_cast<uint64_t>(d));
            values[i] = static_cast<double>(v);
        }
        return true;
    }
    uint64_t prev;
    if (!r.read(64, prev)) {
        error = "chunk values are truncated";
        return false;
    }
    values[0] = double_of(prev);
    int prev_lead = -1, prev_trail = 0;
    for (size_t i = 1; i < n; i++) {
        bool b;
        if (!r.bit(b)) {
            error = "chunk values are truncated";
            return false;
        }
        if (b) {
            uint64_t control, x;
            if (!r.read(1, control)) {
                error = "chunk values are truncated";
                return false;
            }
            if (control == 0) {
                if (prev_lead < 0 || !r.read(64 - prev_lead - prev_trail, x)) {
                    error = "chunk values are corrupt";
                    return false;
                }
                prev ^= x << prev_trail;
            } else {
                uint64_t lead, len_minus_1;
                if (!r.read(6, lead) || !r.read(6, len_minus_1) || lead + len_minus_1 + 1 > 64 ||
                    !r.read(static_cast<int>(len_minus_1 + 1), x)) {
                    error = "chunk values are corrupt";
                    return false;
                }
                prev_lead = static_cast<int>(lead);
                prev_trail = 64 - prev_lead - static_cast<int>(len_minus_1 + 1);
                prev ^= x << prev_trail;
            }
        }
        values[i] = double_of(prev);
    }
    return true;
}

} // namespace pgfleet::chunk

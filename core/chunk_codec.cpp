/*
 * core/chunk_codec.cpp — the cold tier's formats (see chunk_codec.h): int streams, value columns,
 * time lists, groups, and the slot layout of a window.
 */
#include "core/pure.h"

#include "core/chunk_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace pgfleet::chunk {

namespace {

constexpr uint8_t kTimesFormat = 0x02;
constexpr uint8_t kGroupFormat = 0x03;
constexpr size_t kBlock = 16;      /* values per bit-packed block */
constexpr int kMaxDecimals = 15;   /* 10^15 is exact in a double */
constexpr double kMaxExactInteger = 9007199254740992.0; /* 2^53 */

enum Presence : uint8_t { kAllSlots = 0, kRuns = 1, kBitmap = 2 };
enum ValueMode : uint8_t { kConstant = 0, kDecimal = 1, kDecimalResidual = 2, kXor = 3 };

const double kPow10[kMaxDecimals + 1] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                         1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* ---- bits ---------------------------------------------------------------------------------------- */

/* Appends bits, most significant first; finish() pads the last byte with zeros. */
class BitWriter {
public:
    explicit BitWriter(std::string &out) : out_(out) {}
    void write(uint64_t value, int bits) /* 0..64 bits */
    {
        if (bits > 32) {
            write(value >> 32, bits - 32);
            bits = 32;
        }
        if (bits == 0)
            return;
        acc_ = (acc_ << bits) | (value & ((uint64_t{1} << bits) - 1));
        used_ += bits;
        while (used_ >= 8) {
            used_ -= 8;
            out_.push_back(static_cast<char>(static_cast<uint8_t>(acc_ >> used_)));
        }
        acc_ &= (uint64_t{1} << used_) - 1;
    }
    void zeros(int n)
    {
        for (; n > 32; n -= 32)
            write(0, 32);
        write(0, n);
    }
    void finish()
    {
        if (used_ > 0)
            out_.push_back(static_cast<char>(static_cast<uint8_t>(acc_ << (8 - used_))));
        acc_ = 0;
        used_ = 0;
    }

private:
    std::string &out_;
    uint64_t acc_ = 0;
    int used_ = 0; /* bits in acc_ not yet written, < 8 between calls */
};

/* Reads bits, most significant first; every read is bounds-checked. */
class BitReader {
public:
    BitReader(const uint8_t *data, size_t size) : data_(data), bits_(size * 8) {}
    bool read(int bits, uint64_t &value) /* 0..64 bits */
    {
        if (bits < 0 || bits > 64 || pos_ + static_cast<size_t>(bits) > bits_)
            return false;
        value = 0;
        while (bits > 0) {
            const size_t byte = pos_ >> 3;
            const int offset = static_cast<int>(pos_ & 7), avail = 8 - offset;
            const int take = bits < avail ? bits : avail;
            const uint64_t chunk = (static_cast<uint64_t>(data_[byte]) >> (avail - take)) & ((1u << take) - 1);
            value = (value << take) | chunk;
            bits -= take;
            pos_ += static_cast<size_t>(take);
        }
        return true;
    }
    size_t bytes_used() const { return (pos_ + 7) / 8; }

private:
    const uint8_t *data_;
    size_t bits_;
    size_t pos_ = 0;
};

uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }
int bit_width(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

/* Exp-Golomb of z (order 0), wrapping: z + 1 as N zeros then its N + 1 significant bits. */
void write_exp_golomb(BitWriter &w, uint64_t z)
{
    const uint64_t v = z + 1; /* 0 stands for 2^64 */
    const int n = v == 0 ? 64 : bit_width(v) - 1;
    w.zeros(n);
    w.write(1, 1);
    w.write(v, n);
}

bool read_exp_golomb(BitReader &r, uint64_t &z)
{
    int n = 0;
    for (;;) {
        uint64_t b;
        if (!r.read(1, b))
            return false;
        if (b)
            break;
        if (++n > 64)
            return false;
    }
    uint64_t low;
    if (!r.read(n, low))
        return false;
    z = ((n == 64 ? 0 : uint64_t{1} << n) | low) - 1;
    return true;
}

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
        const uint8_t b = data[pos++];
        v |= static_cast<uint64_t>(b & 0x7F) << shift;
        if (!(b & 0x80))
            return shift < 63 || b <= 1; /* the 10th byte holds only the top bit */
    }
    return false;
}

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

/* ---- int streams --------------------------------------------------------------------------------- */

/* The order-o differences of u (wrapping), and the values the stream's header carries. */
void differences(const int64_t *u, size_t n, int order, std::vector<int64_t> &r)
{
    r.clear();
    for (size_t i = static_cast<size_t>(order); i < n; i++) {
        uint64_t d = static_cast<uint64_t>(u[i]);
        if (order >= 1)
            d -= static_cast<uint64_t>(u[i - 1]);
        if (order == 2)
            d -= static_cast<uint64_t>(u[i - 1]) - static_cast<uint64_t>(u[i - 2]);
        r.push_back(static_cast<int64_t>(d));
    }
}

uint64_t magnitude(int64_t v) { return v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v); }

size_t varint_size(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

size_t exp_golomb_bits(uint64_t z)
{
    const uint64_t v = z + 1;
    const size_t n = v == 0 ? 64 : static_cast<size_t>(bit_width(v) - 1);
    return 2 * n + 1;
}

/* How a block's minimum changed from the previous block's (zigzag, wrapping). */
uint64_t min_step(int64_t mn, int64_t prev_min)
{
    return zigzag(static_cast<int64_t>(static_cast<uint64_t>(mn) - static_cast<uint64_t>(prev_min)));
}

/* The divisor of the differences r (0 when all are zero). */
uint64_t common_divisor(const std::vector<int64_t> &r)
{
    uint64_t g = 0;
    for (size_t i = 0; i < r.size() && g != 1; i++)
        g = std::gcd(g, magnitude(r[i]));
    return g > static_cast<uint64_t>(INT64_MAX) ? 1 : g; /* only 0 and INT64_MIN: not worth dividing */
}

/* Calls fn(block begin, block end, minimum, width) for each block of the differences divided by g. */
template <typename Fn>
void for_each_block(const std::vector<int64_t> &r, int64_t g, Fn &&fn)
{
    for (size_t b = 0; b < r.size(); b += kBlock) {
        const size_t e = std::min(r.size(), b + kBlock);
        int64_t mn = r[b] / g, mx = mn;
        for (size_t i = b + 1; i < e; i++) {
            const int64_t q = g == 1 ? r[i] : r[i] / g;
            mn = q < mn ? q : mn;
            mx = q > mx ? q : mx;
        }
        fn(b, e, mn, bit_width(static_cast<uint64_t>(mx) - static_cast<uint64_t>(mn)));
    }
}

/* The size in bytes of the int stream of u[0..n) with this order (r: scratch for the differences). */
size_t ints_size(const int64_t *u, size_t n, int order, std::vector<int64_t> &r)
{
    size_t bytes = 1;
    if (order >= 1)
        bytes += varint_size(zigzag(u[0]));
    if (order >= 2)
        bytes += varint_size(zigzag(static_cast<int64_t>(static_cast<uint64_t>(u[1]) - static_cast<uint64_t>(u[0]))));
    differences(u, n, order, r);
    const uint64_t g = common_divisor(r);
    bytes += varint_size(g);
    if (g == 0)
        return bytes;
    size_t bits = 0;
    int prev_width = -1;
    int64_t prev_min = 0;
    for_each_block(r, static_cast<int64_t>(g), [&](size_t b, size_t e, int64_t mn, int width) {
        bits += 1;
        if (width != prev_width || mn != prev_min)
            bits += 7 + exp_golomb_bits(min_step(mn, prev_min));
        prev_width = width;
        prev_min = mn;
        bits += static_cast<size_t>(width) * (e - b);
    });
    return bytes + (bits + 7) / 8;
}

/* Appends the int stream of u[0..n) with this order to out. */
void write_ints(const int64_t *u, size_t n, int order, std::vector<int64_t> &r, std::string &out)
{
    out.push_back(static_cast<char>(order));
    if (order >= 1)
        put_varint(out, zigzag(u[0]));
    if (order >= 2)
        put_varint(out, zigzag(static_cast<int64_t>(static_cast<uint64_t>(u[1]) - static_cast<uint64_t>(u[0]))));
    differences(u, n, order, r);
    const uint64_t g = common_divisor(r);
    put_varint(out, g);
    if (g == 0)
        return;
    const auto sg = static_cast<int64_t>(g);
    BitWriter w(out);
    int prev_width = -1;
    int64_t prev_min = 0;
    for_each_block(r, sg, [&](size_t b, size_t e, int64_t mn, int width) {
        if (width == prev_width && mn == prev_min) {
            w.write(1, 1);
        } else {
            w.write(0, 1);
            w.write(static_cast<uint64_t>(width), 7);
            write_exp_golomb(w, min_step(mn, prev_min));
            prev_width = width;
            prev_min = mn;
        }
        for (size_t i = b; i < e; i++)
            w.write(static_cast<uint64_t>(r[i] / sg) - static_cast<uint64_t>(mn), width);
    });
    w.finish();
}

/* The smallest int stream of u[0..n): its order and size. */
struct IntPlan {
    int order = 0;
    size_t size = 0;
};

IntPlan plan_ints(const int64_t *u, size_t n, std::vector<int64_t> &r)
{
    IntPlan best;
    for (int order = 0; order <= 2 && static_cast<size_t>(order) <= n; order++) {
        const size_t size = ints_size(u, n, order, r);
        if (order == 0 || size < best.size)
            best = {order, size};
    }
    return best;
}

/* Appends the smallest int stream of u[0..n) to out. */
void encode_ints(const int64_t *u, size_t n, std::string &out)
{
    std::vector<int64_t> r;
    write_ints(u, n, plan_ints(u, n, r).order, r, out);
}

/* Reads an int stream of n values at data[pos..size), advancing pos. */
bool decode_ints(const uint8_t *data, size_t size, size_t &pos, size_t n, int64_t *u)
{
    if (pos >= size)
        return false;
    const int order = data[pos++];
    if (order > 2 || static_cast<size_t>(order) > n)
        return false;
    uint64_t first = 0, first_delta = 0, g = 0;
    if (order >= 1 && !get_varint(data, size, pos, first))
        return false;
    if (order >= 2 && !get_varint(data, size, pos, first_delta))
        return false;
    if (!get_varint(data, size, pos, g) || g > static_cast<uint64_t>(INT64_MAX))
        return false;
    if (order >= 1)
        u[0] = unzigzag(first);
    if (order >= 2)
        u[1] = static_cast<int64_t>(static_cast<uint64_t>(u[0]) + static_cast<uint64_t>(unzigzag(first_delta)));
    const size_t count = n - static_cast<size_t>(order);
    int64_t *r = u + order; /* the differences first, integrated below */
    if (g == 0) {
        std::fill(r, r + count, 0);
    } else {
        BitReader br(data + pos, size - pos);
        int width = -1;
        uint64_t mn = 0;
        for (size_t b = 0; b < count; b += kBlock) {
            uint64_t same, v;
            if (!br.read(1, same))
                return false;
            if (!same) {
                uint64_t z;
                if (!br.read(7, v) || v > 64 || !read_exp_golomb(br, z))
                    return false;
                width = static_cast<int>(v);
                mn += static_cast<uint64_t>(unzigzag(z));
            } else if (width < 0) {
                return false; /* the first block has no previous header */
            }
            const size_t e = std::min(count, b + kBlock);
            for (size_t i = b; i < e; i++) {
                if (!br.read(width, v))
                    return false;
                r[i] = static_cast<int64_t>((v + mn) * g);
            }
        }
        pos += br.bytes_used();
    }
    for (size_t i = static_cast<size_t>(order); i < n; i++) {
        uint64_t x = static_cast<uint64_t>(u[i]);
        if (order >= 1)
            x += static_cast<uint64_t>(u[i - 1]);
        if (order == 2)
            x += static_cast<uint64_t>(u[i - 1]) - static_cast<uint64_t>(u[i - 2]);
        u[i] = static_cast<int64_t>(x);
    }
    return true;
}

/* ---- values --------------------------------------------------------------------------------------- */

void encode_xor(const double *values, size_t n, std::string &out)
{
    BitWriter w(out);
    uint64_t prev = bits_of(values[0]);
    w.write(prev, 64);
    int prev_lead = -1, prev_trail = 0;
    for (size_t i = 1; i < n; i++) {
        const uint64_t cur = bits_of(values[i]), x = cur ^ prev;
        prev = cur;
        if (x == 0) {
            w.write(0, 1);
            continue;
        }
        int lead = __builtin_clzll(x), trail = __builtin_ctzll(x);
        if (lead > 63)
            lead = 63;
        if (prev_lead >= 0 && lead >= prev_lead && trail >= prev_trail) {
            w.write(0b10, 2);
            w.write(x >> prev_trail, 64 - prev_lead - prev_trail);
        } else {
            const int len = 64 - lead - trail;
            w.write(0b11, 2);
            w.write(static_cast<uint64_t>(lead), 6);
            w.write(static_cast<uint64_t>(len - 1), 6);
            w.write(x >> trail, len);
            prev_lead = lead;
            prev_trail = trail;
        }
    }
    w.finish();
}

bool decode_xor(const uint8_t *data, size_t size, size_t &pos, size_t n, double *values)
{
    BitReader r(data + pos, size - pos);
    uint64_t prev;
    if (!r.read(64, prev))
        return false;
    values[0] = double_of(prev);
    int prev_lead = -1, prev_trail = 0;
    for (size_t i = 1; i < n; i++) {
        uint64_t b, x;
        if (!r.read(1, b))
            return false;
        if (b) {
            if (!r.read(1, b))
                return false;
            if (b == 0) {
                if (prev_lead < 0 || !r.read(64 - prev_lead - prev_trail, x))
                    return false;
                prev ^= x << prev_trail;
            } else {
                uint64_t lead, len_minus_1;
                if (!r.read(6, lead) || !r.read(6, len_minus_1) || lead + len_minus_1 + 1 > 64 ||
                    !r.read(static_cast<int>(len_minus_1 + 1), x))
                    return false;
                prev_lead = static_cast<int>(lead);
                prev_trail = 64 - prev_lead - static_cast<int>(len_minus_1 + 1);
                prev ^= x << prev_trail;
            }
        }
        values[i] = double_of(prev);
    }
    pos += r.bytes_used();
    return true;
}

/* Appends the smallest encoding of the values (value byte and data) to out. */
void encode_values(const double *values, size_t n, std::string &out)
{
    const uint64_t first = bits_of(values[0]);
    bool constant = true;
    for (size_t i = 1; i < n && constant; i++)
        constant = bits_of(values[i]) == first;
    if (constant) {
        out.push_back(static_cast<char>(kConstant));
        for (int b = 0; b < 8; b++)
            out.push_back(static_cast<char>(static_cast<uint8_t>(first >> (8 * b))));
        return;
    }
    std::string xor_bytes;
    xor_bytes.push_back(static_cast<char>(kXor));
    encode_xor(values, n, xor_bytes);

    /* Decimals: the fewest digits d that make every value exact (integers: d = 0), and below that
     * every d with residuals; more digits than an exact d only make the integers larger. Sizes are
     * computed first, only the smallest form is written. */
    std::vector<int64_t> m(n), r(n), scratch;
    size_t best_size = xor_bytes.size();
    int best_d = -1;
    bool best_exact = false;
    IntPlan best_m, best_r;
    for (int d = 0; d <= kMaxDecimals; d++) {
        bool fits = true, exact = true;
        for (size_t i = 0; i < n; i++) {
            const double y = values[i] * kPow10[d];
            if (!std::isfinite(y) || std::fabs(y) > kMaxExactInteger) {
                fits = false;
                break;
            }
            m[i] = static_cast<int64_t>(std::nearbyint(y));
            const double back = static_cast<double>(m[i]) / kPow10[d];
            r[i] = static_cast<int64_t>(bits_of(values[i]) - bits_of(back));
            exact = exact && r[i] == 0;
        }
        if (!fits)
            break; /* more digits only overflow further */
        const IntPlan pm = plan_ints(m.data(), n, scratch);
        size_t size = 2 + pm.size;
        IntPlan pr;
        if (!exact && size < best_size) {
            pr = plan_ints(r.data(), n, scratch);
            size += pr.size;
        }
        if (size < best_size) {
            best_size = size;
            best_d = d;
            best_exact = exact;
            best_m = pm;
            best_r = pr;
        }
        if (exact)
            break;
    }
    if (best_d < 0) {
        out += xor_bytes;
        return;
    }
    /* recompute the integers (and residuals) of the chosen d, then write them */
    for (size_t i = 0; i < n; i++) {
        m[i] = static_cast<int64_t>(std::nearbyint(values[i] * kPow10[best_d]));
        r[i] = static_cast<int64_t>(bits_of(values[i]) - bits_of(static_cast<double>(m[i]) / kPow10[best_d]));
    }
    out.push_back(static_cast<char>(best_exact ? kDecimal : kDecimalResidual));
    out.push_back(static_cast<char>(best_d));
    write_ints(m.data(), n, best_m.order, scratch, out);
    if (!best_exact)
        write_ints(r.data(), n, best_r.order, scratch, out);
}

bool decode_values(const uint8_t *data, size_t size, size_t &pos, size_t n, double *values)
{
    if (pos >= size)
        return false;
    const uint8_t mode = data[pos++];
    if (mode == kConstant) {
        if (size - pos < 8)
            return false;
        uint64_t bits = 0;
        for (int b = 0; b < 8; b++)
            bits |= static_cast<uint64_t>(data[pos + static_cast<size_t>(b)]) << (8 * b);
        pos += 8;
        std::fill(values, values + n, double_of(bits));
        return true;
    }
    if (mode == kXor)
        return decode_xor(data, size, pos, n, values);
    if (mode != kDecimal && mode != kDecimalResidual)
        return false;
    if (pos >= size || data[pos] > kMaxDecimals)
        return false;
    const double scale = kPow10[data[pos++]];
    std::vector<int64_t> m(n);
    if (!decode_ints(data, size, pos, n, m.data()))
        return false;
    for (size_t i = 0; i < n; i++)
        values[i] = static_cast<double>(m[i]) / scale;
    if (mode == kDecimalResidual) {
        if (!decode_ints(data, size, pos, n, m.data()))
            return false;
        for (size_t i = 0; i < n; i++)
            values[i] = double_of(bits_of(values[i]) + static_cast<uint64_t>(m[i]));
    }
    return true;
}

/* ---- presence ------------------------------------------------------------------------------------- */

void encode_presence(const std::vector<uint32_t> &slots, size_t slot_count, std::string &out)
{
    if (slots.size() == slot_count) {
        out.push_back(static_cast<char>(kAllSlots));
        return;
    }
    std::string runs;
    std::vector<uint64_t> lengths; /* absent, present, absent, present, ... */
    size_t next = 0;
    for (size_t i = 0; i < slots.size();) {
        size_t j = i + 1;
        while (j < slots.size() && slots[j] == slots[j - 1] + 1)
            j++;
        lengths.push_back(slots[i] - next);
        lengths.push_back(j - i);
        next = slots[j - 1] + 1;
        i = j;
    }
    runs.push_back(static_cast<char>(kRuns));
    put_varint(runs, lengths.size());
    for (uint64_t l : lengths)
        put_varint(runs, l);
    const size_t bitmap_size = 1 + (slot_count + 7) / 8;
    if (runs.size() <= bitmap_size) {
        out += runs;
        return;
    }
    out.push_back(static_cast<char>(kBitmap));
    std::string bitmap((slot_count + 7) / 8, '\0');
    for (uint32_t s : slots)
        bitmap[s >> 3] = static_cast<char>(static_cast<uint8_t>(bitmap[s >> 3]) | (0x80u >> (s & 7)));
    out += bitmap;
}

bool decode_presence(const uint8_t *data, size_t size, size_t &pos, size_t slot_count, std::vector<uint32_t> &slots)
{
    slots.clear();
    if (pos >= size)
        return false;
    const uint8_t mode = data[pos++];
    if (mode == kAllSlots) {
        slots.resize(slot_count);
        std::iota(slots.begin(), slots.end(), 0u);
    } else if (mode == kRuns) {
        uint64_t count;
        if (!get_varint(data, size, pos, count) || count > 2 * slot_count + 1 || count > size - pos)
            return false;
        uint64_t next = 0;
        for (uint64_t k = 0; k < count; k++) {
            uint64_t len;
            if (!get_varint(data, size, pos, len) || len > slot_count - next)
                return false;
            if (k % 2 == 1)
                for (uint64_t s = next; s < next + len; s++)
                    slots.push_back(static_cast<uint32_t>(s));
            next += len;
        }
    } else if (mode == kBitmap) {
        const size_t bytes = (slot_count + 7) / 8;
        if (size - pos < bytes)
            return false;
        for (size_t s = 0; s < slot_count; s++)
            if (data[pos + (s >> 3)] & (0x80u >> (s & 7)))
                slots.push_back(static_cast<uint32_t>(s));
        pos += bytes;
    } else {
        return false;
    }
    return !slots.empty();
}

} // namespace

/* ---- time lists ----------------------------------------------------------------------------------- */

bool encode_times(const int64_t *ts_ms, size_t n, std::string &out, std::string &error)
{
    if (n == 0 || n > kMaxSlots) {
        error = "a window holds 1 to " + std::to_string(kMaxSlots) + " scrape times";
        return false;
    }
    out.clear();
    out.push_back(static_cast<char>(kTimesFormat));
    put_varint(out, n);
    encode_ints(ts_ms, n, out);
    return true;
}

bool decode_times(const void *data, size_t size, std::vector<int64_t> &ts_ms, std::string &error)
{
    const auto *p = static_cast<const uint8_t *>(data);
    size_t pos = 1;
    uint64_t n = 0;
    if (size < 1 || p[0] != kTimesFormat) {
        error = "not a time list (format 2)";
        return false;
    }
    if (!get_varint(p, size, pos, n) || n == 0 || n > kMaxSlots) {
        error = "time list header is corrupt";
        return false;
    }
    ts_ms.resize(n);
    if (!decode_ints(p, size, pos, n, ts_ms.data()) || pos != size) {
        error = "time list is corrupt";
        return false;
    }
    return true;
}

/* ---- groups --------------------------------------------------------------------------------------- */

bool encode_group(size_t slot_count, const std::vector<Column> &columns, std::string &out, std::string &error)
{
    if (columns.empty() || columns.size() > kMaxSeries || slot_count == 0 || slot_count > kMaxSlots) {
        error = "a group holds 1 to " + std::to_string(kMaxSeries) + " series over 1 to " + std::to_string(kMaxSlots) +
                " slots";
        return false;
    }
    std::vector<size_t> order(columns.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return columns[a].series_id < columns[b].series_id; });
    std::string payloads;
    std::vector<size_t> lengths;
    for (size_t k = 0; k < order.size(); k++) {
        const Column &c = columns[order[k]];
        if (k > 0 && c.series_id == columns[order[k - 1]].series_id) {
            error = "series " + std::to_string(c.series_id) + " appears twice in a group";
            return false;
        }
        if (c.slots.empty() || c.slots.size() != c.values.size()) {
            error = "series " + std::to_string(c.series_id) + " needs as many values as slots, at least one";
            return false;
        }
        for (size_t i = 0; i < c.slots.size(); i++)
            if (c.slots[i] >= slot_count || (i > 0 && c.slots[i] <= c.slots[i - 1])) {
                error = "the slots of series " + std::to_string(c.series_id) + " must be ascending and below " +
                        std::to_string(slot_count);
                return false;
            }
        const size_t before = payloads.size();
        encode_presence(c.slots, slot_count, payloads);
        encode_values(c.values.data(), c.values.size(), payloads);
        lengths.push_back(payloads.size() - before);
    }
    out.clear();
    out.push_back(static_cast<char>(kGroupFormat));
    put_varint(out, slot_count);
    put_varint(out, order.size());
    int64_t prev = 0;
    for (size_t k = 0; k < order.size(); k++) {
        const int64_t id = columns[order[k]].series_id;
        put_varint(out, k == 0 ? zigzag(id) : static_cast<uint64_t>(id) - static_cast<uint64_t>(prev));
        prev = id;
    }
    for (size_t len : lengths)
        put_varint(out, len);
    out += payloads;
    return true;
}

bool GroupReader::open(const void *data, size_t size, std::string &error)
{
    const auto *p = static_cast<const uint8_t *>(data);
    data_ = p;
    ids_.clear();
    offsets_.clear();
    slot_count_ = 0;
    size_t pos = 1;
    uint64_t m = 0, k = 0;
    if (size < 1 || p[0] != kGroupFormat) {
        error = "not a series group (format 3)";
        return false;
    }
    /* each series takes at least 4 bytes: id step, length, presence and value bytes */
    if (!get_varint(p, size, pos, m) || m == 0 || m > kMaxSlots || !get_varint(p, size, pos, k) || k == 0 ||
        k > kMaxSeries || k > (size - pos) / 4) {
        error = "series group header is corrupt";
        return false;
    }
    ids_.resize(k);
    for (uint64_t i = 0; i < k; i++) {
        uint64_t step;
        if (!get_varint(p, size, pos, step)) {
            error = "series group header is corrupt";
            return false;
        }
        if (i == 0) {
            ids_[0] = unzigzag(step);
        } else {
            const int64_t id = static_cast<int64_t>(static_cast<uint64_t>(ids_[i - 1]) + step);
            if (step == 0 || id <= ids_[i - 1]) {
                error = "series group ids are not ascending";
                return false;
            }
            ids_[i] = id;
        }
    }
    offsets_.resize(k + 1);
    size_t total = 0;
    for (uint64_t i = 0; i < k; i++) {
        uint64_t len;
        if (!get_varint(p, size, pos, len) || len < 2 || len > size) {
            error = "series group header is corrupt";
            return false;
        }
        offsets_[i] = total;
        total += len;
        if (total > size) {
            error = "series group is shorter than its payloads";
            return false;
        }
    }
    if (total != size - pos) {
        error = "series group is shorter or longer than its payloads";
        return false;
    }
    for (auto &o : offsets_)
        o += pos;
    offsets_[k] = size;
    slot_count_ = m;
    return true;
}

bool GroupReader::column(size_t i, Column &out, std::string &error) const
{
    const size_t begin = offsets_[i], end = offsets_[i + 1];
    size_t pos = begin;
    out.series_id = ids_[i];
    if (!decode_presence(data_, end, pos, slot_count_, out.slots)) {
        error = "the presence of series " + std::to_string(ids_[i]) + " is corrupt";
        return false;
    }
    out.values.resize(out.slots.size());
    if (!decode_values(data_, end, pos, out.slots.size(), out.values.data()) || pos != end) {
        error = "the values of series " + std::to_string(ids_[i]) + " are corrupt";
        return false;
    }
    return true;
}

/* ---- slot layout ---------------------------------------------------------------------------------- */

namespace {

/* (timestamp, how many times it occurs) of a sorted list, appended to out. */
void count_runs(const std::vector<int64_t> &sorted, std::vector<std::pair<int64_t, uint32_t>> &out)
{
    for (size_t i = 0; i < sorted.size();) {
        size_t j = i + 1;
        while (j < sorted.size() && sorted[j] == sorted[i])
            j++;
        out.emplace_back(sorted[i], static_cast<uint32_t>(j - i));
        i = j;
    }
}

/* Sorts by timestamp and folds equal timestamps with sum or max. */
std::vector<std::pair<int64_t, uint32_t>> fold(std::vector<std::pair<int64_t, uint32_t>> v, bool sum)
{
    std::sort(v.begin(), v.end());
    std::vector<std::pair<int64_t, uint32_t>> out;
    for (const auto &e : v) {
        if (!out.empty() && out.back().first == e.first)
            out.back().second = sum ? out.back().second + e.second : std::max(out.back().second, e.second);
        else
            out.push_back(e);
    }
    return out;
}

} // namespace

void SlotNeeds::add_source(const std::vector<int64_t> &times)
{
    std::vector<int64_t> sorted(times);
    std::sort(sorted.begin(), sorted.end());
    count_runs(sorted, sources_);
}

void SlotNeeds::add_series(const std::vector<int64_t> &sorted_ts) { count_runs(sorted_ts, series_); }

std::vector<int64_t> SlotNeeds::times() const
{
    const auto a = fold(sources_, true), b = fold(series_, false);
    std::vector<int64_t> out;
    size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
        int64_t t;
        uint32_t n;
        if (j == b.size() || (i < a.size() && a[i].first < b[j].first)) {
            t = a[i].first;
            n = a[i++].second;
        } else if (i == a.size() || b[j].first < a[i].first) {
            t = b[j].first;
            n = b[j++].second;
        } else {
            t = a[i].first;
            n = std::max(a[i++].second, b[j++].second);
        }
        out.insert(out.end(), n, t);
    }
    return out;
}

bool to_column(const std::vector<int64_t> &times, const SeriesSamples &samples, Column &out, std::string &error)
{
    out.series_id = samples.series_id;
    out.slots.clear();
    out.values = samples.values;
    size_t slot = 0;
    for (size_t i = 0; i < samples.ts_ms.size(); i++) {
        const int64_t t = samples.ts_ms[i];
        if (i > 0 && t == samples.ts_ms[i - 1])
            slot++; /* the next slot of the same instant */
        else
            slot = static_cast<size_t>(std::lower_bound(times.begin(), times.end(), t) - times.begin());
        if (slot >= times.size() || times[slot] != t || (i > 0 && t < samples.ts_ms[i - 1])) {
            error = "series " + std::to_string(samples.series_id) + " has a sample the time list has no slot for";
            return false;
        }
        out.slots.push_back(static_cast<uint32_t>(slot));
    }
    return true;
}

void append_samples(const std::vector<int64_t> &times, const Column &column, SeriesSamples &out)
{
    out.series_id = column.series_id;
    for (size_t i = 0; i < column.slots.size(); i++) {
        out.ts_ms.push_back(times[column.slots[i]]);
        out.values.push_back(column.values[i]);
    }
}

} // namespace pgfleet::chunk

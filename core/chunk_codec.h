/*
 * core/chunk_codec.h — compressed chunks of one series' samples (the cold tier's unit of storage).
 *
 * Format v1, a bit stream after a small byte header:
 *   byte 0      format version (1)
 *   byte 1      value mode: 0 = XOR of IEEE doubles (Gorilla); for integers (every value integral and
 *               within ±2^53, as counters and most gauges are) 1 = delta-of-delta (steady counters)
 *               or 2 = delta (noisy gauges), whichever is smaller
 *   varint      sample count n
 *   zigzag      first timestamp (ms since the Unix epoch)
 *   then bits:  n-1 timestamp delta-of-deltas, then the n values.
 * Delta-of-delta buckets (Gorilla's, widened for milliseconds): '0' = 0; '10' + 7 bits; '110' + 12 bits;
 * '1110' + 20 bits; '1111' + 64 bits, each two's complement (so '10' holds -64..63). XOR values: '0' = same as the previous;
 * '10' + meaningful bits inside the previous window; '11' + 6 bits leading zeros + 6 bits (length-1) +
 * the meaningful bits. Lossless: NaN payloads and signed zeros come back bit for bit.
 *
 * Timestamps must not decrease (the caller sorts; equal timestamps are allowed). Decoding checks every
 * read against the buffer and the declared count, so corrupt input yields an error, never a crash.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pgfleet::chunk {

/* Encodes n samples; returns false (and why) when timestamps decrease or the input is empty. */
bool encode(const int64_t *ts_ms, const double *values, size_t n, std::string &out, std::string &error);

/* Decodes a chunk into ts_ms / values (replacing their contents); false and why on corrupt input. */
bool decode(const void *data, size_t size, std::vector<int64_t> &ts_ms, std::vector<double> &values,
            std::string &error);

} // namespace pgfleet::chunk

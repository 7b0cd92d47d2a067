/*
 * core/wire_pack.h — the compact forms of a metrics payload (wire schema_minor 1), shared by every
 * producer (the agent, bench/ingest/fleet_load) and the decoder (core/wire.cpp):
 *
 *   packing   a MetricBatch's scrape timestamps become deltas, integral values become zigzag varint
 *             deltas against the previous value of the same series in the batch, the rest stay doubles
 *             (proto PackedValues). Lossless, bit for bit: -0.0, NaN payloads and non-integral values
 *             travel as doubles.
 *   zstd      the serialized MetricBatch compressed into Envelope.metrics_zstd (one frame with its
 *             content size, so the decoder can refuse a decompression bomb before allocating).
 *
 * This header exposes the generated protobuf types (fleet.pb.h): it is for code that builds or reads
 * protobuf messages; the PostgreSQL-facing layer uses core/wire.h only.
 */
#pragma once

#include <cstddef>
#include <string>

#include "fleet.pb.h"

namespace pgfleet::wire {

/* Rewrites batch in place into the packed form: fills batch.packed and empties every scrape's
 * ts_unix_ms and values (refs stay). A batch already packed is left as it is. */
void pack_metric_batch(v1::MetricBatch &batch);

/* Restores plain scrapes (ts_unix_ms and values) from batch.packed and clears it; false and why when
 * the packed form is inconsistent (counts that do not add up, a bitmap of the wrong size). */
bool unpack_metric_batch(v1::MetricBatch &batch, std::string &error);

/* Moves the envelope's metrics payload into metrics_zstd (serialized, compressed at level). */
bool compress_metrics(v1::Envelope &envelope, int level, std::string &error);

/* Decompresses Envelope.metrics_zstd into batch; refuses frames without a content size or larger
 * than max_bytes once decompressed. */
bool decompress_metrics(const std::string &compressed, size_t max_bytes, v1::MetricBatch &batch, std::string &error);

} // namespace pgfleet::wire

/*
 * core/wire_pack.h — the compact forms of a metrics payload (wire schema_minor 1), shared by every
 * producer (the agent, bench/ingest/fleet_load) and the decoder (core/wire.cpp):
 *
 *   packing   a MetricBatch's scrape timestamps become deltas, integral values become zigzag varint
 *             deltas against the previous value of the same series in the batch, the rest stay doubles
 *             (proto PackedValues). Lossless, bit for bit: -0.0, NaN payloads and non-integral values
 *             travel as doubles.
 *   sets      a scrape's ordered series list has a key (schema_minor 2); a producer whose set the centre
 *             knows sends the key instead of the series (scrape_set_key, make_references).
 *   keyframes a scrape may be based on an earlier keyframe scrape of its set (schema_minor 3): its
 *             integral values are then differences to the keyframe's (pack_metric_batch with bases).
 *   zstd      the serialized MetricBatch compressed into Envelope.metrics_zstd (one frame with its
 *             content size, so the decoder can refuse a decompression bomb before allocating).
 *
 * This header exposes the generated protobuf types (fleet.pb.h): it is for code that builds or reads
 * protobuf messages; the PostgreSQL-facing layer uses core/wire.h only.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/wire.h"
#include "fleet.pb.h"

namespace pgfleet::wire {

/* Rewrites batch in place into the packed form: fills batch.packed and empties every scrape's
 * ts_unix_ms and values (refs stay). A batch already packed is left as it is. bases, when given, has
 * one entry per scrape: for a based scrape (base_seq set) the keyframe's values in set order (as many
 * as the scrape has), else nullptr; a based scrape's integral values whose base value is integral too
 * are sent as differences to it, the others whole (proto Scrape, schema_minor 3). */
void pack_metric_batch(v1::MetricBatch &batch, const std::vector<const std::vector<double> *> *bases = nullptr);

/* Restores plain scrapes (ts_unix_ms and values) from batch.packed and clears it; false and why when
 * the packed form is inconsistent (counts that do not add up, a bitmap of the wrong size). A based
 * scrape's integral values come out as the differences they are; base_relative, when given and when
 * the batch has a based scrape, gets one entry per value of the batch in order: 1 for those
 * differences (the keyframe's value is still to be added), else 0. Left empty otherwise. */
bool unpack_metric_batch(v1::MetricBatch &batch, std::string &error, std::vector<uint8_t> *base_relative = nullptr);

/* The series-set key of a plain (not yet packed) scrape of batch, as the decoder computes it from
 * the scrape's declared series in refs order. False and why when a ref is not declared in batch. */
bool scrape_set_key(const v1::MetricBatch &batch, const v1::Scrape &scrape, SeriesSetKey &key, std::string &error);

/* Turns every scrape of a plain batch into a reference to its series set (keys[k] for scrape k, as
 * scrape_set_key gave them): the scrapes keep their values, lose their refs, and the batch loses its
 * series declarations. For a producer whose sets the centre already knows (proto Scrape). */
void make_references(v1::MetricBatch &batch, const std::vector<SeriesSetKey> &keys);

/* Moves the envelope's metrics payload into metrics_zstd (serialized, compressed at level). */
bool compress_metrics(v1::Envelope &envelope, int level, std::string &error);

/* Decompresses Envelope.metrics_zstd into batch; refuses frames without a content size or larger
 * than max_bytes once decompressed. */
bool decompress_metrics(const std::string &compressed, size_t max_bytes, v1::MetricBatch &batch, std::string &error);

} // namespace pgfleet::wire

// Building one pgfleet.wire.v1.Envelope (a metrics batch) from collected samples.
//
// Layout (proto/fleet.proto): every sample becomes one SeriesDecl (metric, kind, unit, labels sorted by
// name) with a batch-local ref, plus one (ref, value) pair in the batch's single Scrape. The agent sends one
// scrape per batch, so series are never declared twice. The Envelope object and the output string are
// members reused for every batch: protobuf's Clear() keeps the repeated sub-messages allocated, so a steady
// state cycle does not allocate.
//
// seal() sends the compact form of wire schema_minor 1 (core/wire_pack.h): values packed (integral values
// as zigzag varints, timestamps as deltas) and the whole MetricBatch compressed with zstd, which removes
// most of the cost of declaring every series in every batch (~70 B/sample plain, ~11 B/sample sealed).
// Declaring a batch's series by a key the centre already knows, instead of in full, is the next step
// (docs/storage.md, "wire").
#pragma once

#include "fleet.pb.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgfleet::agent {

constexpr uint32_t kSchemaMajor = 1;
constexpr uint32_t kSchemaMinor = 1;
constexpr int kZstdLevel = 3; // fast (hundreds of MB/s) and within a few % of higher levels on this data

// Facts about the monitored instance; sent in InstanceInfo on a boot's first batch and on every change.
struct InstanceFacts {
    std::string system_identifier;
    std::string server_version;
    uint32_t server_version_num = 0;
    std::string hostname;
    std::string data_directory;
    bool in_recovery = false;
    int64_t postmaster_start_unix_ms = 0;
    uint32_t port = 0;

    bool operator==(const InstanceFacts &other) const;
    bool operator!=(const InstanceFacts &other) const { return !(*this == other); }
};

struct LabelRef {
    std::string_view name;
    std::string_view value;
};

class BatchBuilder {
public:
    // Starts a new batch, discarding the previous one; ts_unix_ms is both seal time and scrape time.
    void begin(std::string_view agent_id, std::string_view namespace_name, std::string_view boot_id,
               uint64_t batch_seq, int64_t ts_unix_ms);
    // Attaches InstanceInfo to the current batch.
    void set_instance(const InstanceFacts &facts);
    // Adds one sample; labels need not be sorted (they are sorted here) but names must be unique.
    void add(std::string_view metric, wire::v1::MetricKind kind, std::string_view unit,
             std::initializer_list<LabelRef> labels, double value);
    // Serializes the batch; the returned reference stays valid until the next begin().
    const std::string &seal();

    size_t sample_count() const { return samples_; }
    uint64_t batch_seq() const { return envelope_.batch_seq(); }

private:
    wire::v1::Envelope envelope_;
    wire::v1::MetricBatch *batch_ = nullptr;
    wire::v1::Scrape *scrape_ = nullptr;
    std::vector<LabelRef> sorted_labels_;
    std::string bytes_;
    size_t samples_ = 0;
};

}  // namespace pgfleet::agent

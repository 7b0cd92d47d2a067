// Building one pgfleet.wire.v1.Envelope (a metrics batch) from collected samples.
//
// Layout (proto/fleet.proto): every sample becomes one SeriesDecl (metric, kind, unit, labels sorted by
// name) with a batch-local ref, plus one (ref, value) pair in the batch's single Scrape. The agent sends one
// scrape per batch, so series are never declared twice. The Envelope object and the output string are
// members reused for every batch: protobuf's Clear() keeps the repeated sub-messages allocated, so a steady
// state cycle does not allocate.
//
// seal() sends the compact form of wire schema_minor 1 and 2 (core/wire_pack.h): values packed (integral
// values as zigzag varints, timestamps as deltas), the whole MetricBatch compressed with zstd, and the
// series named by their set's key once the centre knows the set (SeriesSetMemory below): a batch then
// carries no SeriesDecl at all, only the key and the values.
#pragma once

#include "core/wire.h"
#include "fleet.pb.h"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgfleet::agent {

constexpr uint32_t kSchemaMajor = 1;
constexpr uint32_t kSchemaMinor = 2;
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

// Which series sets this agent may name by key alone (wire schema_minor 2). A set becomes nameable
// when the stream acknowledged a batch of this boot that declared it in full, and stays so for
// kSeriesSetFreshMs: then it is declared again, so a centre that lost its sets (the extension was
// re-created) learns them back within that time. Batches the spool dropped were never acknowledged,
// so they never make a set nameable. Main thread only.
class SeriesSetMemory {
public:
    static constexpr int64_t kSeriesSetFreshMs = 10 * 60 * 1000;

    // Batch batch_seq (sealed, spooled) declared the set key in full.
    void declared(uint64_t batch_seq, const wire::SeriesSetKey &key);
    // The stream acknowledged batch batch_seq of this boot at now_ms (batches are sent in order, so
    // every earlier one was acknowledged or dropped by now).
    void acknowledged(uint64_t batch_seq, int64_t now_ms);
    // True when a scrape with this key may be sent as a reference at now_ms.
    bool may_refer(const wire::SeriesSetKey &key, int64_t now_ms) const;
    size_t known() const { return acknowledged_at_.size(); }

private:
    struct KeyLess {
        bool operator()(const wire::SeriesSetKey &a, const wire::SeriesSetKey &b) const;
    };
    std::multimap<uint64_t, wire::SeriesSetKey> pending_;                  // batch_seq -> key declared
    std::map<wire::SeriesSetKey, int64_t, KeyLess> acknowledged_at_;      // key -> when acknowledged
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
    // Serializes the batch; the returned reference stays valid until the next begin(). With sets given,
    // the scrape names its series by key when sets allows it, and otherwise declares them and tells
    // sets so.
    const std::string &seal(SeriesSetMemory *sets = nullptr);

    size_t sample_count() const { return samples_; }
    uint64_t batch_seq() const { return envelope_.batch_seq(); }

private:
    wire::v1::Envelope envelope_;
    wire::v1::MetricBatch *batch_ = nullptr;
    wire::v1::Scrape *scrape_ = nullptr;
    std::vector<LabelRef> sorted_labels_;
    std::string bytes_;
    std::string key_error_;
    size_t samples_ = 0;
};

}  // namespace pgfleet::agent

// Building one pgfleet.wire.v1.Envelope (a metrics batch) from collected samples.
//
// Layout (proto/fleet.proto): every sample becomes one SeriesDecl (metric, kind, unit, labels sorted by
// name) with a batch-local ref, plus one (ref, value) pair in the batch's single Scrape. The agent sends one
// scrape per batch, so series are never declared twice. The Envelope object and the output string are
// members reused for every batch: protobuf's Clear() keeps the repeated sub-messages allocated, so a steady
// state cycle does not allocate.
//
// seal() sends the compact form of wire schema_minor 1 to 3 (core/wire_pack.h): values packed (integral
// values as zigzag varints, timestamps as deltas), the whole MetricBatch compressed with zstd, and the
// series named by their set's key once the centre knows the set (SeriesSetMemory below): a batch then
// carries no SeriesDecl at all, only the key and the values. Counters (every integral value) travel as
// differences to the set's last acknowledged keyframe: what changed costs its change, what did not
// costs one byte.
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
constexpr uint32_t kSchemaMinor = 3;
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
//
// It also remembers keyframes (wire schema_minor 3). A scrape of a set the centre knows is sent as a
// keyframe when it has no usable base; once the stream acknowledged that batch, the set's next scrapes
// are *based* on it (their integral values travel as differences to the keyframe's) for
// kKeyframeMaxAgeMs, after which the next scrape is a keyframe again. Only acknowledged keyframes are
// bases, so a based batch never depends on one the spool might drop; while no acknowledgement comes
// (NATS away) at most one keyframe per set and kKeyframeMaxAgeMs waits for it, and the scrapes in
// between go whole.
class SeriesSetMemory {
public:
    static constexpr int64_t kSeriesSetFreshMs = 10 * 60 * 1000;
    static constexpr int64_t kKeyframeMaxAgeMs = 5 * 60 * 1000;

    struct Keyframe {
        uint64_t batch_seq = 0;
        int64_t ts_ms = 0;
        std::vector<double> values;
    };

    // Batch batch_seq (sealed, spooled) declared the set key in full.
    void declared(uint64_t batch_seq, const wire::SeriesSetKey &key);
    // The stream acknowledged batch batch_seq of this boot at now_ms (batches are sent in order, so
    // every earlier one was acknowledged or dropped by now).
    void acknowledged(uint64_t batch_seq, int64_t now_ms);
    // True when a scrape with this key may be sent as a reference at now_ms.
    bool may_refer(const wire::SeriesSetKey &key, int64_t now_ms) const;
    size_t known() const { return acknowledged_at_.size(); }

    // The acknowledged keyframe a scrape of the set may be based on at now_ms, or nullptr.
    const Keyframe *base_for(const wire::SeriesSetKey &key, int64_t now_ms) const;
    // True when a scrape of the set should be a keyframe at now_ms: the set is nameable, there is no
    // usable base, and no keyframe sealed within kKeyframeMaxAgeMs still waits for its acknowledgement.
    bool wants_keyframe(const wire::SeriesSetKey &key, int64_t now_ms) const;
    // Batch batch_seq (sealed, spooled) carries a keyframe of the set taken at ts_ms.
    void keyframe_sealed(uint64_t batch_seq, const wire::SeriesSetKey &key, int64_t ts_ms, std::vector<double> values);

private:
    struct KeyLess {
        bool operator()(const wire::SeriesSetKey &a, const wire::SeriesSetKey &b) const;
    };
    std::multimap<uint64_t, wire::SeriesSetKey> pending_;                  // batch_seq -> key declared
    std::map<wire::SeriesSetKey, int64_t, KeyLess> acknowledged_at_;      // key -> when acknowledged
    std::multimap<uint64_t, std::pair<wire::SeriesSetKey, Keyframe>> pending_keyframes_;  // batch_seq -> keyframe
    std::map<wire::SeriesSetKey, int64_t, KeyLess> keyframe_sealed_at_;   // key -> newest keyframe sealed
    std::map<wire::SeriesSetKey, Keyframe, KeyLess> bases_;               // key -> newest acknowledged keyframe
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
    std::vector<const std::vector<double> *> base_values_;  // the keyframe values of a based scrape, during seal()
    size_t samples_ = 0;
};

}  // namespace pgfleet::agent

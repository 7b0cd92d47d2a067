/*
 * core/wire.h — decoding and validation of the pgfleet wire contract (proto/fleet.proto, v1).
 *
 * The ingest worker hands the raw bytes of one NATS message to decode_envelope(). It either fills a
 * plain-C++ Envelope (no protobuf types leak out, so callers need no generated header) or says why the
 * message is not acceptable. Everything a producer could get wrong is checked here, in the pure layer,
 * so that the PostgreSQL-facing code only marshals values that are already known to be valid:
 *   - schema major version, identifiers (agent, namespace, boot), batch sequence;
 *   - series declarations (metric names, kinds, unique refs, unique label names);
 *   - every scrape's refs declared, refs and values of equal length, timestamps in a sane range;
 *   - the subject the message came on agrees with the envelope it carries.
 * Metrics (the high-volume kind) come out columnar; the low-volume kinds (statements, activity,
 * inventory, events, results) come out as one validated JSON document for the SQL layer.
 * A failed decode carries a short reason (stable, stored in fleet.dead_letter.reason) and a detail.
 * This interface is also what the libFuzzer target drives.
 */
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgfleet::wire {

inline constexpr uint32_t kSchemaMajor = 1;

/* A series as declared in a batch: metric, kind ("gauge"/"counter"), unit, labels as canonical JSON. */
struct SeriesDecl {
    std::string metric;
    std::string kind;
    std::string unit;
    std::string labels_json; /* {"name":"value",...}, names sorted, always an object */
};

/* Facts about the monitored instance; present == false when the batch carried none. */
struct InstanceInfo {
    bool present = false;
    std::string system_identifier;
    std::string server_version;
    uint32_t server_version_num = 0;
    std::string hostname;
    std::string data_directory;
    bool in_recovery = false;
    int64_t postmaster_start_unix_ms = 0;
    uint32_t port = 0;
};

/* The identity of one scrape's series list, in order: a 128-bit hash of each sample's series
 * (metric, kind, unit, canonical labels). Scrapes with the same key share one fleet.series_set row
 * (the hot tier then stores only their values), and an agent may refer to a set it declared earlier
 * by this key alone (wire schema_minor 2). Keys are scoped to one instance in the database, so a
 * collision, 2^-128-unlikely by accident, could only ever mix up series of one agent's own. */
struct SeriesSetKey {
    uint8_t bytes[16];

    bool operator==(const SeriesSetKey &other) const;
    bool operator!=(const SeriesSetKey &other) const { return !(*this == other); }
};

/* Streams a scrape's series, in order, into its SeriesSetKey (core/series_key.cpp). Producers (the
 * agent) and the decoder compute keys with this one class, so they agree by construction. */
class SeriesSetHasher {
public:
    /* Adds one series: kind is "gauge" or "counter", labels_json the canonical labels object. */
    void add_series(std::string_view metric, std::string_view kind, std::string_view unit, std::string_view labels_json);
    SeriesSetKey finish() const;

private:
    void add_terminated(std::string_view text);
    void add(const char *data, size_t size);
    void mix(uint64_t word);

    uint64_t a_ = 0x243F6A8885A308D3ULL;
    uint64_t b_ = 0x13198A2E03707344ULL;
    uint64_t length_ = 0;
    char pending_[8] = {0};
    size_t fill_ = 0;
};

/* Metric samples in columnar form. Scrape k holds the samples [scrape_end[k-1], scrape_end[k])
 * (scrape 0 starts at 0), all with one timestamp, and has the series-set key scrape_key[k].
 * A declared scrape (scrape_is_reference[k] == 0) names its series: sample_series[i] indexes series
 * (0-based). A reference (1) names only its set key: its sample_series entries are -1, and its values
 * belong in order to the series of the set the agent declared earlier under that key.
 * Keyframes (schema_minor 3): scrape_is_keyframe[k] says the centre keeps scrape k as a base;
 * scrape_base_seq[k] != 0 says scrape k is based on the keyframe of its set in that batch of the same
 * boot. Until apply_keyframe() ran, the samples with sample_base_relative[i] == 1 hold differences
 * to the keyframe's values, not values; sample_base_relative is empty when no scrape is based. */
struct MetricBatch {
    std::vector<SeriesDecl> series;
    std::vector<int32_t> sample_series;
    std::vector<int64_t> sample_ts_unix_ms;
    std::vector<double> sample_value;
    std::vector<uint32_t> scrape_end;
    std::vector<SeriesSetKey> scrape_key;
    std::vector<uint8_t> scrape_is_reference;
    std::vector<uint8_t> scrape_is_keyframe;
    std::vector<uint64_t> scrape_base_seq;
    std::vector<uint8_t> sample_base_relative;

    /* True when some scrape is based on a keyframe (apply_keyframe must run before storing). */
    bool has_based_scrape() const { return !sample_base_relative.empty(); }
    /* True when some scrape is a keyframe or based on one (the ingest worker's per-message path). */
    bool uses_keyframes() const
    {
        return has_based_scrape() ||
               std::find(scrape_is_keyframe.begin(), scrape_is_keyframe.end(), 1) != scrape_is_keyframe.end();
    }

    /* Empties every column, keeping their capacity (a decoder reuses one MetricBatch per message slot). */
    void clear()
    {
        scrape_is_keyframe.clear();
        scrape_base_seq.clear();
        sample_base_relative.clear();
        series.clear();
        sample_series.clear();
        sample_ts_unix_ms.clear();
        sample_value.clear();
        scrape_end.clear();
        scrape_key.clear();
        scrape_is_reference.clear();
    }
};

/* Turns based scrape k of batch into values: adds keyframe[j] to each of its differences (the
 * keyframe's values in set order, n of them, as many as the scrape has). False and why when n does
 * not match, when a keyframe value under a difference is not integral (the producer must then have
 * sent the value whole), or when a sum leaves +-2^53. Idempotent per scrape: its differences are
 * marked done. */
bool apply_keyframe(MetricBatch &batch, size_t k, const double *keyframe, size_t n, std::string &error);

/* The key of the declared scrape holding samples [begin, end) of batch. */
SeriesSetKey series_set_key(const MetricBatch &batch, size_t begin, size_t end);

/* The canonical JSON object of a series' labels, given sorted by name with unique names (the form the
 * decoder stores): {"name":"value",...}. */
void append_labels_json(std::string &out, const std::vector<std::pair<std::string_view, std::string_view>> &sorted_labels);

enum class PayloadKind { None, Metrics, Statements, Activity, Inventory, Events, Result };

/* The subject token of a payload kind ("metrics", "statements", ..., "results"). */
const char *payload_kind_subject(PayloadKind kind);

struct Envelope {
    uint32_t schema_major = 0;
    uint32_t schema_minor = 0;
    std::string agent_id;
    std::string boot_id;
    uint64_t batch_seq = 0;
    std::string namespace_name;
    int64_t created_unix_ms = 0;
    InstanceInfo instance;
    PayloadKind kind = PayloadKind::None;
    MetricBatch metrics;       /* kind == Metrics: columnar, for the bulk path */
    std::string payload_json;  /* every other kind: the validated payload as one JSON object */
};

/* Outcome of a decode: ok, or a stable reason plus a human-readable detail. */
struct DecodeStatus {
    bool ok = true;
    std::string reason; /* e.g. "malformed protobuf", "unsupported schema version" */
    std::string detail;

    static DecodeStatus success() { return {}; }
    static DecodeStatus failure(std::string reason, std::string detail)
    {
        return DecodeStatus{false, std::move(reason), std::move(detail)};
    }
};

/* The parts of an agent subject fleet.in.<namespace>.<agent_id>.<kind>. */
struct Subject {
    std::string namespace_name;
    std::string agent_id;
    std::string kind;
};

/* Decodes and validates one message body into out. */
DecodeStatus decode_envelope(const void *data, size_t size, Envelope &out);

/* Splits an agent subject; fails unless it has exactly the five tokens of the contract. */
DecodeStatus parse_subject(std::string_view subject, Subject &out);

/* Checks that the envelope travelled on the subject that belongs to it (namespace, agent, kind). */
DecodeStatus check_subject(const Subject &subject, const Envelope &envelope);

/* True for identifiers allowed as agent ids and namespaces: [A-Za-z0-9_-]{1,64}. */
bool is_valid_identifier(std::string_view s);

/* Encodes a centre-to-agent Command (proto Command), published on fleet.cmd.<agent_id>. */
std::string encode_command(const std::string &command_id, const std::string &kind,
                           const std::vector<std::pair<std::string, std::string>> &args, int64_t issued_unix_ms);

/* The instance facts as a JSON object ({} when absent), for the ingest SQL function. */
std::string instance_to_json(const InstanceInfo &instance);

/* The whole envelope as JSON (fleet.decode_envelope: inspecting dead letters and traffic). */
std::string envelope_to_json(const Envelope &envelope);

/* s with every byte that is not part of well-formed UTF-8 (or is NUL) replaced by '?': safe to store
 * as PostgreSQL text, e.g. a hostile subject in a dead-letter row. */
std::string to_valid_text(std::string_view s);

/* Appends s to out as a JSON string literal (quotes and escapes included). */
void append_json_string(std::string &out, std::string_view s);

} // namespace pgfleet::wire

/*
 * core/wire.cpp — decode and validate wire v1 envelopes (see wire.h for the contract).
 *
 * The protobuf lite runtime parses the bytes; everything after that is our own validation, written so
 * that any input, however hostile, ends in either a fully valid Envelope or a DecodeStatus failure.
 * Limits bound the work one message can cause (series, samples, string lengths), so a malicious
 * producer cannot make the ingest worker allocate without bound.
 */
#include "core/pure.h"

#include "core/wire.h"
#include "core/wire_pack.h"
#include "core/wire_payloads.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "fleet.pb.h"
#include <google/protobuf/arena.h>
#include <google/protobuf/stubs/logging.h>

namespace pgfleet::wire {

namespace {

constexpr size_t kMaxMessageBytes = 64u << 20;
constexpr size_t kMaxSeriesPerBatch = 1u << 20;
constexpr size_t kMaxSamplesPerBatch = 8u << 20;
constexpr size_t kMaxLabelsPerSeries = 64;
constexpr size_t kMaxNameBytes = 256;
constexpr size_t kMaxValueBytes = 4096;
/* 2000-01-01 .. 2200-01-01 in milliseconds: anything outside is a broken clock or a broken encoder. */
constexpr int64_t kMinTimestampMs = 946684800000LL;
constexpr int64_t kMaxTimestampMs = 7258118400000LL;

/* Metric names: lower-case letters, digits, '_' and '.', starting with a letter. */
bool is_valid_metric_name(std::string_view s)
{
    if (s.empty() || s.size() > kMaxNameBytes || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    });
}

/* Label names: Prometheus rules, [A-Za-z_][A-Za-z0-9_]*. */
bool is_valid_label_name(std::string_view s)
{
    if (s.empty() || s.size() > kMaxNameBytes || (s[0] >= '0' && s[0] <= '9'))
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
}

/* Length of the well-formed UTF-8 sequence starting at s[i] (no overlongs, no surrogates, no NUL),
 * or 0 when the bytes there are not one. */
size_t utf8_sequence_length(std::string_view s, size_t i)
{
    const auto c = static_cast<unsigned char>(s[i]);
    size_t extra;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the first continuation byte */
    if (c == 0)
        return 0;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        extra = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        extra = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        extra = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (s.size() - i - 1 < extra)
        return 0;
    for (size_t k = 1; k <= extra; k++) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (cc < lo || cc > hi) : (cc & 0xC0) != 0x80)
            return 0;
    }
    return extra + 1;
}

/* True when s is text PostgreSQL accepts: well-formed UTF-8 without NUL bytes. */
bool text_is_valid(std::string_view s)
{
    for (size_t i = 0; i < s.size();) {
        size_t len = utf8_sequence_length(s, i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

/* Builds the canonical JSON object of a series' labels, checking names, values and uniqueness. */
DecodeStatus labels_to_json(const google::protobuf::RepeatedPtrField<v1::Label> &labels, std::string &out)
{
    if (static_cast<size_t>(labels.size()) > kMaxLabelsPerSeries)
        return DecodeStatus::failure("invalid series", "a series has more than 64 labels");
    std::vector<const v1::Label *> sorted;
    sorted.reserve(labels.size());
    for (const auto &l : labels) {
        if (!is_valid_label_name(l.name()))
            return DecodeStatus::failure("invalid series", "label name \"" + l.name().substr(0, 64) + "\" is not valid");
        if (l.value().size() > kMaxValueBytes || !text_is_valid(l.value()))
            return DecodeStatus::failure("invalid series", "value of label \"" + l.name() + "\" is not valid UTF-8 text");
        sorted.push_back(&l);
    }
    std::sort(sorted.begin(), sorted.end(), [](auto *a, auto *b) { return a->name() < b->name(); });
    out.clear();
    out.push_back('{');
    for (size_t i = 0; i < sorted.size(); i++) {
        if (i > 0) {
            if (sorted[i]->name() == sorted[i - 1]->name())
                return DecodeStatus::failure("invalid series", "label \"" + sorted[i]->name() + "\" appears twice");
            out.push_back(',');
        }
        append_json_string(out, sorted[i]->name());
        out.push_back(':');
        append_json_string(out, sorted[i]->value());
    }
    out.push_back('}');
    return DecodeStatus::success();
}

/* Validates and converts the metrics payload (unpacking it first when it is packed) into out, which the
 * caller has emptied. */
/* The rules of keyframes and based scrapes (proto Scrape, schema_minor 3), checked once the batch is
 * unpacked: a based scrape has a set key, was packed, is not a keyframe, names an earlier batch, and
 * shares no series with another scrape of the batch (same set key for references, same refs for
 * declared scrapes). */
DecodeStatus check_keyframe_rules(const v1::MetricBatch &in, bool packed, uint64_t batch_seq)
{
    std::vector<int> based;
    for (int k = 0; k < in.scrapes_size(); k++)
        if (in.scrapes(k).base_seq() != 0)
            based.push_back(k);
    if (based.empty())
        return DecodeStatus::success();
    if (!packed)
        return DecodeStatus::failure("invalid scrape", "a scrape based on a keyframe is not in a packed batch");
    std::unordered_set<uint32_t> based_refs;
    std::unordered_set<std::string> based_keys;
    for (int k : based) {
        const v1::Scrape &scrape = in.scrapes(k);
        if (scrape.set_key().empty())
            return DecodeStatus::failure("invalid scrape", "a scrape based on a keyframe carries no series-set key");
        if (scrape.keyframe())
            return DecodeStatus::failure("invalid scrape", "a keyframe is itself based on a keyframe");
        if (scrape.base_seq() >= batch_seq)
            return DecodeStatus::failure("invalid scrape", "a scrape is based on a keyframe of batch " +
                                                               std::to_string(scrape.base_seq()) + ", not an earlier one");
        if (!based_keys.insert(scrape.set_key()).second)
            return DecodeStatus::failure("invalid scrape", "a batch has two scrapes of one series set based on a keyframe");
        for (uint32_t ref : scrape.refs())
            based_refs.insert(ref);
    }
    for (int k = 0; k < in.scrapes_size(); k++) {
        const v1::Scrape &scrape = in.scrapes(k);
        if (scrape.base_seq() != 0)
            continue;
        bool shared = !scrape.set_key().empty() && based_keys.count(scrape.set_key()) > 0;
        for (int i = 0; !shared && i < scrape.refs_size(); i++)
            shared = based_refs.count(scrape.refs(i)) > 0;
        if (shared)
            return DecodeStatus::failure("invalid scrape", "a series of a scrape based on a keyframe appears in another scrape of the batch");
    }
    return DecodeStatus::success();
}

DecodeStatus decode_metrics(v1::MetricBatch &in, uint64_t batch_seq, MetricBatch &out)
{
    std::string unpack_error;
    const bool packed = in.has_packed();
    if (!unpack_metric_batch(in, unpack_error, &out.sample_base_relative))
        return DecodeStatus::failure("invalid packed values", unpack_error);
    if (auto st = check_keyframe_rules(in, packed, batch_seq); !st.ok)
        return st;
    if (static_cast<size_t>(in.series_size()) > kMaxSeriesPerBatch)
        return DecodeStatus::failure("too large", "a batch declares more than 1048576 series");
    std::unordered_map<uint32_t, int32_t> index_of_ref;
    index_of_ref.reserve(in.series_size());
    out.series.reserve(in.series_size());
    for (const auto &decl : in.series()) {
        SeriesDecl s;
        if (!is_valid_metric_name(decl.metric()))
            return DecodeStatus::failure("invalid series", "metric name \"" + decl.metric().substr(0, 64) + "\" is not valid");
        s.metric = decl.metric();
        switch (decl.kind()) {
        case v1::GAUGE: s.kind = "gauge"; break;
        case v1::COUNTER: s.kind = "counter"; break;
        default:
            return DecodeStatus::failure("invalid series", "metric \"" + decl.metric() + "\" has no valid kind");
        }
        if (decl.unit().size() > kMaxNameBytes || !text_is_valid(decl.unit()))
            return DecodeStatus::failure("invalid series", "unit of metric \"" + decl.metric() + "\" is not valid");
        s.unit = decl.unit();
        if (auto st = labels_to_json(decl.labels(), s.labels_json); !st.ok)
            return st;
        if (!index_of_ref.emplace(decl.ref(), static_cast<int32_t>(out.series.size())).second)
            return DecodeStatus::failure("invalid series", "series ref " + std::to_string(decl.ref()) + " is declared twice");
        out.series.push_back(std::move(s));
    }

    size_t total = 0;
    for (const auto &scrape : in.scrapes()) {
        const bool reference = scrape.refs_size() == 0 && !scrape.set_key().empty();
        if (!scrape.set_key().empty() && scrape.set_key().size() != sizeof(SeriesSetKey::bytes))
            return DecodeStatus::failure("invalid scrape", "a series-set key has " + std::to_string(scrape.set_key().size()) +
                                                               " bytes, not 16");
        if (reference && scrape.values_size() == 0)
            return DecodeStatus::failure("invalid scrape", "a scrape refers to a series set but carries no values");
        if (!reference && scrape.refs_size() != scrape.values_size())
            return DecodeStatus::failure("invalid scrape", "a scrape has " + std::to_string(scrape.refs_size()) +
                                                               " refs but " + std::to_string(scrape.values_size()) + " values");
        total += scrape.values_size();
        if (total > kMaxSamplesPerBatch)
            return DecodeStatus::failure("too large", "a batch carries more than 8388608 samples");
    }
    out.scrape_end.reserve(static_cast<size_t>(in.scrapes_size()));
    out.sample_series.reserve(total);
    out.sample_ts_unix_ms.reserve(total);
    out.sample_value.reserve(total);
    for (const auto &scrape : in.scrapes()) {
        if (scrape.ts_unix_ms() < kMinTimestampMs || scrape.ts_unix_ms() > kMaxTimestampMs)
            return DecodeStatus::failure("invalid scrape", "scrape timestamp " + std::to_string(scrape.ts_unix_ms()) +
                                                               " ms is outside 2000..2200");
        const size_t begin = out.sample_value.size();
        const bool reference = scrape.refs_size() == 0 && !scrape.set_key().empty();
        for (int i = 0; i < scrape.values_size(); i++) {
            int32_t index = -1;
            if (!reference) {
                auto it = index_of_ref.find(scrape.refs(i));
                if (it == index_of_ref.end())
                    return DecodeStatus::failure("invalid scrape", "a scrape refers to undeclared series ref " +
                                                                       std::to_string(scrape.refs(i)));
                index = it->second;
            }
            out.sample_series.push_back(index);
            out.sample_ts_unix_ms.push_back(scrape.ts_unix_ms());
            out.sample_value.push_back(scrape.values(i));
        }
        if (out.sample_value.size() == begin)
            continue; /* an empty scrape: nothing to store */
        SeriesSetKey key;
        if (reference) {
            memcpy(key.bytes, scrape.set_key().data(), sizeof key.bytes);
        } else {
            key = series_set_key(out, begin, out.sample_value.size());
            if (!scrape.set_key().empty() && memcmp(key.bytes, scrape.set_key().data(), sizeof key.bytes) != 0)
                return DecodeStatus::failure("invalid scrape", "a scrape's series-set key does not match its series");
        }
        out.scrape_end.push_back(static_cast<uint32_t>(out.sample_value.size()));
        out.scrape_key.push_back(key);
        out.scrape_is_reference.push_back(reference ? 1 : 0);
        out.scrape_is_keyframe.push_back(scrape.keyframe() ? 1 : 0);
        out.scrape_base_seq.push_back(scrape.base_seq());
    }
    return DecodeStatus::success();
}

} // namespace

bool apply_keyframe(MetricBatch &batch, size_t k, const double *keyframe, size_t n, std::string &error)
{
    const size_t begin = k == 0 ? 0 : batch.scrape_end[k - 1];
    const size_t end = batch.scrape_end[k];
    if (n != end - begin) {
        error = "the keyframe has " + std::to_string(n) + " values for a scrape of " + std::to_string(end - begin);
        return false;
    }
    if (batch.sample_base_relative.empty())
        return true;
    constexpr double kMaxExact = 9007199254740992.0; /* 2^53 */
    for (size_t i = begin; i < end; i++) {
        if (!batch.sample_base_relative[i])
            continue;
        const double base = keyframe[i - begin];
        if (!std::isfinite(base) || base != std::trunc(base) || std::fabs(base) > kMaxExact ||
            (base == 0.0 && std::signbit(base))) {
            error = "value " + std::to_string(i - begin + 1) + " is a difference to a keyframe value that is not an integer";
            return false;
        }
        /* both within +-2^53 (the decoder checked the difference): exact in int64 */
        const int64_t sum = static_cast<int64_t>(base) + static_cast<int64_t>(batch.sample_value[i]);
        if (sum > static_cast<int64_t>(kMaxExact) || sum < -static_cast<int64_t>(kMaxExact)) {
            error = "value " + std::to_string(i - begin + 1) + " plus its keyframe value is outside +-2^53";
            return false;
        }
        batch.sample_value[i] = static_cast<double>(sum);
        batch.sample_base_relative[i] = 0;
    }
    return true;
}

bool is_valid_text(std::string_view s)
{
    return text_is_valid(s);
}

std::string encode_command(const std::string &command_id, const std::string &kind,
                           const std::vector<std::pair<std::string, std::string>> &args, int64_t issued_unix_ms)
{
    v1::Command command;
    command.set_command_id(command_id);
    command.set_kind(kind);
    command.set_issued_unix_ms(issued_unix_ms);
    for (const auto &[name, value] : args)
        (*command.mutable_args())[name] = value;
    return command.SerializeAsString();
}

std::string to_valid_text(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        size_t len = utf8_sequence_length(s, i);
        if (len == 0) {
            out.push_back('?');
            i++;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
    }
    return out;
}

const char *payload_kind_subject(PayloadKind kind)
{
    switch (kind) {
    case PayloadKind::Metrics: return "metrics";
    case PayloadKind::Statements: return "statements";
    case PayloadKind::Activity: return "activity";
    case PayloadKind::Inventory: return "inventory";
    case PayloadKind::Events: return "events";
    case PayloadKind::Result: return "results";
    case PayloadKind::None: break;
    }
    return "";
}

bool is_valid_identifier(std::string_view s)
{
    if (s.empty() || s.size() > 64)
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

void append_json_string(std::string &out, std::string_view s)
{
    static const char hex[] = "0123456789abcdef";
    out.push_back('"');
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 0xF]);
            } else {
                out.push_back(static_cast<char>(c));
            }
        }
    }
    out.push_back('"');
}

DecodeStatus decode_envelope(const void *data, size_t size, Envelope &out)
{
    /* libprotobuf logs parse problems to stderr; inside a server that would let any producer write
     * to the server log. Our DecodeStatus already says what went wrong. */
    static const bool quiet = [] {
        google::protobuf::SetLogHandler(nullptr);
        return true;
    }();
    (void) quiet;
    if (size > kMaxMessageBytes)
        return DecodeStatus::failure("too large", "message of " + std::to_string(size) + " bytes exceeds 64 MiB");
    /* Every protobuf object of one decode lives in one arena, freed at once: a metrics batch holds
     * thousands of repeated elements, and freeing them one by one cost more than parsing them. */
    google::protobuf::Arena arena;
    v1::Envelope &env = *google::protobuf::Arena::CreateMessage<v1::Envelope>(&arena);
    if (!env.ParseFromArray(data, static_cast<int>(size)))
        return DecodeStatus::failure("malformed protobuf", "the message body is not a pgfleet.wire.v1.Envelope");
    if (env.schema_major() != kSchemaMajor)
        return DecodeStatus::failure("unsupported schema version",
                                     "schema major version " + std::to_string(env.schema_major()) +
                                         " is not supported; this server understands version 1");
    if (!is_valid_identifier(env.agent_id()))
        return DecodeStatus::failure("invalid envelope", "agent_id must match [A-Za-z0-9_-]{1,64}");
    if (!is_valid_identifier(env.namespace_()))
        return DecodeStatus::failure("invalid envelope", "namespace must match [A-Za-z0-9_-]{1,64}");
    if (env.boot_id().empty() || env.boot_id().size() > 64 || !text_is_valid(env.boot_id()))
        return DecodeStatus::failure("invalid envelope", "boot_id must be 1 to 64 bytes of text");
    if (env.batch_seq() == 0 || env.batch_seq() > static_cast<uint64_t>(INT64_MAX))
        return DecodeStatus::failure("invalid envelope", "batch_seq must be between 1 and 2^63-1");

    out.schema_major = env.schema_major();
    out.schema_minor = env.schema_minor();
    out.agent_id = env.agent_id();
    out.boot_id = env.boot_id();
    out.batch_seq = env.batch_seq();
    out.namespace_name = env.namespace_();
    out.created_unix_ms = env.created_unix_ms();

    out.instance = InstanceInfo{};
    if (env.has_instance()) {
        const auto &i = env.instance();
        for (const std::string *t : {&i.system_identifier(), &i.server_version(), &i.hostname(), &i.data_directory()})
            if (t->size() > kMaxValueBytes || !text_is_valid(*t))
                return DecodeStatus::failure("invalid envelope", "instance facts must be UTF-8 text of at most 4096 bytes");
        out.instance.present = true;
        out.instance.system_identifier = i.system_identifier();
        out.instance.server_version = i.server_version();
        out.instance.server_version_num = i.server_version_num();
        out.instance.hostname = i.hostname();
        out.instance.data_directory = i.data_directory();
        out.instance.in_recovery = i.in_recovery();
        out.instance.postmaster_start_unix_ms = i.postmaster_start_unix_ms();
        out.instance.port = i.port();
    }

    /* out may be reused from an earlier message: nothing of that one must show through (capacity kept) */
    out.payload_json.clear();
    out.metrics.clear();
    switch (env.payload_case()) {
    case v1::Envelope::kMetrics:
        out.kind = PayloadKind::Metrics;
        return decode_metrics(*env.mutable_metrics(), env.batch_seq(), out.metrics);
    case v1::Envelope::kMetricsZstd: {
        out.kind = PayloadKind::Metrics;
        v1::MetricBatch &batch = *google::protobuf::Arena::CreateMessage<v1::MetricBatch>(&arena);
        std::string error;
        if (!decompress_metrics(env.metrics_zstd(), kMaxMessageBytes, batch, error))
            return DecodeStatus::failure("invalid compressed metrics", error);
        return decode_metrics(batch, env.batch_seq(), out.metrics);
    }
    case v1::Envelope::kStatements:
        out.kind = PayloadKind::Statements;
        return statements_to_json(env.statements(), out.payload_json);
    case v1::Envelope::kActivity:
        out.kind = PayloadKind::Activity;
        return activity_to_json(env.activity(), out.payload_json);
    case v1::Envelope::kInventory:
        out.kind = PayloadKind::Inventory;
        return inventory_to_json(env.inventory(), out.payload_json);
    case v1::Envelope::kEvents:
        out.kind = PayloadKind::Events;
        return events_to_json(env.events(), out.payload_json);
    case v1::Envelope::kResult:
        out.kind = PayloadKind::Result;
        return result_to_json(env.result(), out.payload_json);
    default:
        out.kind = PayloadKind::None;
        return DecodeStatus::failure("unknown payload", "the envelope carries no payload this server understands");
    }
}

DecodeStatus parse_subject(std::string_view subject, Subject &out)
{
    std::vector<std::string_view> tokens;
    size_t start = 0;
    while (true) {
        size_t dot = subject.find('.', start);
        tokens.push_back(subject.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
        if (dot == std::string_view::npos || tokens.size() > 5)
            break;
        start = dot + 1;
    }
    if (tokens.size() != 5 || tokens[0] != "fleet" || tokens[1] != "in")
        return DecodeStatus::failure("invalid subject", "subject must be fleet.in.<namespace>.<agent_id>.<kind>");
    if (!is_valid_identifier(tokens[2]) || !is_valid_identifier(tokens[3]) || tokens[4].empty())
        return DecodeStatus::failure("invalid subject", "namespace and agent_id in the subject must match [A-Za-z0-9_-]{1,64}");
    out.namespace_name = std::string(tokens[2]);
    out.agent_id = std::string(tokens[3]);
    out.kind = std::string(tokens[4]);
    return DecodeStatus::success();
}

DecodeStatus check_subject(const Subject &subject, const Envelope &envelope)
{
    if (subject.agent_id != envelope.agent_id || subject.namespace_name != envelope.namespace_name)
        return DecodeStatus::failure("subject mismatch", "the envelope names agent \"" + envelope.agent_id + "\" in namespace \"" +
                                                             envelope.namespace_name + "\" but came on the subject of agent \"" +
                                                             subject.agent_id + "\" in namespace \"" + subject.namespace_name + "\"");
    const char *expected = payload_kind_subject(envelope.kind);
    if (subject.kind != expected)
        return DecodeStatus::failure("subject mismatch", "a " + std::string(expected) + " payload came on a \"" + subject.kind + "\" subject");
    return DecodeStatus::success();
}

} // namespace pgfleet::wire

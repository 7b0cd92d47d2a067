// See batch.h.
#include "agent/batch.h"

#include "core/wire_pack.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pgfleet::agent {

bool InstanceFacts::operator==(const InstanceFacts &other) const {
    return system_identifier == other.system_identifier && server_version == other.server_version &&
           server_version_num == other.server_version_num && hostname == other.hostname &&
           data_directory == other.data_directory && in_recovery == other.in_recovery &&
           postmaster_start_unix_ms == other.postmaster_start_unix_ms && port == other.port;
}

bool SeriesSetMemory::KeyLess::operator()(const wire::SeriesSetKey &a, const wire::SeriesSetKey &b) const {
    return memcmp(a.bytes, b.bytes, sizeof a.bytes) < 0;
}

void SeriesSetMemory::declared(uint64_t batch_seq, const wire::SeriesSetKey &key) {
    pending_.emplace(batch_seq, key);
}

void SeriesSetMemory::acknowledged(uint64_t batch_seq, int64_t now_ms) {
    auto end = pending_.upper_bound(batch_seq);
    for (auto it = pending_.lower_bound(batch_seq); it != end; ++it) acknowledged_at_[it->second] = now_ms;
    pending_.erase(pending_.begin(), end);  // earlier ones were dropped from the spool, never acknowledged
    auto keyframes_end = pending_keyframes_.upper_bound(batch_seq);
    for (auto it = pending_keyframes_.lower_bound(batch_seq); it != keyframes_end; ++it)
        bases_[it->second.first] = std::move(it->second.second);
    pending_keyframes_.erase(pending_keyframes_.begin(), keyframes_end);
    if (bases_.size() > 4096) {  // sets the agent stopped using: forget their stale keyframes
        for (auto it = bases_.begin(); it != bases_.end();)
            it = now_ms - it->second.ts_ms >= kKeyframeMaxAgeMs ? bases_.erase(it) : std::next(it);
        for (auto it = keyframe_sealed_at_.begin(); it != keyframe_sealed_at_.end();)
            it = now_ms - it->second >= kKeyframeMaxAgeMs ? keyframe_sealed_at_.erase(it) : std::next(it);
    }
    if (acknowledged_at_.size() > 4096) {  // sets the agent stopped using: forget the stale ones
        for (auto it = acknowledged_at_.begin(); it != acknowledged_at_.end();)
            it = now_ms - it->second >= kSeriesSetFreshMs ? acknowledged_at_.erase(it) : std::next(it);
    }
}

const SeriesSetMemory::Keyframe *SeriesSetMemory::base_for(const wire::SeriesSetKey &key, int64_t now_ms) const {
    auto it = bases_.find(key);
    if (it == bases_.end() || now_ms < it->second.ts_ms || now_ms - it->second.ts_ms >= kKeyframeMaxAgeMs)
        return nullptr;
    return &it->second;
}

bool SeriesSetMemory::wants_keyframe(const wire::SeriesSetKey &key, int64_t now_ms) const {
    if (!may_refer(key, now_ms) || base_for(key, now_ms) != nullptr) return false;
    auto it = keyframe_sealed_at_.find(key);
    return it == keyframe_sealed_at_.end() || now_ms < it->second || now_ms - it->second >= kKeyframeMaxAgeMs;
}

void SeriesSetMemory::keyframe_sealed(uint64_t batch_seq, const wire::SeriesSetKey &key, int64_t ts_ms,
                                      std::vector<double> values) {
    keyframe_sealed_at_[key] = ts_ms;
    pending_keyframes_.emplace(batch_seq, std::make_pair(key, Keyframe{batch_seq, ts_ms, std::move(values)}));
}

bool SeriesSetMemory::may_refer(const wire::SeriesSetKey &key, int64_t now_ms) const {
    auto it = acknowledged_at_.find(key);
    return it != acknowledged_at_.end() && now_ms - it->second < kSeriesSetFreshMs && now_ms >= it->second;
}

void BatchBuilder::begin(std::string_view agent_id, std::string_view namespace_name, std::string_view boot_id,
                         uint64_t batch_seq, int64_t ts_unix_ms) {
    envelope_.Clear();
    envelope_.set_schema_major(kSchemaMajor);
    envelope_.set_schema_minor(kSchemaMinor);
    envelope_.set_agent_id(agent_id.data(), agent_id.size());
    envelope_.set_namespace_(namespace_name.data(), namespace_name.size());
    envelope_.set_boot_id(boot_id.data(), boot_id.size());
    envelope_.set_batch_seq(batch_seq);
    envelope_.set_created_unix_ms(ts_unix_ms);
    batch_ = envelope_.mutable_metrics();
    scrape_ = batch_->add_scrapes();
    samples_ = 0;
    scrape_->set_ts_unix_ms(ts_unix_ms);
}

void BatchBuilder::set_instance(const InstanceFacts &facts) {
    wire::v1::InstanceInfo *info = envelope_.mutable_instance();
    info->set_system_identifier(facts.system_identifier);
    info->set_server_version(facts.server_version);
    info->set_server_version_num(facts.server_version_num);
    info->set_hostname(facts.hostname);
    info->set_data_directory(facts.data_directory);
    info->set_in_recovery(facts.in_recovery);
    info->set_postmaster_start_unix_ms(facts.postmaster_start_unix_ms);
    info->set_port(facts.port);
}

void BatchBuilder::add(std::string_view metric, wire::v1::MetricKind kind, std::string_view unit,
                       std::initializer_list<LabelRef> labels, double value) {
    if (scrape_ == nullptr) {
        fprintf(stderr, "pgfleet-agent: BatchBuilder::add called before begin\n");
        abort();
    }
    sorted_labels_.assign(labels.begin(), labels.end());
    std::sort(sorted_labels_.begin(), sorted_labels_.end(),
              [](const LabelRef &a, const LabelRef &b) { return a.name < b.name; });
    for (size_t i = 1; i < sorted_labels_.size(); i++) {
        if (sorted_labels_[i].name == sorted_labels_[i - 1].name) {
            fprintf(stderr, "pgfleet-agent: duplicate label \"%.*s\" on metric %.*s\n",
                    static_cast<int>(sorted_labels_[i].name.size()), sorted_labels_[i].name.data(),
                    static_cast<int>(metric.size()), metric.data());
            abort();
        }
    }

    uint32_t ref = static_cast<uint32_t>(batch_->series_size());
    wire::v1::SeriesDecl *series = batch_->add_series();
    series->set_ref(ref);
    series->set_metric(metric.data(), metric.size());
    series->set_kind(kind);
    series->set_unit(unit.data(), unit.size());
    for (const LabelRef &label : sorted_labels_) {
        wire::v1::Label *out = series->add_labels();
        out->set_name(label.name.data(), label.name.size());
        out->set_value(label.value.data(), label.value.size());
    }
    scrape_->add_refs(ref);
    scrape_->add_values(value);
    samples_++;
}

const std::string &BatchBuilder::seal(SeriesSetMemory *sets) {
    if (sets != nullptr && scrape_->refs_size() > 0) {
        wire::SeriesSetKey key;
        if (!wire::scrape_set_key(*batch_, *scrape_, key, key_error_)) {
            fprintf(stderr, "pgfleet-agent: batch %llu: %s\n", static_cast<unsigned long long>(envelope_.batch_seq()),
                    key_error_.c_str());
            abort();
        }
        const int64_t now_ms = envelope_.created_unix_ms();
        const SeriesSetMemory::Keyframe *base = sets->base_for(key, now_ms);
        if (base != nullptr && base->values.size() == static_cast<size_t>(scrape_->values_size())) {
            scrape_->set_base_seq(base->batch_seq);
            base_values_.assign(1, &base->values);
        } else if (sets->wants_keyframe(key, now_ms)) {
            scrape_->set_keyframe(true);
            sets->keyframe_sealed(envelope_.batch_seq(), key, now_ms,
                                  std::vector<double>(scrape_->values().begin(), scrape_->values().end()));
        }
        if (sets->may_refer(key, now_ms)) {
            wire::make_references(*batch_, {key});
        } else {
            scrape_->set_set_key(key.bytes, sizeof key.bytes);
            sets->declared(envelope_.batch_seq(), key);
        }
    }
    wire::pack_metric_batch(*batch_, scrape_->base_seq() != 0 ? &base_values_ : nullptr);
    base_values_.clear();
    std::string error;
    if (!wire::compress_metrics(envelope_, kZstdLevel, error)) {
        fprintf(stderr, "pgfleet-agent: could not compress batch %llu: %s\n",
                static_cast<unsigned long long>(envelope_.batch_seq()), error.c_str());
        abort();
    }
    batch_ = nullptr;
    scrape_ = nullptr;
    if (!envelope_.SerializeToString(&bytes_)) {
        fprintf(stderr, "pgfleet-agent: could not serialize envelope (batch_seq %llu)\n",
                static_cast<unsigned long long>(envelope_.batch_seq()));
        abort();
    }
    return bytes_;
}

}  // namespace pgfleet::agent

// See activity.h.
#include "agent/activity.h"

#include <algorithm>

namespace pgfleet::agent {

void ActivityAggregator::begin_interval(int64_t start_ms) {
    start_ms_ = start_ms;
    samples_taken_ = 0;
    longest_transaction_ = 0;
    longest_idle_in_transaction_ = 0;
    used_ = 0;
    index_.clear();
    blocking_.clear();
}

void ActivityAggregator::observe(const ActivityObservation &row) {
    key_.clear();
    for (std::string_view part : {row.state, row.wait_event_type, row.wait_event, row.backend_type, row.datname,
                                  row.usename, row.application_name}) {
        key_.append(part).push_back('\x1f');
    }
    key_.append(std::to_string(row.queryid));
    auto found = index_.find(key_);
    if (found != index_.end()) {
        groups_[found->second].observations++;
        return;
    }
    if (used_ == groups_.size()) groups_.emplace_back();
    Group &group = groups_[used_];
    group.state.assign(row.state);
    group.wait_event_type.assign(row.wait_event_type);
    group.wait_event.assign(row.wait_event);
    group.backend_type.assign(row.backend_type);
    group.datname.assign(row.datname);
    group.usename.assign(row.usename);
    group.application_name.assign(row.application_name);
    group.queryid = row.queryid;
    group.observations = 1;
    index_.emplace(key_, used_);
    used_++;
}

void ActivityAggregator::note_ages(double longest_transaction_seconds, double longest_idle_in_transaction_seconds) {
    longest_transaction_ = std::max(longest_transaction_, longest_transaction_seconds);
    longest_idle_in_transaction_ = std::max(longest_idle_in_transaction_, longest_idle_in_transaction_seconds);
}

void ActivityAggregator::flush(int64_t end_ms, wire::v1::ActivityBatch *batch) {
    batch->Clear();
    batch->set_interval_start_unix_ms(start_ms_);
    batch->set_interval_end_unix_ms(end_ms);
    batch->set_samples_taken(samples_taken_);
    batch->set_longest_transaction_seconds(longest_transaction_);
    batch->set_longest_idle_in_transaction_seconds(longest_idle_in_transaction_);
    for (size_t i = 0; i < used_; i++) {
        const Group &group = groups_[i];
        wire::v1::ActivityGroup *out = batch->add_groups();
        out->set_state(group.state);
        out->set_wait_event_type(group.wait_event_type);
        out->set_wait_event(group.wait_event);
        out->set_queryid(group.queryid);
        out->set_backend_type(group.backend_type);
        out->set_datname(group.datname);
        out->set_usename(group.usename);
        out->set_application_name(group.application_name);
        out->set_observations(group.observations);
    }
    for (const BlockingEdgeRow &edge : blocking_) {
        wire::v1::BlockingEdge *out = batch->add_blocking();
        out->set_blocked_pid(edge.blocked_pid);
        out->set_blocking_pid(edge.blocking_pid);
        out->set_blocked_queryid(edge.blocked_queryid);
        out->set_blocking_queryid(edge.blocking_queryid);
        out->set_blocked_seconds(edge.blocked_seconds);
    }
    begin_interval(end_ms);
}

}  // namespace pgfleet::agent

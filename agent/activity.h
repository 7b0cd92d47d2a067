// Aggregation of pg_stat_activity samples into one ActivityBatch per interval (pure logic, unit-tested).
//
// The activity collector samples pg_stat_activity every activity_sample_seconds (default 1 s): each
// non-idle backend other than the agent's own is one observation of its group (state, wait_event_type,
// wait_event, query_id, backend_type, datname, usename, application_name). At the end of an interval the
// groups become ActivityBatch.groups with their observation counts and samples_taken, so the centre can
// compute average active sessions per wait event or query (observations / samples_taken) without any
// extension on the monitored instance. The longest transaction and idle-in-transaction ages are the
// maxima seen over the interval's samples; blocking edges are those of the last sample.
//
// Memory: groups live in a vector reused between intervals and are found through a hash map keyed by
// the joined text of the group's fields; both keep their capacity after flush().
#pragma once

#include "fleet.pb.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgfleet::agent {

// One backend in one sample (fields as pg_stat_activity shows them; "" for NULL, 0 for no query id).
struct ActivityObservation {
    std::string_view state;
    std::string_view wait_event_type;
    std::string_view wait_event;
    int64_t queryid = 0;
    std::string_view backend_type;
    std::string_view datname;
    std::string_view usename;
    std::string_view application_name;
};

struct BlockingEdgeRow {
    int32_t blocked_pid = 0;
    int32_t blocking_pid = 0;
    int64_t blocked_queryid = 0;
    int64_t blocking_queryid = 0;
    double blocked_seconds = 0;
};

class ActivityAggregator {
public:
    // Starts a new interval at start_ms, forgetting everything.
    void begin_interval(int64_t start_ms);
    // Counts one sample (call once per pg_stat_activity read, before its observations).
    void begin_sample() { samples_taken_++; }
    // Adds one backend of the current sample to its group.
    void observe(const ActivityObservation &row);
    // Raises the interval's maxima of transaction and idle-in-transaction ages (seconds).
    void note_ages(double longest_transaction_seconds, double longest_idle_in_transaction_seconds);
    // Replaces the blocking edges (those of the latest sample).
    void set_blocking(const std::vector<BlockingEdgeRow> &edges) { blocking_ = edges; }

    // Writes the interval into *batch (cleared first), ending at end_ms, then starts the next interval at
    // end_ms.
    void flush(int64_t end_ms, wire::v1::ActivityBatch *batch);

    uint32_t samples_taken() const { return samples_taken_; }
    size_t group_count() const { return used_; }
    int64_t interval_start_ms() const { return start_ms_; }

private:
    struct Group {
        std::string state, wait_event_type, wait_event, backend_type, datname, usename, application_name;
        int64_t queryid = 0;
        uint32_t observations = 0;
    };

    int64_t start_ms_ = 0;
    uint32_t samples_taken_ = 0;
    double longest_transaction_ = 0;
    double longest_idle_in_transaction_ = 0;
    std::vector<Group> groups_;  // the first used_ are this interval's
    size_t used_ = 0;
    std::unordered_map<std::string, size_t> index_;
    std::string key_;
    std::vector<BlockingEdgeRow> blocking_;
};

}  // namespace pgfleet::agent

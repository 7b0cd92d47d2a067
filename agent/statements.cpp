// See statements.h.
#include "agent/statements.h"

namespace pgfleet::agent {

size_t StatementKeyHash::operator()(const StatementKey &key) const {
    uint64_t h = static_cast<uint64_t>(key.queryid) * 0x9E3779B97F4A7C15ull;
    h ^= (static_cast<uint64_t>(key.dbid) << 32 | key.userid) + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
    h ^= key.toplevel ? 0x51ED270B27CBu : 0;
    return static_cast<size_t>(h);
}

bool StatementCounters::operator==(const StatementCounters &o) const {
    return calls == o.calls && total_exec_time_ms == o.total_exec_time_ms &&
           total_plan_time_ms == o.total_plan_time_ms && rows == o.rows && shared_blks_hit == o.shared_blks_hit &&
           shared_blks_read == o.shared_blks_read && shared_blks_dirtied == o.shared_blks_dirtied &&
           shared_blks_written == o.shared_blks_written && local_blks_hit == o.local_blks_hit &&
           local_blks_read == o.local_blks_read && temp_blks_read == o.temp_blks_read &&
           temp_blks_written == o.temp_blks_written && blk_read_time_ms == o.blk_read_time_ms &&
           blk_write_time_ms == o.blk_write_time_ms && wal_records == o.wal_records && wal_fpi == o.wal_fpi &&
           wal_bytes == o.wal_bytes;
}

StatementCounters counters_delta(const StatementCounters &c, const StatementCounters &p) {
    StatementCounters d;
    d.calls = c.calls - p.calls;
    d.total_exec_time_ms = c.total_exec_time_ms - p.total_exec_time_ms;
    d.total_plan_time_ms = c.total_plan_time_ms - p.total_plan_time_ms;
    d.rows = c.rows - p.rows;
    d.shared_blks_hit = c.shared_blks_hit - p.shared_blks_hit;
    d.shared_blks_read = c.shared_blks_read - p.shared_blks_read;
    d.shared_blks_dirtied = c.shared_blks_dirtied - p.shared_blks_dirtied;
    d.shared_blks_written = c.shared_blks_written - p.shared_blks_written;
    d.local_blks_hit = c.local_blks_hit - p.local_blks_hit;
    d.local_blks_read = c.local_blks_read - p.local_blks_read;
    d.temp_blks_read = c.temp_blks_read - p.temp_blks_read;
    d.temp_blks_written = c.temp_blks_written - p.temp_blks_written;
    d.blk_read_time_ms = c.blk_read_time_ms - p.blk_read_time_ms;
    d.blk_write_time_ms = c.blk_write_time_ms - p.blk_write_time_ms;
    d.wal_records = c.wal_records - p.wal_records;
    d.wal_fpi = c.wal_fpi - p.wal_fpi;
    d.wal_bytes = c.wal_bytes - p.wal_bytes;
    return d;
}

bool counters_went_down(const StatementCounters &c, const StatementCounters &p) {
    // Times are doubles summed by the server; they never decrease without a reset either.
    return c.calls < p.calls || c.total_exec_time_ms < p.total_exec_time_ms ||
           c.total_plan_time_ms < p.total_plan_time_ms || c.rows < p.rows || c.shared_blks_hit < p.shared_blks_hit ||
           c.shared_blks_read < p.shared_blks_read || c.shared_blks_dirtied < p.shared_blks_dirtied ||
           c.shared_blks_written < p.shared_blks_written || c.local_blks_hit < p.local_blks_hit ||
           c.local_blks_read < p.local_blks_read || c.temp_blks_read < p.temp_blks_read ||
           c.temp_blks_written < p.temp_blks_written || c.blk_read_time_ms < p.blk_read_time_ms ||
           c.blk_write_time_ms < p.blk_write_time_ms || c.wal_records < p.wal_records || c.wal_fpi < p.wal_fpi ||
           c.wal_bytes < p.wal_bytes;
}

bool StatementTracker::diff(const std::vector<StatementRow> &rows, const std::string &stats_reset,
                            std::vector<StatementChange> *changes) {
    changes->clear();
    current_.clear();
    for (const StatementRow &row : rows) current_[row.key] = row.counters;

    bool was_reset = has_baseline_ && stats_reset != stats_reset_;
    if (has_baseline_) {
        for (const auto &[key, counters] : current_) {
            auto before = previous_.find(key);
            if (was_reset) {
                if (counters.calls == 0 && counters == StatementCounters()) continue;
                changes->push_back({key, counters, true});
            } else if (before == previous_.end()) {
                changes->push_back({key, counters, false});
            } else if (counters == before->second) {
                continue;
            } else if (counters_went_down(counters, before->second)) {
                changes->push_back({key, counters, true});
            } else {
                changes->push_back({key, counters_delta(counters, before->second), false});
            }
        }
    }
    previous_.swap(current_);
    stats_reset_ = stats_reset;
    has_baseline_ = true;
    return was_reset;
}

void StatementTracker::forget_baseline() {
    previous_.clear();
    has_baseline_ = false;
    stats_reset_.clear();
    texts_sent_.clear();
}

void StatementTracker::mark_text_sent(int64_t queryid) {
    if (texts_sent_.size() >= kMaxRememberedTexts) texts_sent_.clear();
    texts_sent_.insert(queryid);
}

}  // namespace pgfleet::agent

// Statement statistics as per-interval deltas (pure logic, no libpq: unit-tested in tests/unit/agent).
//
// The statements collector reads pg_stat_statements(false) (no texts) every interval and hands the rows to
// a StatementTracker, which keeps the previous totals of every entry keyed by (dbid, userid, queryid,
// toplevel) and emits, for each entry whose counters changed, the increase since the previous poll:
//   - first poll of a boot: baseline only, nothing is emitted (what happened before is unknown);
//   - an entry not seen in the previous poll: it appeared since then, its totals are the delta;
//   - an entry whose calls (or any counter) went down was reset or deallocated and came back: its current
//     totals are sent as the delta with reset = true (the increase before the reset is lost);
//   - pg_stat_statements_info.stats_reset changed: every entry was reset; all current entries are sent
//     with their totals and reset = true, and the batch says stats_reset = true;
//   - unchanged entries are not sent.
// The agent never resets statistics itself.
//
// Texts: the tracker remembers which queryids' texts were sent in this boot; the collector fetches texts
// (pg_stat_statements(true) filtered by queryid) only for the others. The set is bounded (cleared past
// kMaxRememberedTexts, which only causes texts to be sent again).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace pgfleet::agent {

struct StatementKey {
    uint32_t dbid = 0;
    uint32_t userid = 0;
    int64_t queryid = 0;
    bool toplevel = true;

    bool operator==(const StatementKey &other) const {
        return dbid == other.dbid && userid == other.userid && queryid == other.queryid &&
               toplevel == other.toplevel;
    }
};

struct StatementKeyHash {
    size_t operator()(const StatementKey &key) const;
};

// Cumulative counters of one pg_stat_statements entry (or their increase, in a delta).
struct StatementCounters {
    int64_t calls = 0;
    double total_exec_time_ms = 0;
    double total_plan_time_ms = 0;
    int64_t rows = 0;
    int64_t shared_blks_hit = 0;
    int64_t shared_blks_read = 0;
    int64_t shared_blks_dirtied = 0;
    int64_t shared_blks_written = 0;
    int64_t local_blks_hit = 0;
    int64_t local_blks_read = 0;
    int64_t temp_blks_read = 0;
    int64_t temp_blks_written = 0;
    double blk_read_time_ms = 0;
    double blk_write_time_ms = 0;
    int64_t wal_records = 0;
    int64_t wal_fpi = 0;
    uint64_t wal_bytes = 0;

    bool operator==(const StatementCounters &other) const;
};

struct StatementRow {
    StatementKey key;
    StatementCounters counters;
};

struct StatementChange {
    StatementKey key;
    StatementCounters delta;
    bool reset = false;
};

// Keeps the previous poll and computes the changes of the next one (see the file comment).
class StatementTracker {
public:
    static constexpr size_t kMaxRememberedTexts = 100000;

    // Compares rows (a complete pg_stat_statements snapshot) with the previous one; appends the changed
    // entries to *changes (cleared first). stats_reset is pg_stat_statements_info.stats_reset as text.
    // Returns true when stats_reset changed since the previous poll (then every change has reset = true).
    bool diff(const std::vector<StatementRow> &rows, const std::string &stats_reset,
              std::vector<StatementChange> *changes);

    // True once a baseline exists (after the first diff).
    bool has_baseline() const { return has_baseline_; }

    // Forgets the baseline (the monitored server changed: new system identifier).
    void forget_baseline();

    // Text bookkeeping for this boot.
    bool text_sent(int64_t queryid) const { return texts_sent_.count(queryid) != 0; }
    void mark_text_sent(int64_t queryid);

    // Number of entries in the current baseline (for the agent's own metrics).
    size_t tracked() const { return previous_.size(); }

private:
    std::unordered_map<StatementKey, StatementCounters, StatementKeyHash> previous_;
    std::unordered_map<StatementKey, StatementCounters, StatementKeyHash> current_;
    std::unordered_set<int64_t> texts_sent_;
    std::string stats_reset_;
    bool has_baseline_ = false;
};

// Returns current - previous field by field (callers only use it when no field went down).
StatementCounters counters_delta(const StatementCounters &current, const StatementCounters &previous);

// True when any counter of current is below previous (the entry was reset or deallocated).
bool counters_went_down(const StatementCounters &current, const StatementCounters &previous);

}  // namespace pgfleet::agent

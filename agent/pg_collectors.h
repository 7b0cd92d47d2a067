// The PostgreSQL-side collectors beyond pg_stat_database: statements (pg_stat_statements), activity
// (pg_stat_activity sampling) and server metrics (bgwriter/checkpointer, WAL, replication, slots,
// database sizes). Each runs its queries through PgSource::exec (prepared once per connection, bounded by
// the connection's statement_timeout/lock_timeout) and turns the rows into wire messages; the decisions
// (deltas, aggregation) are in statements.h and activity.h so they can be unit-tested without a server.
//
// All of this runs on the agent's main thread.
#pragma once

#include "agent/activity.h"
#include "agent/batch.h"
#include "agent/objects.h"
#include "agent/pg_source.h"
#include "agent/statements.h"

#include "fleet.pb.h"

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace pgfleet::agent {

enum class CollectStatus {
    ok,           // collected
    unavailable,  // the source does not exist on this server (e.g. pg_stat_statements not installed)
    failed,       // a query failed (connection lost, timeout, permission...)
};

// Reads pg_stat_statements and fills a StatementBatch with the changes since the previous poll.
// Texts are bounded so that a batch stays far below NATS's max_payload (1 MiB by default): one text is cut
// at kMaxTextBytes (on a UTF-8 boundary), and at most kTextBudgetBytes of texts go into one poll; the rest
// are fetched at the next poll (they are not marked as sent). Deltas are split into envelopes of at most
// kMaxDeltasPerBatch by the caller.
class StatementsCollector {
public:
    static constexpr size_t kMaxTextBytes = 32768;
    static constexpr size_t kTextBudgetBytes = 262144;
    static constexpr int kMaxDeltasPerBatch = 2000;

    // Polls once. On ok, *batch holds the deltas, texts and names (possibly nothing: check has_content);
    // *error explains unavailable and failed.
    CollectStatus collect(PgSource &postgres, int64_t now_ms, wire::v1::StatementBatch *batch, std::string *error);

    // True when the last ok poll found something to send.
    static bool has_content(const wire::v1::StatementBatch &batch) {
        return batch.deltas_size() > 0 || batch.texts_size() > 0 || batch.stats_reset();
    }

    // Forgets the baseline (server identity changed, or the collector was re-enabled).
    void forget() {
        tracker_.forget_baseline();
        pending_texts_.clear();
        database_names_.clear();
        user_names_.clear();
    }

    size_t tracked() const { return tracker_.tracked(); }

private:
    // Refreshes the dbid/userid name caches; false with *error on failure.
    bool refresh_names(PgSource &postgres, std::string *error);

    StatementTracker tracker_;
    std::string schema_;          // quoted schema of the extension, as found
    std::vector<StatementRow> rows_;
    std::vector<StatementChange> changes_;
    std::vector<int64_t> missing_texts_;
    std::vector<int64_t> pending_texts_;  // queryids sent without their text yet (budget, failed query)
    std::string array_text_;
    std::unordered_map<uint32_t, std::string> database_names_;
    std::unordered_map<uint32_t, std::string> user_names_;
    int64_t last_poll_ms_ = 0;
};

// Samples pg_stat_activity into an ActivityAggregator.
class ActivitySampler {
public:
    // Takes one sample (and, with blocking, the blocking edges through pg_blocking_pids); false with *error.
    bool sample(PgSource &postgres, ActivityAggregator *aggregator, bool blocking, std::string *error);

private:
    std::vector<BlockingEdgeRow> edges_;
};

// Reads pg_settings, pg_extension (of the connected database) and pg_database into an Inventory:
// the complete lists (full = true) on the first run of a boot, every kFullRefreshMs, and whenever an
// extension or database appeared or went away or a setting went away; otherwise only the settings whose
// (setting, unit, source, pending_restart) changed since the last inventory sent (full = false), and
// nothing at all when nothing changed. The caller seals the batch, then calls sent().
class InventoryCollector {
public:
    static constexpr int64_t kFullRefreshMs = 3600 * 1000;

    // Polls once; *changed says whether *inventory holds something to send. False with *error on failure.
    bool collect(PgSource &postgres, int64_t now_ms, wire::v1::Inventory *inventory, bool *changed,
                 std::string *error);
    // Records the polled state as delivered (call after the inventory was sealed into the spool).
    void sent(int64_t now_ms);
    // Forgets what was sent (the monitored server changed): the next inventory is full.
    void forget() { have_sent_ = false; }

private:
    struct SettingValue {
        std::string setting, unit, source;
        bool pending_restart = false;
        bool operator==(const SettingValue &o) const {
            return setting == o.setting && unit == o.unit && source == o.source && pending_restart == o.pending_restart;
        }
    };
    std::unordered_map<std::string, SettingValue> sent_settings_, polled_settings_;
    std::unordered_map<std::string, std::string> sent_extensions_, polled_extensions_;
    std::vector<std::string> sent_databases_, polled_databases_;
    bool have_sent_ = false;
    bool polled_full_ = false;  // the last collect() produced a full inventory
    int64_t last_full_ms_ = 0;
};

// Adds server-wide metrics to the batch: pg.bgwriter.*, pg.wal.*, pg.replication.*, pg.wal_receiver.*,
// pg.replication_slots.*, and (at most every sizes_period_ms) pg.database.size_bytes. Each group that
// fails is skipped and named in *errors ("" when everything worked); returns false only when the
// connection broke.
class ServerMetricsCollector {
public:
    bool collect(PgSource &postgres, int64_t now_ms, BatchBuilder *builder, std::string *errors);

    static constexpr int64_t kSizesPeriodMs = 60000;

private:
    int64_t sizes_collected_ms_ = 0;
};

// Reads per-object statistics of the connected database (tables, indexes, sequences, and functions when
// track_functions is on) and adds pg.table.*, pg.index.*, pg.sequence.* and pg.function.* samples for the
// objects that changed since they were last sent (ObjectChangeTracker), every object at least every full
// refresh period. At most kMaxObjects objects per collection (the rest is cut, logged once by the caller
// through *cut). Samples go to the builder returned by next_builder(), called before each object (the
// caller starts a new batch when the current one is full).
class ObjectsCollector {
public:
    static constexpr int kMaxObjects = 10000;

    // False with *error when a query failed (nothing more is tried). *sent counts the objects emitted,
    // *cut says whether the cap cut the collection.
    bool collect(PgSource &postgres, int64_t now_ms, const std::function<BatchBuilder *()> &next_builder,
                 int *sent, bool *cut, std::string *error);

    void set_full_refresh_ms(int64_t ms) { tracker_.set_full_refresh_ms(ms); }
    void forget() { tracker_.forget(); }
    size_t tracked() const { return tracker_.tracked(); }

private:
    ObjectChangeTracker tracker_;
    std::string key_;
    std::string limit_;
};

}  // namespace pgfleet::agent

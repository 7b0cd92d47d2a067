// See pg_collectors.h. The SQL of every collector is here, in one place, so its cost can be reviewed:
// every query reads statistics views or functions only, never takes a lock on a user table, and never
// resets anything.
#include "agent/pg_collectors.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace pgfleet::agent {

namespace {

using wire::v1::COUNTER;
using wire::v1::GAUGE;

const char *const kFindStatementsSql =
    "SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e "
    "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'";

const char *const kNamesSql =
    "SELECT 'd', oid::pg_catalog.int8, datname::text FROM pg_catalog.pg_database UNION ALL "
    "SELECT 'u', oid::pg_catalog.int8, rolname::text FROM pg_catalog.pg_roles";

const char *const kActivitySql =
    "SELECT coalesce(state, ''), coalesce(wait_event_type, ''), coalesce(wait_event, ''), coalesce(query_id, 0), "
    "coalesce(backend_type, ''), coalesce(datname::text, ''), coalesce(usename::text, ''), "
    "coalesce(application_name, ''), "
    "coalesce(extract(epoch FROM now() - xact_start), 0)::float8, "
    "CASE WHEN state LIKE 'idle in transaction%' THEN extract(epoch FROM now() - state_change) ELSE 0 END::float8 "
    "FROM pg_catalog.pg_stat_activity "
    "WHERE pid <> pg_catalog.pg_backend_pid() AND state <> 'idle' AND application_name <> 'pgfleet-agent'";

const char *const kBlockingSql =
    "SELECT a.pid, bp.pid, coalesce(a.query_id, 0), coalesce(b.query_id, 0), "
    "coalesce(extract(epoch FROM now() - a.state_change), 0)::float8 "
    "FROM pg_catalog.pg_stat_activity a "
    "CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(a.pid)) AS bp(pid) "
    "LEFT JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid "
    "WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_catalog.pg_backend_pid()";

const char *const kBgwriterSql =
    "SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time, buffers_checkpoint, "
    "buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync, buffers_alloc "
    "FROM pg_catalog.pg_stat_bgwriter";
const char *const kBgwriterColumns[] = {"checkpoints_timed",  "checkpoints_req",    "checkpoint_write_time",
                                        "checkpoint_sync_time", "buffers_checkpoint", "buffers_clean",
                                        "maxwritten_clean",   "buffers_backend",    "buffers_backend_fsync",
                                        "buffers_alloc"};

const char *const kWalSql =
    "SELECT wal_records, wal_fpi, wal_bytes, wal_buffers_full, wal_write, wal_sync, wal_write_time, wal_sync_time "
    "FROM pg_catalog.pg_stat_wal";
const char *const kWalColumns[] = {"wal_records", "wal_fpi",  "wal_bytes",      "wal_buffers_full",
                                   "wal_write",   "wal_sync", "wal_write_time", "wal_sync_time"};

const char *const kReplicationSql =
    "SELECT coalesce(application_name, ''), coalesce(client_addr::text, 'local'), "
    "pg_catalog.pg_wal_lsn_diff(CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn() "
    "ELSE pg_catalog.pg_current_wal_lsn() END, replay_lsn)::float8, "
    "extract(epoch FROM replay_lag)::float8, extract(epoch FROM write_lag)::float8, "
    "extract(epoch FROM flush_lag)::float8 "
    "FROM pg_catalog.pg_stat_replication";

const char *const kWalReceiverSql =
    "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), "
    "pg_catalog.pg_last_wal_replay_lsn())::float8, "
    "CASE WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp()) END::float8 "
    "WHERE pg_catalog.pg_is_in_recovery()";

const char *const kSlotsSql =
    "SELECT slot_name::text, slot_type, active, "
    "pg_catalog.pg_wal_lsn_diff(CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() "
    "ELSE pg_catalog.pg_current_wal_lsn() END, restart_lsn)::float8 "
    "FROM pg_catalog.pg_replication_slots";

const char *const kSizesSql =
    "SELECT datname::text, pg_catalog.pg_database_size(oid)::float8 FROM pg_catalog.pg_database "
    "WHERE datallowconn AND pg_catalog.has_database_privilege(oid, 'CONNECT')";

const char *const kSettingsSql =
    "SELECT name, coalesce(setting, ''), coalesce(unit, ''), coalesce(source, ''), pending_restart "
    "FROM pg_catalog.pg_settings ORDER BY name";
const char *const kExtensionsSql = "SELECT extname::text, extversion FROM pg_catalog.pg_extension ORDER BY 1";
const char *const kDatabasesSql =
    "SELECT datname::text FROM pg_catalog.pg_database WHERE NOT datistemplate ORDER BY 1";

int64_t as_int64(const PGresult *result, int row, int column) {
    return strtoll(PQgetvalue(result, row, column), nullptr, 10);
}

double as_double(const PGresult *result, int row, int column) {
    return strtod(PQgetvalue(result, row, column), nullptr);
}

// Statement SQL for a given (quoted) schema; rebuilt only when the schema changes.
struct StatementsSql {
    std::string schema;
    std::string info;
    std::string stats;
    std::string texts;
};

StatementsSql &statements_sql(const std::string &schema) {
    static StatementsSql sql;
    if (sql.schema != schema || sql.stats.empty()) {
        sql.schema = schema;
        sql.info = "SELECT coalesce(stats_reset::text, '') FROM " + schema + ".pg_stat_statements_info";
        sql.stats =
            "SELECT dbid, userid, queryid, toplevel, calls, total_exec_time, total_plan_time, rows, "
            "shared_blks_hit, shared_blks_read, shared_blks_dirtied, shared_blks_written, local_blks_hit, "
            "local_blks_read, temp_blks_read, temp_blks_written, blk_read_time, blk_write_time, wal_records, "
            "wal_fpi, wal_bytes FROM " +
            schema + ".pg_stat_statements(false) WHERE queryid IS NOT NULL";
        sql.texts = "SELECT queryid, query FROM " + schema +
                    ".pg_stat_statements(true) WHERE queryid = ANY($1::pg_catalog.int8[])";
    }
    return sql;
}

// True for the SQLSTATEs that mean "pg_stat_statements is not usable here" rather than a failure:
// undefined function/table/schema, and "must be loaded via shared_preload_libraries" (55000).
bool means_unavailable(const std::string &sqlstate) {
    return sqlstate == "42883" || sqlstate == "42P01" || sqlstate == "3F000" || sqlstate == "55000" ||
           sqlstate == "42703";
}

}  // namespace

bool StatementsCollector::refresh_names(PgSource &postgres, std::string *error) {
    PgResult result = postgres.exec("pgfleet_names", kNamesSql, 0, nullptr, error);
    if (!result) return false;
    database_names_.clear();
    user_names_.clear();
    for (int row = 0; row < PQntuples(result.get()); row++) {
        uint32_t oid = static_cast<uint32_t>(as_int64(result.get(), row, 1));
        (PQgetvalue(result.get(), row, 0)[0] == 'd' ? database_names_ : user_names_)[oid] =
            PQgetvalue(result.get(), row, 2);
    }
    return true;
}

CollectStatus StatementsCollector::collect(PgSource &postgres, int64_t now_ms, wire::v1::StatementBatch *batch,
                                           std::string *error) {
    batch->Clear();
    PgResult found = postgres.exec("pgfleet_pgss_find", kFindStatementsSql, 0, nullptr, error);
    if (!found) return CollectStatus::failed;
    if (PQntuples(found.get()) == 0) {
        *error = "extension pg_stat_statements is not installed in the database the agent connects to";
        return CollectStatus::unavailable;
    }
    std::string schema = PQgetvalue(found.get(), 0, 0);
    if (!schema_.empty() && schema != schema_) {
        postgres.disconnect();  // the prepared statements name the old schema
        tracker_.forget_baseline();
    }
    schema_ = schema;
    StatementsSql &sql = statements_sql(schema_);

    PgResult info = postgres.exec("pgfleet_pgss_info", sql.info.c_str(), 0, nullptr, error);
    if (!info || PQntuples(info.get()) != 1) {
        if (info) *error = "pg_stat_statements_info returned no row";
        return means_unavailable(postgres.last_sqlstate()) ? CollectStatus::unavailable : CollectStatus::failed;
    }
    std::string stats_reset = PQgetvalue(info.get(), 0, 0);

    PgResult stats = postgres.exec("pgfleet_pgss_stats", sql.stats.c_str(), 0, nullptr, error);
    if (!stats) return means_unavailable(postgres.last_sqlstate()) ? CollectStatus::unavailable : CollectStatus::failed;
    const PGresult *r = stats.get();
    int rows = PQntuples(r);
    rows_.resize(static_cast<size_t>(rows));
    for (int row = 0; row < rows; row++) {
        StatementRow &out = rows_[static_cast<size_t>(row)];
        out.key.dbid = static_cast<uint32_t>(as_int64(r, row, 0));
        out.key.userid = static_cast<uint32_t>(as_int64(r, row, 1));
        out.key.queryid = as_int64(r, row, 2);
        out.key.toplevel = PQgetvalue(r, row, 3)[0] == 't';
        StatementCounters &c = out.counters;
        c.calls = as_int64(r, row, 4);
        c.total_exec_time_ms = as_double(r, row, 5);
        c.total_plan_time_ms = as_double(r, row, 6);
        c.rows = as_int64(r, row, 7);
        c.shared_blks_hit = as_int64(r, row, 8);
        c.shared_blks_read = as_int64(r, row, 9);
        c.shared_blks_dirtied = as_int64(r, row, 10);
        c.shared_blks_written = as_int64(r, row, 11);
        c.local_blks_hit = as_int64(r, row, 12);
        c.local_blks_read = as_int64(r, row, 13);
        c.temp_blks_read = as_int64(r, row, 14);
        c.temp_blks_written = as_int64(r, row, 15);
        c.blk_read_time_ms = as_double(r, row, 16);
        c.blk_write_time_ms = as_double(r, row, 17);
        c.wal_records = as_int64(r, row, 18);
        c.wal_fpi = as_int64(r, row, 19);
        c.wal_bytes = strtoull(PQgetvalue(r, row, 20), nullptr, 10);
    }
    stats.reset();

    bool had_baseline = tracker_.has_baseline();
    bool was_reset = tracker_.diff(rows_, stats_reset, &changes_);
    int64_t start_ms = had_baseline ? last_poll_ms_ : now_ms;
    last_poll_ms_ = now_ms;
    batch->set_interval_start_unix_ms(start_ms);
    batch->set_interval_end_unix_ms(now_ms);
    batch->set_stats_reset(was_reset);
    if (changes_.empty() && pending_texts_.empty()) return CollectStatus::ok;

    // Texts of queryids not sent in this boot: those of the changes, and those left over from before.
    missing_texts_.clear();
    for (const StatementChange &change : changes_)
        if (!tracker_.text_sent(change.key.queryid)) missing_texts_.push_back(change.key.queryid);
    for (int64_t queryid : pending_texts_)
        if (!tracker_.text_sent(queryid)) missing_texts_.push_back(queryid);
    pending_texts_.clear();
    std::sort(missing_texts_.begin(), missing_texts_.end());
    missing_texts_.erase(std::unique(missing_texts_.begin(), missing_texts_.end()), missing_texts_.end());
    if (!missing_texts_.empty()) {
        array_text_.assign("{");
        for (size_t i = 0; i < missing_texts_.size(); i++) {
            if (i > 0) array_text_.push_back(',');
            array_text_.append(std::to_string(missing_texts_[i]));
        }
        array_text_.push_back('}');
        const char *params[1] = {array_text_.c_str()};
        std::string text_error;
        PgResult texts = postgres.exec("pgfleet_pgss_texts", sql.texts.c_str(), 1, params, &text_error);
        if (texts) {
            size_t budget = kTextBudgetBytes;
            for (int row = 0; row < PQntuples(texts.get()); row++) {
                int64_t queryid = as_int64(texts.get(), row, 0);
                if (tracker_.text_sent(queryid)) continue;  // several (dbid, userid) entries share a text
                size_t length = static_cast<size_t>(PQgetlength(texts.get(), row, 1));
                if (length > kMaxTextBytes) {
                    length = kMaxTextBytes;
                    // Cut on a UTF-8 character boundary: protobuf strings must be valid UTF-8.
                    const char *value = PQgetvalue(texts.get(), row, 1);
                    while (length > 0 && (static_cast<unsigned char>(value[length]) & 0xC0) == 0x80) length--;
                }
                if (length > budget) {  // this one and the rest at the next poll
                    for (int rest = row; rest < PQntuples(texts.get()); rest++) {
                        int64_t id = as_int64(texts.get(), rest, 0);
                        if (!tracker_.text_sent(id) && pending_texts_.size() < StatementTracker::kMaxRememberedTexts)
                            pending_texts_.push_back(id);
                    }
                    break;
                }
                budget -= length;
                wire::v1::StatementText *text = batch->add_texts();
                text->set_queryid(queryid);
                text->set_query(PQgetvalue(texts.get(), row, 1), length);
                tracker_.mark_text_sent(queryid);
            }
        } else if (!postgres.connected()) {
            *error = text_error;
            return CollectStatus::failed;
        } else {
            // The text query failed on the server: every text is tried again at the next poll.
            for (int64_t queryid : missing_texts_)
                if (pending_texts_.size() < StatementTracker::kMaxRememberedTexts) pending_texts_.push_back(queryid);
        }
        // A queryid whose entry is gone returns no row and is forgotten; one over the budget is pending.
    }

    // Names of the dbids and userids in the deltas (the caches are refreshed when one is unknown).
    bool refreshed = false;
    for (const StatementChange &change : changes_) {
        if (!refreshed && (database_names_.count(change.key.dbid) == 0 || user_names_.count(change.key.userid) == 0)) {
            if (!refresh_names(postgres, error)) return CollectStatus::failed;
            refreshed = true;
        }
        auto db = database_names_.find(change.key.dbid);
        if (db != database_names_.end()) (*batch->mutable_database_names())[change.key.dbid] = db->second;
        auto user = user_names_.find(change.key.userid);
        if (user != user_names_.end()) (*batch->mutable_user_names())[change.key.userid] = user->second;

        wire::v1::StatementDelta *d = batch->add_deltas();
        const StatementCounters &c = change.delta;
        d->set_dbid(change.key.dbid);
        d->set_userid(change.key.userid);
        d->set_queryid(change.key.queryid);
        d->set_toplevel(change.key.toplevel);
        d->set_calls(c.calls);
        d->set_total_exec_time_ms(c.total_exec_time_ms);
        d->set_total_plan_time_ms(c.total_plan_time_ms);
        d->set_rows(c.rows);
        d->set_shared_blks_hit(c.shared_blks_hit);
        d->set_shared_blks_read(c.shared_blks_read);
        d->set_shared_blks_dirtied(c.shared_blks_dirtied);
        d->set_shared_blks_written(c.shared_blks_written);
        d->set_local_blks_hit(c.local_blks_hit);
        d->set_local_blks_read(c.local_blks_read);
        d->set_temp_blks_read(c.temp_blks_read);
        d->set_temp_blks_written(c.temp_blks_written);
        d->set_blk_read_time_ms(c.blk_read_time_ms);
        d->set_blk_write_time_ms(c.blk_write_time_ms);
        d->set_wal_records(c.wal_records);
        d->set_wal_fpi(c.wal_fpi);
        d->set_wal_bytes(c.wal_bytes);
        d->set_reset(change.reset);
    }
    return CollectStatus::ok;
}

bool ActivitySampler::sample(PgSource &postgres, ActivityAggregator *aggregator, bool blocking,
                             std::string *error) {
    PgResult result = postgres.exec("pgfleet_activity", kActivitySql, 0, nullptr, error);
    if (!result) return false;
    const PGresult *r = result.get();
    aggregator->begin_sample();
    double longest_xact = 0;
    double longest_idle = 0;
    for (int row = 0; row < PQntuples(r); row++) {
        ActivityObservation o;
        o.state = PQgetvalue(r, row, 0);
        o.wait_event_type = PQgetvalue(r, row, 1);
        o.wait_event = PQgetvalue(r, row, 2);
        o.queryid = as_int64(r, row, 3);
        o.backend_type = PQgetvalue(r, row, 4);
        o.datname = PQgetvalue(r, row, 5);
        o.usename = PQgetvalue(r, row, 6);
        o.application_name = PQgetvalue(r, row, 7);
        aggregator->observe(o);
        longest_xact = std::max(longest_xact, as_double(r, row, 8));
        longest_idle = std::max(longest_idle, as_double(r, row, 9));
    }
    aggregator->note_ages(longest_xact, longest_idle);
    if (!blocking) return true;

    PgResult edges = postgres.exec("pgfleet_blocking", kBlockingSql, 0, nullptr, error);
    if (!edges) return false;
    edges_.clear();
    for (int row = 0; row < PQntuples(edges.get()); row++) {
        BlockingEdgeRow edge;
        edge.blocked_pid = static_cast<int32_t>(as_int64(edges.get(), row, 0));
        edge.blocking_pid = static_cast<int32_t>(as_int64(edges.get(), row, 1));
        edge.blocked_queryid = as_int64(edges.get(), row, 2);
        edge.blocking_queryid = as_int64(edges.get(), row, 3);
        edge.blocked_seconds = as_double(edges.get(), row, 4);
        edges_.push_back(edge);
    }
    aggregator->set_blocking(edges_);
    return true;
}

bool InventoryCollector::collect(PgSource &postgres, int64_t now_ms, wire::v1::Inventory *inventory, bool *changed,
                                 std::string *error) {
    inventory->Clear();
    *changed = false;
    PgResult settings = postgres.exec("pgfleet_settings", kSettingsSql, 0, nullptr, error);
    if (!settings) return false;
    PgResult extensions = postgres.exec("pgfleet_extensions", kExtensionsSql, 0, nullptr, error);
    if (!extensions) return false;
    PgResult databases = postgres.exec("pgfleet_databases", kDatabasesSql, 0, nullptr, error);
    if (!databases) return false;

    polled_settings_.clear();
    for (int row = 0; row < PQntuples(settings.get()); row++) {
        SettingValue &value = polled_settings_[PQgetvalue(settings.get(), row, 0)];
        value.setting = PQgetvalue(settings.get(), row, 1);
        value.unit = PQgetvalue(settings.get(), row, 2);
        value.source = PQgetvalue(settings.get(), row, 3);
        value.pending_restart = PQgetvalue(settings.get(), row, 4)[0] == 't';
    }
    polled_extensions_.clear();
    for (int row = 0; row < PQntuples(extensions.get()); row++)
        polled_extensions_[PQgetvalue(extensions.get(), row, 0)] = PQgetvalue(extensions.get(), row, 1);
    polled_databases_.clear();
    for (int row = 0; row < PQntuples(databases.get()); row++) polled_databases_.emplace_back(PQgetvalue(databases.get(), row, 0));

    bool full = !have_sent_ || now_ms - last_full_ms_ >= kFullRefreshMs || now_ms < last_full_ms_ ||
                polled_extensions_ != sent_extensions_ || polled_databases_ != sent_databases_;
    for (const auto &[name, value] : sent_settings_) full = full || polled_settings_.count(name) == 0;
    polled_full_ = full;

    // Adds one setting to the inventory.
    auto add = [&](const std::string &name, const SettingValue &value) {
        wire::v1::Setting *out = inventory->add_settings();
        out->set_name(name);
        out->set_setting(value.setting);
        out->set_unit(value.unit);
        out->set_source(value.source);
        out->set_pending_restart(value.pending_restart);
    };
    if (full) {
        inventory->set_full(true);
        for (const auto &[name, value] : polled_settings_) add(name, value);
        for (const auto &[name, version] : polled_extensions_) (*inventory->mutable_extensions())[name] = version;
        for (const std::string &datname : polled_databases_) inventory->add_databases(datname);
        *changed = true;
        return true;
    }
    for (const auto &[name, value] : polled_settings_) {
        auto before = sent_settings_.find(name);
        if (before == sent_settings_.end() || !(before->second == value)) add(name, value);
    }
    *changed = inventory->settings_size() > 0;
    return true;
}

void InventoryCollector::sent(int64_t now_ms) {
    bool was_full = polled_full_;
    sent_settings_ = polled_settings_;
    sent_extensions_ = polled_extensions_;
    sent_databases_ = polled_databases_;
    if (was_full) last_full_ms_ = now_ms;
    have_sent_ = true;
}

bool ServerMetricsCollector::collect(PgSource &postgres, int64_t now_ms, BatchBuilder *builder,
                                     std::string *errors) {
    errors->clear();
    std::string error;
    // Notes a failed group; false when the connection is gone (then nothing else is tried).
    auto failed = [&](const char *what) {
        if (!errors->empty()) errors->append("; ");
        errors->append(what).append(": ").append(error);
        return postgres.connected();
    };

    if (PgResult r = postgres.exec("pgfleet_bgwriter", kBgwriterSql, 0, nullptr, &error)) {
        if (PQntuples(r.get()) == 1)
            for (int i = 0; i < 10; i++) {
                bool time = i == 2 || i == 3;
                builder->add(std::string("pg.bgwriter.") + kBgwriterColumns[i], COUNTER, time ? "milliseconds" : "",
                             {}, as_double(r.get(), 0, i));
            }
    } else if (!failed("pg_stat_bgwriter")) {
        return false;
    }

    if (PgResult r = postgres.exec("pgfleet_wal", kWalSql, 0, nullptr, &error)) {
        if (PQntuples(r.get()) == 1)
            for (int i = 0; i < 8; i++) {
                const char *unit = i == 2 ? "bytes" : (i >= 6 ? "milliseconds" : "");
                builder->add(std::string("pg.wal.") + kWalColumns[i], COUNTER, unit, {}, as_double(r.get(), 0, i));
            }
    } else if (!failed("pg_stat_wal")) {
        return false;
    }

    if (PgResult r = postgres.exec("pgfleet_replication", kReplicationSql, 0, nullptr, &error)) {
        for (int row = 0; row < PQntuples(r.get()); row++) {
            LabelRef app{"application_name", PQgetvalue(r.get(), row, 0)};
            LabelRef addr{"client_addr", PQgetvalue(r.get(), row, 1)};
            if (!PQgetisnull(r.get(), row, 2))
                builder->add("pg.replication.lag_bytes", GAUGE, "bytes", {app, addr}, as_double(r.get(), row, 2));
            const char *lags[] = {"pg.replication.replay_lag_seconds", "pg.replication.write_lag_seconds",
                                  "pg.replication.flush_lag_seconds"};
            for (int i = 0; i < 3; i++)
                builder->add(lags[i], GAUGE, "seconds", {app, addr},
                             PQgetisnull(r.get(), row, 3 + i) ? 0.0 : as_double(r.get(), row, 3 + i));
        }
    } else if (!failed("pg_stat_replication")) {
        return false;
    }

    if (PgResult r = postgres.exec("pgfleet_wal_receiver", kWalReceiverSql, 0, nullptr, &error)) {
        if (PQntuples(r.get()) == 1) {
            if (!PQgetisnull(r.get(), 0, 0))
                builder->add("pg.wal_receiver.replay_lag_bytes", GAUGE, "bytes", {}, as_double(r.get(), 0, 0));
            if (!PQgetisnull(r.get(), 0, 1))
                builder->add("pg.wal_receiver.replay_lag_seconds", GAUGE, "seconds", {}, as_double(r.get(), 0, 1));
        }
    } else if (!failed("standby replay lag")) {
        return false;
    }

    if (PgResult r = postgres.exec("pgfleet_slots", kSlotsSql, 0, nullptr, &error)) {
        for (int row = 0; row < PQntuples(r.get()); row++) {
            LabelRef name{"slot_name", PQgetvalue(r.get(), row, 0)};
            LabelRef type{"slot_type", PQgetvalue(r.get(), row, 1)};
            builder->add("pg.replication_slots.active", GAUGE, "", {name, type},
                         PQgetvalue(r.get(), row, 2)[0] == 't' ? 1.0 : 0.0);
            if (!PQgetisnull(r.get(), row, 3))
                builder->add("pg.replication_slots.retained_bytes", GAUGE, "bytes", {name, type},
                             as_double(r.get(), row, 3));
        }
    } else if (!failed("pg_replication_slots")) {
        return false;
    }

    if (sizes_collected_ms_ == 0 || now_ms - sizes_collected_ms_ >= kSizesPeriodMs || now_ms < sizes_collected_ms_) {
        if (PgResult r = postgres.exec("pgfleet_sizes", kSizesSql, 0, nullptr, &error)) {
            for (int row = 0; row < PQntuples(r.get()); row++)
                builder->add("pg.database.size_bytes", GAUGE, "bytes", {{"datname", PQgetvalue(r.get(), row, 0)}},
                             as_double(r.get(), row, 1));
            sizes_collected_ms_ = now_ms;
        } else if (!failed("database sizes")) {
            return false;
        }
    }
    return true;
}

namespace {

// Objects of the connected database; $1 is the number of rows wanted (the remaining budget plus one, so
// that a cut is noticed). Ages are computed by the server; the raw inputs (time of the last vacuum,
// relfrozenxid) are what change detection compares.
const char *const kTablesSql =
    "SELECT current_database()::text, s.schemaname::text, s.relname::text, s.n_live_tup, s.n_dead_tup, "
    "s.seq_scan, coalesce(s.idx_scan, 0), coalesce(pg_catalog.pg_total_relation_size(s.relid), 0), "
    "extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8, "
    "extract(epoch FROM greatest(s.last_vacuum, s.last_autovacuum))::float8, "
    "pg_catalog.age(c.relfrozenxid), c.relfrozenxid::text::float8 "
    "FROM pg_catalog.pg_stat_user_tables s JOIN pg_catalog.pg_class c ON c.oid = s.relid "
    "ORDER BY 2, 3 LIMIT $1::int";
const char *const kIndexesSql =
    "SELECT current_database()::text, s.schemaname::text, s.relname::text, s.indexrelname::text, s.idx_scan, "
    "coalesce(pg_catalog.pg_relation_size(s.indexrelid), 0), i.indisvalid "
    "FROM pg_catalog.pg_stat_user_indexes s JOIN pg_catalog.pg_index i ON i.indexrelid = s.indexrelid "
    "ORDER BY 2, 3, 4 LIMIT $1::int";
const char *const kSequencesSql =
    "SELECT current_database()::text, schemaname::text, sequencename::text, "
    "CASE WHEN last_value IS NULL THEN 0 WHEN increment_by > 0 THEN last_value::float8 / max_value::float8 "
    "ELSE last_value::float8 / min_value::float8 END "
    "FROM pg_catalog.pg_sequences ORDER BY 2, 3 LIMIT $1::int";
const char *const kFunctionsSql =
    "SELECT current_database()::text, schemaname::text, "
    "funcname || '(' || pg_catalog.pg_get_function_identity_arguments(funcid) || ')', calls, total_time "
    "FROM pg_catalog.pg_stat_user_functions WHERE current_setting('track_functions') <> 'none' "
    "ORDER BY 2, 3 LIMIT $1::int";

double nullable_double(const PGresult *result, int row, int column) {
    return PQgetisnull(result, row, column) ? std::nan("") : as_double(result, row, column);
}

}  // namespace

bool ObjectsCollector::collect(PgSource &postgres, int64_t now_ms, const std::function<BatchBuilder *()> &next_builder,
                               int *sent, bool *cut, std::string *error) {
    *sent = 0;
    *cut = false;
    int budget = kMaxObjects;
    tracker_.begin(now_ms);
    // Runs one object query with the remaining budget; null on failure.
    auto query = [&](const char *name, const char *sql) -> PgResult {
        limit_ = std::to_string(budget + 1);
        const char *params[] = {limit_.c_str()};
        PgResult r = postgres.exec(name, sql, 1, params, error);
        if (r && PQntuples(r.get()) > budget) *cut = true;
        return r;
    };
    // key_ = kind \0 label values...
    auto make_key = [&](char kind, const PGresult *r, int row, int columns) {
        key_.assign(1, kind);
        for (int c = 0; c < columns; c++) key_.append(1, '\0').append(PQgetvalue(r, row, c));
    };

    PgResult r = query("pgfleet_objects_tables", kTablesSql);
    if (!r) return false;
    for (int row = 0; row < PQntuples(r.get()) && budget > 0; row++, budget--) {
        const PGresult *t = r.get();
        double values[] = {as_double(t, row, 3), as_double(t, row, 4), as_double(t, row, 5), as_double(t, row, 6),
                           as_double(t, row, 7), nullable_double(t, row, 9), as_double(t, row, 11)};
        make_key('t', t, row, 3);
        if (!tracker_.should_send(key_, values, sizeof values / sizeof values[0])) continue;
        BatchBuilder *b = next_builder();
        std::initializer_list<LabelRef> labels = {
            {"datname", PQgetvalue(t, row, 0)}, {"schema", PQgetvalue(t, row, 1)}, {"table", PQgetvalue(t, row, 2)}};
        b->add("pg.table.n_live_tup", GAUGE, "", labels, values[0]);
        b->add("pg.table.n_dead_tup", GAUGE, "", labels, values[1]);
        b->add("pg.table.seq_scan", COUNTER, "", labels, values[2]);
        b->add("pg.table.idx_scan", COUNTER, "", labels, values[3]);
        b->add("pg.table.size_bytes", GAUGE, "bytes", labels, values[4]);
        if (!PQgetisnull(t, row, 8)) b->add("pg.table.vacuum_age_seconds", GAUGE, "seconds", labels, as_double(t, row, 8));
        b->add("pg.table.relfrozenxid_age", GAUGE, "", labels, as_double(t, row, 10));
        (*sent)++;
    }

    r = query("pgfleet_objects_indexes", kIndexesSql);
    if (!r) return false;
    for (int row = 0; row < PQntuples(r.get()) && budget > 0; row++, budget--) {
        const PGresult *t = r.get();
        double values[] = {as_double(t, row, 4), as_double(t, row, 5), PQgetvalue(t, row, 6)[0] == 't' ? 0.0 : 1.0};
        make_key('i', t, row, 4);
        if (!tracker_.should_send(key_, values, sizeof values / sizeof values[0])) continue;
        BatchBuilder *b = next_builder();
        std::initializer_list<LabelRef> labels = {{"datname", PQgetvalue(t, row, 0)},
                                                  {"schema", PQgetvalue(t, row, 1)},
                                                  {"table", PQgetvalue(t, row, 2)},
                                                  {"index", PQgetvalue(t, row, 3)}};
        b->add("pg.index.idx_scan", COUNTER, "", labels, values[0]);
        b->add("pg.index.size_bytes", GAUGE, "bytes", labels, values[1]);
        b->add("pg.index.invalid", GAUGE, "", labels, values[2]);
        (*sent)++;
    }

    r = query("pgfleet_objects_sequences", kSequencesSql);
    if (!r) return false;
    for (int row = 0; row < PQntuples(r.get()) && budget > 0; row++, budget--) {
        const PGresult *t = r.get();
        double values[] = {as_double(t, row, 3)};
        make_key('s', t, row, 3);
        if (!tracker_.should_send(key_, values, 1)) continue;
        next_builder()->add("pg.sequence.used_ratio", GAUGE, "",
                            {{"datname", PQgetvalue(t, row, 0)},
                             {"schema", PQgetvalue(t, row, 1)},
                             {"sequence", PQgetvalue(t, row, 2)}},
                            values[0]);
        (*sent)++;
    }

    r = query("pgfleet_objects_functions", kFunctionsSql);
    if (!r) return false;
    for (int row = 0; row < PQntuples(r.get()) && budget > 0; row++, budget--) {
        const PGresult *t = r.get();
        double values[] = {as_double(t, row, 3), as_double(t, row, 4)};
        make_key('f', t, row, 3);
        if (!tracker_.should_send(key_, values, 2)) continue;
        BatchBuilder *b = next_builder();
        std::initializer_list<LabelRef> labels = {
            {"datname", PQgetvalue(t, row, 0)}, {"schema", PQgetvalue(t, row, 1)}, {"function", PQgetvalue(t, row, 2)}};
        b->add("pg.function.calls", COUNTER, "", labels, values[0]);
        b->add("pg.function.total_time_ms", COUNTER, "milliseconds", labels, values[1]);
        (*sent)++;
    }
    tracker_.end();
    return true;
}

}  // namespace pgfleet::agent

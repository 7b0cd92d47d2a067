// See pg_source.h.
#include "agent/pg_source.h"

#include <libpq-fe.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <poll.h>

namespace pgfleet::agent {

namespace {

constexpr int64_t kConnectTimeoutMs = 2000;
constexpr int64_t kQueryTimeoutMs = 6000;  // statement_timeout (5 s) + margin for the network
constexpr int kPollSliceMs = 200;

const char *const kDatabaseQuery =
    "SELECT s.datname, xact_commit, xact_rollback, blks_hit, blks_read, numbackends, tup_returned, tup_fetched, "
    "tup_inserted, tup_updated, tup_deleted, conflicts, temp_files, temp_bytes, deadlocks, "
    "pg_catalog.age(d.datfrozenxid), pg_catalog.mxid_age(d.datminmxid) "
    "FROM pg_catalog.pg_stat_database s JOIN pg_catalog.pg_database d ON d.oid = s.datid "
    "WHERE s.datname IS NOT NULL ORDER BY s.datname";

const char *const kFactsQuery =
    "SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system())::text, "
    "split_part(pg_catalog.current_setting('server_version'), ' ', 1), "
    "pg_catalog.current_setting('server_version_num'), "
    "pg_catalog.current_setting('data_directory'), "
    "pg_catalog.pg_is_in_recovery(), "
    "(extract(epoch FROM pg_catalog.pg_postmaster_start_time()) * 1000)::bigint, "
    "pg_catalog.current_setting('port')";

int64_t monotonic_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// libpq messages span lines ("...\n\tThis probably means..."); collapse whitespace for one-line logs.
std::string trimmed(const char *message) {
    std::string text;
    for (const char *c = message != nullptr ? message : ""; *c != '\0'; c++) {
        bool blank = *c == ' ' || *c == '\n' || *c == '\t' || *c == '\r';
        if (!blank)
            text += *c;
        else if (!text.empty() && text.back() != ' ')
            text += ' ';
    }
    if (!text.empty() && text.back() == ' ') text.pop_back();
    return text;
}

double as_double(const PGresult *result, int row, int column) {
    return strtod(PQgetvalue(result, row, column), nullptr);
}

}  // namespace

void PgResultDeleter::operator()(PGresult *result) const { PQclear(result); }

PgSource::PgSource(std::string conninfo, std::function<bool()> should_abort)
    : conninfo_(std::move(conninfo)), should_abort_(std::move(should_abort)) {}

PgSource::~PgSource() { disconnect(); }

void PgSource::disconnect() {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    prepared_.clear();
}

void PgSource::set_conninfo(const std::string &conninfo) {
    if (conninfo == conninfo_) return;
    conninfo_ = conninfo;
    disconnect();
}

bool PgSource::wait_socket(bool for_write, int64_t deadline_ms, std::string *error) {
    for (;;) {
        if (should_abort_ && should_abort_()) {
            *error = "interrupted by shutdown";
            return false;
        }
        int64_t remaining = deadline_ms - monotonic_ms();
        if (remaining <= 0) {
            *error = "timed out";
            return false;
        }
        struct pollfd pfd = {PQsocket(conn_), static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
        if (pfd.fd < 0) {
            *error = "connection has no socket";
            return false;
        }
        int rc = poll(&pfd, 1, static_cast<int>(remaining < kPollSliceMs ? remaining : kPollSliceMs));
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) {
            *error = std::string("poll failed: ") + strerror(errno);
            return false;
        }
    }
}

bool PgSource::ensure_connected(std::string *error) {
    if (conn_ != nullptr) {
        if (PQstatus(conn_) == CONNECTION_OK) return true;
        disconnect();
    }

    char *parse_error = nullptr;
    PQconninfoOption *options = PQconninfoParse(conninfo_.c_str(), &parse_error);
    if (options == nullptr) {
        *error = "invalid conninfo: " + trimmed(parse_error);
        PQfreemem(parse_error);
        return false;
    }
    std::vector<const char *> keywords;
    std::vector<const char *> values;
    std::string server_options;
    for (PQconninfoOption *option = options; option->keyword != nullptr; option++) {
        if (option->val == nullptr || option->val[0] == '\0') continue;
        std::string_view keyword = option->keyword;
        if (keyword == "options") {
            server_options = option->val;
            continue;
        }
        if (keyword == "application_name" || keyword == "connect_timeout") continue;
        keywords.push_back(option->keyword);
        values.push_back(option->val);
    }
    if (!server_options.empty()) server_options += ' ';
    server_options += "-c statement_timeout=5s -c lock_timeout=1s";
    keywords.insert(keywords.end(), {"application_name", "connect_timeout", "options", nullptr});
    values.insert(values.end(), {"pgfleet-agent", "2", server_options.c_str(), nullptr});

    conn_ = PQconnectStartParams(keywords.data(), values.data(), 0);
    PQconninfoFree(options);
    if (conn_ == nullptr) {
        *error = "out of memory";
        return false;
    }
    int64_t deadline = monotonic_ms() + kConnectTimeoutMs;
    PostgresPollingStatusType state = PGRES_POLLING_WRITING;
    if (PQstatus(conn_) == CONNECTION_BAD) state = PGRES_POLLING_FAILED;
    while (state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED) {
        std::string wait_error;
        if (!wait_socket(state == PGRES_POLLING_WRITING, deadline, &wait_error)) {
            *error = "could not connect: " + wait_error;
            disconnect();
            return false;
        }
        state = PQconnectPoll(conn_);
    }
    if (state == PGRES_POLLING_FAILED) {
        *error = trimmed(PQerrorMessage(conn_));
        disconnect();
        return false;
    }
    if (PQsetnonblocking(conn_, 1) != 0) {
        *error = trimmed(PQerrorMessage(conn_));
        disconnect();
        return false;
    }
    return true;
}

// The cells of result's numeric columns, identifier columns (named *id: queryid, relid, ...) excepted.
static uint64_t numeric_cells(const PGresult *result) {
    int columns = 0;
    for (int c = 0; c < PQnfields(result); c++) {
        Oid type = PQftype(result, c);
        if (type != 20 && type != 21 && type != 23 && type != 700 && type != 701 && type != 1700) continue;
        const char *name = PQfname(result, c);
        size_t len = strlen(name);
        if (len >= 2 && strcmp(name + len - 2, "id") == 0) continue;
        columns++;
    }
    return static_cast<uint64_t>(columns) * static_cast<uint64_t>(PQntuples(result));
}

PGresult *PgSource::finish_query(std::string *error) {
    query_count_++;
    last_sqlstate_.clear();
    int64_t deadline = monotonic_ms() + kQueryTimeoutMs;
    // Non-blocking mode: push the query out, then read until the result is complete.
    int flush;
    while ((flush = PQflush(conn_)) == 1) {
        if (!wait_socket(true, deadline, error)) return nullptr;
    }
    if (flush < 0) {
        *error = trimmed(PQerrorMessage(conn_));
        return nullptr;
    }
    while (PQisBusy(conn_)) {
        // No PQcancel on timeout: it is a blocking connect of its own, and statement_timeout already ends
        // the query on the server; the caller drops the connection.
        if (!wait_socket(false, deadline, error)) return nullptr;
        if (!PQconsumeInput(conn_)) {
            *error = trimmed(PQerrorMessage(conn_));
            return nullptr;
        }
    }
    PGresult *result = nullptr;
    while (PGresult *next = PQgetResult(conn_)) {
        if (result != nullptr) PQclear(result);
        result = next;
    }
    ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        *error = result != nullptr ? trimmed(PQresultErrorMessage(result)) : trimmed(PQerrorMessage(conn_));
        if (result != nullptr) {
            const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
            if (state != nullptr) last_sqlstate_ = state;
            PQclear(result);
        }
        return nullptr;
    }
    if (status == PGRES_TUPLES_OK) values_read_ += numeric_cells(result);
    return result;
}

PGresult *PgSource::run_query(const char *sql, std::string *error) {
    if (!PQsendQuery(conn_, sql)) {
        *error = trimmed(PQerrorMessage(conn_));
        return nullptr;
    }
    PGresult *result = finish_query(error);
    if (result != nullptr && PQresultStatus(result) != PGRES_TUPLES_OK) {
        *error = "query returned no rows";
        PQclear(result);
        return nullptr;
    }
    return result;
}

PgResult PgSource::exec(const char *name, const char *sql, int param_count, const char *const *params,
                        std::string *error) {
    if (conn_ == nullptr && !ensure_connected(error)) return nullptr;
    bool prepared = false;
    for (const std::string &known : prepared_) prepared = prepared || known == name;
    if (!prepared) {
        if (!PQsendPrepare(conn_, name, sql, param_count, nullptr)) {
            *error = trimmed(PQerrorMessage(conn_));
            disconnect();
            return nullptr;
        }
        PGresult *result = finish_query(error);
        if (result == nullptr) {
            // An SQL error (e.g. a missing function) leaves a usable connection; anything else does not.
            if (last_sqlstate_.empty() || PQstatus(conn_) != CONNECTION_OK) disconnect();
            return nullptr;
        }
        PQclear(result);
        prepared_.emplace_back(name);
    }
    if (!PQsendQueryPrepared(conn_, name, param_count, params, nullptr, nullptr, 0)) {
        *error = trimmed(PQerrorMessage(conn_));
        disconnect();
        return nullptr;
    }
    PGresult *result = finish_query(error);
    if (result == nullptr) {
        if (last_sqlstate_.empty() || PQstatus(conn_) != CONNECTION_OK) disconnect();
        return nullptr;
    }
    return PgResult(result);
}

bool PgSource::collect(std::vector<DatabaseStats> *databases, InstanceFacts *facts, std::string *error) {
    if (conn_ == nullptr && !ensure_connected(error)) return false;

    PGresult *result = run_query(kDatabaseQuery, error);
    if (result == nullptr) {
        disconnect();
        return false;
    }
    int rows = PQntuples(result);
    databases->resize(static_cast<size_t>(rows));
    for (int row = 0; row < rows; row++) {
        DatabaseStats &stats = (*databases)[static_cast<size_t>(row)];
        stats.datname.assign(PQgetvalue(result, row, 0));
        stats.xact_commit = as_double(result, row, 1);
        stats.xact_rollback = as_double(result, row, 2);
        stats.blks_hit = as_double(result, row, 3);
        stats.blks_read = as_double(result, row, 4);
        stats.numbackends = as_double(result, row, 5);
        stats.tup_returned = as_double(result, row, 6);
        stats.tup_fetched = as_double(result, row, 7);
        stats.tup_inserted = as_double(result, row, 8);
        stats.tup_updated = as_double(result, row, 9);
        stats.tup_deleted = as_double(result, row, 10);
        stats.conflicts = as_double(result, row, 11);
        stats.temp_files = as_double(result, row, 12);
        stats.temp_bytes = as_double(result, row, 13);
        stats.deadlocks = as_double(result, row, 14);
        stats.xid_age = as_double(result, row, 15);
        stats.mxid_age = as_double(result, row, 16);
    }
    PQclear(result);

    result = run_query(kFactsQuery, error);
    if (result == nullptr) {
        disconnect();
        return false;
    }
    if (PQntuples(result) != 1) {
        *error = "instance facts query returned no row";
        PQclear(result);
        disconnect();
        return false;
    }
    facts->system_identifier.assign(PQgetvalue(result, 0, 0));
    facts->server_version.assign(PQgetvalue(result, 0, 1));
    facts->server_version_num = static_cast<uint32_t>(strtoul(PQgetvalue(result, 0, 2), nullptr, 10));
    facts->data_directory.assign(PQgetvalue(result, 0, 3));
    facts->in_recovery = PQgetvalue(result, 0, 4)[0] == 't';
    facts->postmaster_start_unix_ms = strtoll(PQgetvalue(result, 0, 5), nullptr, 10);
    facts->port = static_cast<uint32_t>(strtoul(PQgetvalue(result, 0, 6), nullptr, 10));
    PQclear(result);
    return true;
}

}  // namespace pgfleet::agent

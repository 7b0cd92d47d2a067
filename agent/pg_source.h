// Reading the monitored PostgreSQL instance over libpq (client side only; the agent is not server code).
//
// One persistent connection, opened lazily and dropped on any error (the next interval reconnects). The
// user's conninfo is parsed with PQconninfoParse and extended with
//   application_name=pgfleet-agent, connect_timeout=2,
//   options += "-c statement_timeout=5s -c lock_timeout=1s"
// so the agent's own queries are bounded on the server, and is identifiable in pg_stat_activity.
//
// Nothing blocks for long: connecting uses PQconnectStartParams/PQconnectPoll and queries use
// PQsendQuery/PQconsumeInput, both waiting with poll() in slices of at most 200 ms and checking the
// caller's abort predicate (a SIGTERM) between slices. Deadlines: 2 s to connect, 6 s per query (server
// statement_timeout 5 s plus a margin); past a deadline the connection is dropped (no PQcancel: it
// would be a blocking connect of its own, and statement_timeout already ends the query on the server).
//
// Collectors run their queries through exec(): each query is prepared once per connection under a
// fixed name (PQsendPrepare) and then executed with PQsendQueryPrepared, so the server parses and plans
// nothing new every interval. An SQL error (for example pg_stat_statements not loaded) keeps the
// connection; a broken connection or a timeout drops it. Every query is counted (agent.queries).
#pragma once

#include "agent/batch.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace pgfleet::agent {

// One row of pg_stat_database (datname not null); counters as doubles, the wire type.
struct DatabaseStats {
    std::string datname;
    double xact_commit = 0;
    double xact_rollback = 0;
    double blks_hit = 0;
    double blks_read = 0;
    double numbackends = 0;
    double tup_returned = 0;
    double tup_fetched = 0;
    double tup_inserted = 0;
    double tup_updated = 0;
    double tup_deleted = 0;
    double conflicts = 0;
    double temp_files = 0;
    double temp_bytes = 0;
    double deadlocks = 0;
    double xid_age = 0;   // age(datfrozenxid) from pg_database: distance toward wraparound
    double mxid_age = 0;  // mxid_age(datminmxid)
};

// Frees a PGresult when it goes out of scope.
struct PgResultDeleter {
    void operator()(PGresult *result) const;
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

class PgSource {
public:
    // should_abort is polled between waits; returning true abandons the current connect or query.
    PgSource(std::string conninfo, std::function<bool()> should_abort);
    ~PgSource();
    PgSource(const PgSource &) = delete;
    PgSource &operator=(const PgSource &) = delete;

    // Connects if not connected; false with *error set when the server cannot be reached.
    bool ensure_connected(std::string *error);

    // Reads pg_stat_database into *databases (reusing its elements) and the instance facts into *facts
    // (hostname is left as is: it is the agent host's name, filled by the caller). On failure the
    // connection is dropped and *error is set.
    bool collect(std::vector<DatabaseStats> *databases, InstanceFacts *facts, std::string *error);

    bool connected() const { return conn_ != nullptr; }
    void disconnect();

    // Runs the query sql, prepared once per connection as statement name, with text parameters; returns
    // its rows (PGRES_TUPLES_OK), or null with *error set (and the connection dropped if it broke).
    PgResult exec(const char *name, const char *sql, int param_count, const char *const *params,
                  std::string *error);

    // SQLSTATE of the last failed query ("" when it failed without one, e.g. a lost connection).
    const std::string &last_sqlstate() const { return last_sqlstate_; }

    // Replaces the connection string (SIGHUP); the next query reconnects with it.
    void set_conninfo(const std::string &conninfo);

    // Queries sent since the start (agent.queries).
    uint64_t query_count() const { return query_count_; }
    // Values read since the start (agent.values_collected{source="postgres"}): the cells of numeric columns
    // (integer, float, numeric) of every result, identifiers (columns named *id) excepted: what an
    // exporter would expose as samples, whether or not the agent sends them on.
    uint64_t values_read() const { return values_read_; }

private:
    // Waits for the one result of the query just sent; nullptr with *error set unless it is TUPLES_OK or
    // COMMAND_OK (for PQsendPrepare).
    PGresult *finish_query(std::string *error);
    // Runs sql and returns its single result when it is PGRES_TUPLES_OK; nullptr with *error set otherwise.
    PGresult *run_query(const char *sql, std::string *error);
    // Waits up to the deadline (ms, CLOCK_MONOTONIC) for the socket to be readable/writable in 200 ms slices.
    bool wait_socket(bool for_write, int64_t deadline_ms, std::string *error);

    std::string conninfo_;
    std::function<bool()> should_abort_;
    PGconn *conn_ = nullptr;
    std::vector<std::string> prepared_;  // statement names prepared on conn_
    std::string last_sqlstate_;
    uint64_t query_count_ = 0;
    uint64_t values_read_ = 0;
};

}  // namespace pgfleet::agent

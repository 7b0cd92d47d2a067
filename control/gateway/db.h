// db.h: the gateway's access to the central database.
//
// Design: a small fixed-capacity pool of libpq connections guarded by one mutex and a condition
// variable. A connection is leased to exactly one thread at a time (libpq connections are not
// thread-safe) and returned on scope exit. Connections are opened lazily, so the gateway starts even when
// the database is down and recovers by itself when it comes back. Every query is parameterized
// (PQexecParams, text parameters); a query that fails because the connection broke is retried once on a
// fresh connection, which makes a database restart invisible to clients after the first request.
// Failures are reported as DbError with a category the HTTP layer maps to a status code.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pgfleet::gateway {

// Why a database call failed; the HTTP layer maps each kind to a status code.
enum class DbErrorKind {
  Unavailable,  // cannot connect, connection lost, pool exhausted, API schema missing: 503
  BadInput,     // the database rejected a parameter (SQLSTATE class 22): 400
  Timeout,      // statement_timeout fired: 503
  Internal,     // anything else: 500
};

// A failed database call: kind, a short lower-case message, and the server's detail text.
class DbError : public std::runtime_error {
 public:
  DbError(DbErrorKind kind, const std::string &message, std::string detail)
      : std::runtime_error(message), kind_(kind), detail_(std::move(detail)) {}
  DbErrorKind kind() const { return kind_; }
  const std::string &detail() const { return detail_; }

 private:
  DbErrorKind kind_;
  std::string detail_;
};

// Owns a PGresult and frees it on scope exit.
using ResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

// Pool of connections to one database; all methods are thread-safe.
class ConnectionPool {
 public:
  // conninfo is passed to libpq unchanged (defaults for connect_timeout and application_name are added
  // underneath it); capacity bounds the number of open connections; acquire_timeout bounds how long a
  // request waits for a free connection.
  ConnectionPool(std::string conninfo, size_t capacity, std::chrono::milliseconds acquire_timeout);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool &) = delete;
  ConnectionPool &operator=(const ConnectionPool &) = delete;

  // Runs one parameterized statement (NULL parameters as std::nullopt) and returns a result with status
  // PGRES_TUPLES_OK or PGRES_COMMAND_OK; throws DbError otherwise.
  ResultPtr query(const char *sql, const std::vector<std::optional<std::string>> &params);

 private:
  class Lease;
  PGconn *acquire();                      // a healthy connection or throws DbError(Unavailable)
  void release(PGconn *conn, bool keep);  // returns a connection (or closes it if !keep)
  PGconn *connect();                      // opens and prepares one new connection

  const std::string conninfo_;
  const size_t capacity_;
  const std::chrono::milliseconds acquire_timeout_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<PGconn *> idle_;  // open, unused connections
  size_t open_ = 0;             // idle + leased + being opened
};

}  // namespace pgfleet::gateway

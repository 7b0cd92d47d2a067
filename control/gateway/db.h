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
  Forbidden,    // insufficient privilege (SQLSTATE 42501) or the session's role cannot be assumed: 403
  Conflict,     // the object exists already (SQLSTATE 42710, 23505): 409
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

  // The same, as role: BEGIN; SET LOCAL ROLE <role> (quoted with PQescapeIdentifier); the statement;
  // COMMIT (ROLLBACK on any error), so row-level security and privileges are those of role. The pool's
  // own login must be allowed to SET ROLE to it (a superuser, or a member of role).
  ResultPtr query_as(const std::string &role, const char *sql, const std::vector<std::optional<std::string>> &params);

 private:
  ResultPtr run(const std::string *role, const char *sql, const std::vector<std::optional<std::string>> &params);

 public:

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

// Checks user's password by opening (and closing) a connection as user with conninfo (whose own user and
// password are overridden). True only when the server accepted the login AND asked for the password
// (PQconnectionUsedPassword): a trust or peer rule in pg_hba.conf does not count as a password check.
// Throws DbError(Unavailable) when the server cannot be reached; false on any authentication failure.
bool verify_login(const std::string &conninfo, const std::string &user, const std::string &password);

}  // namespace pgfleet::gateway

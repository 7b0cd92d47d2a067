// db.cpp: connection pool and parameterized queries against the central database (see db.h).
//
// Session settings: every new connection gets statement_timeout (so a slow query cannot hold a pooled
// connection and an HTTP worker forever) and TimeZone=UTC (so timestamps rendered by the database are
// stable). Connection attempts are bounded by connect_timeout (default 5 s, the caller's conninfo wins).
#include "db.h"

#include <cstring>

namespace pgfleet::gateway {

namespace {

constexpr const char *kStatementTimeout = "8s";  // below the HTTP write timeout (10 s)
constexpr const char *kConnectTimeout = "5";     // seconds, libpq default is to wait forever

// Turns a libpq message into one line without the trailing newline.
std::string one_line(const char *msg) {
  std::string s;
  for (const char *p = msg ? msg : ""; *p; ++p) {
    char c = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
    if (c == ' ' && (s.empty() || s.back() == ' ')) continue;  // collapse runs, no leading space
    s += c;
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Classifies a failed result by SQLSTATE into the error the HTTP layer reports.
DbError classify(const PGresult *res, const std::string &message) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string code = state ? state : "";
  if (code.rfind("22", 0) == 0) return DbError(DbErrorKind::BadInput, "invalid parameter", message);
  if (code == "42501") return DbError(DbErrorKind::Forbidden, "permission denied", message);
  if (code == "42710" || code == "23505") return DbError(DbErrorKind::Conflict, "already exists", message);
  if (code == "57014") return DbError(DbErrorKind::Timeout, "database query timed out", message);
  if (code == "3F000" || code == "42P01" || code == "42883")
    return DbError(DbErrorKind::Unavailable, "fleet sql api not installed", message);
  if (code.rfind("08", 0) == 0 || code.rfind("57", 0) == 0 || code == "53300")
    return DbError(DbErrorKind::Unavailable, "database unavailable", message);
  return DbError(DbErrorKind::Internal, "database error", message);
}

}  // namespace

// Scoped lease of one pooled connection; returns it to the pool on destruction unless discarded.
class ConnectionPool::Lease {
 public:
  // Takes a connection from the pool (may open one, may throw DbError).
  explicit Lease(ConnectionPool &pool) : pool_(pool), conn_(pool.acquire()) {}
  // Gives the connection back, or closes it when it was marked broken.
  ~Lease() { pool_.release(conn_, keep_); }
  Lease(const Lease &) = delete;
  Lease &operator=(const Lease &) = delete;
  // The leased connection.
  PGconn *get() const { return conn_; }
  // Marks the connection as unusable: it is closed instead of being returned.
  void discard() { keep_ = false; }

 private:
  ConnectionPool &pool_;
  PGconn *conn_;
  bool keep_ = true;
};

// Stores the settings; no connection is opened until the first query.
ConnectionPool::ConnectionPool(std::string conninfo, size_t capacity,
                               std::chrono::milliseconds acquire_timeout)
    : conninfo_(std::move(conninfo)), capacity_(capacity ? capacity : 1), acquire_timeout_(acquire_timeout) {}

// Closes the idle connections (all leases must have ended: the HTTP server is stopped first).
ConnectionPool::~ConnectionPool() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (PGconn *c : idle_) PQfinish(c);
  idle_.clear();
}

// Opens one connection, applies the session settings; throws DbError(Unavailable) on failure.
PGconn *ConnectionPool::connect() {
  // Later keywords override earlier ones and the expanded dbname is processed in place, so the
  // caller's conninfo overrides our defaults.
  const char *keys[] = {"application_name", "connect_timeout", "dbname", nullptr};
  const char *vals[] = {"pgfleet-gateway", kConnectTimeout, conninfo_.c_str(), nullptr};
  PGconn *conn = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
  if (conn == nullptr) throw DbError(DbErrorKind::Unavailable, "database unavailable", "out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string detail = one_line(PQerrorMessage(conn));
    PQfinish(conn);
    throw DbError(DbErrorKind::Unavailable, "database unavailable", detail);
  }
  std::string setup = std::string("SET statement_timeout = '") + kStatementTimeout + "'; SET TimeZone = 'UTC'";
  ResultPtr res(PQexec(conn, setup.c_str()), &PQclear);
  if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
    std::string detail = one_line(PQerrorMessage(conn));
    PQfinish(conn);
    throw DbError(DbErrorKind::Unavailable, "database unavailable", detail);
  }
  return conn;
}

// Returns an idle healthy connection, opens a new one if below capacity, or waits for one to be
// released until acquire_timeout; throws DbError(Unavailable) on timeout or connection failure.
PGconn *ConnectionPool::acquire() {
  const auto deadline = std::chrono::steady_clock::now() + acquire_timeout_;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    while (!idle_.empty()) {
      PGconn *conn = idle_.back();
      idle_.pop_back();
      if (PQstatus(conn) == CONNECTION_OK) return conn;
      PQfinish(conn);
      --open_;
    }
    if (open_ < capacity_) {
      ++open_;  // reserve the slot, connect without holding the lock
      lock.unlock();
      try {
        return connect();
      } catch (...) {
        lock.lock();
        --open_;
        available_.notify_one();
        throw;
      }
    }
    if (available_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= capacity_)
      throw DbError(DbErrorKind::Unavailable, "database busy",
                    "no free database connection within " + std::to_string(acquire_timeout_.count()) + " ms");
  }
}

// Puts a connection back into the pool, or closes it when keep is false or it is broken.
void ConnectionPool::release(PGconn *conn, bool keep) {
  if (!keep || PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
    PQfinish(conn);
    std::lock_guard<std::mutex> lock(mutex_);
    --open_;
  } else {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(conn);
  }
  available_.notify_one();
}

// Runs sql with text parameters; retries once on a fresh connection when the connection broke.
ResultPtr ConnectionPool::query(const char *sql, const std::vector<std::optional<std::string>> &params) {
  return run(nullptr, sql, params);
}

ResultPtr ConnectionPool::query_as(const std::string &role, const char *sql,
                                   const std::vector<std::optional<std::string>> &params) {
  return run(&role, sql, params);
}

namespace {

// Runs a fixed command (BEGIN, COMMIT, ROLLBACK, SET LOCAL ROLE) and returns its status.
ExecStatusType exec_command(PGconn *conn, const std::string &command, std::string *error) {
  ResultPtr res(PQexec(conn, command.c_str()), &PQclear);
  ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && error) *error = one_line(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn));
  return status;
}

}  // namespace

ResultPtr ConnectionPool::run(const std::string *role, const char *sql,
                              const std::vector<std::optional<std::string>> &params) {
  std::vector<const char *> values;
  values.reserve(params.size());
  for (const auto &p : params) values.push_back(p ? p->c_str() : nullptr);

  for (int attempt = 0;; ++attempt) {
    Lease lease(*this);
    PGconn *conn = lease.get();
    if (role) {
      std::string error;
      if (exec_command(conn, "BEGIN", &error) != PGRES_COMMAND_OK) {
        lease.discard();
        if (attempt == 0 && PQstatus(conn) != CONNECTION_OK) continue;
        throw DbError(DbErrorKind::Unavailable, "database connection lost", error);
      }
      char *quoted = PQescapeIdentifier(conn, role->c_str(), role->size());
      if (quoted == nullptr) {
        lease.discard();
        throw DbError(DbErrorKind::Internal, "database error", one_line(PQerrorMessage(conn)));
      }
      std::string set_role = std::string("SET LOCAL ROLE ") + quoted;
      PQfreemem(quoted);
      if (exec_command(conn, set_role, &error) != PGRES_COMMAND_OK) {
        exec_command(conn, "ROLLBACK", nullptr);
        throw DbError(DbErrorKind::Forbidden, "role not available", error);
      }
    }
    ResultPtr res(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr,
                               /*resultFormat=*/0),
                  &PQclear);
    ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      if (!role) return res;
      std::string error;
      if (exec_command(conn, "COMMIT", &error) == PGRES_COMMAND_OK) return res;
      lease.discard();
      throw DbError(DbErrorKind::Internal, "database error", error);
    }

    std::string message = one_line(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn));
    if (PQstatus(conn) != CONNECTION_OK) {
      lease.discard();
      if (attempt == 0) continue;  // a stale pooled connection (e.g. after a server restart)
      throw DbError(DbErrorKind::Unavailable, "database connection lost", message);
    }
    if (role) exec_command(conn, "ROLLBACK", nullptr);
    throw classify(res.get(), message);
  }
}

bool verify_login(const std::string &conninfo, const std::string &user, const std::string &password) {
  // The expanded dbname is processed in place and later keywords win: user and password come last.
  const char *keys[] = {"application_name", "connect_timeout", "dbname", "user", "password", nullptr};
  const char *vals[] = {"pgfleet-gateway-login", kConnectTimeout, conninfo.c_str(), user.c_str(), password.c_str(),
                        nullptr};
  PGconn *conn = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
  if (conn == nullptr) throw DbError(DbErrorKind::Unavailable, "database unavailable", "out of memory");
  bool ok = PQstatus(conn) == CONNECTION_OK && PQconnectionUsedPassword(conn) == 1;
  std::string error = ok ? "" : one_line(PQerrorMessage(conn));
  PQfinish(conn);
  if (ok) return true;
  // An authentication failure says "password authentication failed" or names pg_hba; anything about
  // reaching the server is an outage, not a wrong password.
  if (error.find("could not connect") != std::string::npos || error.find("Connection refused") != std::string::npos ||
      error.find("No such file") != std::string::npos || error.find("timeout expired") != std::string::npos ||
      error.find("the database system is") != std::string::npos)
    throw DbError(DbErrorKind::Unavailable, "database unavailable", error);
  return false;
}

}  // namespace pgfleet::gateway

// api.cpp: the HTTP handlers of the gateway (see api.h for the routes, access levels and design).
//
// SQL: all statements are constants with $n parameters; user input never becomes SQL text. Rows are
// turned into JSON by the database (json_agg) where the API returns view rows unchanged, so new columns
// in the contract appear without a gateway change; the series endpoint builds its columnar shape here.
#include "api.h"

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "http_util.h"
#include "openapi.h"
#include "validate.h"

namespace pgfleet::gateway {

namespace {

using nlohmann::json;

constexpr double kDefaultWindowSeconds = 3600;
constexpr double kMaxWindowSeconds = 31.0 * 86400;
constexpr int kMaxPoints = 1000000;

constexpr const char *kSqlHealth = "SELECT to_regclass('fleet.instances') IS NOT NULL";

constexpr const char *kSqlInstances =
    "SELECT coalesce(json_agg(i ORDER BY i.namespace, i.hostname, i.instance_id), '[]'::json)::text "
    "FROM fleet.instances i";

constexpr const char *kSqlInstanceExists = "SELECT EXISTS (SELECT 1 FROM fleet.instances WHERE instance_id = $1::bigint)";

constexpr const char *kSqlMetrics =
    "SELECT coalesce(json_agg(s ORDER BY s.metric, s.labels::text), '[]'::json)::text "
    "FROM fleet.instance_series($1::bigint) s";

constexpr const char *kSqlSeries =
    "SELECT labels::text, extract(epoch FROM ts)::float8, value "
    "FROM fleet.series($1::bigint, $2::text, $3::timestamptz, $4::timestamptz)";

constexpr const char *kSqlRate =
    "SELECT labels::text, extract(epoch FROM ts)::float8, value "
    "FROM fleet.rate($1::bigint, $2::text, $3::timestamptz, $4::timestamptz)";

// Serializes JSON for a response; invalid UTF-8 from the database is replaced, never thrown on.
std::string dump(const json &j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Maps a DbError to its HTTP status and sends it; internal details go to the log, not to the client.
void send_db_error(httplib::Response &res, const DbError &e) {
  switch (e.kind()) {
    case DbErrorKind::Unavailable:
      res.set_header("Retry-After", "5");
      return send_error(res, 503, e.what(), e.detail());
    case DbErrorKind::Timeout:
      res.set_header("Retry-After", "5");
      return send_error(res, 503, e.what(), "the query exceeded the statement timeout");
    case DbErrorKind::BadInput:
      return send_error(res, 400, e.what(), e.detail());
    case DbErrorKind::Forbidden:
      return send_error(res, 403, e.what(), e.detail());
    case DbErrorKind::Conflict:
      return send_error(res, 409, e.what(), e.detail());
    case DbErrorKind::Internal:
      fprintf(stderr, "pgfleet-gateway: database error: %s\n", sanitize_for_log(e.detail(), 2000).c_str());
      return send_error(res, 500, e.what(), "see the gateway log");
  }
}

// Parses the {id} path component; sends a 400 and returns nullopt when it is not a valid id.
std::optional<int64_t> instance_id_param(const httplib::Request &req, httplib::Response &res) {
  auto id = parse_instance_id(req.matches[1]);
  if (!id) send_error(res, 400, "invalid instance id", "expected a non-negative integer, got '" +
                                                           sanitize_for_log(req.matches[1], 64) + "'");
  return id;
}

// True when the instance exists; otherwise sends a 404 and returns false.
bool instance_exists(ConnectionPool &pool, const std::string &role, int64_t id, httplib::Response &res) {
  ResultPtr r = pool.query_as(role, kSqlInstanceExists, {std::to_string(id)});
  if (PQntuples(r.get()) == 1 && std::string(PQgetvalue(r.get(), 0, 0)) == "t") return true;
  send_error(res, 404, "instance not found", "no instance with id " + std::to_string(id));
  return false;
}

// GET /healthz: the database answers and the fleet SQL API is installed.
void handle_health(ConnectionPool &pool, httplib::Response &res) {
  try {
    ResultPtr r = pool.query(kSqlHealth, {});
    if (PQntuples(r.get()) == 1 && std::string(PQgetvalue(r.get(), 0, 0)) == "t")
      return send_json(res, 200, R"({"status":"ok"})");
    send_json(res, 503, dump({{"status", "unavailable"}, {"error", "fleet sql api not installed"},
                              {"detail", "view fleet.instances does not exist"}}));
  } catch (const DbError &e) {
    send_json(res, 503, dump({{"status", "unavailable"}, {"error", e.what()}, {"detail", e.detail()}}));
  }
}

// GET /api/instances.
void handle_instances(ConnectionPool &pool, const std::string &role, httplib::Response &res) {
  ResultPtr r = pool.query_as(role, kSqlInstances, {});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

// Answers a route of one visible instance whose SQL takes the instance id as $1 and returns one JSON
// value: 400 for a bad id, 404 for an unknown or invisible instance.
void send_instance_json(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                        httplib::Response &res, const char *sql) {
  auto id = instance_id_param(req, res);
  if (!id || !instance_exists(pool, role, *id, res)) return;
  ResultPtr r = pool.query_as(role, sql, {std::to_string(*id)});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

// GET /api/instances/{id}/metrics.
void handle_metrics(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                    httplib::Response &res) {
  send_instance_json(pool, role, req, res, kSqlMetrics);
}

// Reads an optional ISO 8601 query parameter; sends a 400 and returns false when it is malformed.
bool time_param(const httplib::Request &req, httplib::Response &res, const char *name, std::optional<double> &out) {
  if (!req.has_param(name)) return true;
  std::string text = req.get_param_value(name);
  out = parse_iso8601(text);
  if (!out)
    send_error(res, 400, std::string("invalid ") + name,
               "expected an ISO 8601 timestamp with a time zone such as 2024-05-01T12:00:00Z, got '" +
                   sanitize_for_log(text, 64) + "'");
  return out.has_value();
}

// The from/to query parameters (default: the default_window seconds up to now), at most 31 days apart.
bool time_range(const httplib::Request &req, httplib::Response &res, double &from, double &to,
                double default_window = kDefaultWindowSeconds) {
  std::optional<double> f, t;
  if (!time_param(req, res, "from", f) || !time_param(req, res, "to", t)) return false;
  if (!t) t = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!f) f = *t - default_window;
  if (*f > *t) return send_error(res, 400, "invalid time range", "from is after to"), false;
  if (*t - *f > kMaxWindowSeconds) return send_error(res, 400, "invalid time range", "the range exceeds 31 days"), false;
  from = *f;
  to = *t;
  return true;
}

// GET /api/instances/{id}/series?metric=M&from=ISO&to=ISO[&rate=1].
void handle_series(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                   httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  if (!req.has_param("metric")) return send_error(res, 400, "missing metric", "the metric parameter is required");
  std::string metric = req.get_param_value("metric");
  if (!is_valid_metric(metric))
    return send_error(res, 400, "invalid metric",
                      "expected 1-128 characters [A-Za-z0-9_.-] starting with a letter, got '" +
                          sanitize_for_log(metric, 64) + "'");
  bool rate = false;
  if (req.has_param("rate")) {
    auto flag = parse_flag(req.get_param_value("rate"));
    if (!flag) return send_error(res, 400, "invalid rate", "expected 0, 1, true or false");
    rate = *flag;
  }
  double from, to;
  if (!time_range(req, res, from, to)) return;

  if (!instance_exists(pool, role, *id, res)) return;
  ResultPtr r = pool.query_as(role, rate ? kSqlRate : kSqlSeries,
                           {std::to_string(*id), metric, format_iso8601(from), format_iso8601(to)});
  const int rows = PQntuples(r.get());
  if (rows > kMaxPoints)
    return send_error(res, 400, "too many points",
                      std::to_string(rows) + " samples in the range, at most " + std::to_string(kMaxPoints) +
                          " are returned: narrow the range");

  json series = json::array();
  std::unordered_map<std::string, size_t> index;  // labels text -> position in series
  for (int i = 0; i < rows; ++i) {
    std::string labels = PQgetvalue(r.get(), i, 0);
    auto it = index.find(labels);
    if (it == index.end()) {
      json parsed = json::parse(labels, nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_object()) parsed = json::object();
      series.push_back({{"labels", std::move(parsed)}, {"ts", json::array()}, {"values", json::array()}});
      it = index.emplace(std::move(labels), series.size() - 1).first;
    }
    json &s = series[it->second];
    s["ts"].push_back(std::strtod(PQgetvalue(r.get(), i, 1), nullptr));
    if (PQgetisnull(r.get(), i, 2)) {
      s["values"].push_back(nullptr);
    } else {
      double v = std::strtod(PQgetvalue(r.get(), i, 2), nullptr);
      s["values"].push_back(std::isfinite(v) ? json(v) : json(nullptr));
    }
  }
  send_json(res, 200, dump({{"metric", metric}, {"series", std::move(series)}}));
}

constexpr const char *kSqlStatements =
    "SELECT coalesce(json_agg(s), '[]'::json)::text "
    "FROM fleet.top_statements($1::bigint, $2::timestamptz, $3::timestamptz, $4::text, $5::integer) s";

constexpr const char *kSqlWaitProfile =
    "SELECT coalesce(json_agg(w ORDER BY w.bucket, w.wait_event_type, w.wait_event), '[]'::json)::text "
    "FROM fleet.wait_profile($1::bigint, $2::timestamptz, $3::timestamptz) w";

constexpr const char *kSqlRoleLevel =
    "SELECT r.rolsuper, pg_has_role(r.oid, 'fleet_admin', 'MEMBER'), pg_has_role(r.oid, 'fleet_operator', 'MEMBER'), "
    "pg_has_role(r.oid, 'fleet_viewer', 'MEMBER') FROM pg_roles r WHERE r.rolname = $1";

constexpr const char *kSqlCreateUser = "SELECT fleet.create_user($1, $2, $3, $4)";

constexpr const char *kSqlWorkerStatus =
    "SELECT worker, coalesce(state, ''), coalesce(messages, 0), coalesce(batches, 0), coalesce(samples, 0), "
    "coalesce(duplicates, 0), coalesce(dead_letters, 0), coalesce(errors, 0), coalesce(consumer_pending, -1), "
    "coalesce(extract(epoch FROM last_batch_at), 0)::float8 FROM fleet.worker_status ORDER BY worker";

constexpr const char *kCookieName = "pgfleet_session";

// GET /api/instances/{id}/statements?from&to[&order_by=total_time|calls|mean_time|rows|io|io_time&limit=1..1000].
void handle_statements(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                       httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  double from, to;
  if (!time_range(req, res, from, to)) return;
  std::string order_by = req.has_param("order_by") ? req.get_param_value("order_by") : "total_time";
  static const char *kOrders[] = {"total_time", "calls", "mean_time", "rows", "io", "io_time"};
  bool known = false;
  for (const char *o : kOrders) known = known || order_by == o;
  if (!known) return send_error(res, 400, "invalid order_by", "expected total_time, calls, mean_time, rows, io or io_time");
  long limit = 20;
  if (req.has_param("limit")) {
    auto l = parse_instance_id(req.get_param_value("limit"));
    if (!l || *l < 1 || *l > 1000) return send_error(res, 400, "invalid limit", "expected an integer from 1 to 1000");
    limit = static_cast<long>(*l);
  }
  if (!instance_exists(pool, role, *id, res)) return;
  ResultPtr r = pool.query_as(role, kSqlStatements,
                              {std::to_string(*id), format_iso8601(from), format_iso8601(to), order_by,
                               std::to_string(limit)});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

// GET /api/instances/{id}/wait_profile?from&to.
void handle_wait_profile(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                         httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  double from, to;
  if (!time_range(req, res, from, to)) return;
  if (!instance_exists(pool, role, *id, res)) return;
  ResultPtr r = pool.query_as(role, kSqlWaitProfile, {std::to_string(*id), format_iso8601(from), format_iso8601(to)});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

constexpr const char *kSqlSettings =
    "SELECT coalesce(json_agg(s ORDER BY s.name), '[]'::json)::text FROM ("
    "SELECT name, setting, unit, source, pending_restart, updated_at FROM fleet.setting WHERE instance_id = $1::bigint) s";

constexpr int kMaxSettingChanges = 1000;
constexpr const char *kSqlSettingChanges =
    "SELECT coalesce(json_agg(c ORDER BY c.changed_at DESC, c.name), '[]'::json)::text FROM ("
    "SELECT name, old_setting, new_setting, changed_at FROM fleet.setting_change "
    "WHERE instance_id = $1::bigint AND changed_at >= $2::timestamptz AND changed_at <= $3::timestamptz "
    "ORDER BY changed_at DESC, name LIMIT 1000) c";

// The latest activity interval with its groups and the blocking edges of its last sample; a row of
// nulls and empty lists when no activity has arrived yet. Query ids are strings (64-bit, beyond a JS number).
constexpr const char *kSqlActivity =
    "WITH i AS (SELECT ts, samples_taken, longest_transaction_seconds, longest_idle_in_transaction_seconds "
    "FROM fleet.activity_interval WHERE instance_id = $1::bigint ORDER BY ts DESC LIMIT 1) "
    "SELECT json_build_object('ts', i.ts, 'samples_taken', coalesce(i.samples_taken, 0), "
    "'longest_transaction_seconds', i.longest_transaction_seconds, "
    "'longest_idle_in_transaction_seconds', i.longest_idle_in_transaction_seconds, "
    "'groups', coalesce((SELECT json_agg(json_build_object('state', a.state, 'wait_event_type', a.wait_event_type, "
    "'wait_event', a.wait_event, 'queryid', a.queryid::text, 'backend_type', a.backend_type, 'datname', a.datname, "
    "'usename', a.usename, 'application_name', a.application_name, 'observations', a.observations, "
    "'average_sessions', a.observations::float8 / nullif(i.samples_taken, 0)) "
    "ORDER BY a.observations DESC, a.state, a.wait_event_type, a.wait_event) "
    "FROM fleet.activity a WHERE a.instance_id = $1::bigint AND a.ts = i.ts), '[]'::json), "
    "'blocking', coalesce((SELECT json_agg(json_build_object('blocked_pid', b.blocked_pid, 'blocking_pid', b.blocking_pid, "
    "'blocked_queryid', b.blocked_queryid::text, 'blocking_queryid', b.blocking_queryid::text, 'blocked_seconds', b.blocked_seconds) "
    "ORDER BY b.blocking_pid, b.blocked_pid) "
    "FROM fleet.blocking b WHERE b.instance_id = $1::bigint AND b.ts = i.ts), '[]'::json))::text "
    "FROM (SELECT 1) d LEFT JOIN i ON true";

// GET /api/instances/{id}/settings: the current settings (fleet.setting), by name.
void handle_settings(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                     httplib::Response &res) {
  send_instance_json(pool, role, req, res, kSqlSettings);
}

// GET /api/instances/{id}/setting_changes?from&to (default: the last 31 days): newest first, at most 1000.
void handle_setting_changes(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                            httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  std::optional<double> from, to;
  if (!time_param(req, res, "from", from) || !time_param(req, res, "to", to)) return;
  if (!to) to = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!from) from = *to - kMaxWindowSeconds;
  if (*from > *to) return send_error(res, 400, "invalid time range", "from is after to");
  if (!instance_exists(pool, role, *id, res)) return;
  static_assert(kMaxSettingChanges == 1000, "keep the LIMIT of kSqlSettingChanges in step");
  ResultPtr r = pool.query_as(role, kSqlSettingChanges, {std::to_string(*id), format_iso8601(*from), format_iso8601(*to)});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

// GET /api/instances/{id}/activity: the latest activity interval (fleet.activity, fleet.blocking,
// fleet.activity_interval).
void handle_activity(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                     httplib::Response &res) {
  send_instance_json(pool, role, req, res, kSqlActivity);
}

constexpr const char *kSqlRollup =
    "SELECT labels::text, extract(epoch FROM bucket)::float8, count, min, max, avg, last, rate, tier "
    "FROM fleet.rollup($1::bigint, $2::text, $3::timestamptz, $4::timestamptz, $5::interval)";

// A nullable float column as JSON (null for SQL NULL and non-finite values).
json float_cell(PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col)) return nullptr;
  double v = std::strtod(PQgetvalue(r, row, col), nullptr);
  return std::isfinite(v) ? json(v) : json(nullptr);
}

// GET /api/instances/{id}/rollup?metric=M&from&to[&step=SECONDS]: fleet.rollup in columns per label set:
// {"metric","step","tier","series":[{"labels","ts","count","min","max","avg","last","rate"}]}; without step
// the database picks about 300 buckets over the range (at least 10 s).
void handle_rollup(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                   httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  if (!req.has_param("metric")) return send_error(res, 400, "missing metric", "the metric parameter is required");
  std::string metric = req.get_param_value("metric");
  if (!is_valid_metric(metric))
    return send_error(res, 400, "invalid metric",
                      "expected 1-128 characters [A-Za-z0-9_.-] starting with a letter, got '" +
                          sanitize_for_log(metric, 64) + "'");
  double from, to;
  if (!time_range(req, res, from, to)) return;
  if (to <= from) return send_error(res, 400, "invalid time range", "to must be after from");
  std::optional<std::string> step;
  if (req.has_param("step")) {
    auto s = parse_instance_id(req.get_param_value("step"));
    if (!s || *s < 1 || *s > 86400) return send_error(res, 400, "invalid step", "expected whole seconds from 1 to 86400");
    if ((to - from) / static_cast<double>(*s) > 100000)
      return send_error(res, 400, "invalid step", "more than 100000 buckets: use a larger step");
    step = std::to_string(*s) + " seconds";
  }
  if (!instance_exists(pool, role, *id, res)) return;
  ResultPtr r = pool.query_as(role, kSqlRollup, {std::to_string(*id), metric, format_iso8601(from), format_iso8601(to), step});
  const int rows = PQntuples(r.get());
  json series = json::array();
  std::string tier;
  std::unordered_map<std::string, size_t> index;
  static const char *kCols[] = {"count", "min", "max", "avg", "last", "rate"};
  for (int i = 0; i < rows; ++i) {
    std::string labels = PQgetvalue(r.get(), i, 0);
    auto it = index.find(labels);
    if (it == index.end()) {
      json parsed = json::parse(labels, nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_object()) parsed = json::object();
      json s = {{"labels", std::move(parsed)}, {"ts", json::array()}};
      for (const char *c : kCols) s[c] = json::array();
      series.push_back(std::move(s));
      it = index.emplace(std::move(labels), series.size() - 1).first;
    }
    json &s = series[it->second];
    s["ts"].push_back(std::strtod(PQgetvalue(r.get(), i, 1), nullptr));
    for (int c = 0; c < 6; ++c) s[kCols[c]].push_back(float_cell(r.get(), i, 2 + c));
    if (tier.empty()) tier = PQgetvalue(r.get(), i, 8);
  }
  json out = {{"metric", metric}, {"series", std::move(series)}};
  out["step"] = step ? json(std::stol(*step)) : json(nullptr);
  out["tier"] = tier.empty() ? json(nullptr) : json(tier);
  send_json(res, 200, dump(out));
}

constexpr const char *kSqlDashboard =
    "SELECT fleet.instance_dashboard($1::bigint, $2::timestamptz, $3::timestamptz, $4::interval)::text";

// An optional step parameter in whole seconds (1..86400) as an interval text; sends a 400 and returns
// false when it is malformed.
bool step_param(const httplib::Request &req, httplib::Response &res, std::optional<std::string> &step) {
  if (!req.has_param("step")) return true;
  auto s = parse_instance_id(req.get_param_value("step"));
  if (!s || *s < 1 || *s > 86400) return send_error(res, 400, "invalid step", "expected whole seconds from 1 to 86400"), false;
  step = std::to_string(*s) + " seconds";
  return true;
}

// GET /api/instances/{id}/dashboard?from&to[&step]: the fixed chart set of one instance in one document
// (fleet.instance_dashboard: CPU, memory, transactions, connections by state, cache hit ratio, WAL,
// replication lag, wait events; counters as rates; buckets of step, by default about 200 over the range).
void handle_dashboard(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                      httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  double from, to;
  std::optional<std::string> step;
  if (!time_range(req, res, from, to) || !step_param(req, res, step)) return;
  if (to <= from) return send_error(res, 400, "invalid time range", "to must be after from");
  if (!instance_exists(pool, role, *id, res)) return;
  ResultPtr r = pool.query_as(role, kSqlDashboard, {std::to_string(*id), format_iso8601(from), format_iso8601(to), step});
  if (PQgetisnull(r.get(), 0, 0))
    return send_error(res, 404, "instance not found", "no instance with id " + std::to_string(*id));
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

constexpr double kTablesDefaultWindowSeconds = 900;  // the agent sends every object at least every 10 min

constexpr const char *kSqlTables =
    "SELECT json_build_object('from', $2::timestamptz, 'to', $3::timestamptz, "
    "'tables', (SELECT coalesce(json_agg(t), '[]'::json) FROM fleet.instance_tables($1::bigint, $2::timestamptz, $3::timestamptz) t), "
    "'indexes', (SELECT coalesce(json_agg(x), '[]'::json) FROM fleet.instance_indexes($1::bigint, $2::timestamptz, $3::timestamptz) x)"
    ")::text";

// GET /api/instances/{id}/tables?from&to (default: the last 15 minutes): the latest statistics of every
// table and index the agent sent in the range: {"from","to","tables":[...],"indexes":[...]}.
void handle_tables(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                   httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  double from, to;
  if (!time_range(req, res, from, to, kTablesDefaultWindowSeconds)) return;
  if (!instance_exists(pool, role, *id, res)) return;
  ResultPtr r = pool.query_as(role, kSqlTables, {std::to_string(*id), format_iso8601(from), format_iso8601(to)});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

constexpr const char *kSqlCommands =
    "SELECT coalesce(json_agg(c ORDER BY c.created_at DESC), '[]'::json)::text FROM ("
    "SELECT c.command_id, c.kind, c.args, c.state, c.created_at, c.created_by, c.expires_at, c.sent_count, "
    "c.last_sent_at, c.message, c.output, c.finished_at "
    "FROM fleet.commands c JOIN fleet.instances i USING (agent_id) WHERE i.instance_id = $1::bigint "
    "ORDER BY c.created_at DESC LIMIT $2::integer) c";

// GET /api/instances/{id}/commands[?limit=1..100]: the newest commands of the instance's agent (default 20).
void handle_commands(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                     httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  long limit = 20;
  if (req.has_param("limit")) {
    auto l = parse_instance_id(req.get_param_value("limit"));
    if (!l || *l < 1 || *l > 100) return send_error(res, 400, "invalid limit", "expected an integer from 1 to 100");
    limit = static_cast<long>(*l);
  }
  if (!instance_exists(pool, role, *id, res)) return;
  ResultPtr r = pool.query_as(role, kSqlCommands, {std::to_string(*id), std::to_string(limit)});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

constexpr const char *kSqlSparklines =
    "SELECT fleet.instance_sparklines($1::timestamptz, $2::timestamptz, $3::bigint[])::text";
constexpr size_t kMaxSparklineIds = 500;

// GET /api/sparklines?from&to[&ids=1,2,...]: CPU and transactions per second of every visible instance
// (or of the listed ones), about 60 buckets over the range (default: the last hour).
void handle_sparklines(ConnectionPool &pool, const std::string &role, const httplib::Request &req,
                       httplib::Response &res) {
  double from, to;
  if (!time_range(req, res, from, to)) return;
  if (to <= from) return send_error(res, 400, "invalid time range", "to must be after from");
  std::optional<std::string> ids;
  if (req.has_param("ids")) {
    ids = parse_id_list(req.get_param_value("ids"), kMaxSparklineIds);
    if (!ids) return send_error(res, 400, "invalid ids", "expected 1 to 500 comma-separated instance ids");
  }
  ResultPtr r = pool.query_as(role, kSqlSparklines, {format_iso8601(from), format_iso8601(to), ids});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

// True for a role name the gateway accepts: 1-63 characters [a-z0-9_], starting with a letter or '_'.
bool is_valid_role_name(const std::string &name) {
  if (name.empty() || name.size() > 63) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_')) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// Parses a JSON object body; sends 415/400 and returns nullopt when it is not one.
std::optional<json> json_body(const httplib::Request &req, httplib::Response &res) {
  std::string type = req.get_header_value("Content-Type");
  if (type.rfind("application/json", 0) != 0) {
    send_error(res, 415, "unsupported media type", "the body must be application/json");
    return std::nullopt;
  }
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    send_error(res, 400, "invalid body", "expected a JSON object");
    return std::nullopt;
  }
  return body;
}

// A string member of a JSON object, or nullopt when missing or not a string.
std::optional<std::string> str_member(const json &j, const char *name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::string session_cookie(const Gateway &gw, const std::string &value, long max_age) {
  return std::string(kCookieName) + "=" + value + "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" +
         std::to_string(max_age) + (gw.secure_cookie ? "; Secure" : "");
}

// POST /api/login {"user","password"}: verifies the password with a connection as the user, requires
// membership in fleet_viewer (operator/admin imply it) and refuses superusers, then opens a session.
void handle_login(Gateway &gw, const httplib::Request &req, httplib::Response &res) {
  auto body = json_body(req, res);
  if (!body) return;
  auto user = str_member(*body, "user");
  auto password = str_member(*body, "password");
  if (!user || !password) return send_error(res, 400, "invalid body", "user and password (strings) are required");
  auto refuse = [&res]() {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // slows password guessing a little
    send_error(res, 401, "invalid user or password", "");
  };
  if (!is_valid_role_name(*user) || password->empty() || password->size() > 1024) return refuse();
  if (!verify_login(gw.auth_conninfo, *user, *password)) {
    fprintf(stderr, "pgfleet-gateway: login failed for user %s from %s\n", sanitize_for_log(*user, 64).c_str(),
            sanitize_for_log(req.remote_addr, 64).c_str());
    return refuse();
  }
  ResultPtr r = gw.pool.query(kSqlRoleLevel, {*user});
  if (PQntuples(r.get()) != 1) return refuse();
  auto flag = [&r](int col) { return std::string(PQgetvalue(r.get(), 0, col)) == "t"; };
  if (flag(0))
    return send_error(res, 403, "superusers cannot log in to the gateway",
                      "log in with a role that is a member of fleet_viewer, fleet_operator or fleet_admin");
  if (!flag(3)) return send_error(res, 403, "not a fleet user", "the role is not a member of fleet_viewer");
  Level level = flag(1) ? Level::Admin : flag(2) ? Level::Operator : Level::Viewer;
  Session s = gw.sessions.create(*user, level);
  res.set_header("Set-Cookie", session_cookie(gw, s.id, static_cast<long>(gw.sessions.ttl().count())));
  fprintf(stderr, "pgfleet-gateway: login of user %s (%s) from %s\n", sanitize_for_log(*user, 64).c_str(),
          level_name(level), sanitize_for_log(req.remote_addr, 64).c_str());
  send_json(res, 200, dump({{"user", s.user}, {"role", level_name(s.level)},
                            {"expires_at", format_iso8601(std::chrono::duration<double>(
                                                              s.expires.time_since_epoch()).count())}}));
}

// POST /api/users {"name","role","namespace"?} (admin): a new LOGIN role with a generated password.
void handle_create_user(Gateway &gw, const Session &session, const httplib::Request &req, httplib::Response &res) {
  auto body = json_body(req, res);
  if (!body) return;
  auto name = str_member(*body, "name");
  auto role = str_member(*body, "role");
  std::optional<std::string> ns = str_member(*body, "namespace");
  if (!name || !role) return send_error(res, 400, "invalid body", "name and role (strings) are required");
  if (!is_valid_role_name(*name) || (*name)[0] == '_')
    return send_error(res, 400, "invalid name", "expected 1-63 characters [a-z0-9_] starting with a letter");
  if (*role != "viewer" && *role != "operator" && *role != "admin")
    return send_error(res, 400, "invalid role", "expected viewer, operator or admin");
  if (ns && (ns->empty() || ns->size() > 64 || ns->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos))
    return send_error(res, 400, "invalid namespace", "expected 1-64 characters [A-Za-z0-9_-]");
  std::string password = to_hex(random_bytes(16));  // 128 bits, 32 characters
  gw.pool.query_as(session.user, kSqlCreateUser, {*name, *role, password, ns});
  fprintf(stderr, "pgfleet-gateway: user %s created user %s (%s)\n", sanitize_for_log(session.user, 64).c_str(),
          sanitize_for_log(*name, 64).c_str(), role->c_str());
  json out = {{"name", *name}, {"role", *role}, {"password", password}};
  out["namespace"] = ns ? json(*ns) : json(nullptr);
  send_json(res, 201, dump(out));
}

constexpr const char *kSqlSendCommand =
    "SELECT fleet.send_command(i.agent_id, $2::text)::text, i.agent_id FROM fleet.instances i WHERE i.instance_id = $1::bigint";

// POST /api/instances/{id}/commands {"kind": "ping" | "collect_now"} (operator): queues the command for the
// instance's agent with fleet.send_command, as the logged-in role (the database refuses viewers and
// instances the role does not see); 202 {"command_id","kind","state":"pending"}. The result appears in
// GET /api/instances/{id}/commands when the agent has answered.
void handle_send_command(Gateway &gw, const Session &session, const httplib::Request &req, httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id) return;
  auto body = json_body(req, res);
  if (!body) return;
  auto kind = str_member(*body, "kind");
  if (!kind) return send_error(res, 400, "invalid body", "kind (a string) is required");
  if (*kind != "ping" && *kind != "collect_now")
    return send_error(res, 400, "invalid kind", "expected ping or collect_now");
  ResultPtr r = gw.pool.query_as(session.user, kSqlSendCommand, {std::to_string(*id), *kind});
  if (PQntuples(r.get()) != 1)
    return send_error(res, 404, "instance not found", "no instance with id " + std::to_string(*id));
  std::string command_id = PQgetvalue(r.get(), 0, 0);
  fprintf(stderr, "pgfleet-gateway: user %s queued command %s (%s) for agent %s\n",
          sanitize_for_log(session.user, 64).c_str(), kind->c_str(), command_id.c_str(),
          sanitize_for_log(PQgetvalue(r.get(), 0, 1), 64).c_str());
  send_json(res, 202, dump({{"command_id", command_id}, {"kind", *kind}, {"state", "pending"}}));
}

// GET /metrics (operator): Prometheus text format.
void handle_prometheus(Gateway &gw, httplib::Response &res) {
  std::string out = gw.metrics.render();
  out += "# HELP pgfleet_gateway_sessions Live login sessions.\n# TYPE pgfleet_gateway_sessions gauge\n";
  out += "pgfleet_gateway_sessions " + std::to_string(gw.sessions.size()) + "\n";
  bool db_up = true;
  std::string workers;
  try {
    ResultPtr r = gw.pool.query(kSqlWorkerStatus, {});
    static const char *kCounters[] = {"messages", "batches", "samples", "duplicates", "dead_letters", "errors"};
    std::vector<std::string> lines(9);
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      std::string w = std::string("worker=\"") + PQgetvalue(r.get(), i, 0) + "\"";
      lines[0] += "pgfleet_ingest_worker_up{" + w + ",state=\"" + prom_label(PQgetvalue(r.get(), i, 1)) + "\"} 1\n";
      for (int c = 0; c < 6; ++c)
        lines[1 + c] += std::string("pgfleet_ingest_") + kCounters[c] + "_total{" + w + "} " + PQgetvalue(r.get(), i, 2 + c) + "\n";
      lines[7] += "pgfleet_ingest_consumer_pending{" + w + "} " + PQgetvalue(r.get(), i, 8) + "\n";
      lines[8] += "pgfleet_ingest_last_batch_timestamp_seconds{" + w + "} " + PQgetvalue(r.get(), i, 9) + "\n";
    }
    workers += "# HELP pgfleet_ingest_worker_up Ingest workers known to fleet.worker_status, with their state.\n"
               "# TYPE pgfleet_ingest_worker_up gauge\n" + lines[0];
    for (int c = 0; c < 6; ++c)
      workers += std::string("# TYPE pgfleet_ingest_") + kCounters[c] + "_total counter\n" + lines[1 + c];
    workers += "# TYPE pgfleet_ingest_consumer_pending gauge\n" + lines[7];
    workers += "# TYPE pgfleet_ingest_last_batch_timestamp_seconds gauge\n" + lines[8];
  } catch (const DbError &e) {
    db_up = false;
  }
  out += "# HELP pgfleet_gateway_database_up 1 when the central database answered this scrape.\n"
         "# TYPE pgfleet_gateway_database_up gauge\n";
  out += std::string("pgfleet_gateway_database_up ") + (db_up ? "1" : "0") + "\n" + workers;
  res.status = 200;
  res.set_header("Cache-Control", "no-store");
  res.set_content(out, "text/plain; version=0.0.4; charset=utf-8");
}

// Wraps a handler: any DbError becomes its mapped status, any other exception a 500.
template <typename F>
void run_guarded(const httplib::Request &req, httplib::Response &res, F &&f) {
  try {
    f();
  } catch (const DbError &e) {
    send_db_error(res, e);
  } catch (const std::exception &e) {
    fprintf(stderr, "pgfleet-gateway: internal error on %s: %s\n", sanitize_for_log(req.path).c_str(), e.what());
    send_error(res, 500, "internal error", "see the gateway log");
  }
}

// A public route: no session needed.
template <typename F>
httplib::Server::Handler open_route(const char *route, F f) {
  return [route, f](const httplib::Request &req, httplib::Response &res) {
    current_route() = route;
    run_guarded(req, res, [&] { f(req, res); });
  };
}

// A route that needs a session of at least level min: 401 without one, 403 below the level.
template <typename F>
httplib::Server::Handler session_route(Gateway &gw, const char *route, Level min, F f) {
  return [&gw, route, min, f](const httplib::Request &req, httplib::Response &res) {
    current_route() = route;
    auto session = gw.sessions.find(cookie_value(req.get_header_value("Cookie"), kCookieName));
    if (!session) {
      res.set_header("WWW-Authenticate", "Cookie realm=\"pgfleet\"");
      return send_error(res, 401, "not logged in", "log in with POST /api/login");
    }
    if (static_cast<int>(session->level) < static_cast<int>(min))
      return send_error(res, 403, "forbidden", std::string("this route needs the ") + level_name(min) + " role");
    run_guarded(req, res, [&] { f(*session, req, res); });
  };
}

}  // namespace

std::string &current_route() {
  thread_local std::string route;
  return route;
}

// Registers the API routes first, then the /api catch-all, the static files and the 405 handlers
// (httplib tries patterns in registration order).
void register_routes(httplib::Server &server, Gateway &gw) {
  Gateway *g = &gw;
  ConnectionPool *p = &gw.pool;
  using Req = const httplib::Request &;
  using Res = httplib::Response &;
  server.Get("/healthz", open_route("/healthz", [p](Req, Res res) { handle_health(*p, res); }));
  server.Post("/api/login", open_route("/api/login", [g](Req req, Res res) { handle_login(*g, req, res); }));
  server.Get("/api/docs", open_route("/api/docs", [](Req, Res res) {
    res.set_redirect("/swagger/index.html", 302);
  }));
  server.Post("/api/logout", session_route(gw, "/api/logout", Level::Viewer, [g](const Session &s, Req, Res res) {
    g->sessions.remove(s.id);
    res.set_header("Set-Cookie", session_cookie(*g, "", 0));
    res.status = 204;
  }));
  server.Get("/api/session", session_route(gw, "/api/session", Level::Viewer, [](const Session &s, Req, Res res) {
    send_json(res, 200, dump({{"user", s.user}, {"role", level_name(s.level)},
                              {"expires_at", format_iso8601(std::chrono::duration<double>(
                                                                s.expires.time_since_epoch()).count())}}));
  }));
  server.Get("/api/openapi.json", session_route(gw, "/api/openapi.json", Level::Viewer,
                                                [](const Session &, Req, Res res) { send_json(res, 200, openapi_json()); }));
  server.Get("/api/instances", session_route(gw, "/api/instances", Level::Viewer, [p](const Session &s, Req, Res res) {
    handle_instances(*p, s.user, res);
  }));
  // The routes of one instance, for viewers and above: (URL pattern, route name for logs and metrics,
  // handler). Every handler validates the id and answers 404 for an unknown or invisible instance.
  using InstanceHandler = void (*)(ConnectionPool &, const std::string &, const httplib::Request &,
                                   httplib::Response &);
  static const struct {
    const char *pattern;
    const char *route;
    InstanceHandler handler;
  } instance_routes[] = {
      {R"(/api/instances/([^/]+)/metrics)", "/api/instances/{id}/metrics", handle_metrics},
      {R"(/api/instances/([^/]+)/series)", "/api/instances/{id}/series", handle_series},
      {R"(/api/instances/([^/]+)/statements)", "/api/instances/{id}/statements", handle_statements},
      {R"(/api/instances/([^/]+)/wait_profile)", "/api/instances/{id}/wait_profile", handle_wait_profile},
      {R"(/api/instances/([^/]+)/settings)", "/api/instances/{id}/settings", handle_settings},
      {R"(/api/instances/([^/]+)/setting_changes)", "/api/instances/{id}/setting_changes", handle_setting_changes},
      {R"(/api/instances/([^/]+)/rollup)", "/api/instances/{id}/rollup", handle_rollup},
      {R"(/api/instances/([^/]+)/activity)", "/api/instances/{id}/activity", handle_activity},
      {R"(/api/instances/([^/]+)/dashboard)", "/api/instances/{id}/dashboard", handle_dashboard},
      {R"(/api/instances/([^/]+)/tables)", "/api/instances/{id}/tables", handle_tables},
      {R"(/api/instances/([^/]+)/commands)", "/api/instances/{id}/commands", handle_commands},
  };
  for (const auto &r : instance_routes) {
    InstanceHandler handler = r.handler;
    server.Get(r.pattern, session_route(gw, r.route, Level::Viewer, [p, handler](const Session &s, Req req, Res res) {
                 handler(*p, s.user, req, res);
               }));
  }
  server.Get("/api/sparklines", session_route(gw, "/api/sparklines", Level::Viewer, [p](const Session &s, Req req, Res res) {
    handle_sparklines(*p, s.user, req, res);
  }));
  server.Post(R"(/api/instances/([^/]+)/commands)",
              session_route(gw, "/api/instances/{id}/commands", Level::Operator,
                            [g](const Session &s, Req req, Res res) { handle_send_command(*g, s, req, res); }));
  server.Post("/api/users", session_route(gw, "/api/users", Level::Admin, [g](const Session &s, Req req, Res res) {
    handle_create_user(*g, s, req, res);
  }));
  // /metrics: an operator session, or (with --metrics-token) the bearer token a Prometheus scraper sends.
  // A request that presents a bearer token is judged by the token alone: a wrong one is a 401.
  auto metrics_by_session = session_route(gw, "/metrics", Level::Operator,
                                          [g](const Session &, Req, Res res) { handle_prometheus(*g, res); });
  server.Get("/metrics", [g, metrics_by_session](Req req, Res res) {
    std::string token = bearer_token(req.get_header_value("Authorization"));
    if (g->metrics_token.empty() || token.empty()) return metrics_by_session(req, res);
    current_route() = "/metrics";
    if (!token_equals(token, g->metrics_token)) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"pgfleet\"");
      return send_error(res, 401, "invalid bearer token", "the token does not match --metrics-token");
    }
    run_guarded(req, res, [&] { handle_prometheus(*g, res); });
  });
  // Unknown API routes: 401 without a session (nothing is revealed), 404 with one.
  auto unknown_api = session_route(gw, "/api/*", Level::Viewer, [](const Session &, Req req, Res res) {
    send_error(res, 404, "unknown api route", sanitize_for_log(req.path, 200));
  });
  server.Get(R"(/api(/.*)?)", unknown_api);
  server.Post(R"(/api(/.*)?)", unknown_api);
  const StaticFiles *f = &gw.files;
  server.Get(R"(/.*)", open_route("static", [f](Req req, Res res) { f->serve(req, res); }));

  auto not_allowed = [](Req req, Res res) {
    current_route() = "other";
    res.set_header("Allow", "GET, HEAD");
    send_error(res, 405, "method not allowed", sanitize_for_log(req.method, 16) + " is not supported");
  };
  server.Post(R"(/.*)", not_allowed);
  server.Put(R"(/.*)", not_allowed);
  server.Patch(R"(/.*)", not_allowed);
  server.Delete(R"(/.*)", not_allowed);
  server.Options(R"(/.*)", not_allowed);
}

}  // namespace pgfleet::gateway

// api.cpp: the HTTP handlers of the gateway (see api.h for the routes and their design).
//
// SQL: all statements are constants with $n parameters; user input never becomes SQL text. Rows are
// turned into JSON by the database (json_agg) where the API returns view rows unchanged, so new columns
// in the contract appear without a gateway change; the series endpoint builds its columnar shape here.
#include "api.h"

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "http_util.h"
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
bool instance_exists(ConnectionPool &pool, int64_t id, httplib::Response &res) {
  ResultPtr r = pool.query(kSqlInstanceExists, {std::to_string(id)});
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
void handle_instances(ConnectionPool &pool, httplib::Response &res) {
  ResultPtr r = pool.query(kSqlInstances, {});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
}

// GET /api/instances/{id}/metrics.
void handle_metrics(ConnectionPool &pool, const httplib::Request &req, httplib::Response &res) {
  auto id = instance_id_param(req, res);
  if (!id || !instance_exists(pool, *id, res)) return;
  ResultPtr r = pool.query(kSqlMetrics, {std::to_string(*id)});
  send_json(res, 200, PQgetvalue(r.get(), 0, 0));
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

// GET /api/instances/{id}/series?metric=M&from=ISO&to=ISO[&rate=1].
void handle_series(ConnectionPool &pool, const httplib::Request &req, httplib::Response &res) {
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
  std::optional<double> from, to;
  if (!time_param(req, res, "from", from) || !time_param(req, res, "to", to)) return;
  if (!to) to = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!from) from = *to - kDefaultWindowSeconds;
  if (*from > *to) return send_error(res, 400, "invalid time range", "from is after to");
  if (*to - *from > kMaxWindowSeconds) return send_error(res, 400, "invalid time range", "the range exceeds 31 days");

  if (!instance_exists(pool, *id, res)) return;
  ResultPtr r = pool.query(rate ? kSqlRate : kSqlSeries,
                           {std::to_string(*id), metric, format_iso8601(*from), format_iso8601(*to)});
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

// Wraps a handler: any DbError becomes its mapped status, any other exception a 500.
template <typename F>
httplib::Server::Handler guarded(F f) {
  return [f](const httplib::Request &req, httplib::Response &res) {
    try {
      f(req, res);
    } catch (const DbError &e) {
      send_db_error(res, e);
    } catch (const std::exception &e) {
      fprintf(stderr, "pgfleet-gateway: internal error on %s: %s\n", sanitize_for_log(req.path).c_str(), e.what());
      send_error(res, 500, "internal error", "see the gateway log");
    }
  };
}

}  // namespace

// Registers the API routes first, then the /api catch-all, the static files and the 405 handlers
// (httplib tries patterns in registration order).
void register_routes(httplib::Server &server, ConnectionPool &pool, const StaticFiles &files) {
  ConnectionPool *p = &pool;
  server.Get("/healthz", guarded([p](const httplib::Request &, httplib::Response &res) { handle_health(*p, res); }));
  server.Get("/api/instances",
             guarded([p](const httplib::Request &, httplib::Response &res) { handle_instances(*p, res); }));
  server.Get(R"(/api/instances/([^/]+)/metrics)",
             guarded([p](const httplib::Request &req, httplib::Response &res) { handle_metrics(*p, req, res); }));
  server.Get(R"(/api/instances/([^/]+)/series)",
             guarded([p](const httplib::Request &req, httplib::Response &res) { handle_series(*p, req, res); }));
  server.Get(R"(/api(/.*)?)", [](const httplib::Request &req, httplib::Response &res) {
    send_error(res, 404, "unknown api route", sanitize_for_log(req.path, 200));
  });
  const StaticFiles *f = &files;
  server.Get(R"(/.*)", guarded([f](const httplib::Request &req, httplib::Response &res) { f->serve(req, res); }));

  auto not_allowed = [](const httplib::Request &req, httplib::Response &res) {
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

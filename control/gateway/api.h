// api.h: the gateway's HTTP routes (docs/interfaces.md, "Gateway HTTP"; /api/openapi.json).
//
// Design: handlers are thin: check the session, validate the request (validate.h), run one fixed,
// parameterized statement against the fleet SQL API through the connection pool (db.h) AS THE LOGGED-IN
// ROLE (query_as: BEGIN; SET LOCAL ROLE; ...; COMMIT), so row-level security decides what each user
// sees, and shape the JSON. Database failures map to status codes in one place (send_db_error).
// Access: /healthz, POST /api/login, /api/docs (a redirect) and the static files need no session; every
// other route answers 401 without a valid session cookie and 403 when the role's level is too low:
//   public    GET /healthz, POST /api/login, GET /api/docs, GET /... (static UI files)
//   viewer    POST /api/logout, GET /api/session, GET /api/openapi.json, GET /api/instances,
//             GET /api/instances/{id}/metrics, GET /api/instances/{id}/series?metric=M&from&to[&rate=1],
//             GET /api/instances/{id}/statements?from&to[&order_by&limit],
//             GET /api/instances/{id}/wait_profile?from&to, GET /api/instances/{id}/settings,
//             GET /api/instances/{id}/setting_changes?from&to, GET /api/instances/{id}/activity,
//             GET /api/instances/{id}/rollup?metric=M&from&to[&step=SECONDS],
//             GET /api/instances/{id}/dashboard?from&to[&step=SECONDS] (fleet.instance_dashboard),
//             GET /api/instances/{id}/tables?from&to (fleet.instance_tables + fleet.instance_indexes),
//             GET /api/instances/{id}/commands[?limit] (fleet.commands of the instance's agent),
//             GET /api/sparklines?from&to[&ids=1,2,...] (fleet.instance_sparklines)
//   operator  POST /api/instances/{id}/commands {kind: ping|collect_now} (fleet.send_command; the database
//             refuses viewers too), GET /metrics (Prometheus text: request counts/latencies, sessions,
//             ingest worker status; also open to "Authorization: Bearer <token>" with --metrics-token)
//   admin     POST /api/users {name, role, namespace?} -> the new user with a generated password (shown once)
// POST bodies must be application/json (which, with the SameSite=Strict cookie, keeps cross-site forms out).
#pragma once

#include <httplib.h>

#include <string>

#include "db.h"
#include "metrics.h"
#include "session.h"
#include "static_files.h"

namespace pgfleet::gateway {

// Everything the handlers share; must outlive the server.
struct Gateway {
  ConnectionPool &pool;       // connects as the gateway's own login (see docs/interfaces.md)
  const StaticFiles &files;
  SessionStore &sessions;
  RequestMetrics &metrics;
  std::string auth_conninfo;  // where logins are verified (user and password are added)
  bool secure_cookie = false; // add "Secure" to the cookie (TLS, or behind a TLS proxy)
  std::string metrics_token;  // with --metrics-token: this bearer token also opens /metrics ("" = sessions only)
};

// Registers every route on server.
void register_routes(httplib::Server &server, Gateway &gw);

// The route pattern of the request this thread is handling ("static" for files, "" before routing).
std::string &current_route();

}  // namespace pgfleet::gateway

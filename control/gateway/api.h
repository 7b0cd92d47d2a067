// api.h: the gateway's HTTP routes (docs/interfaces.md, "Gateway HTTP").
//
// Design: handlers are thin: validate the request (validate.h), run one or two fixed, parameterized
// statements against the fleet SQL API through the connection pool (db.h), and shape the JSON. Database
// failures map to status codes in one place (send_db_error). Routes:
//   GET /healthz                                  {"status":"ok"} or 503
//   GET /api/instances                            fleet.instances rows
//   GET /api/instances/{id}/metrics               fleet.instance_series rows (404 for an unknown id)
//   GET /api/instances/{id}/series?metric=M&from=ISO&to=ISO[&rate=1]
//       fleet.series (or fleet.rate) grouped per label set; from/to default to the last hour; the range
//       is limited to 31 days and the answer to kMaxPoints samples
//   GET /api/...  anything else                   404 JSON
//   GET /...                                      static UI files
//   other methods                                 405 JSON
#pragma once

#include <httplib.h>

#include "db.h"
#include "static_files.h"

namespace pgfleet::gateway {

// Registers every route on server; pool and files must outlive it.
void register_routes(httplib::Server &server, ConnectionPool &pool, const StaticFiles &files);

}  // namespace pgfleet::gateway

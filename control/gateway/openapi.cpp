// openapi.cpp: the OpenAPI 3.0 description of the routes in api.cpp. Keep the two in step: the API test
// suite (tests/api/run) checks that every path listed here answers 401 without a session.
#include "openapi.h"

#include <nlohmann/json.hpp>

namespace pgfleet::gateway {

namespace {

using nlohmann::json;

json error_response(const char *what) {
  return {{"description", what}, {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}};
}

json json_response(const char *what, json schema) {
  return {{"description", what}, {"content", {{"application/json", {{"schema", std::move(schema)}}}}}};
}

json param(const char *name, const char *in, bool required, json schema, const char *description) {
  return {{"name", name}, {"in", in}, {"required", required}, {"schema", std::move(schema)}, {"description", description}};
}

json secured_responses(json ok) {
  json r = {{"200", std::move(ok)}, {"401", error_response("no valid session")}};
  return r;
}

json build() {
  json id = param("id", "path", true, {{"type", "integer"}, {"format", "int64"}, {"minimum", 0}}, "instance id");
  json from = param("from", "query", false, {{"type", "string"}, {"format", "date-time"}}, "start (default: to - 1 h)");
  json to = param("to", "query", false, {{"type", "string"}, {"format", "date-time"}}, "end (default: now)");
  auto inst = [&](const char *summary, json extra_params, json ok) {
    json params = json::array({id});
    for (auto &p : extra_params) params.push_back(p);
    json responses = secured_responses(std::move(ok));
    responses["400"] = error_response("invalid parameter");
    responses["404"] = error_response("no such instance (or not visible to this user)");
    return json{{"get", {{"summary", summary}, {"tags", {"instances"}}, {"parameters", params}, {"responses", responses}}}};
  };
  json commands = inst("the newest commands of the instance's agent (fleet.commands: state pending, sent, done, failed or "
                        "expired; message and output of the agent's result)",
                        json::array({param("limit", "query", false, {{"type", "integer"}, {"minimum", 1}, {"maximum", 100}},
                                           "rows (default 20)")}),
                        json_response("commands, newest first", {{"type", "array"}, {"items", {{"$ref", "#/components/schemas/Command"}}}}));
  commands["post"] = {
      {"summary", "queue a command for the instance's agent (operator or admin; fleet.send_command, refused by the database "
                  "for viewers): ping answers the agent's version, collect_now runs every collector at once"},
      {"tags", {"instances"}},
      {"parameters", json::array({id})},
      {"requestBody",
       {{"required", true},
        {"content",
         {{"application/json",
           {{"schema",
             {{"type", "object"},
              {"required", {"kind"}},
              {"properties", {{"kind", {{"type", "string"}, {"enum", {"ping", "collect_now"}}}}}}}}}}}}}},
      {"responses",
       {{"202", json_response("queued: {command_id, kind, state: pending}; the result appears in GET .../commands", {{"type", "object"}})},
        {"400", error_response("invalid id or kind")},
        {"401", error_response("no valid session")},
        {"403", error_response("a viewer")},
        {"404", error_response("no such instance (or not visible to this user)")},
        {"415", error_response("body is not application/json")}}}};
  json doc = {
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "pgfleet gateway API"},
        {"version", "0.1.0"},
        {"description",
         "Every route except /healthz and POST /api/login needs the session cookie that POST /api/login sets "
         "(/metrics also takes the bearer token of --metrics-token). "
         "Requests run as the logged-in PostgreSQL role, so row-level security limits every answer to the "
         "namespaces that role may see."}}},
      {"components",
       {{"securitySchemes", {{"session", {{"type", "apiKey"}, {"in", "cookie"}, {"name", "pgfleet_session"}}},
                             {"metricsToken", {{"type", "http"}, {"scheme", "bearer"},
                                               {"description", "only for /metrics, when the gateway runs with --metrics-token"}}}}},
        {"schemas",
         {{"Error",
           {{"type", "object"},
            {"required", {"error"}},
            {"properties", {{"error", {{"type", "string"}}}, {"detail", {{"type", "string"}}}}}}},
          {"Session",
           {{"type", "object"},
            {"properties",
             {{"user", {{"type", "string"}}},
              {"role", {{"type", "string"}, {"enum", {"viewer", "operator", "admin"}}}},
              {"expires_at", {{"type", "string"}, {"format", "date-time"}}}}}}},
          {"Instance",
           {{"type", "object"},
            {"properties",
             {{"instance_id", {{"type", "integer"}}}, {"namespace", {{"type", "string"}}}, {"agent_id", {{"type", "string"}}},
              {"hostname", {{"type", "string"}, {"nullable", true}}}, {"server_version", {{"type", "string"}, {"nullable", true}}},
              {"system_identifier", {{"type", "string"}, {"nullable", true}}}, {"in_recovery", {{"type", "boolean"}, {"nullable", true}}},
              {"first_seen", {{"type", "string"}, {"format", "date-time"}}}, {"last_seen", {{"type", "string"}, {"format", "date-time"}}},
              {"status", {{"type", "string"}, {"enum", {"up", "stale"}}}}}}}},
          {"Command",
           {{"type", "object"},
            {"properties",
             {{"command_id", {{"type", "string"}, {"format", "uuid"}}}, {"kind", {{"type", "string"}}}, {"args", {{"type", "object"}}},
              {"state", {{"type", "string"}, {"enum", {"pending", "sent", "done", "failed", "expired"}}}},
              {"created_at", {{"type", "string"}, {"format", "date-time"}}}, {"created_by", {{"type", "string"}}},
              {"expires_at", {{"type", "string"}, {"format", "date-time"}}}, {"sent_count", {{"type", "integer"}}},
              {"last_sent_at", {{"type", "string"}, {"format", "date-time"}, {"nullable", true}}},
              {"message", {{"type", "string"}, {"nullable", true}}}, {"output", {{"type", "object"}, {"nullable", true}}},
              {"finished_at", {{"type", "string"}, {"format", "date-time"}, {"nullable", true}}}}}}},
          {"Dashboard",
           {{"type", "object"},
            {"properties",
             {{"instance_id", {{"type", "integer"}}}, {"from", {{"type", "string"}, {"format", "date-time"}}},
              {"to", {{"type", "string"}, {"format", "date-time"}}}, {"step", {{"type", "integer"}, {"description", "bucket width, seconds"}}},
              {"tier", {{"type", "string"}, {"enum", {"raw", "1m", "1h"}}}},
              {"ts", {{"type", "array"}, {"items", {{"type", "integer"}}}, {"description", "bucket starts, unix seconds"}}},
              {"charts",
               {{"type", "array"},
                {"items",
                 {{"type", "object"},
                  {"properties",
                   {{"id", {{"type", "string"}, {"enum", {"cpu", "memory", "tps", "connections", "cache", "wal", "replication", "waits"}}}},
                    {"title", {{"type", "string"}}}, {"unit", {{"type", "string"}}}, {"stacked", {{"type", "boolean"}}},
                    {"collected", {{"type", "boolean"}, {"description", "false: the instance never sent this data (see note)"}}},
                    {"note", {{"type", "string"}, {"nullable", true}}},
                    {"series",
                     {{"type", "array"},
                      {"items",
                       {{"type", "object"},
                        {"properties",
                         {{"name", {{"type", "string"}}},
                          {"values", {{"type", "array"}, {"items", {{"type", "number"}, {"nullable", true}}},
                                      {"description", "aligned with ts"}}}}}}}}}}}}}}}}}}}}}}},
      {"security", json::array({{{"session", json::array()}}})},
      {"paths",
       {{"/healthz",
         {{"get",
           {{"summary", "liveness: the database answers and the fleet SQL API is installed"},
            {"security", json::array()},
            {"responses", {{"200", json_response("healthy", {{"type", "object"}})}, {"503", error_response("unavailable")}}}}}}},
        {"/api/login",
         {{"post",
           {{"summary", "log in with a PostgreSQL role and its password; sets the session cookie"},
            {"tags", {"session"}},
            {"security", json::array()},
            {"requestBody",
             {{"required", true},
              {"content",
               {{"application/json",
                 {{"schema",
                   {{"type", "object"},
                    {"required", {"user", "password"}},
                    {"properties", {{"user", {{"type", "string"}}}, {"password", {{"type", "string"}, {"format", "password"}}}}}}}}}}}}},
            {"responses",
             {{"200", json_response("logged in", {{"$ref", "#/components/schemas/Session"}})},
              {"400", error_response("malformed body")},
              {"401", error_response("wrong user or password")},
              {"403", error_response("superuser, or not a member of fleet_viewer")},
              {"415", error_response("body is not application/json")}}}}}}},
        {"/api/logout",
         {{"post", {{"summary", "end the session"}, {"tags", {"session"}},
                    {"responses", {{"204", {{"description", "logged out"}}}, {"401", error_response("no valid session")}}}}}}},
        {"/api/session",
         {{"get", {{"summary", "the current session"}, {"tags", {"session"}},
                   {"responses", secured_responses(json_response("session", {{"$ref", "#/components/schemas/Session"}}))}}}}},
        {"/api/openapi.json",
         {{"get", {{"summary", "this document"}, {"responses", secured_responses(json_response("OpenAPI 3 document", {{"type", "object"}}))}}}}},
        {"/api/instances",
         {{"get", {{"summary", "monitored instances visible to the user"}, {"tags", {"instances"}},
                   {"responses", secured_responses(json_response("instances", {{"type", "array"}, {"items", {{"$ref", "#/components/schemas/Instance"}}}}))}}}}},
        {"/api/instances/{id}/metrics",
         inst("the series of one instance", json::array(), json_response("series", {{"type", "array"}, {"items", {{"type", "object"}}}}))},
        {"/api/instances/{id}/series",
         inst("samples of one metric per label set",
              json::array({param("metric", "query", true, {{"type", "string"}}, "metric name, e.g. host.cpu.utilization"), from, to,
                           param("rate", "query", false, {{"type", "string"}, {"enum", {"0", "1", "true", "false"}}},
                                 "per-second rate of a counter")}),
              json_response("columnar series", {{"type", "object"}}))},
        {"/api/instances/{id}/statements",
         inst("top statements (fleet.top_statements)",
              json::array({from, to,
                           param("order_by", "query", false,
                                 {{"type", "string"}, {"enum", {"total_time", "calls", "mean_time", "rows", "io", "io_time"}}}, "order"),
                           param("limit", "query", false, {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}}, "rows (default 20)")}),
              json_response("statements", {{"type", "array"}, {"items", {{"type", "object"}}}}))},
        {"/api/instances/{id}/wait_profile",
         inst("average active sessions per wait event (fleet.wait_profile)", json::array({from, to}),
              json_response("buckets", {{"type", "array"}, {"items", {{"type", "object"}}}}))},
        {"/api/instances/{id}/settings",
         inst("current settings (fleet.setting: name, setting, unit, source, pending_restart, updated_at)", json::array(),
              json_response("settings by name", {{"type", "array"}, {"items", {{"type", "object"}}}}))},
        {"/api/instances/{id}/setting_changes",
         inst("setting history (fleet.setting_change), newest first, at most 1000",
              json::array({param("from", "query", false, {{"type", "string"}, {"format", "date-time"}}, "start (default: to - 31 days)"), to}),
              json_response("changes: name, old_setting, new_setting, changed_at", {{"type", "array"}, {"items", {{"type", "object"}}}}))},
        {"/api/instances/{id}/rollup",
         inst("bucketed samples of one metric per label set (fleet.rollup: raw, 1-minute or 1-hour tier by step)",
              json::array({param("metric", "query", true, {{"type", "string"}}, "metric name"), from, to,
                           param("step", "query", false, {{"type", "integer"}, {"minimum", 1}, {"maximum", 86400}},
                                 "bucket width in seconds (default: about 300 buckets over the range, at least 10 s)")}),
              json_response("{metric, step, tier, series: [{labels, ts, count, min, max, avg, last, rate}]}", {{"type", "object"}}))},
        {"/api/instances/{id}/activity",
         inst("the latest activity interval: groups (fleet.activity, average sessions = observations / samples_taken), "
              "blocking edges (fleet.blocking) and the longest transaction ages (fleet.activity_interval)",
              json::array(),
              json_response("{ts, samples_taken, longest_transaction_seconds, longest_idle_in_transaction_seconds, groups, blocking}",
                            {{"type", "object"}}))},
        {"/api/instances/{id}/dashboard",
         inst("the instance dashboard in one document (fleet.instance_dashboard): CPU, memory, transactions per second, "
              "connections by state, cache hit ratio, WAL rate, replication lag, wait events (stacked); counters as rates; "
              "raw samples for buckets below 1 minute, fleet.rollup tiers above",
              json::array({from, to,
                           param("step", "query", false, {{"type", "integer"}, {"minimum", 1}, {"maximum", 86400}},
                                 "bucket width in seconds (default: about 200 buckets; rounded up to whole minutes from 60 s, "
                                 "whole hours from 3600 s; at most 1000 buckets)")}),
              json_response("dashboard", {{"$ref", "#/components/schemas/Dashboard"}}))},
        {"/api/instances/{id}/tables",
         inst("tables and indexes: the latest pg.table.* / pg.index.* values the agent sent in the range "
              "(fleet.instance_tables, fleet.instance_indexes)",
              json::array({param("from", "query", false, {{"type", "string"}, {"format", "date-time"}}, "start (default: to - 15 min)"), to}),
              json_response("{from, to, tables: [{datname, schema_name, table_name, size_bytes, n_live_tup, n_dead_tup, dead_ratio, "
                            "seq_scan, idx_scan, idx_scan_share, vacuum_age_seconds, relfrozenxid_age, sampled_at}], indexes: "
                            "[{datname, schema_name, table_name, index_name, size_bytes, idx_scan, invalid, sampled_at}]}",
                            {{"type", "object"}}))},
        {"/api/instances/{id}/commands", commands},
        {"/api/sparklines",
         {{"get",
           {{"summary", "CPU (percent busy) and transactions per second of every visible instance, about 60 buckets over the "
                        "range (fleet.instance_sparklines; at most 500 instances)"},
            {"tags", {"instances"}},
            {"parameters",
             json::array({from, to,
                          param("ids", "query", false, {{"type", "string"}, {"pattern", "^[0-9]+(,[0-9]+)*$"}},
                                "only these instances (comma-separated ids, at most 500)")})},
            {"responses",
             {{"200", json_response("{from, to, step, tier, ts: [...], instances: [{instance_id, cpu: [...], tps: [...]}]}",
                                    {{"type", "object"}})},
              {"400", error_response("invalid parameter")},
              {"401", error_response("no valid session")}}}}}}},
        {"/api/users",
         {{"post",
           {{"summary", "create a login role (admin only); the generated password is returned once"},
            {"tags", {"admin"}},
            {"requestBody",
             {{"required", true},
              {"content",
               {{"application/json",
                 {{"schema",
                   {{"type", "object"},
                    {"required", {"name", "role"}},
                    {"properties",
                     {{"name", {{"type", "string"}, {"pattern", "^[a-z][a-z0-9_]{0,62}$"}}},
                      {"role", {{"type", "string"}, {"enum", {"viewer", "operator", "admin"}}}},
                      {"namespace", {{"type", "string"}}}}}}}}}}}}},
            {"responses",
             {{"201", json_response("created", {{"type", "object"}})},
              {"400", error_response("invalid input")},
              {"401", error_response("no valid session")},
              {"403", error_response("not an admin")},
              {"409", error_response("the role exists")}}}}}}},
        {"/metrics",
         {{"get",
           {{"summary", "Prometheus metrics of the gateway and the ingest workers (operator or admin session, or the "
                        "bearer token of --metrics-token)"},
            {"security", json::array({{{"session", json::array()}}, {{"metricsToken", json::array()}}})},
            {"responses",
             {{"200", {{"description", "text exposition format"}, {"content", {{"text/plain", {{"schema", {{"type", "string"}}}}}}}}},
              {"401", error_response("no valid session, or a wrong bearer token")},
              {"403", error_response("viewer")}}}}}}}}}};
  return doc;
}

}  // namespace

const std::string &openapi_json() {
  static const std::string text = build().dump();
  return text;
}

}  // namespace pgfleet::gateway

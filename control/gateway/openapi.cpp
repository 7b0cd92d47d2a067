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
  json doc = {
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "pgfleet gateway API"},
        {"version", "0.1.0"},
        {"description",
         "Every route except /healthz and POST /api/login needs the session cookie that POST /api/login sets. "
         "Requests run as the logged-in PostgreSQL role, so row-level security limits every answer to the "
         "namespaces that role may see."}}},
      {"components",
       {{"securitySchemes", {{"session", {{"type", "apiKey"}, {"in", "cookie"}, {"name", "pgfleet_session"}}}}},
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
              {"status", {{"type", "string"}, {"enum", {"up", "stale"}}}}}}}}}}}},
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
           {{"summary", "Prometheus metrics of the gateway and the ingest workers (operator or admin)"},
            {"responses",
             {{"200", {{"description", "text exposition format"}, {"content", {{"text/plain", {{"schema", {{"type", "string"}}}}}}}}},
              {"401", error_response("no valid session")},
              {"403", error_response("viewer")}}}}}}}}}};
  return doc;
}

}  // namespace

const std::string &openapi_json() {
  static const std::string text = build().dump();
  return text;
}

}  // namespace pgfleet::gateway

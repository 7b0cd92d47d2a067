// http_util.h: small helpers shared by the gateway's handlers for JSON responses.
//
// Design: every error the gateway produces has the same shape, {"error":"...","detail":"..."}, with a
// short lower-case message clients may match on and a human-readable detail.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

namespace pgfleet::gateway {

// Sends body as an uncacheable JSON response with the given status.
inline void send_json(httplib::Response &res, int status, const std::string &body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body, "application/json");
}

// Sends {"error":error,"detail":detail} with the given status (detail omitted when empty).
inline void send_error(httplib::Response &res, int status, const std::string &error, const std::string &detail) {
  nlohmann::json body = {{"error", error}};
  if (!detail.empty()) body["detail"] = detail;
  send_json(res, status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace pgfleet::gateway

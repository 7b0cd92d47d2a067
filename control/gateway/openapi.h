// openapi.h: the OpenAPI 3 document of the gateway's HTTP API (served at /api/openapi.json).
#pragma once

#include <string>

namespace pgfleet::gateway {

// The document as JSON text (built once).
const std::string &openapi_json();

}  // namespace pgfleet::gateway

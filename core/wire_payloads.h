/*
 * core/wire_payloads.h — internal to core/wire*.cpp: validation and JSON rendering of the low-volume
 * payload kinds (statements, activity, inventory, events, command results).
 */
#pragma once

#include <string>

#include "core/wire.h"
#include "fleet.pb.h"

namespace pgfleet::wire {

/* True when s is text PostgreSQL accepts (well-formed UTF-8, no NUL). */
bool is_valid_text(std::string_view s);

DecodeStatus statements_to_json(const v1::StatementBatch &in, std::string &out);
DecodeStatus activity_to_json(const v1::ActivityBatch &in, std::string &out);
DecodeStatus inventory_to_json(const v1::Inventory &in, std::string &out);
DecodeStatus events_to_json(const v1::EventBatch &in, std::string &out);
DecodeStatus result_to_json(const v1::CommandResult &in, std::string &out);

} // namespace pgfleet::wire

// validate.h: pure parsing and validation of untrusted request input (no I/O, no database).
//
// Design: every value that comes from a URL is checked here before it reaches the database or the file
// system; the functions return std::nullopt (or false) instead of throwing, and the HTTP layer turns that
// into a 400 with a precise message. Kept free of httplib and libpq so it is unit-tested in isolation
// (validate_test.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pgfleet::gateway {

// A decimal instance id without sign or leading '+' (0 .. INT64_MAX), else nullopt.
std::optional<int64_t> parse_instance_id(const std::string &text);

// A comma-separated list of instance ids ("1,2,3"; each as parse_instance_id) with 1..max_count entries,
// as a PostgreSQL array literal ("{1,2,3}"), else nullopt.
std::optional<std::string> parse_id_list(const std::string &text, size_t max_count);

// True for a metric name: 1..128 characters from [A-Za-z0-9_.-], starting with a letter.
bool is_valid_metric(const std::string &text);

// Unix seconds for an ISO 8601 timestamp with an explicit zone, e.g. 2024-05-01T12:00:00Z,
// 2024-05-01T12:00:00.250+02:00 (seconds and fraction optional, 'T' or ' ' separator), else nullopt.
std::optional<double> parse_iso8601(const std::string &text);

// Formats unix seconds as an ISO 8601 UTC timestamp with milliseconds (2024-05-01T12:00:00.000Z).
std::string format_iso8601(double unix_seconds);

// "1"/"true" -> true, "0"/"false" -> false, anything else nullopt.
std::optional<bool> parse_flag(const std::string &text);

// The decoded URL path of a static file made relative to the UI directory ("/" and "/x/" name
// index.html), or nullopt when it could escape it or names a hidden file: any "." or ".." segment,
// a segment starting with '.', a backslash, a NUL or other control character.
std::optional<std::string> static_relative_path(const std::string &url_path);

// Replaces control characters and non-ASCII bytes by '?' and truncates to max_len, for log lines.
std::string sanitize_for_log(const std::string &text, size_t max_len = 512);

}  // namespace pgfleet::gateway

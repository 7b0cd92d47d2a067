// validate_test.cpp: unit test of validate.h (no framework: prints TAP-like lines, exit 1 on failure).
//
// Run with `make -C control/gateway check`. Covers the edge cases of each parser: bounds, overflow,
// malformed input, calendar validation and every path-traversal form the static file server rejects.
#include "validate.h"

#include <cmath>
#include <cstdio>

using namespace pgfleet::gateway;

static int failures = 0, checks = 0;

// Records one check and prints it.
static void check(bool ok, const char *what) {
  ++checks;
  if (!ok) ++failures;
  printf("%s %d - %s\n", ok ? "ok" : "not ok", checks, what);
}

// Runs every check; exit status 0 only when all passed.
int main() {
  check(parse_instance_id("0") == 0, "id 0");
  check(parse_instance_id("9223372036854775807") == INT64_MAX, "id max");
  check(!parse_instance_id("9223372036854775808"), "id overflow");
  check(!parse_instance_id("-1") && !parse_instance_id("+1") && !parse_instance_id("") &&
            !parse_instance_id("1a") && !parse_instance_id(" 1"),
        "id malformed");

  check(parse_id_list("1", 3) == std::string("{1}") && parse_id_list("1,20,3", 3) == std::string("{1,20,3}"), "id list");
  check(!parse_id_list("", 3) && !parse_id_list("1,", 3) && !parse_id_list(",1", 3) && !parse_id_list("1,,2", 3) &&
            !parse_id_list("1,2,3,4", 3) && !parse_id_list("1;2", 3) && !parse_id_list("1, 2", 3) &&
            !parse_id_list("1}", 3) && !parse_id_list("-1", 3),
        "id list rejected");

  check(is_valid_metric("host.cpu.utilization") && is_valid_metric("pg.database.xact_commit"), "metric ok");
  check(!is_valid_metric("") && !is_valid_metric(".x") && !is_valid_metric("a b") && !is_valid_metric("a;drop") &&
            !is_valid_metric(std::string(129, 'a')),
        "metric rejected");

  check(parse_iso8601("1970-01-01T00:00:00Z") == 0.0, "iso epoch");
  check(parse_iso8601("2024-05-01T12:00:00Z") == 1714564800.0, "iso utc");
  check(parse_iso8601("2024-05-01T14:00:00+02:00") == 1714564800.0, "iso offset");
  check(parse_iso8601("2024-05-01T07:00:00-0500") == 1714564800.0, "iso offset without colon");
  check(parse_iso8601("2024-05-01 12:00Z") == 1714564800.0, "iso space, no seconds");
  auto frac = parse_iso8601("2024-05-01T12:00:00.250Z");
  check(frac && std::fabs(*frac - 1714564800.25) < 1e-6, "iso fraction");
  check(parse_iso8601("2024-02-29T00:00:00Z").has_value() && !parse_iso8601("2023-02-29T00:00:00Z"), "iso leap");
  check(!parse_iso8601("2024-05-01T12:00:00") && !parse_iso8601("2024-13-01T00:00:00Z") &&
            !parse_iso8601("2024-04-31T00:00:00Z") && !parse_iso8601("2024-05-01T24:00:00Z") &&
            !parse_iso8601("2024-05-01T12:00:00.Z") && !parse_iso8601("2024-05-01T12:00:00Zjunk") &&
            !parse_iso8601("now") && !parse_iso8601("1714564800"),
        "iso rejected");
  check(format_iso8601(1714564800.25) == "2024-05-01T12:00:00.250Z", "iso format");
  check(parse_iso8601(format_iso8601(1714564800.999)) == 1714564800.999, "iso round trip");

  check(parse_flag("1") == true && parse_flag("false") == false && !parse_flag("yes"), "flag");

  check(static_relative_path("/") == std::string("index.html"), "path root");
  check(static_relative_path("/app.js") == std::string("app.js"), "path file");
  check(static_relative_path("/a//b/") == std::string("a/b/index.html"), "path dir");
  check(!static_relative_path("/../etc/passwd") && !static_relative_path("/a/../../x") &&
            !static_relative_path("/./x") && !static_relative_path("/.git/config") &&
            !static_relative_path("/a\\..\\b") && !static_relative_path(std::string("/a\0b", 4)) &&
            !static_relative_path("relative"),
        "path traversal rejected");

  check(sanitize_for_log("a\nb\x1b") == "a?b?", "log sanitize");

  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}

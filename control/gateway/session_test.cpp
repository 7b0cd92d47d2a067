// session_test.cpp: unit test of session.h (no framework: TAP-like lines, exit 1 on failure).
// Run with `make -C control/gateway check` (after validate_test).
#include "session.h"

#include <cstdio>
#include <set>
#include <thread>

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
  check(cookie_value("a=1; pgfleet_session=abc; b=2", "pgfleet_session") == "abc", "cookie among others");
  check(cookie_value("xpgfleet_session=abc", "pgfleet_session").empty(), "cookie name must match exactly");
  check(cookie_value("pgfleet_session_x=1; pgfleet_session=2", "pgfleet_session") == "2", "cookie name prefix");
  check(cookie_value("", "pgfleet_session").empty(), "no cookie header");

  check(bearer_token("Bearer abc") == "abc" && bearer_token("bearer  abc ") == "abc", "bearer token");
  check(bearer_token("Basic abc").empty() && bearer_token("Bearer").empty() && bearer_token("Bearer ").empty() &&
            bearer_token("").empty(),
        "no bearer token");
  check(token_equals("s3cret-token", "s3cret-token"), "equal tokens");
  check(!token_equals("s3cret-tokeN", "s3cret-token") && !token_equals("s3cret", "s3cret-token") &&
            !token_equals("", "s3cret-token") && !token_equals("", ""),
        "different (or empty) tokens");

  SessionStore store{std::chrono::seconds(1)};
  Session a = store.create("alice", Level::Viewer);
  Session b = store.create("bob", Level::Admin);
  bool hex = a.id.size() == 64 && a.id.find_first_not_of("0123456789abcdef") == std::string::npos;
  check(hex, "a session id is 64 hex characters (256 bits)");
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(to_hex(random_bytes(32)));
  check(ids.size() == 1000, "1000 random ids are distinct");
  auto fa = store.find(a.id);
  auto fb = store.find(b.id);
  check(fa && fa->user == "alice" && fa->level == Level::Viewer, "find returns the session");
  check(fb && fb->user == "bob" && fb->level == Level::Admin, "find tells sessions apart");
  std::string wrong = a.id;
  wrong[63] = wrong[63] == '0' ? '1' : '0';
  check(!store.find(wrong), "one differing character is refused");
  check(!store.find(a.id.substr(0, 63)) && !store.find(a.id + "0") && !store.find(""), "wrong lengths are refused");
  store.remove(b.id);
  check(!store.find(b.id) && store.find(a.id), "remove ends only that session");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  check(!store.find(a.id) && store.size() == 0, "a session expires after its ttl");

  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}

// session.h: server-side login sessions of the gateway.
//
// Design: a session is a random 256-bit id (32 bytes from the OS CSPRNG, getrandom()), sent to the
// browser as a hex cookie (HttpOnly, SameSite=Strict, Path=/) and kept only in this process's memory:
// a gateway restart logs everybody out. A session holds the PostgreSQL role that logged in and its
// fleet level (viewer < operator < admin), and expires a fixed time after login. Lookups compare the
// presented id with every stored id in constant time (CRYPTO_memcmp, no early exit, no hash table keyed
// by the secret), so response times tell nothing about stored ids; the store is capped (kMaxSessions),
// the oldest session is dropped when it is full.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace pgfleet::gateway {

// What a role may do through the gateway (from its membership in fleet_viewer/operator/admin).
enum class Level { Viewer = 1, Operator = 2, Admin = 3 };

// "viewer", "operator" or "admin".
const char *level_name(Level level);

// A logged-in user.
struct Session {
  std::string id;    // 64 hex characters
  std::string user;  // the PostgreSQL role
  Level level = Level::Viewer;
  std::chrono::system_clock::time_point expires;
};

// The set of live sessions; thread-safe.
class SessionStore {
 public:
  static constexpr size_t kMaxSessions = 10000;
  explicit SessionStore(std::chrono::seconds ttl) : ttl_(ttl) {}

  // Creates a session for user; throws std::runtime_error when no random bytes are available.
  Session create(const std::string &user, Level level);
  // The live session with this id, or nullopt (unknown, malformed or expired; expired ones are removed).
  std::optional<Session> find(const std::string &id);
  // Ends the session with this id (no-op when unknown).
  void remove(const std::string &id);
  // Number of live sessions (for /metrics).
  size_t size();
  std::chrono::seconds ttl() const { return ttl_; }

 private:
  // Index of the session whose id equals id, compared in constant time against every entry; -1 if none.
  long index_of(const std::string &id) const;
  void purge_expired();  // caller holds mutex_

  const std::chrono::seconds ttl_;
  std::mutex mutex_;
  std::vector<Session> sessions_;
};

// The value of cookie name in a Cookie header ("a=1; b=2"), or "" when absent.
std::string cookie_value(const std::string &header, const std::string &name);

// The token of an "Authorization: Bearer <token>" header value (scheme case-insensitive), or "".
std::string bearer_token(const std::string &authorization);

// True when presented equals expected (non-empty); compares SHA-256 digests in constant time, so neither
// the content nor the length of expected leaks through the response time.
bool token_equals(const std::string &presented, const std::string &expected);

// n random bytes from the OS CSPRNG; throws std::runtime_error on failure.
std::string random_bytes(size_t n);

// Lower-case hex of bytes.
std::string to_hex(const std::string &bytes);

}  // namespace pgfleet::gateway

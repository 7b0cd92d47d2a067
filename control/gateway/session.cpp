// session.cpp: the in-memory session store (see session.h).
#include "session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/random.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <stdexcept>

namespace pgfleet::gateway {

const char *level_name(Level level) {
  switch (level) {
    case Level::Admin: return "admin";
    case Level::Operator: return "operator";
    case Level::Viewer: return "viewer";
  }
  return "viewer";
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(&out[got], n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("getrandom failed");
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

std::string to_hex(const std::string &bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string cookie_value(const std::string &header, const std::string &name) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    size_t start = header.find_first_not_of(' ', pos);
    if (start != std::string::npos && start < end) {
      std::string part = header.substr(start, end - start);
      size_t eq = part.find('=');
      if (eq != std::string::npos && part.compare(0, eq, name) == 0 && eq == name.size()) return part.substr(eq + 1);
    }
    pos = end + 1;
  }
  return "";
}

std::string bearer_token(const std::string &authorization) {
  static const char kScheme[] = "bearer ";
  if (authorization.size() <= sizeof kScheme - 1) return "";
  for (size_t i = 0; i < sizeof kScheme - 1; ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return "";
  size_t start = authorization.find_first_not_of(' ', sizeof kScheme - 1);
  if (start == std::string::npos) return "";
  size_t end = authorization.find_last_not_of(' ');
  return authorization.substr(start, end + 1 - start);
}

bool token_equals(const std::string &presented, const std::string &expected) {
  unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
  unsigned int la = 0, lb = 0;
  if (EVP_Digest(presented.data(), presented.size(), a, &la, EVP_sha256(), nullptr) != 1 ||
      EVP_Digest(expected.data(), expected.size(), b, &lb, EVP_sha256(), nullptr) != 1 || la != lb)
    return false;
  return CRYPTO_memcmp(a, b, la) == 0 && !expected.empty();
}

Session SessionStore::create(const std::string &user, Level level) {
  Session s;
  s.id = to_hex(random_bytes(32));
  s.user = user;
  s.level = level;
  s.expires = std::chrono::system_clock::now() + ttl_;
  std::lock_guard<std::mutex> lock(mutex_);
  purge_expired();
  if (sessions_.size() >= kMaxSessions) sessions_.erase(sessions_.begin());  // the oldest
  sessions_.push_back(s);
  return s;
}

long SessionStore::index_of(const std::string &id) const {
  long found = -1;
  if (id.size() != 64) return -1;  // the length is public: every id has 64 characters
  for (size_t i = 0; i < sessions_.size(); ++i) {
    // No early exit: every stored id is compared in full.
    bool equal = CRYPTO_memcmp(sessions_[i].id.data(), id.data(), 64) == 0;
    if (equal) found = static_cast<long>(i);
  }
  return found;
}

std::optional<Session> SessionStore::find(const std::string &id) {
  std::lock_guard<std::mutex> lock(mutex_);
  long i = index_of(id);
  if (i < 0) return std::nullopt;
  if (sessions_[i].expires <= std::chrono::system_clock::now()) {
    sessions_.erase(sessions_.begin() + i);
    return std::nullopt;
  }
  return sessions_[i];
}

void SessionStore::remove(const std::string &id) {
  std::lock_guard<std::mutex> lock(mutex_);
  long i = index_of(id);
  if (i >= 0) sessions_.erase(sessions_.begin() + i);
}

size_t SessionStore::size() {
  std::lock_guard<std::mutex> lock(mutex_);
  purge_expired();
  return sessions_.size();
}

void SessionStore::purge_expired() {
  auto now = std::chrono::system_clock::now();
  sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(), [&](const Session &s) { return s.expires <= now; }),
                  sessions_.end());
}

}  // namespace pgfleet::gateway

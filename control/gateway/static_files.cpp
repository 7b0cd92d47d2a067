// static_files.cpp: implementation of StaticFiles (see static_files.h).
#include "static_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "http_util.h"
#include "validate.h"

namespace pgfleet::gateway {

namespace {

constexpr off_t kMaxFileBytes = 64L * 1024 * 1024;  // the UI's files are far smaller

// realpath() as a std::string; empty when the path does not resolve.
std::string canonical(const std::string &path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return "";
  return buf;
}

}  // namespace

// Maps a file extension to its Content-Type.
const char *content_type_for(const std::string &path) {
  static const struct {
    const char *ext;
    const char *type;
  } table[] = {
      {".html", "text/html; charset=utf-8"},  {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},          {".map", "application/json"},
      {".svg", "image/svg+xml"},              {".png", "image/png"},
      {".ico", "image/x-icon"},               {".webp", "image/webp"},
      {".txt", "text/plain; charset=utf-8"},  {".woff2", "font/woff2"},
  };
  size_t slash = path.rfind('/');
  size_t dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "application/octet-stream";
  std::string ext = path.substr(dot);
  for (const auto &e : table)
    if (strcasecmp(ext.c_str(), e.ext) == 0) return e.type;
  return "application/octet-stream";
}

// Canonicalizes and checks the UI directory.
StaticFiles::StaticFiles(const std::string &dir) : root_(canonical(dir)) {
  struct stat st {};
  if (root_.empty() || stat(root_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("ui directory " + dir + " is not a readable directory");
}

// Resolves the request path below root_ and sends the regular file found there.
void StaticFiles::serve(const httplib::Request &req, httplib::Response &res) const {
  auto rel = static_relative_path(req.path);
  if (!rel) return send_error(res, 404, "not found", "invalid static file path");
  std::string path = canonical(root_ + "/" + *rel);
  if (path.empty() || path.compare(0, root_.size() + 1, root_ + "/") != 0)
    return send_error(res, 404, "not found", "no such file: " + *rel);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return send_error(res, 404, "not found", "no such file: " + *rel);
  if (st.st_size > kMaxFileBytes) return send_error(res, 500, "file too large", *rel);
  std::ifstream in(path, std::ios::binary);
  if (!in) return send_error(res, 500, "cannot read file", *rel + ": " + strerror(errno));
  std::string body(static_cast<size_t>(st.st_size), '\0');
  if (!in.read(&body[0], st.st_size) && st.st_size > 0)
    return send_error(res, 500, "cannot read file", *rel + ": " + strerror(errno));
  body.resize(static_cast<size_t>(in.gcount()));
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_content(body, content_type_for(path));
}

}  // namespace pgfleet::gateway

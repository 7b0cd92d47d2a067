// static_files.h: serves the web UI's files from one directory.
//
// Design: the URL path is first reduced to a safe relative path (validate.h: no "." / ".." / hidden
// segments), then resolved with realpath() and required to stay below the UI directory, which also
// stops symlinks pointing outside. Only regular files are served, with a content type chosen from a
// fixed extension table; files are read per request (the UI is small and this keeps edits visible).
#pragma once

#include <httplib.h>

#include <string>

namespace pgfleet::gateway {

class StaticFiles {
 public:
  // Resolves dir to an absolute canonical path; throws std::runtime_error unless it is a directory.
  explicit StaticFiles(const std::string &dir);

  // Answers a GET/HEAD for req.path with the file, or a 404 JSON error.
  void serve(const httplib::Request &req, httplib::Response &res) const;

  // The canonical UI directory.
  const std::string &root() const { return root_; }

 private:
  std::string root_;
};

// The Content-Type for a file name, by extension (application/octet-stream when unknown).
const char *content_type_for(const std::string &path);

}  // namespace pgfleet::gateway

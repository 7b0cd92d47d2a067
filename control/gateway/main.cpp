// main.cpp: pgfleet-gateway, the HTTP JSON API and static UI server in front of the central database.
//
//   pgfleet-gateway --listen HOST:PORT --db CONNINFO --ui-dir DIR [--port-file FILE] [--auth-db CONNINFO]
//                   [--session-ttl SECONDS] [--tls-cert FILE --tls-key FILE] [--secure-cookie]
//                   [--metrics-token FILE]
//
// Design: a separate process (a fault in network-facing code never touches the database server).
// cpp-httplib serves requests on its worker pool; handlers share a small libpq connection pool (db.h).
// Signals: SIGTERM/SIGINT are blocked in every thread and consumed by one thread with sigwait(), which
// stops the server; in-flight requests finish (bounded by the read/write timeouts) and main() returns 0.
// "--listen HOST:0" binds a free port; the chosen port is printed and, with --port-file, written
// atomically (temporary file + rename) so a test can wait for the file and then connect.
// Limits: request payload 1 MiB, request line + headers 8 KiB (CPPHTTPLIB_HEADER_MAX_LENGTH, compiled
// into Debian's libcpp-httplib), socket read/write timeouts 10 s, keep-alive 5 s and 100 requests,
// kWorkers request threads (further connections wait in the accept queue), statement_timeout 8 s,
// 4 database connections (requests wait up to 5 s for one). One access log line per request goes to
// stderr (never a body: passwords are not logged); request counts and latencies per route go to /metrics.
// TLS: with --tls-cert/--tls-key the gateway serves HTTPS (Debian builds cpp-httplib with OpenSSL) and
// marks the session cookie Secure; behind a TLS-terminating proxy, --secure-cookie does the latter.
// /metrics: an operator session, or with --metrics-token FILE also "Authorization: Bearer <token>" where
// the token is FILE's content (trimmed; at least 16 characters; the file must not be readable by group or
// others, like a .pgpass file), so a Prometheus scraper needs no login; read once at start.
// Identity: the pool (--db) logs in as a superuser (the stack's owner over the Unix socket, peer
// authentication) and every API request runs under SET LOCAL ROLE <logged-in role>; logins are
// verified by a separate connection as the user with its password (--auth-db, default --db).
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <thread>

#include "api.h"
#include "db.h"
#include "metrics.h"
#include "session.h"
#include "http_util.h"
#include "static_files.h"
#include "validate.h"

using namespace pgfleet::gateway;

namespace {

constexpr size_t kPoolSize = 4;
constexpr auto kAcquireTimeout = std::chrono::milliseconds(5000);
constexpr size_t kMaxPayload = 1024 * 1024;
constexpr time_t kSocketTimeoutSeconds = 10;
constexpr size_t kWorkers = 16;
constexpr long kDefaultSessionTtl = 8 * 3600;

struct Options {
  std::string host;
  int port = -1;
  std::string conninfo;
  std::string ui_dir;
  std::string port_file;
  std::string auth_conninfo;
  std::string tls_cert;
  std::string tls_key;
  long session_ttl = kDefaultSessionTtl;
  bool secure_cookie = false;
  std::string metrics_token_file;
};

// Prints the usage text to f.
void usage(FILE *f) {
  fprintf(f,
          "usage: pgfleet-gateway --listen HOST:PORT --db CONNINFO --ui-dir DIR [--port-file FILE]\n"
          "  --listen HOST:PORT  address to serve on; PORT 0 picks a free port ([::1]:PORT for IPv6)\n"
          "  --db CONNINFO       libpq connection string of the central database\n"
          "  --ui-dir DIR        directory with the web UI's static files\n"
          "  --port-file FILE    write the bound port number to FILE (atomically)\n"
          "  --auth-db CONNINFO  where logins are verified (default: --db); user and password are added\n"
          "  --session-ttl SECS  lifetime of a login session (default 28800)\n"
          "  --tls-cert FILE     serve HTTPS with this certificate chain (PEM; needs --tls-key)\n"
          "  --tls-key FILE      private key of --tls-cert (PEM)\n"
          "  --secure-cookie     mark the session cookie Secure (behind a TLS proxy; implied by --tls-cert)\n"
          "  --metrics-token FILE  also open GET /metrics to \"Authorization: Bearer TOKEN\" (Prometheus'\n"
          "                      bearer_token_file), TOKEN being FILE's content (at least 16 characters; the\n"
          "                      file must not be accessible by group or others); without it /metrics needs\n"
          "                      the session of an operator or admin\n");
}

// Splits HOST:PORT (host may be [v6]); false when malformed.
bool parse_listen(const std::string &text, std::string &host, int &port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    host = host.substr(1, host.size() - 2);
  }
  std::string p = text.substr(colon + 1);
  if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return false;
  port = std::stoi(p);
  return port <= 65535;
}

// Parses argv into opts ("--name value" or "--name=value"); prints an error and returns false on misuse.
bool parse_args(int argc, char **argv, Options &opts) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      exit(0);
    }
    if (arg == "--secure-cookie") {
      opts.secure_cookie = true;
      continue;
    }
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      fprintf(stderr, "pgfleet-gateway: %s needs a value\n", arg.c_str());
      return false;
    }
    if (arg == "--listen") {
      if (!parse_listen(value, opts.host, opts.port)) {
        fprintf(stderr, "pgfleet-gateway: invalid --listen '%s', expected HOST:PORT\n", value.c_str());
        return false;
      }
    } else if (arg == "--db") {
      opts.conninfo = value;
    } else if (arg == "--ui-dir") {
      opts.ui_dir = value;
    } else if (arg == "--port-file") {
      opts.port_file = value;
    } else if (arg == "--auth-db") {
      opts.auth_conninfo = value;
    } else if (arg == "--tls-cert") {
      opts.tls_cert = value;
    } else if (arg == "--tls-key") {
      opts.tls_key = value;
    } else if (arg == "--metrics-token") {
      opts.metrics_token_file = value;
    } else if (arg == "--session-ttl") {
      if (value.empty() || value.size() > 7 || value.find_first_not_of("0123456789") != std::string::npos ||
          std::stol(value) < 1) {
        fprintf(stderr, "pgfleet-gateway: --session-ttl must be 1..9999999 seconds\n");
        return false;
      }
      opts.session_ttl = std::stol(value);
    } else {
      fprintf(stderr, "pgfleet-gateway: unknown option %s\n", arg.c_str());
      return false;
    }
  }
  if (opts.port < 0 || opts.conninfo.empty() || opts.ui_dir.empty()) {
    fprintf(stderr, "pgfleet-gateway: --listen, --db and --ui-dir are required\n");
    return false;
  }
  if (opts.tls_cert.empty() != opts.tls_key.empty()) {
    fprintf(stderr, "pgfleet-gateway: --tls-cert and --tls-key go together\n");
    return false;
  }
  if (opts.auth_conninfo.empty()) opts.auth_conninfo = opts.conninfo;
  if (!opts.tls_cert.empty()) opts.secure_cookie = true;
  return true;
}

// Writes "PORT\n" to path via a temporary file in the same directory and rename(); false on error.
bool write_port_file(const std::string &path, int port) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE *f = fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    fprintf(stderr, "pgfleet-gateway: cannot write %s: %s\n", tmp.c_str(), strerror(errno));
    return false;
  }
  bool ok = fprintf(f, "%d\n", port) > 0;
  ok = (fflush(f) == 0) && ok;
  ok = (fsync(fileno(f)) == 0) && ok;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    fprintf(stderr, "pgfleet-gateway: cannot write %s: %s\n", path.c_str(), strerror(errno));
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

// Reads the --metrics-token file: its content without surrounding white space; prints why and returns
// false when the file is unusable (missing, not a regular file, accessible by group or others, shorter
// than 16 characters, or holding control characters).
bool read_metrics_token(const std::string &path, std::string &token) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    fprintf(stderr, "pgfleet-gateway: could not read --metrics-token file \"%s\": %s\n", sanitize_for_log(path).c_str(),
            strerror(errno));
    return false;
  }
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
    fprintf(stderr, "pgfleet-gateway: --metrics-token file \"%s\" must be a regular file without access for group or others\n"
                    "HINT: chmod 0600 it.\n", sanitize_for_log(path).c_str());
    return false;
  }
  FILE *f = fopen(path.c_str(), "r");
  if (f == nullptr) {
    fprintf(stderr, "pgfleet-gateway: could not read --metrics-token file \"%s\": %s\n", sanitize_for_log(path).c_str(),
            strerror(errno));
    return false;
  }
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  std::string text(buf, n);
  size_t start = text.find_first_not_of(" \t\r\n"), end = text.find_last_not_of(" \t\r\n");
  token = start == std::string::npos ? "" : text.substr(start, end + 1 - start);
  bool printable = !token.empty() && n < sizeof buf;
  for (unsigned char c : token) printable = printable && c > ' ' && c < 127;
  if (token.size() < 16 || !printable) {
    fprintf(stderr, "pgfleet-gateway: invalid --metrics-token file \"%s\"\nDETAIL: The token must be 16 to 4000 printable "
                    "characters without spaces.\n", sanitize_for_log(path).c_str());
    return false;
  }
  return true;
}

// Current UTC time as 2024-05-01T12:00:00.000Z for log lines.
std::string now_iso() {
  auto now = std::chrono::system_clock::now();
  return format_iso8601(std::chrono::duration<double>(now.time_since_epoch()).count());
}

// Start time of the request being handled by this worker thread (set by the pre-routing handler).
thread_local std::chrono::steady_clock::time_point request_start;
thread_local bool request_started = false;

// Writes one access log line to stderr: time, client, method, target, status, bytes, duration; and
// counts the request in the metrics under its route pattern.
void access_log(const httplib::Request &req, const httplib::Response &res, RequestMetrics &metrics) {
  double ms = -1;
  if (request_started) {
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - request_start).count();
    request_started = false;
  }
  std::string &route = current_route();
  metrics.observe(route.empty() ? "other" : route, req.method, res.status, ms < 0 ? 0 : ms / 1000);
  route.clear();
  fprintf(stderr, "%s %s %s %s %d %zu %.1fms\n", now_iso().c_str(), sanitize_for_log(req.remote_addr, 64).c_str(),
          sanitize_for_log(req.method, 16).c_str(), sanitize_for_log(req.target.empty() ? req.path : req.target).c_str(),
          res.status, res.body.size(), ms);
}

}  // namespace

// Parses options, binds, serves until SIGTERM/SIGINT; exit code 0 on a clean stop, 1 on errors, 2 on misuse.
int main(int argc, char **argv) {
  Options opts;
  if (!parse_args(argc, argv, opts)) {
    usage(stderr);
    return 2;
  }
  setvbuf(stderr, nullptr, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);

  // Block the stop signals before any thread exists, so that only the sigwait() thread receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    StaticFiles files(opts.ui_dir);
    ConnectionPool pool(opts.conninfo, kPoolSize, kAcquireTimeout);
    SessionStore sessions{std::chrono::seconds(opts.session_ttl)};
    RequestMetrics metrics;
    Gateway gw{pool, files, sessions, metrics, opts.auth_conninfo, opts.secure_cookie, ""};
    if (!opts.metrics_token_file.empty() && !read_metrics_token(opts.metrics_token_file, gw.metrics_token)) return 1;

    std::unique_ptr<httplib::Server> server_ptr;
    if (!opts.tls_cert.empty()) {
      auto ssl = std::make_unique<httplib::SSLServer>(opts.tls_cert.c_str(), opts.tls_key.c_str());
      if (!ssl->is_valid()) {
        fprintf(stderr, "pgfleet-gateway: cannot use --tls-cert %s / --tls-key %s (unreadable or not matching PEM files)\n",
                sanitize_for_log(opts.tls_cert).c_str(), sanitize_for_log(opts.tls_key).c_str());
        return 1;
      }
      server_ptr = std::move(ssl);
    } else {
      server_ptr = std::make_unique<httplib::Server>();
    }
    httplib::Server &server = *server_ptr;
    server.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
    server.set_keep_alive_max_count(100);
    server.set_payload_max_length(kMaxPayload);
    server.set_read_timeout(kSocketTimeoutSeconds, 0);
    server.set_write_timeout(kSocketTimeoutSeconds, 0);
    server.set_keep_alive_timeout(5);
    server.set_default_headers({
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"X-Frame-Options", "DENY"},
        {"Content-Security-Policy",
         "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
         "base-uri 'none'; frame-ancestors 'none'"},
    });
    server.set_pre_routing_handler([](const httplib::Request &, httplib::Response &) {
      request_start = std::chrono::steady_clock::now();
      request_started = true;
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server.set_error_handler([](const httplib::Request &, httplib::Response &res) {
      if (!res.body.empty()) return;  // our handlers always send a JSON body; this covers httplib's own errors
      switch (res.status) {
        case 404: return send_error(res, 404, "not found", "");
        case 413: return send_error(res, 413, "payload too large", "the limit is 1 MiB");
        case 414: return send_error(res, 414, "uri too long", "");
        default: return send_error(res, res.status, res.status >= 500 ? "internal error" : "bad request", "");
      }
    });
    server.set_logger([&metrics](const httplib::Request &req, const httplib::Response &res) {
      access_log(req, res, metrics);
    });
    // httplib's default sets SO_REUSEPORT, which lets a second gateway silently share a fixed port; keep
    // only SO_REUSEADDR (fast restart over TIME_WAIT) so a busy port is reported as an error.
    server.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    register_routes(server, gw);

    int port = opts.port;
    if (port == 0) {
      port = server.bind_to_any_port(opts.host);  // -1 on failure
    } else if (!server.bind_to_port(opts.host, port)) {
      port = -1;
    }
    if (port < 0) {
      fprintf(stderr, "pgfleet-gateway: cannot listen on %s:%d\n", opts.host.c_str(), opts.port);
      return 1;
    }
    if (!opts.port_file.empty() && !write_port_file(opts.port_file, port)) return 1;
    bool v6 = opts.host.find(':') != std::string::npos;
    printf("pgfleet-gateway: listening on %s://%s%s%s:%d\n", opts.tls_cert.empty() ? "http" : "https", v6 ? "[" : "",
           opts.host.c_str(), v6 ? "]" : "", port);
    fflush(stdout);

    std::atomic<bool> listen_done{false};
    std::thread signal_thread([&] {
      const struct timespec poll = {0, 200 * 1000 * 1000};
      int sig = -1;
      while (!listen_done && (sig = sigtimedwait(&stop_signals, nullptr, &poll)) < 0) {
      }
      if (sig < 0) return;  // the server ended on its own
      fprintf(stderr, "pgfleet-gateway: %s received, stopping\n", strsignal(sig));
      // Server::stop() only acts once the accept loop runs: wait for it (bounded), then stop once.
      for (int i = 0; i < 500 && !server.is_running() && !listen_done; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (!listen_done) server.stop();
    });

    bool ok = server.listen_after_bind();
    listen_done = true;
    signal_thread.join();
    if (!opts.port_file.empty()) unlink(opts.port_file.c_str());
    fprintf(stderr, "pgfleet-gateway: stopped\n");
    return ok ? 0 : 1;
  } catch (const std::exception &e) {
    fprintf(stderr, "pgfleet-gateway: %s\n", e.what());
    return 1;
  }
}

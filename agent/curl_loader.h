// libcurl, loaded at run time and only when it is needed: by the Patroni collector, when a [patroni] url is
// configured.
//
// Why. Linked at build time (-lcurl), libcurl.so.4 and the libraries only it needs (nghttp2, libssh2,
// librtmp, libpsl, brotli, zlib, ...) are mapped, relocated and partly paged in by every agent, and
// curl_global_init() initializes them, also in the many agents that monitor no Patroni: about 1 MB of the
// agent's resident set (bench/agent/run: 0.9 MB of pages of those libraries; libcurl 436 kB, libssh2 148,
// nghttp2 100, librtmp 92, zlib 80, brotli 56, libpsl 24). So the agent is not linked with libcurl:
// load_curl() dlopen()s "libcurl.so.4" (the SONAME of every libcurl since 7.16, whose ABI is stable;
// Debian package libcurl4), looks up the few functions the collector calls and calls
// curl_global_init(CURL_GLOBAL_DEFAULT) once.
//
// <curl/curl.h> is still included for the types and constants. No curl_* function is called directly:
// since the agent is not linked with libcurl, such a call would fail at link time, so every call goes
// through CurlApi.
//
// When. PatroniCollector::configure loads it as soon as the configuration has an active [patroni] table:
// at start (and in --check) that is before nats.c starts its threads, as libcurl asks of
// curl_global_init(). A url that first appears with SIGHUP loads it while nats.c's threads run; that is
// safe with libcurl >= 7.84 built thread-safe (CURL_VERSION_THREADSAFE, Debian's is) and with OpenSSL >=
// 1.1 (its initialization is thread-safe), and no other thread uses libcurl. Once loaded, libcurl stays
// loaded until the process ends (never dlclose()d: its global state and the TLS library's cannot be
// unloaded safely).
//
// Failure. When libcurl.so.4 is missing or lacks a function, load_curl() returns null and says why
// ("could not load libcurl: libcurl.so.4: cannot open shared object file: ..."); the Patroni collector
// reports it as the reason of its failure (patroni.up 0, collector.unavailable, "patroni: failed: ..." in
// --check) and tries again at its next poll; the other collectors do not need libcurl.
#pragma once

#include <curl/curl.h>

#include <string>

namespace pgfleet::agent {

// The file load_curl() opens.
constexpr const char *kCurlLibrary = "libcurl.so.4";

// The libcurl functions the agent uses, looked up with dlsym().
struct CurlApi {
    CURLcode (*global_init)(long flags) = nullptr;
    CURL *(*easy_init)() = nullptr;
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...) = nullptr;
    CURLcode (*easy_perform)(CURL *curl) = nullptr;
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...) = nullptr;
    void (*easy_cleanup)(CURL *curl) = nullptr;
    const char *(*easy_strerror)(CURLcode code) = nullptr;
    curl_version_info_data *(*version_info)(CURLversion age) = nullptr;
};

// Opens the shared library file (dlopen) and fills *api with its functions; false with *error when the
// file cannot be loaded or lacks one of them (the library is then closed again). Does not initialize
// libcurl and does not cache anything: load_curl() is what the agent calls; this is its first half, kept
// apart so that the unit tests can try other files.
bool open_curl_library(const char *file, CurlApi *api, std::string *error);

// libcurl, loaded and initialized (curl_global_init) at the first successful call and kept for the life
// of the process; null with *error when that is not possible (a later call tries again). Main thread only.
const CurlApi *load_curl(std::string *error);

}  // namespace pgfleet::agent

// libcurl loaded with dlopen() (see curl_loader.h for why and when).
//
// RTLD_NOW: a libcurl whose dependencies cannot be resolved fails here, with dlerror()'s message, and not
// in the middle of a poll. RTLD_LOCAL: libcurl's symbols do not become visible to the rest of the process
// (nothing else resolves against them). The lookup is done once per successful load; a failed attempt
// leaves nothing behind (dlclose), so that the next poll can try again, e.g. after the package was
// installed.
#include "agent/curl_loader.h"

#include "agent/log.h"

#include <dlfcn.h>

namespace pgfleet::agent {

namespace {

// Looks up one function of handle into *slot; false with *error (naming the file) when it is missing.
template <typename Function>
bool lookup(void *handle, const char *file, const char *name, Function *slot, std::string *error) {
    dlerror();
    void *symbol = dlsym(handle, name);
    if (symbol == nullptr) {
        const char *reason = dlerror();
        *error = std::string("could not load libcurl: ") + file + " has no function " + name +
                 (reason != nullptr ? std::string(" (") + reason + ")" : std::string());
        return false;
    }
    *slot = reinterpret_cast<Function>(symbol);
    return true;
}

}  // namespace

bool open_curl_library(const char *file, CurlApi *api, std::string *error) {
    void *handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char *reason = dlerror();
        *error = std::string("could not load libcurl: ") + (reason != nullptr ? reason : file);
        return false;
    }
    CurlApi found;
    if (!lookup(handle, file, "curl_global_init", &found.global_init, error) ||
        !lookup(handle, file, "curl_easy_init", &found.easy_init, error) ||
        !lookup(handle, file, "curl_easy_setopt", &found.easy_setopt, error) ||
        !lookup(handle, file, "curl_easy_perform", &found.easy_perform, error) ||
        !lookup(handle, file, "curl_easy_getinfo", &found.easy_getinfo, error) ||
        !lookup(handle, file, "curl_easy_cleanup", &found.easy_cleanup, error) ||
        !lookup(handle, file, "curl_easy_strerror", &found.easy_strerror, error) ||
        !lookup(handle, file, "curl_version_info", &found.version_info, error)) {
        dlclose(handle);
        return false;
    }
    *api = found;
    return true;
}

const CurlApi *load_curl(std::string *error) {
    static CurlApi api;
    static bool loaded = false;
    if (loaded) return &api;
    CurlApi opened;
    if (!open_curl_library(kCurlLibrary, &opened, error)) return nullptr;
    CURLcode code = opened.global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        // The handle stays open (a later attempt opens it again, which only counts a reference): libcurl
        // may have initialized part of its dependencies.
        *error = std::string("could not initialize libcurl: ") + opened.easy_strerror(code);
        return nullptr;
    }
    api = opened;
    loaded = true;
    const curl_version_info_data *info = api.version_info(CURLVERSION_NOW);
    log_message(LogLevel::debug, "loaded %s (libcurl %s, %s) for the patroni collector", kCurlLibrary,
                info != nullptr && info->version != nullptr ? info->version : "of unknown version",
                info != nullptr && info->ssl_version != nullptr ? info->ssl_version : "no TLS");
    return &api;
}

}  // namespace pgfleet::agent

// libcurl loaded at run time (agent/curl_loader.h): not loaded while no Patroni url is configured; loaded by
// PatroniClient::configure when one is; a missing library or function gives a clear message; and a GET
// through the dlsym()ed functions works (against a one-shot HTTP server on 127.0.0.1 in a thread).
#include "agent/curl_loader.h"
#include "agent/patroni.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <string>
#include <thread>

using pgfleet::agent::CurlApi;
using pgfleet::agent::kCurlLibrary;
using pgfleet::agent::load_curl;
using pgfleet::agent::open_curl_library;
using pgfleet::agent::PatroniClient;
using pgfleet::agent::PatroniConfig;

namespace {

// True when libcurl is mapped into this process (dlopen with RTLD_NOLOAD loads nothing).
bool curl_is_loaded() {
    void *handle = dlopen(kCurlLibrary, RTLD_NOW | RTLD_NOLOAD);
    if (handle == nullptr) return false;
    dlclose(handle);
    return true;
}

int64_t monotonic_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A listening socket on 127.0.0.1 (any free port) that answers one request with answer, in a thread.
class OneShotServer {
public:
    explicit OneShotServer(std::string answer) : answer_(std::move(answer)) {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in address = {};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0 || listen(fd_, 1) != 0 ||
            getsockname(fd_, reinterpret_cast<sockaddr *>(&address), &length) != 0)
            return;
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] {
            int client = accept(fd_, nullptr, nullptr);
            if (client < 0) return;
            char request[4096];
            std::string seen;
            while (seen.find("\r\n\r\n") == std::string::npos) {
                ssize_t n = read(client, request, sizeof request);
                if (n <= 0) break;
                seen.append(request, static_cast<size_t>(n));
            }
            request_ = seen;
            ssize_t ignored = write(client, answer_.data(), answer_.size());
            (void)ignored;
            close(client);
        });
    }
    ~OneShotServer() {
        if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
        if (thread_.joinable()) thread_.join();
        if (fd_ >= 0) close(fd_);
    }

    int port() const { return port_; }
    // The request as received (valid once the client has its answer).
    const std::string &request() const { return request_; }

private:
    std::string answer_;
    int fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::string request_;
};

// A Patroni collector configuration pointing at a local test server.
PatroniConfig local_config(int port) {
    PatroniConfig config;
    config.url = "http://127.0.0.1:" + std::to_string(port);
    config.enabled = true;
    config.interval_seconds = 10;
    return config;
}

}  // namespace

// First in this file: nothing before it loads libcurl (the agent binary is not linked with it).
TEST(CurlLoader, NotLoadedWithoutPatroniUrl) {
    if (curl_is_loaded()) GTEST_SKIP() << "libcurl was loaded by an earlier test";
    PatroniClient client(nullptr);
    PatroniConfig off;  // no [patroni] table
    client.configure(off);
    EXPECT_FALSE(curl_is_loaded());
    PatroniConfig disabled;
    disabled.url = "http://127.0.0.1:8008";
    disabled.enabled = false;
    client.configure(disabled);
    EXPECT_FALSE(curl_is_loaded());

    PatroniConfig on = disabled;
    on.enabled = true;
    on.interval_seconds = 10;
    client.configure(on);
    EXPECT_TRUE(curl_is_loaded());
}

TEST(CurlLoader, LoadsOnceWithEveryFunction) {
    std::string error;
    const CurlApi *api = load_curl(&error);
    ASSERT_NE(api, nullptr) << error;
    EXPECT_EQ(load_curl(&error), api);
    EXPECT_NE(api->easy_setopt, nullptr);
    EXPECT_NE(api->easy_getinfo, nullptr);
    const curl_version_info_data *info = api->version_info(CURLVERSION_NOW);
    ASSERT_NE(info, nullptr);
    EXPECT_TRUE(info->features & CURL_VERSION_THREADSAFE) << "libcurl " << info->version;
    CURL *curl = api->easy_init();
    ASSERT_NE(curl, nullptr);
    api->easy_cleanup(curl);
}

TEST(CurlLoader, MissingLibraryIsExplained) {
    CurlApi api;
    std::string error;
    EXPECT_FALSE(open_curl_library("libpgfleet-no-such-curl.so.4", &api, &error));
    EXPECT_EQ(error.rfind("could not load libcurl: libpgfleet-no-such-curl.so.4: cannot open shared object file", 0), 0u)
        << error;
    EXPECT_EQ(api.easy_init, nullptr);
}

TEST(CurlLoader, MissingFunctionIsExplained) {
    CurlApi api;
    std::string error;
    EXPECT_FALSE(open_curl_library("libz.so.1", &api, &error));  // a library that is not libcurl
    EXPECT_EQ(error.rfind("could not load libcurl: libz.so.1 has no function curl_global_init", 0), 0u) << error;
    EXPECT_EQ(api.global_init, nullptr);
}

TEST(CurlLoader, GetThroughLoadedLibcurl) {
    const std::string answer = "{\"state\":\"running\"}\n";
    OneShotServer server("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(answer.size()) + "\r\nConnection: close\r\n\r\n" + answer);
    ASSERT_GT(server.port(), 0);
    PatroniClient client(nullptr);
    PatroniConfig config = local_config(server.port());
    config.username = "monitor";
    config.password = "secret";
    client.configure(config);
    std::string body, error;
    ASSERT_TRUE(client.get("/patroni", monotonic_ms() + 5000, &body, &error)) << error;
    EXPECT_EQ(body, answer);
    EXPECT_NE(server.request().find("GET /patroni HTTP/1.1\r\n"), std::string::npos) << server.request();
    EXPECT_NE(server.request().find("User-Agent: pgfleet-agent/"), std::string::npos) << server.request();
    EXPECT_NE(server.request().find("Authorization: Basic bW9uaXRvcjpzZWNyZXQ="), std::string::npos)
        << server.request();
}

TEST(CurlLoader, HttpStatusOtherThan200Fails) {
    OneShotServer server("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    ASSERT_GT(server.port(), 0);
    PatroniClient client(nullptr);
    const PatroniConfig config = local_config(server.port());
    client.configure(config);
    std::string body, error;
    EXPECT_FALSE(client.get("/cluster", monotonic_ms() + 5000, &body, &error));
    EXPECT_EQ(error, "could not read " + config.url + "/cluster: HTTP status 503") << error;
}

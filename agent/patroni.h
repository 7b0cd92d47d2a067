// The Patroni collector: reads this node's Patroni REST API (GET /patroni and GET /cluster) over libcurl
// and turns it into patroni.* samples (only the series that changed, all of them every full refresh) and
// events (leader and member changes). The design and the list of series are at the top of patroni.cpp and
// in docs/interfaces.md.
//
// Three parts, so that the decisions can be tested without a Patroni:
//   - parse_patroni_status / parse_patroni_cluster: JSON (nlohmann-json) -> PatroniView, tolerant of
//     missing or mistyped fields (Patroni 3.0 to 3.3 differ: "master"/"primary", "lag" or not, ...);
//   - PatroniTracker: successive views -> samples and events (pure logic);
//   - PatroniClient: one bounded HTTP GET with libcurl (the only blocking part). libcurl is not linked in:
//     it is loaded with dlopen() when a url is configured (agent/curl_loader.h), so that an agent without
//     Patroni does not carry it.
// PatroniCollector ties them together for the agent's main loop. Everything runs on the main thread.
#pragma once

#include "agent/config.h"
#include "agent/objects.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgfleet::agent {

// The value of a numeric field Patroni did not send.
constexpr double kPatroniAbsent = std::numeric_limits<double>::quiet_NaN();

// One member of GET /cluster.
struct PatroniMember {
    std::string name;
    std::string role;   // leader, standby_leader, sync_standby, replica (quorum_standby in newer Patroni)
    std::string state;  // running, streaming, stopped, starting, crashed, ...
    std::string api_url;
    double timeline = kPatroniAbsent;
    double lag_bytes = kPatroniAbsent;  // absent for the leader and when Patroni says "unknown"
    bool pending_restart = false;
};

// What one poll read. have_status: GET /patroni answered; have_cluster: GET /cluster answered too.
struct PatroniView {
    bool have_status = false;
    std::string version;
    std::string scope;
    std::string name;   // this member's name when /patroni says it (Patroni >= 3.0.3), else ""
    std::string role;   // master or primary, replica, standby_leader, demoted, uninitialized
    std::string state;  // running, starting, stopped, restarting, crashed, ...
    double timeline = kPatroniAbsent;       // absent while PostgreSQL is not running
    double xlog_location = kPatroniAbsent;  // primary: current WAL position (bytes)
    double xlog_received = kPatroniAbsent;  // replica: received and replayed WAL positions (bytes)
    double xlog_replayed = kPatroniAbsent;
    double xlog_paused = kPatroniAbsent;    // replica: 1 when replay is paused, else 0
    bool pending_restart = false;
    bool paused = false;        // maintenance mode
    bool cluster_unlocked = false;
    bool sync_standby = false;

    bool have_cluster = false;
    std::vector<PatroniMember> members;

    std::string member;  // this node's member name as resolved by resolve_member ("" when unknown)

    void clear() { *this = PatroniView(); }
};

// Parses the body of GET /patroni into *view (have_status set); false with *error when it is not a JSON
// object with a string "state".
bool parse_patroni_status(std::string_view body, PatroniView *view, std::string *error);
// Parses the body of GET /cluster into view->members (have_cluster set); false with *error when it is not a
// JSON object with a "members" array.
bool parse_patroni_cluster(std::string_view body, PatroniView *view, std::string *error);
// Sets view->member: /patroni's own name, else configured_member, else the member of /cluster whose
// api_url is base_url (+ "/patroni"), else the one whose api_url has base_url's host and port; "" if none.
void resolve_member(const std::string &base_url, const std::string &configured_member, PatroniView *view);

// One sample to add to a metrics batch; labels member and scope are omitted when empty.
struct PatroniSample {
    const char *metric;
    const char *unit;
    std::string member;
    std::string scope;
    double value;
};

struct PatroniEvent {
    std::string kind;
    std::string severity;
    std::string message;
    std::vector<std::pair<std::string, std::string>> attributes;
};

// Successive views -> changed samples and events (see patroni.cpp).
class PatroniTracker {
public:
    explicit PatroniTracker(int64_t full_refresh_ms = 600000) : series_(full_refresh_ms) {}

    void set_full_refresh_ms(int64_t ms) { series_.set_full_refresh_ms(ms); }

    // One poll at now_ms (a view without have_status is a failed poll): appends the samples to send and
    // the events to *samples and *events.
    void observe(const PatroniView &view, int64_t now_ms, std::vector<PatroniSample> *samples,
                 std::vector<PatroniEvent> *events);

    // Forgets everything (another Patroni): the next poll is a baseline, every series is sent.
    void forget();

    size_t tracked() const { return series_.tracked(); }

private:
    void add(std::vector<PatroniSample> *samples, const char *metric, const char *unit, const std::string &member,
             const std::string &scope, double value);
    void compare_members(const PatroniView &view, std::vector<PatroniSample> *samples,
                         std::vector<PatroniEvent> *events);

    ObjectChangeTracker series_;
    std::string key_;
    struct MemberState {
        std::string role;
        std::string state;
    };
    std::map<std::string, MemberState> members_;  // as of the last poll that read /cluster
    std::string members_scope_;
    bool have_members_ = false;
    std::string leader_;  // the last leader seen ("" before one was seen)
};

struct CurlApi;  // agent/curl_loader.h

// One libcurl easy handle (kept between polls so the connection can be reused). libcurl is loaded by
// configure() when the configuration is active (at start: before nats.c's threads), else by the first get().
class PatroniClient {
public:
    explicit PatroniClient(std::function<bool()> should_abort) : should_abort_(std::move(should_abort)) {}
    ~PatroniClient();
    PatroniClient(const PatroniClient &) = delete;
    PatroniClient &operator=(const PatroniClient &) = delete;

    // Uses config's url, TLS and authentication from the next request on; loads libcurl when config is
    // active (a failure is only reported by the next get(), which tries again).
    void configure(const PatroniConfig &config);

    // GET <url><path>, connect and transfer bounded by deadline_ms (CLOCK_MONOTONIC, ms); the body of an
    // HTTP 200 answer in *body, else false with *error. Also false when should_abort() turns true.
    bool get(const char *path, int64_t deadline_ms, std::string *body, std::string *error);

    // Largest body accepted (a /cluster of hundreds of members is far smaller).
    static constexpr size_t kMaxBodyBytes = 1 << 20;

private:
    friend struct PatroniCurlCallbacks;  // libcurl's callbacks (patroni.cpp)

    std::function<bool()> should_abort_;
    PatroniConfig config_;
    const CurlApi *api_ = nullptr;  // null until libcurl is loaded
    void *curl_ = nullptr;          // CURL *
    std::string *body_ = nullptr;
    bool too_large_ = false;
    char error_buffer_[256] = {};
};

enum class PatroniPoll {
    ok,       // both endpoints answered
    partial,  // /patroni answered, /cluster did not (*error says why)
    failed,   // /patroni did not answer (*error says why)
};

class PatroniCollector {
public:
    explicit PatroniCollector(std::function<bool()> should_abort) : client_(std::move(should_abort)) {}

    // Applies a configuration; a different url forgets what was tracked.
    void configure(const PatroniConfig &config);

    // Polls within config.budget_ms() and appends what to send to *samples and *events.
    PatroniPoll collect(int64_t now_ms, std::vector<PatroniSample> *samples, std::vector<PatroniEvent> *events,
                        std::string *error);

    // --check: one poll; *summary describes this node and its cluster. False with *error on failure.
    bool check(std::string *summary, std::string *error);

    size_t tracked() const { return tracker_.tracked(); }

private:
    PatroniPoll poll(std::string *error);

    PatroniConfig config_;
    PatroniClient client_;
    PatroniTracker tracker_;
    PatroniView view_;
    std::string body_;
    std::string last_member_;
};

}  // namespace pgfleet::agent

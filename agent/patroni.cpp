// The Patroni collector (see patroni.h for its parts).
//
// What it reads. Every [patroni] interval_seconds the agent asks this node's Patroni REST API (the url of
// the [patroni] table, normally http://127.0.0.1:8008) two things, in this order:
//   GET /patroni  this node: state and role of its PostgreSQL, timeline, WAL positions, pending restart,
//                 maintenance mode (pause), cluster lock; scope (the cluster's name) and Patroni's version;
//   GET /cluster  every member as this node's Patroni sees the DCS: role, state, timeline, lag in bytes,
//                 pending restart.
// Nothing else: no write (POST/PATCH) is ever sent, and the agent needs no DCS client.
//
// Bounded. One poll (both requests) has a budget of min(timeout_seconds, interval_seconds); each request
// gets CURLOPT_CONNECTTIMEOUT_MS and CURLOPT_TIMEOUT_MS equal to what is left of that budget, so a poll
// never takes longer than the budget, whatever Patroni does (a Patroni that accepts and never answers, a
// DCS that hangs /cluster). libcurl calls the progress callback at least once a second, which aborts the
// transfer on SIGTERM, so the agent still stops within about a second. CURLOPT_NOSIGNAL (nats.c and libcurl
// share the process with threads), no redirects, http and https only, no proxy (Patroni is local; an
// http_proxy in the environment must not capture it), bodies above 1 MiB refused. The easy handle is kept
// between polls so the connection can be reused. TLS: ca_file (CURLOPT_CAINFO), cert_file/key_file (a
// client certificate, when Patroni's restapi asks for one), username/password (basic authentication).
//
// What it sends, as "metrics" envelopes of their own (kind gauge; labels member and scope, scope being the
// Patroni cluster's name; docs/interfaces.md has the table):
//   patroni.up                                  1 when GET /patroni answered, 0 when not (labels {})
//   patroni.primary, .replica, .standby_leader, .sync_standby, .postgres_running, .timeline,
//   patroni.xlog.location, .xlog.received_location, .xlog.replayed_location (bytes), .xlog.paused,
//   patroni.pending_restart, .paused (maintenance mode), .cluster_unlocked        this node, from /patroni
//   patroni.member.is_leader, .is_standby_leader, .is_replica, .is_sync_standby, .running, .timeline,
//   patroni.member.lag_bytes, .pending_restart                  every member, from /cluster
//   patroni.cluster.members                                     number of members (label scope)
// Only what changed: each series is compared with the value last sent (ObjectChangeTracker, the objects
// collector's rule, per series) and sent when it differs, and every series at least every
// full_refresh_seconds. A poll where nothing changed sends nothing. A member that left the cluster gets one
// last sample of 0 for its role flags and running, so that no stale "is_leader = 1" remains the last value.
//
// Events (the events payload): the first poll of a boot is a baseline; afterwards
//   patroni.leader_changed  (warning) the member holding the leader role is another one than the last
//                           leader seen: failover or switchover (attributes scope, leader, previous_leader);
//   patroni.member_changed  (info; warning when the member is not running or left) a member's role or
//                           state changed, a member joined or left (attributes scope, member, role, state,
//                           previous_role, previous_state; empty for a member that joined or left).
// A poll that finds no leader (between demotion and promotion) sends no leader event; the next leader is
// compared with the last one seen.
//
// Not available. When GET /patroni fails (refused, timeout, TLS, HTTP status other than 200, not JSON) the
// poll sends patroni.up = 0 (once: changed-only) and the agent counts it (agent.patroni.errors and
// agent.errors), logs one line when the outage starts and one when it ends, and sends the events
// collector.unavailable / collector.available (collector patroni). When only /cluster fails, this node's
// series are still sent, and the poll counts as failed all the same (the reason names /cluster). The other
// collectors do not depend on Patroni and go on.
//
// Which member is this node. Patroni 3.0.2's /patroni does not name its member (newer versions do). The
// name is taken from /patroni when present, else from [patroni] member, else from the /cluster member
// whose api_url is the configured url (with /patroni), else the one whose api_url has the same host and
// port. Without a name this node's series carry only the scope label.
//
// libcurl. The agent is not linked with it: every libcurl call goes through the CurlApi that
// agent/curl_loader.cpp fills with dlopen()/dlsym() when a url is configured (PatroniClient::configure,
// hence at start before nats.c's threads), so that agents without Patroni do not load it. When it cannot
// be loaded, each poll fails with the loader's message and tries again.
#include "agent/patroni.h"

#include "agent/agent.h"
#include "agent/curl_loader.h"

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>

namespace pgfleet::agent {

namespace {

using nlohmann::json;

int64_t monotonic_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A numeric field of object, or kPatroniAbsent when missing or not a number ("lag": "unknown").
double number_or_absent(const json &object, const char *key) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_number()) return kPatroniAbsent;
    return it->get<double>();
}

std::string string_or_empty(const json &object, const char *key) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_string()) return "";
    return it->get<std::string>();
}

// True only for a JSON true (Patroni omits these flags when false).
bool is_true(const json &object, const char *key) {
    auto it = object.find(key);
    return it != object.end() && it->is_boolean() && it->get<bool>();
}

double flag(bool value) { return value ? 1.0 : 0.0; }

// A member state in which PostgreSQL runs (newer Patroni says "streaming" for a replica that streams).
bool is_running_state(const std::string &state) {
    return state == "running" || state == "streaming" || state == "in archive recovery";
}

bool is_replica_role(const std::string &role) {
    return role == "replica" || role == "sync_standby" || role == "quorum_standby";
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}

// "host:port" of an http(s) url, lower case, the port defaulted from the scheme; "" when malformed.
std::string authority_of(const std::string &url) {
    size_t begin = url.find("://");
    if (begin == std::string::npos) return "";
    std::string scheme = lower(url.substr(0, begin));
    begin += 3;
    size_t end = url.find('/', begin);
    std::string authority = lower(url.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    size_t at = authority.rfind('@');
    if (at != std::string::npos) authority.erase(0, at + 1);
    size_t bracket = authority.rfind(']');
    size_t colon = authority.rfind(':');
    if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket))
        authority += scheme == "https" ? ":443" : ":80";
    return authority;
}

// An api_url without its trailing "/patroni" and "/", lower case.
std::string api_base(const std::string &api_url) {
    std::string base = lower(api_url);
    while (!base.empty() && base.back() == '/') base.pop_back();
    const std::string suffix = "/patroni";
    if (base.size() >= suffix.size() && base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0)
        base.resize(base.size() - suffix.size());
    return base;
}

std::string or_none(const std::string &text) { return text.empty() ? "(none)" : text; }

}  // namespace

// --- parsing --------------------------------------------------------------------------------------------

bool parse_patroni_status(std::string_view body, PatroniView *view, std::string *error) {
    json doc = json::parse(body.begin(), body.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        *error = "the answer is not a JSON object";
        return false;
    }
    view->state = string_or_empty(doc, "state");
    if (view->state.empty()) {
        *error = "the answer has no \"state\"";
        return false;
    }
    view->role = string_or_empty(doc, "role");
    view->timeline = number_or_absent(doc, "timeline");
    auto xlog = doc.find("xlog");
    if (xlog != doc.end() && xlog->is_object()) {
        view->xlog_location = number_or_absent(*xlog, "location");
        view->xlog_received = number_or_absent(*xlog, "received_location");
        view->xlog_replayed = number_or_absent(*xlog, "replayed_location");
        auto paused = xlog->find("paused");
        if (paused != xlog->end() && paused->is_boolean()) view->xlog_paused = flag(paused->get<bool>());
    }
    view->pending_restart = is_true(doc, "pending_restart");
    view->paused = is_true(doc, "pause");
    view->cluster_unlocked = is_true(doc, "cluster_unlocked");
    view->sync_standby = is_true(doc, "sync_standby");
    auto patroni = doc.find("patroni");
    if (patroni != doc.end() && patroni->is_object()) {
        view->version = string_or_empty(*patroni, "version");
        view->scope = string_or_empty(*patroni, "scope");
        view->name = string_or_empty(*patroni, "name");
    }
    view->have_status = true;
    return true;
}

bool parse_patroni_cluster(std::string_view body, PatroniView *view, std::string *error) {
    json doc = json::parse(body.begin(), body.end(), nullptr, false);
    auto members = doc.is_object() ? doc.find("members") : doc.end();
    if (doc.is_discarded() || !doc.is_object() || members == doc.end() || !members->is_array()) {
        *error = "the answer is not a JSON object with a \"members\" array";
        return false;
    }
    view->members.clear();
    for (const json &entry : *members) {
        if (!entry.is_object()) continue;
        PatroniMember member;
        member.name = string_or_empty(entry, "name");
        if (member.name.empty()) continue;
        member.role = string_or_empty(entry, "role");
        member.state = string_or_empty(entry, "state");
        member.api_url = string_or_empty(entry, "api_url");
        member.timeline = number_or_absent(entry, "timeline");
        member.lag_bytes = number_or_absent(entry, "lag");
        member.pending_restart = is_true(entry, "pending_restart");
        view->members.push_back(std::move(member));
    }
    view->have_cluster = true;
    return true;
}

void resolve_member(const std::string &base_url, const std::string &configured_member, PatroniView *view) {
    view->member.clear();
    if (!view->name.empty()) {
        view->member = view->name;
        return;
    }
    if (!configured_member.empty()) {
        view->member = configured_member;
        return;
    }
    const std::string base = api_base(base_url);
    for (const PatroniMember &member : view->members) {
        if (!member.api_url.empty() && api_base(member.api_url) == base) {
            view->member = member.name;
            return;
        }
    }
    const std::string authority = authority_of(base_url);
    const PatroniMember *found = nullptr;
    int matches = 0;
    for (const PatroniMember &member : view->members) {
        if (!authority.empty() && authority_of(member.api_url) == authority) {
            found = &member;
            matches++;
        }
    }
    if (matches == 1) view->member = found->name;
}

// --- tracking -------------------------------------------------------------------------------------------

void PatroniTracker::add(std::vector<PatroniSample> *samples, const char *metric, const char *unit,
                         const std::string &member, const std::string &scope, double value) {
    if (std::isnan(value)) return;
    key_.assign(metric).append(1, '\x1f').append(scope).append(1, '\x1f').append(member);
    if (series_.should_send(key_, &value, 1)) samples->push_back({metric, unit, member, scope, value});
}

void PatroniTracker::observe(const PatroniView &view, int64_t now_ms, std::vector<PatroniSample> *samples,
                             std::vector<PatroniEvent> *events) {
    static const std::string kNone;
    series_.begin(now_ms);
    add(samples, "patroni.up", "", kNone, kNone, flag(view.have_status));
    if (view.have_status) {
        const std::string &member = view.member;
        const std::string &scope = view.scope;
        add(samples, "patroni.primary", "", member, scope, flag(view.role == "master" || view.role == "primary"));
        add(samples, "patroni.replica", "", member, scope, flag(view.role == "replica"));
        add(samples, "patroni.standby_leader", "", member, scope, flag(view.role == "standby_leader"));
        add(samples, "patroni.sync_standby", "", member, scope, flag(view.sync_standby));
        add(samples, "patroni.postgres_running", "", member, scope, flag(view.state == "running"));
        add(samples, "patroni.timeline", "", member, scope, view.timeline);
        add(samples, "patroni.xlog.location", "bytes", member, scope, view.xlog_location);
        add(samples, "patroni.xlog.received_location", "bytes", member, scope, view.xlog_received);
        add(samples, "patroni.xlog.replayed_location", "bytes", member, scope, view.xlog_replayed);
        add(samples, "patroni.xlog.paused", "", member, scope, view.xlog_paused);
        add(samples, "patroni.pending_restart", "", member, scope, flag(view.pending_restart));
        add(samples, "patroni.paused", "", member, scope, flag(view.paused));
        add(samples, "patroni.cluster_unlocked", "", member, scope, flag(view.cluster_unlocked));
    }
    if (view.have_cluster) {
        const std::string &scope = view.scope;
        add(samples, "patroni.cluster.members", "", kNone, scope, static_cast<double>(view.members.size()));
        for (const PatroniMember &m : view.members) {
            add(samples, "patroni.member.is_leader", "", m.name, scope, flag(m.role == "leader"));
            add(samples, "patroni.member.is_standby_leader", "", m.name, scope, flag(m.role == "standby_leader"));
            add(samples, "patroni.member.is_replica", "", m.name, scope, flag(is_replica_role(m.role)));
            add(samples, "patroni.member.is_sync_standby", "", m.name, scope, flag(m.role == "sync_standby"));
            add(samples, "patroni.member.running", "", m.name, scope, flag(is_running_state(m.state)));
            add(samples, "patroni.member.timeline", "", m.name, scope, m.timeline);
            add(samples, "patroni.member.lag_bytes", "bytes", m.name, scope, m.lag_bytes);
            add(samples, "patroni.member.pending_restart", "", m.name, scope, flag(m.pending_restart));
        }
        compare_members(view, samples, events);
    }
    series_.end();
}

void PatroniTracker::compare_members(const PatroniView &view, std::vector<PatroniSample> *samples,
                                     std::vector<PatroniEvent> *events) {
    const std::string &scope = view.scope;
    std::string leader;
    for (const PatroniMember &m : view.members)
        if (m.role == "leader" || m.role == "standby_leader") leader = m.name;
    const std::string cluster = "Patroni cluster \"" + scope + "\"";
    if (have_members_ && members_scope_ == scope) {
        for (const PatroniMember &m : view.members) {
            auto before = members_.find(m.name);
            const bool running = is_running_state(m.state);
            if (before == members_.end()) {
                events->push_back({"patroni.member_changed", running ? "info" : "warning",
                                   "member " + m.name + " joined " + cluster + " as " + or_none(m.role) + " (" +
                                       or_none(m.state) + ")",
                                   {{"scope", scope}, {"member", m.name}, {"role", m.role}, {"state", m.state},
                                    {"previous_role", ""}, {"previous_state", ""}}});
            } else if (before->second.role != m.role || before->second.state != m.state) {
                events->push_back({"patroni.member_changed", running ? "info" : "warning",
                                   "member " + m.name + " of " + cluster + ": role " + or_none(before->second.role) +
                                       " -> " + or_none(m.role) + ", state " + or_none(before->second.state) +
                                       " -> " + or_none(m.state),
                                   {{"scope", scope}, {"member", m.name}, {"role", m.role}, {"state", m.state},
                                    {"previous_role", before->second.role},
                                    {"previous_state", before->second.state}}});
            }
        }
        for (const auto &[name, before] : members_) {
            bool present = false;
            for (const PatroniMember &m : view.members) present = present || m.name == name;
            if (present) continue;
            events->push_back({"patroni.member_changed", "warning",
                               "member " + name + " left " + cluster + " (was " + or_none(before.role) + ", " +
                                   or_none(before.state) + ")",
                               {{"scope", scope}, {"member", name}, {"role", ""}, {"state", ""},
                                {"previous_role", before.role}, {"previous_state", before.state}}});
            for (const char *metric : {"patroni.member.is_leader", "patroni.member.is_standby_leader",
                                       "patroni.member.is_replica", "patroni.member.is_sync_standby",
                                       "patroni.member.running"})
                add(samples, metric, "", name, scope, 0);
        }
        // No timeline here: right after a promotion /cluster still shows the new leader's old timeline.
        if (!leader.empty() && !leader_.empty() && leader != leader_)
            events->push_back({"patroni.leader_changed", "warning",
                               cluster + ": the leader changed from " + leader_ + " to " + leader,
                               {{"scope", scope}, {"leader", leader}, {"previous_leader", leader_}}});
    }
    if (members_scope_ != scope) leader_.clear();
    members_.clear();
    for (const PatroniMember &m : view.members) members_[m.name] = {m.role, m.state};
    members_scope_ = scope;
    have_members_ = true;
    if (!leader.empty()) leader_ = leader;
}

void PatroniTracker::forget() {
    series_.forget();
    members_.clear();
    members_scope_.clear();
    have_members_ = false;
    leader_.clear();
}

// --- HTTP -----------------------------------------------------------------------------------------------

PatroniClient::~PatroniClient() {
    if (curl_ != nullptr) api_->easy_cleanup(static_cast<CURL *>(curl_));
}

void PatroniClient::configure(const PatroniConfig &config) {
    config_ = config;
    if (curl_ != nullptr) api_->easy_cleanup(static_cast<CURL *>(curl_));
    curl_ = nullptr;  // the next get() sets every option again
    std::string error;  // reported by the next get(), which tries again
    if (api_ == nullptr && config_.active()) api_ = load_curl(&error);
}

struct PatroniCurlCallbacks {
    // CURLOPT_XFERINFOFUNCTION: called at least once a second; non-zero aborts the transfer.
    static int progress(void *closure, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
        const auto *client = static_cast<const PatroniClient *>(closure);
        return client->should_abort_ && client->should_abort_() ? 1 : 0;
    }
    // CURLOPT_WRITEFUNCTION: appends to the body, refuses more than kMaxBodyBytes.
    static size_t body(char *data, size_t size, size_t count, void *closure) {
        auto *client = static_cast<PatroniClient *>(closure);
        size_t bytes = size * count;
        if (client->body_->size() + bytes > PatroniClient::kMaxBodyBytes) {
            client->too_large_ = true;
            return 0;  // makes libcurl fail the transfer with CURLE_WRITE_ERROR
        }
        client->body_->append(data, bytes);
        return bytes;
    }
};

bool PatroniClient::get(const char *path, int64_t deadline_ms, std::string *body, std::string *error) {
    const std::string url = config_.url + path;
    int64_t remaining = deadline_ms - monotonic_ms();
    if (remaining <= 0) {
        *error = "could not read " + url + ": no time left in the poll's budget of " +
                 std::to_string(config_.budget_ms() / 1000) + " s";
        return false;
    }
    if (api_ == nullptr && (api_ = load_curl(error)) == nullptr) return false;
    const CurlApi &api = *api_;
    CURL *curl = static_cast<CURL *>(curl_);
    if (curl == nullptr) {
        curl = api.easy_init();
        if (curl == nullptr) {
            *error = "could not initialize libcurl";
            return false;
        }
        curl_ = curl;
        static const std::string user_agent = std::string("pgfleet-agent/") + kAgentVersion;
        api.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        api.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
        api.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        api.easy_setopt(curl, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        api.easy_setopt(curl, CURLOPT_PROXY, "");
        api.easy_setopt(curl, CURLOPT_USERAGENT, user_agent.c_str());
        api.easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer_);
        api.easy_setopt(curl, CURLOPT_WRITEFUNCTION, &PatroniCurlCallbacks::body);
        api.easy_setopt(curl, CURLOPT_WRITEDATA, this);
        api.easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        api.easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &PatroniCurlCallbacks::progress);
        api.easy_setopt(curl, CURLOPT_XFERINFODATA, this);
        if (!config_.ca_file.empty()) api.easy_setopt(curl, CURLOPT_CAINFO, config_.ca_file.c_str());
        if (!config_.cert_file.empty()) api.easy_setopt(curl, CURLOPT_SSLCERT, config_.cert_file.c_str());
        if (!config_.key_file.empty()) api.easy_setopt(curl, CURLOPT_SSLKEY, config_.key_file.c_str());
        if (!config_.username.empty()) {
            api.easy_setopt(curl, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
            api.easy_setopt(curl, CURLOPT_USERNAME, config_.username.c_str());
            api.easy_setopt(curl, CURLOPT_PASSWORD, config_.password.c_str());
        }
    }
    api.easy_setopt(curl, CURLOPT_URL, url.c_str());
    api.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(remaining));
    api.easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining));
    body->clear();
    body_ = body;
    too_large_ = false;
    error_buffer_[0] = '\0';
    CURLcode code = api.easy_perform(curl);
    body_ = nullptr;
    if (code != CURLE_OK) {
        std::string reason = error_buffer_[0] != '\0' ? error_buffer_ : api.easy_strerror(code);
        if (too_large_) reason = "the answer is larger than " + std::to_string(kMaxBodyBytes) + " bytes";
        if (code == CURLE_ABORTED_BY_CALLBACK) reason = "interrupted by shutdown";
        *error = "could not read " + url + ": " + reason;
        return false;
    }
    long status = 0;
    api.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        *error = "could not read " + url + ": HTTP status " + std::to_string(status);
        return false;
    }
    return true;
}

// --- the collector --------------------------------------------------------------------------------------

void PatroniCollector::configure(const PatroniConfig &config) {
    if (config.url != config_.url || config.member != config_.member) {
        tracker_.forget();
        last_member_.clear();
    }
    config_ = config;
    client_.configure(config);
    tracker_.set_full_refresh_ms(config.full_refresh_seconds * 1000LL);
}

PatroniPoll PatroniCollector::poll(std::string *error) {
    view_.clear();
    const int64_t deadline = monotonic_ms() + config_.budget_ms();
    if (!client_.get("/patroni", deadline, &body_, error)) return PatroniPoll::failed;
    if (!parse_patroni_status(body_, &view_, error)) {
        *error = config_.url + "/patroni: " + *error;
        return PatroniPoll::failed;
    }
    PatroniPoll result = PatroniPoll::ok;
    if (!client_.get("/cluster", deadline, &body_, error)) {
        result = PatroniPoll::partial;
    } else if (!parse_patroni_cluster(body_, &view_, error)) {
        *error = config_.url + "/cluster: " + *error;
        result = PatroniPoll::partial;
    }
    resolve_member(config_.url, config_.member, &view_);
    // Without /cluster (Patroni 3.0.2) the name is unknown: keep the one of the last poll.
    if (view_.member.empty() && !view_.have_cluster) view_.member = last_member_;
    last_member_ = view_.member;
    return result;
}

PatroniPoll PatroniCollector::collect(int64_t now_ms, std::vector<PatroniSample> *samples,
                                      std::vector<PatroniEvent> *events, std::string *error) {
    PatroniPoll result = poll(error);
    tracker_.observe(view_, now_ms, samples, events);
    return result;
}

bool PatroniCollector::check(std::string *summary, std::string *error) {
    PatroniPoll result = poll(error);
    if (result != PatroniPoll::ok) return false;
    std::string leader;
    for (const PatroniMember &m : view_.members)
        if (m.role == "leader" || m.role == "standby_leader") leader = m.name;
    std::string timeline = std::isnan(view_.timeline) ? "" : ", timeline " + std::to_string(static_cast<int64_t>(view_.timeline));
    *summary = (view_.member.empty() ? std::string("member unknown (set [patroni] member)") : "member " + view_.member) +
               " of cluster \"" + view_.scope + "\", Patroni " + or_none(view_.version) + ": role " +
               or_none(view_.role) + ", state " + view_.state + timeline + "; " +
               std::to_string(view_.members.size()) + (view_.members.size() == 1 ? " member" : " members") +
               ", leader " + or_none(leader) +
               (view_.paused ? "; maintenance mode (paused)" : "");
    return true;
}

}  // namespace pgfleet::agent

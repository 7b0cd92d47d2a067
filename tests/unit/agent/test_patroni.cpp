// The Patroni collector's pure parts (agent/patroni.h): parsing GET /patroni and GET /cluster as Patroni
// 3.x answers them (standby_leader, sync_standby, "master" vs "primary", missing or mistyped fields), and
// the tracker's decisions over successive polls: only changed series, a member that leaves gets a last 0,
// leader and member events, the full refresh. The e2e test (tests/e2e/agent_patroni.sh) runs a real
// Patroni on Raft; these cover what it cannot make happen on demand.
#include "agent/patroni.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace pgfleet::agent;

namespace {

// A /cluster body with the given members (name, role, state, lag or -1 for none).
struct M {
    const char *name, *role, *state;
    int lag;
};
std::string cluster_body(const std::vector<M> &members) {
    std::string s = "{\"scope\": \"demo\", \"members\": [";
    for (size_t i = 0; i < members.size(); i++) {
        const M &m = members[i];
        s += std::string(i ? "," : "") + "{\"name\": \"" + m.name + "\", \"role\": \"" + m.role + "\", \"state\": \"" +
             m.state + "\", \"api_url\": \"http://10.0.0." + std::to_string(i + 1) + ":8008/patroni\", \"timeline\": 3";
        if (m.lag >= 0) s += ", \"lag\": " + std::to_string(m.lag);
        s += "}";
    }
    return s + "]}";
}

// A view of this node (pg1) as a leader with the given cluster.
PatroniView view_with(const std::vector<M> &members, const char *role = "primary") {
    PatroniView v;
    std::string error;
    std::string status = std::string("{\"state\": \"running\", \"role\": \"") + role +
                         "\", \"timeline\": 3, \"xlog\": {\"location\": 1000}, \"patroni\": {\"version\": \"3.0.2\", "
                         "\"scope\": \"demo\", \"name\": \"pg1\"}}";
    EXPECT_TRUE(parse_patroni_status(status, &v, &error)) << error;
    EXPECT_TRUE(parse_patroni_cluster(cluster_body(members), &v, &error)) << error;
    resolve_member("http://10.0.0.1:8008", "", &v);
    return v;
}

// The last value given to metric for member in samples, NaN when none was sent.
double sent(const std::vector<PatroniSample> &samples, const std::string &metric, const std::string &member) {
    double value = std::nan("");
    for (const PatroniSample &s : samples)
        if (metric == s.metric && s.member == member) value = s.value;
    return value;
}

const PatroniEvent *event_of(const std::vector<PatroniEvent> &events, const std::string &kind) {
    for (const PatroniEvent &e : events)
        if (e.kind == kind) return &e;
    return nullptr;
}

std::string attribute(const PatroniEvent &e, const std::string &name) {
    for (const auto &[k, v] : e.attributes)
        if (k == name) return v;
    return "(absent)";
}

}  // namespace

TEST(PatroniParse, StatusOfAStandbyLeaderAndOfAnOldPrimary) {
    PatroniView v;
    std::string error;
    ASSERT_TRUE(parse_patroni_status(
        "{\"state\": \"running\", \"role\": \"standby_leader\", \"timeline\": 5, \"xlog\": {\"received_location\": "
        "2048, \"replayed_location\": 1024, \"paused\": false}, \"pending_restart\": true, \"pause\": true, "
        "\"patroni\": {\"version\": \"3.3.0\", \"scope\": \"dr\", \"name\": \"pg9\"}}",
        &v, &error))
        << error;
    EXPECT_TRUE(v.have_status);
    EXPECT_EQ(v.role, "standby_leader");
    EXPECT_EQ(v.name, "pg9");
    EXPECT_EQ(v.scope, "dr");
    EXPECT_EQ(v.timeline, 5);
    EXPECT_EQ(v.xlog_received, 2048);
    EXPECT_EQ(v.xlog_replayed, 1024);
    EXPECT_EQ(v.xlog_paused, 0);
    EXPECT_TRUE(std::isnan(v.xlog_location));
    EXPECT_TRUE(v.pending_restart);
    EXPECT_TRUE(v.paused);

    // Patroni before 3.0 said "master"; a stopped PostgreSQL has no timeline; mistyped fields are ignored.
    PatroniView old;
    ASSERT_TRUE(parse_patroni_status("{\"state\": \"stopped\", \"role\": \"master\", \"timeline\": \"x\", "
                                     "\"xlog\": 7, \"patroni\": {\"version\": \"2.1.4\"}}",
                                     &old, &error))
        << error;
    EXPECT_EQ(old.role, "master");
    EXPECT_TRUE(std::isnan(old.timeline));
    EXPECT_TRUE(std::isnan(old.xlog_location));
    EXPECT_EQ(old.name, "");
}

TEST(PatroniParse, BadBodiesAreRefusedWithAReason) {
    PatroniView v;
    std::string error;
    EXPECT_FALSE(parse_patroni_status("not json", &v, &error));
    EXPECT_FALSE(error.empty());
    error.clear();
    EXPECT_FALSE(parse_patroni_status("{\"role\": \"replica\"}", &v, &error)) << "no state";
    EXPECT_FALSE(error.empty());
    error.clear();
    EXPECT_FALSE(parse_patroni_cluster("{\"members\": 3}", &v, &error));
    EXPECT_FALSE(error.empty());
    error.clear();
    EXPECT_FALSE(parse_patroni_cluster("[]", &v, &error));
}

TEST(PatroniParse, ClusterMembersAndTheirLag) {
    PatroniView v = view_with({{"pg1", "leader", "running", -1},
                               {"pg2", "sync_standby", "streaming", 0},
                               {"pg3", "replica", "streaming", 4096}});
    ASSERT_TRUE(v.have_cluster);
    ASSERT_EQ(v.members.size(), 3u);
    EXPECT_EQ(v.members[1].role, "sync_standby");
    EXPECT_EQ(v.members[2].lag_bytes, 4096);
    EXPECT_TRUE(std::isnan(v.members[0].lag_bytes)) << "the leader has no lag";
    EXPECT_EQ(v.member, "pg1");
    // "lag": "unknown" (Patroni's word for a replica it cannot measure) is absent, not 0
    PatroniView u;
    std::string error;
    ASSERT_TRUE(parse_patroni_cluster("{\"members\": [{\"name\": \"a\", \"role\": \"replica\", \"state\": "
                                      "\"running\", \"lag\": \"unknown\"}]}",
                                      &u, &error))
        << error;
    EXPECT_TRUE(std::isnan(u.members[0].lag_bytes));
}

TEST(PatroniTrack, OnlyChangesAreSentAndALeavingMemberGetsALastZero) {
    PatroniTracker tracker(600000);
    std::vector<PatroniSample> samples;
    std::vector<PatroniEvent> events;
    const int64_t t = 1700000000000;
    tracker.observe(view_with({{"pg1", "leader", "running", -1},
                               {"pg2", "sync_standby", "streaming", 0},
                               {"pg3", "replica", "streaming", 100}}),
                    t, &samples, &events);
    EXPECT_EQ(sent(samples, "patroni.member.is_sync_standby", "pg2"), 1);
    EXPECT_EQ(sent(samples, "patroni.member.lag_bytes", "pg3"), 100);
    EXPECT_EQ(sent(samples, "patroni.cluster.members", ""), 3);
    EXPECT_TRUE(events.empty()) << "the first poll is a baseline";

    // the same cluster 10 s later: nothing to send
    samples.clear();
    tracker.observe(view_with({{"pg1", "leader", "running", -1},
                               {"pg2", "sync_standby", "streaming", 0},
                               {"pg3", "replica", "streaming", 100}}),
                    t + 10000, &samples, &events);
    EXPECT_TRUE(samples.empty());
    EXPECT_TRUE(events.empty());

    // pg3 leaves, pg2 stops being the sync standby
    samples.clear();
    tracker.observe(view_with({{"pg1", "leader", "running", -1}, {"pg2", "replica", "streaming", 0}}), t + 20000,
                    &samples, &events);
    EXPECT_EQ(sent(samples, "patroni.member.is_sync_standby", "pg2"), 0);
    EXPECT_EQ(sent(samples, "patroni.member.is_replica", "pg3"), 0) << "no stale 1 stays the last value";
    EXPECT_EQ(sent(samples, "patroni.member.running", "pg3"), 0);
    EXPECT_EQ(sent(samples, "patroni.cluster.members", ""), 2);
    EXPECT_TRUE(std::isnan(sent(samples, "patroni.member.is_leader", "pg1"))) << "pg1 did not change";
    int member_events = 0;
    for (const PatroniEvent &e : events)
        if (e.kind == "patroni.member_changed") {
            member_events++;
            if (attribute(e, "member") == "pg3") {
                EXPECT_EQ(e.severity, "warning") << "a member left";
            }
        }
    EXPECT_EQ(member_events, 2) << "pg2's role, pg3 leaving";
    EXPECT_EQ(event_of(events, "patroni.leader_changed"), nullptr);
}

TEST(PatroniTrack, LeaderChangeAndTheFullRefresh) {
    PatroniTracker tracker(60000);
    std::vector<PatroniSample> samples;
    std::vector<PatroniEvent> events;
    const int64_t t = 1700000000000;
    tracker.observe(view_with({{"pg1", "leader", "running", -1}, {"pg2", "replica", "streaming", 0}}), t, &samples,
                    &events);
    // between demotion and promotion nobody leads: no leader event yet
    samples.clear();
    events.clear();
    tracker.observe(view_with({{"pg1", "replica", "stopped", -1}, {"pg2", "replica", "running", 0}}, "replica"),
                    t + 10000, &samples, &events);
    EXPECT_EQ(event_of(events, "patroni.leader_changed"), nullptr);
    // pg2 leads: one leader event naming the previous leader
    events.clear();
    tracker.observe(view_with({{"pg1", "replica", "streaming", 0}, {"pg2", "leader", "running", -1}}, "replica"),
                    t + 20000, &samples, &events);
    const PatroniEvent *leader = event_of(events, "patroni.leader_changed");
    ASSERT_NE(leader, nullptr);
    EXPECT_EQ(attribute(*leader, "leader"), "pg2");
    EXPECT_EQ(attribute(*leader, "previous_leader"), "pg1");
    EXPECT_EQ(leader->severity, "warning");
    // a minute later nothing changed, but every series is sent again (the full refresh heals a lost value)
    samples.clear();
    tracker.observe(view_with({{"pg1", "replica", "streaming", 0}, {"pg2", "leader", "running", -1}}, "replica"),
                    t + 30000, &samples, &events);
    EXPECT_TRUE(samples.empty());
    tracker.observe(view_with({{"pg1", "replica", "streaming", 0}, {"pg2", "leader", "running", -1}}, "replica"),
                    t + 90000, &samples, &events);
    EXPECT_EQ(sent(samples, "patroni.member.is_leader", "pg2"), 1);
    EXPECT_EQ(sent(samples, "patroni.member.is_leader", "pg1"), 0);
    EXPECT_EQ(sent(samples, "patroni.cluster.members", ""), 2);
}

TEST(PatroniTrack, AFailedPollSendsUpZeroOnce) {
    PatroniTracker tracker;
    std::vector<PatroniSample> samples;
    std::vector<PatroniEvent> events;
    const int64_t t = 1700000000000;
    tracker.observe(view_with({{"pg1", "leader", "running", -1}}), t, &samples, &events);
    EXPECT_EQ(sent(samples, "patroni.up", ""), 1);
    samples.clear();
    PatroniView failed;  // have_status false: /patroni did not answer
    tracker.observe(failed, t + 10000, &samples, &events);
    EXPECT_EQ(sent(samples, "patroni.up", ""), 0);
    samples.clear();
    tracker.observe(failed, t + 20000, &samples, &events);
    EXPECT_TRUE(samples.empty()) << "changed-only: up = 0 is not repeated";
}

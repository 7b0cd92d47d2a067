// ObjectChangeTracker: only changed objects are emitted; every object again after the full refresh period.
#include "agent/objects.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

using pgfleet::agent::ObjectChangeTracker;

namespace
{

// One collection: returns the keys the tracker says to send.
std::set<std::string> collect(ObjectChangeTracker &tracker, int64_t now_ms,
                              const std::map<std::string, std::vector<double>> &objects)
{
    std::set<std::string> sent;
    tracker.begin(now_ms);
    for (const auto &[key, values] : objects)
        if (tracker.should_send(key, values.data(), values.size()))
            sent.insert(key);
    tracker.end();
    return sent;
}

} // namespace

TEST(ObjectChangeTracker, FirstCollectionSendsEverything)
{
    ObjectChangeTracker tracker(600000);
    auto sent = collect(tracker, 1000, {{"t a", {1, 2}}, {"t b", {3, 4}}});
    EXPECT_EQ(sent, (std::set<std::string>{"t a", "t b"}));
    EXPECT_EQ(tracker.tracked(), 2u);
}

TEST(ObjectChangeTracker, OnlyChangedObjectsAreSent)
{
    ObjectChangeTracker tracker(600000);
    collect(tracker, 1000, {{"a", {1, 2}}, {"b", {3, 4}}, {"c", {5}}});
    auto sent = collect(tracker, 2000, {{"a", {1, 2}}, {"b", {3, 5}}, {"c", {5}}, {"d", {0}}});
    EXPECT_EQ(sent, (std::set<std::string>{"b", "d"})); // b changed, d is new
    sent = collect(tracker, 3000, {{"a", {1, 2}}, {"b", {3, 5}}, {"c", {5}}, {"d", {0}}});
    EXPECT_TRUE(sent.empty());
}

TEST(ObjectChangeTracker, MissingValuesCompareEqual)
{
    ObjectChangeTracker tracker(600000);
    double nan = std::nan("");
    collect(tracker, 1000, {{"a", {1, nan}}});
    EXPECT_TRUE(collect(tracker, 2000, {{"a", {1, nan}}}).empty());
    EXPECT_EQ(collect(tracker, 3000, {{"a", {1, 7}}}).size(), 1u); // vacuumed for the first time
    EXPECT_EQ(collect(tracker, 4000, {{"a", {1, nan}}}).size(), 1u);
}

TEST(ObjectChangeTracker, FullRefreshAfterThePeriod)
{
    ObjectChangeTracker tracker(10000);
    collect(tracker, 0, {{"a", {1}}, {"b", {2}}});
    EXPECT_TRUE(collect(tracker, 5000, {{"a", {1}}, {"b", {2}}}).empty());
    EXPECT_TRUE(collect(tracker, 9999, {{"a", {1}}, {"b", {2}}}).empty());
    EXPECT_EQ(collect(tracker, 10000, {{"a", {1}}, {"b", {2}}}).size(), 2u);
    // the period counts from each object's last send
    EXPECT_EQ(collect(tracker, 15000, {{"a", {9}}, {"b", {2}}}), (std::set<std::string>{"a"}));
    EXPECT_EQ(collect(tracker, 20000, {{"a", {9}}, {"b", {2}}}), (std::set<std::string>{"b"}));
    EXPECT_EQ(collect(tracker, 25000, {{"a", {9}}, {"b", {2}}}), (std::set<std::string>{"a"}));
}

TEST(ObjectChangeTracker, ClockSteppingBackSendsAgain)
{
    ObjectChangeTracker tracker(10000);
    collect(tracker, 50000, {{"a", {1}}});
    EXPECT_EQ(collect(tracker, 40000, {{"a", {1}}}).size(), 1u);
    EXPECT_TRUE(collect(tracker, 41000, {{"a", {1}}}).empty());
}

TEST(ObjectChangeTracker, VanishedObjectsAreForgotten)
{
    ObjectChangeTracker tracker(600000);
    collect(tracker, 1000, {{"a", {1}}, {"b", {2}}});
    collect(tracker, 2000, {{"a", {1}}});
    EXPECT_EQ(tracker.tracked(), 1u);
    // b comes back (dropped and re-created with the same values): sent again
    EXPECT_EQ(collect(tracker, 3000, {{"a", {1}}, {"b", {2}}}), (std::set<std::string>{"b"}));
    tracker.forget();
    EXPECT_EQ(collect(tracker, 4000, {{"a", {1}}, {"b", {2}}}).size(), 2u);
}

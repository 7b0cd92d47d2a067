#include "agent/objects.h"

#include <cmath>

namespace pgfleet::agent
{

namespace
{

bool same_value(double a, double b)
{
    return a == b || (std::isnan(a) && std::isnan(b));
}

} // namespace

void ObjectChangeTracker::begin(int64_t now_ms)
{
    now_ms_ = now_ms;
    generation_++;
}

bool ObjectChangeTracker::should_send(const std::string &key, const double *values, size_t count)
{
    auto [it, inserted] = objects_.try_emplace(key);
    Entry &entry = it->second;
    entry.seen = generation_;
    bool send = inserted || entry.values.size() != count || now_ms_ - entry.sent_ms >= full_refresh_ms_ ||
                now_ms_ < entry.sent_ms; // the clock stepped back
    for (size_t i = 0; !send && i < count; i++)
        send = !same_value(entry.values[i], values[i]);
    if (!send)
        return false;
    entry.values.assign(values, values + count);
    entry.sent_ms = now_ms_;
    return true;
}

void ObjectChangeTracker::end()
{
    for (auto it = objects_.begin(); it != objects_.end();) {
        if (it->second.seen != generation_)
            it = objects_.erase(it);
        else
            ++it;
    }
}

} // namespace pgfleet::agent

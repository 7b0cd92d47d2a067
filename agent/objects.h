// Change detection for the objects collector (pure logic, no libpq: unit-tested in tests/unit/agent).
//
// The objects collector reads per-table, per-index, per-sequence and per-function statistics of the
// connected database. Most objects do not change between two collections, so an object's samples are sent
// only when one of its values changed since they were last sent, and in any case every full_refresh_ms
// (so that the centre heals from anything it missed, and slowly growing ages are refreshed).
//
// An object is identified by a key (its kind and labels, built by the caller) and described by a short
// vector of values used only for the comparison: the caller passes what characterizes the object's state
// (e.g. the time of the last vacuum, not its age, which grows by itself). NaN compares equal to NaN
// (a missing value). Objects not seen in a collection are forgotten at end() (a dropped table that comes
// back is new, hence sent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace pgfleet::agent
{

class ObjectChangeTracker
{
  public:
    explicit ObjectChangeTracker(int64_t full_refresh_ms = 600000) : full_refresh_ms_(full_refresh_ms) {}

    void set_full_refresh_ms(int64_t full_refresh_ms) { full_refresh_ms_ = full_refresh_ms; }
    int64_t full_refresh_ms() const { return full_refresh_ms_; }

    // Starts a collection at now_ms.
    void begin(int64_t now_ms);
    // True when the object must be sent now (new, changed, or not sent for full_refresh_ms); the values
    // are then recorded as sent. False when it is unchanged (it stays known).
    bool should_send(const std::string &key, const double *values, size_t count);
    // Ends the collection: forgets the objects that were not seen in it.
    void end();
    // Forgets everything (the monitored server changed): every object is sent at the next collection.
    void forget() { objects_.clear(); }

    size_t tracked() const { return objects_.size(); }

  private:
    struct Entry {
        std::vector<double> values;
        int64_t sent_ms = 0;
        uint64_t seen = 0; // generation of the last collection that saw it
    };
    std::unordered_map<std::string, Entry> objects_;
    int64_t full_refresh_ms_;
    int64_t now_ms_ = 0;
    uint64_t generation_ = 0;
};

} // namespace pgfleet::agent

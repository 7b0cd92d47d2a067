// Agent configuration: the TOML file described in docs/interfaces.md, parsed with toml++.
//
//   agent_id = "central"            # required, [A-Za-z0-9_-]{1,64}
//   namespace = "default"           # optional (default "default"), [A-Za-z0-9_-]{1,64}
//   interval_seconds = 10           # optional (default 10), integer 1..3600
//   spool_dir = "/var/lib/pgfleet/agent/spool"   # required, absolute path
//   spool_max_bytes = 268435456     # optional (default 256 MiB), integer 4096..2^50: oldest batches are
//                                   # dropped (and counted) beyond it
//   activity_sample_seconds = 1     # optional (default 1), integer 1..60: pg_stat_activity sampling period
//   [collectors.metrics]            # optional, one table per collector: metrics, statements, activity,
//                                   # inventory, objects
//   enabled = true                  # optional (default true)
//   interval_seconds = 10           # optional (default: the top-level interval_seconds; objects: 60), 1..3600
//   full_refresh_seconds = 600      # [collectors.objects] only (default 600), 1..86400: every object is sent
//                                   # at least this often, changed or not
//   [postgres]
//   conninfo = "host=/run/postgresql port=5432 dbname=postgres"   # required, a libpq connection string
//   [nats]
//   url = "nats://127.0.0.1:4222"   # optional (default shown), comma-separated nats:// or tls:// URLs
//   [patroni]                       # optional: the Patroni collector (agent/patroni.h), off without it
//   url = "http://127.0.0.1:8008"   # required unless enabled = false: this node's Patroni REST API
//   enabled = true                  # optional (default true)
//   interval_seconds = 10           # optional (default: the top-level interval_seconds), 1..3600
//   full_refresh_seconds = 600      # optional (default 600), 1..86400: every series is sent at least this often
//   timeout_seconds = 2             # optional (default 2), 1..60: budget of one poll (both requests together;
//                                   # never more than interval_seconds)
//   member = "node1"                # optional: this node's member name when Patroni's answers cannot tell
//   ca_file, cert_file, key_file    # optional absolute paths: CA bundle, client certificate and key (https)
//   username, password              # optional: HTTP basic authentication (both or neither)
//
// Unknown keys are rejected (a typo must not silently fall back to a default). Every error names the key
// and says why, in lower case, so the caller can print
//   pgfleet-agent: invalid configuration "/x.toml": interval_seconds must be between 1 and 3600
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pgfleet::agent {

// Names of the collectors that may appear as [collectors.<name>].
enum class CollectorId { metrics = 0, statements = 1, activity = 2, inventory = 3, objects = 4 };
constexpr int kCollectorCount = 5;
extern const char *const kCollectorNames[kCollectorCount];

// One [collectors.<name>] table, resolved: interval_seconds is never 0 after parse_config.
struct CollectorConfig {
    bool enabled = true;
    int interval_seconds = 0;
    int full_refresh_seconds = 600;  // objects only: every object is sent at least this often
};

// The [patroni] table: where and how to read Patroni's REST API (GET /patroni and /cluster).
struct PatroniConfig {
    std::string url;  // "" when the table is absent: the collector is off
    bool enabled = false;
    int interval_seconds = 0;
    int full_refresh_seconds = 600;
    int timeout_seconds = 2;
    std::string member;
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    std::string username;
    std::string password;

    // True when the Patroni collector runs.
    bool active() const { return enabled && !url.empty(); }
    // Budget of one poll in milliseconds: timeout_seconds, but never more than the interval.
    int budget_ms() const { return 1000 * (timeout_seconds < interval_seconds ? timeout_seconds : interval_seconds); }
    bool operator==(const PatroniConfig &o) const {
        return url == o.url && enabled == o.enabled && interval_seconds == o.interval_seconds &&
               full_refresh_seconds == o.full_refresh_seconds && timeout_seconds == o.timeout_seconds &&
               member == o.member && ca_file == o.ca_file && cert_file == o.cert_file && key_file == o.key_file &&
               username == o.username && password == o.password;
    }
    bool operator!=(const PatroniConfig &o) const { return !(*this == o); }
};

struct AgentConfig {
    std::string agent_id;
    std::string namespace_name = "default";
    int interval_seconds = 10;
    std::string spool_dir;
    std::string postgres_conninfo;
    std::string nats_url = "nats://127.0.0.1:4222";
    uint64_t spool_max_bytes = 256ull << 20;
    int activity_sample_seconds = 1;
    CollectorConfig collectors[kCollectorCount];
    PatroniConfig patroni;

    const CollectorConfig &collector(CollectorId id) const { return collectors[static_cast<int>(id)]; }
};

// Thrown for any unreadable or invalid configuration; what() is the reason without the file name.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Parses and validates configuration text; source_name is used only in TOML syntax error positions.
AgentConfig parse_config(std::string_view toml_text, std::string_view source_name);

// Reads the file at path and parses it with parse_config.
AgentConfig load_config(const std::string &path);

// True when name matches [A-Za-z0-9_-]{1,64} (agent ids and namespaces appear in NATS subjects).
bool is_valid_subject_token(std::string_view name);

}  // namespace pgfleet::agent

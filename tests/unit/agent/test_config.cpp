// Configuration parsing: the documented file is accepted, and each bad key is rejected with a message that
// names the key and the reason.
#include "agent/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

using pgfleet::agent::AgentConfig;
using pgfleet::agent::ConfigError;
using pgfleet::agent::load_config;
using pgfleet::agent::parse_config;

namespace {

const char *const kGoodConfig = R"(
agent_id = "central"
namespace = "default"
interval_seconds = 10
spool_dir = "/var/lib/pgfleet/agent/spool"
[postgres]
conninfo = "host=/run/postgresql port=5432 dbname=postgres"
[nats]
url = "nats://127.0.0.1:4222"
)";

// Returns the ConfigError message parse_config raises for text, or "" when it is accepted.
std::string error_of(const std::string &text) {
    try {
        parse_config(text, "test.toml");
    } catch (const ConfigError &error) {
        return error.what();
    }
    return "";
}

// The good file with the line that starts with key replaced by replacement ("" removes it).
std::string with_line(const std::string &key, const std::string &replacement) {
    std::string text = kGoodConfig;
    size_t at = text.find("\n" + key + " ");
    EXPECT_NE(at, std::string::npos) << key;
    size_t end = text.find('\n', at + 1);
    text.replace(at + 1, end - at, replacement.empty() ? "" : replacement + "\n");
    return text;
}

}  // namespace

TEST(Config, DocumentedFileIsAccepted) {
    AgentConfig config = parse_config(kGoodConfig, "test.toml");
    EXPECT_EQ(config.agent_id, "central");
    EXPECT_EQ(config.namespace_name, "default");
    EXPECT_EQ(config.interval_seconds, 10);
    EXPECT_EQ(config.spool_dir, "/var/lib/pgfleet/agent/spool");
    EXPECT_EQ(config.postgres_conninfo, "host=/run/postgresql port=5432 dbname=postgres");
    EXPECT_EQ(config.nats_url, "nats://127.0.0.1:4222");
}

TEST(Config, OptionalKeysHaveDefaults) {
    std::string text = with_line("namespace", "");
    text.resize(text.find("[nats]"));
    size_t interval = text.find("interval_seconds");
    text.erase(interval, text.find('\n', interval) - interval + 1);
    AgentConfig config = parse_config(text, "test.toml");
    EXPECT_EQ(config.namespace_name, "default");
    EXPECT_EQ(config.interval_seconds, 10);
    EXPECT_EQ(config.nats_url, "nats://127.0.0.1:4222");
}

TEST(Config, IntervalBounds) {
    EXPECT_EQ(error_of(with_line("interval_seconds", "interval_seconds = 0")),
              "interval_seconds must be between 1 and 3600");
    EXPECT_EQ(error_of(with_line("interval_seconds", "interval_seconds = 3601")),
              "interval_seconds must be between 1 and 3600");
    EXPECT_EQ(error_of(with_line("interval_seconds", "interval_seconds = \"10\"")),
              "interval_seconds must be an integer");
    EXPECT_EQ(error_of(with_line("interval_seconds", "interval_seconds = 1.5")),
              "interval_seconds must be an integer");
    EXPECT_EQ(parse_config(with_line("interval_seconds", "interval_seconds = 3600"), "t").interval_seconds, 3600);
    EXPECT_EQ(parse_config(with_line("interval_seconds", "interval_seconds = 1"), "t").interval_seconds, 1);
}

TEST(Config, AgentIdAndNamespace) {
    EXPECT_EQ(error_of(with_line("agent_id", "")), "agent_id is required");
    EXPECT_EQ(error_of(with_line("agent_id", "agent_id = \"a.b\"")),
              "agent_id must match [A-Za-z0-9_-]{1,64}, got \"a.b\"");
    EXPECT_EQ(error_of(with_line("agent_id", "agent_id = \"\"")), "agent_id must match [A-Za-z0-9_-]{1,64}, got \"\"");
    EXPECT_EQ(error_of(with_line("agent_id", "agent_id = \"" + std::string(65, 'a') + "\"")).substr(0, 39),
              "agent_id must match [A-Za-z0-9_-]{1,64}");
    EXPECT_EQ(error_of(with_line("agent_id", "agent_id = 7")), "agent_id must be a string");
    EXPECT_EQ(error_of(with_line("namespace", "namespace = \"fleet.in\"")),
              "namespace must match [A-Za-z0-9_-]{1,64}, got \"fleet.in\"");
    EXPECT_EQ(error_of(with_line("agent_id", "agent_id = \"" + std::string(64, 'a') + "\"")), "");
}

TEST(Config, SpoolDir) {
    EXPECT_EQ(error_of(with_line("spool_dir", "")), "spool_dir is required");
    EXPECT_EQ(error_of(with_line("spool_dir", "spool_dir = \"spool\"")),
              "spool_dir must be an absolute path, got \"spool\"");
}

TEST(Config, PostgresConninfo) {
    EXPECT_EQ(error_of(with_line("conninfo", "")), "postgres.conninfo is required");
    std::string bad = error_of(with_line("conninfo", "conninfo = \"host=/tmp nosuchkey=1\""));
    EXPECT_EQ(bad.rfind("postgres.conninfo is not a valid connection string: ", 0), 0u) << bad;
    EXPECT_NE(bad.find("nosuchkey"), std::string::npos) << bad;
}

TEST(Config, NatsUrl) {
    EXPECT_EQ(error_of(with_line("url", "url = \"http://x:4222\"")),
              "nats.url must be a list of nats:// or tls:// urls, got \"http://x:4222\"");
    EXPECT_EQ(error_of(with_line("url", "url = \"nats://\"")), "nats.url \"nats://\" has no host");
    EXPECT_EQ(error_of(with_line("url", "url = \"nats://a:1, tls://b:2\"")), "");
}

TEST(Config, UnknownKeysAndWrongTables) {
    EXPECT_EQ(error_of(std::string(kGoodConfig) + "intervall = 3\n"), "unknown key \"nats.intervall\"");
    EXPECT_EQ(error_of(with_line("agent_id", "agent_id = \"a\"\ninterval = 3")), "unknown key \"interval\"");
    EXPECT_EQ(error_of(with_line("conninfo", "conninfo = \"\"\nconnifo = \"x\"")), "unknown key \"postgres.connifo\"");
    EXPECT_EQ(error_of("agent_id = \"a\"\nspool_dir = \"/s\"\npostgres = 1\n"),
              "postgres must be a table ([postgres])");
}

TEST(Config, SyntaxErrorNamesLine) {
    std::string error = error_of("agent_id = \"a\"\nspool_dir = /nope\n");
    EXPECT_EQ(error.rfind("syntax error at line 2, column ", 0), 0u) << error;
}

TEST(Config, LoadFromFile) {
    char path[] = "/tmp/pgfleet-agent-config-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    std::ofstream(path) << kGoodConfig;
    EXPECT_EQ(load_config(path).agent_id, "central");
    unlink(path);
    try {
        load_config(path);
        FAIL() << "missing file accepted";
    } catch (const ConfigError &error) {
        EXPECT_STREQ(error.what(), "could not open file: No such file or directory");
    }
}

TEST(Config, NewKeysDefaults) {
    AgentConfig config = parse_config(kGoodConfig, "test.toml");
    EXPECT_EQ(config.spool_max_bytes, 256ull << 20);
    EXPECT_EQ(config.activity_sample_seconds, 1);
    for (int i = 0; i < pgfleet::agent::kCollectorCount; i++) {
        EXPECT_TRUE(config.collectors[i].enabled) << pgfleet::agent::kCollectorNames[i];
        // objects defaults to 60 s, the others to the top-level interval_seconds
        EXPECT_EQ(config.collectors[i].interval_seconds, i == static_cast<int>(pgfleet::agent::CollectorId::objects) ? 60 : 10)
            << pgfleet::agent::kCollectorNames[i];
    }
    EXPECT_EQ(config.collector(pgfleet::agent::CollectorId::objects).full_refresh_seconds, 600);
}

TEST(Config, ObjectsCollector) {
    std::string text = std::string(kGoodConfig) + "\n[collectors.objects]\ninterval_seconds = 1\nfull_refresh_seconds = 30\n";
    AgentConfig config = parse_config(text, "test.toml");
    EXPECT_EQ(config.collector(pgfleet::agent::CollectorId::objects).interval_seconds, 1);
    EXPECT_EQ(config.collector(pgfleet::agent::CollectorId::objects).full_refresh_seconds, 30);
    std::string bad = std::string(kGoodConfig) + "\n[collectors.objects]\nfull_refresh_seconds = 0\n";
    EXPECT_THROW(parse_config(bad, "test.toml"), ConfigError);
    std::string misplaced = std::string(kGoodConfig) + "\n[collectors.metrics]\nfull_refresh_seconds = 30\n";
    EXPECT_THROW(parse_config(misplaced, "test.toml"), ConfigError);
}

TEST(Config, SpoolBoundAndActivitySampling) {
    std::string text = std::string(kGoodConfig) + "";
    text.insert(text.find("[postgres]"), "spool_max_bytes = 65536\nactivity_sample_seconds = 5\n");
    AgentConfig config = parse_config(text, "test.toml");
    EXPECT_EQ(config.spool_max_bytes, 65536u);
    EXPECT_EQ(config.activity_sample_seconds, 5);
    EXPECT_EQ(error_of(with_line("interval_seconds", "interval_seconds = 10\nspool_max_bytes = 4095")),
              "spool_max_bytes must be between 4096 and 1125899906842624");
    EXPECT_EQ(error_of(with_line("interval_seconds", "interval_seconds = 10\nspool_max_bytes = \"1G\"")),
              "spool_max_bytes must be an integer");
    EXPECT_EQ(error_of(with_line("interval_seconds", "interval_seconds = 10\nactivity_sample_seconds = 61")),
              "activity_sample_seconds must be between 1 and 60");
}

TEST(Config, CollectorTables) {
    std::string text = std::string(kGoodConfig) +
                       "[collectors.statements]\nenabled = false\n"
                       "[collectors.activity]\ninterval_seconds = 30\n";
    AgentConfig config = parse_config(text, "test.toml");
    using pgfleet::agent::CollectorId;
    EXPECT_TRUE(config.collector(CollectorId::metrics).enabled);
    EXPECT_EQ(config.collector(CollectorId::metrics).interval_seconds, 10);
    EXPECT_FALSE(config.collector(CollectorId::statements).enabled);
    EXPECT_EQ(config.collector(CollectorId::statements).interval_seconds, 10);
    EXPECT_EQ(config.collector(CollectorId::activity).interval_seconds, 30);

    EXPECT_EQ(error_of(std::string(kGoodConfig) + "[collectors.plans]\n"),
              "unknown collector \"collectors.plans\" (known: metrics, statements, activity, inventory, objects)");
    EXPECT_EQ(error_of(std::string(kGoodConfig) + "[collectors]\nmetrics = 1\n"),
              "collectors.metrics must be a table ([collectors.metrics])");
    EXPECT_EQ(error_of(std::string(kGoodConfig) + "[collectors.metrics]\nenabled = 1\n"),
              "collectors.metrics.enabled must be true or false");
    EXPECT_EQ(error_of(std::string(kGoodConfig) + "[collectors.metrics]\ninterval_seconds = 3601\n"),
              "collectors.metrics.interval_seconds must be between 1 and 3600");
    EXPECT_EQ(error_of(std::string(kGoodConfig) + "[collectors.metrics]\nperiod = 3\n"),
              "unknown key \"collectors.metrics.period\"");
}

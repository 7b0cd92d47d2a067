// See config.h. Validation is strict and done once at start-up; nothing here is on the collection path.
// The libpq connection string is checked with PQconninfoParse so that a typo in [postgres] conninfo is a
// configuration error rather than a connection failure reported every interval.
#include "agent/config.h"

#include <libpq-fe.h>
#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace pgfleet::agent {

const char *const kCollectorNames[kCollectorCount] = {"metrics", "statements", "activity", "inventory", "objects"};

namespace {

// Returns the integer at key of table, or fallback when absent; throws unless it lies in [low, high].
int64_t get_integer(const toml::table &table, std::string_view key, std::string_view display_name, int64_t low,
                    int64_t high, int64_t fallback) {
    const toml::node *node = table.get(key);
    if (node == nullptr) return fallback;
    const auto *value = node->as_integer();
    if (value == nullptr) throw ConfigError(std::string(display_name) + " must be an integer");
    if (value->get() < low || value->get() > high)
        throw ConfigError(std::string(display_name) + " must be between " + std::to_string(low) + " and " +
                          std::to_string(high));
    return value->get();
}

// Rejects any key of table (named table_name in messages, "" for the root) that is not in allowed.
void reject_unknown_keys(const toml::table &table, std::string_view table_name,
                         std::initializer_list<std::string_view> allowed) {
    for (const auto &[key, node] : table) {
        bool known = false;
        for (std::string_view name : allowed) known = known || key.str() == name;
        if (!known) {
            std::string full = table_name.empty() ? std::string(key.str())
                                                  : std::string(table_name) + "." + std::string(key.str());
            throw ConfigError("unknown key \"" + full + "\"");
        }
    }
}

// Returns the string at key, or fallback when absent and not required; throws on a wrong type.
std::string get_string(const toml::table &table, std::string_view key, std::string_view display_name,
                       bool required, std::string_view fallback) {
    const toml::node *node = table.get(key);
    if (node == nullptr) {
        if (required) throw ConfigError(std::string(display_name) + " is required");
        return std::string(fallback);
    }
    const auto *value = node->as_string();
    if (value == nullptr) throw ConfigError(std::string(display_name) + " must be a string");
    return value->get();
}

// Returns the sub-table at key (an empty table when absent); throws when key is not a table.
const toml::table &get_table(const toml::table &root, std::string_view key) {
    static const toml::table empty;
    const toml::node *node = root.get(key);
    if (node == nullptr) return empty;
    const toml::table *table = node->as_table();
    if (table == nullptr) throw ConfigError(std::string(key) + " must be a table ([" + std::string(key) + "])");
    return *table;
}

// Checks that every comma-separated URL has a nats:// or tls:// scheme and a host part.
void validate_nats_urls(const std::string &urls) {
    if (urls.empty()) throw ConfigError("nats.url must not be empty");
    std::stringstream stream(urls);
    std::string url;
    while (std::getline(stream, url, ',')) {
        size_t begin = url.find_first_not_of(' ');
        size_t end = url.find_last_not_of(' ');
        url = begin == std::string::npos ? "" : url.substr(begin, end - begin + 1);
        size_t scheme_end = url.find("://");
        std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
        if (scheme != "nats" && scheme != "tls")
            throw ConfigError("nats.url must be a list of nats:// or tls:// urls, got \"" + url + "\"");
        if (url.size() == scheme_end + 3) throw ConfigError("nats.url \"" + url + "\" has no host");
    }
}

// Checks patroni.url: http:// or https://, a host, no query, fragment or white space. A trailing "/" is
// dropped (the collector appends /patroni and /cluster).
void validate_patroni_url(std::string *url) {
    size_t scheme_end = url->find("://");
    std::string scheme = scheme_end == std::string::npos ? "" : url->substr(0, scheme_end);
    if (scheme != "http" && scheme != "https")
        throw ConfigError("patroni.url must be an http:// or https:// url, got \"" + *url + "\"");
    if (url->find_first_of(" \t\r\n?#") != std::string::npos)
        throw ConfigError("patroni.url must not contain white space, a query or a fragment, got \"" + *url + "\"");
    while (url->size() > scheme_end + 3 && url->back() == '/') url->pop_back();
    size_t host_end = url->find('/', scheme_end + 3);
    if (url->size() == scheme_end + 3 || host_end == scheme_end + 3)
        throw ConfigError("patroni.url \"" + *url + "\" has no host");
}

// Parses the optional [patroni] table into *patroni (see config.h); default_interval is the top-level one.
void parse_patroni(const toml::table &root, int default_interval, PatroniConfig *patroni) {
    patroni->interval_seconds = default_interval;
    if (root.get("patroni") == nullptr) return;
    const toml::table &table = get_table(root, "patroni");
    reject_unknown_keys(table, "patroni",
                        {"url", "enabled", "interval_seconds", "full_refresh_seconds", "timeout_seconds", "member",
                         "ca_file", "cert_file", "key_file", "username", "password"});
    patroni->enabled = true;
    if (const toml::node *enabled = table.get("enabled")) {
        const auto *value = enabled->as_boolean();
        if (value == nullptr) throw ConfigError("patroni.enabled must be true or false");
        patroni->enabled = value->get();
    }
    patroni->interval_seconds = static_cast<int>(
        get_integer(table, "interval_seconds", "patroni.interval_seconds", 1, 3600, default_interval));
    patroni->full_refresh_seconds =
        static_cast<int>(get_integer(table, "full_refresh_seconds", "patroni.full_refresh_seconds", 1, 86400, 600));
    patroni->timeout_seconds =
        static_cast<int>(get_integer(table, "timeout_seconds", "patroni.timeout_seconds", 1, 60, 2));
    patroni->url = get_string(table, "url", "patroni.url", patroni->enabled, "");
    if (!patroni->url.empty()) validate_patroni_url(&patroni->url);
    patroni->member = get_string(table, "member", "patroni.member", false, "");
    patroni->username = get_string(table, "username", "patroni.username", false, "");
    patroni->password = get_string(table, "password", "patroni.password", false, "");
    if (patroni->username.empty() != patroni->password.empty())
        throw ConfigError("patroni.username and patroni.password must be given together");
    const bool https = patroni->url.rfind("https://", 0) == 0;
    struct {
        const char *key;
        std::string *value;
    } files[] = {{"ca_file", &patroni->ca_file}, {"cert_file", &patroni->cert_file}, {"key_file", &patroni->key_file}};
    for (auto &file : files) {
        std::string display = std::string("patroni.") + file.key;
        *file.value = get_string(table, file.key, display, false, "");
        if (file.value->empty()) continue;
        if ((*file.value)[0] != '/')
            throw ConfigError(display + " must be an absolute path, got \"" + *file.value + "\"");
        if (!https && !patroni->url.empty()) throw ConfigError(display + " needs an https:// patroni.url");
    }
    if (!patroni->key_file.empty() && patroni->cert_file.empty())
        throw ConfigError("patroni.key_file needs patroni.cert_file");
}

}  // namespace

bool is_valid_subject_token(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-';
        if (!ok) return false;
    }
    return true;
}

AgentConfig parse_config(std::string_view toml_text, std::string_view source_name) {
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error &error) {
        std::ostringstream message;
        message << "syntax error at line " << error.source().begin.line << ", column "
                << error.source().begin.column << ": " << error.description();
        throw ConfigError(message.str());
    }

    reject_unknown_keys(root, "", {"agent_id", "namespace", "interval_seconds", "spool_dir", "spool_max_bytes",
                                   "activity_sample_seconds", "postgres", "nats", "collectors", "patroni"});
    const toml::table &postgres = get_table(root, "postgres");
    const toml::table &nats = get_table(root, "nats");
    reject_unknown_keys(postgres, "postgres", {"conninfo"});
    reject_unknown_keys(nats, "nats", {"url"});

    AgentConfig config;
    config.agent_id = get_string(root, "agent_id", "agent_id", true, "");
    if (!is_valid_subject_token(config.agent_id))
        throw ConfigError("agent_id must match [A-Za-z0-9_-]{1,64}, got \"" + config.agent_id + "\"");

    config.namespace_name = get_string(root, "namespace", "namespace", false, "default");
    if (!is_valid_subject_token(config.namespace_name))
        throw ConfigError("namespace must match [A-Za-z0-9_-]{1,64}, got \"" + config.namespace_name + "\"");

    config.interval_seconds = static_cast<int>(get_integer(root, "interval_seconds", "interval_seconds", 1, 3600, 10));
    config.spool_max_bytes = static_cast<uint64_t>(
        get_integer(root, "spool_max_bytes", "spool_max_bytes", 4096, int64_t{1} << 50, 256ll << 20));
    config.activity_sample_seconds =
        static_cast<int>(get_integer(root, "activity_sample_seconds", "activity_sample_seconds", 1, 60, 1));

    const toml::table &collectors = get_table(root, "collectors");
    for (const auto &[key, node] : collectors) {
        bool known = false;
        for (const char *name : kCollectorNames) known = known || key.str() == name;
        if (!known)
            throw ConfigError("unknown collector \"collectors." + std::string(key.str()) +
                              "\" (known: metrics, statements, activity, inventory, objects)");
        if (!node.is_table())
            throw ConfigError("collectors." + std::string(key.str()) + " must be a table ([collectors." +
                              std::string(key.str()) + "])");
    }
    for (int i = 0; i < kCollectorCount; i++) {
        std::string prefix = std::string("collectors.") + kCollectorNames[i];
        const toml::node *node = collectors.get(kCollectorNames[i]);
        CollectorConfig &collector = config.collectors[i];
        const bool objects = i == static_cast<int>(CollectorId::objects);
        const int default_interval = objects ? 60 : config.interval_seconds;
        collector.interval_seconds = default_interval;
        if (node == nullptr) continue;
        const toml::table &table = *node->as_table();
        if (objects)
            reject_unknown_keys(table, prefix, {"enabled", "interval_seconds", "full_refresh_seconds"});
        else
            reject_unknown_keys(table, prefix, {"enabled", "interval_seconds"});
        if (const toml::node *enabled = table.get("enabled")) {
            const auto *value = enabled->as_boolean();
            if (value == nullptr) throw ConfigError(prefix + ".enabled must be true or false");
            collector.enabled = value->get();
        }
        collector.interval_seconds = static_cast<int>(
            get_integer(table, "interval_seconds", prefix + ".interval_seconds", 1, 3600, default_interval));
        if (objects)
            collector.full_refresh_seconds = static_cast<int>(
                get_integer(table, "full_refresh_seconds", prefix + ".full_refresh_seconds", 1, 86400, 600));
    }

    config.spool_dir = get_string(root, "spool_dir", "spool_dir", true, "");
    if (config.spool_dir.empty() || config.spool_dir[0] != '/')
        throw ConfigError("spool_dir must be an absolute path, got \"" + config.spool_dir + "\"");

    config.postgres_conninfo = get_string(postgres, "conninfo", "postgres.conninfo", true, "");
    char *parse_error = nullptr;
    PQconninfoOption *options = PQconninfoParse(config.postgres_conninfo.c_str(), &parse_error);
    if (options == nullptr) {
        std::string reason = parse_error != nullptr ? parse_error : "out of memory";
        PQfreemem(parse_error);
        while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
        throw ConfigError("postgres.conninfo is not a valid connection string: " + reason);
    }
    PQconninfoFree(options);

    config.nats_url = get_string(nats, "url", "nats.url", false, "nats://127.0.0.1:4222");
    validate_nats_urls(config.nats_url);
    parse_patroni(root, config.interval_seconds, &config.patroni);
    return config;
}

AgentConfig load_config(const std::string &path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw ConfigError(std::string("could not open file: ") + strerror(errno));
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad()) throw ConfigError(std::string("could not read file: ") + strerror(errno));
    return parse_config(text.str(), path);
}

}  // namespace pgfleet::agent

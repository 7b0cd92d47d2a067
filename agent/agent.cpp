// The agent's main loop.
//
// Threads: one main thread does everything that matters (collect, seal, spool, publish, execute commands)
// in a simple loop. nats.c runs its own threads for the connection; their callbacks only flip atomics,
// queue raw command messages under a mutex (NatsSink) and write a byte to the self-pipe to wake the loop.
// Signal handlers only set flags and write to the same pipe. The loop sleeps in poll() on that pipe with
// a timeout of at most 1 s, so SIGTERM is seen at once, and no call inside an iteration blocks for more
// than about 1 s at a time (PubAck wait 1 s, libpq waits in 200 ms slices that check for SIGTERM).
//
// Collectors and their schedules (each at wall-clock multiples of its own period):
//   metrics     every [collectors.metrics] interval: host (/proc), pg_stat_database, server metrics
//               (bgwriter, WAL, replication, slots, sizes) and the agent's own agent.* series -> "metrics"
//   statements  every [collectors.statements] interval: pg_stat_statements deltas -> "statements"
//   activity    a pg_stat_activity sample every activity_sample_seconds, one aggregate per
//               [collectors.activity] interval -> "activity"
//   inventory   every [collectors.inventory] interval: settings, extensions, databases when they changed
//               (full at the first run and hourly) -> "inventory"
//   objects     every [collectors.objects] interval (default 60 s): per-table/index/sequence/function
//               samples of the connected database, only the objects that changed (all of them every
//               full_refresh_seconds) -> "metrics" (batches of at most kMaxObjectSamplesPerBatch samples)
//   patroni     every [patroni] interval when a url is configured: this node's Patroni REST API (/patroni,
//               /cluster over libcurl, bounded by the poll's budget), only the series that changed ->
//               "metrics"; leader and member changes -> events (agent/patroni.cpp)
//   events      whenever something happened (collector unavailable, spool drops, restarts, Patroni leader
//               or member changes) -> "events"
//   commands    fleet.cmd.<agent_id> (ping, collect_now), executed between collections -> "results"
// Every envelope gets the next batch_seq of this boot, is written to the spool, and the spool is then
// drained oldest first until the first failure; the subject's kind comes from the envelope's payload.
// A publish failure starts an outage (logged once) and an exponential back-off (1 s doubling to 30 s);
// a NATS (re)connection ends the back-off at once. Collection continues during an outage: batches wait in
// the spool, in order, up to spool_max_bytes (then the oldest are dropped, counted and reported).
//
// SIGHUP re-reads the configuration file; an invalid file is refused with a message and the running
// configuration stays. agent_id, namespace, spool_dir and nats.url need a restart (a change is logged
// and ignored); everything else applies from the next collection.
#include "agent/agent.h"

#include "agent/batch.h"
#include "agent/log.h"
#include "agent/nats_sink.h"
#include "agent/patroni.h"
#include "agent/pg_collectors.h"
#include "agent/pg_source.h"
#include "agent/procfs.h"
#include "agent/spool.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <ctime>
#include <unistd.h>

namespace pgfleet::agent {

namespace {

using wire::v1::COUNTER;
using wire::v1::GAUGE;

constexpr int64_t kMaxSleepMs = 1000;
constexpr int64_t kInitialBackoffMs = 1000;
constexpr int64_t kMaxBackoffMs = 30000;

int g_wake_pipe[2] = {-1, -1};
volatile sig_atomic_t g_stop_requested = 0;
volatile sig_atomic_t g_hangup_received = 0;

// Signal handler (runs on whichever thread the kernel picks): records the signal and wakes the main loop.
void handle_signal(int signal_number) {
    int saved_errno = errno;
    if (signal_number == SIGHUP)
        g_hangup_received = 1;
    else
        g_stop_requested = 1;
    char byte = 's';
    ssize_t ignored = write(g_wake_pipe[1], &byte, 1);
    (void)ignored;
    errno = saved_errno;
}

bool stop_requested() { return g_stop_requested != 0; }

int64_t wall_clock_ms() {
    struct timeval now;
    gettimeofday(&now, nullptr);
    return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_usec / 1000;
}

// Returns a random (version 4) UUID in its canonical text form.
std::string make_boot_id() {
    unsigned char bytes[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, bytes, sizeof bytes) != static_cast<ssize_t>(sizeof bytes)) {
        fprintf(stderr, "pgfleet-agent: could not read /dev/urandom: %s\n", strerror(errno));
        abort();  // without a unique boot_id, batches of two boots could be deduplicated into one
    }
    close(fd);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    char text[37];
    snprintf(text, sizeof text, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
             bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10],
             bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
    return text;
}

std::string local_hostname() {
    char name[256];
    if (gethostname(name, sizeof name) != 0) return "";
    name[sizeof name - 1] = '\0';
    return name;
}

// Waits up to timeout_ms for a byte on the self-pipe, then empties it.
void wait_for_wakeup(int64_t timeout_ms) {
    struct pollfd pfd = {g_wake_pipe[0], POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(std::clamp<int64_t>(timeout_ms, 0, kMaxSleepMs))) > 0) {
        char bytes[64];
        while (read(g_wake_pipe[0], bytes, sizeof bytes) > 0) {
        }
    }
}

int64_t monotonic_now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The next wall-clock multiple of period_ms after now_ms.
int64_t next_multiple(int64_t now_ms, int64_t period_ms) { return (now_ms / period_ms + 1) * period_ms; }

// Subject kind of an envelope's payload (architecture.md §2); nullptr for an envelope without payload.
const char *payload_subject_kind(const wire::v1::Envelope &envelope) {
    switch (envelope.payload_case()) {
    case wire::v1::Envelope::kMetrics:
    case wire::v1::Envelope::kMetricsZstd: return "metrics";
    case wire::v1::Envelope::kStatements: return "statements";
    case wire::v1::Envelope::kActivity: return "activity";
    case wire::v1::Envelope::kInventory: return "inventory";
    case wire::v1::Envelope::kEvents: return "events";
    case wire::v1::Envelope::kResult: return "results";
    default: return nullptr;
    }
}

// True when /sys/block/<device> exists, i.e. the device is a whole disk rather than a partition.
bool is_whole_disk(std::string_view device) {
    char path[300];
    snprintf(path, sizeof path, "/sys/block/%.*s", static_cast<int>(device.size()), device.data());
    return access(path, F_OK) == 0;
}

constexpr size_t kMaxPendingEvents = 1000;
// Keeps an objects batch well below NATS's max_payload (1 MiB; a sample is about 100-200 bytes) and the
// agent's peak memory low: a batch being built costs ~700 bytes per sample in protobuf objects, and at 3000
// it made the agent's peak RSS 21.7 MB in bench/agent/run (500: ~19.7 MB). More, smaller messages on a
// full refresh cost ~150 bytes each of headers.
constexpr size_t kMaxObjectSamplesPerBatch = 500;

class Agent {
public:
    Agent(const AgentConfig &config, std::string config_path)
        : config_(config),
          config_path_(std::move(config_path)),
          boot_id_(make_boot_id()),
          hostname_(local_hostname()),
          clock_ticks_per_second_(static_cast<double>(sysconf(_SC_CLK_TCK))),
          page_size_(static_cast<uint64_t>(sysconf(_SC_PAGESIZE))),
          postgres_(config.postgres_conninfo, stop_requested),
          nats_(config.nats_url, g_wake_pipe[1]),
          patroni_(stop_requested) {
        nats_.set_inbox_prefix("_INBOX_" + config.agent_id);
        patroni_.configure(config.patroni);
    }

    // Runs the loop (see run_agent).
    int run(bool once);

private:
    enum Collector { kMetrics = 0, kStatements = 1, kActivity = 2, kInventory = 3, kObjects = 4 };

    // Collectors (main thread). Each records its duration for agent.collect.seconds.
    void run_metrics(int64_t now_ms);
    void run_statements(int64_t now_ms);
    void run_activity_sample(int64_t now_ms, bool flush);
    void run_inventory(int64_t now_ms);
    void run_objects(int64_t now_ms);
    void run_patroni(int64_t now_ms);
    void add_host_metrics();
    void add_postgres_metrics(int64_t now_ms);
    void add_self_metrics();

    // Envelopes: header of a non-metrics envelope, then sealing into the spool.
    wire::v1::Envelope &begin_envelope(int64_t now_ms);
    void seal_envelope();
    void store(uint64_t batch_seq, const std::string &bytes);

    // Events and commands.
    void add_event(const char *kind, const char *severity, const std::string &message,
                   std::initializer_list<std::pair<const char *, std::string>> attributes);
    wire::v1::Event *new_event(const char *kind, const char *severity, const std::string &message);
    void flush_events(int64_t now_ms);
    void report_spool_drops();
    void handle_commands();
    void execute_command(const wire::v1::Command &command);
    void collect_now();

    // PostgreSQL availability shared by the collectors: false (quietly) while the server is down, except
    // for one reconnect attempt per interval; log_postgres_failure() starts an outage (logged once).
    bool postgres_ready(int64_t now_ms);
    void note_postgres_failure(const std::string &error);

    void reload_config();
    void drain_spool();
    void note_publish_failure(const std::string &reason);

    AgentConfig config_;
    const std::string config_path_;
    const std::string boot_id_;
    const std::string hostname_;
    const double clock_ticks_per_second_;
    const uint64_t page_size_;
    uint64_t next_batch_seq_ = 1;

    Spool spool_;
    PgSource postgres_;
    NatsSink nats_;
    BatchBuilder builder_;
    SeriesSetMemory series_sets_;  // the series sets the centre knows: scrapes name them by key
    uint64_t host_values_ = 0;     // host values read (/proc, statvfs): agent.values_collected{source="host"}
    StatementsCollector statements_;
    ActivitySampler activity_sampler_;
    ActivityAggregator activity_;
    ServerMetricsCollector server_metrics_;
    InventoryCollector inventory_;
    ObjectsCollector objects_;
    PatroniCollector patroni_;
    std::vector<PatroniSample> patroni_samples_;
    std::vector<PatroniEvent> patroni_events_;
    int64_t postmaster_start_ms_ = 0;

    // Reused between intervals.
    std::string proc_buffer_;
    std::vector<DatabaseStats> databases_;
    std::vector<DiskStats> disks_;
    std::vector<NetStats> networks_;
    InstanceFacts facts_;
    InstanceFacts last_sent_facts_;
    bool facts_sent_ = false;
    std::string system_identifier_;
    CpuTimes previous_cpu_;
    bool have_previous_cpu_ = false;
    std::string spooled_bytes_;
    wire::v1::Envelope spooled_envelope_;
    wire::v1::Envelope envelope_;  // non-metrics envelopes
    std::string envelope_bytes_;
    std::string subject_;
    std::string msg_id_;
    std::vector<wire::v1::Event> pending_events_;
    std::vector<std::string> command_payloads_;
    wire::v1::Command command_;

    // Schedules (wall clock, ms).
    int64_t next_run_ms_[kCollectorCount] = {};
    int64_t next_activity_sample_ms_ = 0;
    int64_t next_pg_retry_ms_ = 0;
    int64_t next_patroni_ms_ = 0;

    // The agent's own counters (agent.* series).
    double collect_seconds_[kCollectorCount] = {};
    bool collected_[kCollectorCount] = {};
    uint64_t errors_ = 0;
    uint64_t spool_dropped_ = 0;
    uint64_t spool_dropped_unreported_ = 0;
    uint64_t spool_write_errors_ = 0;
    uint64_t commands_executed_ = 0;
    uint64_t commands_dropped_reported_ = 0;
    double patroni_collect_seconds_ = 0;
    bool patroni_collected_ = false;
    uint64_t patroni_errors_ = 0;

    // Outage state: each is logged once when it starts and once when it ends.
    bool postgres_down_ = false;
    bool statements_unavailable_ = false;
    bool statements_failing_ = false;
    bool activity_failing_ = false;
    bool inventory_failing_ = false;
    bool objects_failing_ = false;
    bool objects_cut_logged_ = false;
    bool patroni_down_ = false;
    std::string server_metrics_errors_;
    bool nats_down_ = false;
    bool proc_stat_broken_ = false;
    bool meminfo_broken_ = false;
    bool spool_broken_ = false;
    bool spool_full_ = false;  // dropping batches over spool_max_bytes (an episode)
    bool subscribe_failing_ = false;
    int64_t nats_down_since_ms_ = 0;
    int64_t backoff_ms_ = kInitialBackoffMs;
    int64_t next_drain_ms_ = 0;
};

bool Agent::postgres_ready(int64_t now_ms) {
    if (!postgres_down_) return true;
    if (now_ms < next_pg_retry_ms_) return false;
    next_pg_retry_ms_ = now_ms + static_cast<int64_t>(config_.interval_seconds) * 1000;
    std::string error;
    if (!postgres_.ensure_connected(&error)) return false;
    log_message(LogLevel::log, "PostgreSQL answers again; collecting its metrics");
    postgres_down_ = false;
    return true;
}

void Agent::note_postgres_failure(const std::string &error) {
    errors_++;
    if (stop_requested()) return;
    if (!postgres_down_)
        log_message(LogLevel::warning,
                    "cannot collect from PostgreSQL: %s; sending host metrics only and retrying every interval",
                    error.c_str());
    postgres_down_ = true;
    next_pg_retry_ms_ = wall_clock_ms() + static_cast<int64_t>(config_.interval_seconds) * 1000;
}

void Agent::add_host_metrics() {
    CpuTimes cpu;
    if (read_proc_file("/proc/stat", &proc_buffer_) && parse_proc_stat(proc_buffer_, &cpu)) {
        for (int mode = 0; mode < kCpuModeCount; mode++)
            builder_.add("host.cpu.seconds", COUNTER, "seconds", {{"mode", kCpuModeNames[mode]}},
                         static_cast<double>(cpu.jiffies[mode]) / clock_ticks_per_second_);
        double percent;
        if (have_previous_cpu_ && cpu_utilization_percent(previous_cpu_, cpu, &percent))
            builder_.add("host.cpu.utilization", GAUGE, "percent", {}, percent);
        previous_cpu_ = cpu;
        have_previous_cpu_ = true;
        if (proc_stat_broken_) log_message(LogLevel::log, "/proc/stat is readable again");
        proc_stat_broken_ = false;
    } else if (!proc_stat_broken_) {
        log_message(LogLevel::warning, "could not read CPU times from /proc/stat; host.cpu metrics skipped");
        proc_stat_broken_ = true;
        errors_++;
    }

    MemInfo memory;
    if (read_proc_file("/proc/meminfo", &proc_buffer_) && parse_meminfo(proc_buffer_, &memory)) {
        builder_.add("host.memory.total_bytes", GAUGE, "bytes", {}, static_cast<double>(memory.total_bytes));
        builder_.add("host.memory.available_bytes", GAUGE, "bytes", {},
                     static_cast<double>(memory.available_bytes));
        uint64_t used = memory.total_bytes > memory.available_bytes ? memory.total_bytes - memory.available_bytes : 0;
        builder_.add("host.memory.used_bytes", GAUGE, "bytes", {}, static_cast<double>(used));
        builder_.add("host.swap.total_bytes", GAUGE, "bytes", {}, static_cast<double>(memory.swap_total_bytes));
        builder_.add("host.swap.used_bytes", GAUGE, "bytes", {},
                     static_cast<double>(memory.swap_total_bytes - std::min(memory.swap_free_bytes,
                                                                            memory.swap_total_bytes)));
        if (meminfo_broken_) log_message(LogLevel::log, "/proc/meminfo is readable again");
        meminfo_broken_ = false;
    } else if (!meminfo_broken_) {
        log_message(LogLevel::warning,
                    "could not read MemTotal/MemAvailable from /proc/meminfo; host.memory metrics skipped");
        meminfo_broken_ = true;
        errors_++;
    }

    double load[3];
    if (read_proc_file("/proc/loadavg", &proc_buffer_) && parse_loadavg(proc_buffer_, load)) {
        builder_.add("host.load.1m", GAUGE, "", {}, load[0]);
        builder_.add("host.load.5m", GAUGE, "", {}, load[1]);
        builder_.add("host.load.15m", GAUGE, "", {}, load[2]);
    }

    if (read_proc_file("/proc/diskstats", &proc_buffer_) && parse_diskstats(proc_buffer_, &disks_, is_whole_disk)) {
        for (const DiskStats &disk : disks_) {
            LabelRef device{"device", disk.device};
            builder_.add("host.disk.reads", COUNTER, "", {device}, static_cast<double>(disk.reads));
            builder_.add("host.disk.read_bytes", COUNTER, "bytes", {device}, static_cast<double>(disk.read_bytes));
            builder_.add("host.disk.writes", COUNTER, "", {device}, static_cast<double>(disk.writes));
            builder_.add("host.disk.write_bytes", COUNTER, "bytes", {device}, static_cast<double>(disk.write_bytes));
            builder_.add("host.disk.io_seconds", COUNTER, "seconds", {device}, static_cast<double>(disk.io_ms) / 1000.0);
        }
    }

    if (read_proc_file("/proc/net/dev", &proc_buffer_) && parse_net_dev(proc_buffer_, &networks_)) {
        for (const NetStats &net : networks_) {
            LabelRef interface{"interface", net.interface};
            builder_.add("host.network.receive_bytes", COUNTER, "bytes", {interface},
                         static_cast<double>(net.receive_bytes));
            builder_.add("host.network.transmit_bytes", COUNTER, "bytes", {interface},
                         static_cast<double>(net.transmit_bytes));
            builder_.add("host.network.receive_packets", COUNTER, "", {interface},
                         static_cast<double>(net.receive_packets));
            builder_.add("host.network.transmit_packets", COUNTER, "", {interface},
                         static_cast<double>(net.transmit_packets));
            builder_.add("host.network.errors", COUNTER, "", {interface},
                         static_cast<double>(net.receive_errors + net.transmit_errors));
            builder_.add("host.network.drops", COUNTER, "", {interface},
                         static_cast<double>(net.receive_drops + net.transmit_drops));
        }
    }

    // The file system holding PGDATA (known once PostgreSQL answered; the agent runs on the same host).
    struct statvfs fs;
    if (!facts_.data_directory.empty() && statvfs(facts_.data_directory.c_str(), &fs) == 0) {
        LabelRef path{"path", facts_.data_directory};
        double total = static_cast<double>(fs.f_blocks) * fs.f_frsize;
        double available = static_cast<double>(fs.f_bavail) * fs.f_frsize;
        double free_bytes = static_cast<double>(fs.f_bfree) * fs.f_frsize;
        builder_.add("host.filesystem.total_bytes", GAUGE, "bytes", {path}, total);
        builder_.add("host.filesystem.available_bytes", GAUGE, "bytes", {path}, available);
        builder_.add("host.filesystem.used_bytes", GAUGE, "bytes", {path}, total - free_bytes);
        builder_.add("host.filesystem.free_inodes", GAUGE, "", {path}, static_cast<double>(fs.f_favail));
    }
}

void Agent::add_postgres_metrics(int64_t now_ms) {
    if (!postgres_ready(now_ms)) return;
    std::string error;
    if (!postgres_.collect(&databases_, &facts_, &error)) {
        note_postgres_failure(error);
        return;
    }
    if (!system_identifier_.empty() && system_identifier_ != facts_.system_identifier) {
        log_message(LogLevel::log, "the monitored server changed (system identifier %s, was %s)",
                    facts_.system_identifier.c_str(), system_identifier_.c_str());
        statements_.forget();
        inventory_.forget();
        objects_.forget();
    } else if (postmaster_start_ms_ != 0 && facts_.postmaster_start_unix_ms != postmaster_start_ms_) {
        log_message(LogLevel::log, "PostgreSQL was restarted");
        add_event("postgres.restarted", "warning", "PostgreSQL was restarted",
                  {{"postmaster_start_unix_ms", std::to_string(facts_.postmaster_start_unix_ms)}});
    }
    system_identifier_ = facts_.system_identifier;
    postmaster_start_ms_ = facts_.postmaster_start_unix_ms;

    for (const DatabaseStats &db : databases_) {
        LabelRef datname{"datname", db.datname};
        builder_.add("pg.database.xact_commit", COUNTER, "", {datname}, db.xact_commit);
        builder_.add("pg.database.xact_rollback", COUNTER, "", {datname}, db.xact_rollback);
        builder_.add("pg.database.blks_hit", COUNTER, "", {datname}, db.blks_hit);
        builder_.add("pg.database.blks_read", COUNTER, "", {datname}, db.blks_read);
        builder_.add("pg.database.numbackends", GAUGE, "", {datname}, db.numbackends);
        builder_.add("pg.database.tup_returned", COUNTER, "", {datname}, db.tup_returned);
        builder_.add("pg.database.tup_fetched", COUNTER, "", {datname}, db.tup_fetched);
        builder_.add("pg.database.tup_inserted", COUNTER, "", {datname}, db.tup_inserted);
        builder_.add("pg.database.tup_updated", COUNTER, "", {datname}, db.tup_updated);
        builder_.add("pg.database.tup_deleted", COUNTER, "", {datname}, db.tup_deleted);
        builder_.add("pg.database.conflicts", COUNTER, "", {datname}, db.conflicts);
        builder_.add("pg.database.temp_files", COUNTER, "", {datname}, db.temp_files);
        builder_.add("pg.database.temp_bytes", COUNTER, "bytes", {datname}, db.temp_bytes);
        builder_.add("pg.database.deadlocks", COUNTER, "", {datname}, db.deadlocks);
        builder_.add("pg.database.xid_age", GAUGE, "", {datname}, db.xid_age);
        builder_.add("pg.database.mxid_age", GAUGE, "", {datname}, db.mxid_age);
    }
    facts_.hostname = hostname_;
    if (!facts_sent_ || facts_ != last_sent_facts_) {
        builder_.set_instance(facts_);
        last_sent_facts_ = facts_;
        facts_sent_ = true;
    }

    std::string errors;
    bool alive = server_metrics_.collect(postgres_, now_ms, &builder_, &errors);
    if (!errors.empty() && errors != server_metrics_errors_) {
        log_message(LogLevel::warning, "some server metrics could not be read: %s", errors.c_str());
        errors_++;
    } else if (errors.empty() && !server_metrics_errors_.empty()) {
        log_message(LogLevel::log, "all server metrics are readable again");
    }
    server_metrics_errors_ = errors;
    if (!alive) note_postgres_failure(errors);
}

void Agent::add_self_metrics() {
    for (int i = 0; i < kCollectorCount; i++)
        if (collected_[i])
            builder_.add("agent.collect.seconds", GAUGE, "seconds", {{"collector", kCollectorNames[i]}},
                         collect_seconds_[i]);
    if (patroni_collected_)
        builder_.add("agent.collect.seconds", GAUGE, "seconds", {{"collector", "patroni"}}, patroni_collect_seconds_);
    if (config_.patroni.active() || patroni_errors_ > 0)
        builder_.add("agent.patroni.errors", COUNTER, "", {}, static_cast<double>(patroni_errors_));
    builder_.add("agent.queries", COUNTER, "", {}, static_cast<double>(postgres_.query_count()));
    // values read, sent or not (only what changed is sent): the agent's "samples collected"
    builder_.add("agent.values_collected", COUNTER, "", {{"source", "postgres"}}, static_cast<double>(postgres_.values_read()));
    builder_.add("agent.values_collected", COUNTER, "", {{"source", "host"}}, static_cast<double>(host_values_));
    builder_.add("agent.bytes_sent", COUNTER, "bytes", {}, static_cast<double>(nats_.bytes_sent()));
    builder_.add("agent.spool.bytes", GAUGE, "bytes", {}, static_cast<double>(spool_.bytes()));
    builder_.add("agent.spool.batches", GAUGE, "", {}, static_cast<double>(spool_.size()));
    builder_.add("agent.spool.dropped", COUNTER, "", {}, static_cast<double>(spool_dropped_));
    builder_.add("agent.spool.write_errors", COUNTER, "", {}, static_cast<double>(spool_write_errors_));
    builder_.add("agent.errors", COUNTER, "", {}, static_cast<double>(errors_));
    builder_.add("agent.commands", COUNTER, "", {}, static_cast<double>(commands_executed_));
    builder_.add("agent.statements.tracked", GAUGE, "", {}, static_cast<double>(statements_.tracked()));
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) == 0) {
        double cpu = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
                     usage.ru_stime.tv_usec / 1e6;
        builder_.add("agent.cpu.seconds", COUNTER, "seconds", {}, cpu);
    }
    uint64_t rss;
    if (read_proc_file("/proc/self/statm", &proc_buffer_) && parse_statm_rss(proc_buffer_, page_size_, &rss))
        builder_.add("agent.rss_bytes", GAUGE, "bytes", {}, static_cast<double>(rss));
}

void Agent::run_metrics(int64_t now_ms) {
    int64_t started = monotonic_now_ms();
    uint64_t batch_seq = next_batch_seq_++;
    builder_.begin(config_.agent_id, config_.namespace_name, boot_id_, batch_seq, now_ms);
    size_t before_host = builder_.sample_count();
    add_host_metrics();
    host_values_ += builder_.sample_count() - before_host;
    add_postgres_metrics(now_ms);
    collect_seconds_[kMetrics] = (monotonic_now_ms() - started) / 1000.0;
    collected_[kMetrics] = true;
    add_self_metrics();
    const std::string &bytes = builder_.seal(&series_sets_);
    log_message(LogLevel::debug, "sealed metrics batch %llu: %zu samples, %zu bytes",
                static_cast<unsigned long long>(batch_seq), builder_.sample_count(), bytes.size());
    store(batch_seq, bytes);
}

void Agent::run_statements(int64_t now_ms) {
    if (!postgres_ready(now_ms)) return;
    int64_t started = monotonic_now_ms();
    std::string error;
    wire::v1::Envelope &envelope = begin_envelope(now_ms);
    CollectStatus status = statements_.collect(postgres_, now_ms, envelope.mutable_statements(), &error);
    collect_seconds_[kStatements] = (monotonic_now_ms() - started) / 1000.0;
    collected_[kStatements] = true;
    if (status == CollectStatus::unavailable) {
        if (!statements_unavailable_) {
            log_message(LogLevel::warning, "statements collector not available: %s; other collectors go on",
                        error.c_str());
            add_event("collector.unavailable", "warning", "statements collector not available: " + error,
                      {{"collector", "statements"}, {"reason", error}});
            statements_unavailable_ = true;
        }
        next_batch_seq_--;  // nothing sealed: the reserved batch_seq is given back
        return;
    }
    if (status == CollectStatus::failed) {
        next_batch_seq_--;
        if (!postgres_.connected()) {
            note_postgres_failure(error);
            return;
        }
        errors_++;
        if (!statements_failing_) log_message(LogLevel::warning, "could not collect statements: %s", error.c_str());
        statements_failing_ = true;
        return;
    }
    if (statements_unavailable_) {
        log_message(LogLevel::log, "statements collector is available again");
        add_event("collector.available", "info", "statements collector is available again",
                  {{"collector", "statements"}});
    }
    if (statements_failing_) log_message(LogLevel::log, "statements are collected again");
    statements_unavailable_ = false;
    statements_failing_ = false;
    if (!StatementsCollector::has_content(envelope.statements())) {
        next_batch_seq_--;
        return;
    }
    log_message(LogLevel::debug, "statements: %d deltas, %d texts", envelope.statements().deltas_size(),
                envelope.statements().texts_size());
    if (envelope.statements().deltas_size() <= StatementsCollector::kMaxDeltasPerBatch) {
        seal_envelope();
        return;
    }
    // Many changed entries (e.g. after a reset of a large pg_stat_statements): several envelopes of at most
    // kMaxDeltasPerBatch deltas, each with the names and interval, the texts in the first one.
    wire::v1::StatementBatch all;
    all.Swap(envelope.mutable_statements());
    int chunks = (all.deltas_size() + StatementsCollector::kMaxDeltasPerBatch - 1) / StatementsCollector::kMaxDeltasPerBatch;
    log_message(LogLevel::log, "statements: %d changed entries in this interval, sent in %d batches", all.deltas_size(),
                chunks);
    next_batch_seq_--;  // the envelope begun above is rebuilt as the first chunk
    for (int first = 0; first < all.deltas_size(); first += StatementsCollector::kMaxDeltasPerBatch) {
        wire::v1::StatementBatch *chunk = begin_envelope(now_ms).mutable_statements();
        chunk->set_interval_start_unix_ms(all.interval_start_unix_ms());
        chunk->set_interval_end_unix_ms(all.interval_end_unix_ms());
        chunk->set_stats_reset(all.stats_reset());
        *chunk->mutable_database_names() = all.database_names();
        *chunk->mutable_user_names() = all.user_names();
        if (first == 0) chunk->mutable_texts()->Swap(all.mutable_texts());
        int last = std::min(all.deltas_size(), first + StatementsCollector::kMaxDeltasPerBatch);
        for (int i = first; i < last; i++) chunk->add_deltas()->Swap(all.mutable_deltas(i));
        seal_envelope();
    }
}

void Agent::run_activity_sample(int64_t now_ms, bool flush) {
    if (postgres_ready(now_ms)) {
        int64_t started = monotonic_now_ms();
        std::string error;
        if (activity_sampler_.sample(postgres_, &activity_, flush, &error)) {
            if (activity_failing_) log_message(LogLevel::log, "pg_stat_activity is sampled again");
            activity_failing_ = false;
        } else if (!postgres_.connected()) {
            note_postgres_failure(error);
        } else {
            errors_++;
            if (!activity_failing_) log_message(LogLevel::warning, "could not sample pg_stat_activity: %s", error.c_str());
            activity_failing_ = true;
        }
        collect_seconds_[kActivity] = (monotonic_now_ms() - started) / 1000.0;
        collected_[kActivity] = true;
    }
    if (!flush) return;
    if (activity_.samples_taken() == 0) {
        activity_.begin_interval(now_ms);
        return;
    }
    wire::v1::Envelope &envelope = begin_envelope(now_ms);
    activity_.flush(now_ms, envelope.mutable_activity());
    seal_envelope();
}

void Agent::run_inventory(int64_t now_ms) {
    if (!postgres_ready(now_ms)) return;
    int64_t started = monotonic_now_ms();
    std::string error;
    bool changed = false;
    wire::v1::Envelope &envelope = begin_envelope(now_ms);
    bool ok = inventory_.collect(postgres_, now_ms, envelope.mutable_inventory(), &changed, &error);
    collect_seconds_[kInventory] = (monotonic_now_ms() - started) / 1000.0;
    collected_[kInventory] = true;
    if (!ok) {
        next_batch_seq_--;
        if (!postgres_.connected()) {
            note_postgres_failure(error);
            return;
        }
        errors_++;
        if (!inventory_failing_) log_message(LogLevel::warning, "could not read the inventory: %s", error.c_str());
        inventory_failing_ = true;
        return;
    }
    if (inventory_failing_) log_message(LogLevel::log, "the inventory is read again");
    inventory_failing_ = false;
    if (!changed) {
        next_batch_seq_--;
        return;
    }
    log_message(LogLevel::debug, "inventory: %s, %d settings", envelope.inventory().full() ? "full" : "changes",
                envelope.inventory().settings_size());
    seal_envelope();
    inventory_.sent(now_ms);
}

void Agent::run_objects(int64_t now_ms) {
    if (!postgres_ready(now_ms)) return;
    int64_t started = monotonic_now_ms();
    objects_.set_full_refresh_ms(config_.collector(CollectorId::objects).full_refresh_seconds * 1000LL);
    bool open = false;  // a batch is begun in builder_
    size_t batches = 0;
    auto seal = [&] {
        const std::string &bytes = builder_.seal(&series_sets_);
        store(builder_.batch_seq(), bytes);
        batches++;
        open = false;
    };
    auto next_builder = [&]() -> BatchBuilder * {
        if (open && builder_.sample_count() >= kMaxObjectSamplesPerBatch) seal();
        if (!open) {
            builder_.begin(config_.agent_id, config_.namespace_name, boot_id_, next_batch_seq_++, now_ms);
            open = true;
        }
        return &builder_;
    };
    int sent = 0;
    bool cut = false;
    std::string error;
    bool ok = objects_.collect(postgres_, now_ms, next_builder, &sent, &cut, &error);
    if (open) seal();  // also after a failure: what was added is recorded as sent
    collect_seconds_[kObjects] = (monotonic_now_ms() - started) / 1000.0;
    collected_[kObjects] = true;
    if (!ok) {
        if (!postgres_.connected()) {
            note_postgres_failure(error);
            return;
        }
        errors_++;
        if (!objects_failing_) log_message(LogLevel::warning, "could not collect object statistics: %s", error.c_str());
        objects_failing_ = true;
        return;
    }
    if (objects_failing_) log_message(LogLevel::log, "object statistics are collected again");
    objects_failing_ = false;
    if (cut && !objects_cut_logged_)
        log_message(LogLevel::warning, "objects: more than %d tables, indexes, sequences and functions; only the "
                    "first %d are collected", ObjectsCollector::kMaxObjects, ObjectsCollector::kMaxObjects);
    objects_cut_logged_ = objects_cut_logged_ || cut;
    log_message(LogLevel::debug, "objects: %d changed objects in %zu batches (%zu tracked)", sent, batches,
                objects_.tracked());
}

void Agent::run_patroni(int64_t now_ms) {
    int64_t started = monotonic_now_ms();
    patroni_samples_.clear();
    patroni_events_.clear();
    std::string error;
    PatroniPoll result = patroni_.collect(now_ms, &patroni_samples_, &patroni_events_, &error);
    patroni_collect_seconds_ = (monotonic_now_ms() - started) / 1000.0;
    patroni_collected_ = true;
    if (stop_requested()) return;  // a request cut short by SIGTERM is neither an outage nor data
    if (result != PatroniPoll::ok) {
        patroni_errors_++;
        errors_++;
        if (!patroni_down_) {
            log_message(LogLevel::warning, "cannot read Patroni's REST API: %s; other collectors go on, retrying every %d s",
                        error.c_str(), config_.patroni.interval_seconds);
            add_event("collector.unavailable", "warning", "patroni collector not available: " + error,
                      {{"collector", "patroni"}, {"reason", error}});
            patroni_down_ = true;
        }
    } else if (patroni_down_) {
        log_message(LogLevel::log, "Patroni's REST API answers again");
        add_event("collector.available", "info", "patroni collector is available again", {{"collector", "patroni"}});
        patroni_down_ = false;
    }
    for (const PatroniEvent &patroni_event : patroni_events_) {
        log_message(LogLevel::log, "%s", patroni_event.message.c_str());
        wire::v1::Event *event = new_event(patroni_event.kind.c_str(), patroni_event.severity.c_str(),
                                           patroni_event.message);
        if (event == nullptr) break;
        for (const auto &[name, value] : patroni_event.attributes) (*event->mutable_attributes())[name] = value;
    }
    if (patroni_samples_.empty()) return;  // nothing changed
    uint64_t batch_seq = next_batch_seq_++;
    builder_.begin(config_.agent_id, config_.namespace_name, boot_id_, batch_seq, now_ms);
    for (const PatroniSample &sample : patroni_samples_) {
        LabelRef member{"member", sample.member};
        LabelRef scope{"scope", sample.scope};
        if (sample.member.empty() && sample.scope.empty())
            builder_.add(sample.metric, GAUGE, sample.unit, {}, sample.value);
        else if (sample.member.empty())
            builder_.add(sample.metric, GAUGE, sample.unit, {scope}, sample.value);
        else if (sample.scope.empty())
            builder_.add(sample.metric, GAUGE, sample.unit, {member}, sample.value);
        else
            builder_.add(sample.metric, GAUGE, sample.unit, {member, scope}, sample.value);
    }
    const std::string &bytes = builder_.seal(&series_sets_);
    log_message(LogLevel::debug, "patroni: %zu changed series in batch %llu", patroni_samples_.size(),
                static_cast<unsigned long long>(batch_seq));
    store(batch_seq, bytes);
}

wire::v1::Envelope &Agent::begin_envelope(int64_t now_ms) {
    envelope_.Clear();
    envelope_.set_schema_major(kSchemaMajor);
    envelope_.set_schema_minor(kSchemaMinor);
    envelope_.set_agent_id(config_.agent_id);
    envelope_.set_namespace_(config_.namespace_name);
    envelope_.set_boot_id(boot_id_);
    envelope_.set_batch_seq(next_batch_seq_++);
    envelope_.set_created_unix_ms(now_ms);
    return envelope_;
}

void Agent::seal_envelope() {
    if (!envelope_.SerializeToString(&envelope_bytes_)) {
        log_message(LogLevel::error, "could not serialize batch %llu; it is lost",
                    static_cast<unsigned long long>(envelope_.batch_seq()));
        errors_++;
        return;
    }
    store(envelope_.batch_seq(), envelope_bytes_);
}

void Agent::store(uint64_t batch_seq, const std::string &bytes) {
    std::string error;
    bool enospc = false;
    bool written = spool_.append(boot_id_, batch_seq, bytes, &error, &enospc);
    if (written && error.empty()) {
        // The episode ends only once nothing is held in memory any more: on a nearly full disk a small
        // batch may still fit while the next large one does not.
        if (spool_broken_ && spool_.in_memory() == 0) {
            log_message(LogLevel::log, "spool is writable again");
            spool_broken_ = false;
        }
    } else if (written) {  // listed, but the directory fsync failed
        log_message(LogLevel::warning, "%s", error.c_str());
    } else {
        // Kept in memory by the spool: still published in order, but lost on a restart.
        spool_write_errors_++;
        errors_++;
        if (!spool_broken_) {
            log_message(LogLevel::error, "cannot write to the spool%s: %s", enospc ? " (disk full)" : "",
                        error.c_str());
            add_event("spool.write_failed", "error", error,
                      {{"reason", enospc ? "disk full" : "write error"}, {"spool_dir", config_.spool_dir}});
        }
        spool_broken_ = true;
    }
    size_t dropped = spool_.enforce_limit(config_.spool_max_bytes);
    if (dropped > 0) {
        spool_dropped_ += dropped;
        spool_dropped_unreported_ += dropped;
        if (!spool_full_)
            log_message(LogLevel::warning,
                        "spool exceeds spool_max_bytes (%llu bytes); dropping the oldest batches until it is "
                        "published again",
                        static_cast<unsigned long long>(config_.spool_max_bytes));
        spool_full_ = true;
    }
}

wire::v1::Event *Agent::new_event(const char *kind, const char *severity, const std::string &message) {
    if (pending_events_.size() >= kMaxPendingEvents) return nullptr;
    wire::v1::Event &event = pending_events_.emplace_back();
    event.set_ts_unix_ms(wall_clock_ms());
    event.set_kind(kind);
    event.set_severity(severity);
    event.set_message(message);
    return &event;
}

void Agent::add_event(const char *kind, const char *severity, const std::string &message,
                      std::initializer_list<std::pair<const char *, std::string>> attributes) {
    wire::v1::Event *event = new_event(kind, severity, message);
    if (event == nullptr) return;
    for (const auto &[name, value] : attributes) (*event->mutable_attributes())[name] = value;
}

void Agent::report_spool_drops() {
    // Reported once the stream takes batches again, so the event itself is not dropped.
    if (spool_dropped_unreported_ == 0 || nats_down_ || !spool_.empty()) return;
    log_message(LogLevel::warning, "%llu batches were dropped from the full spool (spool_max_bytes %llu)",
                static_cast<unsigned long long>(spool_dropped_unreported_),
                static_cast<unsigned long long>(config_.spool_max_bytes));
    add_event("spool.dropped", "warning",
              std::to_string(spool_dropped_unreported_) + " batches were dropped: the spool exceeded spool_max_bytes",
              {{"count", std::to_string(spool_dropped_unreported_)},
               {"total", std::to_string(spool_dropped_)},
               {"spool_max_bytes", std::to_string(config_.spool_max_bytes)}});
    spool_dropped_unreported_ = 0;
    spool_full_ = false;
}

void Agent::flush_events(int64_t now_ms) {
    uint64_t dropped = nats_.commands_dropped();
    if (dropped > commands_dropped_reported_) {
        add_event("commands.dropped", "warning", "commands were dropped: the command queue was full",
                  {{"count", std::to_string(dropped - commands_dropped_reported_)}});
        commands_dropped_reported_ = dropped;
    }
    if (pending_events_.empty()) return;
    wire::v1::Envelope &envelope = begin_envelope(now_ms);
    wire::v1::EventBatch *batch = envelope.mutable_events();
    for (wire::v1::Event &event : pending_events_) batch->add_events()->Swap(&event);
    pending_events_.clear();
    seal_envelope();
}

void Agent::collect_now() {
    int64_t now = wall_clock_ms();
    if (config_.collector(CollectorId::metrics).enabled) run_metrics(now);
    if (config_.collector(CollectorId::statements).enabled) run_statements(now);
    if (config_.collector(CollectorId::activity).enabled) run_activity_sample(now, true);
    if (config_.collector(CollectorId::inventory).enabled) run_inventory(now);
    if (config_.collector(CollectorId::objects).enabled) run_objects(now);
    if (config_.patroni.active()) run_patroni(now);
}

void Agent::execute_command(const wire::v1::Command &command) {
    int64_t started = wall_clock_ms();
    wire::v1::CommandResult result;
    result.set_command_id(command.command_id());
    result.set_kind(command.kind());
    if (command.kind() == "ping") {
        result.set_ok(true);
        (*result.mutable_output())["pong"] = kAgentVersion;
    } else if (command.kind() == "collect_now") {
        collect_now();
        result.set_ok(true);
        (*result.mutable_output())["boot_id"] = boot_id_;
    } else {
        result.set_ok(false);
        result.set_message("unknown command \"" + command.kind() + "\"");
    }
    result.set_started_unix_ms(started);
    result.set_finished_unix_ms(wall_clock_ms());
    log_message(LogLevel::log, "command %s (%s): %s", command.kind().c_str(), command.command_id().c_str(),
                result.ok() ? "ok" : result.message().c_str());
    commands_executed_++;
    wire::v1::Envelope &envelope = begin_envelope(result.finished_unix_ms());
    envelope.mutable_result()->Swap(&result);
    seal_envelope();
}

void Agent::handle_commands() {
    nats_.take_commands(&command_payloads_);
    for (const std::string &payload : command_payloads_) {
        if (!command_.ParseFromString(payload) || command_.kind().empty()) {
            errors_++;
            log_message(LogLevel::warning, "ignoring an undecodable command message (%zu bytes)", payload.size());
            continue;
        }
        execute_command(command_);
    }
}

void Agent::reload_config() {
    AgentConfig fresh;
    try {
        fresh = load_config(config_path_);
    } catch (const ConfigError &error) {
        log_message(LogLevel::error, "invalid configuration \"%s\": %s; keeping the previous configuration",
                    config_path_.c_str(), error.what());
        errors_++;
        return;
    }
    // Needs a restart: the identity of batches and subscriptions, the spool and the NATS connection.
    auto keep = [&](const char *key, std::string *fresh_value, const std::string &running) {
        if (*fresh_value != running) {
            log_message(LogLevel::warning, "%s changed; that takes effect only after a restart (keeping \"%s\")", key,
                        running.c_str());
            *fresh_value = running;
        }
    };
    keep("agent_id", &fresh.agent_id, config_.agent_id);
    keep("namespace", &fresh.namespace_name, config_.namespace_name);
    keep("spool_dir", &fresh.spool_dir, config_.spool_dir);
    if (fresh.nats_url != config_.nats_url) {
        log_message(LogLevel::warning, "nats.url changed; that takes effect only after a restart (keeping \"%s\")",
                    redact_nats_urls(config_.nats_url).c_str());
        fresh.nats_url = config_.nats_url;
    }
    for (int i = 0; i < kCollectorCount; i++) {
        if (fresh.collectors[i].enabled != config_.collectors[i].enabled ||
            fresh.collectors[i].interval_seconds != config_.collectors[i].interval_seconds)
            next_run_ms_[i] = 0;  // rescheduled below
        if (i == kStatements && fresh.collectors[i].enabled && !config_.collectors[i].enabled) statements_.forget();
        if (i == kObjects && fresh.collectors[i].enabled && !config_.collectors[i].enabled) objects_.forget();
    }
    if (fresh.patroni != config_.patroni) {
        if (fresh.patroni.active() != config_.patroni.active() ||
            fresh.patroni.interval_seconds != config_.patroni.interval_seconds)
            next_patroni_ms_ = 0;  // rescheduled below
        if (!fresh.patroni.active()) patroni_down_ = false;
        patroni_.configure(fresh.patroni);
    }
    postgres_.set_conninfo(fresh.postgres_conninfo);
    config_ = fresh;
    int64_t now = wall_clock_ms();
    for (int i = 0; i < kCollectorCount; i++)
        if (next_run_ms_[i] == 0) next_run_ms_[i] = next_multiple(now, config_.collectors[i].interval_seconds * 1000LL);
    next_activity_sample_ms_ = next_multiple(now, config_.activity_sample_seconds * 1000LL);
    if (next_patroni_ms_ == 0) next_patroni_ms_ = next_multiple(now, config_.patroni.interval_seconds * 1000LL);
    log_message(LogLevel::log,
                "configuration reloaded: interval=%ds metrics=%s/%ds statements=%s/%ds activity=%s/%ds sample=%ds "
                "inventory=%s/%ds spool_max_bytes=%llu objects=%s/%ds/refresh %ds patroni=%s/%ds",
                config_.interval_seconds, config_.collectors[0].enabled ? "on" : "off",
                config_.collectors[0].interval_seconds, config_.collectors[1].enabled ? "on" : "off",
                config_.collectors[1].interval_seconds, config_.collectors[2].enabled ? "on" : "off",
                config_.collectors[2].interval_seconds, config_.activity_sample_seconds,
                config_.collectors[3].enabled ? "on" : "off", config_.collectors[3].interval_seconds,
                static_cast<unsigned long long>(config_.spool_max_bytes), config_.collectors[4].enabled ? "on" : "off",
                config_.collectors[4].interval_seconds, config_.collectors[4].full_refresh_seconds,
                config_.patroni.active() ? "on" : "off", config_.patroni.interval_seconds);
}

void Agent::note_publish_failure(const std::string &reason) {
    int64_t now = wall_clock_ms();
    if (!nats_down_) {
        log_message(LogLevel::warning, "cannot publish to NATS: %s; keeping batches in the spool (%zu waiting)",
                    reason.c_str(), spool_.size());
        nats_down_ = true;
        nats_down_since_ms_ = now;
        errors_++;
    }
    next_drain_ms_ = now + backoff_ms_;
    backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
}

void Agent::drain_spool() {
    size_t published = 0;
    size_t duplicates = 0;
    std::string error;
    while (!spool_.empty() && !stop_requested()) {
        if (!spool_.read_oldest(&spooled_bytes_, &error)) {
            log_message(LogLevel::error, "%s; setting the file aside as .corrupt", error.c_str());
            if (!spool_.quarantine_oldest(&error)) log_message(LogLevel::error, "%s", error.c_str());
            errors_++;
            continue;
        }
        const char *kind = nullptr;
        if (spooled_envelope_.ParseFromString(spooled_bytes_)) kind = payload_subject_kind(spooled_envelope_);
        if (kind == nullptr || !is_valid_subject_token(spooled_envelope_.agent_id()) ||
            !is_valid_subject_token(spooled_envelope_.namespace_()) || spooled_envelope_.batch_seq() == 0) {
            log_message(LogLevel::error, "spool file \"%s\" is not a valid batch; setting it aside as .corrupt",
                        spool_.oldest().c_str());
            if (!spool_.quarantine_oldest(&error)) log_message(LogLevel::error, "%s", error.c_str());
            errors_++;
            continue;
        }
        // Subject and Msg-Id come from the batch itself: it may predate a change of agent_id or namespace.
        subject_.assign("fleet.in.")
            .append(spooled_envelope_.namespace_())
            .append(".")
            .append(spooled_envelope_.agent_id())
            .append(".")
            .append(kind);
        msg_id_.assign(spooled_envelope_.agent_id())
            .append(":")
            .append(spooled_envelope_.boot_id())
            .append(":")
            .append(std::to_string(spooled_envelope_.batch_seq()));

        bool duplicate = false;
        if (!nats_.publish(subject_, msg_id_, spooled_bytes_, &duplicate, &error)) {
            if (nats_.last_publish_too_large()) {
                // Retrying cannot help and would block every later batch: set it aside.
                log_message(LogLevel::error, "%s; setting spool file \"%s\" aside as .corrupt", error.c_str(),
                            spool_.oldest().c_str());
                if (!spool_.quarantine_oldest(&error)) log_message(LogLevel::error, "%s", error.c_str());
                errors_++;
                continue;
            }
            note_publish_failure(error);
            return;
        }
        published++;
        if (duplicate) duplicates++;
        if (spooled_envelope_.boot_id() == boot_id_)
            series_sets_.acknowledged(spooled_envelope_.batch_seq(), wall_clock_ms());
        if (!spool_.remove_oldest(&error)) log_message(LogLevel::warning, "%s", error.c_str());
    }
    if (nats_down_ && published > 0) {
        log_message(LogLevel::log,
                    "publishing to NATS again after %.1f s: %zu spooled batches delivered (%zu already in the "
                    "stream), %zu still waiting",
                    (wall_clock_ms() - nats_down_since_ms_) / 1000.0, published, duplicates, spool_.size());
        nats_down_ = false;
    }
    if (!nats_down_) {
        backoff_ms_ = kInitialBackoffMs;
        next_drain_ms_ = 0;
    }
}

int Agent::run(bool once) {
    if (geteuid() == 0)
        log_message(LogLevel::warning, "running as root; the agent is meant to run as the postgres OS user");
    std::string error;
    if (!spool_.open(config_.spool_dir, &error)) {
        log_message(LogLevel::error, "%s", error.c_str());
        return 1;
    }
    if (!nats_.start(true, &error)) {
        log_message(LogLevel::error, "%s", error.c_str());
        return 1;
    }
    const std::string command_subject = "fleet.cmd." + config_.agent_id;
    log_message(LogLevel::log,
                "started: agent_id=%s namespace=%s boot_id=%s interval=%ds spool=%s (%zu batches waiting, %llu bytes, "
                "max %llu) nats=%s commands=%s",
                config_.agent_id.c_str(), config_.namespace_name.c_str(), boot_id_.c_str(), config_.interval_seconds,
                config_.spool_dir.c_str(), spool_.size(), static_cast<unsigned long long>(spool_.bytes()),
                static_cast<unsigned long long>(config_.spool_max_bytes), redact_nats_urls(config_.nats_url).c_str(),
                command_subject.c_str());

    int64_t now = wall_clock_ms();
    activity_.begin_interval(now);
    if (once) {
        // The background connect may still be under way: give it up to 2 s.
        for (int waited = 0; waited < 20 && !nats_.connected() && !stop_requested(); waited++) wait_for_wakeup(100);
        collect_now();
        flush_events(wall_clock_ms());
        drain_spool();
        size_t left = spool_.size();
        if (left > 0) log_message(LogLevel::warning, "%zu batches left in the spool", left);
        nats_.shutdown();
        return left == 0 ? 0 : 1;
    }

    // Metrics, statements (its baseline) and inventory at once; activity aggregates from its first period
    // boundary on, so that every activity interval is a whole one.
    next_run_ms_[kMetrics] = now;
    next_run_ms_[kStatements] = now;
    next_run_ms_[kActivity] = next_multiple(now, config_.collectors[kActivity].interval_seconds * 1000LL);
    next_run_ms_[kInventory] = now;
    next_run_ms_[kObjects] = now;
    next_patroni_ms_ = now;
    next_activity_sample_ms_ = now;
    while (!stop_requested()) {
        if (g_hangup_received) {
            g_hangup_received = 0;
            log_message(LogLevel::log, "received SIGHUP; reloading \"%s\"", config_path_.c_str());
            reload_config();
        }
        if (nats_.take_connected_event()) {
            backoff_ms_ = kInitialBackoffMs;
            next_drain_ms_ = 0;
        }
        if (!nats_.subscribed()) {
            if (nats_.subscribe_commands(command_subject, &error)) {
                if (subscribe_failing_) log_message(LogLevel::log, "subscribed to %s", command_subject.c_str());
                subscribe_failing_ = false;
            } else if (!subscribe_failing_) {
                log_message(LogLevel::warning, "%s; retrying", error.c_str());
                subscribe_failing_ = true;
            }
        }
        if (int status = nats_.take_async_error()) {
            errors_++;
            log_message(LogLevel::warning, "NATS reported an error: %s%s", natsStatus_GetText(static_cast<natsStatus>(status)),
                        status == NATS_NOT_PERMITTED ? " (check this agent's NATS permissions)" : "");
        }
        handle_commands();

        now = wall_clock_ms();
        for (int i = 0; i < kCollectorCount; i++) {
            int64_t period = config_.collectors[i].interval_seconds * 1000LL;
            if (next_run_ms_[i] - now > period) next_run_ms_[i] = next_multiple(now, period);  // clock stepped back
        }
        if (next_patroni_ms_ - now > config_.patroni.interval_seconds * 1000LL)
            next_patroni_ms_ = next_multiple(now, config_.patroni.interval_seconds * 1000LL);
        if (next_activity_sample_ms_ - now > config_.activity_sample_seconds * 1000LL)
            next_activity_sample_ms_ = next_multiple(now, config_.activity_sample_seconds * 1000LL);

        const CollectorConfig &metrics = config_.collector(CollectorId::metrics);
        if (now >= next_run_ms_[kMetrics]) {
            if (metrics.enabled) run_metrics(now);
            next_run_ms_[kMetrics] = next_multiple(wall_clock_ms(), metrics.interval_seconds * 1000LL);
        }
        const CollectorConfig &statements = config_.collector(CollectorId::statements);
        if (now >= next_run_ms_[kStatements] && !stop_requested()) {
            if (statements.enabled) run_statements(now);
            next_run_ms_[kStatements] = next_multiple(wall_clock_ms(), statements.interval_seconds * 1000LL);
        }
        const CollectorConfig &activity = config_.collector(CollectorId::activity);
        if (now >= next_activity_sample_ms_ && !stop_requested()) {
            bool flush = now >= next_run_ms_[kActivity];
            if (activity.enabled) run_activity_sample(now, flush);
            if (flush) next_run_ms_[kActivity] = next_multiple(now, activity.interval_seconds * 1000LL);
            next_activity_sample_ms_ = next_multiple(wall_clock_ms(), config_.activity_sample_seconds * 1000LL);
        }
        const CollectorConfig &inventory = config_.collector(CollectorId::inventory);
        if (now >= next_run_ms_[kInventory] && !stop_requested()) {
            if (inventory.enabled) run_inventory(now);
            next_run_ms_[kInventory] = next_multiple(wall_clock_ms(), inventory.interval_seconds * 1000LL);
        }
        const CollectorConfig &objects = config_.collector(CollectorId::objects);
        if (now >= next_run_ms_[kObjects] && !stop_requested()) {
            if (objects.enabled) run_objects(now);
            next_run_ms_[kObjects] = next_multiple(wall_clock_ms(), objects.interval_seconds * 1000LL);
        }
        if (now >= next_patroni_ms_ && !stop_requested()) {
            if (config_.patroni.active()) run_patroni(now);
            next_patroni_ms_ = next_multiple(wall_clock_ms(), config_.patroni.interval_seconds * 1000LL);
        }
        report_spool_drops();
        flush_events(wall_clock_ms());
        if (!spool_.empty() && !stop_requested() && wall_clock_ms() >= next_drain_ms_) drain_spool();
        report_spool_drops();
        flush_events(wall_clock_ms());
        if (!spool_.empty() && !stop_requested() && !nats_down_) drain_spool();

        now = wall_clock_ms();
        int64_t wake_at = std::min({next_run_ms_[kMetrics], next_run_ms_[kStatements], next_run_ms_[kInventory],
                                    next_run_ms_[kObjects], next_activity_sample_ms_});
        if (config_.patroni.active()) wake_at = std::min(wake_at, next_patroni_ms_);
        if (!spool_.empty()) wake_at = std::min(wake_at, next_drain_ms_);
        wait_for_wakeup(wake_at - now);
    }
    log_message(LogLevel::log,
                "shutting down: %llu batches sealed in this boot (boot_id %s), %zu left in the spool for the next start",
                static_cast<unsigned long long>(next_batch_seq_ - 1), boot_id_.c_str(), spool_.size());
    nats_.shutdown();
    return 0;
}

}  // namespace

bool install_signal_handlers(std::string *error) {
    if (pipe2(g_wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        *error = std::string("could not create wake-up pipe: ") + strerror(errno);
        return false;
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handle_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    if (sigaction(SIGTERM, &action, nullptr) != 0 || sigaction(SIGINT, &action, nullptr) != 0 ||
        sigaction(SIGHUP, &action, nullptr) != 0 || sigaction(SIGPIPE, &ignore, nullptr) != 0) {
        *error = std::string("could not install signal handlers: ") + strerror(errno);
        return false;
    }
    return true;
}

int run_agent(const AgentConfig &config, const std::string &config_path, bool once) {
    Agent agent(config, config_path);
    return agent.run(once);
}

int run_check(const AgentConfig &config) {
    bool all_ok = true;

    // Read-only: --check must not create the spool directory nor remove torn files; that is start-up's job.
    std::string error;
    std::string missing_ancestor;
    std::string existing = config.spool_dir;
    while (access(existing.c_str(), F_OK) != 0 && existing.size() > 1) {
        missing_ancestor = existing;
        existing.resize(std::max<size_t>(existing.rfind('/'), 1));
    }
    if (access(existing.c_str(), W_OK | X_OK) != 0) {
        printf("spool: failed: \"%s\" is not writable: %s\n", existing.c_str(), strerror(errno));
        all_ok = false;
    } else if (!missing_ancestor.empty()) {
        printf("spool: ok (%s does not exist yet; it will be created on start)\n", config.spool_dir.c_str());
    } else {
        size_t waiting = 0;
        if (DIR *handle = opendir(config.spool_dir.c_str())) {
            while (struct dirent *entry = readdir(handle)) {
                std::string_view name = entry->d_name;
                waiting += name.size() > 6 && name.substr(name.size() - 6) == ".batch";
            }
            closedir(handle);
        }
        printf("spool: ok (%s, %zu batches waiting)\n", config.spool_dir.c_str(), waiting);
    }

    PgSource postgres(config.postgres_conninfo, stop_requested);
    std::vector<DatabaseStats> databases;
    InstanceFacts facts;
    if (postgres.collect(&databases, &facts, &error)) {
        printf("postgres: ok (PostgreSQL %s, system identifier %s, %zu databases, %s)\n", facts.server_version.c_str(),
               facts.system_identifier.c_str(), databases.size(), facts.in_recovery ? "standby" : "primary");
        // Informational: a missing pg_stat_statements only disables one collector, it is not a failure.
        StatementsCollector statements;
        wire::v1::StatementBatch batch;
        std::string statements_error;
        switch (statements.collect(postgres, wall_clock_ms(), &batch, &statements_error)) {
        case CollectStatus::ok:
            printf("statements: ok (pg_stat_statements, %zu entries)\n", statements.tracked());
            break;
        case CollectStatus::unavailable:
            printf("statements: not available (%s); the other collectors will run\n", statements_error.c_str());
            break;
        case CollectStatus::failed:
            printf("statements: failed: %s\n", statements_error.c_str());
            break;
        }
    } else {
        printf("postgres: failed: %s\n", error.c_str());
        all_ok = false;
    }
    postgres.disconnect();

    if (config.patroni.active()) {
        PatroniCollector patroni(stop_requested);
        patroni.configure(config.patroni);
        std::string summary;
        if (patroni.check(&summary, &error)) {
            printf("patroni: ok (%s)\n", summary.c_str());
        } else {
            printf("patroni: failed: %s\n", error.c_str());
            all_ok = false;
        }
    }

    NatsSink nats(config.nats_url, -1);
    nats.set_inbox_prefix("_INBOX_" + config.agent_id);
    if (nats.start(false, &error)) {
        printf("nats: ok (connected to %s)\n", nats.connected_url().c_str());
    } else {
        printf("nats: failed: %s\n", error.c_str());
        all_ok = false;
    }
    nats.shutdown();
    fflush(stdout);
    return all_ok ? 0 : 1;
}

}  // namespace pgfleet::agent

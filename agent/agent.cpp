// The agent's main loop.
//
// Design: one main thread does everything that matters (collect, seal, spool, publish) in a simple loop;
// nats.c runs its own threads for the connection, whose callbacks only wake the loop. The loop sleeps in
// poll() on a self-pipe (signals and NATS events write to it) with a timeout of at most 1 s, so SIGTERM is
// seen at once, and no call inside an iteration blocks for more than about 1 s at a time (PubAck wait 1 s,
// libpq waits in 200 ms slices that check for SIGTERM).
//
// Cycle: at each wall-clock multiple of interval_seconds, one batch is built (host metrics always,
// PostgreSQL metrics when the server answers), sealed with the next batch_seq of this boot, written to the
// spool, and then the spool is drained oldest first until the first failure. A failure starts an outage
// (logged once) and an exponential back-off (1 s doubling to 30 s) for further drain attempts; a NATS
// (re)connection ends the back-off at once. Collection continues during an outage, so nothing is lost:
// batches wait in the spool, in order, until the stream acknowledges them.
#include "agent/agent.h"

#include "agent/batch.h"
#include "agent/log.h"
#include "agent/nats_sink.h"
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
#include <sys/time.h>
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

class Agent {
public:
    explicit Agent(const AgentConfig &config)
        : config_(config),
          boot_id_(make_boot_id()),
          hostname_(local_hostname()),
          clock_ticks_per_second_(static_cast<double>(sysconf(_SC_CLK_TCK))),
          postgres_(config.postgres_conninfo, stop_requested),
          nats_(config.nats_url, g_wake_pipe[1]) {}

    // Runs the loop (see run_agent).
    int run(bool once);

private:
    void collect_batch(int64_t now_ms);
    void add_host_metrics();
    void add_postgres_metrics();
    void drain_spool();
    void note_publish_failure(const std::string &reason);
    int64_t next_aligned_ms(int64_t now_ms) const;

    const AgentConfig &config_;
    const std::string boot_id_;
    const std::string hostname_;
    const double clock_ticks_per_second_;
    uint64_t next_batch_seq_ = 1;

    Spool spool_;
    PgSource postgres_;
    NatsSink nats_;
    BatchBuilder builder_;

    // Reused between intervals.
    std::string proc_buffer_;
    std::vector<DatabaseStats> databases_;
    InstanceFacts facts_;
    InstanceFacts last_sent_facts_;
    bool facts_sent_ = false;
    CpuTimes previous_cpu_;
    bool have_previous_cpu_ = false;
    std::string spooled_bytes_;
    wire::v1::Envelope spooled_envelope_;
    std::string subject_;
    std::string msg_id_;

    // Outage state: each is logged once when it starts and once when it ends.
    bool postgres_down_ = false;
    bool nats_down_ = false;
    bool proc_stat_broken_ = false;
    bool meminfo_broken_ = false;
    bool spool_broken_ = false;
    int64_t nats_down_since_ms_ = 0;
    int64_t backoff_ms_ = kInitialBackoffMs;
    int64_t next_drain_ms_ = 0;
};

int64_t Agent::next_aligned_ms(int64_t now_ms) const {
    int64_t interval_ms = static_cast<int64_t>(config_.interval_seconds) * 1000;
    return (now_ms / interval_ms + 1) * interval_ms;
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
    }

    MemInfo memory;
    if (read_proc_file("/proc/meminfo", &proc_buffer_) && parse_meminfo(proc_buffer_, &memory)) {
        builder_.add("host.memory.total_bytes", GAUGE, "bytes", {}, static_cast<double>(memory.total_bytes));
        builder_.add("host.memory.available_bytes", GAUGE, "bytes", {},
                     static_cast<double>(memory.available_bytes));
        uint64_t used = memory.total_bytes > memory.available_bytes ? memory.total_bytes - memory.available_bytes : 0;
        builder_.add("host.memory.used_bytes", GAUGE, "bytes", {}, static_cast<double>(used));
        if (meminfo_broken_) log_message(LogLevel::log, "/proc/meminfo is readable again");
        meminfo_broken_ = false;
    } else if (!meminfo_broken_) {
        log_message(LogLevel::warning,
                    "could not read MemTotal/MemAvailable from /proc/meminfo; host.memory metrics skipped");
        meminfo_broken_ = true;
    }
}

void Agent::add_postgres_metrics() {
    std::string error;
    if (!postgres_.collect(&databases_, &facts_, &error)) {
        if (stop_requested()) return;
        if (!postgres_down_)
            log_message(LogLevel::warning,
                        "cannot collect from PostgreSQL: %s; sending host metrics only and retrying every interval",
                        error.c_str());
        postgres_down_ = true;
        return;
    }
    if (postgres_down_) log_message(LogLevel::log, "PostgreSQL answers again; collecting its metrics");
    postgres_down_ = false;

    for (const DatabaseStats &db : databases_) {
        LabelRef datname{"datname", db.datname};
        builder_.add("pg.database.xact_commit", COUNTER, "", {datname}, db.xact_commit);
        builder_.add("pg.database.xact_rollback", COUNTER, "", {datname}, db.xact_rollback);
        builder_.add("pg.database.blks_hit", COUNTER, "", {datname}, db.blks_hit);
        builder_.add("pg.database.blks_read", COUNTER, "", {datname}, db.blks_read);
        builder_.add("pg.database.numbackends", GAUGE, "", {datname}, db.numbackends);
    }
    facts_.hostname = hostname_;
    if (!facts_sent_ || facts_ != last_sent_facts_) {
        builder_.set_instance(facts_);
        last_sent_facts_ = facts_;
        facts_sent_ = true;
    }
}

void Agent::collect_batch(int64_t now_ms) {
    uint64_t batch_seq = next_batch_seq_++;
    builder_.begin(config_.agent_id, config_.namespace_name, boot_id_, batch_seq, now_ms);
    add_host_metrics();
    add_postgres_metrics();
    const std::string &bytes = builder_.seal();
    log_message(LogLevel::debug, "sealed batch %llu: %zu samples, %zu bytes",
                static_cast<unsigned long long>(batch_seq), builder_.sample_count(), bytes.size());

    std::string error;
    size_t listed_before = spool_.size();
    bool stored = spool_.append(boot_id_, batch_seq, bytes, &error);
    if (stored && error.empty()) {
        if (spool_broken_) log_message(LogLevel::log, "spool is writable again");
        spool_broken_ = false;
        return;
    }
    if (stored) {  // listed, but the directory fsync failed
        log_message(LogLevel::warning, "%s", error.c_str());
        return;
    }
    if (!spool_broken_) log_message(LogLevel::error, "cannot spool batches: %s", error.c_str());
    spool_broken_ = true;

    // Not durable: publish straight from memory, but only behind the older spooled batches, to keep order.
    if (listed_before == 0 && !nats_down_) {
        std::string subject = "fleet.in." + config_.namespace_name + "." + config_.agent_id + ".metrics";
        std::string msg_id = config_.agent_id + ":" + boot_id_ + ":" + std::to_string(batch_seq);
        bool duplicate;
        if (nats_.publish(subject, msg_id, bytes, &duplicate, &error)) return;
        note_publish_failure(error);
    }
    log_message(LogLevel::error, "batch %llu lost: it could not be spooled nor published",
                static_cast<unsigned long long>(batch_seq));
}

void Agent::note_publish_failure(const std::string &reason) {
    int64_t now = wall_clock_ms();
    if (!nats_down_) {
        log_message(LogLevel::warning, "cannot publish to NATS: %s; keeping batches in the spool (%zu waiting)",
                    reason.c_str(), spool_.size());
        nats_down_ = true;
        nats_down_since_ms_ = now;
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
            continue;
        }
        if (!spooled_envelope_.ParseFromString(spooled_bytes_) ||
            !is_valid_subject_token(spooled_envelope_.agent_id()) ||
            !is_valid_subject_token(spooled_envelope_.namespace_()) || spooled_envelope_.batch_seq() == 0) {
            log_message(LogLevel::error, "spool file \"%s\" is not a valid batch; setting it aside as .corrupt",
                        spool_.oldest().c_str());
            if (!spool_.quarantine_oldest(&error)) log_message(LogLevel::error, "%s", error.c_str());
            continue;
        }
        // Subject and Msg-Id come from the batch itself: it may predate a change of agent_id or namespace.
        subject_.assign("fleet.in.")
            .append(spooled_envelope_.namespace_())
            .append(".")
            .append(spooled_envelope_.agent_id())
            .append(".metrics");
        msg_id_.assign(spooled_envelope_.agent_id())
            .append(":")
            .append(spooled_envelope_.boot_id())
            .append(":")
            .append(std::to_string(spooled_envelope_.batch_seq()));

        bool duplicate = false;
        if (!nats_.publish(subject_, msg_id_, spooled_bytes_, &duplicate, &error)) {
            note_publish_failure(error);
            return;
        }
        published++;
        if (duplicate) duplicates++;
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
    log_message(LogLevel::log,
                "started: agent_id=%s namespace=%s boot_id=%s interval=%ds spool=%s (%zu batches waiting) nats=%s",
                config_.agent_id.c_str(), config_.namespace_name.c_str(), boot_id_.c_str(), config_.interval_seconds,
                config_.spool_dir.c_str(), spool_.size(), config_.nats_url.c_str());

    if (once) {
        // The background connect may still be under way: give it up to 2 s.
        for (int waited = 0; waited < 20 && !nats_.connected() && !stop_requested(); waited++) wait_for_wakeup(100);
        collect_batch(wall_clock_ms());
        drain_spool();
        size_t left = spool_.size();
        if (left > 0) log_message(LogLevel::warning, "%zu batches left in the spool", left);
        nats_.shutdown();
        return left == 0 ? 0 : 1;
    }

    int64_t interval_ms = static_cast<int64_t>(config_.interval_seconds) * 1000;
    int64_t next_collect_ms = wall_clock_ms();  // first batch at once, then on multiples of the interval
    while (!stop_requested()) {
        if (g_hangup_received) {
            g_hangup_received = 0;
            log_message(LogLevel::log, "received SIGHUP; configuration reload is not implemented, ignoring");
        }
        if (nats_.take_connected_event()) {
            backoff_ms_ = kInitialBackoffMs;
            next_drain_ms_ = 0;
        }
        int64_t now = wall_clock_ms();
        if (next_collect_ms - now > interval_ms) next_collect_ms = next_aligned_ms(now);  // clock stepped back
        if (now >= next_collect_ms) {
            collect_batch(now);
            next_collect_ms = next_aligned_ms(wall_clock_ms());
        }
        if (!spool_.empty() && !stop_requested() && wall_clock_ms() >= next_drain_ms_) drain_spool();

        now = wall_clock_ms();
        int64_t wake_at = next_collect_ms;
        if (!spool_.empty()) wake_at = std::min(wake_at, next_drain_ms_);
        wait_for_wakeup(wake_at - now);
    }
    log_message(LogLevel::log, "shutting down: %zu batches left in the spool for the next start", spool_.size());
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

int run_agent(const AgentConfig &config, bool once) {
    Agent agent(config);
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
    } else {
        printf("postgres: failed: %s\n", error.c_str());
        all_ok = false;
    }
    postgres.disconnect();

    NatsSink nats(config.nats_url, -1);
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

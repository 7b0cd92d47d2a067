/*
 * core/jetstream.h — the ingest side of NATS JetStream: one durable pull consumer on stream FLEET_IN.
 *
 * Threads. nats.c runs its own threads (socket reader, flusher, reconnect). They never call into
 * PostgreSQL: everything PostgreSQL sees happens on the caller's (main) thread, inside fetch()/ack().
 * nats.c threads inherit the signal mask of the thread that creates them, so connect() creates them
 * with every signal blocked; PostgreSQL's signals (SIGTERM, SIGHUP, SIGUSR1 for latches) therefore
 * always reach the main thread.
 *
 * Bounds. Every call here returns within its timeout (connect: connect_timeout_ms; fetch: the given
 * timeout; flush: the given timeout), so the caller can CHECK_FOR_INTERRUPTS at least once a second.
 *
 * Errors. No exceptions cross this interface for expected network conditions: calls return a Result
 * (Ok, Timeout, Unavailable) and a message. Broken invariants (misuse) throw std::logic_error.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pgfleet::js {

/* What the consumer needs to know about the stream, consumer and server. */
struct ConsumerSettings {
    std::string url = "nats://127.0.0.1:4222";
    std::string credentials_file;           /* empty: no credentials */
    std::string stream = "FLEET_IN";
    std::string stream_subjects = "fleet.in.>";
    std::string durable = "fleet_ingest";
    int64_t stream_max_age_seconds = 72 * 3600;
    int64_t stream_max_bytes = 8LL << 30;   /* a full stream refuses new data (Discard=New) */
    int64_t duplicate_window_seconds = 600;
    int64_t ack_wait_ms = 15000;
    int64_t max_ack_pending = 20000;
    int64_t connect_timeout_ms = 1000;
    std::string client_name = "pgfleet-ingest";
};

enum class Result { Ok, Timeout, Unavailable };

/* url with any user:password@ replaced by ***@, for logs and error messages (URLs may carry credentials). */
std::string redacted_url(const std::string &url);

/* The JetStream facts of one fetched message. */
struct MessageMeta {
    uint64_t stream_seq = 0;
    uint64_t consumer_seq = 0;
    uint64_t num_delivered = 0;
    uint64_t num_pending = 0;
};

/*
 * The messages of one fetch. Owns them until destroyed; acking does not free them. Accessors are
 * valid for indexes below size(). Not copyable.
 */
class FetchedBatch {
public:
    FetchedBatch();
    ~FetchedBatch();
    FetchedBatch(const FetchedBatch &) = delete;
    FetchedBatch &operator=(const FetchedBatch &) = delete;

    size_t size() const;
    const char *subject(size_t i) const;
    const void *data(size_t i) const;
    size_t data_size(size_t i) const;
    MessageMeta meta(size_t i) const;
    void clear();

private:
    friend class PullConsumer;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/* One durable pull consumer; the stream and consumer are created if missing (idempotent). */
class PullConsumer {
public:
    PullConsumer();
    ~PullConsumer();
    PullConsumer(const PullConsumer &) = delete;
    PullConsumer &operator=(const PullConsumer &) = delete;

    /* Connects, ensures stream and consumer exist, subscribes: up to four steps (connect, stream info,
     * stream create, subscribe), each bounded by connect_timeout_ms. interrupted() is asked before
     * every step; when it says true, connect gives up at once (Unavailable, "interrupted") so that
     * the caller can serve its interrupt within one step's time. */
    Result connect(const ConsumerSettings &settings, std::string &error,
                   const std::function<bool()> &interrupted = [] { return false; });
    bool is_connected() const;
    void close();

    /* Waits up to timeout_ms for up to max_messages; Timeout when none came. */
    Result fetch(int max_messages, int64_t timeout_ms, FetchedBatch &out, std::string &error);

    /* Acknowledges (processed), terminates (never redeliver: dead-lettered) or negatively
     * acknowledges with a delay (redeliver later) message i of batch. Fire-and-forget; flush() waits
     * until the server has received everything sent so far. */
    Result ack(FetchedBatch &batch, size_t i, std::string &error);
    Result term(FetchedBatch &batch, size_t i, std::string &error);
    Result nak(FetchedBatch &batch, size_t i, int64_t delay_ms, std::string &error);
    Result flush(int64_t timeout_ms, std::string &error);

    /* Publishes data on subject over plain NATS (no JetStream ack), on the consumer's connection:
     * the centre's commands to agents. Buffered; flush() sends. */
    Result publish(const std::string &subject, const std::string &data, std::string &error);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace pgfleet::js

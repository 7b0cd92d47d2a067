// Delivery of sealed batches to NATS JetStream with nats.c.
//
// One natsConnection for the agent's lifetime, created with infinite reconnect
// (natsOptions_SetMaxReconnect(-1)), retry on a failed initial connect (so the agent starts while NATS is
// down), a 2 s connect timeout and 1 s between reconnect attempts. publish() is synchronous: js_Publish with
// the Nats-Msg-Id "<agent_id>:<boot_id>:<batch_seq>" waits at most kPubAckWaitMs for the PubAck. It refuses
// to publish while the connection is not CONNECTED rather than letting nats.c buffer the message for a
// later reconnect: the spool is the buffer, and a publish that cannot be acknowledged should fail fast.
//
// Threads: publish() and the accessors run on the agent's main thread. The connection callbacks
// (connected, disconnected, reconnected, closed, async error) run on nats.c's internal threads; they only
// flip atomics and write one byte to the agent's wake-up pipe so the main loop reacts promptly (for example
// drains the spool right after a reconnect). They never log or touch agent state.
//
// Commands: subscribe_commands() subscribes (core NATS, not JetStream) to fleet.cmd.<agent_id>. The message
// callback runs on a nats.c thread: it only copies the raw payload into a queue guarded by a mutex
// (bounded at kMaxQueuedCommands; further messages are counted as dropped) and wakes the main loop, which
// takes the queue with take_commands() and decodes and executes the commands itself. So all agent state,
// collection and spooling stay on the main thread; the only shared data are the queue (mutex) and
// atomics.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace pgfleet::agent {

// Bounded wait for the PubAck. 1 s rather than more so that SIGTERM, which is only checked between
// publishes, still ends the agent within about a second (docs/interfaces.md); a slower ack just makes the
// batch stay in the spool and be published again (deduplicated by Msg-Id) next time.
constexpr int64_t kPubAckWaitMs = 1000;

// Returns urls (comma-separated) with any "user:password@" or "token@" part replaced by "***@", for logs.
std::string redact_nats_urls(const std::string &urls);

class NatsSink {
public:
    // wake_fd: write end of the agent's self-pipe (non-blocking), poked by the callbacks.
    NatsSink(std::string url, int wake_fd);
    ~NatsSink();  // calls shutdown()
    NatsSink(const NatsSink &) = delete;
    NatsSink &operator=(const NatsSink &) = delete;

    // Replies (JetStream PubAcks) come to "<prefix>.>" instead of "_INBOX.>", so an agent's NATS user can be
    // limited to its own inbox ("_INBOX_<agent_id>"). Call before start().
    void set_inbox_prefix(std::string prefix) { inbox_prefix_ = std::move(prefix); }

    // Creates the connection; with retry=true a server that is down is not an error (connection happens
    // in the background). False with *error set on invalid options or, with retry=false, connect failure.
    bool start(bool retry, std::string *error);

    // Publishes one message to JetStream and waits for its PubAck; *duplicate tells whether the stream had
    // already stored this Msg-Id. False with *error set on any failure (not connected, no stream/no
    // responders, timeout, JetStream error).
    bool publish(const std::string &subject, const std::string &msg_id, const std::string &data, bool *duplicate,
                 std::string *error);

    // True when the last failed publish was refused because the message exceeds the server's max_payload
    // (retrying cannot help).
    bool last_publish_too_large() const { return last_too_large_; }

    // True when the connection is currently established.
    bool connected() const;

    // Returns true once after each (re)connection since the last call.
    bool take_connected_event() { return connected_event_.exchange(false); }

    // The URL of the server currently connected to, or "" (for --check output).
    std::string connected_url() const;

    // Subscribes to subject for commands (see above); false with *error set on failure (then retried by
    // the caller after the next connection). Idempotent once it succeeded.
    bool subscribe_commands(const std::string &subject, std::string *error);
    bool subscribed() const { return subscription_ != nullptr; }

    // Main thread: the status of the last asynchronous error nats.c reported (e.g. a permissions violation
    // on the subscription), or 0; reading clears it.
    int take_async_error() { return async_error_.exchange(0); }

    // Main thread: moves the queued command payloads into *out (cleared first).
    void take_commands(std::vector<std::string> *out);

    // Commands dropped because the queue was full, and bytes published (acknowledged) since the start.
    uint64_t commands_dropped() const { return commands_dropped_.load(); }
    uint64_t bytes_sent() const { return bytes_sent_; }

    static constexpr size_t kMaxQueuedCommands = 1000;

    // Closes the connection and waits (at most 1 s) until nats.c's threads are gone, so that no callback
    // can run on a destroyed NatsSink. Ends the library (nats_CloseAndWait): call once, at process end.
    void shutdown();

private:
    // nats.c callbacks; run on a nats.c internal thread.
    static void on_connected(natsConnection *nc, void *closure);
    static void on_disconnected(natsConnection *nc, void *closure);
    static void on_closed(natsConnection *nc, void *closure);
    static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure);
    static void on_command(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);
    void wake();

    std::string url_;
    std::string inbox_prefix_;
    int wake_fd_;
    natsOptions *options_ = nullptr;
    natsConnection *connection_ = nullptr;
    jsCtx *jetstream_ = nullptr;
    std::atomic<bool> connected_event_{false};
    natsSubscription *subscription_ = nullptr;

    std::mutex commands_mutex_;                 // guards commands_
    std::vector<std::string> commands_;         // raw Command payloads, oldest first
    std::atomic<uint64_t> commands_dropped_{0};
    std::atomic<int> async_error_{0};
    uint64_t bytes_sent_ = 0;                   // main thread only
    bool last_too_large_ = false;               // main thread only
};

}  // namespace pgfleet::agent

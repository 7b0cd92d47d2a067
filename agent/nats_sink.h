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
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace pgfleet::agent {

// Bounded wait for the PubAck. 1 s rather than more so that SIGTERM, which is only checked between
// publishes, still ends the agent within about a second (docs/interfaces.md); a slower ack just makes the
// batch stay in the spool and be published again (deduplicated by Msg-Id) next time.
constexpr int64_t kPubAckWaitMs = 1000;

class NatsSink {
public:
    // wake_fd: write end of the agent's self-pipe (non-blocking), poked by the callbacks.
    NatsSink(std::string url, int wake_fd);
    ~NatsSink();  // calls shutdown()
    NatsSink(const NatsSink &) = delete;
    NatsSink &operator=(const NatsSink &) = delete;

    // Creates the connection; with retry=true a server that is down is not an error (connection happens
    // in the background). False with *error set on invalid options or, with retry=false, connect failure.
    bool start(bool retry, std::string *error);

    // Publishes one message to JetStream and waits for its PubAck; *duplicate tells whether the stream had
    // already stored this Msg-Id. False with *error set on any failure (not connected, no stream/no
    // responders, timeout, JetStream error).
    bool publish(const std::string &subject, const std::string &msg_id, const std::string &data, bool *duplicate,
                 std::string *error);

    // True when the connection is currently established.
    bool connected() const;

    // Returns true once after each (re)connection since the last call.
    bool take_connected_event() { return connected_event_.exchange(false); }

    // The URL of the server currently connected to, or "" (for --check output).
    std::string connected_url() const;

    // Closes the connection and waits (at most 1 s) until nats.c's threads are gone, so that no callback
    // can run on a destroyed NatsSink. Ends the library (nats_CloseAndWait): call once, at process end.
    void shutdown();

private:
    // nats.c callbacks; run on a nats.c internal thread.
    static void on_connected(natsConnection *nc, void *closure);
    static void on_disconnected(natsConnection *nc, void *closure);
    static void on_closed(natsConnection *nc, void *closure);
    static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure);
    void wake();

    std::string url_;
    int wake_fd_;
    natsOptions *options_ = nullptr;
    natsConnection *connection_ = nullptr;
    jsCtx *jetstream_ = nullptr;
    std::atomic<bool> connected_event_{false};
};

}  // namespace pgfleet::agent

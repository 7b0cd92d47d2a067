// See nats_sink.h.
#include "agent/nats_sink.h"

#include <cstring>
#include <unistd.h>

namespace pgfleet::agent {

namespace {

// Text for a failed nats.c call: the status text plus the library's last error detail when it adds one.
std::string nats_error(natsStatus status) {
    std::string text = natsStatus_GetText(status);
    natsStatus last_status;
    const char *detail = nats_GetLastError(&last_status);
    // The detail repeats the status text after a "(file.c:line): " prefix when it adds nothing.
    if (detail != nullptr && detail[0] != '\0' && strstr(detail, text.c_str()) == nullptr)
        text += std::string(": ") + detail;
    return text;
}

}  // namespace

NatsSink::NatsSink(std::string url, int wake_fd) : url_(std::move(url)), wake_fd_(wake_fd) {}

NatsSink::~NatsSink() { shutdown(); }

void NatsSink::shutdown() {
    if (options_ == nullptr) return;  // never started, or already shut down
    if (jetstream_ != nullptr) jsCtx_Destroy(jetstream_);
    if (connection_ != nullptr) natsConnection_Destroy(connection_);  // closes it; callbacks may still run
    natsOptions_Destroy(options_);
    jetstream_ = nullptr;
    connection_ = nullptr;
    options_ = nullptr;
    nats_CloseAndWait(1000);  // joins the library's threads, hence its pending callbacks
}

void NatsSink::wake() {
    if (wake_fd_ < 0) return;
    char byte = 'n';
    ssize_t ignored = write(wake_fd_, &byte, 1);  // pipe full means a wake-up is already pending
    (void)ignored;
}

void NatsSink::on_connected(natsConnection *, void *closure) {
    auto *self = static_cast<NatsSink *>(closure);
    self->connected_event_.store(true);
    self->wake();
}

void NatsSink::on_disconnected(natsConnection *, void *closure) { static_cast<NatsSink *>(closure)->wake(); }

void NatsSink::on_closed(natsConnection *, void *closure) { static_cast<NatsSink *>(closure)->wake(); }

void NatsSink::on_async_error(natsConnection *, natsSubscription *, natsStatus, void *closure) {
    static_cast<NatsSink *>(closure)->wake();
}

bool NatsSink::start(bool retry, std::string *error) {
    natsStatus status = natsOptions_Create(&options_);
    if (status == NATS_OK) status = natsOptions_SetURL(options_, url_.c_str());
    if (status == NATS_OK) status = natsOptions_SetName(options_, "pgfleet-agent");
    if (status == NATS_OK) status = natsOptions_SetTimeout(options_, 2000);
    if (status == NATS_OK) status = natsOptions_SetMaxReconnect(options_, -1);
    if (status == NATS_OK) status = natsOptions_SetReconnectWait(options_, 1000);
    if (status == NATS_OK) status = natsOptions_SetReconnectJitter(options_, 250, 1000);
    if (status == NATS_OK) status = natsOptions_SetPingInterval(options_, 10000);
    if (status == NATS_OK) status = natsOptions_SetMaxPingsOut(options_, 2);
    if (status == NATS_OK) status = natsOptions_SetDisconnectedCB(options_, on_disconnected, this);
    if (status == NATS_OK) status = natsOptions_SetReconnectedCB(options_, on_connected, this);
    if (status == NATS_OK) status = natsOptions_SetClosedCB(options_, on_closed, this);
    if (status == NATS_OK) status = natsOptions_SetErrorHandler(options_, on_async_error, this);
    if (status == NATS_OK && retry) status = natsOptions_SetRetryOnFailedConnect(options_, true, on_connected, this);
    if (status != NATS_OK) {
        *error = "could not set NATS options: " + nats_error(status);
        return false;
    }

    status = natsConnection_Connect(&connection_, options_);
    if (status == NATS_OK) {
        connected_event_.store(true);
    } else if (!(retry && status == NATS_NOT_YET_CONNECTED)) {
        *error = "could not connect to " + url_ + ": " + nats_error(status);
        return false;
    }

    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = kPubAckWaitMs;
    status = natsConnection_JetStream(&jetstream_, connection_, &js_options);
    if (status != NATS_OK) {
        *error = "could not create JetStream context: " + nats_error(status);
        return false;
    }
    return true;
}

bool NatsSink::connected() const {
    return connection_ != nullptr && natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED;
}

std::string NatsSink::connected_url() const {
    char buffer[256];
    if (connection_ == nullptr || natsConnection_GetConnectedUrl(connection_, buffer, sizeof buffer) != NATS_OK)
        return "";
    return buffer;
}

bool NatsSink::publish(const std::string &subject, const std::string &msg_id, const std::string &data,
                       bool *duplicate, std::string *error) {
    if (!connected()) {
        *error = "not connected to NATS";
        return false;
    }
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = msg_id.c_str();
    options.MaxWait = kPubAckWaitMs;
    jsPubAck *ack = nullptr;
    jsErrCode js_error = static_cast<jsErrCode>(0);
    natsStatus status = js_Publish(&ack, jetstream_, subject.c_str(), data.data(), static_cast<int>(data.size()),
                                   &options, &js_error);
    if (status != NATS_OK) {
        *error = nats_error(status);
        if (status == NATS_NO_RESPONDERS)
            *error += " (no JetStream stream takes subject " + subject + ")";
        else if (js_error != 0) *error += " (JetStream error " + std::to_string(static_cast<int>(js_error)) + ")";
        if (ack != nullptr) jsPubAck_Destroy(ack);
        return false;
    }
    *duplicate = ack != nullptr && ack->Duplicate;
    jsPubAck_Destroy(ack);
    return true;
}

}  // namespace pgfleet::agent

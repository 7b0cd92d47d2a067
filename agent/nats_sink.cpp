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

std::string redact_nats_urls(const std::string &urls) {
    std::string out;
    size_t pos = 0;
    while (pos <= urls.size()) {
        size_t end = urls.find(',', pos);
        if (end == std::string::npos) end = urls.size();
        std::string url = urls.substr(pos, end - pos);
        size_t scheme = url.find("://");
        size_t at = url.find('@', scheme == std::string::npos ? 0 : scheme + 3);
        if (scheme != std::string::npos && at != std::string::npos) url.replace(scheme + 3, at - scheme - 3, "***");
        if (!out.empty()) out += ',';
        out += url;
        pos = end + 1;
    }
    return out;
}

NatsSink::NatsSink(std::string url, int wake_fd) : url_(std::move(url)), wake_fd_(wake_fd) {}

NatsSink::~NatsSink() { shutdown(); }

void NatsSink::shutdown() {
    if (options_ == nullptr) return;  // never started, or already shut down
    if (subscription_ != nullptr) {
        natsSubscription_Unsubscribe(subscription_);
        natsSubscription_Destroy(subscription_);
        subscription_ = nullptr;
    }
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

void NatsSink::on_async_error(natsConnection *, natsSubscription *, natsStatus err, void *closure) {
    auto *self = static_cast<NatsSink *>(closure);
    self->async_error_.store(static_cast<int>(err));
    self->wake();
}

void NatsSink::on_command(natsConnection *, natsSubscription *, natsMsg *msg, void *closure) {
    auto *self = static_cast<NatsSink *>(closure);
    {
        std::lock_guard<std::mutex> lock(self->commands_mutex_);
        if (self->commands_.size() < kMaxQueuedCommands)
            self->commands_.emplace_back(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
        else
            self->commands_dropped_.fetch_add(1);
    }
    natsMsg_Destroy(msg);
    self->wake();
}

bool NatsSink::subscribe_commands(const std::string &subject, std::string *error) {
    if (subscription_ != nullptr) return true;
    if (connection_ == nullptr) {
        *error = "not connected to NATS";
        return false;
    }
    natsStatus status = natsConnection_Subscribe(&subscription_, connection_, subject.c_str(), on_command, this);
    if (status != NATS_OK) {
        subscription_ = nullptr;
        *error = "could not subscribe to " + subject + ": " + nats_error(status);
        return false;
    }
    return true;
}

void NatsSink::take_commands(std::vector<std::string> *out) {
    out->clear();
    std::lock_guard<std::mutex> lock(commands_mutex_);
    out->swap(commands_);
}

bool NatsSink::start(bool retry, std::string *error) {
    natsStatus status = natsOptions_Create(&options_);
    if (status == NATS_OK) status = natsOptions_SetURL(options_, url_.c_str());
    if (status == NATS_OK) status = natsOptions_SetName(options_, "pgfleet-agent");
    if (status == NATS_OK) status = natsOptions_SetTimeout(options_, 2000);
    if (status == NATS_OK && !inbox_prefix_.empty())
        status = natsOptions_SetCustomInboxPrefix(options_, inbox_prefix_.c_str());
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
        *error = "could not connect to " + redact_nats_urls(url_) + ": " + nats_error(status);
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
    return redact_nats_urls(buffer);
}

bool NatsSink::publish(const std::string &subject, const std::string &msg_id, const std::string &data,
                       bool *duplicate, std::string *error) {
    last_too_large_ = false;
    if (!connected()) {
        *error = "not connected to NATS";
        return false;
    }
    int64_t max_payload = natsConnection_GetMaxPayload(connection_);
    if (max_payload > 0 && static_cast<int64_t>(data.size()) > max_payload) {
        *error = "batch of " + std::to_string(data.size()) + " bytes exceeds the server's max_payload (" +
                 std::to_string(max_payload) + " bytes)";
        last_too_large_ = true;
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
        last_too_large_ = status == NATS_MAX_PAYLOAD;
        if (status == NATS_NO_RESPONDERS)
            *error += " (no JetStream stream takes subject " + subject + ")";
        else if (js_error != 0) *error += " (JetStream error " + std::to_string(static_cast<int>(js_error)) + ")";
        if (ack != nullptr) jsPubAck_Destroy(ack);
        return false;
    }
    *duplicate = ack != nullptr && ack->Duplicate;
    jsPubAck_Destroy(ack);
    bytes_sent_ += data.size();
    return true;
}

}  // namespace pgfleet::agent

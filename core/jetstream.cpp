/*
 * core/jetstream.cpp — nats.c behind the PullConsumer interface (see jetstream.h for threads, bounds
 * and errors). State: an Impl holds the connection, the JetStream context and the pull subscription;
 * any of them may be null while disconnected. nats.c reconnects by itself after a connection loss
 * (unlimited attempts, 250 ms apart); a fetch during the outage returns Unavailable quickly.
 */
#include "core/pure.h"

#include "core/jetstream.h"

#include <csignal>
#include <mutex>
#include <pthread.h>
#include <stdexcept>

#include <nats/nats.h>

namespace pgfleet::js {

namespace {

/* Blocks every signal on the calling thread for its lifetime, so threads created meanwhile
 * (by nats.c) never receive PostgreSQL's signals. */
class AllSignalsBlocked {
public:
    AllSignalsBlocked()
    {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &saved_);
    }
    ~AllSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
    AllSignalsBlocked(const AllSignalsBlocked &) = delete;
    AllSignalsBlocked &operator=(const AllSignalsBlocked &) = delete;

private:
    sigset_t saved_;
};

/* Opens the nats.c library once per process (its timer/GC threads start here). */
bool open_library(std::string &error)
{
    static std::once_flag once;
    static natsStatus status = NATS_OK;
    std::call_once(once, [] {
        AllSignalsBlocked blocked;
        status = nats_Open(-1);
    });
    if (status != NATS_OK)
        error = std::string("could not initialise the NATS library: ") + natsStatus_GetText(status);
    return status == NATS_OK;
}

/* Formats a nats.c failure with its status, JetStream error code and last error text. */
std::string describe(const char *what, natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0))
{
    std::string msg = std::string(what) + ": " + natsStatus_GetText(s);
    if (jerr != 0)
        msg += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
    natsStatus last_status;
    const char *last = nats_GetLastError(&last_status);
    if (last != nullptr && *last != '\0' && std::string(last) != natsStatus_GetText(s))
        msg += ": " + std::string(last);
    return msg;
}

/* Maps a nats.c status to our Result. */
Result classify(natsStatus s)
{
    return s == NATS_OK ? Result::Ok : s == NATS_TIMEOUT ? Result::Timeout : Result::Unavailable;
}

} // namespace

std::string redacted_url(const std::string &url)
{
    size_t scheme = url.find("://");
    size_t start = scheme == std::string::npos ? 0 : scheme + 3;
    size_t at = url.find('@', start);
    size_t slash = url.find('/', start);
    if (at == std::string::npos || (slash != std::string::npos && slash < at))
        return url;
    return url.substr(0, start) + "***" + url.substr(at);
}

struct FetchedBatch::Impl {
    natsMsgList list{nullptr, 0};
};

FetchedBatch::FetchedBatch() : impl_(std::make_unique<Impl>()) {}
FetchedBatch::~FetchedBatch() { clear(); }

void FetchedBatch::clear()
{
    if (impl_->list.Msgs != nullptr)
        natsMsgList_Destroy(&impl_->list);
    impl_->list = natsMsgList{nullptr, 0};
}

size_t FetchedBatch::size() const { return static_cast<size_t>(impl_->list.Count); }
const char *FetchedBatch::subject(size_t i) const { return natsMsg_GetSubject(impl_->list.Msgs[i]); }
const void *FetchedBatch::data(size_t i) const { return natsMsg_GetData(impl_->list.Msgs[i]); }
size_t FetchedBatch::data_size(size_t i) const { return static_cast<size_t>(natsMsg_GetDataLength(impl_->list.Msgs[i])); }

MessageMeta FetchedBatch::meta(size_t i) const
{
    MessageMeta m;
    jsMsgMetaData *md = nullptr;
    if (natsMsg_GetMetaData(&md, impl_->list.Msgs[i]) == NATS_OK && md != nullptr) {
        m.stream_seq = md->Sequence.Stream;
        m.consumer_seq = md->Sequence.Consumer;
        m.num_delivered = md->NumDelivered;
        m.num_pending = md->NumPending;
        jsMsgMetaData_Destroy(md);
    }
    return m;
}

struct PullConsumer::Impl {
    natsConnection *conn = nullptr;
    jsCtx *js = nullptr;
    natsSubscription *sub = nullptr;

    void reset()
    {
        if (sub != nullptr)
            natsSubscription_Destroy(sub);
        if (js != nullptr)
            jsCtx_Destroy(js);
        if (conn != nullptr) {
            natsConnection_Close(conn);
            natsConnection_Destroy(conn);
        }
        sub = nullptr;
        js = nullptr;
        conn = nullptr;
    }
};

PullConsumer::PullConsumer() : impl_(std::make_unique<Impl>()) {}
PullConsumer::~PullConsumer() { close(); }

void PullConsumer::close()
{
    AllSignalsBlocked blocked;
    impl_->reset();
}

bool PullConsumer::is_connected() const
{
    return impl_->sub != nullptr && natsConnection_Status(impl_->conn) == NATS_CONN_STATUS_CONNECTED;
}

Result PullConsumer::connect(const ConsumerSettings &cfg, std::string &error, const std::function<bool()> &interrupted)
{
    auto give_up_if_interrupted = [&] {
        if (!interrupted())
            return false;
        error = "interrupted";
        impl_->reset();
        return true;
    };
    if (!open_library(error))
        return Result::Unavailable;
    if (interrupted()) {
        error = "interrupted";
        return Result::Unavailable;
    }
    AllSignalsBlocked blocked; /* threads created below inherit this mask */
    impl_->reset();

    natsOptions *opts = nullptr;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK) s = natsOptions_SetURL(opts, cfg.url.c_str());
    if (s == NATS_OK) s = natsOptions_SetName(opts, cfg.client_name.c_str());
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, cfg.connect_timeout_ms);
    if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, true);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
    if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, 5000);
    if (s == NATS_OK && !cfg.credentials_file.empty())
        s = natsOptions_SetUserCredentialsFromFiles(opts, cfg.credentials_file.c_str(), nullptr);
    if (s == NATS_OK)
        s = natsConnection_Connect(&impl_->conn, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        error = describe(("could not connect to " + redacted_url(cfg.url)).c_str(), s);
        impl_->reset();
        return Result::Unavailable;
    }

    if (give_up_if_interrupted())
        return Result::Unavailable;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = cfg.connect_timeout_ms;
    s = natsConnection_JetStream(&impl_->js, impl_->conn, &jo);
    if (s != NATS_OK) {
        error = describe("could not open a JetStream context", s);
        impl_->reset();
        return Result::Unavailable;
    }

    /* The stream: create it when missing; an existing stream is left as its operator configured it. */
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsStreamInfo *si = nullptr;
    s = js_GetStreamInfo(&si, impl_->js, cfg.stream.c_str(), nullptr, &jerr);
    if ((s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) && !interrupted()) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        const char *subjects[] = {cfg.stream_subjects.c_str()};
        sc.Name = cfg.stream.c_str();
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Retention = js_LimitsPolicy;
        sc.Discard = js_DiscardNew;
        sc.MaxAge = cfg.stream_max_age_seconds * 1000000000LL;
        sc.MaxBytes = cfg.stream_max_bytes;
        sc.Duplicates = cfg.duplicate_window_seconds * 1000000000LL;
        jerr = static_cast<jsErrCode>(0);
        s = js_AddStream(&si, impl_->js, &sc, nullptr, &jerr);
        if (jerr == JSStreamNameExistErr) /* created meanwhile by another worker */
            s = NATS_OK;
    }
    if (si != nullptr)
        jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        error = describe(("could not create or find stream " + cfg.stream).c_str(), s, jerr);
        impl_->reset();
        return classify(s) == Result::Timeout ? Result::Timeout : Result::Unavailable;
    }

    if (give_up_if_interrupted())
        return Result::Unavailable;
    /* The durable pull consumer, shared by every ingest worker. */
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cfg.stream.c_str();
    so.ManualAck = true;
    so.Config.Durable = cfg.durable.c_str();
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.AckWait = cfg.ack_wait_ms * 1000000LL;
    so.Config.MaxAckPending = cfg.max_ack_pending;
    so.Config.MaxDeliver = -1; /* never give up on a message: poison is terminated explicitly */
    jerr = static_cast<jsErrCode>(0);
    s = js_PullSubscribe(&impl_->sub, impl_->js, cfg.stream_subjects.c_str(), cfg.durable.c_str(), nullptr, &so, &jerr);
    if (s != NATS_OK) {
        error = describe(("could not subscribe durable consumer " + cfg.durable).c_str(), s, jerr);
        impl_->reset();
        return Result::Unavailable;
    }
    return Result::Ok;
}

Result PullConsumer::fetch(int max_messages, int64_t timeout_ms, FetchedBatch &out, std::string &error)
{
    if (impl_->sub == nullptr)
        throw std::logic_error("fetch() on a consumer that is not connected");
    out.clear();
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = natsSubscription_Fetch(&out.impl_->list, impl_->sub, max_messages, timeout_ms, &jerr);
    if (s == NATS_OK)
        return Result::Ok;
    out.clear();
    if (s == NATS_TIMEOUT)
        return Result::Timeout;
    error = describe("fetch failed", s, jerr);
    return Result::Unavailable;
}

Result PullConsumer::ack(FetchedBatch &batch, size_t i, std::string &error)
{
    natsStatus s = natsMsg_Ack(batch.impl_->list.Msgs[i], nullptr);
    if (s != NATS_OK)
        error = describe("ack failed", s);
    return classify(s);
}

Result PullConsumer::term(FetchedBatch &batch, size_t i, std::string &error)
{
    natsStatus s = natsMsg_Term(batch.impl_->list.Msgs[i], nullptr);
    if (s != NATS_OK)
        error = describe("term failed", s);
    return classify(s);
}

Result PullConsumer::nak(FetchedBatch &batch, size_t i, int64_t delay_ms, std::string &error)
{
    natsStatus s = natsMsg_NakWithDelay(batch.impl_->list.Msgs[i], delay_ms, nullptr);
    if (s != NATS_OK)
        error = describe("nak failed", s);
    return classify(s);
}

Result PullConsumer::publish(const std::string &subject, const std::string &data, std::string &error)
{
    if (impl_->conn == nullptr)
        return Result::Unavailable;
    natsStatus s = natsConnection_Publish(impl_->conn, subject.c_str(), data.data(), static_cast<int>(data.size()));
    if (s != NATS_OK)
        error = describe(("publish on " + subject + " failed").c_str(), s);
    return classify(s);
}

Result PullConsumer::flush(int64_t timeout_ms, std::string &error)
{
    if (impl_->conn == nullptr)
        return Result::Unavailable;
    natsStatus s = natsConnection_FlushTimeout(impl_->conn, timeout_ms);
    if (s != NATS_OK)
        error = describe("flush failed", s);
    return classify(s);
}

} // namespace pgfleet::js

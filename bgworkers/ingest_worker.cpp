/*
 * bgworkers/ingest_worker.cpp — an ingest worker: pulls agent batches from JetStream and stores them
 * exactly once in effect.
 *
 * State machine (shown in fleet.worker_status.state):
 *
 *   ConnectingToNats --connected--> WaitingForExtension --extension present--> Running
 *          ^                                 ^                                   |
 *          +-------- NATS lost for 5 fetches +---- a batch failed for a reason --+
 *                                                  that is not the messages' (e.g. DROP EXTENSION)
 *
 * One loop iteration in Running:
 *   1. fetch up to pgfleet.batch_size messages (waits at most 0.5 s, so interrupts are seen twice a second);
 *   2. decode and validate every message in the pure layer (core/wire), outside any transaction;
 *   3. one transaction: per message a subtransaction that calls fleet._ingest_metrics(), which checks
 *      and writes the ledger row (agent_id, boot_id, batch_seq) and the samples together. A batch the
 *      ledger already holds is a no-op (a redelivery after a crash between commit and ack). A message
 *      that cannot be decoded, or that the database rejects for its data (SQLSTATE classes 22 and 23),
 *      goes to fleet.dead_letter with its reason, subject, stream sequence and raw bytes. Any other
 *      error aborts the whole transaction: nothing is acked, every message is redelivered later;
 *   4. commit, and only then ack (stored, duplicate) or terminate (dead-lettered) each message.
 * A metrics batch may refer to a series set by key alone (wire schema_minor 2). When the set is not
 * registered yet (the batch declaring it may be in another worker's transaction, or still in the
 * stream), nothing of the message is written and it is negatively acknowledged with a growing delay
 * (1 s, 2 s, ... 30 s); after pgfleet.series_set_wait of such retries it goes to dead letter.
 * A scrape may also be based on a keyframe (wire schema_minor 3): its integral values are differences
 * to a keyframe scrape of the same set that the agent sent earlier. The keyframes' values are looked up
 * (the fast path: one query per fetch, apply_fetch_keyframes; per message: fleet._metric_keyframes)
 * and added in the pure layer (wire::apply_keyframe) before anything is written; a keyframe not stored
 * yet is waited for exactly like an unknown set (dead letter "unknown keyframe" after
 * pgfleet.series_set_wait). Keyframe scrapes are also kept in fleet.metric_keyframe
 * (insert_fetch_keyframes, fleet._ingest_metric_blocks).
 * A crash anywhere before the commit loses nothing (nothing was acked); a crash after it duplicates
 * nothing (the ledger turns the redelivery into a no-op).
 *
 * Worker 0 also dispatches the centre's commands (fleet.command, the outbox), at most once a second:
 * one transaction claims the due commands (fleet._commands_to_send), and after its commit each is
 * published on fleet.cmd.<agent_id>. A lost publish is repeated 5 s later by the outbox itself.
 *
 * Memory: everything PostgreSQL allocates for a batch lives in the transaction or in batch_context,
 * which is reset at every iteration. C++ containers (decoded batches) are reused across iterations.
 *
 * Errors: PostgreSQL calls that can ERROR run inside pgfleet::pg_call, so an ERROR becomes a C++
 * exception here and this loop goes on. FATAL (SIGTERM via die(), postmaster death) exits the process
 * without unwinding; the sockets close with it and unacked messages are redelivered.
 */
#include <limits>
#include <string>
#include <vector>

#include "core/jetstream.h"
#include "core/wire.h"
#include "extension/guard.h"
#include "extension/shared_state.h"

extern "C" {
#include "commands/extension.h"
#include "postmaster/interrupt.h"
#include "storage/pmsignal.h"

PGDLLEXPORT void pgfleet_ingest_main(Datum main_arg);
}

namespace pgfleet {
namespace {

/* before_shmem_exit callback: the slot says the worker stopped (runs on every exit, FATAL included). */
void release_worker_slot(int, Datum slot_datum)
{
    int slot = DatumGetInt32(slot_datum);
    WorkerCounters c = read_worker_slot(slot);
    c.pid = 0;
    c.state = WorkerState::Stopped;
    write_worker_slot(slot, c);
}

constexpr long kFetchTimeoutMs = 500; /* bounds how long SIGTERM waits for a fetch */
constexpr long kFlushTimeoutMs = 1000;
constexpr long kRetryDelayMs = 1000;
constexpr long kNakDelayMs = 2000;
constexpr int kFetchFailuresBeforeReconnect = 5;
constexpr Oid kTimestamptzArrayOid = 1185;

/* What became of one fetched message. Retry: it refers to a series set or keyframe not stored yet
 * (the batch carrying it may still be on its way); it is negatively acknowledged with a delay. */
enum class Outcome : uint8 { Pending, Stored, Duplicate, DeadLetter, Retry };

/* What fleet._metric_keyframes made of a message's based scrapes. */
enum class KeyframeLookup : uint8 { Applied, Duplicate, Missing, Invalid };

/* Delay before the redelivery of a message with an unknown series set, after its delivery number n
 * (1, 2, ...): 1 s, 2 s, 4 s, ... at most 30 s. */
long unknown_set_retry_delay_ms(uint64_t n)
{
    return n >= 6 ? 30000 : 1000L << (n - 1);
}

/* How long a message has been retried for its unknown series set when delivered the n-th time: the
 * sum of the delays before deliveries 2..n (time spent waiting, not counting processing). */
long unknown_set_waited_ms(uint64_t n)
{
    long waited = 0;
    for (uint64_t k = 1; k < n && waited < 86400L * 1000; k++)
        waited += unknown_set_retry_delay_ms(k);
    return waited;
}

/* A command claimed from the outbox, to publish after the claiming transaction committed. */
struct PendingCommand {
    std::string command_id;
    std::string agent_id;
    std::string kind;
    std::vector<std::pair<std::string, std::string>> args;
};

/* One fetched message after decoding (strings already safe to store as text). */
struct DecodedMessage {
    wire::Envelope envelope;
    bool valid = false;
    std::string subject;
    std::string instance_json; /* empty when the batch carried no instance facts */
    std::string reason;
    std::string detail;
    /* metrics: the declared scrapes whose key is the first of its kind (only those are given when the
     * sets have to be registered); references (scrapes naming only a set key) are not among them */
    std::vector<uint32_t> distinct_scrapes;
};

class IngestWorker {
public:
    IngestWorker(int slot, MemoryContext batch_context) : slot_(slot), batch_context_(batch_context)
    {
        counters_.pid = MyProcPid;
        counters_.started_at = GetCurrentTimestamp();
    }

    /* Runs until SIGTERM (which exits through die() and FATAL). */
    void run();

private:
    void set_state(WorkerState state);
    void publish_counters() { write_worker_slot(slot_, counters_); }
    void note_error(const std::string &message);
    void wait_ms(long ms);
    void reload_settings_if_asked();

    void connect_to_nats();
    void wait_for_extension();
    void fetch_and_store();

    void decode_batch();
    void store_batch();
    void store_metric_fetch();
    void apply_fetch_keyframes();
    void insert_fetch_keyframes(const std::vector<size_t> &batches, const Datum *results, const bool *result_nulls,
                                const Datum *instances, const Datum *sets);
    void call_metric_fetch(const std::vector<size_t> &batches);
    void store_message(size_t i);
    int32 store_metric_blocks(size_t i);
    KeyframeLookup apply_keyframes(size_t i, char *detail, size_t detail_size);
    void wait_or_dead_letter(size_t i, const char *reason, const char *what);
    void register_series_sets(size_t i);
    void store_payload_message(size_t i);
    void store_dead_letter(size_t i, const char *reason, const char *detail);
    void settle_batch();
    void nak_batch();
    void dispatch_commands();
    void claim_commands();

    int slot_;
    WorkerCounters counters_{};
    WorkerState state_ = WorkerState::ConnectingToNats;
    MemoryContext batch_context_;
    js::PullConsumer consumer_;
    js::FetchedBatch batch_;
    std::vector<DecodedMessage> decoded_;
    std::vector<Outcome> outcomes_;
    std::vector<const char *> rejection_detail_; /* in batch_context_, for the log after the commit */
    std::vector<const char *> rejection_reason_; /* static strings */
    std::vector<size_t> fast_path_;              /* messages offered to store_metric_fetch() */
    int consecutive_fetch_failures_ = 0;
    bool told_nats_down_ = false;
    bool told_extension_missing_ = false;
    std::string nats_url_in_use_;
    std::string nats_credentials_in_use_;
    std::vector<PendingCommand> commands_;
    TimestampTz last_dispatch_ = 0;
};

void IngestWorker::set_state(WorkerState state)
{
    state_ = state;
    counters_.state = state;
    publish_counters();
}

/* Records an error in the shared counters (shown by fleet.worker_status). */
void IngestWorker::note_error(const std::string &message)
{
    counters_.errors++;
    strlcpy(counters_.last_error, message.c_str(), sizeof(counters_.last_error));
    publish_counters();
}

/* Sleeps on the latch for up to ms, handling interrupts (SIGTERM ends the process here). */
void IngestWorker::wait_ms(long ms)
{
    (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
}

/* Applies a SIGHUP; a changed NATS URL or credentials file forces a reconnect. */
void IngestWorker::reload_settings_if_asked()
{
    if (!ConfigReloadPending)
        return;
    ConfigReloadPending = false;
    pg_call([] { ProcessConfigFile(PGC_SIGHUP); });
    if (nats_url_in_use_ != setting_nats_url || nats_credentials_in_use_ != setting_nats_credentials) {
        consumer_.close();
        set_state(WorkerState::ConnectingToNats);
    }
}

void IngestWorker::run()
{
    set_state(WorkerState::ConnectingToNats);
    for (;;) {
        /* Everything PostgreSQL allocates outside transactions in one iteration (error copies, batch
         * arrays, dead-letter details) lives in batch_context, emptied here every time. */
        MemoryContextSwitchTo(TopMemoryContext);
        MemoryContextReset(batch_context_);
        MemoryContextSwitchTo(batch_context_);
        /* Running never sleeps on the latch (it waits in NATS fetches), so WL_EXIT_ON_PM_DEATH alone would
         * not notice a dead postmaster: an orphaned worker must not go on committing. */
        if (!PostmasterIsAlive())
            proc_exit(1);
        CHECK_FOR_INTERRUPTS();
        reload_settings_if_asked();
        switch (state_) {
        case WorkerState::ConnectingToNats: connect_to_nats(); break;
        case WorkerState::WaitingForExtension: wait_for_extension(); break;
        case WorkerState::Running: fetch_and_store(); break;
        case WorkerState::Stopped: return;
        }
    }
}

/* Connects to NATS and ensures stream and consumer; on failure waits a second (logged once per outage). */
void IngestWorker::connect_to_nats()
{
    js::ConsumerSettings settings;
    settings.url = setting_nats_url;
    settings.credentials_file = setting_nats_credentials;
    settings.client_name = "pgfleet-ingest-" + std::to_string(slot_);
    std::string error;
    /* Read-only look at PostgreSQL's interrupt flags (set by signal handlers), so that SIGTERM during
     * a slow connect is served within one connect step. */
    auto interrupted = [] { return InterruptPending || ConfigReloadPending; };
    if (consumer_.connect(settings, error, interrupted) == js::Result::Ok) {
        nats_url_in_use_ = settings.url;
        nats_credentials_in_use_ = settings.credentials_file;
        consecutive_fetch_failures_ = 0;
        ereport(LOG, (errmsg("pgfleet ingest worker %d connected to NATS at %s", slot_,
                             js::redacted_url(settings.url).c_str()),
                      errdetail("Pulling stream \"%s\" with durable consumer \"%s\".", settings.stream.c_str(),
                                settings.durable.c_str())));
        told_nats_down_ = false;
        set_state(WorkerState::WaitingForExtension);
        return;
    }
    if (error == "interrupted")
        return; /* the loop serves the interrupt */
    if (!told_nats_down_)
        ereport(LOG, (errmsg("pgfleet ingest worker %d cannot reach NATS at %s", slot_,
                             js::redacted_url(settings.url).c_str()),
                      errdetail("%s", as_sentence(wire::to_valid_text(error)).c_str()),
                      errhint("The worker retries every second and logs again once it is connected.")));
    told_nats_down_ = true;
    note_error(error);
    wait_ms(kRetryDelayMs);
}

/* Waits until the pgfleet extension exists in this database (logged once while it does not). */
void IngestWorker::wait_for_extension()
{
    bool present = false;
    std::string failure;
    try {
        pg_call([&] {
            StartTransactionCommand();
            present = OidIsValid(get_extension_oid("pgfleet", true));
            CommitTransactionCommand();
        });
    } catch (const PgError &e) {
        failure = e.what();
    }
    if (!failure.empty()) {
        pg_call([] { AbortCurrentTransaction(); });
        note_error(failure);
    }
    if (present) {
        if (told_extension_missing_)
            ereport(LOG, (errmsg("pgfleet ingest worker %d found the pgfleet extension; ingesting", slot_)));
        told_extension_missing_ = false;
        set_state(WorkerState::Running);
        return;
    }
    if (!told_extension_missing_)
        ereport(LOG, (errmsg("pgfleet ingest worker %d waits for the pgfleet extension in database \"%s\"", slot_,
                             setting_database),
                      errhint("Run CREATE EXTENSION pgfleet in that database.")));
    told_extension_missing_ = true;
    wait_ms(kRetryDelayMs);
}

/* One iteration of Running: commands out (worker 0), then fetch, decode, store in one transaction,
 * then settle with NATS. */
void IngestWorker::fetch_and_store()
{
    dispatch_commands();
    std::string error;
    js::Result r = consumer_.fetch(setting_batch_size, kFetchTimeoutMs, batch_, error);
    if (r == js::Result::Timeout)
        return;
    if (r == js::Result::Unavailable) {
        if (!told_nats_down_)
            ereport(LOG, (errmsg("pgfleet ingest worker %d lost NATS", slot_),
                          errdetail("%s", as_sentence(wire::to_valid_text(error)).c_str())));
        told_nats_down_ = true;
        note_error(error);
        if (++consecutive_fetch_failures_ >= kFetchFailuresBeforeReconnect) {
            consumer_.close();
            set_state(WorkerState::ConnectingToNats);
        } else {
            wait_ms(kRetryDelayMs);
        }
        return;
    }
    if (told_nats_down_)
        ereport(LOG, (errmsg("pgfleet ingest worker %d is receiving from NATS again", slot_)));
    told_nats_down_ = false;
    consecutive_fetch_failures_ = 0;

    decode_batch();
    std::string failure;
    try {
        pg_call([&] { store_batch(); });
    } catch (const PgError &e) {
        failure = e.what();
    }
    if (!failure.empty()) {
        /* Not the messages' fault (the database refused the batch as a whole): retry it later. */
        pg_call([] { AbortCurrentTransaction(); });
        MemoryContextSwitchTo(batch_context_);
        ereport(LOG, (errmsg("pgfleet ingest worker %d could not store a batch of %zu messages", slot_, batch_.size()),
                      errdetail("%s", as_sentence(failure).c_str()),
                      errhint("The messages are redelivered; nothing is lost."),
                      errcontext("stream FLEET_IN, consumer fleet_ingest, stream sequences %llu to %llu",
                                 static_cast<unsigned long long>(batch_.meta(0).stream_seq),
                                 static_cast<unsigned long long>(batch_.meta(batch_.size() - 1).stream_seq))));
        note_error("batch not stored: " + failure);
        nak_batch();
        set_state(WorkerState::WaitingForExtension);
        wait_ms(kRetryDelayMs);
        return;
    }
    settle_batch();
}

/* Worker 0, at most once a second: claims due commands in one transaction, then publishes them. */
void IngestWorker::dispatch_commands()
{
    if (slot_ != 0)
        return;
    TimestampTz now = GetCurrentTimestamp();
    if (!TimestampDifferenceExceeds(last_dispatch_, now, 1000))
        return;
    last_dispatch_ = now;
    commands_.clear();
    std::string failure;
    try {
        pg_call([&] { claim_commands(); });
    } catch (const PgError &e) {
        failure = e.what();
    }
    if (!failure.empty()) {
        pg_call([] { AbortCurrentTransaction(); });
        MemoryContextSwitchTo(batch_context_);
        commands_.clear(); /* not claimed: the transaction rolled back */
        note_error("command dispatch: " + failure);
        return;
    }
    MemoryContextSwitchTo(batch_context_);
    if (commands_.empty())
        return;
    std::string error;
    for (const PendingCommand &c : commands_) {
        std::string body = wire::encode_command(c.command_id, c.kind, c.args, (now / 1000) + 946684800000LL);
        if (consumer_.publish("fleet.cmd." + c.agent_id, body, error) != js::Result::Ok)
            break; /* the outbox resends in 5 s */
    }
    if (consumer_.flush(kFlushTimeoutMs, error) != js::Result::Ok || !error.empty())
        note_error("command dispatch: " + error);
}

/*
 * The claiming transaction (inside pg_call). Each row's values are first copied out of SPI into
 * palloc'd C strings; the C++ PendingCommand is built afterwards, when no PostgreSQL call is running,
 * so an ERROR never skips a C++ destructor.
 */
void IngestWorker::claim_commands()
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "pgfleet ingest: SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    if (SPI_execute("SELECT command_id, agent_id, kind, arg_names, arg_values FROM fleet._commands_to_send(100)",
                    false, 0) != SPI_OK_SELECT)
        elog(ERROR, "pgfleet ingest: fleet._commands_to_send failed");
    for (uint64 row = 0; row < SPI_processed; row++) {
        HeapTuple tuple = SPI_tuptable->vals[row];
        TupleDesc desc = SPI_tuptable->tupdesc;
        char *id = SPI_getvalue(tuple, desc, 1);
        char *agent = SPI_getvalue(tuple, desc, 2);
        char *kind = SPI_getvalue(tuple, desc, 3);
        Datum *names = nullptr, *values = nullptr;
        int nnames = 0, nvalues = 0;
        bool isnull = false;
        Datum d = SPI_getbinval(tuple, desc, 4, &isnull);
        if (!isnull)
            deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &names, nullptr, &nnames);
        d = SPI_getbinval(tuple, desc, 5, &isnull);
        if (!isnull)
            deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &values, nullptr, &nvalues);
        if (id == nullptr || agent == nullptr || kind == nullptr || nnames != nvalues)
            elog(ERROR, "pgfleet ingest: fleet._commands_to_send returned an incomplete row");
        char **arg_cstrings = static_cast<char **>(palloc(sizeof(char *) * Max(2 * nnames, 1)));
        for (int k = 0; k < nnames; k++) {
            arg_cstrings[2 * k] = TextDatumGetCString(names[k]);
            arg_cstrings[2 * k + 1] = TextDatumGetCString(values[k]);
        }
        /* no PostgreSQL call from here to the end of the iteration */
        commands_.push_back(PendingCommand{id, agent, kind, {}});
        for (int k = 0; k < nnames; k++)
            commands_.back().args.emplace_back(arg_cstrings[2 * k], arg_cstrings[2 * k + 1]);
    }
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
}

/* Decodes and validates every fetched message (pure C++, no transaction). */
void IngestWorker::decode_batch()
{
    const size_t n = batch_.size();
    decoded_.resize(n);
    outcomes_.assign(n, Outcome::Pending);
    rejection_detail_.assign(n, nullptr);
    rejection_reason_.assign(n, nullptr);
    for (size_t i = 0; i < n; i++) {
        DecodedMessage &d = decoded_[i];
        d.subject = wire::to_valid_text(batch_.subject(i));
        wire::Subject subject;
        wire::DecodeStatus st = wire::parse_subject(batch_.subject(i), subject);
        if (st.ok)
            st = wire::decode_envelope(batch_.data(i), batch_.data_size(i), d.envelope);
        if (st.ok)
            st = wire::check_subject(subject, d.envelope);
        d.valid = st.ok;
        d.instance_json = st.ok && d.envelope.instance.present ? wire::instance_to_json(d.envelope.instance) : std::string();
        d.reason = wire::to_valid_text(st.reason);
        d.detail = wire::to_valid_text(st.detail);
        d.distinct_scrapes.clear();
        if (st.ok && d.envelope.kind == wire::PayloadKind::Metrics) {
            const wire::MetricBatch &m = d.envelope.metrics;
            for (uint32_t k = 0; k < m.scrape_end.size(); k++) {
                if (m.scrape_is_reference[k])
                    continue;
                bool seen = false;
                for (uint32_t j : d.distinct_scrapes)
                    seen = seen || m.scrape_key[j] == m.scrape_key[k];
                if (!seen)
                    d.distinct_scrapes.push_back(k);
            }
        }
    }
}

/* Builds a text[] from n strings taken by get(i). */
template <typename Get>
Datum text_array(size_t n, Get get)
{
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * Max(n, 1)));
    for (size_t i = 0; i < n; i++) {
        const std::string &s = get(i);
        elems[i] = PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size())));
    }
    return PointerGetDatum(construct_array(elems, static_cast<int>(n), TEXTOID, -1, false, TYPALIGN_INT));
}

/* Builds an array of a pass-by-value 4- or 8-byte type from n Datums made by get(i). */
template <typename Get>
Datum value_array(size_t n, Oid type, int len, char align, Get get)
{
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * Max(n, 1)));
    for (size_t i = 0; i < n; i++)
        elems[i] = get(i);
    return PointerGetDatum(construct_array(elems, static_cast<int>(n), type, len, true, align));
}

/* Builds an array of a varlena type from n Datums made by get(i). */
template <typename Get>
Datum byval_free_array(size_t n, Oid type, Get get)
{
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * Max(n, 1)));
    for (size_t i = 0; i < n; i++)
        elems[i] = get(i);
    return PointerGetDatum(construct_array(elems, static_cast<int>(n), type, -1, false, TYPALIGN_INT));
}

/* A float8[] copied straight from n doubles (no per-element Datum). */
Datum float8_array(const double *values, size_t n)
{
    const size_t bytes = ARR_OVERHEAD_NONULLS(1) + n * sizeof(double);
    ArrayType *a = static_cast<ArrayType *>(palloc0(bytes));
    SET_VARSIZE(a, bytes);
    a->ndim = n == 0 ? 0 : 1;
    a->dataoffset = 0;
    a->elemtype = FLOAT8OID;
    if (n == 0) {
        SET_VARSIZE(a, ARR_OVERHEAD_NONULLS(0));
        return PointerGetDatum(a);
    }
    ARR_DIMS(a)[0] = static_cast<int>(n);
    ARR_LBOUND(a)[0] = 1;
    memcpy(ARR_DATA_PTR(a), values, n * sizeof(double));
    return PointerGetDatum(a);
}

/* Unix milliseconds to PostgreSQL's TimestampTz (microseconds since 2000-01-01). */
TimestampTz unix_ms_to_timestamptz(int64 ms)
{
    return ms * 1000 - static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC;
}

/*
 * Runs body in an internal subtransaction of the batch transaction. On ERROR the subtransaction is rolled
 * back and the error is returned (copied into the caller's memory context); nullptr when body succeeded.
 */
template <typename Body>
ErrorData *in_subtransaction(Body body)
{
    MemoryContext outer_context = CurrentMemoryContext;
    ResourceOwner outer_owner = CurrentResourceOwner;
    ErrorData *volatile error = nullptr; /* assigned after the longjmp */
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(outer_context);
    PG_TRY();
    {
        body();
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(outer_context);
        CurrentResourceOwner = outer_owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(outer_context);
        error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(outer_context);
        CurrentResourceOwner = outer_owner;
    }
    PG_END_TRY();
    return error;
}

/*
 * The batch transaction. Runs inside pg_call; holds no C++ object with a destructor (an ERROR
 * longjmps out of it). Reads decoded_ and writes outcomes_ in place (no allocation).
 */
void IngestWorker::store_batch()
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "pgfleet ingest: SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pgfleet: storing a batch");

    store_metric_fetch();
    for (size_t i = 0; i < decoded_.size(); i++) {
        if (outcomes_[i] != Outcome::Pending)
            continue; /* stored (or found a duplicate) by the fast path */
        if (!decoded_[i].valid) {
            store_dead_letter(i, decoded_[i].reason.c_str(), decoded_[i].detail.c_str());
            continue;
        }
        ErrorData *edata = in_subtransaction([&] { store_message(i); });
        if (edata != nullptr) {
            /* The message's fault: bad data (class 22) or a row no constraint can ever accept (not
             * null, check). Anything else, foreign-key and unique violations included (a concurrent
             * change could cause them), is retried with the whole batch. */
            bool message_fault = ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
                                 edata->sqlerrcode == ERRCODE_NOT_NULL_VIOLATION ||
                                 edata->sqlerrcode == ERRCODE_CHECK_VIOLATION;
            if (!message_fault)
                ReThrowError(edata);
            /* batch_context outlives the transaction: settle_batch() logs it after the commit */
            rejection_detail_[i] = MemoryContextStrdup(batch_context_, edata->message);
            rejection_reason_[i] = "rejected by database";
        }
        if (rejection_detail_[i] != nullptr && outcomes_[i] != Outcome::DeadLetter)
            store_dead_letter(i, rejection_reason_[i], rejection_detail_[i]);
    }

    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

/* A bytea Datum holding a series-set key. */
Datum key_bytea(const wire::SeriesSetKey &key)
{
    bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + sizeof key.bytes));
    SET_VARSIZE(b, VARHDRSZ + sizeof key.bytes);
    memcpy(VARDATA(b), key.bytes, sizeof key.bytes);
    return PointerGetDatum(b);
}

/*
 * The fast path: every metrics message of the fetch whose instance and series sets are registered
 * (and that carries no instance facts) is stored by one call of fleet._ingest_metric_fetch, in a
 * subtransaction. If that call fails for any reason, the subtransaction is rolled back and every
 * message takes the per-message path, which isolates a message the database refuses. Messages the
 * function leaves alone (-2: something to register) take the per-message path too.
 */
void IngestWorker::store_metric_fetch()
{
    fast_path_.clear();
    for (size_t i = 0; i < decoded_.size(); i++) {
        const DecodedMessage &d = decoded_[i];
        if (d.valid && d.envelope.kind == wire::PayloadKind::Metrics && !d.envelope.instance.present)
            fast_path_.push_back(i);
    }
    if (fast_path_.size() < 2)
        return;
    if (in_subtransaction([&] {
            apply_fetch_keyframes();
            if (!fast_path_.empty())
                call_metric_fetch(fast_path_);
        }) != nullptr)
        for (size_t i : fast_path_)
            outcomes_[i] = Outcome::Pending; /* nothing of the call remains */
}

/*
 * The fast path's keyframe lookup: one query for the keyframes of every based scrape of the messages in
 * fast_path_, added in the pure layer. A message whose keyframes are not all there (not stored yet, or
 * stored by this very fetch), or do not fit, leaves the fast path: the per-message path retries it or
 * puts it aside. Applying is idempotent (wire::apply_keyframe marks what it added), so the per-message
 * path may look again after a rollback.
 */
void IngestWorker::apply_fetch_keyframes()
{
    static const char *sql =
        /* one index probe per entry (LATERAL ... LIMIT 1): joined flat, the planner, which takes unnest
         * for 10 rows, rescanned the arguments once per stored keyframe (250 ms for 500 entries) */
        "SELECT k.ord, kf.vals "
        "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[]) WITH ORDINALITY AS k(agent, boot, base_seq, set_key, ord) "
        "CROSS JOIN LATERAL (SELECT kf.vals FROM fleet.instance i "
        "     JOIN fleet.series_set ss ON ss.instance_id = i.instance_id AND ss.set_key = k.set_key "
        "     JOIN fleet.metric_keyframe kf ON kf.instance_id = i.instance_id AND kf.boot_id = k.boot "
        "          AND kf.batch_seq = k.base_seq AND kf.series_set_id = ss.series_set_id "
        "     WHERE i.agent_id = k.agent LIMIT 1) AS kf";
    static Oid types[4] = {TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, BYTEAARRAYOID};
    size_t nbased = 0;
    for (size_t i : fast_path_)
        for (uint64_t base_seq : decoded_[i].envelope.metrics.scrape_base_seq)
            nbased += base_seq != 0;
    if (nbased == 0)
        return;
    /* one entry per based scrape: its message and scrape */
    size_t *entry_message = static_cast<size_t *>(palloc(sizeof(size_t) * nbased));
    size_t *entry_scrape = static_cast<size_t *>(palloc(sizeof(size_t) * nbased));
    Datum *base_seq = static_cast<Datum *>(palloc(sizeof(Datum) * nbased));
    Datum *keys = static_cast<Datum *>(palloc(sizeof(Datum) * nbased));
    size_t e = 0;
    for (size_t i : fast_path_) {
        const wire::MetricBatch &m = decoded_[i].envelope.metrics;
        for (size_t k = 0; k < m.scrape_base_seq.size(); k++)
            if (m.scrape_base_seq[k] != 0) {
                entry_message[e] = i;
                entry_scrape[e] = k;
                base_seq[e] = Int64GetDatum(static_cast<int64>(m.scrape_base_seq[k]));
                keys[e++] = key_bytea(m.scrape_key[k]);
            }
    }
    Datum args[4];
    args[0] = text_array(nbased, [&](size_t x) -> const std::string & { return decoded_[entry_message[x]].envelope.agent_id; });
    args[1] = text_array(nbased, [&](size_t x) -> const std::string & { return decoded_[entry_message[x]].envelope.boot_id; });
    args[2] = PointerGetDatum(construct_array(base_seq, static_cast<int>(nbased), INT8OID, 8, true, TYPALIGN_DOUBLE));
    args[3] = PointerGetDatum(construct_array(keys, static_cast<int>(nbased), BYTEAOID, -1, false, TYPALIGN_INT));
    if (SPI_execute_with_args(sql, 4, types, args, nullptr, true, 0) != SPI_OK_SELECT)
        elog(ERROR, "pgfleet ingest: the keyframe lookup failed");
    ArrayType **found = static_cast<ArrayType **>(palloc0(sizeof(ArrayType *) * nbased));
    for (uint64 r = 0; r < SPI_processed; r++) {
        bool null_ord = false, null_vals = false;
        int64 ord = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &null_ord));
        Datum vals = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &null_vals);
        if (null_ord || null_vals || ord < 1 || static_cast<size_t>(ord) > nbased)
            continue;
        ArrayType *a = DatumGetArrayTypeP(vals);
        if (ARR_NDIM(a) == 1 && !ARR_HASNULL(a))
            found[ord - 1] = a;
    }
    /* pure C++ from here on: nothing below calls PostgreSQL while the string lives */
    std::vector<size_t> &kept = fast_path_;
    size_t out = 0;
    e = 0;
    {
        std::string error;
        for (size_t i : kept) {
            wire::MetricBatch &m = decoded_[i].envelope.metrics;
            bool ok = true;
            for (; e < nbased && entry_message[e] == i; e++) {
                ArrayType *a = found[e];
                ok = ok && a != nullptr &&
                     wire::apply_keyframe(m, entry_scrape[e], reinterpret_cast<const double *>(ARR_DATA_PTR(a)),
                                          static_cast<size_t>(ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a))), error);
            }
            if (ok)
                kept[out++] = i;
        }
    }
    kept.resize(out);
}

/* The elements of a one-dimensional array Datum of a pass-by-value type (NULLs in nulls). */
void array_elements(Datum array, Oid type, int len, char align, Datum **values, bool **nulls, int *n)
{
    deconstruct_array(DatumGetArrayTypeP(array), type, len, true, align, values, nulls, n);
}

/*
 * Calls fleet._ingest_metric_fetch for the given messages (ledger, rollup work, last_seen of those
 * it takes), then inserts the blocks of the batches it took in one INSERT whose values come from
 * one flat float8[] parameter, and records the outcomes.
 */
void IngestWorker::call_metric_fetch(const std::vector<size_t> &batches)
{
    static const char *record_sql =
        "SELECT p_result, p_instance, p_set FROM fleet._ingest_metric_fetch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    static Oid record_types[10] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
                                   INT4ARRAYOID, INT4ARRAYOID, BYTEAARRAYOID, kTimestamptzArrayOid, INT4ARRAYOID};
    static const char *insert_sql =
        "INSERT INTO fleet.sample_block (instance_id, ts, series_set_id, vals) "
        "SELECT u.i, u.t, u.s, $5[u.e - u.l + 1 : u.e] "
        "FROM (SELECT x.i, x.t, x.s, x.l, sum(x.l) OVER (ORDER BY x.ord)::integer AS e "
        "      FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::integer[]) WITH ORDINALITY AS x(i, t, s, l, ord)) AS u";
    static Oid insert_types[5] = {INT8ARRAYOID, kTimestamptzArrayOid, INT8ARRAYOID, INT4ARRAYOID, FLOAT8ARRAYOID};
    const size_t n = batches.size();
    size_t nscrapes = 0;
    for (size_t i : batches)
        nscrapes += decoded_[i].envelope.metrics.scrape_end.size();
    auto env = [&](size_t m) -> const wire::Envelope & { return decoded_[batches[m]].envelope; };
    auto scrape_len = [](const wire::MetricBatch &mb, size_t j) {
        return static_cast<int32>(mb.scrape_end[j] - (j == 0 ? 0 : mb.scrape_end[j - 1]));
    };
    Datum args[10];
    args[0] = text_array(n, [&](size_t m) -> const std::string & { return env(m).agent_id; });
    args[1] = text_array(n, [&](size_t m) -> const std::string & { return env(m).namespace_name; });
    args[2] = text_array(n, [&](size_t m) -> const std::string & { return env(m).boot_id; });
    args[3] = value_array(n, INT8OID, 8, TYPALIGN_DOUBLE,
                          [&](size_t m) { return Int64GetDatum(static_cast<int64>(env(m).batch_seq)); });
    args[4] = value_array(n, INT8OID, 8, TYPALIGN_DOUBLE, [&](size_t m) {
        return Int64GetDatum(static_cast<int64>(batch_.meta(batches[m]).stream_seq));
    });
    args[5] = value_array(n, INT4OID, 4, TYPALIGN_INT, [&](size_t m) {
        return Int32GetDatum(static_cast<int32>(env(m).metrics.sample_value.size()));
    });
    /* per scrape: its message (1-based), key, timestamp and length */
    Datum *scrape_msg = static_cast<Datum *>(palloc(sizeof(Datum) * Max(nscrapes, 1)));
    Datum *keys = static_cast<Datum *>(palloc(sizeof(Datum) * Max(nscrapes, 1)));
    Datum *ts = static_cast<Datum *>(palloc(sizeof(Datum) * Max(nscrapes, 1)));
    Datum *len = static_cast<Datum *>(palloc(sizeof(Datum) * Max(nscrapes, 1)));
    size_t k = 0;
    for (size_t m = 0; m < n; m++) {
        const wire::MetricBatch &mb = env(m).metrics;
        for (size_t j = 0; j < mb.scrape_end.size(); j++, k++) {
            scrape_msg[k] = Int32GetDatum(static_cast<int32>(m + 1));
            keys[k] = key_bytea(mb.scrape_key[j]);
            ts[k] = TimestampTzGetDatum(unix_ms_to_timestamptz(mb.sample_ts_unix_ms[mb.scrape_end[j] - 1]));
            len[k] = Int32GetDatum(scrape_len(mb, j));
        }
    }
    args[6] = PointerGetDatum(construct_array(scrape_msg, static_cast<int>(nscrapes), INT4OID, 4, true, TYPALIGN_INT));
    args[7] = PointerGetDatum(construct_array(keys, static_cast<int>(nscrapes), BYTEAOID, -1, false, TYPALIGN_INT));
    args[8] = PointerGetDatum(construct_array(ts, static_cast<int>(nscrapes), TIMESTAMPTZOID, 8, true, TYPALIGN_DOUBLE));
    args[9] = PointerGetDatum(construct_array(len, static_cast<int>(nscrapes), INT4OID, 4, true, TYPALIGN_INT));
    if (SPI_execute_with_args(record_sql, 10, record_types, args, nullptr, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "pgfleet ingest: fleet._ingest_metric_fetch returned no row");
    HeapTuple row = SPI_tuptable->vals[0];
    TupleDesc desc = SPI_tuptable->tupdesc;
    bool null_result = false, null_instance = false, null_set = false;
    Datum result = SPI_getbinval(row, desc, 1, &null_result);
    Datum instance = SPI_getbinval(row, desc, 2, &null_instance);
    Datum set = SPI_getbinval(row, desc, 3, &null_set);
    if (null_result || null_instance)
        elog(ERROR, "pgfleet ingest: fleet._ingest_metric_fetch returned NULL");
    Datum *results = nullptr, *instances = nullptr, *sets = nullptr;
    bool *result_nulls = nullptr, *instance_nulls = nullptr, *set_nulls = nullptr;
    int nresults = 0, ninstances = 0, nsets = 0;
    array_elements(result, INT4OID, 4, TYPALIGN_INT, &results, &result_nulls, &nresults);
    array_elements(instance, INT8OID, 8, TYPALIGN_DOUBLE, &instances, &instance_nulls, &ninstances);
    if (!null_set)
        array_elements(set, INT8OID, 8, TYPALIGN_DOUBLE, &sets, &set_nulls, &nsets);
    if (static_cast<size_t>(nresults) != n || static_cast<size_t>(ninstances) != n ||
        (nscrapes > 0 && static_cast<size_t>(nsets) != nscrapes))
        elog(ERROR, "pgfleet ingest: fleet._ingest_metric_fetch returned %d results for %zu batches", nresults, n);

    /* the blocks of the batches taken (result >= 0) */
    size_t new_scrapes = 0, new_values = 0;
    for (size_t m = 0; m < n; m++)
        if (!result_nulls[m] && DatumGetInt32(results[m]) >= 0) {
            new_scrapes += env(m).metrics.scrape_end.size();
            new_values += env(m).metrics.sample_value.size();
        }
    if (new_scrapes > 0) {
        Datum *block_instance = static_cast<Datum *>(palloc(sizeof(Datum) * new_scrapes));
        Datum *block_ts = static_cast<Datum *>(palloc(sizeof(Datum) * new_scrapes));
        Datum *block_set = static_cast<Datum *>(palloc(sizeof(Datum) * new_scrapes));
        Datum *block_len = static_cast<Datum *>(palloc(sizeof(Datum) * new_scrapes));
        double *values = static_cast<double *>(palloc(sizeof(double) * Max(new_values, 1)));
        size_t b = 0, v = 0;
        k = 0;
        for (size_t m = 0; m < n; m++) {
            const wire::MetricBatch &mb = env(m).metrics;
            const bool taken = !result_nulls[m] && DatumGetInt32(results[m]) >= 0;
            for (size_t j = 0; j < mb.scrape_end.size(); j++, k++) {
                if (!taken)
                    continue;
                if (instance_nulls[m] || set_nulls[k])
                    elog(ERROR, "pgfleet ingest: fleet._ingest_metric_fetch took a batch without its instance or set");
                block_instance[b] = instances[m];
                block_ts[b] = ts[k];
                block_set[b] = sets[k];
                block_len[b] = len[k];
                b++;
            }
            if (taken) {
                memcpy(values + v, mb.sample_value.data(), mb.sample_value.size() * sizeof(double));
                v += mb.sample_value.size();
            }
        }
        Datum insert_args[5] = {
            PointerGetDatum(construct_array(block_instance, static_cast<int>(b), INT8OID, 8, true, TYPALIGN_DOUBLE)),
            PointerGetDatum(construct_array(block_ts, static_cast<int>(b), TIMESTAMPTZOID, 8, true, TYPALIGN_DOUBLE)),
            PointerGetDatum(construct_array(block_set, static_cast<int>(b), INT8OID, 8, true, TYPALIGN_DOUBLE)),
            PointerGetDatum(construct_array(block_len, static_cast<int>(b), INT4OID, 4, true, TYPALIGN_INT)),
            float8_array(values, v)};
        if (SPI_execute_with_args(insert_sql, 5, insert_types, insert_args, nullptr, false, 0) != SPI_OK_INSERT ||
            SPI_processed != b)
            elog(ERROR, "pgfleet ingest: the fast path inserted %llu of %zu blocks",
                 static_cast<unsigned long long>(SPI_processed), b);
    }
    insert_fetch_keyframes(batches, results, result_nulls, instances, sets);
    for (size_t m = 0; m < n; m++) {
        int32 r = result_nulls[m] ? -2 : DatumGetInt32(results[m]);
        if (r != -2)
            outcomes_[batches[m]] = r < 0 ? Outcome::Duplicate : Outcome::Stored;
    }
}

/* The fast path's keyframes: the keyframe scrapes of the batches fleet._ingest_metric_fetch took
 * (results[m] >= 0) are also kept in fleet.metric_keyframe, with one INSERT. instances[m] and sets[k]
 * are that call's instance per batch and set per scrape (scrapes numbered across the batches). */
void IngestWorker::insert_fetch_keyframes(const std::vector<size_t> &batches, const Datum *results,
                                          const bool *result_nulls, const Datum *instances, const Datum *sets)
{
    static const char *sql =
        "INSERT INTO fleet.metric_keyframe (instance_id, boot_id, batch_seq, series_set_id, ts, vals) "
        "SELECT u.i, u.b, u.q, u.s, u.t, $7[u.e - u.l + 1 : u.e] "
        "FROM (SELECT x.i, x.b, x.q, x.s, x.t, x.l, sum(x.l) OVER (ORDER BY x.ord)::integer AS e "
        "      FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::integer[]) "
        "           WITH ORDINALITY AS x(i, b, q, s, t, l, ord)) AS u "
        "ON CONFLICT DO NOTHING";
    static Oid types[7] = {INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, kTimestamptzArrayOid, INT4ARRAYOID,
                           FLOAT8ARRAYOID};
    size_t nkeyframes = 0, nvalues = 0;
    for (size_t m = 0; m < batches.size(); m++) {
        if (result_nulls[m] || DatumGetInt32(results[m]) < 0)
            continue;
        const wire::MetricBatch &mb = decoded_[batches[m]].envelope.metrics;
        for (size_t k = 0; k < mb.scrape_is_keyframe.size(); k++)
            if (mb.scrape_is_keyframe[k]) {
                nkeyframes++;
                nvalues += mb.scrape_end[k] - (k == 0 ? 0 : mb.scrape_end[k - 1]);
            }
    }
    if (nkeyframes == 0)
        return;
    Datum *instance = static_cast<Datum *>(palloc(sizeof(Datum) * nkeyframes));
    const std::string **boot = static_cast<const std::string **>(palloc(sizeof(std::string *) * nkeyframes));
    Datum *seq = static_cast<Datum *>(palloc(sizeof(Datum) * nkeyframes));
    Datum *set = static_cast<Datum *>(palloc(sizeof(Datum) * nkeyframes));
    Datum *ts = static_cast<Datum *>(palloc(sizeof(Datum) * nkeyframes));
    Datum *len = static_cast<Datum *>(palloc(sizeof(Datum) * nkeyframes));
    double *values = static_cast<double *>(palloc(sizeof(double) * nvalues));
    size_t f = 0, v = 0, scrape = 0;
    for (size_t m = 0; m < batches.size(); m++) {
        const wire::Envelope &env = decoded_[batches[m]].envelope;
        const wire::MetricBatch &mb = env.metrics;
        const bool taken = !result_nulls[m] && DatumGetInt32(results[m]) >= 0;
        for (size_t k = 0; k < mb.scrape_end.size(); k++, scrape++) {
            if (!taken || !mb.scrape_is_keyframe[k])
                continue;
            const uint32_t begin = k == 0 ? 0 : mb.scrape_end[k - 1];
            instance[f] = instances[m];
            boot[f] = &env.boot_id;
            seq[f] = Int64GetDatum(static_cast<int64>(env.batch_seq));
            set[f] = sets[scrape];
            ts[f] = TimestampTzGetDatum(unix_ms_to_timestamptz(mb.sample_ts_unix_ms[begin]));
            len[f] = Int32GetDatum(static_cast<int32>(mb.scrape_end[k] - begin));
            memcpy(values + v, mb.sample_value.data() + begin, (mb.scrape_end[k] - begin) * sizeof(double));
            v += mb.scrape_end[k] - begin;
            f++;
        }
    }
    Datum args[7] = {
        PointerGetDatum(construct_array(instance, static_cast<int>(f), INT8OID, 8, true, TYPALIGN_DOUBLE)),
        text_array(f, [&](size_t x) -> const std::string & { return *boot[x]; }),
        PointerGetDatum(construct_array(seq, static_cast<int>(f), INT8OID, 8, true, TYPALIGN_DOUBLE)),
        PointerGetDatum(construct_array(set, static_cast<int>(f), INT8OID, 8, true, TYPALIGN_DOUBLE)),
        PointerGetDatum(construct_array(ts, static_cast<int>(f), TIMESTAMPTZOID, 8, true, TYPALIGN_DOUBLE)),
        PointerGetDatum(construct_array(len, static_cast<int>(f), INT4OID, 4, true, TYPALIGN_INT)),
        float8_array(values, v)};
    if (SPI_execute_with_args(sql, 7, types, args, nullptr, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "pgfleet ingest: the fast path could not keep its keyframes");
}

/* Stores message i: metrics into the hot tier through fleet._ingest_metric_blocks (one row per scrape,
 * the series found by the scrape's series-set key), registering the sets first when that function
 * says some are unknown (-2); every other kind through fleet._ingest_payload (one validated jsonb
 * document). Both check the ledger first. */
void IngestWorker::store_message(size_t i)
{
    if (decoded_[i].envelope.kind != wire::PayloadKind::Metrics) {
        store_payload_message(i);
        return;
    }
    if (decoded_[i].envelope.metrics.has_based_scrape()) {
        char detail[256];
        switch (apply_keyframes(i, detail, sizeof detail)) {
        case KeyframeLookup::Missing:
            wait_or_dead_letter(i, "unknown keyframe", "a keyframe that was not stored");
            return;
        case KeyframeLookup::Invalid:
            rejection_detail_[i] = MemoryContextStrdup(batch_context_, detail);
            rejection_reason_[i] = "invalid keyframe difference";
            store_dead_letter(i, rejection_reason_[i], detail);
            return;
        case KeyframeLookup::Applied:
        case KeyframeLookup::Duplicate:
            break; /* a duplicate is found again (and skipped) by the ledger below */
        }
    }
    int32 stored = store_metric_blocks(i);
    if (stored == -2 && !decoded_[i].distinct_scrapes.empty()) {
        register_series_sets(i);
        stored = store_metric_blocks(i);
    }
    if (stored == -2) {
        /* A reference to a set that is not registered (the declared ones are by now) */
        wait_or_dead_letter(i, "unknown series set", "a series set that was not declared");
        return;
    }
    outcomes_[i] = stored < 0 ? Outcome::Duplicate : Outcome::Stored;
}

/* Message i needs a series set or keyframe another batch brings: retried (Outcome::Retry, a growing
 * redelivery delay) until it has waited pgfleet.series_set_wait, then put in dead letter. */
void IngestWorker::wait_or_dead_letter(size_t i, const char *reason, const char *what)
{
    uint64_t delivered = batch_.meta(i).num_delivered;
    if (unknown_set_waited_ms(delivered) < setting_series_set_wait * 1000L) {
        outcomes_[i] = Outcome::Retry;
        return;
    }
    char *detail = psprintf("batch %llu of agent \"%s\" refers to %s within pgfleet.series_set_wait (%d s, %llu deliveries)",
                            static_cast<unsigned long long>(decoded_[i].envelope.batch_seq),
                            decoded_[i].envelope.agent_id.c_str(), what, setting_series_set_wait,
                            static_cast<unsigned long long>(delivered));
    rejection_detail_[i] = MemoryContextStrdup(batch_context_, detail);
    rejection_reason_[i] = reason;
    store_dead_letter(i, reason, detail);
}

/*
 * Turns the differences of message i's based scrapes into values: fetches the keyframes they name
 * (fleet._metric_keyframes) and adds them in the pure layer. Missing: a keyframe is not stored (yet);
 * Invalid: the keyframe does not fit the differences (detail says why); Duplicate: the ledger already
 * holds the batch, nothing applied.
 */
KeyframeLookup IngestWorker::apply_keyframes(size_t i, char *detail, size_t detail_size)
{
    static const char *sql = "SELECT fleet._metric_keyframes($1, $2, $3, $4, $5)";
    static Oid types[5] = {TEXTOID, TEXTOID, INT8OID, INT8ARRAYOID, BYTEAARRAYOID};
    wire::Envelope &e = decoded_[i].envelope;
    wire::MetricBatch &m = e.metrics;
    size_t nbased = 0;
    for (uint64_t base_seq : m.scrape_base_seq)
        nbased += base_seq != 0;
    Datum *base_seq = static_cast<Datum *>(palloc(sizeof(Datum) * nbased));
    Datum *keys = static_cast<Datum *>(palloc(sizeof(Datum) * nbased));
    size_t b = 0;
    for (size_t k = 0; k < m.scrape_base_seq.size(); k++)
        if (m.scrape_base_seq[k] != 0) {
            base_seq[b] = Int64GetDatum(static_cast<int64>(m.scrape_base_seq[k]));
            keys[b++] = key_bytea(m.scrape_key[k]);
        }
    Datum args[5];
    args[0] = PointerGetDatum(cstring_to_text(e.agent_id.c_str()));
    args[1] = PointerGetDatum(cstring_to_text(e.boot_id.c_str()));
    args[2] = Int64GetDatum(static_cast<int64>(e.batch_seq));
    args[3] = PointerGetDatum(construct_array(base_seq, static_cast<int>(nbased), INT8OID, 8, true, TYPALIGN_DOUBLE));
    args[4] = PointerGetDatum(construct_array(keys, static_cast<int>(nbased), BYTEAOID, -1, false, TYPALIGN_INT));
    if (SPI_execute_with_args(sql, 5, types, args, nullptr, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "pgfleet ingest: fleet._metric_keyframes returned no row");
    bool isnull = false;
    Datum result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (isnull)
        return KeyframeLookup::Missing;
    Datum *values = nullptr;
    bool *nulls = nullptr;
    int nvalues = 0;
    array_elements(result, FLOAT8OID, 8, TYPALIGN_DOUBLE, &values, &nulls, &nvalues);
    if (nvalues == 0)
        return KeyframeLookup::Duplicate;
    double *keyframe = static_cast<double *>(palloc(sizeof(double) * nvalues));
    for (int v = 0; v < nvalues; v++)
        keyframe[v] = nulls[v] ? std::numeric_limits<double>::quiet_NaN() : DatumGetFloat8(values[v]);
    /* pure C++ from here: no PostgreSQL call may ERROR while the string below lives */
    size_t used = 0;
    bool ok = true;
    {
        std::string error;
        for (size_t k = 0; ok && k < m.scrape_base_seq.size(); k++) {
            if (m.scrape_base_seq[k] == 0)
                continue;
            const size_t len = m.scrape_end[k] - (k == 0 ? 0 : m.scrape_end[k - 1]);
            const size_t n = std::min(len, static_cast<size_t>(nvalues) - used);
            ok = wire::apply_keyframe(m, k, keyframe + used, n, error);
            used += n;
        }
        if (ok && used != static_cast<size_t>(nvalues)) {
            ok = false;
            error = "the keyframes hold more values than the scrapes based on them";
        }
        if (!ok)
            snprintf(detail, detail_size, "batch %llu of agent \"%s\": %s", static_cast<unsigned long long>(e.batch_seq),
                     e.agent_id.c_str(), error.c_str());
    }
    return ok ? KeyframeLookup::Applied : KeyframeLookup::Invalid;
}

/* Calls fleet._ingest_metric_blocks for message i; returns its result (samples, -1 duplicate,
 * -2 series sets unknown). */
int32 IngestWorker::store_metric_blocks(size_t i)
{
    static const char *sql =
        "SELECT fleet._ingest_metric_blocks($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11)";
    static Oid types[11] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID, BYTEAARRAYOID,
                            kTimestamptzArrayOid, INT4ARRAYOID, FLOAT8ARRAYOID, BOOLARRAYOID};
    const DecodedMessage &d = decoded_[i];
    const wire::Envelope &e = d.envelope;
    const wire::MetricBatch &m = e.metrics;
    const size_t nscrapes = m.scrape_end.size();
    Datum args[11];
    args[0] = PointerGetDatum(cstring_to_text(e.agent_id.c_str()));
    args[1] = PointerGetDatum(cstring_to_text(e.namespace_name.c_str()));
    args[2] = PointerGetDatum(cstring_to_text(e.boot_id.c_str()));
    args[3] = Int64GetDatum(static_cast<int64>(e.batch_seq));
    args[4] = Int64GetDatum(static_cast<int64>(batch_.meta(i).stream_seq));
    args[5] = e.instance.present ? PointerGetDatum(cstring_to_text(d.instance_json.c_str())) : 0;
    args[6] = byval_free_array(nscrapes, BYTEAOID, [&](size_t k) { return key_bytea(m.scrape_key[k]); });
    args[7] = value_array(nscrapes, TIMESTAMPTZOID, 8, TYPALIGN_DOUBLE, [&](size_t k) {
        return TimestampTzGetDatum(unix_ms_to_timestamptz(m.sample_ts_unix_ms[m.scrape_end[k] - 1]));
    });
    args[8] = value_array(nscrapes, INT4OID, 4, TYPALIGN_INT, [&](size_t k) {
        return Int32GetDatum(static_cast<int32>(m.scrape_end[k] - (k == 0 ? 0 : m.scrape_end[k - 1])));
    });
    args[9] = float8_array(m.sample_value.data(), m.sample_value.size());
    char nulls[11];
    memset(nulls, ' ', sizeof(nulls));
    if (!e.instance.present)
        nulls[5] = 'n';
    args[10] = 0;
    if (m.uses_keyframes())
        args[10] = value_array(nscrapes, BOOLOID, 1, TYPALIGN_CHAR,
                               [&](size_t k) { return BoolGetDatum(m.scrape_is_keyframe[k] != 0); });
    else
        nulls[10] = 'n';
    if (SPI_execute_with_args(sql, 11, types, args, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "pgfleet ingest: fleet._ingest_metric_blocks returned no row");
    bool isnull = false;
    return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Registers the distinct series sets of message i (fleet._register_series_sets), with the series
 * declarations they need. */
void IngestWorker::register_series_sets(size_t i)
{
    static const char *sql =
        "SELECT fleet._register_series_sets($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11::jsonb[])";
    static Oid types[11] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, BYTEAARRAYOID, INT4ARRAYOID, INT4ARRAYOID,
                            TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
    const DecodedMessage &d = decoded_[i];
    const wire::Envelope &e = d.envelope;
    const wire::MetricBatch &m = e.metrics;
    const size_t nsets = d.distinct_scrapes.size();
    const size_t ns = m.series.size();
    auto scrape_begin = [&](uint32_t k) -> uint32_t { return k == 0 ? 0 : m.scrape_end[k - 1]; };
    size_t total = 0;
    for (uint32_t k : d.distinct_scrapes)
        total += m.scrape_end[k] - scrape_begin(k);
    Datum *members = static_cast<Datum *>(palloc(sizeof(Datum) * Max(total, 1)));
    size_t n = 0;
    for (uint32_t k : d.distinct_scrapes)
        for (uint32_t j = scrape_begin(k); j < m.scrape_end[k]; j++)
            members[n++] = Int32GetDatum(m.sample_series[j]);
    Datum args[11];
    args[0] = PointerGetDatum(cstring_to_text(e.agent_id.c_str()));
    args[1] = PointerGetDatum(cstring_to_text(e.namespace_name.c_str()));
    args[2] = PointerGetDatum(cstring_to_text(e.boot_id.c_str()));
    args[3] = e.instance.present ? PointerGetDatum(cstring_to_text(d.instance_json.c_str())) : 0;
    args[4] = byval_free_array(nsets, BYTEAOID, [&](size_t k) { return key_bytea(m.scrape_key[d.distinct_scrapes[k]]); });
    args[5] = value_array(nsets, INT4OID, 4, TYPALIGN_INT, [&](size_t k) {
        uint32_t s = d.distinct_scrapes[k];
        return Int32GetDatum(static_cast<int32>(m.scrape_end[s] - scrape_begin(s)));
    });
    args[6] = PointerGetDatum(construct_array(members, static_cast<int>(total), INT4OID, 4, true, TYPALIGN_INT));
    args[7] = text_array(ns, [&](size_t k) -> const std::string & { return m.series[k].metric; });
    args[8] = text_array(ns, [&](size_t k) -> const std::string & { return m.series[k].kind; });
    args[9] = text_array(ns, [&](size_t k) -> const std::string & { return m.series[k].unit; });
    args[10] = text_array(ns, [&](size_t k) -> const std::string & { return m.series[k].labels_json; });
    char nulls[11];
    memset(nulls, ' ', sizeof(nulls));
    if (!e.instance.present)
        nulls[3] = 'n';
    if (SPI_execute_with_args(sql, 11, types, args, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "pgfleet ingest: fleet._register_series_sets returned no row");
}

/* Stores message i of a low-volume kind (statements, activity, inventory, events, results). */
void IngestWorker::store_payload_message(size_t i)
{
    static const char *sql = "SELECT fleet._ingest_payload($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)";
    static Oid types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID};
    const wire::Envelope &e = decoded_[i].envelope;
    Datum args[8] = {PointerGetDatum(cstring_to_text(wire::payload_kind_subject(e.kind))),
                     PointerGetDatum(cstring_to_text(e.agent_id.c_str())),
                     PointerGetDatum(cstring_to_text(e.namespace_name.c_str())),
                     PointerGetDatum(cstring_to_text(e.boot_id.c_str())),
                     Int64GetDatum(static_cast<int64>(e.batch_seq)),
                     Int64GetDatum(static_cast<int64>(batch_.meta(i).stream_seq)),
                     e.instance.present ? PointerGetDatum(cstring_to_text(decoded_[i].instance_json.c_str())) : 0,
                     PointerGetDatum(cstring_to_text_with_len(e.payload_json.data(), static_cast<int>(e.payload_json.size())))};
    char nulls[8];
    memset(nulls, ' ', sizeof(nulls));
    if (!e.instance.present)
        nulls[6] = 'n';
    if (SPI_execute_with_args(sql, 8, types, args, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "pgfleet ingest: fleet._ingest_payload returned no row");
    bool isnull = false;
    int32 stored = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    outcomes_[i] = stored < 0 ? Outcome::Duplicate : Outcome::Stored;
}

/* Puts message i aside in fleet.dead_letter (once per stream sequence). */
void IngestWorker::store_dead_letter(size_t i, const char *reason, const char *detail)
{
    static const char *sql = "INSERT INTO fleet.dead_letter (stream, stream_seq, subject, reason, detail, raw) "
                             "VALUES ('FLEET_IN', $1, $2, $3, $4, $5) ON CONFLICT (stream, stream_seq) DO NOTHING";
    static Oid types[5] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, BYTEAOID};
    size_t size = batch_.data_size(i);
    bytea *raw = static_cast<bytea *>(palloc(VARHDRSZ + size));
    SET_VARSIZE(raw, VARHDRSZ + size);
    memcpy(VARDATA(raw), batch_.data(i), size);
    Datum args[5] = {Int64GetDatum(static_cast<int64>(batch_.meta(i).stream_seq)),
                     PointerGetDatum(cstring_to_text(decoded_[i].subject.c_str())),
                     PointerGetDatum(cstring_to_text(reason)), PointerGetDatum(cstring_to_text(detail)),
                     PointerGetDatum(raw)};
    if (SPI_execute_with_args(sql, 5, types, args, nullptr, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "pgfleet ingest: could not insert into fleet.dead_letter");
    outcomes_[i] = Outcome::DeadLetter;
}

/* After the commit: ack stored and duplicate messages, terminate dead letters, update counters. */
void IngestWorker::settle_batch()
{
    std::string error;
    bool settled = true;
    for (size_t i = 0; i < batch_.size(); i++) {
        js::MessageMeta meta = batch_.meta(i);
        if (outcomes_[i] == Outcome::Retry) {
            /* nothing of it was written; a lost NAK only means redelivery after the ack wait */
            (void) consumer_.nak(batch_, i, unknown_set_retry_delay_ms(meta.num_delivered), error);
            continue;
        }
        js::Result r = outcomes_[i] == Outcome::DeadLetter ? consumer_.term(batch_, i, error) : consumer_.ack(batch_, i, error);
        settled = settled && r == js::Result::Ok;
        counters_.messages++;
        counters_.last_stream_seq = Max(counters_.last_stream_seq, meta.stream_seq);
        counters_.consumer_pending = meta.num_pending;
        if (outcomes_[i] == Outcome::Stored)
            counters_.samples += decoded_[i].envelope.metrics.sample_value.size();
        else if (outcomes_[i] == Outcome::Duplicate)
            counters_.duplicates++;
        else if (outcomes_[i] == Outcome::DeadLetter) {
            counters_.dead_letters++;
            const char *reason = rejection_detail_[i] ? rejection_reason_[i] : decoded_[i].reason.c_str();
            std::string detail = as_sentence(rejection_detail_[i] ? rejection_detail_[i] : decoded_[i].detail);
            ereport(LOG, (errmsg("pgfleet ingest worker %d put message %llu aside: %s", slot_,
                                 static_cast<unsigned long long>(meta.stream_seq), reason),
                          errdetail("%s", detail.c_str()),
                          errhint("See fleet.dead_letter; fleet.decode_envelope(raw) shows its content."),
                          errcontext("stream FLEET_IN, consumer fleet_ingest, stream sequence %llu, subject %s",
                                     static_cast<unsigned long long>(meta.stream_seq), decoded_[i].subject.c_str())));
        }
    }
    if (settled)
        settled = consumer_.flush(kFlushTimeoutMs, error) == js::Result::Ok;
    if (!settled)
        note_error("acknowledgement not confirmed (the batch is committed; a redelivery will be a no-op): " + error);
    counters_.batches++;
    counters_.last_batch_at = GetCurrentTimestamp();
    publish_counters();
}

/* Asks NATS to redeliver every message of a batch that could not be stored. */
void IngestWorker::nak_batch()
{
    std::string error;
    for (size_t i = 0; i < batch_.size(); i++)
        (void) consumer_.nak(batch_, i, kNakDelayMs, error);
    (void) consumer_.flush(kFlushTimeoutMs, error);
}

} // namespace
} // namespace pgfleet

/* Entry point of an ingest background worker; main_arg is its slot number. */
void pgfleet_ingest_main(Datum main_arg)
{
    int slot = DatumGetInt32(main_arg);
    pqsignal(SIGTERM, die);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(pgfleet::setting_database, nullptr, 0);
    before_shmem_exit(pgfleet::release_worker_slot, Int32GetDatum(slot));
    MemoryContext batch_context = AllocSetContextCreate(TopMemoryContext, "pgfleet ingest batch", ALLOCSET_DEFAULT_SIZES);
    pgfleet::guard_entry([slot, batch_context] {
        pgfleet::IngestWorker worker(slot, batch_context);
        worker.run();
    });
    proc_exit(0);
}

/*
 * extension/pgfleet.cpp — the pgfleet extension's entry: settings, shared memory, background worker
 * registration and the SQL-callable C++ functions.
 *
 * Vocabulary (see docs/ARCHITECTURE.md for the whole glossary):
 *   agent     the program on a monitored host that sends batches
 *   instance  one monitored PostgreSQL server (one per agent)
 *   series    one metric with one label set on one instance
 *   sample    one (timestamp, value) of a series
 *   batch     one wire Envelope, identified forever by (agent_id, boot_id, batch_seq)
 *   ledger    fleet.ingest_ledger: the batches already stored, written in the same transaction
 *
 * _PG_init runs in the postmaster (shared_preload_libraries): it defines settings, requests shared
 * memory and registers the launcher. It starts no thread and opens no connection (threads do not
 * survive fork). The launcher (bgworkers/launcher.cpp) starts the ingest workers.
 */
#include <string>

#include "core/wire.h"
#include "extension/guard.h"
#include "extension/shared_state.h"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace pgfleet {

char *setting_database = nullptr;
char *setting_nats_url = nullptr;
char *setting_nats_credentials = nullptr;
int setting_ingest_workers = 1;
int setting_batch_size = 500;
int setting_maintenance_interval = 30;
int setting_series_set_wait = 900;

namespace {

FleetSharedState *attached_state = nullptr;
shmem_request_hook_type previous_shmem_request_hook = nullptr;
shmem_startup_hook_type previous_shmem_startup_hook = nullptr;

/* Bytes of shared memory for the configured number of workers. */
Size shared_state_size()
{
    return add_size(offsetof(FleetSharedState, slots),
                    mul_size(sizeof(WorkerSlot), static_cast<Size>(Max(setting_ingest_workers, 1))));
}

/* shmem_request_hook: reserves our shared memory. */
void request_shared_memory()
{
    if (previous_shmem_request_hook)
        previous_shmem_request_hook();
    RequestAddinShmemSpace(shared_state_size());
}

/* shmem_startup_hook: creates (postmaster) or attaches (EXEC_BACKEND) the shared state. */
void start_shared_memory()
{
    if (previous_shmem_startup_hook)
        previous_shmem_startup_hook();
    bool found = false;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    attached_state = static_cast<FleetSharedState *>(ShmemInitStruct("pgfleet", shared_state_size(), &found));
    if (!found) {
        SpinLockInit(&attached_state->maintenance_mutex);
        attached_state->maintenance_pid = 0;
        attached_state->worker_count = setting_ingest_workers;
        for (int i = 0; i < Max(setting_ingest_workers, 1); i++) {
            SpinLockInit(&attached_state->slots[i].mutex);
            memset(&attached_state->slots[i].counters, 0, sizeof(WorkerCounters));
        }
    }
    LWLockRelease(AddinShmemInitLock);
}

/* Defines the pgfleet.* settings and reserves the prefix. */
void define_settings()
{
    DefineCustomStringVariable("pgfleet.database", "Database in which pgfleet's workers store what agents send.",
                               "The workers wait quietly until this database exists and has the extension.",
                               &setting_database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgfleet.ingest_workers", "Number of ingest background workers.",
                            "Zero disables ingestion.", &setting_ingest_workers, 1, 0, 64, PGC_POSTMASTER, 0,
                            nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pgfleet.nats_url", "URL of the NATS server the ingest workers pull from.", nullptr,
                               &setting_nats_url, "nats://127.0.0.1:4222", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr,
                               nullptr, nullptr);
    DefineCustomStringVariable("pgfleet.nats_credentials", "NATS credentials file of the ingest workers.",
                               "Empty means no credentials.", &setting_nats_credentials, "", PGC_SIGHUP,
                               GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgfleet.batch_size", "Messages fetched and stored per transaction by an ingest worker.",
                            nullptr, &setting_batch_size, 500, 1, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgfleet.maintenance_interval", "Seconds between rounds of the maintenance worker.",
                            "A round computes pending rollups and, at most hourly, applies retention.",
                            &setting_maintenance_interval, 30, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("pgfleet.series_set_wait",
                            "Seconds a metrics batch that refers to an unknown series set is retried.",
                            "An agent refers to a series set by key once a batch declaring it was acknowledged by "
                            "the stream; the declaring batch may still be on its way. After this long the batch "
                            "goes to fleet.dead_letter. Agents declare every set again every 10 minutes.",
                            &setting_series_set_wait, 900, 1, 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
                            nullptr);
    MarkGUCPrefixReserved("pgfleet");
}

/* Registers the launcher, which starts and watches the ingest workers. */
void register_launcher()
{
    BackgroundWorker worker;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = 5;
    strlcpy(worker.bgw_library_name, "pgfleet", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "pgfleet_launcher_main", BGW_MAXLEN);
    strlcpy(worker.bgw_name, "pgfleet launcher", BGW_MAXLEN);
    strlcpy(worker.bgw_type, "pgfleet launcher", BGW_MAXLEN);
    RegisterBackgroundWorker(&worker);
}

} // namespace

const char *worker_state_name(WorkerState state)
{
    switch (state) {
    case WorkerState::Stopped: return "stopped";
    case WorkerState::WaitingForExtension: return "waiting for extension";
    case WorkerState::ConnectingToNats: return "connecting to nats";
    case WorkerState::Running: return "running";
    }
    return "unknown";
}

FleetSharedState *shared_state()
{
    return attached_state;
}

int read_maintenance_pid()
{
    SpinLockAcquire(&attached_state->maintenance_mutex);
    int pid = attached_state->maintenance_pid;
    SpinLockRelease(&attached_state->maintenance_mutex);
    return pid;
}

void write_maintenance_pid(int pid)
{
    SpinLockAcquire(&attached_state->maintenance_mutex);
    attached_state->maintenance_pid = pid;
    SpinLockRelease(&attached_state->maintenance_mutex);
}

WorkerCounters read_worker_slot(int i)
{
    WorkerSlot *slot = &attached_state->slots[i];
    SpinLockAcquire(&slot->mutex);
    WorkerCounters copy = slot->counters;
    SpinLockRelease(&slot->mutex);
    return copy;
}

void write_worker_slot(int i, const WorkerCounters &counters)
{
    WorkerSlot *slot = &attached_state->slots[i];
    SpinLockAcquire(&slot->mutex);
    slot->counters = counters;
    SpinLockRelease(&slot->mutex);
}

} // namespace pgfleet

/* Module load: in the postmaster when preloaded (workers registered), else settings only. */
void _PG_init(void)
{
    pgfleet::define_settings();
    if (!process_shared_preload_libraries_in_progress)
        return;
    pgfleet::previous_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = pgfleet::request_shared_memory;
    pgfleet::previous_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = pgfleet::start_shared_memory;
    pgfleet::register_launcher();
}

/* fleet.worker_status(): one row per ingest worker slot, copied from shared memory. */
PGFLEET_SQL_FUNCTION(pgfleet_worker_status)
{
    using namespace pgfleet;
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    InitMaterializedSRF(fcinfo, 0);
    if (shared_state() == nullptr)
        throw SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "pgfleet is not loaded by shared_preload_libraries",
                       "The ingest workers and their status exist only when the library is preloaded.",
                       "Add pgfleet to shared_preload_libraries and restart the server.");
    for (int i = 0; i < shared_state()->worker_count; i++) {
        WorkerCounters c = read_worker_slot(i);
        Datum values[13];
        bool nulls[13] = {false};
        values[0] = Int32GetDatum(i);
        values[1] = Int32GetDatum(c.pid);
        nulls[1] = c.pid == 0;
        values[2] = CStringGetTextDatum(worker_state_name(c.state));
        values[3] = Int64GetDatum(static_cast<int64>(c.messages));
        values[4] = Int64GetDatum(static_cast<int64>(c.batches));
        values[5] = Int64GetDatum(static_cast<int64>(c.samples));
        values[6] = Int64GetDatum(static_cast<int64>(c.duplicates));
        values[7] = Int64GetDatum(static_cast<int64>(c.dead_letters));
        values[8] = Int64GetDatum(static_cast<int64>(c.errors));
        values[9] = Int64GetDatum(static_cast<int64>(c.last_stream_seq));
        values[10] = Int64GetDatum(static_cast<int64>(c.consumer_pending));
        values[11] = TimestampTzGetDatum(c.last_batch_at);
        nulls[11] = c.last_batch_at == 0;
        values[12] = CStringGetTextDatum(c.last_error);
        nulls[12] = c.last_error[0] == '\0';
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return static_cast<Datum>(0);
}

/* fleet.decode_envelope(bytea) -> jsonb: what a raw wire message says, or why it is not acceptable. */
PGFLEET_SQL_FUNCTION(pgfleet_decode_envelope)
{
    using namespace pgfleet;
    bytea *raw = PG_GETARG_BYTEA_PP(0);
    wire::Envelope envelope;
    wire::DecodeStatus status = wire::decode_envelope(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw), envelope);
    if (!status.ok)
        throw SqlError(ERRCODE_INVALID_BINARY_REPRESENTATION, "invalid pgfleet envelope: " + status.reason,
                       as_sentence(status.detail), "Only messages of the pgfleet wire contract (proto/fleet.proto) can be decoded.");
    std::string json = wire::envelope_to_json(envelope);
    Datum result = 0;
    pg_call([&] { result = DirectFunctionCall1(jsonb_in, CStringGetDatum(json.c_str())); });
    PG_RETURN_DATUM(result);
}

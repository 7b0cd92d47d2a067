/*
 * bgworkers/launcher.cpp — the pgfleet launcher: starts and watches the ingest workers.
 *
 * Registered statically by _PG_init. It connects to no database (only shared catalogs), so it can
 * wait for pgfleet.database to exist without failing: while the database is missing it logs that once
 * and checks again every second; no worker is started, so nothing restarts in a loop.
 *
 * State per worker slot: no handle (not started) -> handle, running -> stopped (it exited: restarted
 * after at least 5 s, so a worker that fails at once cannot flood the log). A worker owns its slot
 * (pid in shared memory) until it exits; a restarted launcher, which has no handles, leaves a slot
 * alone while its pid is alive, so no slot ever has two workers.
 *
 * No C++ object lives across a PostgreSQL call here (the one std::string, the redacted NATS URL, is
 * copied into a buffer before anything is logged): every PostgreSQL call may ERROR, which in a
 * background worker without an error handler ends the process (the postmaster restarts us).
 */
#include "core/jetstream.h"
#include "extension/pg.h"
#include "extension/shared_state.h"

extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
#include "postmaster/interrupt.h"

PGDLLEXPORT void pgfleet_launcher_main(Datum main_arg);
}

namespace {

constexpr int kMaxWorkers = 64;
constexpr long kRestartDelayMs = 5000;

/* True when the database named by pgfleet.database exists and accepts connections. Without a
 * database of our own only shared catalogs can be read, and without pg_class no index either: a heap
 * scan of pg_database (a few rows) it is. */
bool configured_database_exists()
{
    bool found = false;
    StartTransactionCommand();
    (void) GetTransactionSnapshot();
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tuple;
    while (!found && (tuple = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
        Form_pg_database db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tuple));
        found = strcmp(NameStr(db->datname), pgfleet::setting_database) == 0 && db->datallowconn;
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    CommitTransactionCommand();
    return found;
}

/* Registers ingest worker number slot (or, with slot -1, the maintenance worker); returns its handle,
 * or nullptr when no background worker slot was free. */
BackgroundWorkerHandle *start_ingest_worker(int slot)
{
    BackgroundWorker worker;
    BackgroundWorkerHandle *handle = nullptr;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART; /* the launcher restarts it */
    worker.bgw_main_arg = Int32GetDatum(slot);
    worker.bgw_notify_pid = MyProcPid;
    strlcpy(worker.bgw_library_name, "pgfleet", BGW_MAXLEN);
    if (slot >= 0) {
        strlcpy(worker.bgw_function_name, "pgfleet_ingest_main", BGW_MAXLEN);
        snprintf(worker.bgw_name, BGW_MAXLEN, "pgfleet ingest %d", slot);
        strlcpy(worker.bgw_type, "pgfleet ingest", BGW_MAXLEN);
    } else {
        strlcpy(worker.bgw_function_name, "pgfleet_maintenance_main", BGW_MAXLEN);
        strlcpy(worker.bgw_name, "pgfleet maintenance", BGW_MAXLEN);
        strlcpy(worker.bgw_type, "pgfleet maintenance", BGW_MAXLEN);
    }
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    if (!RegisterDynamicBackgroundWorker(&worker, &handle))
        handle = nullptr;
    MemoryContextSwitchTo(old);
    return handle;
}

} // namespace

/* Entry point of the launcher background worker. */
void pgfleet_launcher_main(Datum)
{
    pqsignal(SIGTERM, die);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);

    /* handles[i] / last_start[i] for ingest worker i; index kMaxWorkers is the maintenance worker */
    BackgroundWorkerHandle *handles[kMaxWorkers + 1] = {};
    TimestampTz last_start[kMaxWorkers + 1] = {};
    bool told_database_missing = false;
    bool told_no_slot = false;
    int workers = Min(pgfleet::setting_ingest_workers, kMaxWorkers);

    char nats_url[256];
    strlcpy(nats_url, pgfleet::js::redacted_url(pgfleet::setting_nats_url).c_str(), sizeof(nats_url));
    ereport(LOG, (errmsg("pgfleet launcher started"),
                  errdetail("%d ingest worker(s) for database \"%s\", NATS at %s.", workers,
                            pgfleet::setting_database, nats_url)));
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        if (!configured_database_exists()) {
            if (!told_database_missing)
                ereport(LOG, (errmsg("pgfleet: database \"%s\" does not exist yet", pgfleet::setting_database),
                              errdetail("Ingest workers start when it is created and has the pgfleet extension."),
                              errhint("Create the database, or set pgfleet.database to an existing one.")));
            told_database_missing = true;
        } else {
            told_database_missing = false;
            TimestampTz now = GetCurrentTimestamp();
            for (int i = 0; i <= workers; i++) {
                const bool maintenance = i == workers; /* after the ingest workers */
                const int index = maintenance ? kMaxWorkers : i;
                pid_t pid;
                if (handles[index] != nullptr) {
                    BgwHandleStatus status = GetBackgroundWorkerPid(handles[index], &pid);
                    if (status == BGWH_POSTMASTER_DIED)
                        proc_exit(1);
                    if (status != BGWH_STOPPED)
                        continue;
                    pfree(handles[index]);
                    handles[index] = nullptr;
                }
                /* A worker started by a previous launcher (we were restarted) still owns the slot. */
                pid = maintenance ? pgfleet::read_maintenance_pid() : pgfleet::read_worker_slot(i).pid;
                if (pid != 0 && kill(pid, 0) == 0)
                    continue;
                if (last_start[index] != 0 && !TimestampDifferenceExceeds(last_start[index], now, kRestartDelayMs))
                    continue;
                handles[index] = start_ingest_worker(maintenance ? -1 : i);
                last_start[index] = now;
                if (handles[index] == nullptr && !told_no_slot) {
                    ereport(WARNING, (errmsg("pgfleet: no background worker slot free for ingest worker %d", i),
                                      errhint("Increase max_worker_processes.")));
                    told_no_slot = true;
                }
            }
        }
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

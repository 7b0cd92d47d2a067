/*
 * bgworkers/maintenance_worker.cpp — the maintenance worker: every pgfleet.maintenance_interval
 * seconds it runs SELECT fleet.run_maintenance() (pending rollups; retention at most hourly) in its
 * own transaction. Started and watched by the launcher, like the ingest workers.
 *
 * States: waiting (no extension yet) -> running rounds. A round that fails is rolled back, logged
 * (once per distinct message, so a persistent problem does not flood the log) and recorded in
 * fleet.maintenance_run when possible; the next round tries again. Rollups are recomputed from raw
 * data, so a failed round loses nothing.
 *
 * Written without C++ objects: every PostgreSQL call here may ERROR, caught by PG_TRY in the round.
 */
#include "extension/pg.h"
#include "extension/shared_state.h"

extern "C" {
#include "commands/extension.h"
#include "postmaster/interrupt.h"

PGDLLEXPORT void pgfleet_maintenance_main(Datum main_arg);
}

namespace {

char last_logged_error[256];

/* before_shmem_exit callback: no maintenance worker runs any more. */
void release_maintenance_pid(int, Datum)
{
    pgfleet::write_maintenance_pid(0);
}

/* One round: runs fleet.run_maintenance() if the extension exists; false when it does not. */
bool run_round(MemoryContext round_context)
{
    bool present = false;
    MemoryContextSwitchTo(round_context);
    PG_TRY();
    {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        present = OidIsValid(get_extension_oid("pgfleet", true));
        if (present) {
            if (SPI_connect() != SPI_OK_CONNECT)
                elog(ERROR, "pgfleet maintenance: SPI_connect failed");
            PushActiveSnapshot(GetTransactionSnapshot());
            pgstat_report_activity(STATE_RUNNING, "pgfleet: maintenance round");
            (void) SPI_execute("SELECT fleet.run_maintenance()", false, 0);
            SPI_finish();
            PopActiveSnapshot();
        }
        CommitTransactionCommand();
        pgstat_report_stat(false);
        pgstat_report_activity(STATE_IDLE, nullptr);
        last_logged_error[0] = '\0';
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(round_context);
        ErrorData *edata = CopyErrorData();
        FlushErrorState();
        AbortCurrentTransaction();
        if (strncmp(last_logged_error, edata->message, sizeof(last_logged_error) - 1) != 0) {
            ereport(LOG, (errmsg("pgfleet maintenance round failed: %s", edata->message),
                          errhint("The next round, in pgfleet.maintenance_interval seconds, tries again.")));
            strlcpy(last_logged_error, edata->message, sizeof(last_logged_error));
        }
        present = true;
    }
    PG_END_TRY();
    return present;
}

} // namespace

/* Entry point of the maintenance background worker. */
void pgfleet_maintenance_main(Datum)
{
    pqsignal(SIGTERM, die);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(pgfleet::setting_database, nullptr, 0);
    pgfleet::write_maintenance_pid(MyProcPid);
    before_shmem_exit(release_maintenance_pid, 0);
    MemoryContext round_context = AllocSetContextCreate(TopMemoryContext, "pgfleet maintenance round",
                                                        ALLOCSET_DEFAULT_SIZES);
    bool told_waiting = false;
    for (;;) {
        MemoryContextSwitchTo(TopMemoryContext);
        MemoryContextReset(round_context);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        bool present = run_round(round_context);
        if (!present && !told_waiting)
            ereport(LOG, (errmsg("pgfleet maintenance worker waits for the pgfleet extension in database \"%s\"",
                                 pgfleet::setting_database)));
        told_waiting = !present;
        /* Wait in slices of at most a second, so that a shorter interval set by SIGHUP takes effect soon. */
        for (long waited = 0; waited < pgfleet::setting_maintenance_interval * 1000L && !ConfigReloadPending;
             waited += 1000) {
            (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        }
    }
}

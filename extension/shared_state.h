/*
 * extension/shared_state.h — pgfleet's shared memory and settings.
 *
 * Data structures. One FleetSharedState in shared memory, sized at postmaster start for
 * pgfleet.ingest_workers slots. Each ingest worker owns one WorkerSlot: it alone writes it; any
 * backend may read it (fleet.worker_status()).
 *
 * Locking. Each slot has a spinlock held only to copy the slot in or out (a few hundred bytes, no
 * calls inside), never across anything that can ERROR or wait.
 *
 * Settings (GUCs, all under the reserved prefix "pgfleet."):
 *   pgfleet.database          database the workers serve (postmaster)
 *   pgfleet.ingest_workers    number of ingest workers, 0 disables ingest (postmaster)
 *   pgfleet.nats_url          NATS server URL, may carry user:password@ (sighup, superuser only; logs redact it)
 *   pgfleet.nats_credentials  NATS credentials file, empty for none (sighup)
 *   pgfleet.batch_size        messages fetched per batch and transaction (sighup)
 *   pgfleet.maintenance_interval  seconds between maintenance rounds: rollups, retention (sighup)
 */
#pragma once

#include "extension/pg.h"

namespace pgfleet {

/* The states of an ingest worker; see bgworkers/ingest_worker.cpp for the transitions. */
enum class WorkerState : int {
    Stopped = 0,
    WaitingForExtension,
    ConnectingToNats,
    Running,
};

const char *worker_state_name(WorkerState state);

struct WorkerCounters {
    int pid;
    WorkerState state;
    uint64 messages;       /* messages fetched and settled (acked or terminated) */
    uint64 batches;        /* committed batch transactions */
    uint64 samples;        /* samples inserted */
    uint64 duplicates;     /* messages the ledger recognised as already ingested */
    uint64 dead_letters;   /* messages put aside in fleet.dead_letter */
    uint64 errors;         /* failed batch transactions and NATS failures */
    uint64 last_stream_seq;
    uint64 consumer_pending;
    TimestampTz started_at;
    TimestampTz last_batch_at;
    char last_error[256];
};

struct WorkerSlot {
    slock_t mutex;
    WorkerCounters counters;
};

struct FleetSharedState {
    slock_t maintenance_mutex;
    int maintenance_pid;       /* the maintenance worker's pid, 0 when none runs */
    int worker_count;
    WorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

/* Settings (GUC variables). */
extern char *setting_database;
extern char *setting_nats_url;
extern char *setting_nats_credentials;
extern int setting_ingest_workers;
extern int setting_batch_size;
extern int setting_maintenance_interval;
extern int setting_series_set_wait;

/* The maintenance worker's pid in shared memory (0: none). */
int read_maintenance_pid();
void write_maintenance_pid(int pid);

/* The shared state, attached in every process after shared memory initialisation. */
FleetSharedState *shared_state();

/* Copies slot i out (for readers) and in (for its worker). */
WorkerCounters read_worker_slot(int i);
void write_worker_slot(int i, const WorkerCounters &counters);

} // namespace pgfleet

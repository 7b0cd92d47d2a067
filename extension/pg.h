/*
 * extension/pg.h — the one way PostgreSQL-facing C++ files include the server's headers.
 *
 * Include order matters: standard C++ and core/ headers first, then this file. PostgreSQL's headers
 * are C and define macros (printf, Min, Max, gettext...) that would break the C++ standard library if
 * they came first; they are wrapped in extern "C" so their functions get C linkage.
 */
#pragma once

/* pgfleet.so is built with -fvisibility=hidden; what PostgreSQL must find (the magic block, function
 * info records, SQL functions, worker entry points) is marked PGDLLEXPORT, which PostgreSQL 15 leaves
 * empty on Linux unless defined first. */
#ifndef PGDLLEXPORT
#define PGDLLEXPORT __attribute__((visibility("default")))
#endif

extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

/*
 * core/pure.h — the marker of pgfleet's pure C++ layer.
 *
 * Every .cpp file under core/ includes this header first. The core layer must never see a PostgreSQL
 * server header: it is compiled without the server include path (so `#include "postgres.h"` does not
 * even resolve), and this header fails the build if postgres.h was nevertheless included before it.
 * Core code reports failures with return values or C++ exceptions, never with ereport; the
 * PostgreSQL-facing layer (extension/, bgworkers/) turns them into ereport through its one guard.
 */
#pragma once

#ifdef POSTGRES_H
static_assert(false, "core/ is the pure C++ layer: it must not include PostgreSQL server headers");
#endif

#define PGFLEET_CORE_LAYER 1

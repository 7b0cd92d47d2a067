/*
 * extension/chunks.h — what the cold tier's two PostgreSQL-facing files share (extension/chunks.cpp:
 * the codec's SQL functions and the read path; extension/compact.cpp: compaction): time conversions and
 * kept SPI plans.
 */
#pragma once

#include <cstdint>

#include "extension/guard.h"

namespace pgfleet::cold {

/* 1970-01-01 in PostgreSQL's epoch (2000-01-01), in microseconds. */
constexpr int64 kUnixEpochInPgMicros = INT64CONST(946684800000000);

/* Finite TimestampTz -> Unix milliseconds, rounded down (timestamps of both tiers are whole ms). */
inline int64_t to_unix_ms(TimestampTz t)
{
    const __int128 us = static_cast<__int128>(t) + kUnixEpochInPgMicros;
    const __int128 ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
    return static_cast<int64_t>(ms);
}

/* Unix milliseconds -> TimestampTz; false when PostgreSQL cannot represent it. */
inline bool from_unix_ms(int64_t ms, TimestampTz &out)
{
    const __int128 us = static_cast<__int128>(ms) * 1000 - kUnixEpochInPgMicros;
    if (us < MIN_TIMESTAMP || us >= END_TIMESTAMP)
        return false;
    out = static_cast<TimestampTz>(us);
    return true;
}

/* Prepares sql once per backend and keeps the plan (SPI_keepplan); PostgreSQL's plan cache replans it
 * after DDL (DROP/CREATE EXTENSION) from its text. Errors (ERROR) propagate to the caller's pg_call.
 * Only the main thread calls this. */
inline SPIPlanPtr kept_plan(SPIPlanPtr &slot, const char *sql, int nargs, Oid *types)
{
    if (slot == nullptr) {
        SPIPlanPtr plan = SPI_prepare(sql, nargs, types);
        if (plan == nullptr)
            elog(ERROR, "pgfleet: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
        if (SPI_keepplan(plan) != 0)
            elog(ERROR, "pgfleet: SPI_keepplan failed");
        slot = plan;
    }
    return slot;
}

} // namespace pgfleet::cold

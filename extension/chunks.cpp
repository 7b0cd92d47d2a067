/*
 * extension/chunks.cpp — SQL access to the cold tier's compressed chunks (core/chunk_codec).
 *
 *   fleet._chunk_encode(timestamptz[], float8[]) -> bytea     one series' samples, sorted by time
 *   fleet._chunk_decode(bytea) -> TABLE (ts, value)            the samples back, bit for bit
 *
 * fleet.compact() (extension/sql/15_storage.sql) uses them to move hot-tier rows into
 * fleet.sample_chunk, and the read path (fleet._samples) to read them back. Timestamps travel in whole
 * milliseconds (the wire's resolution): a timestamp with a sub-millisecond part is refused rather than
 * rounded, so a chunk always decodes to exactly what was encoded.
 *
 * PostgreSQL-facing layer: arrays are read here and handed to the pure codec as plain vectors; codec
 * failures come back as strings and are raised as SqlError through the guard.
 */
#include <string>
#include <vector>

#include "core/chunk_codec.h"
#include "extension/guard.h"

namespace {

constexpr int64 kUnixEpochInPgMicros = INT64CONST(946684800000000); /* 1970-01-01 in PostgreSQL's epoch */

/* The elements of a one-dimensional array without NULLs, or an error naming the argument. */
void read_array(ArrayType *array, Oid element_type, const char *what, Datum **elements, int *count)
{
    if (ARR_NDIM(array) > 1)
        throw pgfleet::SqlError(ERRCODE_ARRAY_SUBSCRIPT_ERROR, std::string(what) + " must be a one-dimensional array");
    bool *nulls = nullptr;
    int16 typlen = 8;
    bool typbyval = FLOAT8PASSBYVAL;
    char typalign = TYPALIGN_DOUBLE;
    pgfleet::pg_call([&] {
        deconstruct_array(array, element_type, typlen, typbyval, typalign, elements, &nulls, count);
    });
    for (int i = 0; i < *count; i++)
        if (nulls[i])
            throw pgfleet::SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, std::string(what) + " must not contain nulls",
                                    "Element " + std::to_string(i + 1) + " is null.");
}

} // namespace

/* _chunk_encode: the samples (ts[i], values[i]) as one compressed chunk. */
PGFLEET_SQL_FUNCTION(pgfleet_chunk_encode)
{
    using namespace pgfleet;
    ArrayType *ts_array = PG_GETARG_ARRAYTYPE_P(0);
    ArrayType *value_array = PG_GETARG_ARRAYTYPE_P(1);
    Datum *ts_datums = nullptr, *value_datums = nullptr;
    int nts = 0, nvalues = 0;
    read_array(ts_array, TIMESTAMPTZOID, "timestamps", &ts_datums, &nts);
    read_array(value_array, FLOAT8OID, "values", &value_datums, &nvalues);
    if (nts != nvalues)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "timestamps and values must have the same length",
                       "There are " + std::to_string(nts) + " timestamps and " + std::to_string(nvalues) + " values.");
    std::vector<int64_t> ts_ms(static_cast<size_t>(nts));
    std::vector<double> values(static_cast<size_t>(nvalues));
    for (int i = 0; i < nts; i++) {
        TimestampTz t = DatumGetTimestampTz(ts_datums[i]);
        if (TIMESTAMP_NOT_FINITE(t))
            throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "timestamps must be finite",
                           "Element " + std::to_string(i + 1) + " is infinite.");
        int64 unix_us = t + kUnixEpochInPgMicros;
        if (unix_us % 1000 != 0)
            throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "timestamps must be whole milliseconds",
                           "Element " + std::to_string(i + 1) + " has a sub-millisecond part.",
                           "Samples are stored at the wire's resolution of one millisecond.");
        ts_ms[static_cast<size_t>(i)] = unix_us / 1000;
        values[static_cast<size_t>(i)] = DatumGetFloat8(value_datums[i]);
    }
    std::string encoded, error;
    if (!chunk::encode(ts_ms.data(), values.data(), ts_ms.size(), encoded, error))
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "cannot encode chunk: " + error,
                       "", "Give the samples sorted by time.");
    bytea *result = nullptr;
    pg_call([&] {
        result = static_cast<bytea *>(palloc(VARHDRSZ + encoded.size()));
        SET_VARSIZE(result, VARHDRSZ + encoded.size());
    });
    memcpy(VARDATA(result), encoded.data(), encoded.size());
    PG_RETURN_BYTEA_P(result);
}

/* _chunk_decode: every sample of a chunk, in time order. */
PGFLEET_SQL_FUNCTION(pgfleet_chunk_decode)
{
    using namespace pgfleet;
    bytea *chunk_bytes = PG_GETARG_BYTEA_PP(0);
    std::vector<int64_t> ts_ms;
    std::vector<double> values;
    std::string error;
    if (!chunk::decode(VARDATA_ANY(chunk_bytes), VARSIZE_ANY_EXHDR(chunk_bytes), ts_ms, values, error))
        throw SqlError(ERRCODE_DATA_CORRUPTED, "invalid sample chunk: " + error,
                       "The chunk is not a valid pgfleet chunk (core/chunk_codec.h).");
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    pg_call([&] {
        InitMaterializedSRF(fcinfo, 0);
        for (size_t i = 0; i < ts_ms.size(); i++) {
            Datum row[2] = {TimestampTzGetDatum(ts_ms[i] * 1000 - kUnixEpochInPgMicros), Float8GetDatum(values[i])};
            bool nulls[2] = {false, false};
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
        }
    });
    return static_cast<Datum>(0);
}

/* _array_pick: the elements of a float8[] at the given 1-based positions (NULL where out of range),
 * detoasting the array once: the hot tier's read path picks a few series out of a scrape's values. */
PGFLEET_SQL_FUNCTION(pgfleet_array_pick)
{
    using namespace pgfleet;
    ArrayType *values = PG_GETARG_ARRAYTYPE_P(0);
    ArrayType *positions = PG_GETARG_ARRAYTYPE_P(1);
    if (ARR_NDIM(values) > 1 || ARR_NDIM(positions) > 1)
        throw SqlError(ERRCODE_ARRAY_SUBSCRIPT_ERROR, "arrays must be one-dimensional");
    if (ARR_HASNULL(values) || ARR_HASNULL(positions))
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "arrays must not contain nulls");
    if (ARR_ELEMTYPE(values) != FLOAT8OID || ARR_ELEMTYPE(positions) != INT4OID)
        throw SqlError(ERRCODE_DATATYPE_MISMATCH, "expected float8[] and integer[]");
    const int nvalues = ARR_NDIM(values) == 0 ? 0 : ARR_DIMS(values)[0];
    const int npositions = ARR_NDIM(positions) == 0 ? 0 : ARR_DIMS(positions)[0];
    const int lower = ARR_NDIM(values) == 0 ? 1 : ARR_LBOUND(values)[0];
    const float8 *in = reinterpret_cast<const float8 *>(ARR_DATA_PTR(values));
    const int32 *pos = reinterpret_cast<const int32 *>(ARR_DATA_PTR(positions));
    Datum *out = nullptr;
    bool *nulls = nullptr;
    ArrayType *result = nullptr;
    pg_call([&] {
        out = static_cast<Datum *>(palloc(sizeof(Datum) * (npositions > 0 ? npositions : 1)));
        nulls = static_cast<bool *>(palloc(sizeof(bool) * (npositions > 0 ? npositions : 1)));
    });
    for (int i = 0; i < npositions; i++) {
        int k = pos[i] - lower;
        nulls[i] = k < 0 || k >= nvalues;
        out[i] = nulls[i] ? Float8GetDatum(0) : Float8GetDatum(in[k]);
    }
    pg_call([&] {
        int dims[1] = {npositions};
        int lbs[1] = {1};
        result = npositions == 0 ? construct_empty_array(FLOAT8OID)
                                 : construct_md_array(out, nulls, 1, dims, lbs, FLOAT8OID, 8, FLOAT8PASSBYVAL,
                                                      TYPALIGN_DOUBLE);
    });
    PG_RETURN_ARRAYTYPE_P(result);
}

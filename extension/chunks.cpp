/*
 * extension/chunks.cpp — SQL access to the cold tier's compressed chunks (core/chunk_codec).
 *
 *   fleet._chunk_encode(timestamptz[], float8[]) -> bytea     one series' samples, sorted by time
 *   fleet._chunk_decode(bytea) -> TABLE (ts, value)            the samples back, bit for bit
 *   fleet.series(instance, metric, from, to)                   the read path of one metric, both tiers
 *
 * fleet.compact() (extension/sql/15_storage.sql) uses them to move hot-tier rows into
 * fleet.sample_chunk; fleet.sample and fleet._instance_samples decode them in SQL, fleet.series in C++. Timestamps travel in whole
 * milliseconds (the wire's resolution): a timestamp with a sub-millisecond part is refused rather than
 * rounded, so a chunk always decodes to exactly what was encoded.
 *
 * PostgreSQL-facing layer: arrays are read here and handed to the pure codec as plain vectors; codec
 * failures come back as strings and are raised as SqlError through the guard.
 */
#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>
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

namespace {

/* One requested series' samples, gathered from both tiers before sorting. */
struct SeriesPoints {
    std::vector<int64_t> ts_ms;
    std::vector<double> values;
};

/* The read path's three queries, planned once per backend (SPI_keepplan); PostgreSQL's plan cache
 * replans them after DDL (DROP/CREATE EXTENSION) from their text. Only the main thread calls these. */
SPIPlanPtr plan_sets = nullptr, plan_hot = nullptr, plan_cold = nullptr;

/* Prepares sql once and keeps the plan; errors (ERROR) propagate to the caller's pg_call. */
SPIPlanPtr kept_plan(SPIPlanPtr &slot, const char *sql, int nargs, Oid *types)
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

/* PostgreSQL TimestampTz <-> Unix milliseconds (timestamps are whole milliseconds in both tiers). */
int64_t to_unix_ms(TimestampTz t) { return (t + kUnixEpochInPgMicros) / 1000; }
TimestampTz from_unix_ms(int64_t ms) { return ms * 1000 - kUnixEpochInPgMicros; }

/*
 * The read path of fleet.series: fills the materialized SRF result of fcinfo with the (labels, ts,
 * value) rows of the series in ids_array (labels alongside) of one instance with from <= ts <= to,
 * ordered by the series' position in the arrays, then by time. One pass over the instance's series
 * sets (positions found in C++), the hot rows of the range (a row's values detoasted only when its set
 * holds a requested series), the cold chunks of the range (decoded by the codec), one sort per series.
 * The queries run through SPI as the calling role, so row-level security applies as in plain SQL.
 */
void emit_series_points(FunctionCallInfo fcinfo, int64 instance_id, ArrayType *ids_array, ArrayType *labels_array,
                        TimestampTz from, TimestampTz to)
{
    using namespace pgfleet;
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

    Datum *id_datums = nullptr, *label_datums = nullptr;
    bool *id_nulls = nullptr, *label_nulls = nullptr;
    int nids = 0, nlabels = 0;
    pg_call([&] {
        InitMaterializedSRF(fcinfo, 0);
        deconstruct_array(ids_array, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &id_datums, &id_nulls, &nids);
        deconstruct_array(labels_array, JSONBOID, -1, false, TYPALIGN_INT, &label_datums, &label_nulls, &nlabels);
    });
    if (nids != nlabels)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "series ids and labels must have the same length");
    if (nids == 0 || to < from)
        return;
    /* infinite bounds stay infinite (no arithmetic on them: it would overflow) */
    auto bound_ms = [](TimestampTz t) -> int64_t {
        if (TIMESTAMP_IS_NOBEGIN(t))
            return INT64_MIN;
        if (TIMESTAMP_IS_NOEND(t))
            return INT64_MAX;
        return to_unix_ms(t);
    };
    const int64_t from_ms = bound_ms(from), to_ms = bound_ms(to);

    std::unordered_map<int64_t, size_t> slot_of_series;
    for (int i = 0; i < nids; i++)
        if (!id_nulls[i])
            slot_of_series.emplace(DatumGetInt64(id_datums[i]), static_cast<size_t>(i));
    std::vector<SeriesPoints> points(static_cast<size_t>(nids));

    /* per series set of the instance: (position in the set's values, slot) of each requested series */
    std::unordered_map<int64_t, std::vector<std::pair<int, size_t>>> picks_of_set;
    std::vector<int64_t> decoded_ts;
    std::vector<double> decoded_values;
    std::string codec_error;
    bool corrupt = false;

    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pgfleet: SPI_connect failed");
        Oid types[4] = {INT8OID, INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
        Datum args[4] = {Int64GetDatum(instance_id), PointerGetDatum(ids_array), TimestampTzGetDatum(from),
                         TimestampTzGetDatum(to)};

        /* 1. series sets: where each requested series sits in each set's values */
        if (SPI_execute_plan(kept_plan(plan_sets,
                                       "SELECT series_set_id, series_ids FROM fleet.series_set WHERE instance_id = $1",
                                       1, types),
                             args, nullptr, true, 0) != SPI_OK_SELECT)
            elog(ERROR, "pgfleet: reading series sets failed");
        for (uint64 r = 0; r < SPI_processed; r++) {
            bool isnull = false;
            HeapTuple tuple = SPI_tuptable->vals[r];
            int64 set_id = DatumGetInt64(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &isnull));
            ArrayType *members = DatumGetArrayTypeP(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &isnull));
            const int n = ARR_NDIM(members) == 0 ? 0 : ARR_DIMS(members)[0];
            const int64 *ids = reinterpret_cast<const int64 *>(ARR_DATA_PTR(members));
            for (int k = 0; k < n; k++) {
                auto it = slot_of_series.find(ids[k]);
                if (it != slot_of_series.end())
                    picks_of_set[set_id].emplace_back(k, it->second);
            }
        }

        /* 2. hot rows of the range whose set holds a requested series */
        if (!picks_of_set.empty()) {
            if (SPI_execute_plan(kept_plan(plan_hot,
                                           "SELECT series_set_id, ts, vals FROM fleet.sample_block "
                                           "WHERE instance_id = $1 AND ts >= $3 AND ts <= $4 AND $2 IS NOT NULL",
                                           4, types),
                                 args, nullptr, true, 0) != SPI_OK_SELECT)
                elog(ERROR, "pgfleet: reading the hot tier failed");
            for (uint64 r = 0; r < SPI_processed; r++) {
                bool isnull = false;
                HeapTuple tuple = SPI_tuptable->vals[r];
                auto it = picks_of_set.find(DatumGetInt64(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &isnull)));
                if (it == picks_of_set.end())
                    continue;
                int64_t ts_ms = to_unix_ms(DatumGetTimestampTz(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &isnull)));
                ArrayType *vals = DatumGetArrayTypeP(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 3, &isnull));
                const int n = ARR_NDIM(vals) == 0 ? 0 : ARR_DIMS(vals)[0];
                const float8 *v = reinterpret_cast<const float8 *>(ARR_DATA_PTR(vals));
                for (const auto &pick : it->second) {
                    if (pick.first >= n)
                        continue;
                    points[pick.second].ts_ms.push_back(ts_ms);
                    points[pick.second].values.push_back(v[pick.first]);
                }
            }
        }

        /* 3. cold chunks overlapping the range */
        if (SPI_execute_plan(kept_plan(plan_cold,
                                       "SELECT series_id, data FROM fleet.sample_chunk "
                                       "WHERE instance_id = $1 AND series_id = ANY ($2) "
                                       "AND window_start >= date_trunc('hour', $3) AND window_start <= $4 "
                                       "AND last_ts >= $3 AND first_ts <= $4",
                                       4, types),
                             args, nullptr, true, 0) != SPI_OK_SELECT)
            elog(ERROR, "pgfleet: reading the cold tier failed");
        for (uint64 r = 0; r < SPI_processed && !corrupt; r++) {
            bool isnull = false;
            HeapTuple tuple = SPI_tuptable->vals[r];
            auto it = slot_of_series.find(DatumGetInt64(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &isnull)));
            if (it == slot_of_series.end())
                continue;
            bytea *data = DatumGetByteaPP(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &isnull));
            if (!chunk::decode(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), decoded_ts, decoded_values, codec_error)) {
                corrupt = true;
                break;
            }
            SeriesPoints &p = points[it->second];
            for (size_t k = 0; k < decoded_ts.size(); k++) {
                if (decoded_ts[k] < from_ms || decoded_ts[k] > to_ms)
                    continue;
                p.ts_ms.push_back(decoded_ts[k]);
                p.values.push_back(decoded_values[k]);
            }
        }
        SPI_finish();
    });
    if (corrupt)
        throw SqlError(ERRCODE_DATA_CORRUPTED, "invalid sample chunk: " + codec_error,
                       "A chunk of instance " + std::to_string(instance_id) + " cannot be decoded.");

    /* 4. each series in time order (a stable sort keeps equal timestamps in tier order), then emit */
    std::vector<size_t> order;
    for (size_t slot = 0; slot < points.size(); slot++) {
        SeriesPoints &p = points[slot];
        if (p.ts_ms.empty())
            continue;
        order.resize(p.ts_ms.size());
        for (size_t k = 0; k < order.size(); k++)
            order[k] = k;
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p.ts_ms[a] < p.ts_ms[b]; });
        pg_call([&] {
            for (size_t k : order) {
                Datum row[3] = {label_datums[slot], TimestampTzGetDatum(from_unix_ms(p.ts_ms[k])),
                                Float8GetDatum(p.values[k])};
                bool nulls[3] = {label_nulls[slot], false, false};
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
            }
        });
    }
}

SPIPlanPtr plan_series_of_metric = nullptr;

} // namespace

/*
 * series(instance, metric, from, to): fleet.series itself — the instance's series of the metric, ordered
 * by their labels' text, then their samples through emit_series_points (no SQL wrapper in between: one
 * materialization of the rows instead of two).
 */
PGFLEET_SQL_FUNCTION(pgfleet_series)
{
    using namespace pgfleet;
    const int64 instance_id = PG_GETARG_INT64(0);
    text *metric = PG_GETARG_TEXT_PP(1);
    const TimestampTz from = PG_GETARG_TIMESTAMPTZ(2);
    const TimestampTz to = PG_GETARG_TIMESTAMPTZ(3);
    Datum ids = 0, labels = 0;
    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pgfleet: SPI_connect failed");
        Oid types[2] = {INT8OID, TEXTOID};
        Datum args[2] = {Int64GetDatum(instance_id), PointerGetDatum(metric)};
        if (SPI_execute_plan(kept_plan(plan_series_of_metric,
                                       "SELECT coalesce(array_agg(s.series_id ORDER BY s.labels::text), '{}'), "
                                       "coalesce(array_agg(s.labels ORDER BY s.labels::text), '{}') "
                                       "FROM fleet.series s JOIN fleet.metric m USING (metric_id) "
                                       "WHERE s.instance_id = $1 AND m.name = $2",
                                       2, types),
                             args, nullptr, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
            elog(ERROR, "pgfleet: looking up the series of a metric failed");
        bool isnull = false;
        /* SPI_datumTransfer copies into the caller's memory (not SPI's, which SPI_finish frees) */
        ids = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull), false, -1);
        labels = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull), false, -1);
        SPI_finish();
    });
    ArrayType *id_array = nullptr, *label_array = nullptr;
    pg_call([&] {
        id_array = DatumGetArrayTypeP(ids);
        label_array = DatumGetArrayTypeP(labels);
    });
    emit_series_points(fcinfo, instance_id, id_array, label_array, from, to);
    return static_cast<Datum>(0);
}

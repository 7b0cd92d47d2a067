/*
 * extension/chunks.cpp — SQL access to the cold tier (core/chunk_codec.h) and the read path.
 *
 *   fleet._chunk_encode(series_id[], ts[], value[]) -> (times, data)  samples as one window: its time
 *                                                                      list and one group (tests, audits)
 *   fleet._chunk_decode(times, data) -> TABLE (series_id, ts, value)   a group's samples, bit for bit
 *   fleet._chunk_decode(times, data, series_id) -> TABLE (ts, value)    one series of a group
 *   fleet._chunk_decode(times, data, from, to) -> TABLE (series_id, ts, value)  samples with from <= ts < to
 *   fleet.series(instance, metric, from, to)                            the read path of one metric, both tiers
 *
 * fleet.sample_chunk holds per instance and window one row of scrape times (metric_id 0) and one group
 * per metric (docs/storage.md); fleet._compact_instance (extension/compact.cpp) writes them. fleet.sample
 * and fleet._instance_samples decode them in SQL through _chunk_decode, fleet.series in C++ here.
 * Timestamps travel in whole milliseconds (the wire's resolution): a timestamp with a sub-millisecond
 * part is refused rather than rounded, so a chunk always decodes to exactly what was encoded.
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
#include "extension/chunks.h"

using pgfleet::cold::from_unix_ms;
using pgfleet::cold::kept_plan;
using pgfleet::cold::to_unix_ms;

namespace {

/* The elements of a one-dimensional array of an 8-byte by-value type without NULLs, or an error naming
 * the argument. */
void read_array(ArrayType *array, Oid element_type, const char *what, Datum **elements, int *count)
{
    if (ARR_NDIM(array) > 1)
        throw pgfleet::SqlError(ERRCODE_ARRAY_SUBSCRIPT_ERROR, std::string(what) + " must be a one-dimensional array");
    bool *nulls = nullptr;
    pgfleet::pg_call([&] {
        deconstruct_array(array, element_type, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, elements, &nulls, count);
    });
    for (int i = 0; i < *count; i++)
        if (nulls[i])
            throw pgfleet::SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, std::string(what) + " must not contain nulls",
                                    "Element " + std::to_string(i + 1) + " is null.");
}

TimestampTz timestamp_of(int64_t ms)
{
    TimestampTz t = 0;
    if (!from_unix_ms(ms, t))
        throw pgfleet::SqlError(ERRCODE_DATA_CORRUPTED, "invalid sample chunk: timestamp out of range",
                                "A chunk holds " + std::to_string(ms) + " ms since 1970.");
    return t;
}

/* Decodes a window's time list and opens a group on it; throws on corrupt input. */
void open_chunk(bytea *times_bytes, bytea *group_bytes, std::vector<int64_t> &times, pgfleet::chunk::GroupReader &group)
{
    std::string error;
    if (!pgfleet::chunk::decode_times(VARDATA_ANY(times_bytes), VARSIZE_ANY_EXHDR(times_bytes), times, error) ||
        !group.open(VARDATA_ANY(group_bytes), VARSIZE_ANY_EXHDR(group_bytes), error))
        throw pgfleet::SqlError(ERRCODE_DATA_CORRUPTED, "invalid sample chunk: " + error,
                                "The chunk is not a valid pgfleet chunk (core/chunk_codec.h).");
    if (group.slot_count() != times.size())
        throw pgfleet::SqlError(ERRCODE_DATA_CORRUPTED, "invalid sample chunk: the group does not fit the time list",
                                "The group has " + std::to_string(group.slot_count()) + " slots, the time list " +
                                    std::to_string(times.size()) + ".");
}

} // namespace

/* _chunk_encode: the samples (series[i], ts[i], values[i]), in any order, as one window: its time list
 * and one group. */
PGFLEET_SQL_FUNCTION(pgfleet_chunk_encode)
{
    using namespace pgfleet;
    Datum *id_datums = nullptr, *ts_datums = nullptr, *value_datums = nullptr;
    int nids = 0, nts = 0, nvalues = 0;
    read_array(PG_GETARG_ARRAYTYPE_P(0), INT8OID, "series ids", &id_datums, &nids);
    read_array(PG_GETARG_ARRAYTYPE_P(1), TIMESTAMPTZOID, "timestamps", &ts_datums, &nts);
    read_array(PG_GETARG_ARRAYTYPE_P(2), FLOAT8OID, "values", &value_datums, &nvalues);
    if (nids != nts || nts != nvalues)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "series ids, timestamps and values must have the same length",
                       "There are " + std::to_string(nids) + " series ids, " + std::to_string(nts) +
                           " timestamps and " + std::to_string(nvalues) + " values.");
    if (nts == 0)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "a chunk holds at least one sample");
    struct Sample {
        int64_t series_id, ts_ms;
        double value;
    };
    std::vector<Sample> samples(static_cast<size_t>(nts));
    for (int i = 0; i < nts; i++) {
        TimestampTz t = DatumGetTimestampTz(ts_datums[i]);
        if (TIMESTAMP_NOT_FINITE(t))
            throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "timestamps must be finite",
                           "Element " + std::to_string(i + 1) + " is infinite.");
        if ((t + cold::kUnixEpochInPgMicros) % 1000 != 0)
            throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "timestamps must be whole milliseconds",
                           "Element " + std::to_string(i + 1) + " has a sub-millisecond part.",
                           "Samples are stored at the wire's resolution of one millisecond.");
        samples[static_cast<size_t>(i)] = {DatumGetInt64(id_datums[i]), to_unix_ms(t), DatumGetFloat8(value_datums[i])};
    }
    std::stable_sort(samples.begin(), samples.end(), [](const Sample &a, const Sample &b) {
        return a.series_id != b.series_id ? a.series_id < b.series_id : a.ts_ms < b.ts_ms;
    });
    std::vector<chunk::SeriesSamples> series;
    for (const Sample &s : samples) {
        if (series.empty() || series.back().series_id != s.series_id) {
            series.emplace_back();
            series.back().series_id = s.series_id;
        }
        series.back().ts_ms.push_back(s.ts_ms);
        series.back().values.push_back(s.value);
    }
    chunk::SlotNeeds needs;
    for (const auto &s : series)
        needs.add_series(s.ts_ms);
    const std::vector<int64_t> times = needs.times();
    std::vector<chunk::Column> columns(series.size());
    std::string times_bytes, group_bytes, error;
    bool ok = chunk::encode_times(times.data(), times.size(), times_bytes, error);
    for (size_t k = 0; ok && k < series.size(); k++)
        ok = chunk::to_column(times, series[k], columns[k], error);
    if (!ok || !chunk::encode_group(times.size(), columns, group_bytes, error))
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "cannot encode chunk: " + error);

    Datum result = 0;
    pg_call([&] {
        TupleDesc desc;
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "pgfleet: _chunk_encode must return a record");
        desc = BlessTupleDesc(desc);
        bytea *parts[2];
        const std::string *sources[2] = {&times_bytes, &group_bytes};
        for (int k = 0; k < 2; k++) {
            parts[k] = static_cast<bytea *>(palloc(VARHDRSZ + sources[k]->size()));
            SET_VARSIZE(parts[k], VARHDRSZ + sources[k]->size());
            memcpy(VARDATA(parts[k]), sources[k]->data(), sources[k]->size());
        }
        Datum values[2] = {PointerGetDatum(parts[0]), PointerGetDatum(parts[1])};
        bool nulls[2] = {false, false};
        result = HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
    });
    return result;
}

/* _chunk_decode: every sample of a group (series_id, ts, value), by series then time; with a third
 * argument only that series' (ts, value); with a time range [from, to) only the samples inside it
 * (the whole group is decoded, which is fast; only what is inside is returned). */
PGFLEET_SQL_FUNCTION(pgfleet_chunk_decode)
{
    using namespace pgfleet;
    bytea *times_bytes = PG_GETARG_BYTEA_PP(0);
    bytea *group_bytes = PG_GETARG_BYTEA_PP(1);
    const bool one_series = PG_NARGS() == 3, ranged = PG_NARGS() == 4;
    const int64 wanted = one_series ? PG_GETARG_INT64(2) : 0;
    auto bound_ms = [](TimestampTz t) -> int64_t {
        if (TIMESTAMP_IS_NOBEGIN(t))
            return INT64_MIN;
        if (TIMESTAMP_IS_NOEND(t))
            return INT64_MAX;
        return to_unix_ms(t + 999); /* [from, to) in whole milliseconds: ceil */
    };
    const int64_t from_ms = ranged ? bound_ms(PG_GETARG_TIMESTAMPTZ(2)) : INT64_MIN;
    const int64_t to_ms = ranged ? bound_ms(PG_GETARG_TIMESTAMPTZ(3)) : INT64_MAX;
    std::vector<int64_t> times;
    chunk::GroupReader group;
    open_chunk(times_bytes, group_bytes, times, group);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    chunk::Column column;
    std::string error;
    std::vector<Datum> ts_datums;
    for (size_t i = 0; i < group.size(); i++) {
        if (one_series && group.series_id(i) != wanted)
            continue;
        if (!group.column(i, column, error))
            throw SqlError(ERRCODE_DATA_CORRUPTED, "invalid sample chunk: " + error,
                           "The chunk is not a valid pgfleet chunk (core/chunk_codec.h).");
        size_t kept = 0;
        for (size_t k = 0; k < column.slots.size(); k++) {
            const int64_t ts = times[column.slots[k]];
            if (ranged && (ts < from_ms || (to_ms != INT64_MAX && ts >= to_ms)))
                continue;
            column.slots[kept] = column.slots[k];
            column.values[kept++] = column.values[k];
        }
        column.slots.resize(kept);
        column.values.resize(kept);
        ts_datums.resize(kept);
        for (size_t k = 0; k < kept; k++)
            ts_datums[k] = TimestampTzGetDatum(timestamp_of(times[column.slots[k]]));
        pg_call([&] {
            for (size_t k = 0; k < column.slots.size(); k++) {
                Datum row[3] = {Int64GetDatum(column.series_id), ts_datums[k], Float8GetDatum(column.values[k])};
                bool nulls[3] = {false, false, false};
                if (one_series)
                    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row + 1, nulls);
                else
                    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
            }
        });
    }
    return static_cast<Datum>(0);
}

namespace {

/* One requested series' samples, gathered from both tiers before sorting. */
struct SeriesPoints {
    std::vector<int64_t> ts_ms;
    std::vector<double> values;
};

/* The read path's three queries, planned once per backend; only the main thread uses them. */
SPIPlanPtr plan_sets = nullptr, plan_hot = nullptr, plan_cold = nullptr;

/*
 * The read path of fleet.series: fills the materialized SRF result of fcinfo with the (labels, ts,
 * value) rows of the series in ids_array (labels alongside, all of metric metric_id) of one instance
 * with from <= ts <= to, ordered by the series' position in the arrays, then by time. One pass over the
 * instance's series sets (positions found in C++), the hot rows of the range (a row's values detoasted
 * only when its set holds a requested series), the metric's cold groups of the windows overlapping the
 * range with their windows' time lists (decoded by the codec, only the requested series), one sort per
 * series. The queries run through SPI as the calling role, so row-level security applies as in plain
 * SQL, and read-only, so they share the caller's snapshot: a concurrent compaction is seen whole or not.
 */
void emit_series_points(FunctionCallInfo fcinfo, int64 instance_id, int32 metric_id, ArrayType *ids_array,
                        ArrayType *labels_array, TimestampTz from, TimestampTz to)
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
    std::vector<int64_t> times;
    chunk::GroupReader group;
    chunk::Column column;
    std::string codec_error;
    bool corrupt = false;

    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pgfleet: SPI_connect failed");
        Oid types[5] = {INT8OID, INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID};
        Datum args[5] = {Int64GetDatum(instance_id), PointerGetDatum(ids_array), TimestampTzGetDatum(from),
                         TimestampTzGetDatum(to), Int32GetDatum(metric_id)};

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

        /* 3. the metric's groups of the windows overlapping the range (a window is at most a day
         *    long), each with its window's time list */
        if (SPI_execute_plan(kept_plan(plan_cold,
                                       "SELECT t.data, c.data FROM fleet.sample_chunk c "
                                       "JOIN fleet.sample_chunk t ON t.instance_id = c.instance_id "
                                       "AND t.metric_id = 0 AND t.window_start = c.window_start "
                                       "WHERE c.instance_id = $1 AND c.metric_id = $5 "
                                       "AND c.window_start > $3 - interval '1 day' AND c.window_start <= $4 "
                                       "AND c.window_end > $3 AND $2 IS NOT NULL",
                                       5, types),
                             args, nullptr, true, 0) != SPI_OK_SELECT)
            elog(ERROR, "pgfleet: reading the cold tier failed");
        for (uint64 r = 0; r < SPI_processed && !corrupt; r++) {
            bool isnull = false;
            HeapTuple tuple = SPI_tuptable->vals[r];
            bytea *times_bytes = DatumGetByteaPP(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &isnull));
            bytea *group_bytes = DatumGetByteaPP(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &isnull));
            if (!chunk::decode_times(VARDATA_ANY(times_bytes), VARSIZE_ANY_EXHDR(times_bytes), times, codec_error) ||
                !group.open(VARDATA_ANY(group_bytes), VARSIZE_ANY_EXHDR(group_bytes), codec_error)) {
                corrupt = true;
                break;
            }
            if (group.slot_count() != times.size()) {
                codec_error = "the group does not fit the time list";
                corrupt = true;
                break;
            }
            for (size_t i = 0; i < group.size(); i++) {
                auto it = slot_of_series.find(group.series_id(i));
                if (it == slot_of_series.end())
                    continue;
                if (!group.column(i, column, codec_error)) {
                    corrupt = true;
                    break;
                }
                SeriesPoints &p = points[it->second];
                for (size_t k = 0; k < column.slots.size(); k++) {
                    const int64_t ts = times[column.slots[k]];
                    if (ts < from_ms || ts > to_ms)
                        continue;
                    p.ts_ms.push_back(ts);
                    p.values.push_back(column.values[k]);
                }
            }
        }
        SPI_finish();
    });
    if (corrupt)
        throw SqlError(ERRCODE_DATA_CORRUPTED, "invalid sample chunk: " + codec_error,
                       "A chunk of instance " + std::to_string(instance_id) + " cannot be decoded.");

    /* 4. each series in time order (a stable sort keeps equal timestamps in tier order), then emit */
    std::vector<size_t> order;
    std::vector<Datum> ts_datums;
    for (size_t slot = 0; slot < points.size(); slot++) {
        SeriesPoints &p = points[slot];
        if (p.ts_ms.empty())
            continue;
        order.resize(p.ts_ms.size());
        for (size_t k = 0; k < order.size(); k++)
            order[k] = k;
        if (!std::is_sorted(p.ts_ms.begin(), p.ts_ms.end()))
            std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p.ts_ms[a] < p.ts_ms[b]; });
        ts_datums.resize(order.size());
        for (size_t k = 0; k < order.size(); k++)
            ts_datums[k] = TimestampTzGetDatum(timestamp_of(p.ts_ms[order[k]]));
        pg_call([&] {
            for (size_t k = 0; k < order.size(); k++) {
                Datum row[3] = {label_datums[slot], ts_datums[k], Float8GetDatum(p.values[order[k]])};
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
    int32 metric_id = 0;
    bool found = false;
    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pgfleet: SPI_connect failed");
        Oid types[2] = {INT8OID, TEXTOID};
        Datum args[2] = {Int64GetDatum(instance_id), PointerGetDatum(metric)};
        if (SPI_execute_plan(kept_plan(plan_series_of_metric,
                                       "SELECT m.metric_id, array_agg(s.series_id ORDER BY s.labels::text), "
                                       "array_agg(s.labels ORDER BY s.labels::text) "
                                       "FROM fleet.series s JOIN fleet.metric m USING (metric_id) "
                                       "WHERE s.instance_id = $1 AND m.name = $2 GROUP BY m.metric_id",
                                       2, types),
                             args, nullptr, true, 1) != SPI_OK_SELECT)
            elog(ERROR, "pgfleet: looking up the series of a metric failed");
        if (SPI_processed == 1) {
            bool isnull = false;
            found = true;
            metric_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
            /* SPI_datumTransfer copies into the caller's memory (not SPI's, which SPI_finish frees) */
            ids = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull), false, -1);
            labels =
                SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull), false, -1);
        }
        SPI_finish();
    });
    if (!found) {
        pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
        return static_cast<Datum>(0);
    }
    ArrayType *id_array = nullptr, *label_array = nullptr;
    pg_call([&] {
        id_array = DatumGetArrayTypeP(ids);
        label_array = DatumGetArrayTypeP(labels);
    });
    emit_series_points(fcinfo, instance_id, metric_id, id_array, label_array, from, to);
    return static_cast<Datum>(0);
}

/*
 * extension/compact.cpp — fleet._compact_instance(instance, cutoff): the hot tier's rows of one instance
 * older than cutoff become cold windows (docs/storage.md, "Cold"), in the caller's transaction.
 *
 * Windows. A window is a UTC hour, or a whole UTC day: an hour while its day is still being written, the
 * day once it ended before the cutoff (consolidation, below). Windows of an instance never overlap. Per
 * window, fleet.sample_chunk holds one row of scrape times (metric_id 0, core/chunk_codec.h "times")
 * and one group per metric with samples in the window (its series' presence and values).
 *
 * Moving hot rows, one UTC hour at a time (memory stays bounded however large the backlog): the hour of
 * the oldest hot row below the cutoff goes into the window covering it (the existing hour or day window,
 * else a new hour window). Its hot rows are deleted (RETURNING their values), expanded through their
 * series sets, grouped by metric, merged with the window's stored rows if any (late data), and the
 * window is written anew: its old rows deleted, the new ones inserted. Every sample is in exactly one
 * tier at every commit, and two checks make sure of it before anything is written: the samples written
 * equal the samples read (stored counts plus hot samples), and the rows deleted are the rows read. A
 * merge that needs new instants rewrites the window's time list and re-encodes every group on it;
 * otherwise groups of metrics without new samples are copied as they are.
 *
 * Consolidation. Every UTC day that ended at or before the cutoff and still has hour windows becomes one
 * day window: its hour windows' rows are read, their time lists concatenated (the hours are disjoint),
 * every metric's series re-encoded on the day's list, the hour rows replaced. Late data for that day
 * later merges into the day window. One metric is decoded at a time.
 *
 * Compactions of one instance are serialized by a transaction-level advisory lock, so a merge never
 * races another merge of the same window.
 *
 * PostgreSQL-facing layer: SPI runs inside pg_call (one SPI connection per window, so memory does not
 * pile up over a long backlog); windows are built by the pure codec outside it, from pointers into SPI's
 * memory, with failures reported as strings and raised only after SPI_finish.
 */
#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/chunk_codec.h"
#include "extension/chunks.h"

using pgfleet::cold::from_unix_ms;
using pgfleet::cold::kept_plan;
using pgfleet::cold::to_unix_ms;

namespace {

namespace chunk = pgfleet::chunk;

constexpr int64_t kHourMs = 3600000, kDayMs = 86400000;

int64_t floor_to(int64_t ms, int64_t unit)
{
    const int64_t q = ms / unit;
    return (ms % unit != 0 && ms < 0 ? q - 1 : q) * unit;
}

/* A stored cold row, pointing into SPI's memory. */
struct StoredRow {
    int32 metric_id;
    int32 sample_count;
    int64_t window_start_ms;
    const char *data;
    size_t size;
};

/* A hot-tier sample on its way to a window. */
struct HotSample {
    int32 metric_id;
    int64_t series_id;
    int64_t ts_ms;
    double value;
};

/* A row to insert. */
struct NewRow {
    int32 metric_id;
    int32 sample_count;
    std::string data;
};

/* Sorts one series' samples by time (stable: equal timestamps keep their order). */
void sort_by_time(chunk::SeriesSamples &s)
{
    if (std::is_sorted(s.ts_ms.begin(), s.ts_ms.end()))
        return;
    std::vector<size_t> order(s.ts_ms.size());
    for (size_t i = 0; i < order.size(); i++)
        order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s.ts_ms[a] < s.ts_ms[b]; });
    chunk::SeriesSamples sorted;
    sorted.series_id = s.series_id;
    for (size_t i : order) {
        sorted.ts_ms.push_back(s.ts_ms[i]);
        sorted.values.push_back(s.values[i]);
    }
    s = std::move(sorted);
}

using SeriesMap = std::map<int64_t, chunk::SeriesSamples>;

/*
 * Builds one window from the stored rows of the windows it replaces (sources; all of them, time lists
 * included) and new samples (sorted here): out gets the time list (metric 0) and one group per metric.
 * False and why when a stored row is corrupt or the window would exceed the codec's limits.
 */
bool build_window(const std::vector<StoredRow> &rows, std::vector<HotSample> &hot, std::vector<NewRow> &out,
                  std::string &error)
{
    out.clear();
    std::map<int64_t, std::vector<int64_t>> source_times; /* window start -> its time list */
    std::map<int32, std::vector<const StoredRow *>> rows_of_metric;
    for (const StoredRow &r : rows) {
        if (r.metric_id != 0) {
            rows_of_metric[r.metric_id].push_back(&r);
            continue;
        }
        if (!chunk::decode_times(r.data, r.size, source_times[r.window_start_ms], error))
            return false;
    }
    for (auto &m : rows_of_metric) {
        std::sort(m.second.begin(), m.second.end(),
                  [](const StoredRow *a, const StoredRow *b) { return a->window_start_ms < b->window_start_ms; });
        for (const StoredRow *r : m.second)
            if (source_times.count(r->window_start_ms) == 0) {
                error = "a group of metric " + std::to_string(r->metric_id) + " has no time list";
                return false;
            }
    }

    chunk::GroupReader group;
    chunk::Column column;
    /* the samples of one metric's stored groups, appended to series (sources in time order) */
    auto decode_metric = [&](int32 metric_id, SeriesMap &series) {
        for (const StoredRow *r : rows_of_metric[metric_id]) {
            const std::vector<int64_t> &times = source_times[r->window_start_ms];
            if (!group.open(r->data, r->size, error))
                return false;
            if (group.slot_count() != times.size()) {
                error = "a group of metric " + std::to_string(metric_id) + " does not fit its time list";
                return false;
            }
            for (size_t i = 0; i < group.size(); i++) {
                if (!group.column(i, column, error))
                    return false;
                chunk::append_samples(times, column, series[column.series_id]);
            }
        }
        return true;
    };

    /* metrics with new samples: their stored samples, then the new ones, each series in time order */
    std::stable_sort(hot.begin(), hot.end(), [](const HotSample &a, const HotSample &b) {
        return a.metric_id != b.metric_id ? a.metric_id < b.metric_id : a.series_id < b.series_id;
    });
    std::map<int32, SeriesMap> merged;
    chunk::SlotNeeds needs;
    for (size_t i = 0; i < hot.size();) {
        const int32 metric_id = hot[i].metric_id;
        SeriesMap &series = merged[metric_id];
        if (!decode_metric(metric_id, series))
            return false;
        for (; i < hot.size() && hot[i].metric_id == metric_id; i++) {
            chunk::SeriesSamples &s = series[hot[i].series_id];
            s.series_id = hot[i].series_id;
            s.ts_ms.push_back(hot[i].ts_ms);
            s.values.push_back(hot[i].value);
        }
        for (auto &s : series) {
            sort_by_time(s.second);
            needs.add_series(s.second.ts_ms);
        }
    }
    for (const auto &t : source_times)
        needs.add_source(t.second);
    const std::vector<int64_t> times = needs.times();
    if (times.empty())
        return true;
    out.push_back({0, static_cast<int32>(times.size()), {}});
    if (!chunk::encode_times(times.data(), times.size(), out.back().data, error))
        return false;
    const bool same_layout = source_times.size() == 1 && source_times.begin()->second == times;

    std::vector<int32> metrics;
    for (const auto &m : rows_of_metric)
        metrics.push_back(m.first);
    for (const auto &m : merged)
        metrics.push_back(m.first);
    std::sort(metrics.begin(), metrics.end());
    metrics.erase(std::unique(metrics.begin(), metrics.end()), metrics.end());

    std::vector<chunk::Column> columns;
    SeriesMap decoded;
    for (int32 metric_id : metrics) {
        auto it = merged.find(metric_id);
        const std::vector<const StoredRow *> &stored = rows_of_metric[metric_id];
        if (it == merged.end() && same_layout && stored.size() == 1) { /* untouched: kept as it is */
            out.push_back({metric_id, stored[0]->sample_count, std::string(stored[0]->data, stored[0]->size)});
            continue;
        }
        SeriesMap *series = &decoded;
        if (it != merged.end()) {
            series = &it->second;
        } else {
            decoded.clear();
            if (!decode_metric(metric_id, decoded))
                return false;
        }
        columns.resize(series->size());
        size_t k = 0, count = 0;
        for (auto &s : *series) {
            sort_by_time(s.second); /* overlapping sources only; a no-op otherwise */
            if (!chunk::to_column(times, s.second, columns[k++], error))
                return false;
            count += s.second.ts_ms.size();
        }
        if (count > static_cast<size_t>(INT32_MAX)) {
            error = "a group of metric " + std::to_string(metric_id) + " holds too many samples";
            return false;
        }
        out.push_back({metric_id, static_cast<int32>(count), {}});
        if (!chunk::encode_group(times.size(), columns, out.back().data, error))
            return false;
        if (it != merged.end())
            merged.erase(it); /* free what is written */
    }
    /* lossless: every sample read (stored counts and new samples) is in the rows written */
    int64_t in = static_cast<int64_t>(hot.size()), written = 0;
    for (const StoredRow &r : rows)
        in += r.metric_id != 0 ? r.sample_count : 0;
    for (const NewRow &r : out)
        written += r.metric_id != 0 ? r.sample_count : 0;
    if (in != written) {
        error = std::to_string(in) + " samples read, " + std::to_string(written) + " written";
        return false;
    }
    return true;
}

SPIPlanPtr plan_lock = nullptr, plan_oldest = nullptr, plan_covering = nullptr, plan_take = nullptr,
           plan_sets = nullptr, plan_metrics = nullptr, plan_rows = nullptr, plan_drop = nullptr,
           plan_put = nullptr, plan_days = nullptr;

/* Runs a kept plan; ERROR when it does not return the expected result code. */
void run(SPIPlanPtr &slot, const char *sql, int nargs, Oid *types, Datum *args, bool read_only, int expected)
{
    if (SPI_execute_plan(kept_plan(slot, sql, nargs, types), args, nullptr, read_only, 0) != expected)
        elog(ERROR, "pgfleet: compaction query failed: %s", sql);
}

TimestampTz timestamp_of(int64_t ms)
{
    TimestampTz t = 0;
    if (!from_unix_ms(ms, t))
        throw pgfleet::SqlError(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, "cannot compact: timestamp out of range",
                                std::to_string(ms) + " ms since 1970 is beyond PostgreSQL's timestamps.");
    return t;
}

/* Reads the stored rows of the windows starting in [from, to) of the instance (SPI connected). */
void read_rows(int64 instance_id, TimestampTz from, TimestampTz to, std::vector<StoredRow> &rows)
{
    Oid types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
    Datum args[3] = {Int64GetDatum(instance_id), TimestampTzGetDatum(from), TimestampTzGetDatum(to)};
    run(plan_rows,
        "SELECT metric_id, sample_count, window_start, data FROM fleet.sample_chunk "
        "WHERE instance_id = $1 AND window_start >= $2 AND window_start < $3",
        3, types, args, false, SPI_OK_SELECT); /* not read-only: sees the windows this call wrote */
    for (uint64 r = 0; r < SPI_processed; r++) {
        bool isnull = false;
        HeapTuple tuple = SPI_tuptable->vals[r];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bytea *data = DatumGetByteaPP(SPI_getbinval(tuple, desc, 4, &isnull));
        rows.push_back({DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull)),
                        DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull)),
                        to_unix_ms(DatumGetTimestampTz(SPI_getbinval(tuple, desc, 3, &isnull))), VARDATA_ANY(data),
                        VARSIZE_ANY_EXHDR(data)});
    }
}

/* Replaces the rows of the windows starting in [from, to), which were read as `read` rows, by rows of the
 * window [from, to) (SPI connected). ERROR when the rows deleted are not the rows read: nothing built
 * from a partial read is ever written. */
void write_window(int64 instance_id, TimestampTz from, TimestampTz to, size_t read, const std::vector<NewRow> &rows)
{
    Oid types[6] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT4ARRAYOID, INT4ARRAYOID, BYTEAARRAYOID};
    Datum args[6] = {Int64GetDatum(instance_id), TimestampTzGetDatum(from), TimestampTzGetDatum(to), 0, 0, 0};
    run(plan_drop, "DELETE FROM fleet.sample_chunk WHERE instance_id = $1 AND window_start >= $2 AND window_start < $3",
        3, types, args, false, SPI_OK_DELETE);
    if (SPI_processed != read)
        ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                        errmsg("cold rows of instance %lld changed during compaction",
                               static_cast<long long>(instance_id)),
                        errdetail("%llu rows were read, %llu deleted.", static_cast<unsigned long long>(read),
                                  static_cast<unsigned long long>(SPI_processed))));
    if (rows.empty())
        return;
    const int n = static_cast<int>(rows.size());
    Datum *metric_ids = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    Datum *counts = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    Datum *datas = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    for (int i = 0; i < n; i++) {
        const NewRow &row = rows[static_cast<size_t>(i)];
        bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + row.data.size()));
        SET_VARSIZE(b, VARHDRSZ + row.data.size());
        memcpy(VARDATA(b), row.data.data(), row.data.size());
        metric_ids[i] = Int32GetDatum(row.metric_id);
        counts[i] = Int32GetDatum(row.sample_count);
        datas[i] = PointerGetDatum(b);
    }
    args[3] = PointerGetDatum(construct_array(metric_ids, n, INT4OID, 4, true, TYPALIGN_INT));
    args[4] = PointerGetDatum(construct_array(counts, n, INT4OID, 4, true, TYPALIGN_INT));
    args[5] = PointerGetDatum(construct_array(datas, n, BYTEAOID, -1, false, TYPALIGN_INT));
    run(plan_put,
        "INSERT INTO fleet.sample_chunk (instance_id, metric_id, sample_count, window_start, window_end, data) "
        "SELECT $1, u.metric_id, u.sample_count, $2, $3, u.data "
        "FROM unnest($4::integer[], $5::integer[], $6::bytea[]) AS u(metric_id, sample_count, data)",
        6, types, args, false, SPI_OK_INSERT);
}

/*
 * Builds the window [from, to) out of the cold rows read and the hot samples, writes it in place of the
 * rows read, and ends the SPI connection the caller opened. Throws (after SPI_finish) when the window
 * cannot be built; what names the operation in that error.
 */
void rebuild_window(int64 instance_id, TimestampTz from, TimestampTz to, const std::vector<StoredRow> &rows,
                    std::vector<HotSample> &hot, std::vector<NewRow> &out, const std::string &what)
{
    using namespace pgfleet;
    std::string error;
    const bool built = build_window(rows, hot, out, error);
    pg_call([&] {
        if (built)
            write_window(instance_id, from, to, rows.size(), out);
        SPI_finish();
    });
    if (!built)
        throw SqlError(ERRCODE_DATA_CORRUPTED, what + ": " + error);
}

/*
 * Moves the instance's hot rows of the hour holding its oldest hot row below the cutoff into the window
 * covering that hour (one hour at a time, so memory stays bounded when a day window takes a day of late
 * data); false when no hot row is left below the cutoff, else moved counts the samples. sets and
 * metric_of cache the instance's series sets and series -> metric map, reloaded when a row needs what
 * they lack.
 */
bool compact_one_window(int64 instance_id, TimestampTz cutoff, std::unordered_map<int64_t, std::vector<int64_t>> &sets,
                        std::unordered_map<int64_t, int32> &metric_of, int64 &moved)
{
    using namespace pgfleet;
    std::vector<StoredRow> rows;
    std::vector<HotSample> hot;
    std::vector<NewRow> out;
    std::unordered_set<int64_t> checked_sets;
    bool found = false, covered = false, unknown_set = false;
    int64_t window_start = 0, window_end = 0;
    TimestampTz oldest = 0, covered_start = 0, covered_end = 0;

    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pgfleet: SPI_connect failed");
        Oid types[2] = {INT8OID, TIMESTAMPTZOID};
        Datum args[2] = {Int64GetDatum(instance_id), TimestampTzGetDatum(cutoff)};
        run(plan_oldest, "SELECT min(ts) FROM fleet.sample_block WHERE instance_id = $1 AND ts < $2", 2, types, args,
            false, SPI_OK_SELECT);
        bool isnull = true;
        Datum d = SPI_processed == 1 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
        if (isnull)
            return;
        found = true;
        oldest = DatumGetTimestampTz(d);
        args[1] = d;
        run(plan_covering,
            "SELECT window_start, window_end FROM fleet.sample_chunk WHERE instance_id = $1 AND metric_id = 0 "
            "AND window_start <= $2 AND window_start > $2 - interval '1 day' AND window_end > $2",
            2, types, args, false, SPI_OK_SELECT);
        if (SPI_processed >= 1) {
            HeapTuple tuple = SPI_tuptable->vals[0];
            covered = true;
            covered_start = DatumGetTimestampTz(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &isnull));
            covered_end = DatumGetTimestampTz(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &isnull));
        }
    });
    if (!found) {
        pg_call([&] { SPI_finish(); });
        return false;
    }
    const int64_t hour = floor_to(to_unix_ms(oldest), kHourMs);
    if (covered) {
        window_start = to_unix_ms(covered_start);
        window_end = to_unix_ms(covered_end);
    } else {
        window_start = hour;
        window_end = hour + kHourMs;
    }
    const TimestampTz start = timestamp_of(window_start), end = timestamp_of(window_end);
    const TimestampTz take_from = timestamp_of(std::max(window_start, hour)),
                      take_to = timestamp_of(std::min(window_end, hour + kHourMs));

    pg_call([&] {
        Oid types[4] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
        Datum args[4] = {Int64GetDatum(instance_id), TimestampTzGetDatum(take_from), TimestampTzGetDatum(take_to),
                         TimestampTzGetDatum(cutoff)};
        run(plan_take,
            "DELETE FROM fleet.sample_block WHERE instance_id = $1 AND ts >= $2 AND ts < $3 AND ts < $4 "
            "RETURNING series_set_id, ts, vals",
            4, types, args, false, SPI_OK_DELETE_RETURNING);
        SPITupleTable *taken = SPI_tuptable;
        const uint64 ntaken = SPI_processed;
        /* sets and series a taken row uses were committed before it: loaded now, they are all there */
        for (int attempt = 0; attempt < 2; attempt++) {
            unknown_set = false;
            for (uint64 r = 0; r < ntaken && !unknown_set; r++) {
                bool isnull = false;
                const int64 set_id = DatumGetInt64(SPI_getbinval(taken->vals[r], taken->tupdesc, 1, &isnull));
                if (checked_sets.count(set_id))
                    continue;
                auto it = sets.find(set_id);
                if (it == sets.end()) {
                    unknown_set = true;
                    break;
                }
                for (int64_t series_id : it->second)
                    if (metric_of.count(series_id) == 0)
                        unknown_set = true;
                if (!unknown_set)
                    checked_sets.insert(set_id);
            }
            if (!unknown_set || attempt == 1)
                break;
            sets.clear();
            metric_of.clear();
            run(plan_sets, "SELECT series_set_id, series_ids FROM fleet.series_set WHERE instance_id = $1", 1, types,
                args, false, SPI_OK_SELECT);
            for (uint64 r = 0; r < SPI_processed; r++) {
                bool isnull = false;
                HeapTuple tuple = SPI_tuptable->vals[r];
                ArrayType *members = DatumGetArrayTypeP(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &isnull));
                const int n = ARR_NDIM(members) == 0 ? 0 : ARR_DIMS(members)[0];
                const int64 *ids = reinterpret_cast<const int64 *>(ARR_DATA_PTR(members));
                sets[DatumGetInt64(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &isnull))].assign(ids, ids + n);
            }
            run(plan_metrics, "SELECT series_id, metric_id FROM fleet.series WHERE instance_id = $1", 1, types, args,
                false, SPI_OK_SELECT);
            for (uint64 r = 0; r < SPI_processed; r++) {
                bool isnull = false;
                HeapTuple tuple = SPI_tuptable->vals[r];
                metric_of[DatumGetInt64(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &isnull))] =
                    DatumGetInt32(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &isnull));
            }
        }
        if (unknown_set)
            return;
        for (uint64 r = 0; r < ntaken; r++) {
            bool isnull = false;
            HeapTuple tuple = taken->vals[r];
            const std::vector<int64_t> &members =
                sets.find(DatumGetInt64(SPI_getbinval(tuple, taken->tupdesc, 1, &isnull)))->second;
            const int64_t ts_ms = to_unix_ms(DatumGetTimestampTz(SPI_getbinval(tuple, taken->tupdesc, 2, &isnull)));
            ArrayType *vals = DatumGetArrayTypeP(SPI_getbinval(tuple, taken->tupdesc, 3, &isnull));
            const int n = ARR_NDIM(vals) == 0 ? 0 : ARR_DIMS(vals)[0];
            const float8 *v = reinterpret_cast<const float8 *>(ARR_DATA_PTR(vals));
            for (int k = 0; k < n && static_cast<size_t>(k) < members.size(); k++)
                hot.push_back({metric_of.find(members[static_cast<size_t>(k)])->second, members[static_cast<size_t>(k)],
                               ts_ms, v[k]});
        }
        read_rows(instance_id, start, end, rows);
    });
    if (unknown_set) {
        pg_call([&] { SPI_finish(); });
        throw SqlError(ERRCODE_FOREIGN_KEY_VIOLATION, "cannot compact instance " + std::to_string(instance_id),
                       "A hot-tier row uses a series set or series that does not exist.");
    }
    moved = static_cast<int64>(hot.size());
    rebuild_window(instance_id, start, end, rows, hot, out, "cannot compact instance " + std::to_string(instance_id));
    return true;
}

/* Stores every UTC day of the instance that ended at or before the cutoff and still has hour windows
 * as one day window. */
void consolidate_days(int64 instance_id, TimestampTz cutoff)
{
    using namespace pgfleet;
    TimestampTz day_limit = cutoff; /* the start of the cutoff's UTC day */
    if (!TIMESTAMP_NOT_FINITE(cutoff))
        day_limit = timestamp_of(floor_to(to_unix_ms(cutoff), kDayMs));
    std::vector<int64_t> days;
    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pgfleet: SPI_connect failed");
        Oid types[2] = {INT8OID, TIMESTAMPTZOID};
        Datum args[2] = {Int64GetDatum(instance_id), TimestampTzGetDatum(day_limit)};
        run(plan_days,
            "SELECT window_start FROM fleet.sample_chunk WHERE instance_id = $1 AND metric_id = 0 "
            "AND window_start < $2 AND window_end - window_start < interval '1 day'",
            2, types, args, false, SPI_OK_SELECT);
        for (uint64 r = 0; r < SPI_processed; r++) {
            bool isnull = false;
            Datum start = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);
            days.push_back(floor_to(to_unix_ms(DatumGetTimestampTz(start)), kDayMs));
        }
        SPI_finish();
    });
    std::sort(days.begin(), days.end());
    days.erase(std::unique(days.begin(), days.end()), days.end());
    std::vector<StoredRow> rows;
    std::vector<HotSample> none;
    std::vector<NewRow> out;
    for (int64_t day : days) {
        const TimestampTz start = timestamp_of(day), end = timestamp_of(day + kDayMs);
        rows.clear();
        pg_call([&] {
            if (SPI_connect() != SPI_OK_CONNECT)
                elog(ERROR, "pgfleet: SPI_connect failed");
            read_rows(instance_id, start, end, rows);
        });
        rebuild_window(instance_id, start, end, rows, none, out,
                       "cannot consolidate a day of instance " + std::to_string(instance_id));
    }
}

} // namespace

/* _compact_instance(instance, cutoff): see the top of this file; returns the number of samples moved. */
PGFLEET_SQL_FUNCTION(pgfleet_compact_instance)
{
    using namespace pgfleet;
    const int64 instance_id = PG_GETARG_INT64(0);
    const TimestampTz cutoff = PG_GETARG_TIMESTAMPTZ(1);
    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pgfleet: SPI_connect failed");
        Oid types[1] = {INT8OID};
        Datum args[1] = {Int64GetDatum(instance_id)};
        run(plan_lock, "SELECT pg_advisory_xact_lock(1885824611, hashint8($1))", 1, types, args, false, SPI_OK_SELECT);
        SPI_finish();
    });
    std::unordered_map<int64_t, std::vector<int64_t>> sets;
    std::unordered_map<int64_t, int32> metric_of;
    int64 moved = 0, n = 0;
    for (;;) {
        pg_call([] { CHECK_FOR_INTERRUPTS(); });
        if (!compact_one_window(instance_id, cutoff, sets, metric_of, n))
            break;
        moved += n;
    }
    consolidate_days(instance_id, cutoff);
    PG_RETURN_INT64(moved);
}

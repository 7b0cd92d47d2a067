/*
 * bench/agent/stream_stats.cpp — the JetStream side of bench/agent/run: creates stream FLEET_IN (as the
 * first ingest worker would, so that pgfleet-agent's publishes are acknowledged without a central
 * database), and afterwards reads every message back and counts what the agent published in a window.
 *
 *   stream_stats --url URL create
 *       creates FLEET_IN on fleet.in.> with the settings of core/jetstream.cpp (file storage, limits
 *       retention, Discard=New, MaxAge 72 h, MaxBytes 8 GiB, duplicate window 10 min); exits 0 when it
 *       exists afterwards.
 *   stream_stats --url URL count --from-ms A --to-ms B
 *       reads messages 1..last of FLEET_IN (js_GetMsg), decodes each wire v1 Envelope and counts those
 *       whose created_unix_ms is in [A, B). Prints key=value lines (see below).
 *
 * What is counted as a "sample" (one value of one series at one time, as in a Prometheus scrape):
 *   metrics     every value of every Scrape (one per ref; a reference to a series set, schema_minor 2, is
 *               given back its set's declarations first); series = distinct (metric, labels); objects =
 *               the pg.table/index/sequence/function.* part of them (objects collector). A metrics_zstd
 *               payload (schema_minor 1) is opened as the centre does (core/wire_pack.h: decompress,
 *               unpack) and counted the same way; its bytes are the compressed ones, as sent;
 *   statements  every StatementDelta carries 17 counters (calls, exec/plan time, rows, 8 block counters,
 *               2 I/O times, 3 WAL counters): 17 samples per delta; series = distinct
 *               (dbid, userid, queryid, toplevel) x 17; texts are counted apart (bytes, not samples);
 *   activity    one sample per ActivityGroup (its observations) and per BlockingEdge, plus 3 per batch
 *               (samples_taken, longest transaction, longest idle in transaction);
 *   inventory   one per Setting, extension and database listed;
 *   events, results: one per event / result (normally none).
 * Bytes: payload (the Envelope) and message = payload + subject + the NATS header block
 * "NATS/1.0\r\nNats-Msg-Id: <id>\r\n\r\n" (what the agent's HPUB carries; the protocol line itself,
 * ~30 B, and the PubAck coming back are not counted).
 *
 * Output (count): for each kind K of metrics statements activity inventory events results:
 *   K_messages= K_payload_bytes= K_raw_bytes= (payload, a metrics_zstd batch counted decompressed)
 *   K_wire_bytes= K_samples= K_series=
 * and metrics_object_samples=, statements_deltas=, statements_texts=, statements_text_bytes=,
 * activity_groups=, messages_outside_window=, first_ms=, last_ms= (of the counted messages),
 * statements_deltas_by_user=<user>:<deltas> ... (space-separated), metrics_zstd_messages= (of metrics_messages),
 * metrics_series_by_prefix=host:N pg:N pg-objects:N agent:N (the metric series by name),
 * collect_ms=<collector>:<ms> ... (the agent's agent.collect.seconds gauge, i.e. the wall time of each
 * collector's latest run, averaged over the window's metrics batches), metrics_reference_messages=,
 * metrics_keyframes=, metrics_based_scrapes=, metrics_unresolved_keyframes= (schema_minor 3, over the
 * whole stream: a based scrape is given its keyframe's values back before anything reads it),
 * values_collected= (the growth of the agent's agent.values_collected counters over the window: the
 * values it read from PostgreSQL and the host, sent or not).
 */
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nats/nats.h>
#include <zstd.h>

#include "core/wire_pack.h"
#include "fleet.pb.h"

namespace {

constexpr const char *kStream = "FLEET_IN";
constexpr int kStatementCounters = 17;

struct KindStats {
    long long messages = 0, payload_bytes = 0, wire_bytes = 0, samples = 0;
    long long raw_bytes = 0;  // payload with a metrics_zstd batch counted decompressed
    std::set<std::string> series;
    long long extra_series = 0;  // series counted without a key (statements: keys x 17)
};

int usage()
{
    fprintf(stderr, "usage: stream_stats --url URL create | count --from-ms A --to-ms B\n");
    return 2;
}

bool connect(const char *url, natsConnection **nc, jsCtx **js)
{
    natsOptions *opts = nullptr;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK) s = natsOptions_SetURL(opts, url);
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 2000);
    if (s == NATS_OK) s = natsConnection_Connect(nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        fprintf(stderr, "stream_stats: could not connect to %s: %s\n", url, natsStatus_GetText(s));
        return false;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    s = natsConnection_JetStream(js, *nc, &jo);
    if (s != NATS_OK) {
        fprintf(stderr, "stream_stats: no JetStream context: %s\n", natsStatus_GetText(s));
        return false;
    }
    return true;
}

int create(jsCtx *js)
{
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"fleet.in.>"};
    sc.Name = kStream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.Discard = js_DiscardNew;
    sc.MaxAge = 72LL * 3600 * 1000000000LL;
    sc.MaxBytes = 8LL << 30;
    sc.Duplicates = 600LL * 1000000000LL;
    jsStreamInfo *si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_AddStream(&si, js, &sc, nullptr, &jerr);
    if (si != nullptr) jsStreamInfo_Destroy(si);
    if (s != NATS_OK && jerr != JSStreamNameExistErr) {
        fprintf(stderr, "stream_stats: could not create stream %s: %s (%d)\n", kStream, natsStatus_GetText(s),
                static_cast<int>(jerr));
        return 1;
    }
    return 0;
}

std::string labels_key(const pgfleet::wire::v1::SeriesDecl &decl)
{
    std::string key = decl.metric();
    for (const auto &label : decl.labels()) key.append("\x1f").append(label.name()).append("=").append(label.value());
    return key;
}

bool is_object_metric(const std::string &metric)
{
    return metric.rfind("pg.table.", 0) == 0 || metric.rfind("pg.index.", 0) == 0 ||
           metric.rfind("pg.sequence.", 0) == 0 || metric.rfind("pg.function.", 0) == 0;
}

/* Records the series sets batch declares (scrapes with refs and a set key) and turns its references
 * (a set key, no refs) back into declared scrapes; true when it had a reference. A reference to a set
 * not seen yet is reported and left as it is (counted as values without series). */
bool resolve_sets(pgfleet::wire::v1::MetricBatch &batch, std::map<std::string, std::vector<pgfleet::wire::v1::SeriesDecl>> &sets,
                  uint64_t seq)
{
    bool reference = false;
    std::map<uint32_t, const pgfleet::wire::v1::SeriesDecl *> by_ref;
    for (const auto &decl : batch.series()) by_ref[decl.ref()] = &decl;
    for (const auto &scrape : batch.scrapes()) {
        if (scrape.set_key().empty() || scrape.refs_size() == 0) continue;
        std::vector<pgfleet::wire::v1::SeriesDecl> &decls = sets[scrape.set_key()];
        decls.clear();
        for (uint32_t ref : scrape.refs())
            if (by_ref.count(ref)) decls.push_back(*by_ref[ref]);
    }
    uint32_t next_ref = 0;
    for (const auto &decl : batch.series()) next_ref = std::max(next_ref, decl.ref() + 1);
    for (auto &scrape : *batch.mutable_scrapes()) {
        if (scrape.set_key().empty() || scrape.refs_size() > 0) continue;
        reference = true;
        auto it = sets.find(scrape.set_key());
        if (it == sets.end() || it->second.size() != static_cast<size_t>(scrape.values_size())) {
            fprintf(stderr, "stream_stats: message %llu refers to a series set not declared before it\n",
                    static_cast<unsigned long long>(seq));
            continue;
        }
        for (const auto &decl : it->second) {
            auto *d = batch.add_series();
            *d = decl;
            d->set_ref(next_ref);
            scrape.add_refs(next_ref++);
        }
    }
    return reference;
}

/* Keyframes (schema_minor 3): remembers the values of batch's keyframe scrapes and adds to each based
 * scrape's differences (base_relative, from unpack_metric_batch) the values of its keyframe, so that
 * the agent's own series are read as values. Counts based scrapes in *based, and reports (and counts in
 * *unresolved) a based scrape whose keyframe was not seen before it. */
void apply_keyframes(pgfleet::wire::v1::MetricBatch &batch, const std::vector<uint8_t> &base_relative,
                     const pgfleet::wire::v1::Envelope &env, std::map<std::string, std::vector<double>> &keyframes,
                     long long *based, long long *unresolved, uint64_t seq)
{
    size_t offset = 0;
    for (auto &scrape : *batch.mutable_scrapes()) {
        const size_t n = static_cast<size_t>(scrape.values_size());
        if (scrape.keyframe())
            keyframes[env.boot_id() + ":" + std::to_string(env.batch_seq()) + ":" + scrape.set_key()] =
                std::vector<double>(scrape.values().begin(), scrape.values().end());
        if (scrape.base_seq() != 0) {
            ++*based;
            auto it = keyframes.find(env.boot_id() + ":" + std::to_string(scrape.base_seq()) + ":" + scrape.set_key());
            if (it == keyframes.end() || it->second.size() != n || base_relative.size() < offset + n) {
                ++*unresolved;
                fprintf(stderr, "stream_stats: message %llu is based on a keyframe not seen before it\n",
                        static_cast<unsigned long long>(seq));
            } else {
                for (size_t i = 0; i < n; i++)
                    if (base_relative[offset + i])
                        scrape.set_values(static_cast<int>(i), scrape.values(static_cast<int>(i)) + it->second[i]);
            }
        }
        offset += n;
    }
}

int count(jsCtx *js, long long from_ms, long long to_ms)
{
    jsStreamInfo *si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js, kStream, nullptr, &jerr);
    if (s != NATS_OK) {
        fprintf(stderr, "stream_stats: no stream %s: %s\n", kStream, natsStatus_GetText(s));
        return 1;
    }
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);

    std::map<std::string, KindStats> kinds;
    for (const char *k : {"metrics", "statements", "activity", "inventory", "events", "results"}) kinds[k];
    long long outside = 0, object_samples = 0, deltas = 0, texts = 0, text_bytes = 0, groups = 0;
    long long first_ms = 0, last_ms = 0;
    std::set<std::string> statement_keys;
    std::map<std::string, long long> deltas_by_user;
    std::map<std::string, double> collect_sum;
    std::map<std::string, long long> collect_n;
    pgfleet::wire::v1::Envelope env;
    long long zstd_messages = 0, reference_messages = 0, based_scrapes = 0, unresolved_keyframes = 0;
    std::map<std::string, std::vector<double>> keyframes; /* boot:batch_seq:set_key -> keyframe values */
    std::vector<uint8_t> base_relative;
    std::map<std::string, std::vector<pgfleet::wire::v1::SeriesDecl>> sets;
    std::map<std::string, std::pair<double, double>> collected; /* agent.values_collected{source}: first, last */
    for (uint64_t seq = first; seq >= 1 && seq <= last; seq++) {
        natsMsg *msg = nullptr;
        s = js_GetMsg(&msg, js, kStream, seq, nullptr, &jerr);
        if (s != NATS_OK) {
            fprintf(stderr, "stream_stats: message %llu: %s\n", static_cast<unsigned long long>(seq),
                    natsStatus_GetText(s));
            continue;
        }
        const char *data = natsMsg_GetData(msg);
        int len = natsMsg_GetDataLength(msg);
        std::string subject = natsMsg_GetSubject(msg);
        const char *msg_id = nullptr;
        long long header_bytes = 0;
        if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &msg_id) == NATS_OK && msg_id != nullptr)
            header_bytes = static_cast<long long>(strlen("NATS/1.0\r\nNats-Msg-Id: \r\n\r\n") + strlen(msg_id));
        bool parsed = env.ParseFromArray(data, len);
        natsMsg_Destroy(msg);
        if (!parsed) {
            fprintf(stderr, "stream_stats: message %llu is not an Envelope\n", static_cast<unsigned long long>(seq));
            continue;
        }
        bool zstd = false;
        long long unzipped_extra = 0;
        if (env.payload_case() == pgfleet::wire::v1::Envelope::kMetricsZstd) {
            /* the agent seals metrics packed and zstd-compressed (wire schema_minor 1): open them as the centre does */
            pgfleet::wire::v1::MetricBatch opened;
            std::string error;
            const std::string &z = env.metrics_zstd();
            unsigned long long plain = ZSTD_getFrameContentSize(z.data(), z.size());
            if (pgfleet::wire::decompress_metrics(z, 64u << 20, opened, error) &&
                pgfleet::wire::unpack_metric_batch(opened, error, &base_relative)) {
                zstd = true;
                apply_keyframes(opened, base_relative, env, keyframes, &based_scrapes, &unresolved_keyframes, seq);
                unzipped_extra = static_cast<long long>(plain) - static_cast<long long>(z.size());
                *env.mutable_metrics() = std::move(opened);
            } else {
                fprintf(stderr, "stream_stats: message %llu: %s\n", static_cast<unsigned long long>(seq), error.c_str());
            }
        }
        /* series sets by key (schema_minor 2): remember every declared set (in every message, the window's or
         * not) and give a reference back the declarations of its set, so it is counted like the others */
        bool reference = false;
        if (env.payload_case() == pgfleet::wire::v1::Envelope::kMetrics)
            reference = resolve_sets(*env.mutable_metrics(), sets, seq);
        long long created = env.created_unix_ms();
        if (created < from_ms || created >= to_ms) {
            outside++;
            continue;
        }
        if (first_ms == 0 || created < first_ms) first_ms = created;
        if (created > last_ms) last_ms = created;
        std::string kind = subject.substr(subject.rfind('.') + 1);
        KindStats &k = kinds[kind];
        k.messages++;
        k.payload_bytes += len;
        k.wire_bytes += len + static_cast<long long>(subject.size()) + header_bytes;
        k.raw_bytes += len + unzipped_extra;
        zstd_messages += zstd;
        reference_messages += reference;
        switch (env.payload_case()) {
        case pgfleet::wire::v1::Envelope::kMetrics: {
            const auto &batch = env.metrics();
            for (const auto &scrape : batch.scrapes()) k.samples += scrape.refs_size();
            std::set<uint32_t> object_refs;
            for (const auto &decl : batch.series()) {
                k.series.insert(labels_key(decl));
                if (is_object_metric(decl.metric())) object_refs.insert(decl.ref());
            }
            for (const auto &scrape : batch.scrapes())
                for (uint32_t ref : scrape.refs()) object_samples += object_refs.count(ref);
            // the agent's own agent.values_collected{source}: values read from PostgreSQL and the host
            for (const auto &decl : batch.series())
                if (decl.metric() == "agent.values_collected" && decl.labels_size() == 1)
                    for (const auto &scrape : batch.scrapes())
                        for (int i = 0; i < scrape.refs_size() && i < scrape.values_size(); i++)
                            if (scrape.refs(i) == decl.ref()) {
                                auto it = collected.find(decl.labels(0).value());
                                if (it == collected.end())
                                    collected[decl.labels(0).value()] = {scrape.values(i), scrape.values(i)};
                                else
                                    it->second.second = scrape.values(i);
                            }
            // the agent's own agent.collect.seconds{collector} (duration of each collector's last run)
            std::map<uint32_t, std::string> collect_refs;
            for (const auto &decl : batch.series())
                if (decl.metric() == "agent.collect.seconds" && decl.labels_size() == 1)
                    collect_refs[decl.ref()] = decl.labels(0).value();
            for (const auto &scrape : batch.scrapes())
                for (int i = 0; i < scrape.refs_size() && i < scrape.values_size(); i++) {
                    auto it = collect_refs.find(scrape.refs(i));
                    if (it == collect_refs.end()) continue;
                    collect_sum[it->second] += scrape.values(i);
                    collect_n[it->second]++;
                }
            break;
        }
        case pgfleet::wire::v1::Envelope::kStatements: {
            const auto &batch = env.statements();
            deltas += batch.deltas_size();
            k.samples += static_cast<long long>(batch.deltas_size()) * kStatementCounters;
            for (const auto &d : batch.deltas()) {
                auto user = batch.user_names().find(d.userid());
                deltas_by_user[user != batch.user_names().end() ? user->second : std::to_string(d.userid())]++;
            }
            for (const auto &d : batch.deltas())
                statement_keys.insert(std::to_string(d.dbid()) + "/" + std::to_string(d.userid()) + "/" +
                                      std::to_string(d.queryid()) + "/" + (d.toplevel() ? "t" : "f"));
            texts += batch.texts_size();
            for (const auto &t : batch.texts()) text_bytes += static_cast<long long>(t.query().size());
            break;
        }
        case pgfleet::wire::v1::Envelope::kActivity: {
            const auto &batch = env.activity();
            groups += batch.groups_size();
            k.samples += batch.groups_size() + batch.blocking_size() + 3;
            for (const auto &g : batch.groups())
                k.series.insert(g.state() + "\x1f" + g.wait_event_type() + "\x1f" + g.wait_event() + "\x1f" +
                                std::to_string(g.queryid()) + "\x1f" + g.backend_type() + "\x1f" + g.datname() +
                                "\x1f" + g.usename() + "\x1f" + g.application_name());
            k.extra_series = 3;
            break;
        }
        case pgfleet::wire::v1::Envelope::kInventory: {
            const auto &inv = env.inventory();
            k.samples += inv.settings_size() + inv.extensions_size() + inv.databases_size();
            for (const auto &st : inv.settings()) k.series.insert("setting\x1f" + st.name());
            for (const auto &e : inv.extensions()) k.series.insert("extension\x1f" + e.first);
            for (const auto &d : inv.databases()) k.series.insert("database\x1f" + d);
            break;
        }
        case pgfleet::wire::v1::Envelope::kEvents: k.samples += env.events().events_size(); break;
        case pgfleet::wire::v1::Envelope::kResult: k.samples += 1; break;
        default: break;
        }
    }
    kinds["statements"].extra_series = static_cast<long long>(statement_keys.size()) * kStatementCounters;
    std::map<std::string, long long> by_prefix;  // metric series by the first part of the name
    for (const std::string &key : kinds["metrics"].series) {
        std::string name = key.substr(0, key.find('\x1f'));
        std::string prefix = name.substr(0, name.find('.'));
        if (prefix == "pg" && is_object_metric(name)) prefix = "pg-objects";
        by_prefix[prefix]++;
    }
    std::string prefixes;
    for (const auto &[prefix, n] : by_prefix) prefixes += (prefixes.empty() ? "" : " ") + prefix + ":" + std::to_string(n);
    printf("metrics_series_by_prefix=%s\n", prefixes.c_str());
    std::string collect;
    for (const auto &[name, sum] : collect_sum) {
        char part[96];
        snprintf(part, sizeof part, "%s%s:%.1f", collect.empty() ? "" : " ", name.c_str(), 1000 * sum / collect_n[name]);
        collect += part;
    }
    printf("collect_ms=%s\n", collect.c_str());
    for (const auto &[name, k] : kinds) {
        printf("%s_messages=%lld\n%s_payload_bytes=%lld\n%s_raw_bytes=%lld\n%s_wire_bytes=%lld\n%s_samples=%lld\n"
               "%s_series=%lld\n",
               name.c_str(), k.messages, name.c_str(), k.payload_bytes, name.c_str(), k.raw_bytes, name.c_str(),
               k.wire_bytes, name.c_str(), k.samples, name.c_str(),
               static_cast<long long>(k.series.size()) + k.extra_series);
    }
    printf("metrics_object_samples=%lld\nstatements_deltas=%lld\nstatements_texts=%lld\nstatements_text_bytes=%lld\n"
           "activity_groups=%lld\nmessages_outside_window=%lld\nfirst_ms=%lld\nlast_ms=%lld\n",
           object_samples, deltas, texts, text_bytes, groups, outside, first_ms, last_ms);
    std::string by_user;
    for (const auto &[user, n] : deltas_by_user) by_user += (by_user.empty() ? "" : " ") + user + ":" + std::to_string(n);
    printf("statements_deltas_by_user=%s\nmetrics_zstd_messages=%lld\n", by_user.c_str(), zstd_messages);
    printf("metrics_reference_messages=%lld\n", reference_messages);
    printf("metrics_keyframes=%zu\nmetrics_based_scrapes=%lld\nmetrics_unresolved_keyframes=%lld\n", keyframes.size(),
           based_scrapes, unresolved_keyframes);
    double values_collected = 0;
    for (const auto &[source, range] : collected) values_collected += range.second - range.first;
    printf("values_collected=%.0f\n", values_collected);
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    const char *url = nullptr, *mode = nullptr;
    long long from_ms = 0, to_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc) url = argv[++i];
        else if (!strcmp(argv[i], "--from-ms") && i + 1 < argc) from_ms = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--to-ms") && i + 1 < argc) to_ms = atoll(argv[++i]);
        else if (!strcmp(argv[i], "create") || !strcmp(argv[i], "count")) mode = argv[i];
        else return usage();
    }
    if (url == nullptr || mode == nullptr || (!strcmp(mode, "count") && to_ms <= from_ms)) return usage();
    natsConnection *nc = nullptr;
    jsCtx *js = nullptr;
    if (!connect(url, &nc, &js)) return 1;
    int rc = !strcmp(mode, "create") ? create(js) : count(js, from_ms, to_ms);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}

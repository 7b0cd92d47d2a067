/*
 * bench/ingest/fleet_load.cpp — load generator for pgfleet's ingest path: N simulated instances x M
 * series, published to JetStream exactly as pgfleet-agent publishes (subject
 * fleet.in.<ns>.<agent>.metrics, header Nats-Msg-Id <agent>:<boot>:<seq>, wire v1 Envelope with one
 * SeriesDecl per sample and one Scrape, like agent/batch.h), from templates recorded from a real agent.
 *
 * Templates (--templates FILE, written by bench/ingest/record-templates): one series per line,
 *   metric TAB kind TAB unit TAB labels TAB values
 * labels "name=value" joined by 0x1f (empty: none), values comma-separated, one per recording step.
 * Series j of an instance uses template j % T; replicas beyond the first T get an extra label
 * replica=<j / T> (a real agent has ~130 series; 1,000 need replicas). Value at tick k of instance i:
 * the template's value at step (k + 7 i) mod L; counters add one full template rise per wrap, so they
 * stay monotonic.
 *
 * Modes:
 *   (default) replay TICKS intervals as fast as possible, timestamps ending now (data in the recent past);
 *   --paced   publish in real time: every instance once per interval, spread over the interval
 *             (the sustained mode), for TICKS intervals.
 * Options: --url URL --instances N --series M --interval S --ticks K --templates FILE --agent-prefix P
 *          --boot B --namespace NS --max-pending N --end-ms MS (last timestamp; default now)
 *          --first-batch-seq Q (default 1: a new boot; more: the same boot going on)
 *          --sets agent|declare|known   how scrapes name their series (wire schema_minor 2):
 *             agent    (default) as pgfleet-agent does: declare the series set in full, wait for the
 *                      stream's acknowledgements, then name it by key alone; declare it again when
 *                      the last declaration is 10 minutes old (in the batches' own time);
 *             declare  every batch declares its series (an agent whose sets the centre never learns);
 *             known    like agent, for a boot that already declared its sets less than 10 minutes
 *                      before its first batch here (with --boot and --first-batch-seq: the same agents
 *                      going on after an earlier run).
 *          --keyframes on|off   (default on; wire schema_minor 3) as pgfleet-agent does, once a set is
 *                      named by key: every 5 minutes of batch time a tick is a keyframe, and once the
 *                      stream acknowledged it the following ticks are based on it (integral values as
 *                      differences to the keyframe's). Off: every scrape whole.
 * Prints key=value lines: messages, samples, payload_bytes, wire_bytes (payload + subject + NATS
 * header block), publish_seconds, failed.
 */
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nats/nats.h>

#include "core/wire_pack.h"
#include "fleet.pb.h"

namespace {

struct Template {
    std::string metric, unit;
    bool counter = false;
    std::vector<std::pair<std::string, std::string>> labels;
    std::vector<double> values;
};

std::atomic<long long> g_failed{0};

/* Waits (up to 120 s) until the stream acknowledged every batch published so far; what names them in
 * the message when it did not. */
bool wait_for_acks(jsCtx *js, const char *what)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    if (js_PublishAsyncComplete(js, &po) == NATS_OK) return true;
    fprintf(stderr, "fleet_load: the %s batches were not acknowledged\n", what);
    return false;
}

void on_pub_error(jsCtx *, jsPubAckErr *pae, void *)
{
    g_failed++;
    (void) pae;
}

std::vector<std::string> split(const std::string &s, char sep)
{
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) { out.push_back(cur); cur.clear(); }
        else cur += c;
    }
    out.push_back(cur);
    return out;
}

bool load_templates(const std::string &path, std::vector<Template> &out, size_t &len)
{
    std::ifstream in(path);
    if (!in) return false;
    std::string line;
    len = SIZE_MAX;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto f = split(line, '\t');
        if (f.size() != 5) continue;
        Template t;
        t.metric = f[0];
        t.counter = f[1] == "counter";
        t.unit = f[2];
        if (!f[3].empty())
            for (auto &kv : split(f[3], '\x1f')) {
                auto eq = kv.find('=');
                if (eq != std::string::npos) t.labels.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
            }
        for (auto &v : split(f[4], ',')) if (!v.empty()) t.values.push_back(strtod(v.c_str(), nullptr));
        if (t.values.size() < 2) continue;
        len = std::min(len, t.values.size());
        out.push_back(std::move(t));
    }
    return !out.empty();
}

long long now_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

} // namespace

int main(int argc, char **argv)
{
    std::string url = "nats://127.0.0.1:4222", templates_path, prefix = "bench", boot, ns = "default";
    long long instances = 1000, series = 1000, interval_s = 10, ticks = 6, max_pending = 2000, end_ms = 0, jitter_ms = 0;
    bool paced = false;
    bool dry_run = false; /* build and count the messages, publish nothing (wire size comparisons) */
    std::string wire_form = "zstd"; /* plain (schema_minor 0), packed, zstd (packed + zstd: what the agent sends) */
    std::string sets_mode = "agent";
    long long first_batch_seq = 1;
    bool keyframes = true;
    for (int i = 1; i < argc; i++) {
        std::string k = argv[i];
        if (k == "--paced") { paced = true; continue; }
        if (k == "--dry-run") { dry_run = true; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "fleet_load: %s needs a value\n", k.c_str()); return 2; }
        std::string v = argv[++i];
        if (k == "--url") url = v;
        else if (k == "--templates") templates_path = v;
        else if (k == "--agent-prefix") prefix = v;
        else if (k == "--boot") boot = v;
        else if (k == "--namespace") ns = v;
        else if (k == "--instances") instances = atoll(v.c_str());
        else if (k == "--series") series = atoll(v.c_str());
        else if (k == "--interval") interval_s = atoll(v.c_str());
        else if (k == "--ticks") ticks = atoll(v.c_str());
        else if (k == "--max-pending") max_pending = atoll(v.c_str());
        else if (k == "--end-ms") end_ms = atoll(v.c_str());
        else if (k == "--jitter-ms") jitter_ms = atoll(v.c_str());
        else if (k == "--wire") wire_form = v;
        else if (k == "--sets") sets_mode = v;
        else if (k == "--first-batch-seq") first_batch_seq = atoll(v.c_str());
        else if (k == "--keyframes") keyframes = v == "on";
        else { fprintf(stderr, "fleet_load: unknown option %s\n", k.c_str()); return 2; }
    }
    std::vector<Template> tpl;
    size_t len = 0;
    if (!load_templates(templates_path, tpl, len)) {
        fprintf(stderr, "fleet_load: no templates in '%s'\n", templates_path.c_str());
        return 2;
    }
    if (boot.empty()) boot = "b" + std::to_string(now_ms());

    natsConnection *nc = nullptr;
    jsCtx *js = nullptr;
    natsOptions *opts = nullptr;
    natsOptions_Create(&opts);
    natsOptions_SetURL(opts, url.c_str());
    natsOptions_SetMaxReconnect(opts, -1);
    natsOptions_SetReconnectWait(opts, 100);
    natsOptions_SetReconnectBufSize(opts, 64 * 1024 * 1024);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = max_pending;
    jo.PublishAsync.ErrHandler = on_pub_error;
    if (!dry_run && (natsConnection_Connect(&nc, opts) != NATS_OK || natsConnection_JetStream(&js, nc, &jo) != NATS_OK)) {
        fprintf(stderr, "fleet_load: cannot connect to %s\n", url.c_str());
        return 1;
    }

    const long long interval_ms = interval_s * 1000;
    if (end_ms == 0) end_ms = now_ms();
    const long long first_ts = paced ? 0 : end_ms - (ticks - 1) * interval_ms;
    long long messages = 0, samples = 0, payload_bytes = 0, wire_bytes = 0;
    pgfleet::wire::v1::Envelope env;
    std::string body;
    std::vector<std::string> subjects(instances), agents(instances);
    for (long long i = 0; i < instances; i++) {
        agents[i] = prefix + "-" + std::to_string(i);
        subjects[i] = "fleet.in." + ns + "." + agents[i] + ".metrics";
    }
    if (sets_mode != "agent" && sets_mode != "declare" && sets_mode != "known") {
        fprintf(stderr, "fleet_load: --sets must be agent, declare or known\n");
        return 2;
    }
    if (wire_form == "plain" && sets_mode != "declare") sets_mode = "declare"; /* schema_minor 0 has no set keys */
    /* every instance's scrape has the same series list: its key is computed once, from the first
     * declaring batch */
    bool key_computed = false;
    pgfleet::wire::SeriesSetKey set_key{};
    /* the batches' time when the last declaration was acknowledged (known: just before the first tick) */
    bool sets_known = sets_mode == "known";
    long long declared_ts = LLONG_MIN;
    long long references = 0, keyframe_scrapes = 0, based_scrapes = 0;
    /* keyframes: per instance the values and batch_seq of its last keyframe; the tick (batch time) it was
     * taken at, and whether the stream acknowledged it */
    std::vector<std::vector<double>> keyframe_values(static_cast<size_t>(instances));
    long long keyframe_ts = LLONG_MIN;
    uint64_t keyframe_seq = 0;
    bool keyframe_acked = false;
    const auto t0 = std::chrono::steady_clock::now();
    const long long wall0 = now_ms();
    for (long long k = 0; k < ticks; k++) {
        const long long tick_ts = paced ? wall0 + k * interval_ms : first_ts + k * interval_ms;
        if (sets_known && declared_ts == LLONG_MIN) declared_ts = tick_ts - interval_ms;
        const bool refer = sets_mode != "declare" && sets_known && tick_ts - declared_ts < 600000;
        /* like the agent: a keyframe when there is no acknowledged one younger than 5 minutes */
        const bool keyframe_usable = keyframe_acked && tick_ts - keyframe_ts < 300000;
        const bool keyframe_tick = keyframes && refer && wire_form != "plain" && !keyframe_usable;
        const bool based_tick = keyframes && refer && wire_form != "plain" && keyframe_usable;
        for (long long i = 0; i < instances; i++) {
            long long ts = first_ts + k * interval_ms;
            /* a real agent seals its scrape a few ms off the interval: a fixed pseudo-random offset per
             * (instance, interval) in 0..jitter_ms */
            if (jitter_ms > 0)
                ts += static_cast<long long>((static_cast<unsigned long long>(i * 1000003 + k) * 0x9E3779B97F4A7C15ULL >> 40) %
                                             static_cast<unsigned long long>(jitter_ms + 1));
            if (paced) {
                /* instance i publishes at offset i/N of each interval */
                long long due = wall0 + k * interval_ms + (interval_ms * i) / instances;
                long long wait = due - now_ms();
                if (wait > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait));
                ts = due;
            }
            env.Clear();
            env.set_schema_major(1);
            env.set_agent_id(agents[i]);
            env.set_boot_id(boot);
            env.set_batch_seq(static_cast<uint64_t>(k + first_batch_seq));
            env.set_namespace_(ns);
            env.set_created_unix_ms(ts);
            if (k == 0 && first_batch_seq == 1) {
                auto *inst = env.mutable_instance();
                inst->set_hostname("host-" + agents[i]);
                inst->set_server_version("15.8");
                inst->set_server_version_num(150008);
                inst->set_system_identifier(std::to_string(7300000000000000000LL + i));
                inst->set_port(5432);
            }
            auto *m = env.mutable_metrics();
            auto *scrape = m->add_scrapes();
            scrape->set_ts_unix_ms(ts);
            for (long long j = 0; j < series; j++) {
                const Template &t = tpl[j % tpl.size()];
                long long replica = j / static_cast<long long>(tpl.size());
                long long pos = k + 7 * i + j;
                size_t idx = static_cast<size_t>(pos % static_cast<long long>(len));
                double v = t.values[idx];
                if (t.counter) v += static_cast<double>(pos / static_cast<long long>(len)) * (t.values[len - 1] - t.values[0]);
                if (refer && key_computed) {
                    scrape->add_values(v);
                    continue;
                }
                auto *d = m->add_series();
                d->set_ref(static_cast<uint32_t>(j));
                d->set_metric(t.metric);
                d->set_kind(t.counter ? pgfleet::wire::v1::COUNTER : pgfleet::wire::v1::GAUGE);
                d->set_unit(t.unit);
                bool replica_done = replica == 0;
                for (auto &l : t.labels) {
                    if (!replica_done && l.first > "replica") {
                        auto *r = d->add_labels(); r->set_name("replica"); r->set_value(std::to_string(replica));
                        replica_done = true;
                    }
                    auto *lab = d->add_labels(); lab->set_name(l.first); lab->set_value(l.second);
                }
                if (!replica_done) { auto *r = d->add_labels(); r->set_name("replica"); r->set_value(std::to_string(replica)); }
                scrape->add_refs(static_cast<uint32_t>(j));
                scrape->add_values(v);
            }
            if (wire_form != "plain") {
                std::string error;
                if (!key_computed && !pgfleet::wire::scrape_set_key(*m, *scrape, set_key, error)) {
                    fprintf(stderr, "fleet_load: %s\n", error.c_str());
                    return 1;
                }
                key_computed = true;
                if (refer) {
                    if (scrape->refs_size() > 0) pgfleet::wire::make_references(*m, {set_key});
                    else scrape->set_set_key(set_key.bytes, sizeof set_key.bytes);
                    references++;
                } else {
                    scrape->set_set_key(set_key.bytes, sizeof set_key.bytes);
                }
            }
            std::vector<const std::vector<double> *> bases;
            if (keyframe_tick) {
                scrape->set_keyframe(true);
                keyframe_values[static_cast<size_t>(i)].assign(scrape->values().begin(), scrape->values().end());
                keyframe_scrapes++;
            } else if (based_tick) {
                scrape->set_base_seq(keyframe_seq);
                bases.push_back(&keyframe_values[static_cast<size_t>(i)]);
                based_scrapes++;
            }
            if (wire_form != "plain") {
                env.set_schema_minor(keyframe_tick || based_tick ? 3 : 2);
                pgfleet::wire::pack_metric_batch(*env.mutable_metrics(), bases.empty() ? nullptr : &bases);
                std::string error;
                if (wire_form == "zstd" && !pgfleet::wire::compress_metrics(env, 3, error)) {
                    fprintf(stderr, "fleet_load: %s\n", error.c_str());
                    return 1;
                }
            }
            env.SerializeToString(&body);
            std::string msg_id = agents[i] + ":" + boot + ":" + std::to_string(k + first_batch_seq);
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MsgId = msg_id.c_str();
            natsStatus s = NATS_OK;
            while (!dry_run && (s = js_PublishAsync(js, subjects[i].c_str(), body.data(), static_cast<int>(body.size()), &po)) != NATS_OK)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            messages++;
            samples += series;
            payload_bytes += static_cast<long long>(body.size());
            /* HPUB headers block: "NATS/1.0\r\n" + "Nats-Msg-Id: <id>\r\n" + "\r\n" */
            wire_bytes += static_cast<long long>(body.size() + subjects[i].size() + 10 + 13 + msg_id.size() + 2 + 2);
        }
        if (keyframe_tick) {
            /* like the agent, base later ticks only on an acknowledged keyframe */
            if (!dry_run && !wait_for_acks(js, "keyframe")) return 1;
            keyframe_acked = true;
            keyframe_ts = tick_ts;
            keyframe_seq = static_cast<uint64_t>(k + first_batch_seq);
        }
        if (sets_mode != "declare" && !refer) {
            /* this tick declared the sets: like the agent, name them by key only once the stream
             * acknowledged the declaring batches */
            if (!dry_run && !wait_for_acks(js, "declaring")) return 1;
            sets_known = true;
            declared_ts = tick_ts;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    natsStatus done = dry_run ? NATS_OK : js_PublishAsyncComplete(js, &po);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("references=%lld\nkeyframe_scrapes=%lld\nbased_scrapes=%lld\n", references, keyframe_scrapes, based_scrapes);
    printf("messages=%lld\nsamples=%lld\npayload_bytes=%lld\nwire_bytes=%lld\npublish_seconds=%.3f\nfailed=%lld\ncomplete=%s\nfirst_ts_ms=%lld\n",
           messages, samples, payload_bytes, wire_bytes, secs, g_failed.load(), done == NATS_OK ? "yes" : "no",
           paced ? wall0 : first_ts);
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    return done == NATS_OK && g_failed.load() == 0 ? 0 : 1;
}

/*
 * tests/tools/fleet_publish.cpp — a producer of known batches, for integration and fault tests.
 *
 * Publishes COUNT metric batches for one agent to JetStream, exactly as an agent would (subject,
 * Nats-Msg-Id, wire v1 Envelope), each batch with SERIES gauge series "test.value" {i="k"} and one scrape
 * whose timestamp is BASE_MS + seq * 1000 and whose values are seq * 1000 + k. Tests can therefore
 * compute in SQL exactly which samples must exist (count and checksum). Options:
 *   --url URL --namespace NS --agent ID --boot BOOT --first-seq N --count N --series N --base-ms MS
 *   --garbage-at SEQ   publish raw garbage instead of batch SEQ (a poison message; seq is skipped)
 *   --bad-port-at SEQ  batch SEQ claims instance port 4000000000: it decodes, but the database refuses
 *                      it (integer out of range, SQLSTATE 22003), so it must be dead-lettered
 *   --republish        publish each batch twice, with and without Nats-Msg-Id (duplicates on purpose)
 *   --references       every batch names its series set by key alone (wire schema_minor 2), as an agent
 *                      does once a batch declaring the set was acknowledged: the centre must find the
 *                      set declared by another batch (the same series: the same key)
 *   --keyframe-at SEQ  batch SEQ is a keyframe (wire schema_minor 3): the centre keeps it as a base
 *   --based-on N       every later batch is based on the keyframe of batch N (whose values the tool
 *                      knows: N * 1000 + k), so its values travel as differences (seq - N) * 1000;
 *                      the batches are packed, and carry their set key
 * Every publish waits for its PubAck (retrying for up to 30 s while the stream is unavailable), so
 * when the tool exits 0 every batch is in the stream.
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <nats/nats.h>

#include "core/wire_pack.h"
#include "fleet.pb.h"

namespace {

struct Options {
    std::string url = "nats://127.0.0.1:4222", ns = "default", agent = "test-agent", boot = "boot-1";
    long long first_seq = 1, count = 10, series = 3, base_ms = 1767225600000LL, garbage_at = -1, bad_port_at = -1,
              keyframe_at = -1, based_on = 0;
    bool republish = false, references = false;
};

/* Publishes one message with an optional Msg-Id, retrying until the stream acknowledges it. */
bool publish(jsCtx *js, const std::string &subject, const std::string &body, const std::string &msg_id)
{
    for (int attempt = 0; attempt < 300; attempt++) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 2000;
        if (!msg_id.empty())
            po.MsgId = msg_id.c_str();
        jsPubAck *ack = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        natsStatus s = js_Publish(&ack, js, subject.c_str(), body.data(), static_cast<int>(body.size()), &po, &jerr);
        if (ack != nullptr)
            jsPubAck_Destroy(ack);
        if (s == NATS_OK)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

} // namespace

int main(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; i += 2) {
        std::string k = argv[i];
        if (k == "--help" || k == "-h") {
            printf("usage: fleet_publish [--url URL] [--namespace NS] [--agent ID] [--boot BOOT] [--first-seq N]\n"
                   "  [--count N] [--series N] [--base-ms MS] [--garbage-at SEQ] [--bad-port-at SEQ] [--republish]\n"
                   "  [--references] [--keyframe-at SEQ] [--based-on SEQ]\n");
            return 0;
        }
        if (k == "--republish") { o.republish = true; i--; continue; }
        if (k == "--references") { o.references = true; i--; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "fleet_publish: option %s needs a value\n", k.c_str()); return 2; }
        std::string v = argv[i + 1];
        if (k == "--url") o.url = v;
        else if (k == "--namespace") o.ns = v;
        else if (k == "--agent") o.agent = v;
        else if (k == "--boot") o.boot = v;
        else if (k == "--first-seq") o.first_seq = atoll(v.c_str());
        else if (k == "--count") o.count = atoll(v.c_str());
        else if (k == "--series") o.series = atoll(v.c_str());
        else if (k == "--keyframe-at") o.keyframe_at = atoll(v.c_str());
        else if (k == "--based-on") o.based_on = atoll(v.c_str());
        else if (k == "--base-ms") o.base_ms = atoll(v.c_str());
        else if (k == "--garbage-at") o.garbage_at = atoll(v.c_str());
        else if (k == "--bad-port-at") o.bad_port_at = atoll(v.c_str());
        else { fprintf(stderr, "fleet_publish: unknown option %s\n", k.c_str()); return 2; }
    }
    natsConnection *nc = nullptr;
    jsCtx *js = nullptr;
    natsOptions *opts = nullptr;
    natsOptions_Create(&opts);
    natsOptions_SetURL(opts, o.url.c_str());
    natsOptions_SetMaxReconnect(opts, -1);
    natsOptions_SetReconnectWait(opts, 100);
    natsOptions_SetRetryOnFailedConnect(opts, true, nullptr, nullptr);
    if (natsConnection_Connect(&nc, opts) != NATS_OK || natsConnection_JetStream(&js, nc, nullptr) != NATS_OK) {
        fprintf(stderr, "fleet_publish: cannot connect to %s\n", o.url.c_str());
        return 1;
    }
    const std::string subject = "fleet.in." + o.ns + "." + o.agent + ".metrics";
    for (long long seq = o.first_seq; seq < o.first_seq + o.count; seq++) {
        std::string body;
        if (seq == o.garbage_at) {
            body = std::string("\xff\xfe not a protobuf envelope \x01\x02", 30);
        } else {
            pgfleet::wire::v1::Envelope env;
            env.set_schema_major(1);
            env.set_agent_id(o.agent);
            env.set_boot_id(o.boot);
            env.set_batch_seq(static_cast<uint64_t>(seq));
            env.set_namespace_(o.ns);
            env.set_created_unix_ms(o.base_ms + seq * 1000);
            if (seq == o.bad_port_at)
                env.mutable_instance()->set_port(4000000000u);
            if (seq == o.first_seq) {
                auto *inst = env.mutable_instance();
                inst->set_hostname("host-" + o.agent);
                inst->set_server_version("15.0");
                inst->set_system_identifier("7000000000000000001");
            }
            auto *m = env.mutable_metrics();
            auto *scrape = m->add_scrapes();
            scrape->set_ts_unix_ms(o.base_ms + seq * 1000);
            for (long long k = 0; k < o.series; k++) {
                auto *d = m->add_series();
                d->set_ref(static_cast<uint32_t>(k));
                d->set_metric("test.value");
                d->set_kind(pgfleet::wire::v1::GAUGE);
                auto *l = d->add_labels();
                l->set_name("i");
                l->set_value(std::to_string(k));
                scrape->add_refs(static_cast<uint32_t>(k));
                scrape->add_values(static_cast<double>(seq * 1000 + k));
            }
            const bool based = o.based_on > 0 && seq > o.based_on && seq != o.keyframe_at;
            if (o.references || based) {
                pgfleet::wire::SeriesSetKey key;
                std::string error;
                if (!pgfleet::wire::scrape_set_key(*m, *scrape, key, error)) {
                    fprintf(stderr, "fleet_publish: %s\n", error.c_str());
                    return 1;
                }
                if (o.references)
                    pgfleet::wire::make_references(*m, {key});
                else
                    scrape->set_set_key(key.bytes, sizeof key.bytes);
                env.set_schema_minor(2);
            }
            if (seq == o.keyframe_at) {
                scrape->set_keyframe(true);
                env.set_schema_minor(3);
            }
            if (based) {
                std::vector<double> keyframe;
                for (long long k = 0; k < o.series; k++)
                    keyframe.push_back(static_cast<double>(o.based_on * 1000 + k));
                std::vector<const std::vector<double> *> bases{&keyframe};
                scrape->set_base_seq(static_cast<uint64_t>(o.based_on));
                pgfleet::wire::pack_metric_batch(*m, &bases);
                env.set_schema_minor(3);
            }
            env.SerializeToString(&body);
        }
        std::string msg_id = o.agent + ":" + o.boot + ":" + std::to_string(seq);
        if (!publish(js, subject, body, msg_id) || (o.republish && !publish(js, subject, body, ""))) {
            fprintf(stderr, "fleet_publish: batch %lld not acknowledged within 30 s\n", seq);
            return 1;
        }
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    printf("fleet_publish: %lld batches published to %s\n", o.count, subject.c_str());
    return 0;
}

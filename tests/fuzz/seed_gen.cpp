/*
 * tests/fuzz/seed_gen.cpp — writes the fuzzer's seeds for the compact metric forms (wire schema_minor 1):
 * <dir>/seed-packed (packed values) and <dir>/seed-zstd (packed + zstd, what the agent sends), and for
 * the cold tier's formats: <dir>/seed-times (a window's time list) and <dir>/seed-group (a group of
 * series), built with the same core functions the agent and the server use, so the fuzzer starts from
 * valid frames it could not guess by mutation.
 */
#include <cstdio>
#include <fstream>
#include <string>

#include "core/chunk_codec.h"
#include "core/wire_pack.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_gen DIR\n");
        return 2;
    }
    namespace v1 = pgfleet::wire::v1;
    v1::Envelope e;
    e.set_schema_major(1);
    e.set_schema_minor(1);
    e.set_agent_id("a");
    e.set_boot_id("b1");
    e.set_batch_seq(1);
    e.set_namespace_("default");
    auto *m = e.mutable_metrics();
    const char *names[] = {"pg.database.xact_commit", "host.memory.used_bytes", "host.cpu.utilization"};
    for (uint32_t r = 0; r < 3; r++) {
        auto *d = m->add_series();
        d->set_ref(r);
        d->set_metric(names[r]);
        d->set_kind(r == 0 ? v1::COUNTER : v1::GAUGE);
        auto *l = d->add_labels();
        l->set_name("datname");
        l->set_value("app");
    }
    for (int k = 0; k < 3; k++) {
        auto *s = m->add_scrapes();
        s->set_ts_unix_ms(1767225600000LL + k * 10000 + k % 2);
        for (uint32_t r = 0; r < 3; r++) {
            s->add_refs(r);
            s->add_values(r == 2 ? 12.5 + k : 1000.0 * (r + 1) + 7 * k);
        }
    }
    pgfleet::wire::pack_metric_batch(*m);
    std::string bytes, error;
    e.SerializeToString(&bytes);
    std::ofstream(std::string(argv[1]) + "/seed-packed", std::ios::binary) << bytes;
    if (!pgfleet::wire::compress_metrics(e, 3, error)) {
        fprintf(stderr, "seed_gen: %s\n", error.c_str());
        return 1;
    }
    e.SerializeToString(&bytes);
    std::ofstream(std::string(argv[1]) + "/seed-zstd", std::ios::binary) << bytes;

    /* the cold tier's forms (core/chunk_codec.h): a jittery time list, and a group of a counter, a
     * decimal gauge with a gap, a float sum and a constant */
    std::vector<int64_t> times;
    for (int k = 0; k < 40; k++)
        times.push_back(1767225600000LL + k * 10000 + k % 3);
    std::vector<pgfleet::chunk::Column> columns(4);
    double sum = 5741.68;
    for (uint32_t k = 0; k < 40; k++) {
        sum += 1.07;
        const double values[4] = {1000.0 + 57 * k, k / 4.0, sum, 42};
        for (size_t c = 0; c < 4; c++) {
            if (c == 1 && k >= 10 && k < 15)
                continue;
            columns[c].series_id = static_cast<int64_t>(100 + c);
            columns[c].slots.push_back(k);
            columns[c].values.push_back(values[c]);
        }
    }
    if (!pgfleet::chunk::encode_times(times.data(), times.size(), bytes, error) ||
        !(std::ofstream(std::string(argv[1]) + "/seed-times", std::ios::binary) << bytes) ||
        !pgfleet::chunk::encode_group(times.size(), columns, bytes, error) ||
        !(std::ofstream(std::string(argv[1]) + "/seed-group", std::ios::binary) << bytes)) {
        fprintf(stderr, "seed_gen: %s\n", error.c_str());
        return 1;
    }
    return 0;
}

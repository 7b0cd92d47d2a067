/*
 * core/wire_json.cpp — JSON renderings of decoded envelopes (no JSON library: the shapes are fixed and
 * small, and every string goes through append_json_string).
 */
#include "core/pure.h"

#include <cmath>
#include <cstdio>

#include "core/wire.h"

namespace pgfleet::wire {

namespace {

/* Appends "name": to out, preceded by a comma unless first. */
void key(std::string &out, const char *name, bool &first)
{
    if (!first)
        out.push_back(',');
    first = false;
    append_json_string(out, name);
    out.push_back(':');
}

/* Appends a double as JSON; non-finite values become strings ("NaN", "Infinity"). */
void append_double(std::string &out, double v)
{
    if (std::isnan(v)) {
        out += "\"NaN\"";
    } else if (std::isinf(v)) {
        out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    } else {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%.17g", v);
        out += buf;
    }
}

} // namespace

std::string instance_to_json(const InstanceInfo &i)
{
    std::string out = "{";
    if (i.present) {
        bool first = true;
        key(out, "system_identifier", first);
        append_json_string(out, i.system_identifier);
        key(out, "server_version", first);
        append_json_string(out, i.server_version);
        key(out, "server_version_num", first);
        out += std::to_string(i.server_version_num);
        key(out, "hostname", first);
        append_json_string(out, i.hostname);
        key(out, "data_directory", first);
        append_json_string(out, i.data_directory);
        key(out, "in_recovery", first);
        out += i.in_recovery ? "true" : "false";
        key(out, "postmaster_start_unix_ms", first);
        out += std::to_string(i.postmaster_start_unix_ms);
        key(out, "port", first);
        out += std::to_string(i.port);
    }
    out.push_back('}');
    return out;
}

std::string envelope_to_json(const Envelope &e)
{
    std::string out = "{";
    bool first = true;
    key(out, "schema_major", first);
    out += std::to_string(e.schema_major);
    key(out, "schema_minor", first);
    out += std::to_string(e.schema_minor);
    key(out, "agent_id", first);
    append_json_string(out, e.agent_id);
    key(out, "namespace", first);
    append_json_string(out, e.namespace_name);
    key(out, "boot_id", first);
    append_json_string(out, e.boot_id);
    key(out, "batch_seq", first);
    out += std::to_string(e.batch_seq);
    key(out, "created_unix_ms", first);
    out += std::to_string(e.created_unix_ms);
    key(out, "kind", first);
    append_json_string(out, payload_kind_subject(e.kind));
    if (e.kind != PayloadKind::Metrics && !e.payload_json.empty()) {
        key(out, "payload", first);
        out += e.payload_json;
    }
    if (e.instance.present) {
        key(out, "instance", first);
        out += instance_to_json(e.instance);
    }
    if (e.kind == PayloadKind::Metrics) {
        key(out, "series", first);
        out.push_back('[');
        for (size_t i = 0; i < e.metrics.series.size(); i++) {
            const SeriesDecl &s = e.metrics.series[i];
            if (i > 0)
                out.push_back(',');
            bool f = true;
            out.push_back('{');
            key(out, "metric", f);
            append_json_string(out, s.metric);
            key(out, "kind", f);
            append_json_string(out, s.kind);
            key(out, "unit", f);
            append_json_string(out, s.unit);
            key(out, "labels", f);
            out += s.labels_json;
            out.push_back('}');
        }
        out.push_back(']');
        key(out, "samples", first);
        out.push_back('[');
        for (size_t i = 0; i < e.metrics.sample_value.size(); i++) {
            if (i > 0)
                out.push_back(',');
            out.push_back('[');
            out += std::to_string(e.metrics.sample_series[i]);
            out.push_back(',');
            out += std::to_string(e.metrics.sample_ts_unix_ms[i]);
            out.push_back(',');
            append_double(out, e.metrics.sample_value[i]);
            out.push_back(']');
        }
        out.push_back(']');
        /* per scrape: where its samples end, its series-set key, whether it only refers to the set, and
         * whether it is a keyframe or based on one */
        key(out, "scrapes", first);
        out.push_back('[');
        static const char hex[] = "0123456789abcdef";
        for (size_t k = 0; k < e.metrics.scrape_end.size(); k++) {
            if (k > 0)
                out.push_back(',');
            out += "{\"end\":" + std::to_string(e.metrics.scrape_end[k]) + ",\"set_key\":\"";
            for (uint8_t b : e.metrics.scrape_key[k].bytes) {
                out.push_back(hex[b >> 4]);
                out.push_back(hex[b & 15]);
            }
            out += e.metrics.scrape_is_reference[k] ? "\",\"reference\":true" : "\",\"reference\":false";
            /* schema_minor 3: a based scrape's values shown as the differences they are until applied */
            if (k < e.metrics.scrape_is_keyframe.size() && e.metrics.scrape_is_keyframe[k])
                out += ",\"keyframe\":true";
            if (k < e.metrics.scrape_base_seq.size() && e.metrics.scrape_base_seq[k] != 0)
                out += ",\"base_seq\":" + std::to_string(e.metrics.scrape_base_seq[k]);
            out.push_back('}');
        }
        out.push_back(']');
    }
    out.push_back('}');
    return out;
}

} // namespace pgfleet::wire

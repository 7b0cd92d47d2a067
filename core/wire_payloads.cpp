/*
 * core/wire_payloads.cpp — the low-volume payload kinds (statements, activity, inventory, events,
 * command results): checked, then rendered as one JSON object each, which the SQL layer unpacks with
 * jsonb_to_recordset. Every string must be text PostgreSQL can store (well-formed UTF-8, no NUL);
 * non-finite doubles become null (jsonb has no NaN). Limits bound what one message can make us do.
 */
#include "core/pure.h"

#include <cmath>
#include <cstdio>
#include <type_traits>

#include "core/wire_payloads.h"

namespace pgfleet::wire {

namespace {

constexpr size_t kMaxRows = 1u << 20;          /* deltas, groups, settings, events per batch */
constexpr size_t kMaxQueryBytes = 1u << 20;    /* one statement text */
constexpr size_t kMaxShortText = 64u << 10;    /* names, messages, setting values */

/* Appends one JSON object, field by field, to a string. */
class JsonObject {
public:
    explicit JsonObject(std::string &out) : out_(out) { out_.push_back('{'); }
    void text(const char *key, std::string_view v) { next(key); append_json_string(out_, v); }
    void integer(const char *key, int64_t v) { next(key); out_ += std::to_string(v); }
    void unsigned_integer(const char *key, uint64_t v) { next(key); out_ += std::to_string(v); }
    void boolean(const char *key, bool v) { next(key); out_ += v ? "true" : "false"; }
    void number(const char *key, double v)
    {
        next(key);
        if (!std::isfinite(v)) {
            out_ += "null";
            return;
        }
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%.17g", v);
        out_ += buf;
    }
    /* Starts a nested value (array or object) under key; the caller writes it. */
    std::string &raw(const char *key) { next(key); return out_; }
    void close() { out_.push_back('}'); }

private:
    void next(const char *key)
    {
        if (!first_)
            out_.push_back(',');
        first_ = false;
        append_json_string(out_, key);
        out_.push_back(':');
    }
    std::string &out_;
    bool first_ = true;
};

/* Checks a string field: valid text, at most max bytes. */
bool ok_text(const std::string &s, size_t max = kMaxShortText)
{
    return s.size() <= max && is_valid_text(s);
}

DecodeStatus bad(const char *kind, const std::string &why)
{
    return DecodeStatus::failure(std::string("invalid ") + kind, why);
}

/* Renders a map<K, string> as a JSON object with string keys; checks the values. */
template <typename Map>
bool append_string_map(std::string &out, const Map &map)
{
    out.push_back('{');
    bool first = true;
    for (const auto &[k, v] : map) {
        std::string key;
        if constexpr (std::is_same_v<std::decay_t<decltype(k)>, std::string>)
            key = k;
        else
            key = std::to_string(k);
        if (!ok_text(key) || !ok_text(v))
            return false;
        if (!first)
            out.push_back(',');
        first = false;
        append_json_string(out, key);
        out.push_back(':');
        append_json_string(out, v);
    }
    out.push_back('}');
    return true;
}

} // namespace

DecodeStatus statements_to_json(const v1::StatementBatch &in, std::string &out)
{
    if (static_cast<size_t>(in.deltas_size()) > kMaxRows || static_cast<size_t>(in.texts_size()) > kMaxRows)
        return DecodeStatus::failure("too large", "a statements batch has more than 1048576 entries");
    if (in.interval_end_unix_ms() < in.interval_start_unix_ms())
        return bad("statements", "the interval ends before it starts");
    out.clear();
    JsonObject o(out);
    o.integer("interval_start_ms", in.interval_start_unix_ms());
    o.integer("interval_end_ms", in.interval_end_unix_ms());
    o.boolean("stats_reset", in.stats_reset());
    std::string &texts = o.raw("texts");
    texts.push_back('[');
    for (int i = 0; i < in.texts_size(); i++) {
        const auto &t = in.texts(i);
        if (!ok_text(t.query(), kMaxQueryBytes))
            return bad("statements", "the text of query " + std::to_string(t.queryid()) + " is not valid text");
        if (i > 0)
            texts.push_back(',');
        JsonObject e(texts);
        e.integer("queryid", t.queryid());
        e.text("query", t.query());
        e.close();
    }
    texts.push_back(']');
    std::string &deltas = o.raw("deltas");
    deltas.push_back('[');
    for (int i = 0; i < in.deltas_size(); i++) {
        const auto &d = in.deltas(i);
        if (d.calls() < 0 || d.rows() < 0 || d.total_exec_time_ms() < 0)
            return bad("statements", "a delta of query " + std::to_string(d.queryid()) + " is negative");
        if (i > 0)
            deltas.push_back(',');
        JsonObject e(deltas);
        e.unsigned_integer("dbid", d.dbid());
        e.unsigned_integer("userid", d.userid());
        e.integer("queryid", d.queryid());
        e.boolean("toplevel", d.toplevel());
        e.integer("calls", d.calls());
        e.number("total_exec_time_ms", d.total_exec_time_ms());
        e.number("total_plan_time_ms", d.total_plan_time_ms());
        e.integer("rows", d.rows());
        e.integer("shared_blks_hit", d.shared_blks_hit());
        e.integer("shared_blks_read", d.shared_blks_read());
        e.integer("shared_blks_dirtied", d.shared_blks_dirtied());
        e.integer("shared_blks_written", d.shared_blks_written());
        e.integer("local_blks_hit", d.local_blks_hit());
        e.integer("local_blks_read", d.local_blks_read());
        e.integer("temp_blks_read", d.temp_blks_read());
        e.integer("temp_blks_written", d.temp_blks_written());
        e.number("blk_read_time_ms", d.blk_read_time_ms());
        e.number("blk_write_time_ms", d.blk_write_time_ms());
        e.integer("wal_records", d.wal_records());
        e.integer("wal_fpi", d.wal_fpi());
        e.unsigned_integer("wal_bytes", d.wal_bytes());
        e.boolean("reset", d.reset());
        e.close();
    }
    deltas.push_back(']');
    if (!append_string_map(o.raw("databases"), in.database_names()) || !append_string_map(o.raw("users"), in.user_names()))
        return bad("statements", "a database or user name is not valid text");
    o.close();
    return DecodeStatus::success();
}

DecodeStatus activity_to_json(const v1::ActivityBatch &in, std::string &out)
{
    if (static_cast<size_t>(in.groups_size()) > kMaxRows || static_cast<size_t>(in.blocking_size()) > kMaxRows)
        return DecodeStatus::failure("too large", "an activity batch has more than 1048576 entries");
    if (in.interval_end_unix_ms() < in.interval_start_unix_ms())
        return bad("activity", "the interval ends before it starts");
    if (in.samples_taken() == 0 && in.groups_size() > 0)
        return bad("activity", "groups were sent but no sample was taken");
    out.clear();
    JsonObject o(out);
    o.integer("interval_start_ms", in.interval_start_unix_ms());
    o.integer("interval_end_ms", in.interval_end_unix_ms());
    o.unsigned_integer("samples_taken", in.samples_taken());
    o.number("longest_transaction_seconds", in.longest_transaction_seconds());
    o.number("longest_idle_in_transaction_seconds", in.longest_idle_in_transaction_seconds());
    std::string &groups = o.raw("groups");
    groups.push_back('[');
    for (int i = 0; i < in.groups_size(); i++) {
        const auto &g = in.groups(i);
        for (const std::string *t : {&g.state(), &g.wait_event_type(), &g.wait_event(), &g.backend_type(), &g.datname(),
                                     &g.usename(), &g.application_name()})
            if (!ok_text(*t))
                return bad("activity", "a group has a field that is not valid text");
        if (i > 0)
            groups.push_back(',');
        JsonObject e(groups);
        e.text("state", g.state());
        e.text("wait_event_type", g.wait_event_type());
        e.text("wait_event", g.wait_event());
        e.integer("queryid", g.queryid());
        e.text("backend_type", g.backend_type());
        e.text("datname", g.datname());
        e.text("usename", g.usename());
        e.text("application_name", g.application_name());
        e.unsigned_integer("observations", g.observations());
        e.close();
    }
    groups.push_back(']');
    std::string &blocking = o.raw("blocking");
    blocking.push_back('[');
    for (int i = 0; i < in.blocking_size(); i++) {
        const auto &b = in.blocking(i);
        if (i > 0)
            blocking.push_back(',');
        JsonObject e(blocking);
        e.integer("blocked_pid", b.blocked_pid());
        e.integer("blocking_pid", b.blocking_pid());
        e.integer("blocked_queryid", b.blocked_queryid());
        e.integer("blocking_queryid", b.blocking_queryid());
        e.number("blocked_seconds", b.blocked_seconds());
        e.close();
    }
    blocking.push_back(']');
    o.close();
    return DecodeStatus::success();
}

DecodeStatus inventory_to_json(const v1::Inventory &in, std::string &out)
{
    if (static_cast<size_t>(in.settings_size()) > kMaxRows || static_cast<size_t>(in.databases_size()) > kMaxRows)
        return DecodeStatus::failure("too large", "an inventory has more than 1048576 entries");
    out.clear();
    JsonObject o(out);
    o.boolean("full", in.full());
    std::string &settings = o.raw("settings");
    settings.push_back('[');
    for (int i = 0; i < in.settings_size(); i++) {
        const auto &s = in.settings(i);
        if (s.name().empty() || !ok_text(s.name()) || !ok_text(s.setting()) || !ok_text(s.unit()) || !ok_text(s.source()))
            return bad("inventory", "a setting has a field that is not valid text");
        if (i > 0)
            settings.push_back(',');
        JsonObject e(settings);
        e.text("name", s.name());
        e.text("setting", s.setting());
        e.text("unit", s.unit());
        e.text("source", s.source());
        e.boolean("pending_restart", s.pending_restart());
        e.close();
    }
    settings.push_back(']');
    if (!append_string_map(o.raw("extensions"), in.extensions()))
        return bad("inventory", "an extension name or version is not valid text");
    std::string &dbs = o.raw("databases");
    dbs.push_back('[');
    for (int i = 0; i < in.databases_size(); i++) {
        if (!ok_text(in.databases(i)))
            return bad("inventory", "a database name is not valid text");
        if (i > 0)
            dbs.push_back(',');
        append_json_string(dbs, in.databases(i));
    }
    dbs.push_back(']');
    o.close();
    return DecodeStatus::success();
}

DecodeStatus events_to_json(const v1::EventBatch &in, std::string &out)
{
    if (static_cast<size_t>(in.events_size()) > kMaxRows)
        return DecodeStatus::failure("too large", "an events batch has more than 1048576 events");
    out.clear();
    JsonObject o(out);
    std::string &events = o.raw("events");
    events.push_back('[');
    for (int i = 0; i < in.events_size(); i++) {
        const auto &ev = in.events(i);
        if (ev.kind().empty() || !ok_text(ev.kind()) || !ok_text(ev.message()))
            return bad("events", "an event has no kind or a field that is not valid text");
        if (ev.severity() != "info" && ev.severity() != "warning" && ev.severity() != "error")
            return bad("events", "event severity must be info, warning or error, not \"" + to_valid_text(ev.severity()) + "\"");
        if (i > 0)
            events.push_back(',');
        JsonObject e(events);
        e.integer("ts_ms", ev.ts_unix_ms());
        e.text("kind", ev.kind());
        e.text("severity", ev.severity());
        e.text("message", ev.message());
        if (!append_string_map(e.raw("attributes"), ev.attributes()))
            return bad("events", "an event attribute is not valid text");
        e.close();
    }
    events.push_back(']');
    o.close();
    return DecodeStatus::success();
}

DecodeStatus result_to_json(const v1::CommandResult &in, std::string &out)
{
    if (in.command_id().empty() || !ok_text(in.command_id(), 128) || !ok_text(in.kind()) || !ok_text(in.message()))
        return bad("result", "a command result needs a command_id, and its fields must be valid text");
    out.clear();
    JsonObject o(out);
    o.text("command_id", in.command_id());
    o.text("kind", in.kind());
    o.boolean("ok", in.ok());
    o.text("message", in.message());
    if (!append_string_map(o.raw("output"), in.output()))
        return bad("result", "a command output entry is not valid text");
    o.integer("started_ms", in.started_unix_ms());
    o.integer("finished_ms", in.finished_unix_ms());
    o.close();
    return DecodeStatus::success();
}

} // namespace pgfleet::wire

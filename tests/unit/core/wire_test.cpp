/*
 * tests/unit/core/wire_test.cpp — the wire decoder: round trips, every validation rule, hostile input.
 */
#include "core/wire.h"

#include <random>

#include <gtest/gtest.h>

#include "fleet.pb.h"

namespace v1 = pgfleet::wire::v1;
using pgfleet::wire::DecodeStatus;
using pgfleet::wire::Envelope;

namespace {

constexpr int64_t kTs = 1767225600000LL; /* 2026-01-01 */

/* A valid envelope with two series (one with labels given out of order) and two scrapes. */
v1::Envelope valid_envelope()
{
    v1::Envelope e;
    e.set_schema_major(1);
    e.set_agent_id("agent-1");
    e.set_boot_id("boot");
    e.set_batch_seq(7);
    e.set_namespace_("default");
    e.set_created_unix_ms(kTs);
    auto *m = e.mutable_metrics();
    auto *a = m->add_series();
    a->set_ref(40);
    a->set_metric("pg.database.xact_commit");
    a->set_kind(v1::COUNTER);
    auto *l2 = a->add_labels();
    l2->set_name("zone");
    l2->set_value("eu \"west\"");
    auto *l1 = a->add_labels();
    l1->set_name("datname");
    l1->set_value("app");
    auto *b = m->add_series();
    b->set_ref(3);
    b->set_metric("host.memory.used_bytes");
    b->set_kind(v1::GAUGE);
    b->set_unit("bytes");
    for (int k = 0; k < 2; k++) {
        auto *s = m->add_scrapes();
        s->set_ts_unix_ms(kTs + k * 10000);
        s->add_refs(40);
        s->add_values(100 + k);
        s->add_refs(3);
        s->add_values(4096.5 + k);
    }
    return e;
}

/* Serializes and decodes; returns the status. */
DecodeStatus decode(const v1::Envelope &e, Envelope &out)
{
    std::string bytes;
    e.SerializeToString(&bytes);
    return pgfleet::wire::decode_envelope(bytes.data(), bytes.size(), out);
}

/* Expects decoding to fail with the given reason. */
void expect_rejected(const v1::Envelope &e, const std::string &reason)
{
    Envelope out;
    DecodeStatus st = decode(e, out);
    EXPECT_FALSE(st.ok);
    EXPECT_EQ(st.reason, reason) << st.detail;
    EXPECT_FALSE(st.detail.empty());
}

} // namespace

TEST(WireDecode, RoundTripKeepsEverything)
{
    Envelope out;
    DecodeStatus st = decode(valid_envelope(), out);
    ASSERT_TRUE(st.ok) << st.reason << ": " << st.detail;
    EXPECT_EQ(out.agent_id, "agent-1");
    EXPECT_EQ(out.batch_seq, 7u);
    EXPECT_EQ(out.namespace_name, "default");
    EXPECT_FALSE(out.instance.present);
    ASSERT_EQ(out.metrics.series.size(), 2u);
    EXPECT_EQ(out.metrics.series[0].kind, "counter");
    EXPECT_EQ(out.metrics.series[0].labels_json, "{\"datname\":\"app\",\"zone\":\"eu \\\"west\\\"\"}");
    EXPECT_EQ(out.metrics.series[1].labels_json, "{}");
    EXPECT_EQ(out.metrics.series[1].unit, "bytes");
    ASSERT_EQ(out.metrics.sample_value.size(), 4u);
    /* refs 40 and 3 map to the series' positions 0 and 1 */
    EXPECT_EQ(out.metrics.sample_series, (std::vector<int32_t>{0, 1, 0, 1}));
    EXPECT_EQ(out.metrics.sample_ts_unix_ms, (std::vector<int64_t>{kTs, kTs, kTs + 10000, kTs + 10000}));
    EXPECT_EQ(out.metrics.sample_value, (std::vector<double>{100, 4096.5, 101, 4097.5}));
}

TEST(WireDecode, InstanceFactsArePassedOn)
{
    v1::Envelope e = valid_envelope();
    e.mutable_instance()->set_hostname("db1");
    e.mutable_instance()->set_server_version_num(150020);
    Envelope out;
    ASSERT_TRUE(decode(e, out).ok);
    EXPECT_TRUE(out.instance.present);
    EXPECT_EQ(out.instance.hostname, "db1");
    std::string json = pgfleet::wire::instance_to_json(out.instance);
    EXPECT_NE(json.find("\"hostname\":\"db1\""), std::string::npos);
    EXPECT_NE(json.find("\"server_version_num\":150020"), std::string::npos);
}

TEST(WireDecode, RejectsUnknownMajorVersion)
{
    v1::Envelope e = valid_envelope();
    e.set_schema_major(2);
    expect_rejected(e, "unsupported schema version");
}

TEST(WireDecode, RejectsBadIdentifiers)
{
    v1::Envelope e = valid_envelope();
    e.set_agent_id("a.b");
    expect_rejected(e, "invalid envelope");
    e = valid_envelope();
    e.set_namespace_("");
    expect_rejected(e, "invalid envelope");
    e = valid_envelope();
    e.set_boot_id("");
    expect_rejected(e, "invalid envelope");
    e = valid_envelope();
    e.set_batch_seq(0);
    expect_rejected(e, "invalid envelope");
}

TEST(WireDecode, RejectsBadSeries)
{
    v1::Envelope e = valid_envelope();
    e.mutable_metrics()->mutable_series(1)->set_ref(40);
    expect_rejected(e, "invalid series");
    e = valid_envelope();
    e.mutable_metrics()->mutable_series(0)->set_metric("Bad Name");
    expect_rejected(e, "invalid series");
    e = valid_envelope();
    e.mutable_metrics()->mutable_series(0)->set_kind(v1::METRIC_KIND_UNSPECIFIED);
    expect_rejected(e, "invalid series");
    e = valid_envelope();
    e.mutable_metrics()->mutable_series(0)->mutable_labels(0)->set_name("datname");
    expect_rejected(e, "invalid series"); /* two labels named datname */
    e = valid_envelope();
    e.mutable_metrics()->mutable_series(0)->mutable_labels(0)->set_value(std::string("\xc3\x28", 2));
    expect_rejected(e, "malformed protobuf"); /* invalid UTF-8: proto3 refuses it while parsing */
    e = valid_envelope();
    e.mutable_metrics()->mutable_series(0)->mutable_labels(0)->set_value(std::string("a\0b", 3));
    expect_rejected(e, "invalid series"); /* NUL cannot be stored as text */
}

TEST(WireDecode, RejectsBadScrapes)
{
    v1::Envelope e = valid_envelope();
    e.mutable_metrics()->mutable_scrapes(0)->add_refs(99);
    expect_rejected(e, "invalid scrape"); /* refs and values differ in length */
    e.mutable_metrics()->mutable_scrapes(0)->add_values(1);
    expect_rejected(e, "invalid scrape"); /* ref 99 was never declared */
    e = valid_envelope();
    e.mutable_metrics()->mutable_scrapes(1)->set_ts_unix_ms(5);
    expect_rejected(e, "invalid scrape");
}

TEST(WireDecode, RejectsMissingPayload)
{
    v1::Envelope e = valid_envelope();
    e.clear_metrics();
    expect_rejected(e, "unknown payload");
}

TEST(WireDecode, GarbageNeverCrashesAndIsRefused)
{
    std::mt19937 rng(12345);
    int refused = 0;
    for (int i = 0; i < 20000; i++) {
        std::string bytes(rng() % 64, '\0');
        for (auto &c : bytes)
            c = static_cast<char>(rng());
        Envelope out;
        if (!pgfleet::wire::decode_envelope(bytes.data(), bytes.size(), out).ok)
            refused++;
    }
    EXPECT_EQ(refused, 20000); /* random bytes never make a valid envelope with agent, boot, seq, payload */
}

TEST(WireDecode, EveryTruncationIsHandled)
{
    std::string bytes;
    valid_envelope().SerializeToString(&bytes);
    for (size_t len = 0; len < bytes.size(); len++) {
        Envelope out;
        DecodeStatus st = pgfleet::wire::decode_envelope(bytes.data(), len, out);
        if (st.ok) /* a prefix may happen to be valid protobuf; it must then be fully valid */
            EXPECT_EQ(out.metrics.sample_series.size(), out.metrics.sample_value.size());
        else
            EXPECT_FALSE(st.reason.empty());
    }
}

TEST(WireSubject, ParsesAndChecks)
{
    pgfleet::wire::Subject s;
    ASSERT_TRUE(pgfleet::wire::parse_subject("fleet.in.default.agent-1.metrics", s).ok);
    EXPECT_EQ(s.namespace_name, "default");
    EXPECT_EQ(s.agent_id, "agent-1");
    EXPECT_EQ(s.kind, "metrics");
    EXPECT_FALSE(pgfleet::wire::parse_subject("fleet.in.default.agent-1", s).ok);
    EXPECT_FALSE(pgfleet::wire::parse_subject("fleet.in.default.agent-1.metrics.x", s).ok);
    EXPECT_FALSE(pgfleet::wire::parse_subject("fleet.out.default.agent-1.metrics", s).ok);
    EXPECT_FALSE(pgfleet::wire::parse_subject("fleet.in..agent-1.metrics", s).ok);

    Envelope out;
    ASSERT_TRUE(decode(valid_envelope(), out).ok);
    ASSERT_TRUE(pgfleet::wire::parse_subject("fleet.in.default.agent-1.metrics", s).ok);
    EXPECT_TRUE(pgfleet::wire::check_subject(s, out).ok);
    ASSERT_TRUE(pgfleet::wire::parse_subject("fleet.in.default.agent-2.metrics", s).ok);
    EXPECT_EQ(pgfleet::wire::check_subject(s, out).reason, "subject mismatch"); /* agent 2 speaking as agent 1 */
    ASSERT_TRUE(pgfleet::wire::parse_subject("fleet.in.default.agent-1.logs", s).ok);
    EXPECT_EQ(pgfleet::wire::check_subject(s, out).reason, "subject mismatch");
}

TEST(WireText, ValidTextAndJsonEscaping)
{
    EXPECT_EQ(pgfleet::wire::to_valid_text("ok \xc3\xa9"), "ok \xc3\xa9");
    EXPECT_EQ(pgfleet::wire::to_valid_text(std::string("a\xff" "b\0c", 5)), "a?b?c");
    EXPECT_EQ(pgfleet::wire::to_valid_text("\xed\xa0\x80"), "???"); /* a UTF-16 surrogate is not UTF-8 */
    EXPECT_EQ(pgfleet::wire::to_valid_text("\xc0\xaf"), "??");      /* overlong */
    std::string json;
    pgfleet::wire::append_json_string(json, "q\"b\\n\n\x01");
    EXPECT_EQ(json, "\"q\\\"b\\\\n\\n\\u0001\"");
}

TEST(WireJson, EnvelopeRendering)
{
    Envelope out;
    ASSERT_TRUE(decode(valid_envelope(), out).ok);
    std::string json = pgfleet::wire::envelope_to_json(out);
    EXPECT_NE(json.find("\"batch_seq\":7"), std::string::npos);
    EXPECT_NE(json.find("[1,1767225600000,4096.5]"), std::string::npos);
}

TEST(WirePayloads, StatementsBecomeJson)
{
    v1::Envelope e = valid_envelope();
    auto *st = e.mutable_statements(); /* replaces the metrics payload (oneof) */
    st->set_interval_start_unix_ms(kTs);
    st->set_interval_end_unix_ms(kTs + 10000);
    auto *t = st->add_texts();
    t->set_queryid(-7);
    t->set_query("SELECT \"x\" FROM t WHERE a = $1");
    auto *d = st->add_deltas();
    d->set_queryid(-7);
    d->set_calls(3);
    d->set_total_exec_time_ms(std::nan(""));
    (*st->mutable_database_names())[5] = "app";
    Envelope out;
    /* the Envelope is reused, as the ingest worker does: a metrics message first, then the statements */
    ASSERT_TRUE(decode(valid_envelope(), out).ok);
    ASSERT_FALSE(out.metrics.sample_value.empty());
    DecodeStatus s = decode(e, out);
    ASSERT_TRUE(s.ok) << s.detail;
    EXPECT_EQ(out.kind, pgfleet::wire::PayloadKind::Statements);
    EXPECT_TRUE(out.metrics.series.empty());
    EXPECT_TRUE(out.metrics.sample_value.empty()) << "nothing of the earlier metrics message shows through";
    EXPECT_TRUE(out.metrics.scrape_end.empty());
    EXPECT_NE(out.payload_json.find("\"query\":\"SELECT \\\"x\\\" FROM t WHERE a = $1\""), std::string::npos);
    EXPECT_NE(out.payload_json.find("\"total_exec_time_ms\":null"), std::string::npos); /* jsonb has no NaN */
    EXPECT_NE(out.payload_json.find("\"databases\":{\"5\":\"app\"}"), std::string::npos);
    pgfleet::wire::Subject subject;
    ASSERT_TRUE(pgfleet::wire::parse_subject("fleet.in.default.agent-1.statements", subject).ok);
    EXPECT_TRUE(pgfleet::wire::check_subject(subject, out).ok);
    ASSERT_TRUE(pgfleet::wire::parse_subject("fleet.in.default.agent-1.metrics", subject).ok);
    EXPECT_FALSE(pgfleet::wire::check_subject(subject, out).ok); /* statements on the metrics subject */
}

TEST(WirePayloads, InvalidPayloadsAreRefused)
{
    v1::Envelope e = valid_envelope();
    e.mutable_statements()->set_interval_start_unix_ms(kTs + 1);
    e.mutable_statements()->set_interval_end_unix_ms(kTs);
    expect_rejected(e, "invalid statements");
    e = valid_envelope();
    e.mutable_statements()->add_deltas()->set_calls(-1);
    expect_rejected(e, "invalid statements");
    e = valid_envelope();
    auto *ev = e.mutable_events()->add_events();
    ev->set_kind("spool.dropped");
    ev->set_severity("fatal");
    expect_rejected(e, "invalid events");
    e = valid_envelope();
    e.mutable_result()->set_kind("ping");
    expect_rejected(e, "invalid result"); /* no command_id */
    e = valid_envelope();
    e.mutable_activity()->add_groups()->set_state("active");
    expect_rejected(e, "invalid activity"); /* groups but no sample taken */
    e = valid_envelope();
    e.mutable_inventory()->add_settings()->set_setting("x");
    expect_rejected(e, "invalid inventory"); /* a setting without a name */
    e = valid_envelope();
    e.mutable_result()->set_command_id("c");
    e.mutable_result()->set_message(std::string("a\0b", 3));
    expect_rejected(e, "invalid result"); /* NUL cannot be stored */
}

#include "core/jetstream.h"

TEST(NatsUrl, CredentialsAreRedacted)
{
    EXPECT_EQ(pgfleet::js::redacted_url("nats://ingest:s3cret@127.0.0.1:4222"), "nats://***@127.0.0.1:4222");
    EXPECT_EQ(pgfleet::js::redacted_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    EXPECT_EQ(pgfleet::js::redacted_url("nats://host:1/path@x"), "nats://host:1/path@x");
    EXPECT_EQ(pgfleet::js::redacted_url("user:pw@host"), "***@host");
}

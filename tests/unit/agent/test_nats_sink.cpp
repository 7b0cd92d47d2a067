// NATS URLs in log lines never show credentials.
#include "agent/nats_sink.h"

#include <gtest/gtest.h>

using pgfleet::agent::redact_nats_urls;

TEST(RedactNatsUrls, HidesUserPasswordAndTokens) {
    EXPECT_EQ(redact_nats_urls("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    EXPECT_EQ(redact_nats_urls("nats://agent-x:0123abcd@127.0.0.1:4222"), "nats://***@127.0.0.1:4222");
    EXPECT_EQ(redact_nats_urls("tls://token@h1:4222,nats://h2:4222,nats://u:p@h3"),
              "tls://***@h1:4222,nats://h2:4222,nats://***@h3");
    EXPECT_EQ(redact_nats_urls(""), "");
}

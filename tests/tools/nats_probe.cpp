/*
 * tests/tools/nats_probe.cpp — asks nats-server whether a user may publish or subscribe to a subject.
 *
 *   nats_probe --url nats://USER:PASS@HOST:PORT pub SUBJECT     core publish (then a flush)
 *   nats_probe --url URL sub SUBJECT                             subscription (then a flush)
 *   nats_probe --url URL jspub SUBJECT                           JetStream publish, waits for the PubAck
 *   --inbox-prefix P   reply subjects start with P (as pgfleet-agent's _INBOX_<agent_id>) instead of _INBOX
 *
 * nats-server reports a permission violation asynchronously ("-ERR 'Permissions Violation ...'"), so
 * after the operation the probe flushes and waits up to --wait-ms (default 500) for the error callback.
 * Prints one word and exits with: 0 "allowed", 3 "denied", 4 "auth-failed" (connect refused the
 * credentials), 1 any other error (with a message on stderr).
 */
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <nats/nats.h>

namespace {

std::mutex g_mutex;
std::string g_error;
std::atomic<bool> g_denied{false};

void on_error(natsConnection *, natsSubscription *, natsStatus status, void *) {
  const char *text = natsStatus_GetText(status);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_error = text ? text : "";
  if (status == NATS_NOT_PERMITTED || g_error.find("ermission") != std::string::npos) g_denied = true;
}

int usage() {
  fprintf(stderr, "usage: nats_probe --url URL [--wait-ms N] [--inbox-prefix P] pub|sub|jspub SUBJECT\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  std::string url, op, subject, inbox_prefix;
  int wait_ms = 500;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--url" && i + 1 < argc) url = argv[++i];
    else if (a == "--wait-ms" && i + 1 < argc) wait_ms = atoi(argv[++i]);
    else if (a == "--inbox-prefix" && i + 1 < argc) inbox_prefix = argv[++i];
    else if (op.empty()) op = a;
    else if (subject.empty()) subject = a;
    else return usage();
  }
  if (url.empty() || subject.empty() || (op != "pub" && op != "sub" && op != "jspub")) return usage();

  natsOptions *opts = nullptr;
  natsConnection *conn = nullptr;
  natsSubscription *sub = nullptr;
  jsCtx *js = nullptr;
  int rc = 1;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, url.c_str());
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, on_error, nullptr);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 3000);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, 0);
  if (s == NATS_OK && !inbox_prefix.empty()) s = natsOptions_SetCustomInboxPrefix(opts, inbox_prefix.c_str());
  if (s == NATS_OK) s = natsConnection_Connect(&conn, opts);
  if (s != NATS_OK) {
    const char *last = nats_GetLastError(nullptr);
    std::string text = last ? last : natsStatus_GetText(s);
    if (text.find("uthorization") != std::string::npos || s == NATS_NOT_PERMITTED) {
      printf("auth-failed\n");
      rc = 4;
    } else {
      fprintf(stderr, "nats_probe: connect failed: %s\n", text.c_str());
    }
    natsOptions_Destroy(opts);
    return rc;
  }

  if (op == "pub") {
    s = natsConnection_PublishString(conn, subject.c_str(), "probe");
  } else if (op == "sub") {
    s = natsConnection_SubscribeSync(&sub, conn, subject.c_str());
  } else {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 3000;
    s = natsConnection_JetStream(&js, conn, &jo);
    jsPubAck *ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (s == NATS_OK) s = js_Publish(&ack, js, subject.c_str(), "probe", 5, nullptr, &jerr);
    if (ack) jsPubAck_Destroy(ack);
  }
  if (s == NATS_OK) s = natsConnection_FlushTimeout(conn, 2000);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (!g_denied && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));

  if (g_denied || s == NATS_NOT_PERMITTED) {
    printf("denied\n");
    rc = 3;
  } else if (s == NATS_OK) {
    printf("allowed\n");
    rc = 0;
  } else {
    fprintf(stderr, "nats_probe: %s failed: %s\n", op.c_str(), natsStatus_GetText(s));
    printf("error\n");
  }
  if (sub) natsSubscription_Destroy(sub);
  if (js) jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  natsOptions_Destroy(opts);
  nats_Close();
  return rc;
}

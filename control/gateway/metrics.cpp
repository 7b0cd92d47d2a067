// metrics.cpp: request counters and latency histograms (see metrics.h).
#include "metrics.h"

#include <cstdio>

namespace pgfleet::gateway {

const std::vector<double> kLatencyBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

std::string prom_label(const std::string &value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void RequestMetrics::observe(const std::string &route, const std::string &method, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_[{route, method, status}];
  Histogram &h = latency_[route];
  if (h.buckets.empty()) h.buckets.assign(kLatencyBuckets.size(), 0);
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i)
    if (seconds <= kLatencyBuckets[i]) ++h.buckets[i];
  ++h.count;
  h.sum += seconds;
}

std::string RequestMetrics::render() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  char buf[64];
  out += "# HELP pgfleet_gateway_requests_total HTTP requests handled, by route pattern, method and status.\n";
  out += "# TYPE pgfleet_gateway_requests_total counter\n";
  for (const auto &[key, n] : counts_) {
    const auto &[route, method, status] = key;
    out += "pgfleet_gateway_requests_total{route=\"" + prom_label(route) + "\",method=\"" + prom_label(method) +
           "\",status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
  }
  out += "# HELP pgfleet_gateway_request_duration_seconds Time from request read to response, by route pattern.\n";
  out += "# TYPE pgfleet_gateway_request_duration_seconds histogram\n";
  for (const auto &[route, h] : latency_) {
    std::string r = prom_label(route);
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
      snprintf(buf, sizeof buf, "%g", kLatencyBuckets[i]);
      out += "pgfleet_gateway_request_duration_seconds_bucket{route=\"" + r + "\",le=\"" + buf + "\"} " +
             std::to_string(h.buckets[i]) + "\n";
    }
    out += "pgfleet_gateway_request_duration_seconds_bucket{route=\"" + r + "\",le=\"+Inf\"} " +
           std::to_string(h.count) + "\n";
    snprintf(buf, sizeof buf, "%.6f", h.sum);
    out += "pgfleet_gateway_request_duration_seconds_sum{route=\"" + r + "\"} " + buf + "\n";
    out += "pgfleet_gateway_request_duration_seconds_count{route=\"" + r + "\"} " + std::to_string(h.count) + "\n";
  }
  return out;
}

}  // namespace pgfleet::gateway

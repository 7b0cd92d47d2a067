// metrics.h: the gateway's own request metrics for the Prometheus endpoint (/metrics).
//
// Design: one mutex-protected map from (route pattern, method, status) to a count, and from route
// pattern to a latency histogram with fixed buckets. Routes are the registered patterns (e.g.
// "/api/instances/{id}/series"), never raw paths, so the label set stays bounded whatever clients send.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace pgfleet::gateway {

class RequestMetrics {
 public:
  // Records one finished request.
  void observe(const std::string &route, const std::string &method, int status, double seconds);
  // The metrics in Prometheus text exposition format (version 0.0.4).
  std::string render();

 private:
  struct Histogram {
    std::vector<unsigned long long> buckets;  // cumulative counts per upper bound
    unsigned long long count = 0;
    double sum = 0;
  };
  std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, unsigned long long> counts_;
  std::map<std::string, Histogram> latency_;
};

// Bucket upper bounds in seconds.
extern const std::vector<double> kLatencyBuckets;

// Escapes a Prometheus label value (backslash, quote, newline).
std::string prom_label(const std::string &value);

}  // namespace pgfleet::gateway

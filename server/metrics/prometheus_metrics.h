// The Prometheus MetricsRegistry: keeps its series in a prometheus-cpp
// registry and renders them in the text exposition format. It serves
// nothing itself; MetricsHttpServer (metrics_http_server.h) puts one
// registry on one address, so each endpoint shows exactly the series of
// the registry it was given (metrics.h: "Two endpoints").
#ifndef COHORTD_SERVER_METRICS_PROMETHEUS_METRICS_H_
#define COHORTD_SERVER_METRICS_PROMETHEUS_METRICS_H_

#include <memory>
#include <string>

#include "server/metrics/metrics.h"

namespace cohortd {

class PrometheusMetrics : public MetricsRegistry {
 public:
  // An empty registry.
  static std::unique_ptr<PrometheusMetrics> Create();
  ~PrometheusMetrics() override;

  // Every series, in the Prometheus text format (version 0.0.4), without
  // timestamps: two calls with no change in between return identical
  // bytes. Thread-safe.
  virtual std::string Exposition() const = 0;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_METRICS_PROMETHEUS_METRICS_H_

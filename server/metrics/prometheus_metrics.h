// The Prometheus MetricsRegistry, served on its own HTTP address at
// /metrics (prometheus-cpp's pull Exposer).
#ifndef COHORTD_SERVER_METRICS_PROMETHEUS_METRICS_H_
#define COHORTD_SERVER_METRICS_PROMETHEUS_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/metrics/metrics.h"

namespace cohortd {

class PrometheusMetrics : public MetricsRegistry {
 public:
  // Starts serving /metrics on `listen_address` ("host:port"; port 0 picks
  // a free one, see port()). Errors: Unavailable when the address cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<PrometheusMetrics>> Create(
      const std::string& listen_address);
  ~PrometheusMetrics() override;

  // The port actually bound.
  virtual int port() const = 0;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_METRICS_PROMETHEUS_METRICS_H_

// Metrics: the interface through which core modules report operational
// figures, so that none of them depends on Prometheus (STYLE.md). The
// Prometheus implementation is in prometheus_metrics.h; tests use
// NewInMemoryMetrics() to read what was recorded.
//
// Labels carry only bounded, non-sensitive values (RPC method, status code,
// reason class, principal name, dataset name): never an account, a session
// or a cohort value.
#ifndef COHORTD_SERVER_METRICS_METRICS_H_
#define COHORTD_SERVER_METRICS_METRICS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace cohortd {

using MetricLabels = std::map<std::string, std::string>;

// All instruments are thread-safe and never null once obtained.
class Counter {
 public:
  virtual ~Counter() = default;
  virtual void Increment(double by = 1) = 0;
};

class Gauge {
 public:
  virtual ~Gauge() = default;
  virtual void Set(double value) = 0;
};

class Histogram {
 public:
  virtual ~Histogram() = default;
  virtual void Observe(double value) = 0;
};

// Creates (or returns the existing) instrument for a name and label set.
// The returned pointer is owned by the registry and lives as long as it.
// Thread-safe.
class MetricsRegistry {
 public:
  virtual ~MetricsRegistry() = default;
  virtual Counter* GetCounter(absl::string_view name, absl::string_view help,
                              const MetricLabels& labels) = 0;
  virtual Gauge* GetGauge(absl::string_view name, absl::string_view help,
                          const MetricLabels& labels) = 0;
  // Drops the gauge of this name and labels, if any, so that it is no
  // longer exported (e.g. a published cohort that a newer release
  // suppresses). A pointer obtained for it must not be used afterwards.
  virtual void RemoveGauge(absl::string_view name,
                           const MetricLabels& labels) = 0;
  // `buckets` are the upper bounds, ascending.
  virtual Histogram* GetHistogram(absl::string_view name,
                                  absl::string_view help,
                                  const MetricLabels& labels,
                                  const std::vector<double>& buckets) = 0;
};

// Latency buckets in seconds, 100 us to 10 s.
const std::vector<double>& LatencyBucketsSeconds();

// A registry that keeps values in memory for tests: Value() returns a
// counter's or gauge's value, or a histogram's observation count; 0 when
// the instrument was never created.
class InMemoryMetrics : public MetricsRegistry {
 public:
  virtual double Value(absl::string_view name,
                       const MetricLabels& labels) const = 0;
  // Whether the instrument exists (was created and not removed).
  virtual bool Has(absl::string_view name,
                   const MetricLabels& labels) const = 0;
};
std::unique_ptr<InMemoryMetrics> NewInMemoryMetrics();

}  // namespace cohortd

#endif  // COHORTD_SERVER_METRICS_METRICS_H_

// Metrics: the interface through which core modules report operational
// figures, so that none of them depends on Prometheus (STYLE.md). The
// Prometheus implementation is in prometheus_metrics.h; tests use
// NewInMemoryMetrics() to read what was recorded.
//
// Labels carry only bounded, non-sensitive values (RPC method, status code,
// reason class, principal name, dataset name): never an account, a session
// or a cohort value.
//
// Two endpoints (API.md, "Metrics, revised"). A running cohortd has two
// registries, each served on its own address, and a module reports only
// into the registry it is handed; no module chooses.
//
//   dashboard registry  -> server.metrics_listen (dashboards: untrusted,
//                          like analysts, DOMAIN.md)
//   operator registry   -> server.operator_metrics_listen (loopback by
//                          default; an admin bearer token otherwise)
//
// THE RULE: a series may go into the dashboard registry only if its value
// is a function of public facts: the config, the clock, the build, the
// calls of query and admin principals (their counts, codes and latencies),
// the privacy ledger, and differentially private releases. Two datasets
// that differ in one account's records must give byte-identical dashboard
// scrapes (tests/integration/metrics_split_test.cc checks this on the real
// binary). Anything that counts, sizes or times records (ingest calls and
// their outcomes, rejections, index and store size, commit latency, query
// execution time, the release cache, resident memory, rate limits, storage
// backends) goes into the operator registry.
//
// CohortdServer (server/service/server.h) wires them: the ingestor, index,
// query engine, store statistics and ingest service get only the operator
// registry; the query and admin services, the publisher and the budget
// gauges get the dashboard registry. Its member `metrics_` is the operator
// registry, so a series added without thought lands on the protected side.
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

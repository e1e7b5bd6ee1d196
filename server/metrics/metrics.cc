#include "server/metrics/metrics.h"

#include <atomic>
#include <memory>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace cohortd {
namespace {

// One value per instrument: counters add, gauges set, histograms count
// observations (tests only need how many there were).
class Cell : public Counter, public Gauge, public Histogram {
 public:
  void Increment(double by) override {
    absl::MutexLock lock(&mu_);
    value_ += by;
  }
  void Set(double value) override {
    absl::MutexLock lock(&mu_);
    value_ = value;
  }
  void Observe(double) override {
    absl::MutexLock lock(&mu_);
    value_ += 1;
  }
  double value() const {
    absl::MutexLock lock(&mu_);
    return value_;
  }

 private:
  mutable absl::Mutex mu_;
  double value_ ABSL_GUARDED_BY(mu_) = 0;
};

class InMemoryMetricsImpl : public InMemoryMetrics {
 public:
  Counter* GetCounter(absl::string_view name, absl::string_view,
                      const MetricLabels& labels) override {
    return GetCell(name, labels);
  }
  Gauge* GetGauge(absl::string_view name, absl::string_view,
                  const MetricLabels& labels) override {
    return GetCell(name, labels);
  }
  Histogram* GetHistogram(absl::string_view name, absl::string_view,
                          const MetricLabels& labels,
                          const std::vector<double>&) override {
    return GetCell(name, labels);
  }
  void RemoveGauge(absl::string_view name,
                   const MetricLabels& labels) override {
    absl::MutexLock lock(&mu_);
    cells_.erase({std::string(name), labels});
  }
  bool Has(absl::string_view name, const MetricLabels& labels) const override {
    absl::MutexLock lock(&mu_);
    return cells_.count({std::string(name), labels}) > 0;
  }
  double Value(absl::string_view name,
               const MetricLabels& labels) const override {
    absl::MutexLock lock(&mu_);
    auto it = cells_.find({std::string(name), labels});
    return it == cells_.end() ? 0 : it->second->value();
  }

 private:
  Cell* GetCell(absl::string_view name, const MetricLabels& labels) {
    absl::MutexLock lock(&mu_);
    auto& cell = cells_[{std::string(name), labels}];
    if (cell == nullptr) cell = std::make_unique<Cell>();
    return cell.get();
  }

  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, MetricLabels>, std::unique_ptr<Cell>>
      cells_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

const std::vector<double>& LatencyBucketsSeconds() {
  static const std::vector<double>* const buckets = new std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 10};
  return *buckets;
}

std::unique_ptr<InMemoryMetrics> NewInMemoryMetrics() {
  return std::make_unique<InMemoryMetricsImpl>();
}

}  // namespace cohortd

#include "server/metrics/prometheus_metrics.h"

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace cohortd {
namespace {

class PromCounter : public Counter {
 public:
  explicit PromCounter(prometheus::Counter* c) : c_(c) {}
  void Increment(double by) override { c_->Increment(by); }

 private:
  prometheus::Counter* c_;  // owned by the registry's family
};

class PromGauge : public Gauge {
 public:
  explicit PromGauge(prometheus::Gauge* g) : g_(g) {}
  void Set(double value) override { g_->Set(value); }
  prometheus::Gauge* prometheus_gauge() const { return g_; }

 private:
  prometheus::Gauge* g_;
};

class PromHistogram : public Histogram {
 public:
  explicit PromHistogram(prometheus::Histogram* h) : h_(h) {}
  void Observe(double value) override { h_->Observe(value); }

 private:
  prometheus::Histogram* h_;
};

class PrometheusMetricsImpl : public PrometheusMetrics {
 public:
  PrometheusMetricsImpl()
      : registry_(std::make_shared<prometheus::Registry>()) {}

  std::string Exposition() const override {
    // The registry locks its families itself; mu_ only guards the maps
    // below, which Collect does not read.
    return prometheus::TextSerializer().Serialize(registry_->Collect());
  }

  Counter* GetCounter(absl::string_view name, absl::string_view help,
                      const MetricLabels& labels) override {
    absl::MutexLock lock(&mu_);
    auto& slot = counters_[{std::string(name), labels}];
    if (slot == nullptr) {
      auto& family = CounterFamily(name, help);
      slot = std::make_unique<PromCounter>(&family.Add(labels));
    }
    return slot.get();
  }

  Gauge* GetGauge(absl::string_view name, absl::string_view help,
                  const MetricLabels& labels) override {
    absl::MutexLock lock(&mu_);
    auto& slot = gauges_[{std::string(name), labels}];
    if (slot == nullptr) {
      auto it = gauge_families_.find(std::string(name));
      if (it == gauge_families_.end()) {
        auto& family = prometheus::BuildGauge()
                           .Name(std::string(name))
                           .Help(std::string(help))
                           .Register(*registry_);
        it = gauge_families_.emplace(std::string(name), &family).first;
      }
      slot = std::make_unique<PromGauge>(&it->second->Add(labels));
    }
    return slot.get();
  }

  void RemoveGauge(absl::string_view name,
                   const MetricLabels& labels) override {
    absl::MutexLock lock(&mu_);
    auto slot = gauges_.find({std::string(name), labels});
    if (slot == gauges_.end()) return;
    auto family = gauge_families_.find(std::string(name));
    if (family != gauge_families_.end()) {
      family->second->Remove(slot->second->prometheus_gauge());
    }
    gauges_.erase(slot);
  }

  Histogram* GetHistogram(absl::string_view name, absl::string_view help,
                          const MetricLabels& labels,
                          const std::vector<double>& buckets) override {
    absl::MutexLock lock(&mu_);
    auto& slot = histograms_[{std::string(name), labels}];
    if (slot == nullptr) {
      auto it = histogram_families_.find(std::string(name));
      if (it == histogram_families_.end()) {
        auto& family = prometheus::BuildHistogram()
                           .Name(std::string(name))
                           .Help(std::string(help))
                           .Register(*registry_);
        it = histogram_families_.emplace(std::string(name), &family).first;
      }
      slot = std::make_unique<PromHistogram>(&it->second->Add(
          labels, prometheus::Histogram::BucketBoundaries(buckets)));
    }
    return slot.get();
  }

 private:
  prometheus::Family<prometheus::Counter>& CounterFamily(absl::string_view name,
                                                         absl::string_view help)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = counter_families_.find(std::string(name));
    if (it == counter_families_.end()) {
      auto& family = prometheus::BuildCounter()
                         .Name(std::string(name))
                         .Help(std::string(help))
                         .Register(*registry_);
      it = counter_families_.emplace(std::string(name), &family).first;
    }
    return *it->second;
  }

  using Key = std::pair<std::string, MetricLabels>;
  std::shared_ptr<prometheus::Registry> registry_;
  absl::Mutex mu_;
  std::map<std::string, prometheus::Family<prometheus::Counter>*>
      counter_families_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> gauge_families_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Family<prometheus::Histogram>*>
      histogram_families_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::unique_ptr<PromCounter>> counters_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::unique_ptr<PromGauge>> gauges_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::unique_ptr<PromHistogram>> histograms_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace

PrometheusMetrics::~PrometheusMetrics() = default;

std::unique_ptr<PrometheusMetrics> PrometheusMetrics::Create() {
  return std::make_unique<PrometheusMetricsImpl>();
}

}  // namespace cohortd

#include "server/metrics/prometheus_metrics.h"

#include <exception>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

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
  PrometheusMetricsImpl(std::unique_ptr<prometheus::Exposer> exposer,
                        std::shared_ptr<prometheus::Registry> registry)
      : exposer_(std::move(exposer)), registry_(std::move(registry)) {}

  int port() const override {
    auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
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
  prometheus::Family<prometheus::Counter>& CounterFamily(
      absl::string_view name, absl::string_view help)
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
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  absl::Mutex mu_;
  std::map<std::string, prometheus::Family<prometheus::Counter>*>
      counter_families_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Family<prometheus::Gauge>*>
      gauge_families_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Family<prometheus::Histogram>*>
      histogram_families_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::unique_ptr<PromCounter>> counters_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::unique_ptr<PromGauge>> gauges_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::unique_ptr<PromHistogram>> histograms_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace

PrometheusMetrics::~PrometheusMetrics() = default;

absl::StatusOr<std::unique_ptr<PrometheusMetrics>> PrometheusMetrics::Create(
    const std::string& listen_address) {
  std::unique_ptr<prometheus::Exposer> exposer;
  // civetweb reports a failed bind by throwing; keep that inside this
  // module.
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen_address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", listen_address, ": ", e.what()));
  }
  auto registry = std::make_shared<prometheus::Registry>();
  exposer->RegisterCollectable(registry);
  return std::unique_ptr<PrometheusMetrics>(
      new PrometheusMetricsImpl(std::move(exposer), std::move(registry)));
}

}  // namespace cohortd

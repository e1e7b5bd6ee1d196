#include "server/engine/publisher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/engine/query_plan.h"

namespace cohortd {
namespace {

using cohortd::v1::Metric;

std::string GaugeName(Metric::Kind kind) {
  switch (kind) {
    case Metric::SESSIONS:
      return "cohortd_published_sessions";
    case Metric::ACCOUNTS:
      return "cohortd_published_accounts";
    case Metric::SUM:
      return "cohortd_published_sum";
    case Metric::MEAN:
      return "cohortd_published_mean";
    case Metric::RATE:
      return "cohortd_published_rate";
    case Metric::GEOMETRIC_MEAN:
      return "cohortd_published_geometric_mean";
    default:
      return "cohortd_published_quantile";
  }
}

// "YYYY-MM" of the `back`-th month before the one containing `now` (UTC).
std::string MonthBefore(absl::Time now, int back) {
  const absl::CivilMonth month =
      absl::ToCivilMonth(now, absl::UTCTimeZone()) - back;
  return absl::StrFormat("%04d-%02d", month.year(), month.month());
}

// How far back "all closed months" reaches: ten years.
constexpr int kClosedMonthsHorizon = 120;

}  // namespace

absl::StatusOr<std::unique_ptr<Publisher>> Publisher::Create(
    const Config* config, QueryEngine* engine, MetricsRegistry* metrics,
    Clock* clock) {
  std::unique_ptr<Publisher> publisher(
      new Publisher(config, engine, metrics, clock));
  for (size_t i = 0; i < config->publications.size(); ++i) {
    const PublicationSpec& spec = config->publications[i];
    auto published = std::make_unique<Published>();
    const auto parsed = google::protobuf::util::JsonStringToMessage(
        spec.request_json, &published->base);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "publications[", spec.name, "].request: not an AggregateRequest: ",
          std::string(parsed.message())));
    }
    published->base.set_dataset(spec.dataset);
    publisher->published_.push_back(std::move(published));
    // Plan the request as it will be sent, so a bad publication stops the
    // server at start rather than failing on every run.
    absl::StatusOr<QueryPlan> plan =
        PlanQuery(*config, publisher->RequestAt(i, clock->Now()));
    if (!plan.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "publications[", spec.name, "].request: ", plan.status().message()));
    }
    // Estimates carry the planner's metric names (derived when the config
    // gave none); keep the map back to their kinds for Export.
    for (const Metric& m : plan->canonical.metrics()) {
      publisher->published_[i]->kinds[m.name()] = m.kind();
    }
    publisher->ExhaustedGauge(spec.name)->Set(0);
  }
  return publisher;
}

Publisher::~Publisher() { Stop(); }

Gauge* Publisher::ExhaustedGauge(const std::string& publication) {
  return metrics_->GetGauge(
      "cohortd_publication_budget_exhausted",
      "1 when the publication's budget is spent and it keeps its last "
      "release.",
      {{"publication", publication}});
}

cohortd::v1::AggregateRequest Publisher::RequestAt(size_t index,
                                                   absl::Time now) const {
  const PublicationSpec& spec = config_->publications[index];
  cohortd::v1::AggregateRequest request = published_[index]->base;
  int months = 0;
  switch (spec.months) {
    case PublicationSpec::Months::kAll:
      return request;
    case PublicationSpec::Months::kClosed:
      months = kClosedMonthsHorizon;
      break;
    case PublicationSpec::Months::kLastClosed:
      months = spec.last_months;
      break;
  }
  // The filter changes only when a month closes; until then every run asks
  // the same question and is answered from the release cache for free
  // until the next snapshot is sealed (snapshot.h): never because of what
  // was pushed.
  cohortd::v1::Filter* filter = request.add_filters();
  filter->set_dimension("month");
  for (int back = months; back >= 1; --back) {
    filter->add_any_of(MonthBefore(now, back));
  }
  return request;
}

absl::Status Publisher::RunOnce(size_t index) {
  const PublicationSpec& spec = config_->publications[index];
  const MetricLabels labels = {{"publication", spec.name}};
  absl::StatusOr<cohortd::v1::AggregateResponse> response = engine_->Aggregate(
      PublicationPrincipal(spec.name), RequestAt(index, clock_->Now()));
  Gauge* exhausted = ExhaustedGauge(spec.name);
  if (absl::IsResourceExhausted(response.status())) {
    exhausted->Set(1);
    LogWarning("publisher", "publication %s keeps its last release: %s",
               spec.name, response.status().message());
    return response.status();
  }
  RETURN_IF_ERROR(response.status());
  exhausted->Set(0);
  Export(index, *response);
  metrics_
      ->GetGauge("cohortd_publication_data_as_of_timestamp_seconds",
                 "Seal time of the snapshot the publication's current values "
                 "were computed on.",
                 labels)
      ->Set(static_cast<double>(response->data_as_of().seconds()));
  if (!response->from_cache()) {
    metrics_
        ->GetCounter("cohortd_publication_releases_total",
                     "Charged releases of the publication.", labels)
        ->Increment();
    metrics_
        ->GetGauge("cohortd_publication_last_release_timestamp_seconds",
                   "When the publication's current values were released.",
                   labels)
        ->Set(absl::ToUnixSeconds(clock_->Now()));
  }
  return absl::OkStatus();
}

void Publisher::Export(size_t index,
                       const cohortd::v1::AggregateResponse& response) {
  const PublicationSpec& spec = config_->publications[index];
  Published& published = *published_[index];

  std::set<std::pair<std::string, MetricLabels>> now;
  // One gauge per bound of a figure: value, ci_low, ci_high.
  auto set_bounds = [&](const std::string& name, MetricLabels labels,
                        double value, double ci_low, double ci_high) {
    for (const auto& [bound, v] :
         {std::pair<const char*, double>{"value", value},
          {"ci_low", ci_low},
          {"ci_high", ci_high}}) {
      labels["bound"] = bound;
      metrics_
          ->GetGauge(name, "A published, differentially private figure.",
                     labels)
          ->Set(v);
      now.emplace(name, labels);
    }
  };
  for (const cohortd::v1::Cohort& cohort : response.cohorts()) {
    MetricLabels base = {{"publication", spec.name}};
    for (const auto& [dimension, value] : cohort.key()) {
      base[dimension] = value;
    }
    for (const cohortd::v1::Estimate& e : cohort.estimates()) {
      auto kind = published.kinds.find(e.metric());
      if (kind == published.kinds.end()) continue;
      const std::string name = GaugeName(kind->second);
      MetricLabels labels = base;
      labels["metric"] = e.metric();
      if (kind->second != Metric::QUANTILES) {
        set_bounds(name, labels, e.value(), e.ci_low(), e.ci_high());
        continue;
      }
      for (const cohortd::v1::Quantile& q : e.quantiles()) {
        MetricLabels ql = labels;
        ql["q"] = absl::StrCat(q.q());
        set_bounds(name, ql, q.value(), q.ci_low(), q.ci_high());
      }
    }
  }
  absl::MutexLock lock(&published.mu);
  for (const auto& [name, labels] : published.series) {
    if (now.count({name, labels}) == 0) metrics_->RemoveGauge(name, labels);
  }
  published.series = std::move(now);
}

void Publisher::Start() {
  if (published_.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void Publisher::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void Publisher::Loop() {
  std::vector<absl::Time> due(published_.size(), clock_->Now());
  while (!stop_.HasBeenNotified()) {
    const absl::Time now = clock_->Now();
    for (size_t i = 0; i < published_.size(); ++i) {
      if (now < due[i]) continue;
      const absl::Status status = RunOnce(i);
      if (!status.ok() && !absl::IsResourceExhausted(status)) {
        LogWarning("publisher", "publication %s failed: %s",
                   config_->publications[i].name, status.ToString());
      }
      due[i] = now + config_->publications[i].every;
    }
    const absl::Time next = *std::min_element(due.begin(), due.end());
    stop_.WaitForNotificationWithTimeout(std::clamp(
        next - clock_->Now(), absl::Milliseconds(100), absl::Seconds(1)));
  }
}

}  // namespace cohortd

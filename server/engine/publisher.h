// Publisher: computes the publications declared in the config (issue 5) on
// their schedules, through the normal release path (QueryEngine: ledger,
// cache, audit log) under each publication's own principal and budget, and
// exposes the released values as gauges for Prometheus:
//
//   cohortd_published_<kind>{publication, metric, bound, <group-by dims>}
//   cohortd_published_quantile{publication, metric, q, bound, <dims>}
//     kind: sessions | accounts | sum | mean | rate;
//     bound: value | ci_low | ci_high
//   cohortd_publication_budget_exhausted{publication}          0 or 1
//   cohortd_publication_last_release_timestamp_seconds{publication}
//   cohortd_publication_data_as_of_timestamp_seconds{publication}
//   cohortd_publication_releases_total{publication}
//
// One gauge per (figure, bound) keeps every series a plain number that
// PromQL can band (ci_low/ci_high) without parsing labels; the dimension
// values are labels because they are the published cohort keys, which are
// themselves released (partition selection) and so public.
//
// Runs read the latest sealed snapshot (snapshot.h): a run between two
// seals is a cache hit and changes no series, whatever was pushed; the
// first run after a seal is a new release. So every series, including the
// release timestamp, moves only with the public seal and run schedules.
// Scrapes read these gauges only: they never draw noise and never charge.
// A suppressed cohort has no series. When a publication's budget runs out
// it stops updating, keeps its last release, and sets budget_exhausted.
#ifndef COHORTD_SERVER_ENGINE_PUBLISHER_H_
#define COHORTD_SERVER_ENGINE_PUBLISHER_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/common/clock.h"
#include "server/config/config.h"
#include "server/metrics/metrics.h"
#include "server/engine/query_engine.h"

namespace cohortd {

class Publisher {
 public:
  // Validates every publication's request against its dataset (as an
  // Aggregate call would). All pointers are borrowed and must outlive the
  // publisher. Errors: InvalidArgument naming the publication and the
  // problem.
  static absl::StatusOr<std::unique_ptr<Publisher>> Create(
      const Config* config, QueryEngine* engine, MetricsRegistry* metrics,
      Clock* clock);

  // Stops the schedule thread if started.
  ~Publisher();

  // Runs every publication now, then each on its `every`, on one thread.
  void Start();
  // Stops the thread; a run in progress finishes first. Idempotent.
  void Stop();

  // Releases publication `index` now and updates its gauges. Errors: as
  // QueryEngine::Aggregate; ResourceExhausted also sets budget_exhausted.
  // Thread-safe.
  absl::Status RunOnce(size_t index);

  // The request publication `index` sends at time `now` (its month window
  // resolved). Exposed for tests.
  cohortd::v1::AggregateRequest RequestAt(size_t index, absl::Time now) const;

 private:
  struct Published {
    cohortd::v1::AggregateRequest base;  // from the config, dataset set
    // Planned metric name -> kind, fixed at Create.
    std::map<std::string, cohortd::v1::Metric::Kind> kinds;
    std::set<std::pair<std::string, MetricLabels>> series
        ABSL_GUARDED_BY(mu);  // gauges currently exported
    absl::Mutex mu;
  };

  Publisher(const Config* config, QueryEngine* engine, MetricsRegistry* metrics,
            Clock* clock)
      : config_(config), engine_(engine), metrics_(metrics), clock_(clock) {}
  void Export(size_t index, const cohortd::v1::AggregateResponse& response);
  Gauge* ExhaustedGauge(const std::string& publication);
  void Loop();

  const Config* const config_;
  QueryEngine* const engine_;
  MetricsRegistry* const metrics_;
  Clock* const clock_;
  std::vector<std::unique_ptr<Published>> published_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_ENGINE_PUBLISHER_H_

// RetentionJob: enforces each dataset's `retention` (config): sessions that
// started longer ago than that are deleted, by a background thread every
// `retention_interval`, through the ingestor's committer like any other
// deletion (index updated at the next seal, audit entry under the
// principal "cohortd/retention"). It logs what it deleted as counts per
// dataset, never session or account ids.
//
// Time comes from an injected Clock and RunOnce() is public, so tests move
// a FakeClock and run one pass instead of waiting for the thread.
#ifndef COHORTD_SERVER_INGEST_RETENTION_H_
#define COHORTD_SERVER_INGEST_RETENTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/config/config.h"
#include "server/ingest/eraser.h"
#include "server/ingest/ingestor.h"

namespace cohortd {

// The principal retention deletions are audited under; '/' cannot appear
// in a configured principal name, so it cannot collide with one.
inline constexpr absl::string_view kRetentionPrincipal = "cohortd/retention";

class RetentionJob {
 public:
  // Pointers are borrowed and must outlive the job. `auditor` may be empty
  // (tests). Does not start the thread.
  RetentionJob(const Config* config, Ingestor* ingestor, Clock* clock,
               ErasureAuditor auditor)
      : config_(config),
        ingestor_(ingestor),
        clock_(clock),
        auditor_(std::move(auditor)) {}
  // Stops the thread if running.
  ~RetentionJob();

  // One pass over every dataset with a retention: deletes the sessions
  // whose session_start is before clock->Now() - retention. Returns the
  // count deleted per dataset (datasets without retention are absent).
  // A pass that deletes nothing writes nothing. Errors: the first
  // dataset's failure (the others are still attempted); as
  // Ingestor::DeleteSessions. Thread-safe, but passes do not overlap
  // usefully: the thread runs them one at a time.
  absl::StatusOr<std::map<std::string, int64_t>> RunOnce();

  // Starts the thread: a pass right away, then one every
  // config->retention_interval. No-op when no dataset has a retention.
  void Start();
  // Stops the thread after its current pass. Idempotent.
  void Stop();

 private:
  const Config* const config_;
  Ingestor* const ingestor_;
  Clock* const clock_;
  const ErasureAuditor auditor_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_INGEST_RETENTION_H_

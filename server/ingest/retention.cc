#include "server/ingest/retention.h"

#include <utility>

#include "server/common/logging.h"

namespace cohortd {

RetentionJob::~RetentionJob() { Stop(); }

absl::StatusOr<std::map<std::string, int64_t>> RetentionJob::RunOnce() {
  std::map<std::string, int64_t> deleted;
  absl::Status first_error;
  const absl::Time now = clock_->Now();
  for (const DatasetSpec& dataset : config_->datasets) {
    if (dataset.retention <= absl::ZeroDuration()) continue;
    const int64_t cutoff = absl::ToUnixSeconds(now - dataset.retention);
    DeletionWriter writer;
    if (auditor_) {
      const std::string principal(kRetentionPrincipal);
      writer = [this, principal, &dataset](
                   int64_t sessions, WriteBatch* batch,
                   const std::function<absl::Status()>& write) {
        // Only passes that delete something go on record.
        if (sessions == 0) return write();
        return auditor_(principal, dataset.name, kErasureReasonRetention,
                        sessions, batch, write);
      };
    }
    absl::StatusOr<int64_t> count = ingestor_->DeleteSessions(
        dataset.name,
        [cutoff](const DeletedSession& session) {
          return session.session_start_unix_seconds < cutoff;
        },
        std::move(writer));
    if (!count.ok()) {
      LogError("retention", "dataset %s: %s", dataset.name,
               count.status().ToString());
      if (first_error.ok()) first_error = count.status();
      continue;
    }
    deleted[dataset.name] = *count;
    if (*count > 0) {
      LogInfo(
          "retention",
          "dataset %s: deleted %d session(s) that started before %s",
          dataset.name, *count,
          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(cutoff),
                           absl::UTCTimeZone()));
    }
  }
  if (!first_error.ok()) return first_error;
  return deleted;
}

void RetentionJob::Start() {
  bool any = false;
  for (const DatasetSpec& dataset : config_->datasets) {
    any = any || dataset.retention > absl::ZeroDuration();
  }
  if (!any || thread_.joinable()) return;
  thread_ = std::thread([this] {
    do {
      // Errors are logged by RunOnce; the next pass retries.
      (void)RunOnce();
    } while (
        !stop_.WaitForNotificationWithTimeout(config_->retention_interval));
  });
}

void RetentionJob::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace cohortd

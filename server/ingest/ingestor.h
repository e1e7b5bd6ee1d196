// Ingestor: the ingest path's core. Validates pushed observations,
// pseudonymises account ids, merges each observation into its session
// record and stores the result durably before acknowledging.
//
// Concurrency design: any number of threads call Push(); validation and
// HMAC run on the caller's thread. Valid observations then go to a single
// committer thread, which merges every push waiting at that moment in one
// pass (read-modify-write against the store plus an in-group overlay, so
// two pushes touching one session in the same group see each other) and
// writes the whole group with one synced write: group commit. One writer
// keeps merges race-free without per-session locks; one fsync per group
// keeps throughput up under many concurrent pushers.
#ifndef COHORTD_SERVER_INGEST_INGESTOR_H_
#define COHORTD_SERVER_INGEST_INGESTOR_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cohortd/internal/storage.pb.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/config/config.h"
#include "server/crypto/pseudonymizer.h"
#include "server/metrics/metrics.h"
#include "server/storage/store.h"

namespace cohortd {

// A session record as it stands after a durable commit.
struct CommittedSession {
  std::string session_id;
  const cohortd::internal::StoredSession* record;  // valid during the call
};

// Told about every durable change, e.g. to keep an in-memory index current.
class IngestListener {
 public:
  virtual ~IngestListener() = default;
  // Called on the committer thread after the group's write is durable and
  // before its pushes are acknowledged, once per dataset touched. Must not
  // call back into the Ingestor. `sessions` lists each changed session once,
  // with its whole merged record.
  virtual void OnCommitted(const DatasetSpec& dataset,
                           const std::vector<CommittedSession>& sessions) = 0;
};

class Ingestor {
 public:
  // All pointers are borrowed and must outlive the Ingestor. `listener` may
  // be null. Starts the committer thread. Errors: from reading the stored
  // ingest sequence number (Unavailable, DataLoss).
  static absl::StatusOr<std::unique_ptr<Ingestor>> Create(
      const Config* config, Store* store, const Pseudonymizer* pseudonymizer,
      MetricsRegistry* metrics, IngestListener* listener);

  // Waits for queued pushes to commit, then stops the committer.
  ~Ingestor();

  // Validates and stores `request`. Returns once every accepted observation
  // is durable. Each invalid observation, and each that conflicts with the
  // stored session (another account, another session_start), is a
  // Rejection; the others are stored (accepted) or were already stored with
  // identical content (unchanged).
  // Errors: InvalidArgument for an unknown dataset or a batch above
  // max_batch_size; Unavailable when shutting down or when the store fails
  // (then nothing of the push is acknowledged, though some may be stored:
  // pushes are idempotent, so the caller retries).
  // Thread-safe.
  absl::StatusOr<cohortd::v1::PushResponse> Push(
      const cohortd::v1::PushRequest& request);

  // A lock the committer holds exclusively from just before each durable
  // write until the listener has seen it. A reader holding it shared sees
  // the store and the listener's state (e.g. the index) at the same
  // commit: the query path reads data versions and opens its index view
  // under it, so a release is never labelled with versions newer than the
  // data it was computed on. Hold it briefly; never while pushing.
  absl::Mutex* commit_fence() { return &commit_fence_; }

  // Makes later pushes fail with Unavailable and waits until every push
  // already accepted for commit is committed. Idempotent. Thread-safe.
  void Shutdown();

 private:
  // One valid observation on its way to the committer.
  struct Item {
    int index = 0;  // position in the request
    std::string session_id;
    std::string key;  // storage key of the session record
    std::string account_pseudonym;
    int64_t session_start = 0;
    std::string source;
    cohortd::internal::SourceContribution contribution;
    // Set by the committer.
    enum class Outcome { kAccepted, kUnchanged, kConflict } outcome =
        Outcome::kAccepted;
    std::string conflict_field;
    std::string conflict_reason;
  };
  // One push waiting for the committer.
  struct Pending {
    const DatasetSpec* dataset = nullptr;
    std::vector<Item> items;
    bool done = false;
    absl::Status status;
  };

  Ingestor(const Config* config, Store* store,
           const Pseudonymizer* pseudonymizer, MetricsRegistry* metrics,
           IngestListener* listener, uint64_t sequence);

  void CommitterLoop();
  // Merges and durably writes one group; sets each item's outcome. Returns
  // the write's status, which applies to every pending of the group.
  absl::Status CommitGroup(const std::vector<Pending*>& group);

  const Config* const config_;
  Store* const store_;
  const Pseudonymizer* const pseudonymizer_;
  MetricsRegistry* const metrics_;
  IngestListener* const listener_;

  Histogram* push_latency_;
  Histogram* group_size_;
  Histogram* commit_latency_;

  absl::Mutex mu_;
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool committing_ ABSL_GUARDED_BY(mu_) = false;  // a group is in flight

  // Owned by the committer thread.
  uint64_t sequence_;  // last ingest sequence number written
  // Data version of each (dataset, month) touched since start; loaded from
  // the store on first use.
  std::map<std::pair<std::string, std::string>, uint64_t> versions_;

  absl::Mutex commit_fence_;
  std::thread committer_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_INGEST_INGESTOR_H_

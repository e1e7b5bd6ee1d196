// Ingestor: the ingest path's core. Validates pushed observations,
// pseudonymises account ids, stores each observation as its session's
// contribution from its source, durably, before acknowledging.
//
// Storage (format 2, storage/keys.h): a small header per session (account
// pseudonym, start, source count) and one key per (session, source)
// contribution, so a push reads and writes O(its own size) whatever the
// session already holds. The merged view ("the later push wins", per label
// and measure) is not stored; listeners (the columnar index) get it as
// per-session deltas.
//
// Concurrency design: any number of threads call Push(); validation, HMAC
// and key building run on the caller's thread. Valid observations then go
// to a single committer thread, which merges every push waiting at that
// moment in one pass (reads against the store plus an in-group overlay, so
// two pushes touching one session in the same group see each other) and
// writes the whole group with one synced write: group commit. One writer
// keeps merges race-free without per-session locks; one fsync per group
// keeps throughput up under many concurrent pushers. Since each push's
// share of a group is O(its size), no push delays another by more than its
// own merge (a group holds at most kMaxGroupObservations).
#ifndef COHORTD_SERVER_INGEST_INGESTOR_H_
#define COHORTD_SERVER_INGEST_INGESTOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "cohortd/internal/storage.pb.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/config/config.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ingest/validator.h"
#include "server/metrics/metrics.h"
#include "server/storage/store.h"

namespace cohortd {

// What one durable commit changed in one session's merged view. The
// merged view of a session is, per label and per measure, the value of the
// source whose contribution was pushed last (highest ingest sequence).
// Owns its data, so a listener may keep it (e.g. to buffer commits).
struct CommittedSession {
  std::string session_id;
  // The session's header; never changes once the session exists.
  std::string account_pseudonym;
  int64_t session_start_unix_seconds = 0;
  // The labels and measures whose merged value this commit set, each named
  // at most once: a value, or nullopt when no source has the name any more.
  // Names not listed kept their merged value (for a session new to the
  // listener: are absent). Names may lie outside the dataset's schema.
  std::vector<std::pair<std::string, absl::optional<std::string>>> labels;
  std::vector<std::pair<std::string, absl::optional<double>>> measures;

  // The whole merged view of a format-1 record as a delta (every name it
  // has, set): for tests, benchmarks and the migration.
  static CommittedSession FromRecord(
      absl::string_view session_id,
      const cohortd::internal::StoredSession& record);
};

// A session as a deletion sees it: identity, account and start only.
struct DeletedSession {
  std::string session_id;
  std::string account_pseudonym;
  int64_t session_start_unix_seconds = 0;
};

// Told about every durable change, e.g. to keep an in-memory index current.
class IngestListener {
 public:
  virtual ~IngestListener() = default;
  // Called on the committer thread after the group's write is durable and
  // before its pushes are acknowledged, once per dataset touched, in
  // commit order. Must not call back into the Ingestor. `sessions` lists
  // each changed session once, with the delta of its merged view (O(push)
  // to build and to apply); applying every call in order to an empty view,
  // or to the view built from the store before the Ingestor started,
  // yields the store's merged view.
  virtual void OnCommitted(const DatasetSpec& dataset,
                           const std::vector<CommittedSession>& sessions) = 0;
  // What the Ingestor calls: OnCommitted, for a listener that keeps the
  // deltas without copying them. It may move from `*sessions`, which the
  // Ingestor does not read afterwards. By default calls OnCommitted.
  virtual void OnCommittedMoved(const DatasetSpec& dataset,
                                std::vector<CommittedSession>* sessions) {
    OnCommitted(dataset, *sessions);
  }
  // Called by Push (any thread) before anything of the push is done: an
  // error refuses the whole push with it (e.g. Unavailable while the
  // listener cannot take more). Default: OK.
  virtual absl::Status Admit() const { return absl::OkStatus(); }
  // Whether the Ingestor should call OnResent. Default false (no cost).
  virtual bool WantsResent() const { return false; }
  // Called on the committer thread, after OnCommitted of the same group
  // (the group may have written nothing), for every session that an
  // unchanged re-push touched: `sessions` holds each one's whole merged
  // view as stored. For a listener whose copy may have missed a commit
  // that was durable but never acknowledged (a crash in between): the
  // client's retry is unchanged, so it is the listener's only chance to
  // see it. Must not call back into the Ingestor. Default: nothing.
  virtual void OnResent(const DatasetSpec& dataset,
                        const std::vector<CommittedSession>& sessions) {}
  // Called on the committer thread after a deletion
  // (Ingestor::DeleteSessions) is durable and before it is acknowledged,
  // when it removed at least one session, in commit order with
  // OnCommitted. Must not call back into the Ingestor. `sessions` lists
  // each removed session once.
  virtual void OnDeleted(const DatasetSpec& dataset,
                         const std::vector<DeletedSession>& sessions) = 0;
};

// Read by the committer to enforce ingest.max_open_domain_values: which
// values each open-domain dimension already holds. Called on the committer
// thread only, never concurrently with IngestListener::OnCommitted.
class OpenDomainCatalog {
 public:
  virtual ~OpenDomainCatalog() = default;
  // Whether dimension `dim` (an index into dataset.dimensions) of `dataset`
  // already holds `value`, and how many distinct values it holds.
  virtual bool HasValue(const DatasetSpec& dataset, int dim,
                        absl::string_view value) const = 0;
  virtual size_t NumValues(const DatasetSpec& dataset, int dim) const = 0;
};

// Chooses the sessions a deletion removes: called with each stored
// session of the dataset (its contributions are not read), on the
// committer thread.
using SessionPredicate = std::function<bool(const DeletedSession& session)>;

// Makes a deletion's durable write: called once on the committer thread
// with the number of sessions about to be deleted and the deletion's
// batch, to which it may add its own puts (e.g. an audit entry, so that
// the deletion and its record are one atomic write). It must call
// `write()` exactly once, which writes the batch durably, and return that
// status (or an error before calling it: then nothing is deleted).
using DeletionWriter =
    std::function<absl::Status(int64_t sessions, WriteBatch* batch,
                               const std::function<absl::Status()>& write)>;

class Ingestor {
 public:
  // All pointers are borrowed and must outlive the Ingestor. `listener` and
  // `domains` may be null; without `domains` the open-domain value cap is
  // not enforced. Starts the committer thread. Errors: FailedPrecondition
  // when the store is not at keys::kStorageFormatVersion (run
  // MigrateSessionStore first); from reading the stored ingest sequence
  // number (Unavailable, DataLoss).
  static absl::StatusOr<std::unique_ptr<Ingestor>> Create(
      const Config* config, Store* store, const Pseudonymizer* pseudonymizer,
      MetricsRegistry* metrics, IngestListener* listener,
      const OpenDomainCatalog* domains = nullptr);

  // Waits for queued pushes to commit, then stops the committer.
  ~Ingestor();

  // Validates and stores `request`. Returns once every accepted observation
  // is durable. Each invalid observation, each that conflicts with the
  // stored session (another account, another session_start), and each
  // beyond a cap (a new source past ingest.max_sources_per_session, a new
  // open-domain value past ingest.max_open_domain_values) is a Rejection;
  // the others are stored (accepted) or were already stored with identical
  // content (unchanged). The work and the bytes written are O(size of the
  // push), whatever the sessions already hold, except when a replaced
  // contribution drops a label or measure: then that session's other
  // contributions are read (at most max_sources_per_session of them).
  // Errors: InvalidArgument for an unknown dataset or a batch above
  // max_batch_size; Unavailable when shutting down or when the store fails
  // (then nothing of the push is acknowledged, though some may be stored:
  // pushes are idempotent, so the caller retries).
  // Thread-safe.
  absl::StatusOr<cohortd::v1::PushResponse> Push(
      const cohortd::v1::PushRequest& request);

  // The same for a request already read into views (IngestService reads
  // them straight from the wire message): `observations[i]` is
  // observation i of the request, its names sorted (SortNames). The views
  // and what they point into are borrowed until the call returns; nothing
  // of them is kept. Same answers and errors as above. Thread-safe.
  absl::StatusOr<cohortd::v1::PushResponse> Push(
      absl::string_view dataset, absl::Span<const ObservationRef> observations);

  // Deletes every session of `dataset` for which `predicate` holds, as one
  // durable write made by the committer between two push groups (so a push
  // is ordered entirely before or after it), and tells the listener
  // (OnDeleted; answers see it at the next seal). Returns the number of
  // sessions deleted. `writer`, when given, makes the write (see
  // DeletionWriter) and is called even when nothing matches; without it
  // nothing is written when nothing matches. The whole dataset is scanned
  // on the caller's thread (seconds at 10^6 sessions: README "Erasure and
  // retention"); the committer then only reads the matches and the
  // sessions committed during the scan, so pushes wait for O(matches),
  // not for the scan.
  // Errors: InvalidArgument for an unknown dataset; Unavailable when
  // shutting down or when the store fails (nothing deleted); DataLoss for a
  // stored record that does not parse; the writer's error.
  // Thread-safe.
  absl::StatusOr<int64_t> DeleteSessions(const std::string& dataset,
                                         SessionPredicate predicate,
                                         DeletionWriter writer = nullptr);

  // The dataset of a push of `observations` to `dataset`, or
  // InvalidArgument (naming the field) for an unknown dataset or a batch
  // above max_batch_size: the checks Push makes first, for a caller that
  // must make them before its own (IngestService, before the rate limit).
  // Thread-safe.
  absl::StatusOr<const DatasetSpec*> CheckRequest(absl::string_view dataset,
                                                  size_t observations) const;

  // A lock the committer holds exclusively from just before each durable
  // write until the listener has seen it. A reader holding it shared sees
  // the store and the listener's state (e.g. the index) at the same
  // commit. Hold it briefly; never while pushing.
  absl::Mutex* commit_fence() { return &commit_fence_; }

  // Makes later pushes fail with Unavailable and waits until every push
  // already accepted for commit is committed. Idempotent. Thread-safe.
  void Shutdown();

 private:
  // One valid observation on its way to the committer. Views point into
  // the request and the push's pseudonyms, which outlive the commit, and
  // into the item itself: an Item is never moved once filled in (the
  // push's items are reserved up front).
  struct Item {
    int index = 0;  // position in the request
    const ObservationRef* obs = nullptr;
    std::string contribution_key;
    absl::string_view key;  // of the session header: contribution_key's prefix
    // absl::Hash of `key` and of `contribution_key`, computed on the
    // pushing thread so that the committer does not.
    size_t key_hash = 0;
    size_t contribution_key_hash = 0;
    absl::string_view account_pseudonym;
    int64_t session_start = 0;
    // The stored contribution without its sequence (the committer adds
    // it): canonical bytes, so equal content is equal bytes.
    std::string value;
    // Set by the committer.
    enum class Outcome {
      kAccepted,
      kUnchanged,
      kConflict
    } outcome = Outcome::kAccepted;
    std::string conflict_class;  // metric label of a kConflict
    std::string conflict_field;
    std::string conflict_reason;
  };
  // The sessions committed while a deletion scans and waits: the scan's
  // snapshot may predate them. Filled by the committer (NoteForDeletions).
  struct DeletionWatch {
    const DatasetSpec* dataset = nullptr;
    std::vector<DeletedSession> committed;
  };
  // A deletion waiting for the committer (DeleteSessions).
  struct Deletion {
    SessionPredicate predicate;
    DeletionWriter writer;
    std::vector<DeletedSession> candidates;  // the scan's matches
    DeletionWatch watch;
    int64_t deleted = 0;  // set by the committer
  };
  // One push (or deletion) waiting for the committer.
  struct Pending {
    const DatasetSpec* dataset = nullptr;
    Deletion* deletion = nullptr;  // set for a deletion: then no items
    std::vector<Item> items;
    bool done = false;
    absl::Status status;
  };

  Ingestor(const Config* config, Store* store,
           const Pseudonymizer* pseudonymizer, MetricsRegistry* metrics,
           IngestListener* listener, const OpenDomainCatalog* domains,
           uint64_t sequence);

  // Push, once the request passed CheckRequest.
  absl::StatusOr<cohortd::v1::PushResponse> PushValid(
      const DatasetSpec* dataset,
      absl::Span<const ObservationRef> observations);

  void CommitterLoop();
  // Merges and durably writes one group; sets each item's outcome. Returns
  // the write's status, which applies to every pending of the group.
  absl::Status CommitGroup(const std::vector<Pending*>& group);
  // Deletes and durably writes one deletion (its scan's matches and the
  // matching sessions committed since); sets its count.
  absl::Status CommitDeletion(Pending* pending);
  // The stored sessions of `dataset` that `predicate` selects, from one
  // consistent scan. Any thread.
  absl::Status ScanForDeletion(const DatasetSpec& dataset,
                               const SessionPredicate& predicate,
                               std::vector<DeletedSession>* matches) const;
  // The merged view of the session under `session_key` (its prefix) as
  // stored, into out->labels / out->measures. Errors: DataLoss when a
  // contribution cannot be parsed; the store's read errors.
  absl::Status ReadMergedView(absl::string_view session_key,
                              absl::string_view dataset, CommittedSession* out);
  // Committer: records `sessions`, just committed, in the watches of
  // `dataset`'s pending deletions.
  void NoteForDeletions(const DatasetSpec& dataset,
                        const std::vector<CommittedSession>& sessions);
  const Config* const config_;
  Store* const store_;
  const Pseudonymizer* const pseudonymizer_;
  MetricsRegistry* const metrics_;
  IngestListener* const listener_;
  const OpenDomainCatalog* const domains_;

  Histogram* push_latency_;
  Histogram* group_size_;
  Histogram* commit_latency_;

  absl::Mutex mu_;
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool committing_ ABSL_GUARDED_BY(mu_) = false;  // a group is in flight

  // Owned by the committer thread.
  uint64_t sequence_;  // last ingest sequence number written
  // Reused by every group: a fresh multi-megabyte batch per group costs
  // its page faults again (perf).
  WriteBatch group_batch_;
  // Per dataset, its open-domain dimensions as (name, index) (for the
  // value cap).
  std::map<const DatasetSpec*, std::vector<std::pair<std::string, int>>>
      open_dimensions_;

  // Deletions in progress watch the commits (DeletionWatch).
  absl::Mutex watch_mu_;
  std::vector<DeletionWatch*> watches_ ABSL_GUARDED_BY(watch_mu_);

  absl::Mutex commit_fence_;
  std::thread committer_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_INGEST_INGESTOR_H_

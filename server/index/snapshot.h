// Sealed snapshots: what queries read, and why (issue 9, item 2).
//
// Whether an answer comes from the release cache must depend on no record.
// Caching per data version leaked: one account's push bumped its month's
// version, so the next identical question missed the cache, and
// `from_cache` (or a publication's release timestamp) told neighbouring
// datasets apart. Here queries read only SEALED SNAPSHOTS, and the cache is
// keyed on the snapshot's id, which changes at every seal and at no other
// time; seals happen on public events only:
//   - the schedule, `server.snapshot_every` (default 1h), at the multiples
//     of that period since the Unix epoch (UTC), so the schedule does not
//     depend on when the server started;
//   - Admin.SealSnapshot (an operator's call, audit-worthy but not data);
//   - the first start on a store (or after a config change that alters the
//     dataset's answers): the index is built from the store and sealed.
// Every seal gets a new id, whether or not anything was pushed since the
// last one: an id that changed only when data changed would leak again.
//
// Restart (issue 13). Every seal is persisted with its id and seal time
// (index/sealed_index.h, in the store). A restart loads that image and
// serves the SAME snapshot (same id, same sealed_at, hence the same cached
// answers) instead of sealing: a restart is not a seal any more. What was
// committed after that seal must then stay invisible until the next
// scheduled or admin seal, exactly as if the server had not restarted, and
// the restart must not reveal whether anything was: so, unconditionally,
// a background thread rebuilds the dataset from the store (as the first
// start does) and the next seal replaces the index with that rebuild
// before applying the commits buffered since the restart (re-applying a
// commit the rebuild already holds is harmless: a delta sets merged
// values, in commit order). The next seal waits for the rebuild; queries
// never do. If the schedule passed a boundary while the server was down,
// the first scheduled seal is due at once (as it would have been).
// Erasures committed after the seal stay buffered like any other change.
//
// How. SnapshotIndex sits between the Ingestor and the ColumnarIndex: it is
// the Ingestor's listener and buffers each commit's session deltas and each
// deletion (erasure, retention) per dataset, in commit order. A deletion
// also drops the buffered deltas of the sessions it deletes, so a session
// deleted before a seal never reaches the index, and the deletion itself
// stays buffered for the rows an earlier seal indexed: a deleted session
// stays visible until the next seal, like any other change. A seal applies
// the buffer to the index in that order, under the index's writer lock, and
// then publishes the new snapshot (id, sealed_at). It is also the Ingestor's
// open-domain catalog: the index's values plus those buffered for the next
// seal, so the cap on open-domain values holds between seals too. The index
// itself stays the query-side structure; it just changes only at seals. A query
// opens a DatasetView and reads the snapshot under one lock (Read), so the view
// is exactly the snapshot it is labelled with.
//
// Cost: a seal applies what was buffered since the previous one (the same
// work ingest did per commit before, now batched); the buffer holds one
// copy of each commit's deltas since the last seal (about 2 KiB per
// session commit of the study's shape). Queries pay nothing extra; they see
// data up to the last seal, at most snapshot_every old.
//
// Bounded buffer (issue 13). Without a bound, continuous ingest between
// two seals grew the buffer without limit (845 MiB after 2,000,000
// observations). Sealing early when it is full is NOT an option: a seal
// driven by the volume pushed would make whether an answer comes from the
// cache depend on records again (the leak above). Instead, once a
// dataset's buffer passes `server.snapshot_buffer_mib`, a fold thread
// applies it to the NEXT index: a private copy of the sealed index (made
// at the first fold after a seal; after a restart, the background rebuild
// is that copy) that no query reads. The next seal swaps the next index in
// and applies what was buffered since the last fold. Queries see exactly
// what they saw before; only memory changes: at most the buffer bound,
// plus one more copy of the index (bytes per session in docs/storage.md)
// while commits wait for a seal. Folding is ordered with seals (both hold
// persist_mu) and applies the buffer in commit order, so the next index
// equals what the seal would have built from the buffer.
#ifndef COHORTD_SERVER_INDEX_SNAPSHOT_H_
#define COHORTD_SERVER_INDEX_SNAPSHOT_H_

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cohortd/internal/storage.pb.h"
#include "server/common/clock.h"
#include "server/config/config.h"
#include "server/index/columnar_index.h"
#include "server/ingest/ingestor.h"
#include "server/storage/store.h"

namespace cohortd {

// One sealed snapshot of a dataset.
struct Snapshot {
  // 32 lower-case hex digits, 128 bits from OpenSSL's DRBG per seal: never
  // equal to an id of an earlier seal. A restart restores the last sealed
  // snapshot with its id (the same data, so its cached releases stay
  // valid).
  std::string id;
  // When it was sealed: it holds every push acknowledged before this time.
  absl::Time sealed_at;
};

// A query's consistent read: a view of the index and the snapshot it is.
struct SnapshotRead {
  std::unique_ptr<DatasetView> view;
  Snapshot snapshot;
};

// Told, under a dataset's buffer lock, how its snapshot's cut moves: for a
// query backend that keeps its own copy of the sessions (ClickHouse) and
// must answer a snapshot with exactly what the snapshot holds.
class SealObserver {
 public:
  virtual ~SealObserver() = default;
  // A commit, deletion or re-sent session of `dataset` was just buffered:
  // it is in the next seal.
  virtual void OnBuffered(const DatasetSpec& dataset) = 0;
  // A seal of `dataset` takes its cut: what was buffered before is in
  // snapshot `id`, nothing after.
  virtual void OnSealed(const DatasetSpec& dataset, const std::string& id) = 0;
};

// The sealing layer in front of the columnar index. Thread-safe: ingest
// calls OnCommitted on the committer thread, queries call Current/Read,
// the schedule thread and Admin.SealSnapshot call Seal concurrently.
class SnapshotIndex : public IngestListener, public OpenDomainCatalog {
 public:
  // Seals the first snapshot of every dataset of `config` over what
  // `index` holds now (Build it from the store first), with sealed_at =
  // clock->Now(). Start the Ingestor after this, with this object as its
  // listener. `config`, `index` and `clock` are borrowed and must outlive
  // it. Errors: Internal when no randomness is available for the ids.
  static absl::StatusOr<std::unique_ptr<SnapshotIndex>> Create(
      const Config* config, ColumnarIndex* index, Clock* clock);

  // The server's way in: for each dataset of `config`, loads the sealed
  // index persisted in `store` into `index` (created empty over
  // config->datasets) and restores its snapshot (id, sealed_at); Start()
  // then rebuilds the dataset from the store in the background for the
  // next seal. A dataset with no usable image (first start, config
  // changed) is built from the store now and sealed with a new id, as
  // Create does. Every seal is then persisted to `store`. Everything
  // borrowed must outlive the result.
  // Errors: DataLoss when a persisted image is damaged (naming its key) or
  // a record does not parse; FailedPrecondition when the store is not at
  // the current storage format; the store's errors; as Create.
  static absl::StatusOr<std::unique_ptr<SnapshotIndex>> Open(
      const Config* config, ColumnarIndex* index, Store* store, Clock* clock);

  // Stops the schedule thread if started.
  ~SnapshotIndex() override;

  // IngestListener: buffers the records until the next seal; queries do
  // not see them before. A dataset not in the config is ignored (the
  // Ingestor only commits configured datasets).
  void OnCommitted(const DatasetSpec& dataset,
                   const std::vector<CommittedSession>& sessions) override;
  // The same, keeping the deltas by moving them (no copy on ingest's
  // committer thread).
  void OnCommittedMoved(const DatasetSpec& dataset,
                        std::vector<CommittedSession>* sessions) override;
  // IngestListener: buffers the deletion, in order with the commits, until
  // the next seal, and drops the buffered deltas of the deleted sessions
  // (so they never reach the index). Queries see the sessions until the
  // next seal. A dataset not in the config is ignored.
  void OnDeleted(const DatasetSpec& dataset,
                 const std::vector<DeletedSession>& sessions) override;

  // Forwards to the seal observer only (the index already holds what the
  // store holds).
  void OnResent(const DatasetSpec& dataset,
                const std::vector<CommittedSession>& sessions) override;

  // Borrowed; call once, before the Ingestor starts and before Start.
  // Tells it the current snapshot of every dataset (OnSealed) at once.
  void SetSealObserver(SealObserver* observer);

  // OpenDomainCatalog: whether dimension `dim` of `dataset` holds `value`,
  // and how many values it holds, in the index or in a buffered commit.
  // Called on the committer thread (as OnCommitted); thread-safe.
  bool HasValue(const DatasetSpec& dataset, int dim,
                absl::string_view value) const override;
  size_t NumValues(const DatasetSpec& dataset, int dim) const override;

  // Seals `dataset` now: applies its buffer to the index (waiting for the
  // queries reading it to finish), then publishes a new snapshot and (when
  // opened over a store) persists it. Returns it. After a restart, first
  // waits for the background rebuild (see the file comment). A failed
  // persist is logged, not an error: the store keeps the previous image,
  // which a restart would serve until the next seal.
  // Errors: InvalidArgument for a dataset not in the config; Internal
  // when no randomness is available (the buffer is then kept for the next
  // seal and the previous snapshot stays current); the rebuild's error
  // (e.g. DataLoss) and Unavailable when stopped while waiting for it.
  absl::StatusOr<Snapshot> Seal(absl::string_view dataset);

  // Seals every dataset whose schedule has a boundary in (last check,
  // now], i.e. when floor(now / snapshot_every) moved on since the last
  // call (the first call only records where it is). Returns the number of
  // datasets sealed. Used by the schedule thread; exposed for tests with a
  // fake clock. Errors: as Seal (the other datasets are still sealed).
  absl::StatusOr<int> SealDue(absl::Time now);

  // Starts a thread that calls SealDue on the configured schedule (and,
  // after a restart, the rebuild thread); Stop ends them. Both
  // idempotent.
  void Start();
  void Stop();

  // The names of the datasets it seals, in name order.
  std::vector<std::string> Datasets() const;

  // The current snapshot of `dataset`. Errors: InvalidArgument for a
  // dataset not in the config.
  absl::StatusOr<Snapshot> Current(absl::string_view dataset) const;

  // A view of `dataset` and the snapshot it shows, taken together (no seal
  // in between). The view holds the index's reader lock: keep it for one
  // query only (DatasetView's rules). Errors: InvalidArgument for a
  // dataset not in the config.
  absl::StatusOr<SnapshotRead> Read(absl::string_view dataset) const;

  // Session changes (commits and deletions) buffered for `dataset`'s next
  // seal (0 for an unknown dataset). For tests and operators; never for a
  // published figure.
  size_t PendingSessions(absl::string_view dataset) const;

  // Whether `dataset`'s snapshot was restored from the store at Open and
  // not sealed since (its rebuild then awaits the next seal).
  bool Restored(absl::string_view dataset) const;

  // Applies the changes buffered for `dataset` to its next index (see
  // "Bounded buffer" above; queries do not see them before the next
  // seal), copying the sealed index first when there is no next index
  // yet. Returns the number of session changes folded: 0 when nothing is
  // buffered, or after a restart while the rebuild (the next index to
  // fold into) is not done. The fold thread calls it when the buffer
  // passes the bound; exposed for tests. Waits for a seal in progress.
  // Errors: InvalidArgument for a dataset not in the config; DataLoss if
  // the copy of the sealed index fails (the buffer is then kept).
  absl::StatusOr<size_t> Fold(absl::string_view dataset);

  // Estimated bytes held by the changes buffered for `dataset` (0 for an
  // unknown dataset): what `server.snapshot_buffer_mib` bounds. For tests
  // and the operator metrics; never for a published figure.
  size_t PendingBytes(absl::string_view dataset) const;

 private:
  // A run of consecutive buffered changes of one kind: commits (deltas) or
  // deletions, exactly one of the two non-empty.
  struct PendingChanges {
    std::vector<CommittedSession> commits;
    std::vector<DeletedSession> deletions;
  };
  struct DatasetState {
    const DatasetSpec* spec = nullptr;
    // Held by Seal from start to the end of its persist, so seals (and
    // their images) are stored in order. Acquired before seal_mu.
    absl::Mutex persist_mu;
    // Held exclusively by Seal across apply + publish, shared by Read, so
    // that a view and its snapshot always match. Acquired before mu.
    mutable absl::Mutex seal_mu ABSL_ACQUIRED_AFTER(persist_mu);
    Snapshot snapshot ABSL_GUARDED_BY(seal_mu);
    // The commits and deletions since the last seal, in commit order.
    mutable absl::Mutex mu ABSL_ACQUIRED_AFTER(seal_mu);
    std::vector<PendingChanges> pending ABSL_GUARDED_BY(mu);
    // Estimated heap bytes of `pending` (BufferedBytes).
    size_t pending_bytes ABSL_GUARDED_BY(mu) = 0;
    // Per open-domain dimension: values in `pending` (or being applied by
    // a seal) that the index did not hold when they were buffered.
    std::map<int, absl::flat_hash_set<std::string>> new_values
        ABSL_GUARDED_BY(mu);
    // After a restart: true until the seal that applies the rebuild;
    // `rebuild_error` is the rebuild's lasting failure.
    bool restored ABSL_GUARDED_BY(mu) = false;
    // The index the next seal swaps in before applying `pending`: the
    // background rebuild once done, and/or the sealed index with the
    // folded commits applied (Fold). Null when the next seal just applies
    // `pending` to the served index. Moved out only under persist_mu.
    std::unique_ptr<ColumnarDataset> next ABSL_GUARDED_BY(mu);
    absl::Status rebuild_error ABSL_GUARDED_BY(mu);
  };

  SnapshotIndex(const Config* config, ColumnarIndex* index, Store* store,
                Clock* clock);
  DatasetState* Find(absl::string_view dataset) const;
  // Adds the open-domain values of `session` the index lacks to
  // state->new_values.
  void NoteNewValues(DatasetState* state, const CommittedSession& session) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu);
  void Loop();
  // Rebuilds every restored dataset from the store, for its next seal.
  void RebuildLoop();
  // Folds every dataset whose buffer passed the bound, when woken.
  void FoldLoop();
  // Whether `state`'s buffer passed the bound and can be folded (not while
  // a restart's rebuild, the next index, is still running).
  bool FoldDue(const DatasetState& state) const
      ABSL_SHARED_LOCKS_REQUIRED(state.mu);
  // Wakes the fold thread. Call with no dataset lock held.
  void WakeFolder();
  // Writes the sealed state of `state`'s dataset to the store.
  void Persist(DatasetState* state, const Snapshot& snapshot);

  const Config* const config_;
  ColumnarIndex* const index_;
  Store* const store_;                // null: seals are not persisted (Create)
  SealObserver* observer_ = nullptr;  // set before concurrent use
  Clock* const clock_;
  // Fixed after Create; each state locks itself.
  std::map<std::string, std::unique_ptr<DatasetState>, std::less<>> datasets_;

  absl::Mutex schedule_mu_;
  // floor(time / snapshot_every) at the last SealDue; unset before it.
  bool schedule_started_ ABSL_GUARDED_BY(schedule_mu_) = false;
  int64_t last_period_ ABSL_GUARDED_BY(schedule_mu_) = 0;

  // Set (under fold_mu_) when a buffer passed the bound; the fold thread
  // clears it. fold_mu_ is never held with a dataset's locks.
  absl::Mutex fold_mu_;
  bool fold_wanted_ ABSL_GUARDED_BY(fold_mu_) = false;

  absl::Notification stop_;
  std::thread thread_;
  std::thread rebuild_thread_;
  std::thread fold_thread_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_INDEX_SNAPSHOT_H_

#include "server/index/snapshot.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/thread_priority.h"
#include "server/crypto/csprng.h"
#include "server/crypto/pseudonymizer.h"
#include "server/index/sealed_index.h"
#include "server/ingest/session_merge.h"

namespace cohortd {
namespace {

// 128 bits from OpenSSL's DRBG, as 32 hex digits.
absl::StatusOr<std::string> NewSnapshotId() {
  uint64_t words[2];
  RETURN_IF_ERROR(OpenSslRandomSource().Fill(words, 2));
  return HexEncode(
      absl::string_view(reinterpret_cast<const char*>(words), sizeof(words)));
}

// Heap bytes of a string beyond its inline buffer (libstdc++ keeps up to
// 15 characters inline), with malloc's per-chunk overhead.
size_t HeapBytes(const std::string& s) {
  return s.capacity() > 15 ? s.capacity() + 1 + 16 : 0;
}

// What one buffered change costs in memory, estimated from its sizes (the
// buffer bound counts these; RSS also pays the allocator's rounding).
size_t BufferedBytes(const CommittedSession& c) {
  size_t bytes = sizeof(c) + HeapBytes(c.session_id) +
                 HeapBytes(c.account_pseudonym) +
                 c.labels.capacity() * sizeof(c.labels[0]) +
                 c.measures.capacity() * sizeof(c.measures[0]) + 2 * 16;
  for (const auto& [name, value] : c.labels) {
    bytes += HeapBytes(name) + (value.has_value() ? HeapBytes(*value) : 0);
  }
  for (const auto& [name, value] : c.measures) bytes += HeapBytes(name);
  return bytes;
}

size_t BufferedBytes(const DeletedSession& d) {
  return sizeof(d) + HeapBytes(d.session_id) + HeapBytes(d.account_pseudonym);
}

// floor(t / period) over the Unix epoch.
int64_t PeriodOf(absl::Time t, absl::Duration period) {
  absl::Duration remainder;
  return absl::IDivDuration(absl::Floor(t - absl::UnixEpoch(), period), period,
                            &remainder);
}

}  // namespace

SnapshotIndex::SnapshotIndex(const Config* config, ColumnarIndex* index,
                             Store* store, Clock* clock)
    : config_(config), index_(index), store_(store), clock_(clock) {}

absl::StatusOr<std::unique_ptr<SnapshotIndex>> SnapshotIndex::Open(
    const Config* config, ColumnarIndex* index, Store* store, Clock* clock) {
  std::unique_ptr<SnapshotIndex> snapshots(
      new SnapshotIndex(config, index, store, clock));
  bool format_checked = false;
  for (const DatasetSpec& spec : config->datasets) {
    ColumnarDataset* dataset = index->FindDataset(spec.name);
    if (dataset == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", spec.name, " is not in the index"));
    }
    auto state = std::make_unique<DatasetState>();
    state->spec = &spec;
    const absl::Time start = absl::Now();
    ASSIGN_OR_RETURN(absl::optional<SealedIndexInfo> restored,
                     LoadSealedIndex(store, spec, dataset));
    if (restored.has_value()) {
      LogInfo("snapshot",
              "dataset %s: restored sealed snapshot %s of %s (%d sessions, "
              "%.1f MiB image) in %.3f s; what was committed after it stays "
              "buffered until the next seal",
              spec.name, restored->snapshot_id,
              absl::FormatTime(absl::RFC3339_full, restored->sealed_at,
                               absl::UTCTimeZone()),
              restored->sessions, restored->image_bytes / (1024.0 * 1024.0),
              absl::ToDoubleSeconds(absl::Now() - start));
      {
        absl::MutexLock lock(&state->seal_mu);
        state->snapshot = Snapshot{restored->snapshot_id, restored->sealed_at};
      }
      absl::MutexLock lock(&state->mu);
      state->restored = true;
    } else {
      if (!format_checked) {
        RETURN_IF_ERROR(CheckSessionFormatCurrent(store));
        format_checked = true;
      }
      RETURN_IF_ERROR(LoadDatasetFromStore(dataset, store, index->options()));
      ASSIGN_OR_RETURN(std::string id, NewSnapshotId());
      Snapshot snapshot{std::move(id), clock->Now()};
      {
        absl::MutexLock lock(&state->seal_mu);
        state->snapshot = snapshot;
      }
      snapshots->Persist(state.get(), snapshot);
    }
    snapshots->datasets_.emplace(spec.name, std::move(state));
  }
  return snapshots;
}

absl::StatusOr<std::unique_ptr<SnapshotIndex>> SnapshotIndex::Create(
    const Config* config, ColumnarIndex* index, Clock* clock) {
  std::unique_ptr<SnapshotIndex> snapshots(
      new SnapshotIndex(config, index, /*store=*/nullptr, clock));
  for (const DatasetSpec& spec : config->datasets) {
    auto state = std::make_unique<DatasetState>();
    state->spec = &spec;
    ASSIGN_OR_RETURN(std::string id, NewSnapshotId());
    {
      absl::MutexLock lock(&state->seal_mu);
      state->snapshot = Snapshot{std::move(id), clock->Now()};
    }
    snapshots->datasets_.emplace(spec.name, std::move(state));
  }
  return snapshots;
}

SnapshotIndex::~SnapshotIndex() { Stop(); }

SnapshotIndex::DatasetState* SnapshotIndex::Find(
    absl::string_view dataset) const {
  auto it = datasets_.find(dataset);
  return it == datasets_.end() ? nullptr : it->second.get();
}

void SnapshotIndex::OnCommitted(const DatasetSpec& dataset,
                                const std::vector<CommittedSession>& sessions) {
  DatasetState* state = Find(dataset.name);
  if (state == nullptr) return;
  if (sessions.empty()) return;
  bool fold = false;
  {
    absl::MutexLock lock(&state->mu);
    if (state->pending.empty() || !state->pending.back().deletions.empty()) {
      state->pending.emplace_back();
    }
    std::vector<CommittedSession>& commits = state->pending.back().commits;
    for (const CommittedSession& session : sessions) {
      NoteNewValues(state, session);
      // Deltas apply in commit order, so each is kept (they own their
      // data).
      commits.push_back(session);
      state->pending_bytes += BufferedBytes(commits.back());
    }
    if (observer_ != nullptr) observer_->OnBuffered(*state->spec);
    fold = FoldDue(*state);
  }
  if (fold) WakeFolder();
}

void SnapshotIndex::OnCommittedMoved(const DatasetSpec& dataset,
                                     std::vector<CommittedSession>* sessions) {
  DatasetState* state = Find(dataset.name);
  if (state == nullptr) return;
  if (sessions->empty()) return;
  bool fold = false;
  {
    absl::MutexLock lock(&state->mu);
    if (state->pending.empty() || !state->pending.back().deletions.empty()) {
      state->pending.emplace_back();
    }
    std::vector<CommittedSession>& commits = state->pending.back().commits;
    for (const CommittedSession& session : *sessions) {
      NoteNewValues(state, session);
      state->pending_bytes += BufferedBytes(session);
    }
    // The group's vector is taken whole when nothing is buffered; else
    // appended to with geometric growth (a push_back per session
    // reallocated and moved the buffer: ~3% of the committer).
    if (commits.empty()) {
      commits.swap(*sessions);
    } else {
      const size_t needed = commits.size() + sessions->size();
      if (commits.capacity() < needed) {
        commits.reserve(std::max(needed, 2 * commits.capacity()));
      }
      commits.insert(commits.end(), std::make_move_iterator(sessions->begin()),
                     std::make_move_iterator(sessions->end()));
    }
    if (observer_ != nullptr) observer_->OnBuffered(*state->spec);
    fold = FoldDue(*state);
  }
  if (fold) WakeFolder();
}

void SnapshotIndex::OnResent(const DatasetSpec& dataset,
                             const std::vector<CommittedSession>& sessions) {
  DatasetState* state = Find(dataset.name);
  if (state == nullptr || sessions.empty() || observer_ == nullptr) return;
  absl::MutexLock lock(&state->mu);
  observer_->OnBuffered(*state->spec);
}

void SnapshotIndex::SetSealObserver(SealObserver* observer) {
  observer_ = observer;
  for (auto& [name, state] : datasets_) {
    absl::MutexLock seal(&state->seal_mu);
    absl::MutexLock lock(&state->mu);
    observer_->OnSealed(*state->spec, state->snapshot.id);
  }
}

void SnapshotIndex::OnDeleted(const DatasetSpec& dataset,
                              const std::vector<DeletedSession>& sessions) {
  DatasetState* state = Find(dataset.name);
  if (state == nullptr || sessions.empty()) return;
  absl::flat_hash_set<std::pair<std::string, std::string>> deleted;
  for (const DeletedSession& session : sessions) {
    deleted.emplace(session.account_pseudonym, session.session_id);
  }
  bool fold = false;
  absl::ReleasableMutexLock lock(&state->mu);
  // The buffered deltas of a deleted session would only be undone by the
  // deletion at the seal: drop them, so the index never holds the session
  // (not even inside the seal). Commits after this call are new sessions.
  for (PendingChanges& changes : state->pending) {
    changes.commits.erase(
        std::remove_if(changes.commits.begin(), changes.commits.end(),
                       [&](const CommittedSession& c) {
                         return deleted.contains(
                             std::make_pair(c.account_pseudonym, c.session_id));
                       }),
        changes.commits.end());
  }
  state->pending.erase(
      std::remove_if(state->pending.begin(), state->pending.end(),
                     [](const PendingChanges& changes) {
                       return changes.commits.empty() &&
                              changes.deletions.empty();
                     }),
      state->pending.end());
  // The deletion stays, in order, for rows an earlier seal indexed (the
  // index ignores sessions it does not hold).
  if (state->pending.empty() || state->pending.back().deletions.empty()) {
    state->pending.emplace_back();
  }
  std::vector<DeletedSession>& deletions = state->pending.back().deletions;
  deletions.insert(deletions.end(), sessions.begin(), sessions.end());
  if (observer_ != nullptr) observer_->OnBuffered(*state->spec);
  state->pending_bytes = 0;
  for (const PendingChanges& changes : state->pending) {
    for (const CommittedSession& c : changes.commits) {
      state->pending_bytes += BufferedBytes(c);
    }
    for (const DeletedSession& d : changes.deletions) {
      state->pending_bytes += BufferedBytes(d);
    }
  }
  fold = FoldDue(*state);
  lock.Release();
  if (fold) WakeFolder();
}

void SnapshotIndex::NoteNewValues(DatasetState* state,
                                  const CommittedSession& session) const {
  const DatasetSpec& spec = *state->spec;
  for (const auto& [name, value] : session.labels) {
    if (!value.has_value()) continue;
    for (int dim = 0; dim < static_cast<int>(spec.dimensions.size()); ++dim) {
      if (spec.dimensions[dim].open_domain &&
          spec.dimensions[dim].name == name &&
          !index_->HasValue(spec, dim, *value)) {
        state->new_values[dim].insert(*value);
      }
    }
  }
}

bool SnapshotIndex::HasValue(const DatasetSpec& dataset, int dim,
                             absl::string_view value) const {
  DatasetState* state = Find(dataset.name);
  if (state == nullptr) return false;
  {
    absl::MutexLock lock(&state->mu);
    auto it = state->new_values.find(dim);
    if (it != state->new_values.end() && it->second.contains(value)) {
      return true;
    }
  }
  return index_->HasValue(dataset, dim, value);
}

size_t SnapshotIndex::NumValues(const DatasetSpec& dataset, int dim) const {
  DatasetState* state = Find(dataset.name);
  if (state == nullptr) return 0;
  // Buffered values leave new_values only after the index holds them, so
  // none is ever missed; one may be counted twice for an instant while a
  // seal applies it (an over-count, on the cap's safe side).
  size_t buffered = 0;
  {
    absl::MutexLock lock(&state->mu);
    auto it = state->new_values.find(dim);
    if (it != state->new_values.end()) buffered = it->second.size();
  }
  return index_->NumValues(dataset, dim) + buffered;
}

absl::StatusOr<Snapshot> SnapshotIndex::Seal(absl::string_view dataset) {
  DatasetState* state = Find(dataset);
  if (state == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", dataset, "'"));
  }
  absl::MutexLock persist(&state->persist_mu);
  // After a restart: the rebuild must be in before anything is applied
  // (it holds what was committed between the restored seal and the
  // restart). Waited for before seal_mu, so queries go on meanwhile.
  {
    absl::MutexLock lock(&state->mu);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
      return !state->restored || state->next != nullptr ||
             !state->rebuild_error.ok() || stop_.HasBeenNotified();
    };
    state->mu.Await(absl::Condition(&ready));
    if (state->restored && state->next == nullptr) {
      return state->rebuild_error.ok() ? absl::UnavailableError(absl::StrCat(
                                             "dataset ", dataset,
                                             ": shutting down before the "
                                             "index was rebuilt; not sealed"))
                                       : state->rebuild_error;
    }
  }
  // The id first: if the DRBG fails, nothing has moved.
  ASSIGN_OR_RETURN(std::string id, NewSnapshotId());
  absl::ReleasableMutexLock seal(&state->seal_mu);
  std::vector<PendingChanges> pending;
  std::unique_ptr<ColumnarDataset> next;
  absl::Time sealed_at;
  {
    absl::MutexLock lock(&state->mu);
    pending.swap(state->pending);
    state->pending_bytes = 0;
    next = std::move(state->next);
    state->restored = false;
    if (observer_ != nullptr) observer_->OnSealed(*state->spec, id);
    // Read under the buffer lock: every push acknowledged before this
    // instant had its commit buffered before it (the Ingestor calls
    // OnCommitted before acknowledging), so it is in `pending` or was
    // sealed before.
    sealed_at = clock_->Now();
  }
  size_t changes = 0;
  const bool replaced = next != nullptr;
  if (replaced) {
    // The next index: the sealed one with the commits folded since (in
    // order), or the store as of the rebuild's scan with the commits
    // folded since the restart (some already in it: re-applying them
    // changes nothing). What was buffered since the last fold follows.
    index_->FindDataset(state->spec->name)->ReplaceWith(next.get());
    next.reset();
  }
  if (!pending.empty() || replaced) {
    // In commit order. Waits for the views open on the dataset (queries of
    // the previous snapshot); no new view can open while seal_mu is held.
    for (const PendingChanges& run : pending) {
      if (!run.commits.empty()) {
        index_->OnCommitted(*state->spec, run.commits);
        changes += run.commits.size();
      }
      if (!run.deletions.empty()) {
        index_->OnDeleted(*state->spec, run.deletions);
        changes += run.deletions.size();
      }
    }
    // The applied values are the index's now; values only deleted sessions
    // had are gone. What remains new is what the commits buffered since
    // the swap bring.
    absl::MutexLock lock(&state->mu);
    state->new_values.clear();
    for (const PendingChanges& run : state->pending) {
      for (const CommittedSession& session : run.commits) {
        NoteNewValues(state, session);
      }
    }
  }
  state->snapshot = Snapshot{std::move(id), sealed_at};
  const Snapshot snapshot = state->snapshot;
  seal.Release();
  LogInfo("snapshot",
          "sealed %s at %s: %d session change(s) since the last "
          "seal",
          state->spec->name,
          absl::FormatTime(absl::RFC3339_full, sealed_at, absl::UTCTimeZone()),
          changes);
  Persist(state, snapshot);
  return snapshot;
}

void SnapshotIndex::Persist(DatasetState* state, const Snapshot& snapshot) {
  if (store_ == nullptr) return;
  const absl::Time start = absl::Now();
  // Reads the dataset under its reader lock (queries go on); only seals
  // change it, and they wait for persist_mu.
  absl::StatusOr<uint64_t> bytes =
      SaveSealedIndex(store_, *state->spec, snapshot.id, snapshot.sealed_at,
                      *index_->FindDataset(state->spec->name));
  if (!bytes.ok()) {
    LogWarning("snapshot",
               "dataset %s: snapshot %s sealed but not persisted (%s); a "
               "restart before the next seal would serve the previous one",
               state->spec->name, snapshot.id, bytes.status().ToString());
    return;
  }
  LogInfo("snapshot", "dataset %s: snapshot %s persisted (%.1f MiB) in %.3f s",
          state->spec->name, snapshot.id, *bytes / (1024.0 * 1024.0),
          absl::ToDoubleSeconds(absl::Now() - start));
}

void SnapshotIndex::RebuildLoop() {
  // Runs right after a restart, beside its first queries: they come first.
  RunInBackgroundPriority();
  for (const auto& [name, state] : datasets_) {
    {
      absl::MutexLock lock(&state->mu);
      if (!state->restored) continue;
    }
    while (!stop_.HasBeenNotified()) {
      absl::StatusOr<std::unique_ptr<ColumnarDataset>> rebuilt =
          ColumnarDataset::Create(state->spec, index_->options());
      absl::Status status = rebuilt.status();
      if (status.ok()) {
        status =
            LoadDatasetFromStore(rebuilt->get(), store_, index_->options(),
                                 [this] { return stop_.HasBeenNotified(); });
      }
      if (absl::IsCancelled(status)) return;
      if (status.ok()) {
        // Values the rebuild brings count toward the open-domain cap now,
        // as if they had been buffered by the commits that brought them.
        std::map<int, std::vector<std::string>> values;
        const DatasetSpec& spec = *state->spec;
        for (int dim = 0; dim < static_cast<int>(spec.dimensions.size());
             ++dim) {
          if (spec.dimensions[dim].open_domain) {
            values[dim] = (*rebuilt)->DimensionValues(dim);
          }
        }
        absl::ReleasableMutexLock lock(&state->mu);
        for (const auto& [dim, dim_values] : values) {
          for (const std::string& value : dim_values) {
            if (!index_->HasValue(spec, dim, value)) {
              state->new_values[dim].insert(value);
            }
          }
        }
        state->next = *std::move(rebuilt);
        // Commits buffered while it ran can now be folded into it.
        const bool fold = FoldDue(*state);
        lock.Release();
        if (fold) WakeFolder();
        break;
      }
      LogError("snapshot", "dataset %s: rebuilding the index failed: %s", name,
               status.ToString());
      if (absl::IsDataLoss(status) || absl::IsFailedPrecondition(status)) {
        absl::MutexLock lock(&state->mu);
        state->rebuild_error = status;
        break;
      }
      stop_.WaitForNotificationWithTimeout(absl::Seconds(1));
    }
  }
}

absl::StatusOr<int> SnapshotIndex::SealDue(absl::Time now) {
  {
    absl::MutexLock lock(&schedule_mu_);
    const int64_t period = PeriodOf(now, config_->snapshot_every);
    const bool due = schedule_started_ && period > last_period_;
    schedule_started_ = true;
    last_period_ = std::max(last_period_, period);
    if (!due) return 0;
  }
  int sealed = 0;
  absl::Status first_error;
  for (const auto& [name, state] : datasets_) {
    absl::StatusOr<Snapshot> snapshot = Seal(name);
    if (snapshot.ok()) {
      ++sealed;
    } else if (first_error.ok()) {
      first_error = snapshot.status();
    }
  }
  RETURN_IF_ERROR(first_error);
  return sealed;
}

void SnapshotIndex::Start() {
  if (thread_.joinable()) return;
  // Records the current period, so the first scheduled seal is at the
  // next boundary (the start itself was a seal)...
  (void)SealDue(clock_->Now());
  bool any_restored = false;
  absl::Time oldest = absl::InfiniteFuture();
  for (const auto& [name, state] : datasets_) {
    {
      absl::MutexLock lock(&state->mu);
      if (!state->restored) continue;
    }
    any_restored = true;
    absl::ReaderMutexLock lock(&state->seal_mu);
    oldest = std::min(oldest, state->snapshot.sealed_at);
  }
  if (any_restored) {
    // ... unless a restored snapshot was sealed in an earlier period: the
    // schedule passed a boundary while the server was down, so a seal is
    // due now, as it would have been (a matter of time, not of data).
    absl::MutexLock lock(&schedule_mu_);
    last_period_ =
        std::min(last_period_, PeriodOf(oldest, config_->snapshot_every));
    rebuild_thread_ = std::thread([this] { RebuildLoop(); });
  }
  thread_ = std::thread([this] { Loop(); });
  fold_thread_ = std::thread([this] { FoldLoop(); });
}

void SnapshotIndex::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  // A seal waiting for a rebuild re-checks its condition when the mutex
  // is released.
  for (const auto& [name, state] : datasets_) {
    absl::MutexLock lock(&state->mu);
  }
  { absl::MutexLock lock(&fold_mu_); }
  if (thread_.joinable()) thread_.join();
  if (rebuild_thread_.joinable()) rebuild_thread_.join();
  if (fold_thread_.joinable()) fold_thread_.join();
}

bool SnapshotIndex::Restored(absl::string_view dataset) const {
  DatasetState* state = Find(dataset);
  if (state == nullptr) return false;
  absl::MutexLock lock(&state->mu);
  return state->restored;
}

void SnapshotIndex::Loop() {
  while (!stop_.HasBeenNotified()) {
    const absl::Time now = clock_->Now();
    absl::StatusOr<int> sealed = SealDue(now);
    if (!sealed.ok()) {
      LogWarning("snapshot", "scheduled seal failed: %s",
                 sealed.status().ToString());
    }
    const absl::Duration every = config_->snapshot_every;
    const absl::Time next =
        absl::UnixEpoch() + absl::Floor(now - absl::UnixEpoch(), every) + every;
    stop_.WaitForNotificationWithTimeout(std::clamp(
        next - clock_->Now(), absl::Milliseconds(10), absl::Seconds(1)));
  }
}

std::vector<std::string> SnapshotIndex::Datasets() const {
  std::vector<std::string> names;
  for (const auto& [name, state] : datasets_) names.push_back(name);
  return names;
}

absl::StatusOr<Snapshot> SnapshotIndex::Current(
    absl::string_view dataset) const {
  DatasetState* state = Find(dataset);
  if (state == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", dataset, "'"));
  }
  absl::ReaderMutexLock lock(&state->seal_mu);
  return state->snapshot;
}

absl::StatusOr<SnapshotRead> SnapshotIndex::Read(
    absl::string_view dataset) const {
  DatasetState* state = Find(dataset);
  if (state == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", dataset, "'"));
  }
  absl::ReaderMutexLock lock(&state->seal_mu);
  SnapshotRead read;
  ASSIGN_OR_RETURN(read.view, index_->Read(dataset));
  read.snapshot = state->snapshot;
  return read;
}

bool SnapshotIndex::FoldDue(const DatasetState& state) const {
  return state.pending_bytes >
             static_cast<size_t>(config_->snapshot_buffer_bytes) &&
         !(state.restored && state.next == nullptr);
}

void SnapshotIndex::WakeFolder() {
  absl::MutexLock lock(&fold_mu_);
  fold_wanted_ = true;
}

void SnapshotIndex::FoldLoop() {
  RunInBackgroundPriority();
  for (;;) {
    {
      absl::MutexLock lock(&fold_mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_) {
        return fold_wanted_ || stop_.HasBeenNotified();
      };
      fold_mu_.Await(absl::Condition(&woken));
      if (stop_.HasBeenNotified()) return;
      fold_wanted_ = false;
    }
    for (const auto& [name, state] : datasets_) {
      {
        absl::MutexLock lock(&state->mu);
        if (!FoldDue(*state)) continue;
      }
      absl::StatusOr<size_t> folded = Fold(name);
      if (!folded.ok()) {
        LogError("snapshot", "dataset %s: folding the buffer failed: %s", name,
                 folded.status().ToString());
      }
    }
  }
}

absl::StatusOr<size_t> SnapshotIndex::Fold(absl::string_view dataset) {
  DatasetState* state = Find(dataset);
  if (state == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", dataset, "'"));
  }
  // Seals wait meanwhile: they must not take the next index (or the
  // buffer) while a fold holds it.
  absl::MutexLock persist(&state->persist_mu);
  const absl::Time start = absl::Now();
  std::vector<PendingChanges> pending;
  std::unique_ptr<ColumnarDataset> next;
  size_t bytes = 0;
  {
    absl::MutexLock lock(&state->mu);
    if (state->pending.empty() || (state->restored && state->next == nullptr)) {
      return 0;
    }
    pending.swap(state->pending);
    bytes = state->pending_bytes;
    state->pending_bytes = 0;
    next = std::move(state->next);
  }
  const bool copied = next == nullptr;
  if (copied) {
    // A private copy of the sealed index; only seals change that, and
    // they wait for persist_mu.
    absl::Status status;
    absl::StatusOr<std::unique_ptr<ColumnarDataset>> copy =
        ColumnarDataset::Create(state->spec, index_->options());
    status = copy.status();
    if (status.ok()) {
      std::string image;
      index_->FindDataset(state->spec->name)->Serialize(&image);
      status = (*copy)->Deserialize(image);
    }
    if (!status.ok()) {
      // Put the buffer back in front of what came since, in order.
      absl::MutexLock lock(&state->mu);
      for (PendingChanges& run : state->pending) {
        pending.push_back(std::move(run));
      }
      state->pending.swap(pending);
      state->pending_bytes += bytes;
      return status;
    }
    next = *std::move(copy);
  }
  size_t changes = 0;
  for (const PendingChanges& run : pending) {
    if (!run.commits.empty()) next->Apply(run.commits);
    if (!run.deletions.empty()) next->Remove(run.deletions);
    changes += run.commits.size() + run.deletions.size();
  }
  pending.clear();
  {
    absl::MutexLock lock(&state->mu);
    state->next = std::move(next);
  }
  LogInfo("snapshot",
          "dataset %s: folded %d buffered session change(s) (%.1f MiB) into "
          "the next index%s in %.3f s; queries see them at the next seal",
          state->spec->name, changes, bytes / (1024.0 * 1024.0),
          copied ? " (a copy of the sealed one)" : "",
          absl::ToDoubleSeconds(absl::Now() - start));
  return changes;
}

size_t SnapshotIndex::PendingBytes(absl::string_view dataset) const {
  DatasetState* state = Find(dataset);
  if (state == nullptr) return 0;
  absl::MutexLock lock(&state->mu);
  return state->pending_bytes;
}

size_t SnapshotIndex::PendingSessions(absl::string_view dataset) const {
  DatasetState* state = Find(dataset);
  if (state == nullptr) return 0;
  absl::MutexLock lock(&state->mu);
  size_t changes = 0;
  for (const PendingChanges& run : state->pending) {
    changes += run.commits.size() + run.deletions.size();
  }
  return changes;
}

}  // namespace cohortd

#include "server/query/snapshot.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/crypto/csprng.h"
#include "server/crypto/pseudonymizer.h"

namespace cohortd {
namespace {

// 128 bits from OpenSSL's DRBG, as 32 hex digits.
absl::StatusOr<std::string> NewSnapshotId() {
  uint64_t words[2];
  RETURN_IF_ERROR(OpenSslRandomSource().Fill(words, 2));
  return HexEncode(
      absl::string_view(reinterpret_cast<const char*>(words), sizeof(words)));
}

// floor(t / period) over the Unix epoch.
int64_t PeriodOf(absl::Time t, absl::Duration period) {
  absl::Duration remainder;
  return absl::IDivDuration(absl::Floor(t - absl::UnixEpoch(), period), period,
                            &remainder);
}

}  // namespace

SnapshotIndex::SnapshotIndex(const Config* config, ColumnarIndex* index,
                             Clock* clock)
    : config_(config), index_(index), clock_(clock) {}

absl::StatusOr<std::unique_ptr<SnapshotIndex>> SnapshotIndex::Create(
    const Config* config, ColumnarIndex* index, Clock* clock) {
  std::unique_ptr<SnapshotIndex> snapshots(
      new SnapshotIndex(config, index, clock));
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
  absl::MutexLock lock(&state->mu);
  if (state->pending.empty() || !state->pending.back().deletions.empty()) {
    state->pending.emplace_back();
  }
  std::vector<CommittedSession>& commits = state->pending.back().commits;
  for (const CommittedSession& session : sessions) {
    NoteNewValues(state, session);
    // Deltas apply in commit order, so each is kept (they own their data).
    commits.push_back(session);
  }
  if (observer_ != nullptr) observer_->OnBuffered(*state->spec);
}

void SnapshotIndex::OnCommittedMoved(const DatasetSpec& dataset,
                                     std::vector<CommittedSession>* sessions) {
  DatasetState* state = Find(dataset.name);
  if (state == nullptr) return;
  if (sessions->empty()) return;
  absl::MutexLock lock(&state->mu);
  if (state->pending.empty() || !state->pending.back().deletions.empty()) {
    state->pending.emplace_back();
  }
  std::vector<CommittedSession>& commits = state->pending.back().commits;
  for (CommittedSession& session : *sessions) {
    NoteNewValues(state, session);
    commits.push_back(std::move(session));
  }
  if (observer_ != nullptr) observer_->OnBuffered(*state->spec);
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
  absl::MutexLock lock(&state->mu);
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
  // The id first: if the DRBG fails, nothing has moved.
  ASSIGN_OR_RETURN(std::string id, NewSnapshotId());
  absl::MutexLock seal(&state->seal_mu);
  std::vector<PendingChanges> pending;
  absl::Time sealed_at;
  {
    absl::MutexLock lock(&state->mu);
    pending.swap(state->pending);
    if (observer_ != nullptr) observer_->OnSealed(*state->spec, id);
    // Read under the buffer lock: every push acknowledged before this
    // instant had its commit buffered before it (the Ingestor calls
    // OnCommitted before acknowledging), so it is in `pending` or was
    // sealed before.
    sealed_at = clock_->Now();
  }
  size_t changes = 0;
  if (!pending.empty()) {
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
  LogInfo("snapshot",
          "sealed %s at %s: %d session change(s) since the last "
          "seal",
          state->spec->name,
          absl::FormatTime(absl::RFC3339_full, sealed_at, absl::UTCTimeZone()),
          changes);
  return state->snapshot;
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
  // next boundary (the start itself was a seal).
  (void)SealDue(clock_->Now());
  thread_ = std::thread([this] { Loop(); });
}

void SnapshotIndex::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
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

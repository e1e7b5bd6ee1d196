#include "server/ingest/ingestor.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/ingest/session_merge.h"
#include "server/ingest/validator.h"
#include "server/storage/keys.h"

namespace cohortd {
namespace {

using ::cohortd::internal::SourceContribution;
using ::cohortd::internal::StoredSessionHeader;

// A group holds at most this many observations, which bounds the
// committer's memory and the size of one synced write.
constexpr size_t kMaxGroupObservations = 200000;

absl::StatusOr<uint64_t> ReadCounter(Store* store, absl::string_view key) {
  absl::StatusOr<std::string> value = store->Get(key);
  if (absl::IsNotFound(value.status())) return 0;
  if (!value.ok()) return value.status();
  uint64_t counter = 0;
  if (!absl::SimpleAtoi(*value, &counter)) {
    return absl::DataLossError(
        absl::StrCat("stored counter at '", key, "' is not a number"));
  }
  return counter;
}

template <typename Map>
bool SameMap(const Map& a, const Map& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [key, value] : a) {
    auto it = b.find(key);
    if (it == b.end() || !(it->second == value)) return false;
  }
  return true;
}

bool SameContent(const cohortd::internal::SourceContribution& a,
                 const cohortd::internal::SourceContribution& b) {
  return SameMap(a.labels(), b.labels()) && SameMap(a.measures(), b.measures());
}

// Per dataset, the open-domain dimensions by name.
std::map<const DatasetSpec*, absl::flat_hash_map<std::string, int>>
OpenDimensions(const Config& config) {
  std::map<const DatasetSpec*, absl::flat_hash_map<std::string, int>> out;
  for (const DatasetSpec& dataset : config.datasets) {
    auto& dims = out[&dataset];
    for (size_t d = 0; d < dataset.dimensions.size(); ++d) {
      if (dataset.dimensions[d].open_domain) {
        dims.emplace(dataset.dimensions[d].name, static_cast<int>(d));
      }
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Ingestor>> Ingestor::Create(
    const Config* config, Store* store, const Pseudonymizer* pseudonymizer,
    MetricsRegistry* metrics, IngestListener* listener,
    const OpenDomainCatalog* domains) {
  RETURN_IF_ERROR(CheckSessionFormatCurrent(store));
  ASSIGN_OR_RETURN(uint64_t sequence,
                   ReadCounter(store, keys::IngestSequenceKey()));
  return std::unique_ptr<Ingestor>(new Ingestor(
      config, store, pseudonymizer, metrics, listener, domains, sequence));
}

Ingestor::Ingestor(const Config* config, Store* store,
                   const Pseudonymizer* pseudonymizer, MetricsRegistry* metrics,
                   IngestListener* listener, const OpenDomainCatalog* domains,
                   uint64_t sequence)
    : config_(config),
      store_(store),
      pseudonymizer_(pseudonymizer),
      metrics_(metrics),
      listener_(listener),
      domains_(domains),
      push_latency_(metrics->GetHistogram(
          "cohortd_ingest_push_duration_seconds",
          "Time from receiving a push to its durable acknowledgement.", {},
          LatencyBucketsSeconds())),
      group_size_(metrics->GetHistogram(
          "cohortd_ingest_commit_group_observations",
          "Observations merged and written by one group commit.", {},
          {1, 10, 100, 1000, 10000, 100000, 1000000})),
      commit_latency_(metrics->GetHistogram(
          "cohortd_ingest_commit_duration_seconds",
          "Time to merge and durably write one commit group.", {},
          LatencyBucketsSeconds())),
      sequence_(sequence),
      open_dimensions_(OpenDimensions(*config)),
      committer_([this] { CommitterLoop(); }) {}

Ingestor::~Ingestor() {
  Shutdown();
  committer_.join();
}

void Ingestor::Shutdown() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  mu_.Await(absl::Condition(
      +[](Ingestor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
        return self->queue_.empty() && !self->committing_;
      },
      this));
}

absl::StatusOr<cohortd::v1::PushResponse> Ingestor::Push(
    const cohortd::v1::PushRequest& request) {
  const absl::Time start = absl::Now();
  const DatasetSpec* dataset = config_->FindDataset(request.dataset());
  if (dataset == nullptr) {
    std::vector<std::string> names;
    for (const auto& d : config_->datasets) names.push_back(d.name);
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", request.dataset(),
                     "'; datasets: ", absl::StrJoin(names, ", ")));
  }
  if (request.observations_size() > config_->max_batch_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "observations: batch of ", request.observations_size(),
        " observations is larger than the maximum of ", config_->max_batch_size,
        "; split it into smaller pushes"));
  }

  cohortd::v1::PushResponse response;
  Pending pending;
  pending.dataset = dataset;
  pending.items.reserve(request.observations_size());
  std::map<std::string, int> rejected_by_class;
  absl::flat_hash_map<absl::string_view, std::string> pseudonyms;
  for (int i = 0; i < request.observations_size(); ++i) {
    const cohortd::v1::Observation& obs = request.observations(i);
    if (auto error = ValidateObservation(*dataset, obs)) {
      cohortd::v1::Rejection* r = response.add_rejected();
      r->set_index(i);
      r->set_field(error->field);
      r->set_reason(error->reason);
      ++rejected_by_class[error->reason_class];
      continue;
    }
    Item& item = pending.items.emplace_back();
    item.index = i;
    item.session_id = obs.session_id();
    item.key = keys::SessionHeaderKey(dataset->name, obs.session_id());
    item.contribution_key =
        keys::ContributionKey(dataset->name, obs.session_id(), obs.source());
    // A batch often carries several sources of one session, hence one
    // account many times; HMAC each distinct id once per push. The map
    // lives only for this call and holds nothing beyond the request.
    auto [known, inserted] =
        pseudonyms.try_emplace(absl::string_view(obs.account_id()));
    if (inserted) {
      const Digest256 digest = pseudonymizer_->Pseudonymize(obs.account_id());
      known->second.assign(reinterpret_cast<const char*>(digest.data()),
                           digest.size());
    }
    item.account_pseudonym = known->second;
    item.session_start = obs.session_start().seconds();
    item.source = obs.source();
    item.contribution.mutable_labels()->insert(obs.labels().begin(),
                                               obs.labels().end());
    item.contribution.mutable_measures()->insert(obs.measures().begin(),
                                                 obs.measures().end());
  }

  if (!pending.items.empty()) {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("server is shutting down; retry later");
    }
    queue_.push_back(&pending);
    mu_.Await(absl::Condition(&pending.done));
  }
  if (!pending.status.ok()) return pending.status;

  for (const Item& item : pending.items) {
    switch (item.outcome) {
      case Item::Outcome::kAccepted:
        response.set_accepted(response.accepted() + 1);
        break;
      case Item::Outcome::kUnchanged:
        response.set_unchanged(response.unchanged() + 1);
        break;
      case Item::Outcome::kConflict: {
        cohortd::v1::Rejection* r = response.add_rejected();
        r->set_index(item.index);
        r->set_field(item.conflict_field);
        r->set_reason(item.conflict_reason);
        ++rejected_by_class[item.conflict_class];
        break;
      }
    }
  }
  // Validation rejections were appended first; present all in index order.
  std::sort(response.mutable_rejected()->begin(),
            response.mutable_rejected()->end(),
            [](const auto& a, const auto& b) { return a.index() < b.index(); });

  metrics_
      ->GetCounter("cohortd_ingest_observations_total",
                   "Observations by outcome.",
                   {{"dataset", dataset->name}, {"outcome", "accepted"}})
      ->Increment(response.accepted());
  metrics_
      ->GetCounter("cohortd_ingest_observations_total",
                   "Observations by outcome.",
                   {{"dataset", dataset->name}, {"outcome", "unchanged"}})
      ->Increment(response.unchanged());
  for (const auto& [reason_class, count] : rejected_by_class) {
    metrics_
        ->GetCounter("cohortd_ingest_rejections_total",
                     "Rejected observations by reason class.",
                     {{"dataset", dataset->name}, {"reason", reason_class}})
        ->Increment(count);
  }
  push_latency_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return response;
}

void Ingestor::CommitterLoop() {
  for (;;) {
    std::vector<Pending*> group;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Ingestor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return !self->queue_.empty() || self->stopping_;
          },
          this));
      if (queue_.empty()) return;  // stopping, and nothing left to commit
      size_t observations = 0;
      // A deletion is a group of its own: pushes queued before it commit
      // before it, pushes queued after it after it.
      while (!queue_.empty() && queue_.front()->deletion == nullptr &&
             (group.empty() || observations + queue_.front()->items.size() <=
                                   kMaxGroupObservations)) {
        observations += queue_.front()->items.size();
        group.push_back(queue_.front());
        queue_.pop_front();
      }
      if (group.empty()) {  // a deletion is at the front
        group.push_back(queue_.front());
        queue_.pop_front();
      }
      committing_ = true;
    }
    const absl::Status status = group.front()->deletion != nullptr
                                    ? CommitDeletion(group.front())
                                    : CommitGroup(group);
    if (!status.ok()) {
      LogError("ingest", "commit of %d push(es) failed: %s", group.size(),
               status.ToString());
    }
    absl::MutexLock lock(&mu_);
    for (Pending* pending : group) {
      pending->status = status;
      pending->done = true;
    }
    committing_ = false;
  }
}

absl::Status Ingestor::CommitGroup(const std::vector<Pending*>& group) {
  const absl::Time start = absl::Now();
  // Sessions touched by this group: the stored header with this group's
  // changes, and the delta of the merged view for the listener.
  struct Touched {
    const DatasetSpec* dataset = nullptr;
    std::string session_id;
    StoredSessionHeader header;
    bool exists = false;  // stored, or created by this group
    bool header_dirty = false;
    bool changed = false;
    // Contribution keys of this session in `contributions` below.
    std::vector<const std::string*> contribution_keys;
    // The merged values this group set, and the names a replaced
    // contribution dropped while no later one set them again: those are
    // recomputed from the session's other contributions at the end.
    absl::flat_hash_map<std::string, absl::optional<std::string>> labels;
    absl::flat_hash_map<std::string, absl::optional<double>> measures;
    absl::flat_hash_set<std::string> dropped_labels;
    absl::flat_hash_set<std::string> dropped_measures;
  };
  // (session, source) contributions read or written by this group.
  struct Contribution {
    bool exists = false;
    bool dirty = false;
    std::string source;
    SourceContribution value;
  };
  // Node maps: `order`, `written` and contribution_keys point into them.
  absl::node_hash_map<std::string, Touched> touched;
  std::vector<const std::string*> order;  // first-touch order
  absl::node_hash_map<std::string, Contribution> contributions;
  std::vector<const std::string*> written;  // dirty contributions, in order
  // Open-domain values this group adds, per (dataset, dimension).
  absl::flat_hash_map<std::pair<const DatasetSpec*, int>,
                      absl::flat_hash_set<std::string>>
      new_values;
  const size_t max_sources =
      static_cast<size_t>(config_->ingest.max_sources_per_session);
  const size_t max_values =
      static_cast<size_t>(config_->ingest.max_open_domain_values);
  uint64_t sequence = sequence_;
  size_t observations = 0;
  std::vector<std::pair<int, const std::string*>> adding;  // scratch

  for (Pending* pending : group) {
    const DatasetSpec* dataset = pending->dataset;
    const auto& open_dims = open_dimensions_[dataset];
    for (Item& item : pending->items) {
      ++observations;
      auto [it, first_touch] = touched.try_emplace(item.key);
      Touched& t = it->second;
      if (first_touch) {
        t.dataset = dataset;
        t.session_id = item.session_id;
        order.push_back(&it->first);
        absl::StatusOr<std::string> stored = store_->Get(item.key);
        if (stored.ok()) {
          if (!t.header.ParseFromString(*stored)) {
            return absl::DataLossError(
                absl::StrCat("stored header of a session in dataset '",
                             dataset->name, "' cannot be parsed"));
          }
          t.exists = true;
        } else if (!absl::IsNotFound(stored.status())) {
          return stored.status();
        }
      }
      if (t.exists && t.header.account_pseudonym() != item.account_pseudonym) {
        item.outcome = Item::Outcome::kConflict;
        item.conflict_class = "conflict";
        item.conflict_field = "account_id";
        item.conflict_reason = absl::StrCat(
            "session '", item.session_id,
            "' is already stored under a different account; a session "
            "belongs to exactly one account");
        continue;
      }
      if (t.exists &&
          t.header.session_start_unix_seconds() != item.session_start) {
        item.outcome = Item::Outcome::kConflict;
        item.conflict_class = "conflict";
        item.conflict_field = "session_start";
        // The stored value is a record field: it is not echoed back, as no
        // API returns raw records (another worker may have pushed it).
        item.conflict_reason = absl::StrCat(
            "differs from the session_start already stored for session '",
            item.session_id, "'; a session's start never changes");
        continue;
      }

      auto [cit, first_read] = contributions.try_emplace(item.contribution_key);
      Contribution& c = cit->second;
      if (first_read) {
        c.source = item.source;
        t.contribution_keys.push_back(&cit->first);
        // A session that does not exist has no contributions: its header
        // and contributions are only ever written together.
        if (t.exists) {
          absl::StatusOr<std::string> stored =
              store_->Get(item.contribution_key);
          if (stored.ok()) {
            if (!c.value.ParseFromString(*stored)) {
              return absl::DataLossError(
                  absl::StrCat("stored contribution of a session in dataset '",
                               dataset->name, "' cannot be parsed"));
            }
            c.exists = true;
          } else if (!absl::IsNotFound(stored.status())) {
            return stored.status();
          }
        }
      }
      if (c.exists && SameContent(c.value, item.contribution)) {
        item.outcome = Item::Outcome::kUnchanged;
        continue;
      }

      // Caps, checked before anything of the item is applied.
      if (!c.exists && t.header.source_count() >= max_sources) {
        item.outcome = Item::Outcome::kConflict;
        item.conflict_class = "limit";
        item.conflict_field = "source";
        item.conflict_reason = absl::StrCat(
            "session '", item.session_id, "' already has ",
            t.header.source_count(),
            " sources, the limit (ingest.max_sources_per_session = ",
            max_sources, "); a new source is not stored");
        continue;
      }
      adding.clear();
      if (domains_ != nullptr && !open_dims.empty()) {
        for (const auto& [name, value] : item.contribution.labels()) {
          auto dim = open_dims.find(name);
          if (dim == open_dims.end()) continue;
          auto& added = new_values[{dataset, dim->second}];
          if (added.contains(value) ||
              domains_->HasValue(*dataset, dim->second, value)) {
            continue;
          }
          const size_t held =
              domains_->NumValues(*dataset, dim->second) + added.size();
          if (held >= max_values) {
            item.outcome = Item::Outcome::kConflict;
            item.conflict_class = "limit";
            item.conflict_field = absl::StrCat("labels.", name);
            item.conflict_reason = absl::StrCat(
                "is a new value, but dimension '", name, "' of dataset '",
                dataset->name, "' already holds ", held,
                " distinct values, the limit "
                "(ingest.max_open_domain_values = ",
                max_values, ")");
            break;
          }
          adding.emplace_back(dim->second, &value);
        }
        if (item.outcome == Item::Outcome::kConflict) continue;
        for (const auto& [dim, value] : adding) {
          new_values[{dataset, dim}].insert(*value);
        }
      }

      if (!t.exists) {
        t.exists = true;
        t.header.set_account_pseudonym(item.account_pseudonym);
        t.header.set_session_start_unix_seconds(item.session_start);
        t.header_dirty = true;
      }
      if (!c.exists) {
        t.header.set_source_count(t.header.source_count() + 1);
        t.header_dirty = true;
      }
      // The new contribution has the highest sequence, so it wins every
      // name it has; a name only the replaced one had may fall back to
      // another source.
      if (c.exists) {
        for (const auto& [name, value] : c.value.labels()) {
          if (item.contribution.labels().count(name) == 0) {
            t.labels.erase(name);
            t.dropped_labels.insert(name);
          }
        }
        for (const auto& [name, value] : c.value.measures()) {
          if (item.contribution.measures().count(name) == 0) {
            t.measures.erase(name);
            t.dropped_measures.insert(name);
          }
        }
      }
      for (const auto& [name, value] : item.contribution.labels()) {
        t.labels[name] = value;
        if (!t.dropped_labels.empty()) t.dropped_labels.erase(name);
      }
      for (const auto& [name, value] : item.contribution.measures()) {
        t.measures[name] = value;
        if (!t.dropped_measures.empty()) t.dropped_measures.erase(name);
      }
      item.contribution.set_sequence(++sequence);
      c.value = std::move(item.contribution);
      c.exists = true;
      if (!c.dirty) {
        c.dirty = true;
        written.push_back(&cit->first);
      }
      t.changed = true;
      item.outcome = Item::Outcome::kAccepted;
    }
  }

  // Names dropped by a replaced contribution: the latest other source that
  // has them wins, or nobody does. Reads that session's contributions only.
  for (const std::string* key : order) {
    Touched& t = touched.at(*key);
    if (t.dropped_labels.empty() && t.dropped_measures.empty()) continue;
    SessionMerger merger;
    absl::flat_hash_set<absl::string_view> overlaid;
    for (const std::string* ckey : t.contribution_keys) {
      const Contribution& c = contributions.at(*ckey);
      overlaid.insert(*ckey);
      if (c.exists) merger.Add(c.source, c.value);
    }
    absl::Status scan_status;
    std::string ds, session, source;
    SourceContribution stored;
    RETURN_IF_ERROR(store_->Scan(
        keys::SessionRecordPrefix(t.dataset->name, t.session_id),
        [&](absl::string_view k, absl::string_view v) {
          if (overlaid.contains(k)) return true;
          if (!keys::ParseSessionRecordKey(k, &ds, &session, &source)) {
            return true;
          }
          if (source.empty()) return true;  // the header
          if (!stored.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
            scan_status = absl::DataLossError(
                absl::StrCat("stored contribution of a session in dataset '",
                             t.dataset->name, "' cannot be parsed"));
            return false;
          }
          merger.Add(source, stored);
          return true;
        }));
    RETURN_IF_ERROR(scan_status);
    CommittedSession merged;
    merger.Finish(&merged);
    absl::flat_hash_map<std::string, std::string> merged_labels;
    for (auto& [name, value] : merged.labels) {
      if (t.dropped_labels.contains(name)) merged_labels[name] = *value;
    }
    absl::flat_hash_map<std::string, double> merged_measures;
    for (auto& [name, value] : merged.measures) {
      if (t.dropped_measures.contains(name)) merged_measures[name] = *value;
    }
    for (const std::string& name : t.dropped_labels) {
      auto found = merged_labels.find(name);
      t.labels[name] = found == merged_labels.end()
                           ? absl::nullopt
                           : absl::optional<std::string>(found->second);
    }
    for (const std::string& name : t.dropped_measures) {
      auto found = merged_measures.find(name);
      t.measures[name] = found == merged_measures.end()
                             ? absl::nullopt
                             : absl::optional<double>(found->second);
    }
  }

  WriteBatch batch;
  std::map<std::pair<std::string, std::string>, uint64_t> new_versions;
  std::map<const DatasetSpec*, std::vector<CommittedSession>> committed;
  for (const std::string* key : order) {
    Touched& t = touched.at(*key);
    if (!t.changed) continue;
    if (t.header_dirty) batch.Put(*key, t.header.SerializeAsString());
    CommittedSession& session = committed[t.dataset].emplace_back();
    session.session_id = t.session_id;
    session.account_pseudonym = t.header.account_pseudonym();
    session.session_start_unix_seconds = t.header.session_start_unix_seconds();
    session.labels.reserve(t.labels.size());
    for (auto& [name, value] : t.labels) {
      session.labels.emplace_back(name, std::move(value));
    }
    session.measures.reserve(t.measures.size());
    for (auto& [name, value] : t.measures) {
      session.measures.emplace_back(name, value);
    }
    // Every change to a session bumps the data version of its month, which
    // invalidates cached releases that read that month (query/).
    const auto month_key = std::make_pair(
        t.dataset->name, MonthOf(t.header.session_start_unix_seconds()));
    if (new_versions.count(month_key) == 0) {
      auto known = versions_.find(month_key);
      uint64_t version = 0;
      if (known != versions_.end()) {
        version = known->second;
      } else {
        ASSIGN_OR_RETURN(version, ReadCounter(store_, keys::DataVersionKey(
                                                          month_key.first,
                                                          month_key.second)));
      }
      new_versions[month_key] = version + 1;
    }
  }
  for (const std::string* key : written) {
    batch.Put(*key, contributions.at(*key).value.SerializeAsString());
  }
  if (batch.empty()) {
    group_size_->Observe(observations);
    return absl::OkStatus();
  }
  for (const auto& [month_key, version] : new_versions) {
    batch.Put(keys::DataVersionKey(month_key.first, month_key.second),
              absl::StrCat(version));
  }
  batch.Put(keys::IngestSequenceKey(), absl::StrCat(sequence));
  absl::WriterMutexLock fence(&commit_fence_);
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));

  sequence_ = sequence;
  for (const auto& [month_key, version] : new_versions) {
    versions_[month_key] = version;
  }
  if (listener_ != nullptr) {
    for (const auto& [dataset, sessions] : committed) {
      listener_->OnCommitted(*dataset, sessions);
    }
  }
  for (const auto& [dataset, sessions] : committed) {
    NoteForDeletions(*dataset, sessions);
  }
  group_size_->Observe(observations);
  commit_latency_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

// --- Deletion (erasure and retention) ------------------------------------

absl::StatusOr<int64_t> Ingestor::DeleteSessions(const std::string& dataset,
                                                 SessionPredicate predicate,
                                                 DeletionWriter writer) {
  const DatasetSpec* spec = config_->FindDataset(dataset);
  if (spec == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", dataset.substr(0, 64), "'"));
  }
  Deletion deletion{std::move(predicate), std::move(writer), {}, {}, 0};
  deletion.watch.dataset = spec;
  // Watch the commits from now on, then scan: a session committed before
  // the watch began is in the scan's snapshot, one committed after it is
  // in the watch, so the committer misses none.
  {
    absl::MutexLock lock(&watch_mu_);
    watches_.push_back(&deletion.watch);
  }
  auto unwatch = [&] {
    absl::MutexLock lock(&watch_mu_);
    watches_.erase(
        std::find(watches_.begin(), watches_.end(), &deletion.watch));
  };
  // The full scan runs here, on the caller's thread, not on the committer:
  // pushes do not wait for it.
  absl::Status scanned =
      ScanForDeletion(*spec, deletion.predicate, &deletion.candidates);
  if (!scanned.ok()) {
    unwatch();
    return scanned;
  }
  Pending pending;
  pending.dataset = spec;
  pending.deletion = &deletion;
  bool stopping = false;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    if (!stopping) {
      queue_.push_back(&pending);
      mu_.Await(absl::Condition(&pending.done));
    }
  }
  unwatch();
  if (stopping) {
    return absl::UnavailableError("server is shutting down; retry later");
  }
  if (!pending.status.ok()) return pending.status;
  return deletion.deleted;
}

absl::Status Ingestor::ScanForDeletion(
    const DatasetSpec& dataset, const SessionPredicate& predicate,
    std::vector<DeletedSession>* matches) const {
  // Only the headers are parsed; contributions are skipped by their key.
  absl::Status parse_status;
  StoredSessionHeader header;
  std::string key_dataset;
  std::string session_id;
  std::string source;
  RETURN_IF_ERROR(store_->Scan(
      keys::SessionPrefix(dataset.name),
      [&](absl::string_view key, absl::string_view value) {
        if (!keys::ParseSessionRecordKey(key, &key_dataset, &session_id,
                                         &source)) {
          parse_status = absl::DataLossError(absl::StrCat(
              "a session key in dataset '", dataset.name, "' is malformed"));
          return false;
        }
        if (!source.empty()) return true;  // a contribution
        if (!header.ParseFromArray(value.data(),
                                   static_cast<int>(value.size()))) {
          parse_status = absl::DataLossError(
              absl::StrCat("stored header of a session in dataset '",
                           dataset.name, "' cannot be parsed"));
          return false;
        }
        DeletedSession session{session_id, header.account_pseudonym(),
                               header.session_start_unix_seconds()};
        if (predicate(session)) matches->push_back(std::move(session));
        return true;
      }));
  return parse_status;
}

void Ingestor::NoteForDeletions(const DatasetSpec& dataset,
                                const std::vector<CommittedSession>& sessions) {
  absl::MutexLock lock(&watch_mu_);
  for (DeletionWatch* watch : watches_) {
    if (watch->dataset != &dataset) continue;
    for (const CommittedSession& s : sessions) {
      watch->committed.push_back(
          {s.session_id, s.account_pseudonym, s.session_start_unix_seconds});
    }
  }
}

absl::StatusOr<uint64_t> Ingestor::CurrentVersion(
    const std::pair<std::string, std::string>& month_key) {
  auto known = versions_.find(month_key);
  if (known != versions_.end()) return known->second;
  return ReadCounter(store_,
                     keys::DataVersionKey(month_key.first, month_key.second));
}

absl::Status Ingestor::CommitDeletion(Pending* pending) {
  const DatasetSpec& dataset = *pending->dataset;
  Deletion& deletion = *pending->deletion;
  // The scan's matches plus the matching sessions committed since the
  // watch began, each once, and only those still stored (another deletion
  // may have removed one meanwhile). Point reads: O(matches), not a scan.
  std::vector<DeletedSession> doomed;
  std::vector<std::string> doomed_keys;
  absl::flat_hash_set<std::string> seen;
  auto consider = [&](DeletedSession session) -> absl::Status {
    if (!seen.insert(session.session_id).second) return absl::OkStatus();
    // Every key of the session (header and contributions) is under one
    // prefix (storage/keys.h).
    const size_t before = doomed_keys.size();
    RETURN_IF_ERROR(store_->Scan(
        keys::SessionRecordPrefix(dataset.name, session.session_id),
        [&](absl::string_view key, absl::string_view) {
          doomed_keys.emplace_back(key);
          return true;
        }));
    if (doomed_keys.size() > before) doomed.push_back(std::move(session));
    return absl::OkStatus();
  };
  std::vector<DeletedSession> committed;
  {
    absl::MutexLock lock(&watch_mu_);
    committed.swap(deletion.watch.committed);
  }
  // Latest first: a session's newest commit carries its current header.
  for (auto it = committed.rbegin(); it != committed.rend(); ++it) {
    if (deletion.predicate(*it)) RETURN_IF_ERROR(consider(std::move(*it)));
  }
  for (DeletedSession& candidate : deletion.candidates) {
    RETURN_IF_ERROR(consider(std::move(candidate)));
  }
  if (doomed.empty() && deletion.writer == nullptr) return absl::OkStatus();

  WriteBatch batch;
  std::map<std::pair<std::string, std::string>, uint64_t> new_versions;
  for (const std::string& key : doomed_keys) batch.Delete(key);
  for (const DeletedSession& d : doomed) {
    // As for a push: a changed month invalidates the cached releases that
    // read it (query/), so no later answer is served from before the
    // deletion.
    const auto month_key =
        std::make_pair(dataset.name, MonthOf(d.session_start_unix_seconds));
    if (new_versions.count(month_key) == 0) {
      ASSIGN_OR_RETURN(const uint64_t version, CurrentVersion(month_key));
      new_versions[month_key] = version + 1;
    }
  }
  for (const auto& [month_key, version] : new_versions) {
    batch.Put(keys::DataVersionKey(month_key.first, month_key.second),
              absl::StrCat(version));
  }
  const int64_t count = static_cast<int64_t>(doomed.size());
  absl::WriterMutexLock fence(&commit_fence_);
  auto write = [&] { return store_->Write(batch, /*sync=*/true); };
  if (deletion.writer != nullptr) {
    RETURN_IF_ERROR(deletion.writer(count, &batch, write));
  } else {
    RETURN_IF_ERROR(write());
  }
  for (const auto& [month_key, version] : new_versions) {
    versions_[month_key] = version;
  }
  deletion.deleted = count;
  if (listener_ != nullptr && !doomed.empty()) {
    listener_->OnDeleted(dataset, doomed);
  }
  return absl::OkStatus();
}

}  // namespace cohortd

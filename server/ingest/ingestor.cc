#include "server/ingest/ingestor.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/ingest/validator.h"
#include "server/storage/keys.h"

namespace cohortd {
namespace {

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

}  // namespace

absl::StatusOr<std::unique_ptr<Ingestor>> Ingestor::Create(
    const Config* config, Store* store, const Pseudonymizer* pseudonymizer,
    MetricsRegistry* metrics, IngestListener* listener) {
  ASSIGN_OR_RETURN(uint64_t sequence,
                   ReadCounter(store, keys::IngestSequenceKey()));
  return std::unique_ptr<Ingestor>(new Ingestor(
      config, store, pseudonymizer, metrics, listener, sequence));
}

Ingestor::Ingestor(const Config* config, Store* store,
                   const Pseudonymizer* pseudonymizer,
                   MetricsRegistry* metrics, IngestListener* listener,
                   uint64_t sequence)
    : config_(config),
      store_(store),
      pseudonymizer_(pseudonymizer),
      metrics_(metrics),
      listener_(listener),
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
        " observations is larger than the maximum of ",
        config_->max_batch_size, "; split it into smaller pushes"));
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
    item.key = keys::SessionKey(dataset->name, obs.session_id());
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
        ++rejected_by_class["conflict"];
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
      while (!queue_.empty() &&
             (group.empty() || observations + queue_.front()->items.size() <=
                                   kMaxGroupObservations)) {
        observations += queue_.front()->items.size();
        group.push_back(queue_.front());
        queue_.pop_front();
      }
      committing_ = true;
    }
    const absl::Status status = CommitGroup(group);
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
  // Session records touched by this group, merged in push order.
  struct Touched {
    const DatasetSpec* dataset;
    std::string session_id;
    cohortd::internal::StoredSession record;
    bool dirty = false;
  };
  absl::flat_hash_map<std::string, Touched> touched;
  std::vector<std::string> order;  // first-touch order, for a stable write
  uint64_t sequence = sequence_;
  size_t observations = 0;

  for (Pending* pending : group) {
    for (Item& item : pending->items) {
      ++observations;
      auto it = touched.find(item.key);
      if (it == touched.end()) {
        Touched t{pending->dataset, item.session_id, {}, false};
        absl::StatusOr<std::string> stored = store_->Get(item.key);
        if (stored.ok()) {
          if (!t.record.ParseFromString(*stored)) {
            return absl::DataLossError(absl::StrCat(
                "stored record of a session in dataset '",
                pending->dataset->name, "' cannot be parsed"));
          }
        } else if (!absl::IsNotFound(stored.status())) {
          return stored.status();
        }
        it = touched.emplace(item.key, std::move(t)).first;
        order.push_back(item.key);
      }
      cohortd::internal::StoredSession& record = it->second.record;
      const bool is_new = record.account_pseudonym().empty();
      if (!is_new && record.account_pseudonym() != item.account_pseudonym) {
        item.outcome = Item::Outcome::kConflict;
        item.conflict_field = "account_id";
        item.conflict_reason = absl::StrCat(
            "session '", item.session_id,
            "' is already stored under a different account; a session "
            "belongs to exactly one account");
        continue;
      }
      if (!is_new &&
          record.session_start_unix_seconds() != item.session_start) {
        item.conflict_field = "session_start";
        item.outcome = Item::Outcome::kConflict;
        // The stored value is a record field: it is not echoed back, as no
        // API returns raw records (another worker may have pushed it).
        item.conflict_reason = absl::StrCat(
            "differs from the session_start already stored for session '",
            item.session_id, "'; a session's start never changes");
        continue;
      }
      auto source = record.sources().find(item.source);
      if (source != record.sources().end() &&
          SameContent(source->second, item.contribution)) {
        item.outcome = Item::Outcome::kUnchanged;
        continue;
      }
      if (is_new) {
        record.set_account_pseudonym(item.account_pseudonym);
        record.set_session_start_unix_seconds(item.session_start);
      }
      item.contribution.set_sequence(++sequence);
      (*record.mutable_sources())[item.source] = std::move(item.contribution);
      it->second.dirty = true;
      item.outcome = Item::Outcome::kAccepted;
    }
  }

  WriteBatch batch;
  std::map<std::pair<std::string, std::string>, uint64_t> new_versions;
  std::map<const DatasetSpec*, std::vector<CommittedSession>> committed;
  for (const std::string& key : order) {
    const Touched& t = touched.at(key);
    if (!t.dirty) continue;
    batch.Put(key, t.record.SerializeAsString());
    committed[t.dataset].push_back({t.session_id, &t.record});
    // Every change to a session bumps the data version of its month, which
    // invalidates cached releases that read that month (query/).
    const auto month_key = std::make_pair(
        t.dataset->name, MonthOf(t.record.session_start_unix_seconds()));
    if (new_versions.count(month_key) == 0) {
      auto known = versions_.find(month_key);
      uint64_t version = 0;
      if (known != versions_.end()) {
        version = known->second;
      } else {
        ASSIGN_OR_RETURN(version,
                         ReadCounter(store_, keys::DataVersionKey(
                                                 month_key.first,
                                                 month_key.second)));
      }
      new_versions[month_key] = version + 1;
    }
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
  group_size_->Observe(observations);
  commit_latency_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

}  // namespace cohortd

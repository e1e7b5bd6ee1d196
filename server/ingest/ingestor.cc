#include "server/ingest/ingestor.h"

#include <pthread.h>

#include <algorithm>
#include <deque>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/wire_encoding.h"
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
// The committer keeps its write batch's memory between groups up to this.
constexpr size_t kMaxKeptBatchBytes = size_t{16} << 20;

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

// --- The stored encoding of a contribution -------------------------------
// A SourceContribution in protobuf wire format, written by hand in one
// canonical form (labels, then measures, each sorted by name, then the
// sequence) straight from the request's views: no protobuf maps are built
// on the ingest path. Any protobuf parser reads it (map entries are
// messages with key 1 and value 2); readers never depend on the order.

// Tags: SourceContribution.labels = 1 and .measures = 2 (length-delimited
// map entries, wire_encoding.h), .sequence = 3 (varint).
constexpr uint8_t kLabelsTag = (1 << 3) | 2;
constexpr uint8_t kMeasuresTag = (2 << 3) | 2;
constexpr uint8_t kSequenceTag = (3 << 3) | 0;

// The contribution of `obs` without its sequence (EncodeSequence's field
// follows it in the stored value).
void EncodeContribution(const ObservationRef& obs, std::string* out) {
  size_t size = 0;
  for (const auto& [name, value] : obs.labels) {
    size += wire::StringMapEntryBytes(name, value);
  }
  for (const auto& [name, value] : obs.measures) {
    size += wire::DoubleMapEntryBytes(name);
  }
  out->clear();
  out->reserve(size + 11);
  for (const auto& [name, value] : obs.labels) {
    wire::AppendStringMapEntry(kLabelsTag, name, value, out);
  }
  for (const auto& [name, value] : obs.measures) {
    wire::AppendDoubleMapEntry(kMeasuresTag, name, value, out);
  }
}

// The sequence field into `out` (room for 11 bytes); returns its size.
size_t EncodeSequence(uint64_t sequence, char* out) {
  out[0] = static_cast<char>(kSequenceTag);
  return 1 + wire::EncodeVarint(sequence, out + 1);
}

// Whether `stored` is exactly `body` followed by a sequence field: the
// same content, as this encoder writes it.
bool IsBodyWithSequence(absl::string_view stored, absl::string_view body) {
  if (stored.size() < body.size() + 2 ||
      stored.substr(0, body.size()) != body ||
      static_cast<uint8_t>(stored[body.size()]) != kSequenceTag) {
    return false;
  }
  absl::string_view rest = stored.substr(body.size() + 1);
  for (size_t i = 0; i < rest.size(); ++i) {
    if ((static_cast<uint8_t>(rest[i]) & 0x80) == 0) {
      return i + 1 == rest.size() && i < 10;
    }
  }
  return false;
}

// Whether the stored contribution has exactly the labels and measures of
// `obs` (whose names are sorted and unique).
bool SameContent(const SourceContribution& stored, const ObservationRef& obs) {
  if (static_cast<size_t>(stored.labels().size()) != obs.labels.size() ||
      static_cast<size_t>(stored.measures().size()) != obs.measures.size()) {
    return false;
  }
  for (const auto& [name, value] : obs.labels) {
    auto it = stored.labels().find(std::string(name));
    if (it == stored.labels().end() || it->second != value) return false;
  }
  for (const auto& [name, value] : obs.measures) {
    auto it = stored.measures().find(std::string(name));
    if (it == stored.measures().end() || !(it->second == value)) return false;
  }
  return true;
}

// Whether sorted `names` holds `name`.
template <typename Entry>
bool HasName(const std::vector<Entry>& names, absl::string_view name) {
  auto it = std::lower_bound(
      names.begin(), names.end(), name,
      [](const Entry& e, absl::string_view n) { return e.first < n; });
  return it != names.end() && it->first == name;
}

// A small map from name to value kept as a vector: a session's merged
// delta has a few dozen names at most.
template <typename V>
V* FindOrAdd(std::vector<std::pair<absl::string_view, V>>* entries,
             absl::string_view name) {
  for (auto& [n, v] : *entries) {
    if (n == name) return &v;
  }
  return &entries->emplace_back(name, V()).second;
}

void EraseName(std::vector<absl::string_view>* names, absl::string_view name) {
  auto it = std::find(names->begin(), names->end(), name);
  if (it != names->end()) names->erase(it);
}

void AddName(std::vector<absl::string_view>* names, absl::string_view name) {
  if (std::find(names->begin(), names->end(), name) == names->end()) {
    names->push_back(name);
  }
}

template <typename V>
void EraseEntry(std::vector<std::pair<absl::string_view, V>>* entries,
                absl::string_view name) {
  for (auto it = entries->begin(); it != entries->end(); ++it) {
    if (it->first == name) {
      entries->erase(it);
      return;
    }
  }
}

// A key of the committer's maps with its hash, computed on the RPC thread
// that built the key (Item::key_hash): the single committer thread only
// compares.
struct HashedKey {
  absl::string_view key;
  size_t hash;
  bool operator==(const HashedKey& other) const { return key == other.key; }
};
struct HashedKeyHash {
  size_t operator()(const HashedKey& k) const { return k.hash; }
};
using HashedKeyMap = absl::flat_hash_map<HashedKey, size_t, HashedKeyHash>;

// Per dataset, the open-domain dimensions: (name, index).
std::map<const DatasetSpec*, std::vector<std::pair<std::string, int>>>
OpenDimensions(const Config& config) {
  std::map<const DatasetSpec*, std::vector<std::pair<std::string, int>>> out;
  for (const DatasetSpec& dataset : config.datasets) {
    auto& dims = out[&dataset];
    for (size_t d = 0; d < dataset.dimensions.size(); ++d) {
      if (dataset.dimensions[d].open_domain) {
        dims.emplace_back(dataset.dimensions[d].name, static_cast<int>(d));
      }
    }
  }
  return out;
}

// The index of the open-domain dimension `name` in `dims`, or -1. A scan:
// a dataset has a handful of open-domain dimensions, and every label of
// every observation is looked up (hashing each name cost ~4% of the
// committer).
int FindOpenDimension(const std::vector<std::pair<std::string, int>>& dims,
                      absl::string_view name) {
  for (const auto& [dim_name, dim] : dims) {
    if (dim_name == name) return dim;
  }
  return -1;
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

absl::StatusOr<const DatasetSpec*> Ingestor::CheckRequest(
    absl::string_view dataset_name, size_t observations) const {
  const DatasetSpec* dataset = config_->FindDataset(dataset_name);
  if (dataset == nullptr) {
    std::vector<std::string> names;
    for (const auto& d : config_->datasets) names.push_back(d.name);
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", EchoName(dataset_name),
                     "'; datasets: ", absl::StrJoin(names, ", ")));
  }
  if (observations > static_cast<size_t>(config_->max_batch_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "observations: batch of ", observations,
        " observations is larger than the maximum of ", config_->max_batch_size,
        "; split it into smaller pushes"));
  }
  return dataset;
}

absl::StatusOr<cohortd::v1::PushResponse> Ingestor::Push(
    const cohortd::v1::PushRequest& request) {
  ASSIGN_OR_RETURN(
      const DatasetSpec* dataset,
      CheckRequest(request.dataset(),
                   static_cast<size_t>(request.observations_size())));
  std::vector<ObservationRef> refs;
  refs.reserve(request.observations_size());
  for (const cohortd::v1::Observation& obs : request.observations()) {
    refs.push_back(ObservationRef::Of(obs));
  }
  return PushValid(dataset, refs);
}

absl::StatusOr<cohortd::v1::PushResponse> Ingestor::Push(
    absl::string_view dataset_name,
    absl::Span<const ObservationRef> observations) {
  ASSIGN_OR_RETURN(const DatasetSpec* dataset,
                   CheckRequest(dataset_name, observations.size()));
  return PushValid(dataset, observations);
}

absl::StatusOr<cohortd::v1::PushResponse> Ingestor::PushValid(
    const DatasetSpec* dataset, absl::Span<const ObservationRef> observations) {
  if (listener_ != nullptr) RETURN_IF_ERROR(listener_->Admit());
  const absl::Time start = absl::Now();
  const int n = static_cast<int>(observations.size());
  cohortd::v1::PushResponse response;
  Pending pending;
  pending.dataset = dataset;
  pending.items.reserve(n);
  std::map<std::string, int> rejected_by_class;
  // A batch often carries several sources of one session, hence one
  // account many times; HMAC each distinct id once per push. The map
  // lives only for this call and holds nothing beyond the request; the
  // pseudonyms' storage is reserved up front, so views of them stay valid.
  absl::flat_hash_map<absl::string_view, size_t> pseudonym_of;
  std::vector<Digest256> pseudonyms;
  pseudonyms.reserve(n);
  const std::string dataset_prefix = absl::StrCat(
      keys::kSessionPrefix, keys::EscapeKeyComponent(dataset->name), "/");
  for (int i = 0; i < n; ++i) {
    const ObservationRef& obs = observations[i];
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
    item.obs = &obs;
    // "s/<dataset>/<session>/<source>" (storage/keys.h); the header's key
    // is its prefix up to the source.
    item.contribution_key.reserve(
        dataset_prefix.size() + obs.session_id.size() + obs.source.size() + 8);
    item.contribution_key = dataset_prefix;
    keys::AppendEscapedKeyComponent(obs.session_id, &item.contribution_key);
    item.contribution_key.push_back('/');
    const size_t header_key_size = item.contribution_key.size();
    keys::AppendEscapedKeyComponent(obs.source, &item.contribution_key);
    item.key =
        absl::string_view(item.contribution_key).substr(0, header_key_size);
    // Hashed here, on the caller's thread, for the committer's maps.
    item.key_hash = absl::Hash<absl::string_view>()(item.key);
    item.contribution_key_hash =
        absl::Hash<absl::string_view>()(item.contribution_key);
    auto [known, inserted] =
        pseudonym_of.try_emplace(obs.account_id, pseudonyms.size());
    if (inserted) {
      pseudonyms.push_back(pseudonymizer_->Pseudonymize(obs.account_id));
    }
    const Digest256& digest = pseudonyms[known->second];
    item.account_pseudonym = absl::string_view(
        reinterpret_cast<const char*>(digest.data()), digest.size());
    item.session_start = obs.session_start_seconds;
    EncodeContribution(obs, &item.value);
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

  const int validation_rejections = response.rejected_size();
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
  if (validation_rejections > 0 &&
      response.rejected_size() > validation_rejections) {
    std::sort(
        response.mutable_rejected()->begin(),
        response.mutable_rejected()->end(),
        [](const auto& a, const auto& b) { return a.index() < b.index(); });
  }

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
  // Named so that per-thread CPU figures (bench/ingest/throughput.sh, perf,
  // top -H) can tell the committer from the RPC threads.
  pthread_setname_np(pthread_self(), "ingest-commit");
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
  // changes, and the delta of the merged view for the listener. Names and
  // values are views of the items (which outlive the group) or of
  // `keep` below.
  struct Touched {
    const DatasetSpec* dataset = nullptr;
    absl::string_view key;  // of the header: the session's prefix
    absl::string_view session_id;
    // A view of the first item's pseudonym, or of the stored header's copy
    // in `keep`.
    absl::string_view account_pseudonym;
    int64_t session_start = 0;
    uint32_t source_count = 0;
    bool exists = false;  // stored, or created by this group
    bool stored = false;  // stored before this group
    bool header_dirty = false;
    bool changed = false;
    bool unchanged_seen = false;  // an item re-pushed equal bytes
    // This session's entries in `contributions` below.
    std::vector<int> contributions;
    // The merged values this group set, and the names a replaced
    // contribution dropped while no later one set them again: those are
    // recomputed from the session's other contributions at the end.
    std::vector<std::pair<absl::string_view, absl::optional<absl::string_view>>>
        labels;
    std::vector<std::pair<absl::string_view, absl::optional<double>>> measures;
    std::vector<absl::string_view> dropped_labels;
    std::vector<absl::string_view> dropped_measures;
  };
  // (session, source) contributions read or written by this group.
  struct Contribution {
    bool exists = false;
    bool dirty = false;
    bool listed = false;  // in its session's `contributions`
    absl::string_view key;
    absl::string_view source;
    // Its content: this group's latest item for it, else as stored.
    const Item* item = nullptr;
    uint64_t sequence = 0;  // assigned to `item`
    std::string stored;
  };
  size_t observations = 0;
  for (const Pending* pending : group) observations += pending->items.size();
  std::vector<Touched> touched;  // in first-touch order
  touched.reserve(observations);
  HashedKeyMap touched_at;
  touched_at.reserve(observations);
  std::vector<Contribution> contributions;
  contributions.reserve(observations);
  HashedKeyMap contribution_at;
  contribution_at.reserve(observations);
  // Replaced stored contributions and recomputed values: what views of
  // names and values outside the items point into (deque: stable).
  std::deque<SourceContribution> replaced;
  std::deque<std::string> keep;
  // Open-domain values this group adds, per (dataset, dimension).
  absl::flat_hash_map<std::pair<const DatasetSpec*, int>,
                      absl::flat_hash_set<std::string>>
      new_values;
  const size_t max_sources =
      static_cast<size_t>(config_->ingest.max_sources_per_session);
  const size_t max_values =
      static_cast<size_t>(config_->ingest.max_open_domain_values);
  uint64_t sequence = sequence_;
  std::vector<std::pair<int, absl::string_view>> adding;  // scratch
  StoredSessionHeader header;                             // scratch
  absl::Status header_error;

  // The sessions the group touches, and their stored headers, read with
  // one MultiGet before anything is merged: only this thread writes
  // headers, so they cannot change before the group's own write.
  // touched_of[k]: the session of the group's k-th item.
  std::vector<uint32_t> touched_of;
  touched_of.reserve(observations);
  for (Pending* pending : group) {
    for (Item& item : pending->items) {
      auto [tit, first_touch] = touched_at.try_emplace(
          HashedKey{item.key, item.key_hash}, touched.size());
      if (first_touch) {
        Touched& t = touched.emplace_back();
        t.dataset = pending->dataset;
        t.key = item.key;
        t.session_id = item.obs->session_id;
      }
      touched_of.push_back(static_cast<uint32_t>(tit->second));
    }
  }
  {
    std::vector<absl::string_view> header_keys;
    header_keys.reserve(touched.size());
    for (const Touched& t : touched) header_keys.push_back(t.key);
    RETURN_IF_ERROR(
        store_->MultiGet(header_keys, [&](size_t i, absl::string_view stored) {
          Touched& t = touched[i];
          if (!header.ParseFromArray(stored.data(),
                                     static_cast<int>(stored.size()))) {
            if (header_error.ok()) {
              header_error = absl::DataLossError(
                  absl::StrCat("stored header of a session in dataset '",
                               t.dataset->name, "' cannot be parsed"));
            }
            return;
          }
          t.account_pseudonym = keep.emplace_back(header.account_pseudonym());
          t.session_start = header.session_start_unix_seconds();
          t.source_count = header.source_count();
          t.exists = true;
          t.stored = true;
        }));
    RETURN_IF_ERROR(header_error);
  }

  // The contributions the group touches, and the stored ones among them,
  // read with one MultiGet likewise. A session not stored before the group
  // has no stored contributions (its header and contributions are only
  // ever written together): none are read for it.
  // contribution_of[k]: the contribution of the group's k-th item.
  std::vector<uint32_t> contribution_of;
  contribution_of.reserve(observations);
  {
    std::vector<absl::string_view> read_keys;
    std::vector<uint32_t> read_of;  // the contribution of read_keys[i]
    size_t k = 0;
    for (Pending* pending : group) {
      for (Item& item : pending->items) {
        const Touched& t = touched[touched_of[k++]];
        auto [cit, first_read] = contribution_at.try_emplace(
            HashedKey{item.contribution_key, item.contribution_key_hash},
            contributions.size());
        if (first_read) {
          Contribution& c = contributions.emplace_back();
          c.key = item.contribution_key;
          c.source = item.obs->source;
          if (t.stored) {
            read_keys.push_back(c.key);
            read_of.push_back(static_cast<uint32_t>(cit->second));
          }
        }
        contribution_of.push_back(static_cast<uint32_t>(cit->second));
      }
    }
    if (!read_keys.empty()) {
      RETURN_IF_ERROR(
          store_->MultiGet(read_keys, [&](size_t i, absl::string_view stored) {
            Contribution& c = contributions[read_of[i]];
            c.stored.assign(stored.data(), stored.size());
            c.exists = true;
          }));
    }
  }

  size_t k = 0;  // the item's position in the group
  for (Pending* pending : group) {
    const DatasetSpec* dataset = pending->dataset;
    const auto& open_dims = open_dimensions_[dataset];
    for (Item& item : pending->items) {
      const ObservationRef& obs = *item.obs;
      Touched& t = touched[touched_of[k++]];
      if (t.exists && t.account_pseudonym != item.account_pseudonym) {
        item.outcome = Item::Outcome::kConflict;
        item.conflict_class = "conflict";
        item.conflict_field = "account_id";
        item.conflict_reason = absl::StrCat(
            "session '", obs.session_id,
            "' is already stored under a different account; a session "
            "belongs to exactly one account");
        continue;
      }
      if (t.exists && t.session_start != item.session_start) {
        item.outcome = Item::Outcome::kConflict;
        item.conflict_class = "conflict";
        item.conflict_field = "session_start";
        // The stored value is a record field: it is not echoed back, as no
        // API returns raw records (another worker may have pushed it).
        item.conflict_reason = absl::StrCat(
            "differs from the session_start already stored for session '",
            obs.session_id, "'; a session's start never changes");
        continue;
      }

      const uint32_t ci = contribution_of[k - 1];
      Contribution& c = contributions[ci];
      if (!c.listed) {
        c.listed = true;
        t.contributions.push_back(static_cast<int>(ci));
      }
      // The stored form of what it holds, parsed only when needed.
      const SourceContribution* old = nullptr;
      if (c.exists) {
        bool same = false;
        if (c.item != nullptr) {
          same = c.item->value == item.value;
        } else if (IsBodyWithSequence(c.stored, item.value)) {
          same = true;
        } else {
          SourceContribution& parsed = replaced.emplace_back();
          if (!parsed.ParseFromString(c.stored)) {
            return absl::DataLossError(
                absl::StrCat("stored contribution of a session in dataset '",
                             dataset->name, "' cannot be parsed"));
          }
          old = &parsed;
          same = SameContent(parsed, obs);
        }
        if (same) {
          item.outcome = Item::Outcome::kUnchanged;
          t.unchanged_seen = true;
          continue;
        }
      }

      // Caps, checked before anything of the item is applied.
      if (!c.exists && t.source_count >= max_sources) {
        item.outcome = Item::Outcome::kConflict;
        item.conflict_class = "limit";
        item.conflict_field = "source";
        item.conflict_reason = absl::StrCat(
            "session '", obs.session_id, "' already has ", t.source_count,
            " sources, the limit (ingest.max_sources_per_session = ",
            max_sources, "); a new source is not stored");
        continue;
      }
      adding.clear();
      if (domains_ != nullptr && !open_dims.empty()) {
        for (const auto& [name, value] : obs.labels) {
          const int dim = FindOpenDimension(open_dims, name);
          if (dim < 0) continue;
          auto& added = new_values[{dataset, dim}];
          if (added.contains(value) ||
              domains_->HasValue(*dataset, dim, value)) {
            continue;
          }
          const size_t held = domains_->NumValues(*dataset, dim) + added.size();
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
          adding.emplace_back(dim, value);
        }
        if (item.outcome == Item::Outcome::kConflict) continue;
        for (const auto& [dim, value] : adding) {
          new_values[{dataset, dim}].emplace(value);
        }
      }

      if (!t.exists) {
        t.exists = true;
        t.account_pseudonym = item.account_pseudonym;
        t.session_start = item.session_start;
        t.header_dirty = true;
        t.labels.reserve(16);
        t.measures.reserve(16);
      }
      if (!c.exists) {
        ++t.source_count;
        t.header_dirty = true;
      }
      // The new contribution has the highest sequence, so it wins every
      // name it has; a name only the replaced one had may fall back to
      // another source.
      if (c.exists) {
        auto drop_label = [&](absl::string_view name) {
          if (HasName(obs.labels, name)) return;
          EraseEntry(&t.labels, name);
          AddName(&t.dropped_labels, name);
        };
        auto drop_measure = [&](absl::string_view name) {
          if (HasName(obs.measures, name)) return;
          EraseEntry(&t.measures, name);
          AddName(&t.dropped_measures, name);
        };
        if (c.item != nullptr) {
          for (const auto& entry : c.item->obs->labels) drop_label(entry.first);
          for (const auto& entry : c.item->obs->measures) {
            drop_measure(entry.first);
          }
        } else {
          // Parsed by the comparison above (equal bytes would have made
          // the item unchanged).
          for (const auto& entry : old->labels()) drop_label(entry.first);
          for (const auto& entry : old->measures()) drop_measure(entry.first);
        }
      }
      for (const auto& [name, value] : obs.labels) {
        *FindOrAdd(&t.labels, name) = value;
        if (!t.dropped_labels.empty()) EraseName(&t.dropped_labels, name);
      }
      for (const auto& [name, value] : obs.measures) {
        *FindOrAdd(&t.measures, name) = value;
        if (!t.dropped_measures.empty()) EraseName(&t.dropped_measures, name);
      }
      c.item = &item;
      c.sequence = ++sequence;
      c.exists = true;
      c.dirty = true;
      t.changed = true;
      item.outcome = Item::Outcome::kAccepted;
    }
  }

  // Names dropped by a replaced contribution: the latest other source that
  // has them wins, or nobody does. Reads that session's contributions only.
  for (Touched& t : touched) {
    if (t.dropped_labels.empty() && t.dropped_measures.empty()) continue;
    SessionMerger merger;
    absl::flat_hash_set<absl::string_view> overlaid;
    SourceContribution value;
    for (int ci : t.contributions) {
      const Contribution& c = contributions[ci];
      overlaid.insert(c.key);
      if (!c.exists) continue;
      const bool parsed = c.item != nullptr
                              ? value.ParseFromString(c.item->value)
                              : value.ParseFromString(c.stored);
      if (!parsed) {
        return absl::DataLossError(
            absl::StrCat("stored contribution of a session in dataset '",
                         t.dataset->name, "' cannot be parsed"));
      }
      if (c.item != nullptr) value.set_sequence(c.sequence);
      merger.Add(c.source, value);
    }
    absl::Status scan_status;
    std::string ds, session, source;
    RETURN_IF_ERROR(
        store_->Scan(t.key, [&](absl::string_view k, absl::string_view v) {
          if (overlaid.contains(k)) return true;
          if (!keys::ParseSessionRecordKey(k, &ds, &session, &source)) {
            return true;
          }
          if (source.empty()) return true;  // the header
          if (!value.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
            scan_status = absl::DataLossError(
                absl::StrCat("stored contribution of a session in dataset '",
                             t.dataset->name, "' cannot be parsed"));
            return false;
          }
          merger.Add(source, value);
          return true;
        }));
    RETURN_IF_ERROR(scan_status);
    CommittedSession merged;
    merger.Finish(&merged);
    for (absl::string_view name : t.dropped_labels) {
      absl::optional<absl::string_view> found;
      for (const auto& [n, v] : merged.labels) {
        if (n == name) found = keep.emplace_back(*v);
      }
      *FindOrAdd(&t.labels, name) = found;
    }
    for (absl::string_view name : t.dropped_measures) {
      absl::optional<double> found;
      for (const auto& [n, v] : merged.measures) {
        if (n == name) found = *v;
      }
      *FindOrAdd(&t.measures, name) = found;
    }
  }

  // The committer's batch, reused: its memory stays mapped.
  WriteBatch& batch = group_batch_;
  batch.Clear();
  std::string value;  // scratch
  std::map<const DatasetSpec*, std::vector<CommittedSession>> committed;
  // The vector of the last session's dataset (a group is mostly one).
  const DatasetSpec* committed_dataset = nullptr;
  std::vector<CommittedSession>* committed_sessions = nullptr;
  size_t changed = 0;
  for (const Touched& t : touched) changed += t.changed ? 1 : 0;
  for (Touched& t : touched) {
    if (!t.changed) continue;
    if (t.header_dirty) {
      header.set_account_pseudonym(t.account_pseudonym.data(),
                                   t.account_pseudonym.size());
      header.set_session_start_unix_seconds(t.session_start);
      header.set_source_count(t.source_count);
      header.SerializeToString(&value);
      batch.Put(t.key, value);
    }
    // One session's keys in key order, after its header: RocksDB's
    // memtable inserts neighbouring keys faster.
    std::sort(t.contributions.begin(), t.contributions.end(),
              [&](int a, int b) {
                return contributions[a].key < contributions[b].key;
              });
    for (int ci : t.contributions) {
      const Contribution& c = contributions[ci];
      if (!c.dirty) continue;
      // The body and its sequence field go into the batch in place.
      char suffix[11];
      batch.PutParts(
          c.key, c.item->value,
          absl::string_view(suffix, EncodeSequence(c.sequence, suffix)));
    }
    if (t.dataset != committed_dataset) {
      committed_dataset = t.dataset;
      committed_sessions = &committed[t.dataset];
      if (committed_sessions->empty()) committed_sessions->reserve(changed);
    }
    CommittedSession& session = committed_sessions->emplace_back();
    session.session_id = std::string(t.session_id);
    session.account_pseudonym = std::string(t.account_pseudonym);
    session.session_start_unix_seconds = t.session_start;
    session.labels.reserve(t.labels.size());
    for (const auto& [name, value] : t.labels) {
      session.labels.emplace_back(std::string(name),
                                  value.has_value()
                                      ? absl::optional<std::string>(*value)
                                      : absl::nullopt);
    }
    session.measures.reserve(t.measures.size());
    for (const auto& [name, value] : t.measures) {
      session.measures.emplace_back(std::string(name), value);
    }
  }
  // Sessions an unchanged re-push touched, for a listener that asks for
  // them (IngestListener::WantsResent): their whole merged view as stored.
  std::map<const DatasetSpec*, std::vector<CommittedSession>> resent;
  const bool want_resent = listener_ != nullptr && listener_->WantsResent();
  if (batch.empty() && !want_resent) {
    group_size_->Observe(observations);
    return absl::OkStatus();
  }
  absl::WriterMutexLock fence(&commit_fence_);
  if (!batch.empty()) {
    batch.Put(keys::IngestSequenceKey(), absl::StrCat(sequence));
    const absl::Status written = store_->Write(batch, /*sync=*/true);
    // A batch past kMaxKeptBatchBytes is not kept (bounded memory).
    if (batch.capacity() > kMaxKeptBatchBytes) group_batch_ = WriteBatch();
    RETURN_IF_ERROR(written);
    sequence_ = sequence;
  }
  if (want_resent) {
    for (Touched& t : touched) {
      if (!t.unchanged_seen || !t.exists) continue;
      RETURN_IF_ERROR(ReadMergedView(t.key, t.dataset->name,
                                     &resent[t.dataset].emplace_back()));
      CommittedSession& s = resent[t.dataset].back();
      s.session_id = std::string(t.session_id);
      s.account_pseudonym = std::string(t.account_pseudonym);
      s.session_start_unix_seconds = t.session_start;
    }
  }

  for (auto& [dataset, sessions] : committed) {
    NoteForDeletions(*dataset, sessions);
    if (listener_ != nullptr) listener_->OnCommittedMoved(*dataset, &sessions);
  }
  for (auto& [dataset, sessions] : resent) {
    listener_->OnResent(*dataset, sessions);
  }
  group_size_->Observe(observations);
  commit_latency_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status Ingestor::ReadMergedView(absl::string_view session_key,
                                      absl::string_view dataset,
                                      CommittedSession* out) {
  SessionMerger merger;
  cohortd::internal::SourceContribution value;
  absl::Status scan_status;
  std::string ds, session, source;
  RETURN_IF_ERROR(
      store_->Scan(session_key, [&](absl::string_view k, absl::string_view v) {
        if (!keys::ParseSessionRecordKey(k, &ds, &session, &source)) {
          return true;
        }
        if (source.empty()) return true;  // the header
        if (!value.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
          scan_status = absl::DataLossError(
              absl::StrCat("stored contribution of a session in dataset '",
                           dataset, "' cannot be parsed"));
          return false;
        }
        merger.Add(source, value);
        return true;
      }));
  RETURN_IF_ERROR(scan_status);
  merger.Finish(out);
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
  for (const std::string& key : doomed_keys) batch.Delete(key);
  const int64_t count = static_cast<int64_t>(doomed.size());
  absl::WriterMutexLock fence(&commit_fence_);
  auto write = [&] { return store_->Write(batch, /*sync=*/true); };
  if (deletion.writer != nullptr) {
    RETURN_IF_ERROR(deletion.writer(count, &batch, write));
  } else {
    RETURN_IF_ERROR(write());
  }
  deletion.deleted = count;
  if (listener_ != nullptr && !doomed.empty()) {
    listener_->OnDeleted(dataset, doomed);
  }
  return absl::OkStatus();
}

}  // namespace cohortd

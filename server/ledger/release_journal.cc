#include "server/ledger/release_journal.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "cohortd/internal/storage.pb.h"
#include "server/common/hash_input.h"
#include "server/common/status_macros.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ledger/audit_chain.h"
#include "server/storage/keys.h"

namespace cohortd {
namespace {

using privacy::BudgetLedger;
using privacy::PrivacyCharge;
using privacy::ReportedCost;

constexpr int kDefaultAuditLimit = 100;
constexpr int kMaxAuditLimit = 10000;
// 128 bits: collisions are negligible even over billions of releases.
constexpr int kReleaseIdBytes = 16;

void SetCost(const ReportedCost& cost, cohortd::v1::PrivacyCost* out) {
  out->set_epsilon(cost.epsilon);
  out->set_delta(cost.delta);
  out->set_rho(cost.rho);
}

cohortd::v1::Budget BudgetProto(const std::string& principal,
                                const std::string& dataset,
                                const BudgetLedger& ledger) {
  cohortd::v1::Budget budget;
  budget.set_principal(principal);
  budget.set_dataset(dataset);
  SetCost(ledger.ReportedTotal(), budget.mutable_total());
  SetCost(ledger.ReportedSpent(), budget.mutable_spent());
  SetCost(ledger.ReportedRemaining(), budget.mutable_remaining());
  return budget;
}

std::string SpentValue(const PrivacyCharge& spent) {
  internal::StoredBudgetSpent stored;
  stored.set_rho(spent.Rho());
  stored.set_delta(spent.delta);
  stored.set_rdp_orders_version(privacy::kRdpOrdersVersion);
  for (double x : spent.rdp) stored.add_rdp(x);
  if (std::isfinite(spent.dp_epsilon)) {
    stored.set_has_dp_bound(true);
    stored.set_dp_epsilon(spent.dp_epsilon);
    stored.set_dp_delta(spent.dp_delta);
  }
  return stored.SerializeAsString();
}

// The spent charge of a stored ledger entry, in either format (see
// storage.proto): a format-1 zCDP rho is the RDP curve rho * alpha.
absl::StatusOr<PrivacyCharge> ParseSpent(
    const internal::StoredBudgetSpent& stored) {
  if (stored.rdp_orders_version() == 0) {
    if (!(stored.rho() >= 0) || !std::isfinite(stored.rho())) {
      return absl::DataLossError("negative or non-finite rho");
    }
    return PrivacyCharge::FromZcdp(stored.rho(), stored.delta());
  }
  if (stored.rdp_orders_version() != privacy::kRdpOrdersVersion ||
      stored.rdp_size() != privacy::kRdpOrderCount) {
    return absl::DataLossError(absl::StrCat(
        "RDP orders version ", stored.rdp_orders_version(), " with ",
        stored.rdp_size(), " orders is not this build's version ",
        privacy::kRdpOrdersVersion));
  }
  PrivacyCharge spent;
  for (int i = 0; i < privacy::kRdpOrderCount; ++i)
    spent.rdp[i] = stored.rdp(i);
  spent.delta = stored.delta();
  if (stored.has_dp_bound()) {
    spent.dp_epsilon = stored.dp_epsilon();
    spent.dp_delta = stored.dp_delta();
  }
  return spent;
}

// The release cache key of `canonical_request` on `dataset`.
std::string ReleaseKeyFor(const std::string& dataset,
                          absl::string_view canonical_request) {
  return keys::ReleaseKey(dataset, HexEncode(Sha256(canonical_request)));
}

// The release stored under `key` if it answers exactly `canonical_request`
// on snapshot `snapshot_id` under config `fingerprint`, as a cache hit
// (from_cache, cost zero, no budget).
absl::StatusOr<std::optional<cohortd::v1::AggregateResponse>> LookupRelease(
    Store* store, const std::string& key, absl::string_view canonical_request,
    absl::string_view snapshot_id, absl::string_view fingerprint) {
  absl::StatusOr<std::string> value = store->Get(key);
  if (absl::IsNotFound(value.status())) return std::nullopt;
  if (!value.ok()) return value.status();
  internal::StoredRelease stored;
  if (!stored.ParseFromString(*value)) {
    return absl::DataLossError(
        absl::StrCat("stored release at '", key, "' is unreadable"));
  }
  // A release stored before snapshots has no id and never hits.
  if (stored.canonical_request() != canonical_request ||
      stored.snapshot_id().empty() || stored.snapshot_id() != snapshot_id ||
      stored.config_fingerprint() != fingerprint) {
    return std::nullopt;
  }
  cohortd::v1::AggregateResponse response;
  if (!response.ParseFromString(stored.response())) {
    return absl::DataLossError(absl::StrCat("stored release at '", key,
                                            "' has an unreadable "
                                            "response"));
  }
  response.set_from_cache(true);
  SetCost(ReportedCost{}, response.mutable_cost());
  response.clear_budget();
  return response;
}

using hash_input::AppendBytes;
using hash_input::AppendDouble;
using hash_input::AppendOptionalDouble;
using hash_input::AppendUint64;

absl::StatusOr<std::string> NewReleaseId() {
  unsigned char bytes[kReleaseIdBytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed: no release id");
  }
  return HexEncode(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

std::string DescribeCost(const ReportedCost& c) {
  return absl::StrFormat("epsilon=%.6g delta=%.3g rho=%.6g", c.epsilon, c.delta,
                         c.rho);
}

// The stored entry of a release or cache hit, linked after the head
// (sequence, prev_hash) and hashed; the caller writes it and then moves the
// head.
internal::StoredAuditEntry NewAuditEntry(
    uint64_t head_sequence, const std::string& head_hash,
    internal::AuditEntryKind kind, const std::string& release_id,
    const std::string& principal, const std::string& dataset,
    const std::string& canonical_request_json, const ReportedCost& cost,
    absl::Time now) {
  const int64_t seconds = absl::ToUnixSeconds(now);
  const int32_t nanos = static_cast<int32_t>(
      absl::ToInt64Nanoseconds(now - absl::FromUnixSeconds(seconds)));
  internal::StoredAuditEntry entry;
  entry.set_sequence(head_sequence + 1);
  entry.set_kind(kind);
  entry.set_release_id(release_id);
  entry.set_principal(principal);
  entry.set_dataset(dataset);
  entry.set_canonical_request(canonical_request_json);
  entry.set_cost_epsilon(cost.epsilon);
  entry.set_cost_delta(cost.delta);
  entry.set_cost_rho(cost.rho);
  entry.set_time_unix_seconds(seconds);
  entry.set_time_nanos(nanos);
  entry.set_prev_hash(head_hash);
  entry.set_hash(ComputeAuditHash(entry));
  return entry;
}

cohortd::v1::AuditEntry AuditEntryProto(
    const internal::StoredAuditEntry& stored) {
  cohortd::v1::AuditEntry entry;
  entry.set_sequence(static_cast<int64_t>(stored.sequence()));
  entry.set_release_id(stored.release_id());
  entry.set_principal(stored.principal());
  entry.set_dataset(stored.dataset());
  entry.set_canonical_request(stored.canonical_request());
  entry.mutable_cost()->set_epsilon(stored.cost_epsilon());
  entry.mutable_cost()->set_delta(stored.cost_delta());
  entry.mutable_cost()->set_rho(stored.cost_rho());
  entry.mutable_time()->set_seconds(stored.time_unix_seconds());
  entry.mutable_time()->set_nanos(stored.time_nanos());
  entry.set_prev_hash(stored.prev_hash());
  entry.set_hash(stored.hash());
  entry.set_kind(stored.kind() == internal::AUDIT_CACHE_HIT
                     ? cohortd::v1::AuditEntry::CACHE_HIT
                     : cohortd::v1::AuditEntry::RELEASE);
  if (stored.has_erasure()) {
    entry.mutable_erasure()->set_reason(stored.erasure().reason());
    entry.mutable_erasure()->set_sessions_deleted(
        stored.erasure().sessions_deleted());
  }
  return entry;
}

}  // namespace

std::string ReleaseConfigFingerprint(const DatasetSpec& spec) {
  std::string in = "cohortd.release-config.v1";
  AppendBytes(spec.name, &in);
  AppendUint64(spec.dimensions.size(), &in);
  for (const DimensionSpec& d : spec.dimensions) {
    AppendBytes(d.name, &in);
    in.push_back(d.open_domain ? 1 : 0);
    in.push_back(d.derived ? 1 : 0);
    AppendUint64(static_cast<uint64_t>(d.max_length), &in);
    AppendUint64(d.values.size(), &in);
    for (const std::string& v : d.values) AppendBytes(v, &in);
  }
  AppendUint64(spec.measures.size(), &in);
  for (const MeasureSpec& m : spec.measures) {
    AppendBytes(m.name, &in);
    AppendDouble(m.lower, &in);
    AppendDouble(m.upper, &in);
    AppendDouble(m.granularity, &in);
    AppendOptionalDouble(m.valid_min, &in);
    AppendOptionalDouble(m.valid_max, &in);
  }
  const PrivacySpec& p = spec.privacy;
  AppendUint64(static_cast<uint64_t>(p.k), &in);
  AppendDouble(p.default_epsilon, &in);
  AppendDouble(p.max_epsilon, &in);
  AppendDouble(p.delta, &in);
  AppendUint64(static_cast<uint64_t>(p.max_cohorts_per_account), &in);
  AppendUint64(static_cast<uint64_t>(p.max_sessions_per_cohort), &in);
  // Band dimensions change adjusted answers; absent, the fingerprint is the
  // one configs without bands always had.
  if (!spec.bands.empty()) {
    AppendBytes("bands", &in);
    AppendUint64(spec.bands.size(), &in);
    for (const BandSpec& b : spec.bands) {
      AppendBytes(b.name, &in);
      AppendBytes(b.measure, &in);
      AppendUint64(b.edges.size(), &in);
      for (double e : b.edges) AppendDouble(e, &in);
    }
  }
  return HexEncode(Sha256(in));
}

absl::StatusOr<std::unique_ptr<ReleaseJournal>> ReleaseJournal::Open(
    const Config* config, Store* store, Clock* clock) {
  std::unique_ptr<ReleaseJournal> journal(
      new ReleaseJournal(config, store, clock));
  RETURN_IF_ERROR(journal->Load());
  return journal;
}

absl::Status ReleaseJournal::Load() {
  absl::MutexLock lock(&mu_);
  for (const DatasetSpec& spec : config_->datasets) {
    const BudgetSpec& budget = spec.privacy.dataset_budget;
    absl::StatusOr<BudgetLedger> ledger =
        BudgetLedger::Create(budget.epsilon, budget.delta);
    // Checked here so that a principal's fresh ledger cannot fail later.
    absl::StatusOr<BudgetLedger> principal_ledger =
        BudgetLedger::Create(spec.privacy.principal_budget.epsilon,
                             spec.privacy.principal_budget.delta);
    if (!ledger.ok() || !principal_ledger.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dataset '", spec.name, "': invalid budget: ",
          (ledger.ok() ? principal_ledger : ledger).status().message()));
    }
    ledgers_.emplace(
        spec.name,
        DatasetLedgers{
            &spec, ReleaseConfigFingerprint(spec), *std::move(ledger), {}});
  }

  absl::Status parse_status;
  RETURN_IF_ERROR(store_->Scan(
      keys::kBudgetLedgerPrefix,
      [&](absl::string_view key, absl::string_view value) {
        std::string dataset, principal;
        bool is_dataset = false;
        internal::StoredBudgetSpent stored;
        if (!keys::ParseBudgetKey(key, &dataset, &is_dataset, &principal) ||
            !stored.ParseFromArray(value.data(),
                                   static_cast<int>(value.size()))) {
          parse_status = absl::DataLossError(
              absl::StrCat("unreadable budget ledger entry at '", key, "'"));
          return false;
        }
        auto it = ledgers_.find(dataset);
        if (it == ledgers_.end()) return true;
        const PrivacySpec& privacy = it->second.spec->privacy;
        const BudgetSpec& budget = is_dataset
                                       ? privacy.dataset_budget
                                       : privacy.PrincipalBudget(principal);
        absl::StatusOr<PrivacyCharge> spent = ParseSpent(stored);
        absl::StatusOr<BudgetLedger> ledger =
            spent.ok()
                ? BudgetLedger::FromSpent(budget.epsilon, budget.delta, *spent)
                : spent.status();
        if (!ledger.ok()) {
          parse_status = absl::DataLossError(
              absl::StrCat("budget ledger entry at '", key,
                           "': ", ledger.status().message()));
          return false;
        }
        if (is_dataset) {
          it->second.dataset = *std::move(ledger);
        } else {
          it->second.principals.insert_or_assign(principal, *std::move(ledger));
        }
        return true;
      }));
  RETURN_IF_ERROR(parse_status);

  // The head is the last entry in key order; the chain itself is verified
  // by ListAudit, not here, so a damaged log never keeps the server down.
  std::string last_key, last_value;
  RETURN_IF_ERROR(store_->Scan(
      keys::kAuditPrefix, [&](absl::string_view key, absl::string_view value) {
        last_key.assign(key.data(), key.size());
        last_value.assign(value.data(), value.size());
        return true;
      }));
  head_sequence_ = 0;
  head_hash_ = AuditGenesisHash();
  if (!last_key.empty()) {
    internal::StoredAuditEntry entry;
    if (!keys::ParseAuditKey(last_key, &head_sequence_) ||
        !entry.ParseFromString(last_value) ||
        entry.hash().size() != kAuditHashSize) {
      return absl::DataLossError(
          absl::StrCat("unreadable audit log head at '", last_key, "'"));
    }
    head_hash_ = entry.hash();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<cohortd::v1::AggregateResponse>>
ReleaseJournal::ServeCached(const std::string& principal,
                            const std::string& dataset,
                            absl::string_view canonical_request,
                            const std::string& canonical_request_json,
                            absl::string_view snapshot_id) {
  const std::string release_key = ReleaseKeyFor(dataset, canonical_request);
  std::string fingerprint;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(DatasetLedgers * ledgers, FindDataset(dataset));
    fingerprint = ledgers->fingerprint;
  }
  // The lookup runs unlocked: a miss (the common path of a new question)
  // costs one read and no lock.
  ASSIGN_OR_RETURN(std::optional<cohortd::v1::AggregateResponse> cached,
                   LookupRelease(store_, release_key, canonical_request,
                                 snapshot_id, fingerprint));
  if (!cached.has_value()) return cached;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DatasetLedgers * ledgers, FindDataset(dataset));
  RETURN_IF_ERROR(AuditCacheHit(principal, dataset, canonical_request_json,
                                cached->release_id()));
  ASSIGN_OR_RETURN(BudgetLedger principal_ledger,
                   PrincipalLedger(*ledgers, principal));
  *cached->mutable_budget() = BudgetProto(principal, dataset, principal_ledger);
  return cached;
}

absl::Status ReleaseJournal::AuditCacheHit(
    const std::string& principal, const std::string& dataset,
    const std::string& canonical_request_json, const std::string& release_id) {
  const internal::StoredAuditEntry entry =
      NewAuditEntry(head_sequence_, head_hash_, internal::AUDIT_CACHE_HIT,
                    release_id, principal, dataset, canonical_request_json,
                    ReportedCost{}, clock_->Now());
  WriteBatch batch;
  batch.Put(keys::AuditKey(entry.sequence()), entry.SerializeAsString());
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  head_sequence_ = entry.sequence();
  head_hash_ = entry.hash();
  return absl::OkStatus();
}

absl::StatusOr<ReleaseJournal::DatasetLedgers*> ReleaseJournal::FindDataset(
    const std::string& dataset) {
  auto it = ledgers_.find(dataset);
  if (it == ledgers_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown dataset '", dataset, "'"));
  }
  return &it->second;
}

absl::StatusOr<BudgetLedger> ReleaseJournal::PrincipalLedger(
    const DatasetLedgers& ledgers, const std::string& principal) {
  auto it = ledgers.principals.find(principal);
  if (it != ledgers.principals.end()) return it->second;
  const BudgetSpec& budget = ledgers.spec->privacy.PrincipalBudget(principal);
  return BudgetLedger::Create(budget.epsilon, budget.delta);
}

absl::Status ReleaseJournal::CheckBoth(const BudgetLedger& principal_ledger,
                                       const BudgetLedger& dataset_ledger,
                                       const std::string& principal,
                                       const std::string& dataset,
                                       const PrivacyCharge& charge,
                                       const ReportedCost& asked) {
  if (!principal_ledger.CanAfford(charge)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("privacy budget of principal '", principal,
                     "' on dataset '", dataset, "' exceeded: remaining ",
                     DescribeCost(principal_ledger.ReportedRemaining()),
                     "; asked ", DescribeCost(asked)));
  }
  if (!dataset_ledger.CanAfford(charge)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("privacy budget of dataset '", dataset,
                     "' (all principals together) exceeded: remaining ",
                     DescribeCost(dataset_ledger.ReportedRemaining()),
                     "; asked ", DescribeCost(asked)));
  }
  return absl::OkStatus();
}

absl::Status ReleaseJournal::CheckAffordable(const std::string& principal,
                                             const std::string& dataset,
                                             const PrivacyCharge& charge,
                                             const ReportedCost& asked) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DatasetLedgers * ledgers, FindDataset(dataset));
  ASSIGN_OR_RETURN(BudgetLedger principal_ledger,
                   PrincipalLedger(*ledgers, principal));
  return CheckBoth(principal_ledger, ledgers->dataset, principal, dataset,
                   charge, asked);
}

absl::Status ReleaseJournal::CommitRelease(
    const std::string& principal, const std::string& dataset,
    absl::string_view canonical_request,
    const std::string& canonical_request_json, absl::string_view snapshot_id,
    absl::Time data_as_of, const PrivacyCharge& charge,
    const ReportedCost& cost, cohortd::v1::AggregateResponse* response) {
  if (snapshot_id.empty()) {
    return absl::InvalidArgumentError("a release needs its snapshot id");
  }
  bool valid =
      charge.delta >= 0 && charge.dp_epsilon >= 0 && charge.dp_delta >= 0;
  for (double x : charge.rdp) valid = valid && x >= 0;
  if (!valid) {
    return absl::InvalidArgumentError("a privacy charge must be >= 0");
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DatasetLedgers * ledgers, FindDataset(dataset));
  ASSIGN_OR_RETURN(BudgetLedger principal_ledger,
                   PrincipalLedger(*ledgers, principal));

  const std::string release_key = ReleaseKeyFor(dataset, canonical_request);
  ASSIGN_OR_RETURN(std::optional<cohortd::v1::AggregateResponse> existing,
                   LookupRelease(store_, release_key, canonical_request,
                                 snapshot_id, ledgers->fingerprint));
  if (existing.has_value()) {
    RETURN_IF_ERROR(AuditCacheHit(principal, dataset, canonical_request_json,
                                  existing->release_id()));
    *response = *std::move(existing);
    *response->mutable_budget() =
        BudgetProto(principal, dataset, principal_ledger);
    return absl::OkStatus();
  }

  // Charge copies; the ledgers in memory move only after the write.
  BudgetLedger dataset_ledger = ledgers->dataset;
  RETURN_IF_ERROR(CheckBoth(principal_ledger, dataset_ledger, principal,
                            dataset, charge, cost));
  RETURN_IF_ERROR(principal_ledger.Charge(charge));
  RETURN_IF_ERROR(dataset_ledger.Charge(charge));

  ASSIGN_OR_RETURN(const std::string release_id, NewReleaseId());
  const absl::Time now = clock_->Now();
  const internal::StoredAuditEntry entry = NewAuditEntry(
      head_sequence_, head_hash_, internal::AUDIT_RELEASE, release_id,
      principal, dataset, canonical_request_json, cost, now);

  // Budgets are per asker, so the cached copy carries none.
  cohortd::v1::AggregateResponse released = *response;
  released.set_release_id(release_id);
  released.set_from_cache(false);
  SetCost(cost, released.mutable_cost());
  released.clear_budget();
  const int64_t as_of_seconds = absl::ToUnixSeconds(data_as_of);
  released.mutable_data_as_of()->set_seconds(as_of_seconds);
  released.mutable_data_as_of()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(
          data_as_of - absl::FromUnixSeconds(as_of_seconds))));

  internal::StoredRelease stored_release;
  stored_release.set_canonical_request(std::string(canonical_request));
  stored_release.set_response(released.SerializeAsString());
  stored_release.set_snapshot_id(std::string(snapshot_id));
  stored_release.set_config_fingerprint(ledgers->fingerprint);
  stored_release.set_time_unix_seconds(entry.time_unix_seconds());
  stored_release.set_time_nanos(entry.time_nanos());

  WriteBatch batch;
  batch.Put(keys::PrincipalBudgetKey(dataset, principal),
            SpentValue(principal_ledger.spent()));
  batch.Put(keys::DatasetBudgetKey(dataset),
            SpentValue(dataset_ledger.spent()));
  batch.Put(release_key, stored_release.SerializeAsString());
  batch.Put(keys::AuditKey(entry.sequence()), entry.SerializeAsString());
  RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));

  ledgers->dataset = dataset_ledger;
  ledgers->principals.insert_or_assign(principal, principal_ledger);
  head_sequence_ = entry.sequence();
  head_hash_ = entry.hash();

  *response = std::move(released);
  *response->mutable_budget() =
      BudgetProto(principal, dataset, principal_ledger);
  return absl::OkStatus();
}

absl::StatusOr<cohortd::v1::Budget> ReleaseJournal::GetBudget(
    const std::string& principal, const std::string& dataset) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DatasetLedgers * ledgers, FindDataset(dataset));
  ASSIGN_OR_RETURN(BudgetLedger ledger, PrincipalLedger(*ledgers, principal));
  return BudgetProto(principal, dataset, ledger);
}

absl::StatusOr<cohortd::v1::Budget> ReleaseJournal::DatasetBudget(
    const std::string& dataset) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(DatasetLedgers * ledgers, FindDataset(dataset));
  return BudgetProto("", dataset, ledgers->dataset);
}

absl::StatusOr<cohortd::v1::ListAuditResponse> ReleaseJournal::ListAudit(
    int64_t start_sequence, int limit) {
  if (start_sequence < 0) {
    return absl::InvalidArgumentError("start_sequence must be >= 0");
  }
  if (limit < 0 || limit > kMaxAuditLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be between 0 and ", kMaxAuditLimit,
                     " (0 means ", kDefaultAuditLimit, ")"));
  }
  if (limit == 0) limit = kDefaultAuditLimit;
  const uint64_t first = std::max<int64_t>(start_sequence, 1);
  // first + limit - 1 cannot overflow: first <= INT64_MAX, limit <= 10000.
  const uint64_t last = first + static_cast<uint64_t>(limit) - 1;
  uint64_t head;
  {
    absl::MutexLock lock(&mu_);
    head = head_sequence_;
  }
  // Entries appended after `head` was read are left for the next call.
  const uint64_t verify_end = std::min(last, head);

  cohortd::v1::ListAuditResponse out;
  uint64_t verified = 0;
  std::string prev_hash = AuditGenesisHash();
  std::string chain_error;
  RETURN_IF_ERROR(store_->Scan(
      keys::kAuditPrefix, [&](absl::string_view key, absl::string_view value) {
        uint64_t sequence = 0;
        const bool key_ok = keys::ParseAuditKey(key, &sequence);
        if (key_ok && sequence > verify_end) return false;
        internal::StoredAuditEntry entry;
        if (!key_ok || !entry.ParseFromArray(value.data(),
                                             static_cast<int>(value.size()))) {
          if (chain_error.empty()) {
            chain_error =
                absl::StrCat("entry ", verified + 1,
                             ": unreadable record at key '", key, "'");
          }
          return true;
        }
        if (chain_error.empty()) {
          absl::Status link =
              CheckAuditLink(verified + 1, prev_hash, sequence, entry);
          if (link.ok()) {
            ++verified;
            prev_hash = entry.hash();
          } else {
            chain_error = std::string(link.message());
          }
        }
        if (sequence >= first) *out.add_entries() = AuditEntryProto(entry);
        return true;
      }));
  if (chain_error.empty() && verified < verify_end) {
    chain_error =
        absl::StrCat("entry ", verified + 1,
                     ": missing (the stored log ends at entry ", verified, ")");
  }
  out.set_chain_valid(chain_error.empty());
  out.set_entries_verified(static_cast<int64_t>(verified));
  out.set_chain_error(chain_error);
  out.set_total_entries(static_cast<int64_t>(head));
  return out;
}

absl::Status ReleaseJournal::CommitErasure(
    const std::string& principal, const std::string& dataset,
    absl::string_view reason, int64_t sessions_deleted, WriteBatch* batch,
    const std::function<absl::Status()>& write) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(FindDataset(dataset).status());
  const absl::Time now = clock_->Now();
  const int64_t seconds = absl::ToUnixSeconds(now);
  const int32_t nanos = static_cast<int32_t>(
      absl::ToInt64Nanoseconds(now - absl::FromUnixSeconds(seconds)));
  internal::StoredAuditEntry entry;
  entry.set_sequence(head_sequence_ + 1);
  entry.set_principal(principal);
  entry.set_dataset(dataset);
  entry.set_time_unix_seconds(seconds);
  entry.set_time_nanos(nanos);
  entry.mutable_erasure()->set_reason(std::string(reason));
  entry.mutable_erasure()->set_sessions_deleted(sessions_deleted);
  entry.set_prev_hash(head_hash_);
  entry.set_hash(ComputeAuditHash(entry));
  batch->Put(keys::AuditKey(entry.sequence()), entry.SerializeAsString());
  RETURN_IF_ERROR(write());
  head_sequence_ = entry.sequence();
  head_hash_ = entry.hash();
  return absl::OkStatus();
}

}  // namespace cohortd

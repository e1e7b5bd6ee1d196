// The release journal: the durable, storage-facing side of answering a
// query (issue 4 items 2-4). It keeps, in the Store,
//   - the budget ledger: privacy spent (an RDP curve and a basic
//     (epsilon, delta) bound) per (principal, dataset) and per
//     dataset as a whole, against the (epsilon, delta) budgets of the config;
//   - the release cache: each release under the hash of its canonical
//     request, with the sealed snapshot it read (server/index/snapshot.h)
//     and the fingerprint of the dataset's answer-changing config;
//   - the audit log: one hash-chained entry per release and per cache hit
//     (audit_chain.h, docs/audit.md).
// A release is charged, cached and audited in ONE synced write batch, and
// the in-memory ledgers and chain head move only after that write
// succeeded. So a crash after the write keeps the release charged and
// audited, a crash before it leaves nothing charged and nothing released,
// and a failed write can be retried without double-charging. A cache hit
// is audited (cost zero) in a synced write before it is answered, so the
// log shows who saw which release.
//
// Key layouts: storage/keys.h (DatasetBudgetKey, PrincipalBudgetKey,
// ReleaseKey, AuditKey); values: the Stored* messages of
// proto/cohortd/internal/storage.proto.
//
// The cache key is (canonical request, config fingerprint, snapshot id):
// one slot per request and dataset, holding the latest release, which hits
// only while the snapshot and the config it was computed on are current.
// None of the three depends on a record, so neither does `from_cache`.
//
// How the query path uses it (the planner/executor owns the computing):
//   snapshot = current sealed snapshot of the dataset
//   if (cached = ServeCached(..., snapshot.id)) return *cached
//   CheckAffordable(...)                        // cheap, before noise
//   ... compute the noisy response on a view of that snapshot ...
//   CommitRelease(..., snapshot.id, snapshot.sealed_at, ...)
#ifndef COHORTD_SERVER_LEDGER_RELEASE_JOURNAL_H_
#define COHORTD_SERVER_LEDGER_RELEASE_JOURNAL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/common/clock.h"
#include "server/config/config.h"
#include "server/privacy/accountant.h"
#include "server/storage/store.h"

namespace cohortd {

// SHA-256 (hex) of every config value of `spec` that can change an answer:
// the dataset name, each dimension (name, domain kind, values, max length,
// derived), each measure (name, bounds, granularity, validity range), and
// the privacy parameters k, default and max epsilon, delta, L0 and Linf.
// Budgets and the description change no answer and are left out. A new
// config value that changes answers must be added here (and a bump of the
// encoding's tag is not needed: a changed encoding only misses the cache).
std::string ReleaseConfigFingerprint(const DatasetSpec& spec);

// Thread-safe: every method may be called from any thread. Commits are
// serialised by one journal-wide mutex (the audit chain is global, and a
// release costs a synced write anyway); lookups only read the Store.
class ReleaseJournal {
 public:
  // Loads the spent budgets (scan of "b/") and the audit chain head (scan
  // of "a/") from `store`. `config`, `store` and `clock` are borrowed and
  // must outlive the journal. Stored budgets of datasets no longer in the
  // config are ignored (and kept); a config budget that changed between
  // starts applies to what was already spent.
  // Errors: InvalidArgument when a dataset's configured budget is not a
  // valid (epsilon, delta); DataLoss when a stored ledger or audit entry
  // cannot be parsed; Unavailable when the store cannot be read.
  static absl::StatusOr<std::unique_ptr<ReleaseJournal>> Open(
      const Config* config, Store* store, Clock* clock);

  ReleaseJournal(const ReleaseJournal&) = delete;
  ReleaseJournal& operator=(const ReleaseJournal&) = delete;

  // Serves the stored release of `canonical_request` on `dataset` if it
  // was computed on snapshot `snapshot_id` under the dataset's current
  // config (ReleaseConfigFingerprint); nullopt on a miss. A hit keeps its
  // original release_id, cohorts and data_as_of, with from_cache = true,
  // cost zero and `principal`'s budget, and is appended to the audit log
  // (kind cache hit: principal, `canonical_request_json`, the release id,
  // cost zero) in a synced write before it is returned.
  // Errors: InvalidArgument for a dataset not in the config; Unavailable
  // from the store (nothing served then); DataLoss for an unparsable
  // record.
  absl::StatusOr<std::optional<cohortd::v1::AggregateResponse>> ServeCached(
      const std::string& principal, const std::string& dataset,
      absl::string_view canonical_request,
      const std::string& canonical_request_json, absl::string_view snapshot_id);

  // Whether both `principal`'s budget on `dataset` and the dataset's whole
  // budget can afford `charge` now; a cheap pre-check before computing
  // noise (CommitRelease checks again). `asked` is only for the message.
  // Errors: ResourceExhausted naming the budget (principal 'x' on dataset
  // 'y', or dataset 'y'), its remaining (epsilon, delta, rho) and `asked`;
  // InvalidArgument for a dataset not in the config.
  absl::Status CheckAffordable(const std::string& principal,
                               const std::string& dataset,
                               const privacy::PrivacyCharge& charge,
                               const privacy::ReportedCost& asked);

  // Charges `charge` to `principal` on `dataset` and to the dataset, stores
  // `*response` as the release of `canonical_request` on snapshot
  // `snapshot_id` (sealed at `data_as_of`, the snapshot the response was
  // computed on) under the current config, and appends the audit entry
  // (release id, principal, dataset, `canonical_request_json`, `cost`,
  // time), all under one lock in ONE synced write batch; the in-memory
  // state changes only after that write succeeded.
  // On success fills response->release_id (128 bits from OpenSSL
  // RAND_bytes as 32 lower-case hex digits: unique, unguessable, and
  // independent of the content), from_cache = false, cost = `cost`,
  // data_as_of, and budget = the principal's budget after the charge.
  // If an identical request on the same snapshot was committed meanwhile
  // (two identical queries racing past ServeCached), *response is replaced
  // by that stored release exactly as ServeCached serves it (audited as a
  // cache hit), and nothing is charged: one answer per question and
  // snapshot, so noise cannot be averaged away.
  // Errors (nothing charged, stored or audited, memory unchanged):
  // ResourceExhausted as CheckAffordable; InvalidArgument for a dataset not
  // in the config, a negative charge or an empty snapshot id; Internal
  // when no randomness is
  // available for the id; Unavailable when the store write fails (retrying
  // is safe); DataLoss for an unparsable cached record.
  // `response` is borrowed for the call.
  absl::Status CommitRelease(const std::string& principal,
                             const std::string& dataset,
                             absl::string_view canonical_request,
                             const std::string& canonical_request_json,
                             absl::string_view snapshot_id,
                             absl::Time data_as_of,
                             const privacy::PrivacyCharge& charge,
                             const privacy::ReportedCost& cost,
                             cohortd::v1::AggregateResponse* response);

  // Appends an erasure entry to the audit log: `principal` (an admin, or
  // "cohortd/retention") deleted `sessions_deleted` sessions of `dataset`
  // for `reason` ("delete_account" or "retention"). The entry goes into
  // `batch` (the deletion's own batch, so deletion and entry are one
  // atomic write), then `write()` is called once to write it; the chain
  // head moves only if that succeeds. Holds the journal lock throughout so
  // entries stay in sequence. Call it from a DeletionWriter, i.e. under
  // the ingestor's commit fence (the lock order is fence, then journal).
  // Errors: InvalidArgument for a dataset not in the config; write()'s.
  absl::Status CommitErasure(const std::string& principal,
                             const std::string& dataset,
                             absl::string_view reason, int64_t sessions_deleted,
                             WriteBatch* batch,
                             const std::function<absl::Status()>& write);

  // `principal`'s budget on `dataset`: total, spent and remaining as
  // (epsilon, delta, rho) (privacy::BudgetLedger::Reported*). A principal
  // that never spent has its full configured budget.
  // Errors: InvalidArgument for a dataset not in the config.
  absl::StatusOr<cohortd::v1::Budget> GetBudget(const std::string& principal,
                                                const std::string& dataset);

  // The dataset's whole budget (all principals together), as GetBudget with
  // an empty principal. For metrics. Errors: as GetBudget.
  absl::StatusOr<cohortd::v1::Budget> DatasetBudget(const std::string& dataset);

  // Up to `limit` audit entries from `start_sequence` (0 or 1: from the
  // first), in order, and a verification of the chain over every entry
  // from 1 up to the end of the requested range (start_sequence + limit -
  // 1, or the last entry): each entry recomputes to its hash, links to its
  // predecessor's, and sequences are contiguous. On the first broken link,
  // chain_valid is false, chain_error names it ("entry N: ..."), and
  // entries_verified counts the good entries before it; entries are listed
  // as stored either way. total_entries is the number of entries this
  // journal appended or found at Open.
  // Errors: InvalidArgument unless start_sequence >= 0 and 0 <= limit <=
  // 10000 (0 means 100); Unavailable from the store.
  absl::StatusOr<cohortd::v1::ListAuditResponse> ListAudit(
      int64_t start_sequence, int limit);

 private:
  ReleaseJournal(const Config* config, Store* store, Clock* clock)
      : config_(config), store_(store), clock_(clock) {}

  // The spent budgets of one dataset.
  struct DatasetLedgers {
    const DatasetSpec* spec;  // borrowed from config_
    std::string fingerprint;  // ReleaseConfigFingerprint(*spec)
    privacy::BudgetLedger dataset;
    std::map<std::string, privacy::BudgetLedger> principals;
  };

  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  // Appends the cache-hit entry of `release_id` (cost zero) in a synced
  // write and moves the head. Errors: Unavailable from the store.
  absl::Status AuditCacheHit(const std::string& principal,
                             const std::string& dataset,
                             const std::string& canonical_request_json,
                             const std::string& release_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The dataset's ledgers, or InvalidArgument for a dataset not in the
  // config.
  absl::StatusOr<DatasetLedgers*> FindDataset(const std::string& dataset)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A copy of `principal`'s ledger in `ledgers`, fresh at capacity when
  // the principal never spent.
  absl::StatusOr<privacy::BudgetLedger> PrincipalLedger(
      const DatasetLedgers& ledgers, const std::string& principal)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK, or the ResourceExhausted of CheckAffordable.
  absl::Status CheckBoth(const privacy::BudgetLedger& principal_ledger,
                         const privacy::BudgetLedger& dataset_ledger,
                         const std::string& principal,
                         const std::string& dataset,
                         const privacy::PrivacyCharge& charge,
                         const privacy::ReportedCost& asked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Config* const config_;
  Store* const store_;
  Clock* const clock_;

  absl::Mutex mu_;
  // Dataset name -> its ledgers; one entry per configured dataset.
  std::map<std::string, DatasetLedgers> ledgers_ ABSL_GUARDED_BY(mu_);
  // The last audit entry: its sequence (0 when the log is empty) and hash.
  uint64_t head_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::string head_hash_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_LEDGER_RELEASE_JOURNAL_H_

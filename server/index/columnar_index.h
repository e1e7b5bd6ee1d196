// ColumnarIndex: the in-memory, column-oriented copy of every dataset's
// sessions that the query executor scans (issue 4, item 5). Per dataset:
// dictionary-encoded dimensions (code 0 = absent), fixed-point measures
// with an absent sentinel, and a dense account index. Built from the Store
// at start and kept current by ingest (it is the Ingestor's listener).
//
// Row layout, and why. Rows are kept physically sorted by account in a
// "sorted region", so the executor's per-account contribution bounding
// walks every column sequentially and an account's sessions are one row
// range [begin, end) (a CSR offsets array, no per-session row list).
// Sessions that arrive later are appended after it, in a "tail", and listed
// per account in a small side index. When the tail reaches max(
// Options::min_compaction_rows, sorted rows / 8) the writer re-sorts
// (Compact): an O(rows) counting sort by account plus one gather per
// column, amortised to a few row moves per new session. Compact reserves
// exactly that much room, so appends never double a column. A changed session
// is updated in place; its account and start (hence month) never change.
//
// Session ids are not stored: each row keeps a 64-bit fingerprint of its
// session id (fixed constants, so the same in every process: the
// executor's keyed bounding reads it), and a hash set of stable session
// numbers finds a session's row. Two ids with one fingerprint are told
// apart by account and month; a colliding new id then goes to a small
// overflow map holding its full string. Only two sessions of one account
// in one month with equal fingerprints would be confused (about 2^-64 per
// such pair).
//
// Threading. Each dataset has its own absl::Mutex. Ingest (OnCommitted,
// on the committer thread) applies a whole commit under the writer lock;
// queries read through a DatasetView, which holds the reader lock for its
// lifetime. A query therefore sees a commit entirely or not at all, and
// many queries read in parallel. Writers wait for running queries (a scan
// takes milliseconds), and a compaction blocks readers for its O(rows)
// duration (tens of ms at 400k sessions).
#ifndef COHORTD_SERVER_INDEX_COLUMNAR_INDEX_H_
#define COHORTD_SERVER_INDEX_COLUMNAR_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "cohortd/internal/storage.pb.h"
#include "server/config/config.h"
#include "server/ingest/ingestor.h"
#include "server/index/columnar_column.h"
#include "server/index/dictionary.h"
#include "server/storage/store.h"

namespace cohortd {

class DatasetView;

// The default session id fingerprint: FNV-1a, then MurmurHash3's 64-bit
// finaliser. Fixed constants, so it is the same in every process (unlike
// absl::Hash, which is seeded per process). Not keyed: crafted colliding
// ids only land in the index's overflow map.
uint64_t SessionFingerprint(absl::string_view session_id);

// Tuning of the index; the defaults suit production.
struct ColumnarIndexOptions {
  // A compaction runs when the tail reaches max(this, sorted rows / 8).
  uint32_t min_compaction_rows = 4096;
  // Session id fingerprint; null = SessionFingerprint. Tests inject a weak
  // one to exercise collisions.
  uint64_t (*session_id_hash)(absl::string_view) = nullptr;
  // Build logs progress every this many sessions or this often.
  uint64_t progress_every_sessions = 1000000;
  absl::Duration progress_interval = absl::Seconds(10);
};

// A row appended since the last compaction, with its account.
struct TailRow {
  uint32_t account;
  uint32_t row;
};

// The sessions of one account, as handed to DatasetView::ForEachAccount:
// the rows [sorted_begin, sorted_end) of the sorted region plus `tail`
// rows appended since the last compaction. Valid during the callback.
struct AccountRows {
  uint32_t account = 0;  // dense id in [0, num_accounts)
  uint32_t sorted_begin = 0;
  uint32_t sorted_end = 0;
  const TailRow* tail = nullptr;
  uint32_t tail_size = 0;

  uint32_t num_sessions() const {
    return sorted_end - sorted_begin + tail_size;
  }
  // Calls fn(uint32_t row) for each of the account's rows.
  template <typename Fn>
  void ForEachRow(Fn&& fn) const {
    for (uint32_t row = sorted_begin; row < sorted_end; ++row) fn(row);
    for (uint32_t i = 0; i < tail_size; ++i) fn(tail[i].row);
  }
};

// One dataset's columns and indexes. Reached through ColumnarIndex (which
// writes) and DatasetView (which reads); see the file comment for the
// layout and locking.
class ColumnarDataset {
 public:
  // `spec` is borrowed and must outlive this object.
  // Errors: InvalidArgument for a measure whose bounds do not fit fixed
  // point (see MeasureColumn::Create).
  static absl::StatusOr<std::unique_ptr<ColumnarDataset>> Create(
      const DatasetSpec* spec, const ColumnarIndexOptions& options);

  ColumnarDataset(const ColumnarDataset&) = delete;
  ColumnarDataset& operator=(const ColumnarDataset&) = delete;

  const DatasetSpec& spec() const { return *spec_; }

  // Applies one commit: inserts each new session, patches each known one
  // with its delta (CommittedSession), compacting whenever the tail reaches
  // its threshold. O(size of the deltas) apart from compactions. Takes the
  // writer lock.
  void Apply(const std::vector<CommittedSession>& sessions)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Removes each listed session (ingest's deletions: erasure of an
  // account, retention); a session not in the index is ignored. Then
  // re-sorts the remaining rows and drops accounts left without a session
  // (see RemoveRows), so readers never see a removed row. Takes the writer
  // lock for O(rows) time.
  void Remove(const std::vector<DeletedSession>& sessions)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Bulk load (Build): upserts without maintaining the tail's side index,
  // so a view must not be taken until FinishLoad() has compacted once at
  // the end. Takes the writer lock.
  void LoadOne(const CommittedSession& session) ABSL_LOCKS_EXCLUDED(mu_);
  // The same for one stored format-2 session, straight from its encoded
  // contributions (no message or delta is built): LoadBegin(), then
  // LoadContribution() for each of its contributions (false: `encoded` is
  // not a SourceContribution), then LoadEnd() with its header's fields.
  void LoadBegin() ABSL_LOCKS_EXCLUDED(mu_);
  bool LoadContribution(absl::string_view source, absl::string_view encoded)
      ABSL_LOCKS_EXCLUDED(mu_);
  void LoadEnd(absl::string_view session_id,
               const std::string& account_pseudonym, int64_t session_start)
      ABSL_LOCKS_EXCLUDED(mu_);
  void FinishLoad() ABSL_LOCKS_EXCLUDED(mu_);

  // Persistence of a sealed snapshot (index/sealed_index.h;
  // columnar_index_persist.cc). Appends the whole dataset (dictionaries,
  // columns, accounts, session fingerprints; host byte order) to `out`.
  // Takes the reader lock.
  void Serialize(std::string* out) const ABSL_LOCKS_EXCLUDED(mu_);
  // Replaces this dataset's rows with what Serialize wrote for a dataset
  // of the same spec. Errors: DataLoss when `in` is malformed or
  // inconsistent (this dataset is then left empty). Takes the writer lock.
  absl::Status Deserialize(absl::string_view in) ABSL_LOCKS_EXCLUDED(mu_);
  // Replaces this dataset's rows with `other`'s (same spec), leaving
  // `other` empty. O(sessions) for the session and account sets, which
  // are rebuilt. Takes both writer locks; `other` must not be visible to
  // readers.
  void ReplaceWith(ColumnarDataset* other) ABSL_LOCKS_EXCLUDED(mu_);
  // The values of open-domain (or derived) dimension `dim`, in code order.
  // Takes the reader lock.
  std::vector<std::string> DimensionValues(int dim) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Approximate heap bytes. Takes the reader lock.
  size_t MemoryBytes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Sessions indexed. Takes the reader lock.
  uint32_t NumSessions() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class DatasetView;

  // An account pseudonym folded to 128 bits: its two halves XORed.
  // Pseudonyms are HMAC-SHA256 outputs, so any 128 bits of them collide
  // with probability ~2^-90 at 10^7 accounts; folding rather than taking a
  // prefix keeps every byte, so pseudonyms that differ only at the end
  // (as test ones do) stay apart. Half the memory of the whole pseudonym,
  // which matters: there is one per account.
  struct AccountKey {
    uint64_t hi = 0;
    uint64_t lo = 0;
    bool operator==(const AccountKey& o) const {
      return hi == o.hi && lo == o.lo;
    }
  };
  // Probes for the sets below: look a key up without a stored number.
  struct SessionProbe {
    uint64_t hash;
  };
  struct AccountProbe {
    AccountKey key;
  };
  // Hash sets of dense numbers whose keys live in a side vector, so a set
  // entry costs 4 bytes (plus control byte) instead of key + value.
  // A session number's hash is its row's fingerprint; a compaction moves
  // both row and fingerprint, so the hash of a number never changes.
  struct SessionHash {
    using is_transparent = void;
    const ColumnarDataset* d;
    size_t operator()(uint32_t s) const { return d->NumberFingerprint(s); }
    size_t operator()(SessionProbe p) const { return p.hash; }
  };
  struct SessionEq {
    using is_transparent = void;
    const ColumnarDataset* d;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, SessionProbe p) const {
      return d->NumberFingerprint(a) == p.hash;
    }
    bool operator()(SessionProbe p, uint32_t a) const {
      return d->NumberFingerprint(a) == p.hash;
    }
  };
  struct AccountHash {
    using is_transparent = void;
    const std::vector<AccountKey>* keys;
    size_t operator()(uint32_t a) const { return Mix((*keys)[a]); }
    size_t operator()(AccountProbe p) const { return Mix(p.key); }
    static size_t Mix(const AccountKey& k);
  };
  struct AccountEq {
    using is_transparent = void;
    const std::vector<AccountKey>* keys;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, AccountProbe p) const {
      return (*keys)[a] == p.key;
    }
    bool operator()(AccountProbe p, uint32_t a) const {
      return (*keys)[a] == p.key;
    }
  };

  ColumnarDataset(const DatasetSpec* spec, const ColumnarIndexOptions& options,
                  std::vector<MeasureColumn> measures);

  // Inserts a session or applies its delta to its row; appends a new row's
  // TailRow to `new_rows` when given.
  void Upsert(const CommittedSession& session, std::vector<TailRow>* new_rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The same, where a null `delta` means scratch_codes_ / scratch_fixed_
  // already hold the session's whole row (month excepted).
  void UpsertRow(absl::string_view session_id,
                 const std::string& account_pseudonym, int64_t session_start,
                 const CommittedSession* delta, std::vector<TailRow>* new_rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Overwrites scratch_codes_ / scratch_fixed_ with the names `session`
  // sets (nullopt: absent); names outside the schema are ignored.
  void Patch(const CommittedSession& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRow(uint32_t row, bool append) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t AccountOf(const std::string& pseudonym)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t AccountOfRow(uint32_t row) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint32_t MonthCode(int64_t session_start) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Re-sorts every row by account; empties the tail.
  void Compact() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes row r of every column (codes, measures, fingerprints) the old
  // row new_to_old[r], reserving `capacity` rows; shared by Compact and
  // RemoveRows.
  void GatherRows(const std::vector<uint32_t>& new_to_old, size_t capacity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The row of a stored session, looked up as Upsert does (overflow map,
  // then fingerprint with account and month), or nullopt. Adds nothing.
  absl::optional<uint32_t> FindRow(const DeletedSession& session) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Drops the rows with dead[row] set, from a compacted index (empty
  // tail): keeps the others in order, renumbers sessions (number = row)
  // and accounts (those left without a row are forgotten, so num_accounts
  // counts only accounts with data). Dictionaries keep their values.
  void RemoveRows(const std::vector<bool>& dead)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The tail size at which Apply compacts.
  uint32_t CompactionThreshold() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Called by the session set's hasher, under the lock its caller holds.
  uint64_t NumberFingerprint(uint32_t number) const
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return row_fingerprint_[session_row_[number]];
  }
  size_t MemoryBytesLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Rebuilds accounts_ and sessions_ from the vectors they index.
  void RebuildSets() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Empties the rows (dictionaries back to the spec's).
  void ClearRows() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DeserializeLocked(absl::string_view in)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DatasetSpec* const spec_;
  const ColumnarIndexOptions options_;
  int month_dimension_ = -1;  // index of the derived month, or -1
  absl::flat_hash_map<std::string, int> dimension_index_;
  absl::flat_hash_map<std::string, int> measure_index_;

  mutable absl::Mutex mu_;
  // Per dimension, in spec order.
  std::vector<Dictionary> dictionaries_ ABSL_GUARDED_BY(mu_);
  std::vector<CodeColumn> codes_ ABSL_GUARDED_BY(mu_);
  // Per measure, in spec order.
  std::vector<MeasureColumn> measures_ ABSL_GUARDED_BY(mu_);
  uint32_t num_rows_ ABSL_GUARDED_BY(mu_) = 0;
  // Month (years * 12 + month - 1, UTC) -> month dictionary code, so the
  // hot path needs no string formatting.
  absl::flat_hash_map<int64_t, uint32_t> month_codes_ ABSL_GUARDED_BY(mu_);

  // Accounts: dense id -> key, and the set of ids looked up by key.
  std::vector<AccountKey> account_keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint32_t, AccountHash, AccountEq> accounts_
      ABSL_GUARDED_BY(mu_);

  // Sorted region: rows [0, sorted_rows_), grouped by account in id order;
  // account a < sorted_accounts_ owns [account_begin_[a],
  // account_begin_[a + 1]).
  uint32_t sorted_rows_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t sorted_accounts_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint32_t> account_begin_ ABSL_GUARDED_BY(mu_);
  // Tail: rows [sorted_rows_, num_rows_). tail_account_[row - sorted_rows_]
  // is the row's account; tail_index_ lists the tail sorted by (account,
  // row), for ForEachAccount (empty during a bulk load).
  std::vector<uint32_t> tail_account_ ABSL_GUARDED_BY(mu_);
  std::vector<TailRow> tail_index_ ABSL_GUARDED_BY(mu_);

  // Sessions: row -> fingerprint of its id; stable number -> current row;
  // the set finds a stable number by fingerprint; colliding ids live in
  // overflow_.
  std::vector<uint64_t> row_fingerprint_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> session_row_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint32_t, SessionHash, SessionEq> sessions_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> overflow_ ABSL_GUARDED_BY(mu_);

  // Reused per upsert, to avoid allocating.
  struct LoadPick {
    bool set = false;
    uint64_t sequence = 0;
    std::string source;
    std::string label;
    double measure = 0;
  };
  std::vector<LoadPick> load_dimensions_ ABSL_GUARDED_BY(mu_);
  std::vector<LoadPick> load_measures_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> scratch_codes_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::optional<int64_t>> scratch_fixed_ ABSL_GUARDED_BY(mu_);
};

// A consistent, read-only view of one dataset, holding its reader lock
// from creation until destruction: keep it for one query and no longer
// (ingest waits for it). Do not create a second view of the same dataset
// on a thread that holds one: with a writer waiting, that deadlocks.
// Not copyable or movable. Dimension and measure indices are positions in
// spec().dimensions / spec().measures.
//
// The executor's inner loop, e.g. verified-success rate by occupation for
// novices, with per-account bounding:
//
//   ASSIGN_OR_RETURN(auto view, index.Read("sessions"));
//   int exp = view->FindDimension("expertise");
//   int occ = view->FindDimension("occupation");
//   auto novice = view->DimensionCode(exp, "novice");  // nullopt: no rows
//   const CodeColumn& e = view->codes(exp);
//   ASSIGN_OR_RETURN(CohortKeyer keyer, CohortKeyer::Create(*view, {occ}));
//   view->ForEachAccount([&](const AccountRows& account) {
//     account.ForEachRow([&](uint32_t row) {
//       if (e[row] != *novice) return;
//       uint64_t cohort = keyer.Key(row);
//       ... collect (cohort, row) for this account, then bound and sum ...
//     });
//   });
class DatasetView {
 public:
  DatasetView(const DatasetView&) = delete;
  DatasetView& operator=(const DatasetView&) = delete;
  ~DatasetView() ABSL_UNLOCK_FUNCTION(d_->mu_);

  const DatasetSpec& spec() const { return *d_->spec_; }
  uint32_t num_sessions() const { return d_->num_rows_; }
  uint32_t num_accounts() const {
    return static_cast<uint32_t>(d_->account_keys_.size());
  }

  // Index of the named dimension / measure, or -1.
  int FindDimension(absl::string_view name) const;
  int FindMeasure(absl::string_view name) const;

  // Per-row codes of dimension `dim` (0 = absent).
  const CodeColumn& codes(int dim) const { return d_->codes_[dim]; }
  const Dictionary& dictionary(int dim) const { return d_->dictionaries_[dim]; }
  // The code of `value` in dimension `dim`, or nullopt when no session has
  // it (an open domain's unseen value, a value outside a closed domain).
  absl::optional<uint32_t> DimensionCode(int dim,
                                         absl::string_view value) const {
    return d_->dictionaries_[dim].Find(value);
  }
  // The value of `code`; "" for 0 (absent). Valid while the view lives.
  absl::string_view DimensionValue(int dim, uint32_t code) const {
    return d_->dictionaries_[dim].Value(code);
  }

  // Per-row fixed-point values of measure `m`.
  const MeasureColumn& measure(int m) const { return d_->measures_[m]; }

  // Calls fn(const AccountRows&) once per account, in dense-id order. Every
  // session appears exactly once. O(accounts + sessions).
  template <typename Fn>
  void ForEachAccount(Fn&& fn) const {
    const ColumnarDataset& d = *d_;
    const uint32_t accounts = num_accounts();
    const TailRow* tail = d.tail_index_.data();
    const TailRow* const tail_end = tail + d.tail_index_.size();
    for (uint32_t a = 0; a < accounts; ++a) {
      AccountRows rows;
      rows.account = a;
      if (a < d.sorted_accounts_) {
        rows.sorted_begin = d.account_begin_[a];
        rows.sorted_end = d.account_begin_[a + 1];
      }
      rows.tail = tail;
      while (tail != tail_end && tail->account == a) ++tail;
      rows.tail_size = static_cast<uint32_t>(tail - rows.tail);
      fn(static_cast<const AccountRows&>(rows));
    }
  }

  // Stable fingerprints for keyed contribution bounding: the same account
  // or session has the same fingerprint in every process and after every
  // compaction (unlike dense ids and rows), so a query recomputed after a
  // restart bounds the same way. An account's is 64 bits of its
  // pseudonym; a row's is SessionFingerprint(session id) (or the injected
  // Options::session_id_hash). Not unique: ids may collide.
  uint64_t AccountFingerprint(uint32_t account) const {
    return d_->account_keys_[account].lo;
  }
  uint64_t RowFingerprint(uint32_t row) const {
    return d_->row_fingerprint_[row];
  }

  // Approximate heap bytes of the dataset.
  size_t MemoryBytes() const { return d_->MemoryBytesLocked(); }

 private:
  friend class ColumnarIndex;
  explicit DatasetView(const ColumnarDataset* d)
      ABSL_SHARED_LOCK_FUNCTION(d->mu_);

  const ColumnarDataset* const d_;
};

// Maps the codes of several group-by dimensions to one dense cohort number
// (mixed radix: the first dimension varies slowest), so the executor can
// accumulate into arrays indexed by cohort. Borrows the view's columns:
// use it only while the view lives. Thread-compatible.
class CohortKeyer {
 public:
  // Errors: InvalidArgument for a dimension index out of range;
  // OutOfRange when the product of cardinalities exceeds 2^62.
  static absl::StatusOr<CohortKeyer> Create(const DatasetView& view,
                                            const std::vector<int>& dims);

  // Every Key() is < num_cohorts(). 1 when there are no dimensions.
  uint64_t num_cohorts() const { return num_cohorts_; }

  uint64_t Key(uint32_t row) const {
    uint64_t key = 0;
    for (size_t i = 0; i < columns_.size(); ++i) {
      key = key * radix_[i] + (*columns_[i])[row];
    }
    return key;
  }

  // The codes of `key`, one per dimension, in Create's order.
  std::vector<uint32_t> Decode(uint64_t key) const;

 private:
  CohortKeyer() = default;
  std::vector<const CodeColumn*> columns_;
  std::vector<uint64_t> radix_;
  uint64_t num_cohorts_ = 1;
};

// Loads every stored session of `dataset`'s spec from `store` (borrowed,
// used only during the call) into `dataset`, which must be empty and not
// yet visible to readers, logging progress; then compacts it. `cancel`,
// when given, is polled between sessions: once it returns true the load
// stops with Cancelled. Errors: the store's Scan errors (DataLoss on a
// damaged block); DataLoss for a record that does not parse (naming its
// key); Cancelled.
absl::Status LoadDatasetFromStore(ColumnarDataset* dataset, Store* store,
                                  const ColumnarIndexOptions& options,
                                  const std::function<bool()>& cancel = {});

// Every configured dataset's ColumnarDataset; the Ingestor's listener and
// its catalog of open-domain values (for ingest.max_open_domain_values).
class ColumnarIndex : public IngestListener, public OpenDomainCatalog {
 public:
  using Options = ColumnarIndexOptions;

  // An empty index over `datasets` (borrowed; must outlive the index).
  // Errors: as ColumnarDataset::Create; InvalidArgument for a duplicate
  // dataset name.
  static absl::StatusOr<std::unique_ptr<ColumnarIndex>> Create(
      const std::vector<const DatasetSpec*>& datasets, const Options& options);

  // Creates the index over config.datasets (borrowed; `config` must outlive
  // the index) and loads every stored session from `store` (borrowed, used
  // only during the call), logging progress. Start the Ingestor after this
  // returns, with this index as its listener, so no commit is missed.
  // Errors: as Create; FailedPrecondition when the store is not at the
  // current storage format (migrate first); the store's Scan errors;
  // DataLoss for a record that does not parse (naming its key).
  static absl::StatusOr<std::unique_ptr<ColumnarIndex>> Build(
      const Config& config, Store* store, const Options& options);

  // IngestListener: applies the commit to `dataset`'s columns under its
  // writer lock. An unknown dataset is logged and ignored. Thread-safe.
  void OnCommitted(const DatasetSpec& dataset,
                   const std::vector<CommittedSession>& sessions) override;
  // IngestListener: removes the deleted sessions from `dataset`'s columns
  // under its writer lock (ColumnarDataset::Remove). An unknown dataset is
  // logged and ignored. Thread-safe.
  void OnDeleted(const DatasetSpec& dataset,
                 const std::vector<DeletedSession>& sessions) override;

  // OpenDomainCatalog: the values the index's dictionary of dimension `dim`
  // holds (it keeps values no session uses any more until a restart).
  // Take the dataset's reader lock. False / 0 for an unknown dataset.
  bool HasValue(const DatasetSpec& dataset, int dim,
                absl::string_view value) const override;
  size_t NumValues(const DatasetSpec& dataset, int dim) const override;

  // A consistent read view of `dataset`; see DatasetView for its rules.
  // Errors: NotFound for an unknown dataset. Thread-safe.
  absl::StatusOr<std::unique_ptr<DatasetView>> Read(
      absl::string_view dataset) const;

  // Approximate heap bytes of all datasets. Thread-safe.
  size_t MemoryBytes() const;

  // The options the index was created with.
  const Options& options() const { return options_; }

  // The dataset named `dataset`, or null. Owned by the index.
  ColumnarDataset* FindDataset(absl::string_view dataset) const {
    return Find(dataset);
  }

 private:
  ColumnarIndex() = default;
  ColumnarDataset* Find(absl::string_view dataset) const;

  Options options_;
  // Fixed after Create; each dataset locks itself.
  std::vector<std::unique_ptr<ColumnarDataset>> datasets_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_INDEX_COLUMNAR_INDEX_H_

#include "server/index/columnar_index.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/ingest/session_merge.h"
#include "server/ingest/validator.h"
#include "server/storage/keys.h"

namespace cohortd {
namespace {

using ::cohortd::internal::SourceContribution;
using ::cohortd::internal::StoredSessionHeader;

ColumnarIndexOptions WithDefaults(ColumnarIndexOptions options) {
  if (options.session_id_hash == nullptr) {
    options.session_id_hash = SessionFingerprint;
  }
  return options;
}

// Sets v's capacity to max(size, capacity), shrinking if needed: bulk
// loading leaves vectors up to twice their size.
template <typename T>
void Refit(std::vector<T>* v, size_t capacity) {
  capacity = std::max(capacity, v->size());
  if (v->capacity() > capacity) {
    std::vector<T> fitted;
    fitted.reserve(capacity);
    fitted.assign(v->begin(), v->end());
    v->swap(fitted);
  } else {
    v->reserve(capacity);
  }
}

}  // namespace

uint64_t SessionFingerprint(absl::string_view session_id) {
  // Contribution bounding mixes it under its secret key; here it only has
  // to spread ids well.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : session_id) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

size_t ColumnarDataset::AccountHash::Mix(const AccountKey& k) {
  // The words are HMAC output, already uniform; mixing guards the table
  // against test pseudonyms that differ only in a few bytes.
  return absl::Hash<std::pair<uint64_t, uint64_t>>()({k.hi, k.lo});
}

absl::StatusOr<std::unique_ptr<ColumnarDataset>> ColumnarDataset::Create(
    const DatasetSpec* spec, const ColumnarIndexOptions& options) {
  std::vector<MeasureColumn> measures;
  for (const MeasureSpec& m : spec->measures) {
    ASSIGN_OR_RETURN(MeasureColumn column, MeasureColumn::Create(m));
    measures.push_back(std::move(column));
  }
  return std::unique_ptr<ColumnarDataset>(
      new ColumnarDataset(spec, options, std::move(measures)));
}

ColumnarDataset::ColumnarDataset(const DatasetSpec* spec,
                                 const ColumnarIndexOptions& options,
                                 std::vector<MeasureColumn> measures)
    : spec_(spec),
      options_(WithDefaults(options)),
      measures_(std::move(measures)),
      accounts_(0, AccountHash{&account_keys_}, AccountEq{&account_keys_}),
      sessions_(0, SessionHash{this}, SessionEq{this}) {
  for (size_t d = 0; d < spec->dimensions.size(); ++d) {
    const DimensionSpec& dim = spec->dimensions[d];
    if (dim.derived) {
      if (dim.name == "month") month_dimension_ = static_cast<int>(d);
    } else {
      dimension_index_[dim.name] = static_cast<int>(d);
    }
    if (dim.open_domain || dim.derived) {
      dictionaries_.push_back(Dictionary::Open());
    } else {
      dictionaries_.push_back(Dictionary::Closed(dim.values));
    }
    codes_.emplace_back(dictionaries_.back().cardinality() - 1);
  }
  for (size_t m = 0; m < spec->measures.size(); ++m) {
    measure_index_[spec->measures[m].name] = static_cast<int>(m);
  }
  account_begin_.push_back(0);
  scratch_codes_.resize(spec->dimensions.size());
  scratch_fixed_.resize(spec->measures.size());
  load_dimensions_.resize(spec->dimensions.size());
  load_measures_.resize(spec->measures.size());
}

void ColumnarDataset::Patch(const CommittedSession& session) {
  for (const auto& [name, value] : session.labels) {
    auto it = dimension_index_.find(name);
    if (it == dimension_index_.end()) continue;  // not in today's schema
    scratch_codes_[it->second] =
        value.has_value() ? dictionaries_[it->second].FindOrAdd(*value) : 0;
  }
  for (const auto& [name, value] : session.measures) {
    auto it = measure_index_.find(name);
    if (it == measure_index_.end()) continue;
    scratch_fixed_[it->second] = value.has_value()
                                     ? measures_[it->second].Encode(*value)
                                     : absl::nullopt;
  }
}

uint32_t ColumnarDataset::MonthCode(int64_t session_start) {
  const absl::CivilMonth civil = absl::ToCivilMonth(
      absl::FromUnixSeconds(session_start), absl::UTCTimeZone());
  const int64_t month = civil.year() * 12 + (civil.month() - 1);
  auto it = month_codes_.find(month);
  if (it != month_codes_.end()) return it->second;
  const uint32_t code =
      dictionaries_[month_dimension_].FindOrAdd(MonthOf(session_start));
  month_codes_.emplace(month, code);
  return code;
}

uint32_t ColumnarDataset::AccountOf(const std::string& pseudonym) {
  // Pseudonyms are 32-byte HMACs. Shorter ones (only ever seen in tests)
  // are zero-padded with their length in the last byte to stay distinct.
  uint64_t words[4] = {0, 0, 0, 0};
  unsigned char* bytes = reinterpret_cast<unsigned char*>(words);
  if (pseudonym.size() >= sizeof(words)) {
    std::memcpy(bytes, pseudonym.data(), sizeof(words));
  } else {
    std::memcpy(bytes, pseudonym.data(), pseudonym.size());
    bytes[sizeof(words) - 1] = static_cast<unsigned char>(pseudonym.size());
  }
  AccountKey key;
  key.hi = words[0] ^ words[2];
  key.lo = words[1] ^ words[3];
  auto it = accounts_.find(AccountProbe{key});
  if (it != accounts_.end()) return *it;
  const uint32_t id = static_cast<uint32_t>(account_keys_.size());
  account_keys_.push_back(key);  // before insert: the hasher reads it
  accounts_.insert(id);
  return id;
}

uint32_t ColumnarDataset::AccountOfRow(uint32_t row) const {
  if (row >= sorted_rows_) return tail_account_[row - sorted_rows_];
  // Every sorted account owns at least one row, so the offsets strictly
  // increase and the last offset <= row names the account.
  auto end = account_begin_.begin() + sorted_accounts_ + 1;
  return static_cast<uint32_t>(
      std::upper_bound(account_begin_.begin(), end, row) -
      account_begin_.begin() - 1);
}

void ColumnarDataset::WriteRow(uint32_t row, bool append) {
  for (size_t d = 0; d < codes_.size(); ++d) {
    if (append) {
      codes_[d].Append(scratch_codes_[d]);
    } else {
      codes_[d].Set(row, scratch_codes_[d]);
    }
  }
  for (size_t m = 0; m < measures_.size(); ++m) {
    if (append) {
      measures_[m].Append(scratch_fixed_[m]);
    } else {
      measures_[m].Set(row, scratch_fixed_[m]);
    }
  }
}

void ColumnarDataset::Upsert(const CommittedSession& session,
                             std::vector<TailRow>* new_rows) {
  UpsertRow(session.session_id, session.account_pseudonym,
            session.session_start_unix_seconds, &session, new_rows);
}

void ColumnarDataset::UpsertRow(absl::string_view session_id,
                                const std::string& account_pseudonym,
                                int64_t session_start,
                                const CommittedSession* delta,
                                std::vector<TailRow>* new_rows) {
  const uint32_t month = month_dimension_ >= 0 ? MonthCode(session_start) : 0;
  const uint32_t account = AccountOf(account_pseudonym);

  absl::optional<uint32_t> stable;
  if (!overflow_.empty()) {
    auto it = overflow_.find(session_id);
    if (it != overflow_.end()) stable = it->second;
  }
  const uint64_t hash = options_.session_id_hash(session_id);
  bool hash_taken = false;
  if (!stable.has_value()) {
    auto it = sessions_.find(SessionProbe{hash});
    if (it != sessions_.end()) {
      // Same hash: the same session unless account or month differ, which
      // a session's never do (ingest rejects such a change).
      const uint32_t row = session_row_[*it];
      const bool same_month =
          month_dimension_ < 0 || codes_[month_dimension_][row] == month;
      if (same_month && AccountOfRow(row) == account) {
        stable = *it;
      } else {
        hash_taken = true;
      }
    }
  }
  if (stable.has_value()) {
    const uint32_t row = session_row_[*stable];
    if (delta != nullptr) {
      // A delta: start from the row as it is.
      for (size_t d = 0; d < codes_.size(); ++d) {
        scratch_codes_[d] = codes_[d][row];
      }
      for (size_t m = 0; m < measures_.size(); ++m) {
        scratch_fixed_[m] = measures_[m].Get(row);
      }
      Patch(*delta);
    }
    if (month_dimension_ >= 0) scratch_codes_[month_dimension_] = month;
    WriteRow(row, /*append=*/false);
    return;
  }

  if (delta != nullptr) {
    std::fill(scratch_codes_.begin(), scratch_codes_.end(), 0);
    std::fill(scratch_fixed_.begin(), scratch_fixed_.end(), absl::nullopt);
    Patch(*delta);
  }
  if (month_dimension_ >= 0) scratch_codes_[month_dimension_] = month;
  const uint32_t row = num_rows_++;
  const uint32_t number = static_cast<uint32_t>(session_row_.size());
  // Both before the insert: the set's hasher reads them.
  session_row_.push_back(row);
  row_fingerprint_.push_back(hash);
  if (hash_taken) {
    overflow_.emplace(std::string(session_id), number);
  } else {
    sessions_.insert(number);
  }
  WriteRow(row, /*append=*/true);
  tail_account_.push_back(account);
  if (new_rows != nullptr) new_rows->push_back({account, row});
}

uint32_t ColumnarDataset::CompactionThreshold() const {
  return std::max(options_.min_compaction_rows, sorted_rows_ / 8);
}

void ColumnarDataset::Apply(const std::vector<CommittedSession>& sessions) {
  absl::MutexLock lock(&mu_);
  std::vector<TailRow> new_rows;
  for (const CommittedSession& session : sessions) {
    Upsert(session, &new_rows);
    // Compacting mid-commit is invisible to readers (they wait for the
    // whole commit) and keeps appends inside the reserved capacity.
    if (tail_account_.size() >= CompactionThreshold()) {
      Compact();
      new_rows.clear();  // now in the sorted region
    }
  }
  if (new_rows.empty()) return;
  // New rows come after every tail row, so ordering by account alone and
  // merging keeps tail_index_ sorted by (account, row).
  auto by_account = [](const TailRow& a, const TailRow& b) {
    return a.account < b.account;
  };
  std::stable_sort(new_rows.begin(), new_rows.end(), by_account);
  const size_t middle = tail_index_.size();
  tail_index_.insert(tail_index_.end(), new_rows.begin(), new_rows.end());
  std::inplace_merge(tail_index_.begin(), tail_index_.begin() + middle,
                     tail_index_.end(), by_account);
}

void ColumnarDataset::LoadOne(const CommittedSession& session) {
  absl::MutexLock lock(&mu_);
  Upsert(session, /*new_rows=*/nullptr);
}

namespace {

// Protocol-buffer wire decoding of a SourceContribution, without building
// the message (its maps allocate per entry, which dominated the start-up
// build). Fields other than these are skipped, so additive changes to the
// message still load.
bool ReadVarint(absl::string_view* in, uint64_t* out) {
  *out = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>((*in)[0]);
    in->remove_prefix(1);
    *out |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80u) == 0) return true;
  }
  return false;
}

// Reads one field: its number, and (by wire type) a varint, or the bytes
// of a fixed64, fixed32 or length-delimited payload.
bool ReadField(absl::string_view* in, uint32_t* number, uint64_t* varint,
               absl::string_view* bytes) {
  uint64_t tag = 0;
  if (!ReadVarint(in, &tag)) return false;
  *number = static_cast<uint32_t>(tag >> 3);
  uint64_t size = 0;
  switch (tag & 7) {
    case 0:
      return ReadVarint(in, varint);
    case 1:
      size = 8;
      break;
    case 2:
      if (!ReadVarint(in, &size)) return false;
      break;
    case 5:
      size = 4;
      break;
    default:
      return false;
  }
  if (size > in->size()) return false;
  *bytes = in->substr(0, size);
  in->remove_prefix(size);
  return true;
}

// A map entry: key (field 1, string) and value (field 2: a string, or a
// double as 8 little-endian bytes). Absent fields are the defaults.
bool ReadMapEntry(absl::string_view entry, absl::string_view* key,
                  absl::string_view* value) {
  *key = {};
  *value = {};
  while (!entry.empty()) {
    uint32_t number = 0;
    uint64_t varint = 0;
    absl::string_view bytes;
    if (!ReadField(&entry, &number, &varint, &bytes)) return false;
    if (number == 1) *key = bytes;
    if (number == 2) *value = bytes;
  }
  return true;
}

}  // namespace

void ColumnarDataset::LoadBegin() {
  absl::MutexLock lock(&mu_);
  for (LoadPick& pick : load_dimensions_) pick.set = false;
  for (LoadPick& pick : load_measures_) pick.set = false;
}

bool ColumnarDataset::LoadContribution(absl::string_view source,
                                       absl::string_view encoded) {
  absl::MutexLock lock(&mu_);
  uint64_t sequence = 0;
  // First pass: the sequence (field 3; serialised after the maps).
  for (absl::string_view in = encoded; !in.empty();) {
    uint32_t number = 0;
    uint64_t varint = 0;
    absl::string_view bytes;
    if (!ReadField(&in, &number, &varint, &bytes)) return false;
    if (number == 3) sequence = varint;
  }
  // The later push wins; equal sequences (which ingest never issues to two
  // sources) go to the greater source name, as in SessionMerger.
  auto overrides = [&](const LoadPick& pick) {
    if (!pick.set) return true;
    if (sequence != pick.sequence) return sequence > pick.sequence;
    return source > pick.source;
  };
  for (absl::string_view in = encoded; !in.empty();) {
    uint32_t number = 0;
    uint64_t varint = 0;
    absl::string_view bytes;
    if (!ReadField(&in, &number, &varint, &bytes)) return false;
    if (number != 1 && number != 2) continue;
    absl::string_view key, value;
    if (!ReadMapEntry(bytes, &key, &value)) return false;
    if (number == 1) {
      auto it = dimension_index_.find(key);
      if (it == dimension_index_.end()) continue;  // not in today's schema
      LoadPick& pick = load_dimensions_[it->second];
      if (!overrides(pick)) continue;
      pick.set = true;
      pick.sequence = sequence;
      pick.source.assign(source.data(), source.size());
      pick.label.assign(value.data(), value.size());
    } else {
      if (!value.empty() && value.size() != 8) return false;
      auto it = measure_index_.find(key);
      if (it == measure_index_.end()) continue;
      LoadPick& pick = load_measures_[it->second];
      if (!overrides(pick)) continue;
      pick.set = true;
      pick.sequence = sequence;
      pick.source.assign(source.data(), source.size());
      uint64_t bits = 0;
      for (size_t i = value.size(); i-- > 0;) {
        bits = (bits << 8) | static_cast<uint8_t>(value[i]);
      }
      std::memcpy(&pick.measure, &bits, sizeof(bits));
    }
  }
  return true;
}

void ColumnarDataset::LoadEnd(absl::string_view session_id,
                              const std::string& account_pseudonym,
                              int64_t session_start) {
  absl::MutexLock lock(&mu_);
  for (size_t d = 0; d < load_dimensions_.size(); ++d) {
    const LoadPick& pick = load_dimensions_[d];
    scratch_codes_[d] = pick.set ? dictionaries_[d].FindOrAdd(pick.label) : 0;
  }
  for (size_t m = 0; m < load_measures_.size(); ++m) {
    const LoadPick& pick = load_measures_[m];
    scratch_fixed_[m] =
        pick.set ? measures_[m].Encode(pick.measure) : absl::nullopt;
  }
  UpsertRow(session_id, account_pseudonym, session_start, /*delta=*/nullptr,
            /*new_rows=*/nullptr);
}

void ColumnarDataset::FinishLoad() {
  absl::MutexLock lock(&mu_);
  Compact();
}

void ColumnarDataset::Compact() {
  const uint32_t rows = num_rows_;
  const uint32_t accounts = static_cast<uint32_t>(account_keys_.size());

  // Counting sort by account; within an account, sorted rows keep their
  // order and tail rows follow in arrival order.
  std::vector<uint32_t> begin(accounts + 1, 0);
  for (uint32_t a = 0; a < sorted_accounts_; ++a) {
    begin[a + 1] = account_begin_[a + 1] - account_begin_[a];
  }
  for (uint32_t a : tail_account_) ++begin[a + 1];
  for (uint32_t a = 0; a < accounts; ++a) begin[a + 1] += begin[a];

  std::vector<uint32_t> new_to_old(rows);
  {
    std::vector<uint32_t> next(begin.begin(), begin.end() - 1);
    for (uint32_t a = 0; a < sorted_accounts_; ++a) {
      for (uint32_t r = account_begin_[a]; r < account_begin_[a + 1]; ++r) {
        new_to_old[next[a]++] = r;
      }
    }
    for (size_t i = 0; i < tail_account_.size(); ++i) {
      new_to_old[next[tail_account_[i]]++] =
          sorted_rows_ + static_cast<uint32_t>(i);
    }
  }

  account_begin_ = std::move(begin);
  sorted_rows_ = rows;
  sorted_accounts_ = accounts;
  tail_account_ = {};
  tail_index_ = {};

  // Room for exactly the next tail, so appends never double a column (a
  // doubling would cost more than the whole tail).
  const size_t capacity = size_t{rows} + CompactionThreshold();
  GatherRows(new_to_old, capacity);
  {
    std::vector<uint32_t> old_to_new(rows);
    for (uint32_t i = 0; i < rows; ++i) old_to_new[new_to_old[i]] = i;
    for (uint32_t& row : session_row_) row = old_to_new[row];
  }
  Refit(&session_row_, capacity);
  // New accounts are rarer than new sessions; an eighth more is plenty,
  // and a doubling of this one vector is affordable.
  Refit(&account_keys_, size_t{accounts} + accounts / 8);
  tail_account_.reserve(CompactionThreshold());
}

void ColumnarDataset::GatherRows(const std::vector<uint32_t>& new_to_old,
                                 size_t capacity) {
  for (CodeColumn& column : codes_) column.Permute(new_to_old, capacity);
  for (MeasureColumn& column : measures_) {
    column.Permute(new_to_old, capacity);
  }
  std::vector<uint64_t> fingerprints;
  fingerprints.reserve(capacity);
  for (uint32_t old_row : new_to_old) {
    fingerprints.push_back(row_fingerprint_[old_row]);
  }
  row_fingerprint_.swap(fingerprints);
}

size_t ColumnarDataset::MemoryBytesLocked() const {
  size_t bytes = 0;
  for (const Dictionary& d : dictionaries_) bytes += d.MemoryBytes();
  for (const CodeColumn& c : codes_) bytes += c.MemoryBytes();
  for (const MeasureColumn& m : measures_) bytes += m.MemoryBytes();
  // A flat hash set slot is the element plus one control byte.
  bytes += account_keys_.capacity() * sizeof(AccountKey);
  bytes += accounts_.capacity() * (sizeof(uint32_t) + 1);
  bytes += account_begin_.capacity() * sizeof(uint32_t);
  bytes += tail_account_.capacity() * sizeof(uint32_t);
  bytes += tail_index_.capacity() * sizeof(TailRow);
  bytes += session_row_.capacity() * sizeof(uint32_t);
  bytes += row_fingerprint_.capacity() * sizeof(uint64_t);
  bytes += sessions_.capacity() * (sizeof(uint32_t) + 1);
  bytes +=
      overflow_.capacity() * (sizeof(std::pair<std::string, uint32_t>) + 1);
  for (const auto& [id, number] : overflow_) bytes += id.capacity();
  bytes += month_codes_.capacity() * (sizeof(std::pair<int64_t, uint32_t>) + 1);
  return bytes;
}

size_t ColumnarDataset::MemoryBytes() const {
  absl::ReaderMutexLock lock(&mu_);
  return MemoryBytesLocked();
}

uint32_t ColumnarDataset::NumSessions() const {
  absl::ReaderMutexLock lock(&mu_);
  return num_rows_;
}

DatasetView::DatasetView(const ColumnarDataset* d) : d_(d) {
  d_->mu_.ReaderLock();
}

DatasetView::~DatasetView() { d_->mu_.ReaderUnlock(); }

int DatasetView::FindDimension(absl::string_view name) const {
  const auto& dims = spec().dimensions;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d].name == name) return static_cast<int>(d);
  }
  return -1;
}

int DatasetView::FindMeasure(absl::string_view name) const {
  const auto& measures = spec().measures;
  for (size_t m = 0; m < measures.size(); ++m) {
    if (measures[m].name == name) return static_cast<int>(m);
  }
  return -1;
}

absl::StatusOr<CohortKeyer> CohortKeyer::Create(const DatasetView& view,
                                                const std::vector<int>& dims) {
  constexpr uint64_t kMaxCohorts = uint64_t{1} << 62;
  CohortKeyer keyer;
  for (int dim : dims) {
    if (dim < 0 || dim >= static_cast<int>(view.spec().dimensions.size())) {
      return absl::InvalidArgumentError(
          absl::StrFormat("no dimension with index %d", dim));
    }
    const uint64_t radix = view.dictionary(dim).cardinality();
    if (keyer.num_cohorts_ > kMaxCohorts / radix) {
      return absl::OutOfRangeError(absl::StrFormat(
          "grouping by %d dimensions gives more than 2^62 cohorts",
          dims.size()));
    }
    keyer.num_cohorts_ *= radix;
    keyer.columns_.push_back(&view.codes(dim));
    keyer.radix_.push_back(radix);
  }
  return keyer;
}

std::vector<uint32_t> CohortKeyer::Decode(uint64_t key) const {
  std::vector<uint32_t> codes(radix_.size());
  for (size_t i = radix_.size(); i-- > 0;) {
    codes[i] = static_cast<uint32_t>(key % radix_[i]);
    key /= radix_[i];
  }
  return codes;
}

absl::StatusOr<std::unique_ptr<ColumnarIndex>> ColumnarIndex::Create(
    const std::vector<const DatasetSpec*>& datasets, const Options& options) {
  std::unique_ptr<ColumnarIndex> index(new ColumnarIndex());
  index->options_ = options;
  for (const DatasetSpec* spec : datasets) {
    if (index->Find(spec->name) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("dataset %s is listed twice", spec->name));
    }
    ASSIGN_OR_RETURN(auto dataset, ColumnarDataset::Create(spec, options));
    index->datasets_.push_back(std::move(dataset));
  }
  return index;
}

absl::Status LoadDatasetFromStore(ColumnarDataset* dataset, Store* store,
                                  const ColumnarIndexOptions& options,
                                  const std::function<bool()>& cancel) {
  const std::string& name = dataset->spec().name;
  const absl::Time start = absl::Now();
  absl::Time last_log = start;
  uint64_t loaded = 0;
  uint64_t next_log = options.progress_every_sessions;
  absl::Status parse_status;
  // Format 2 keeps a session's header first and its contributions right
  // after it (storage/keys.h), so one pass merges each session.
  bool open = false;
  StoredSessionHeader header;
  std::string key_dataset;
  std::string session_id;
  std::string open_session;
  std::string source;
  auto flush = [&] {
    if (!open) return;
    dataset->LoadEnd(open_session, header.account_pseudonym(),
                     header.session_start_unix_seconds());
    open = false;
    ++loaded;
  };
  RETURN_IF_ERROR(store->Scan(
      keys::SessionPrefix(name),
      [&](absl::string_view key, absl::string_view value) {
        if (!keys::ParseSessionRecordKey(key, &key_dataset, &session_id,
                                         &source)) {
          parse_status = absl::DataLossError(
              absl::StrFormat("session key %s is not in storage format %d",
                              std::string(key.data(), key.size()),
                              keys::kStorageFormatVersion));
          return false;
        }
        if (source.empty()) {
          flush();
          if (!header.ParseFromArray(value.data(),
                                     static_cast<int>(value.size()))) {
            parse_status = absl::DataLossError(
                absl::StrFormat("session record %s does not parse",
                                std::string(key.data(), key.size())));
            return false;
          }
          dataset->LoadBegin();
          open_session.swap(session_id);
          open = true;
        } else {
          if (!open || session_id != open_session ||
              !dataset->LoadContribution(source, value)) {
            parse_status = absl::DataLossError(absl::StrFormat(
                "session record %s does not parse or has no header",
                std::string(key.data(), key.size())));
            return false;
          }
          return true;
        }
        // Looking at the clock (and the cancel flag) every 4096 sessions
        // keeps them off the per-session cost.
        if (loaded < next_log && (loaded & 4095) != 0) return true;
        if (cancel && cancel()) {
          parse_status = absl::CancelledError(
              absl::StrFormat("loading dataset %s was cancelled", name));
          return false;
        }
        const absl::Time now = absl::Now();
        if (loaded >= next_log || now - last_log >= options.progress_interval) {
          const double seconds = absl::ToDoubleSeconds(now - start);
          LogInfo("index", "dataset %s: %d sessions loaded (%.0f/s)", name,
                  loaded, loaded / std::max(seconds, 1e-9));
          next_log = loaded + options.progress_every_sessions;
          last_log = now;
        }
        return true;
      }));
  RETURN_IF_ERROR(parse_status);
  flush();
  dataset->FinishLoad();

  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const size_t bytes = dataset->MemoryBytes();
  LogInfo("index",
          "dataset %s: %d sessions loaded from the store in %.1f s; "
          "%.1f MiB (%.1f bytes/session)",
          name, loaded, seconds, bytes / (1024.0 * 1024.0),
          loaded == 0 ? 0.0 : static_cast<double>(bytes) / loaded);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ColumnarIndex>> ColumnarIndex::Build(
    const Config& config, Store* store, const Options& options) {
  std::vector<const DatasetSpec*> specs;
  for (const DatasetSpec& spec : config.datasets) specs.push_back(&spec);
  ASSIGN_OR_RETURN(std::unique_ptr<ColumnarIndex> index,
                   Create(specs, options));
  RETURN_IF_ERROR(CheckSessionFormatCurrent(store));
  for (const auto& dataset : index->datasets_) {
    RETURN_IF_ERROR(LoadDatasetFromStore(dataset.get(), store, options));
  }
  return index;
}

ColumnarDataset* ColumnarIndex::Find(absl::string_view dataset) const {
  for (const auto& d : datasets_) {
    if (d->spec().name == dataset) return d.get();
  }
  return nullptr;
}

bool ColumnarIndex::HasValue(const DatasetSpec& dataset, int dim,
                             absl::string_view value) const {
  const ColumnarDataset* d = Find(dataset.name);
  if (d == nullptr) return false;
  auto view = Read(dataset.name);
  return (*view)->DimensionCode(dim, value).has_value();
}

size_t ColumnarIndex::NumValues(const DatasetSpec& dataset, int dim) const {
  const ColumnarDataset* d = Find(dataset.name);
  if (d == nullptr) return 0;
  auto view = Read(dataset.name);
  return (*view)->dictionary(dim).cardinality() - 1;  // code 0 is "absent"
}

void ColumnarIndex::OnCommitted(const DatasetSpec& dataset,
                                const std::vector<CommittedSession>& sessions) {
  ColumnarDataset* d = Find(dataset.name);
  if (d == nullptr) {
    LogWarning("index", "commit for unindexed dataset %s ignored",
               dataset.name);
    return;
  }
  d->Apply(sessions);
}

absl::StatusOr<std::unique_ptr<DatasetView>> ColumnarIndex::Read(
    absl::string_view dataset) const {
  const ColumnarDataset* d = Find(dataset);
  if (d == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("no dataset %s", std::string(dataset)));
  }
  return std::unique_ptr<DatasetView>(new DatasetView(d));
}

size_t ColumnarIndex::MemoryBytes() const {
  size_t bytes = 0;
  for (const auto& d : datasets_) bytes += d->MemoryBytes();
  return bytes;
}

// --- Removal (erasure and retention) --------------------------------------

absl::optional<uint32_t> ColumnarDataset::FindRow(
    const DeletedSession& session) const {
  if (!overflow_.empty()) {
    auto it = overflow_.find(session.session_id);
    if (it != overflow_.end()) return session_row_[it->second];
  }
  auto it = sessions_.find(
      SessionProbe{options_.session_id_hash(session.session_id)});
  if (it == sessions_.end()) return absl::nullopt;
  const uint32_t row = session_row_[*it];
  // The same checks as Upsert: a fingerprint match is this session only if
  // account and month agree.
  if (month_dimension_ >= 0) {
    const absl::CivilMonth civil = absl::ToCivilMonth(
        absl::FromUnixSeconds(session.session_start_unix_seconds),
        absl::UTCTimeZone());
    auto month = month_codes_.find(civil.year() * 12 + (civil.month() - 1));
    if (month == month_codes_.end() ||
        codes_[month_dimension_][row] != month->second) {
      return absl::nullopt;
    }
  }
  const std::string& pseudonym = session.account_pseudonym;
  uint64_t words[4] = {0, 0, 0, 0};
  unsigned char* bytes = reinterpret_cast<unsigned char*>(words);
  if (pseudonym.size() >= sizeof(words)) {
    std::memcpy(bytes, pseudonym.data(), sizeof(words));
  } else {
    std::memcpy(bytes, pseudonym.data(), pseudonym.size());
    bytes[sizeof(words) - 1] = static_cast<unsigned char>(pseudonym.size());
  }
  const AccountKey key{words[0] ^ words[2], words[1] ^ words[3]};
  if (!(account_keys_[AccountOfRow(row)] == key)) return absl::nullopt;
  return row;
}

void ColumnarDataset::Remove(const std::vector<DeletedSession>& sessions) {
  absl::MutexLock lock(&mu_);
  bool any = false;
  for (const DeletedSession& session : sessions) {
    if (FindRow(session).has_value()) {
      any = true;
      break;
    }
  }
  if (!any) return;
  // Compacting first leaves one sorted region, whose rows are removed in
  // one pass; both are O(rows), fine for rare deletions.
  Compact();
  // Compact moved rows: translate through the session numbers, which it
  // keeps.
  std::vector<bool> dead_after(num_rows_, false);
  for (const DeletedSession& session : sessions) {
    const absl::optional<uint32_t> row = FindRow(session);
    if (row.has_value()) dead_after[*row] = true;
  }
  RemoveRows(dead_after);
}

void ColumnarDataset::RemoveRows(const std::vector<bool>& dead) {
  const uint32_t rows = num_rows_;
  const uint32_t accounts = sorted_accounts_;
  constexpr uint32_t kGone = std::numeric_limits<uint32_t>::max();

  std::vector<uint32_t> new_to_old;
  new_to_old.reserve(rows);
  std::vector<uint32_t> old_to_new(rows, kGone);
  std::vector<uint32_t> begin;
  begin.reserve(accounts + 1);
  begin.push_back(0);
  std::vector<AccountKey> keys;
  keys.reserve(accounts);
  for (uint32_t a = 0; a < accounts; ++a) {
    const size_t before = new_to_old.size();
    for (uint32_t r = account_begin_[a]; r < account_begin_[a + 1]; ++r) {
      if (dead[r]) continue;
      old_to_new[r] = static_cast<uint32_t>(new_to_old.size());
      new_to_old.push_back(r);
    }
    if (new_to_old.size() == before) continue;  // account has no rows left
    keys.push_back(account_keys_[a]);
    begin.push_back(static_cast<uint32_t>(new_to_old.size()));
  }
  const uint32_t live = static_cast<uint32_t>(new_to_old.size());

  // Overflow entries hold session numbers; after this, number = row.
  absl::flat_hash_map<std::string, uint32_t> overflow;
  for (const auto& [id, number] : overflow_) {
    const uint32_t row = old_to_new[session_row_[number]];
    if (row != kGone) overflow.emplace(id, row);
  }
  std::vector<bool> in_overflow(live, false);
  for (const auto& [id, row] : overflow) in_overflow[row] = true;

  num_rows_ = live;
  sorted_rows_ = live;
  sorted_accounts_ = static_cast<uint32_t>(keys.size());
  account_begin_ = std::move(begin);
  const size_t capacity = size_t{live} + CompactionThreshold();
  GatherRows(new_to_old, capacity);
  // The hash sets read these vectors through their hashers: rebuild the
  // sets only after the vectors are final.
  session_row_.clear();
  session_row_.reserve(capacity);
  for (uint32_t row = 0; row < live; ++row) session_row_.push_back(row);
  overflow_ = std::move(overflow);
  sessions_.clear();
  sessions_.reserve(live);
  for (uint32_t number = 0; number < live; ++number) {
    if (!in_overflow[number]) sessions_.insert(number);
  }
  account_keys_ = std::move(keys);
  accounts_.clear();
  accounts_.reserve(account_keys_.size());
  for (uint32_t a = 0; a < account_keys_.size(); ++a) accounts_.insert(a);
  tail_account_.clear();
  tail_index_.clear();
  tail_account_.reserve(CompactionThreshold());
}

void ColumnarIndex::OnDeleted(const DatasetSpec& dataset,
                              const std::vector<DeletedSession>& sessions) {
  ColumnarDataset* d = Find(dataset.name);
  if (d == nullptr) {
    LogWarning("index", "deletion for unindexed dataset %s ignored",
               dataset.name);
    return;
  }
  d->Remove(sessions);
}

}  // namespace cohortd

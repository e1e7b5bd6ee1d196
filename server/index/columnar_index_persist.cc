// ColumnarDataset's persistence: the byte image of a sealed dataset that
// index/sealed_index.h keeps in the store, so a restart loads it instead
// of rebuilding it from every session record (issue 13, restart time).
//
// The image is the dataset's vectors as they are in memory (host byte
// order; sealed_index.h records the byte order and refuses another), in a
// fixed order, each length-prefixed. The two hash sets are not stored:
// they index the vectors and are rebuilt on load (O(sessions)). Integrity
// is the caller's: sealed_index.h checks a SHA-256 of the whole image
// before Deserialize sees it; Deserialize still checks every size and
// range it relies on, so even an image that passed the checksum cannot
// make a reader index out of bounds.
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/index/columnar_index.h"

namespace cohortd {
namespace {

constexpr uint32_t kImageVersion = 1;

void PutU32(uint32_t v, std::string* out) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutU64(uint64_t v, std::string* out) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutBytes(absl::string_view bytes, std::string* out) {
  PutU64(bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}
template <typename T>
void PutVector(const std::vector<T>& v, std::string* out) {
  PutBytes(absl::string_view(reinterpret_cast<const char*>(v.data()),
                             v.size() * sizeof(T)),
           out);
}

// Bounds-checked reads; every failure makes ok() false for good.
class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return in_.empty(); }

  uint32_t U32() {
    uint32_t v = 0;
    Fixed(&v, sizeof(v));
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    Fixed(&v, sizeof(v));
    return v;
  }
  absl::string_view Bytes() {
    const uint64_t size = U64();
    if (!ok_ || size > in_.size()) {
      ok_ = false;
      return {};
    }
    absl::string_view out = in_.substr(0, size);
    in_.remove_prefix(size);
    return out;
  }
  // A vector of T, reserving `capacity` elements.
  template <typename T>
  std::vector<T> Vector(size_t capacity = 0) {
    const absl::string_view bytes = Bytes();
    std::vector<T> v;
    if (!ok_ || bytes.size() % sizeof(T) != 0) {
      ok_ = false;
      return v;
    }
    v.reserve(std::max(capacity, bytes.size() / sizeof(T)));
    v.resize(bytes.size() / sizeof(T));
    if (!bytes.empty()) std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
  }
  void Fail() { ok_ = false; }

 private:
  void Fixed(void* out, size_t size) {
    if (!ok_ || in_.size() < size) {
      ok_ = false;
      return;
    }
    std::memcpy(out, in_.data(), size);
    in_.remove_prefix(size);
  }

  absl::string_view in_;
  bool ok_ = true;
};

}  // namespace

void ColumnarDataset::Serialize(std::string* out) const {
  absl::ReaderMutexLock lock(&mu_);
  PutU32(kImageVersion, out);
  PutU32(num_rows_, out);
  PutU32(sorted_rows_, out);
  PutU32(sorted_accounts_, out);
  PutU32(static_cast<uint32_t>(dictionaries_.size()), out);
  for (const Dictionary& dictionary : dictionaries_) {
    const uint32_t values = dictionary.cardinality() - 1;
    PutU32(values, out);
    for (uint32_t code = 1; code <= values; ++code) {
      PutBytes(dictionary.Value(code), out);
    }
  }
  for (const CodeColumn& column : codes_) {
    PutU32(static_cast<uint32_t>(column.width()), out);
    PutBytes(column.RawBytes(), out);
  }
  PutU32(static_cast<uint32_t>(measures_.size()), out);
  for (const MeasureColumn& column : measures_) {
    PutU32(static_cast<uint32_t>(column.width()), out);
    PutBytes(column.RawBytes(), out);
  }
  PutU64(month_codes_.size(), out);
  for (const auto& [month, code] : month_codes_) {
    PutU64(static_cast<uint64_t>(month), out);
    PutU32(code, out);
  }
  PutVector(account_keys_, out);
  PutVector(account_begin_, out);
  PutVector(tail_account_, out);
  PutVector(tail_index_, out);
  PutVector(row_fingerprint_, out);
  PutVector(session_row_, out);
  PutU64(overflow_.size(), out);
  for (const auto& [id, number] : overflow_) {
    PutBytes(id, out);
    PutU32(number, out);
  }
}

absl::Status ColumnarDataset::Deserialize(absl::string_view in) {
  absl::MutexLock lock(&mu_);
  absl::Status status = DeserializeLocked(in);
  if (!status.ok()) ClearRows();
  return status;
}

absl::Status ColumnarDataset::DeserializeLocked(absl::string_view in) {
  auto bad = [&](absl::string_view what) {
    return absl::DataLossError(
        absl::StrFormat("sealed index of dataset %s: %s", spec_->name, what));
  };
  ClearRows();
  Reader r(in);
  if (r.U32() != kImageVersion) return bad("unknown image version");
  const uint32_t rows = r.U32();
  const uint32_t sorted_rows = r.U32();
  const uint32_t sorted_accounts = r.U32();
  if (!r.ok() || sorted_rows > rows) return bad("bad row counts");
  if (r.U32() != dictionaries_.size()) return bad("dimension count differs");
  for (size_t d = 0; d < dictionaries_.size(); ++d) {
    const uint32_t values = r.U32();
    if (!r.ok()) return bad("truncated dictionary");
    if (!dictionaries_[d].open() &&
        values != dictionaries_[d].cardinality() - 1) {
      return bad(absl::StrFormat("dimension %s has another domain",
                                 spec_->dimensions[d].name));
    }
    for (uint32_t code = 1; code <= values; ++code) {
      const absl::string_view value = r.Bytes();
      if (!r.ok()) return bad("truncated dictionary");
      if (dictionaries_[d].FindOrAdd(value) != code) {
        return bad(absl::StrFormat("dimension %s: value %d out of order",
                                   spec_->dimensions[d].name, code));
      }
    }
  }
  // Appends reuse the reserved room, as after a compaction.
  const size_t capacity =
      size_t{rows} + std::max(options_.min_compaction_rows, sorted_rows / 8);
  for (size_t d = 0; d < codes_.size(); ++d) {
    const int width = static_cast<int>(r.U32());
    const absl::string_view bytes = r.Bytes();
    if (!r.ok() || !codes_[d].AssignRaw(width, rows, bytes, capacity)) {
      return bad("bad code column");
    }
    const uint32_t cardinality = dictionaries_[d].cardinality();
    const bool in_range = codes_[d].Visit([&](const auto* codes) {
      for (uint32_t row = 0; row < rows; ++row) {
        if (codes[row] >= cardinality) return false;
      }
      return true;
    });
    if (!in_range) return bad("code outside its dictionary");
  }
  if (r.U32() != measures_.size()) return bad("measure count differs");
  for (MeasureColumn& column : measures_) {
    const int width = static_cast<int>(r.U32());
    const absl::string_view bytes = r.Bytes();
    if (!r.ok() || !column.AssignRaw(width, rows, bytes, capacity)) {
      return bad("bad measure column (bounds changed?)");
    }
  }
  const uint64_t months = r.U64();
  if (!r.ok() || months > rows + uint64_t{1}) return bad("bad month table");
  for (uint64_t i = 0; i < months; ++i) {
    const int64_t month = static_cast<int64_t>(r.U64());
    const uint32_t code = r.U32();
    if (!r.ok() || month_dimension_ < 0 ||
        code >= dictionaries_[month_dimension_].cardinality()) {
      return bad("bad month table");
    }
    month_codes_.emplace(month, code);
  }
  account_keys_ = r.Vector<AccountKey>();
  account_begin_ = r.Vector<uint32_t>();
  tail_account_ = r.Vector<uint32_t>();
  tail_index_ = r.Vector<TailRow>();
  row_fingerprint_ = r.Vector<uint64_t>(capacity);
  session_row_ = r.Vector<uint32_t>(capacity);
  if (!r.ok()) return bad("truncated");
  const uint32_t accounts = static_cast<uint32_t>(account_keys_.size());
  if (sorted_accounts > accounts ||
      account_begin_.size() != size_t{sorted_accounts} + 1 ||
      account_begin_[0] != 0 || account_begin_.back() != sorted_rows ||
      tail_account_.size() != rows - sorted_rows ||
      row_fingerprint_.size() != rows || session_row_.size() != rows) {
    return bad("inconsistent sizes");
  }
  for (uint32_t a = 0; a < sorted_accounts; ++a) {
    if (account_begin_[a] > account_begin_[a + 1]) return bad("bad offsets");
  }
  for (uint32_t a : tail_account_) {
    if (a >= accounts) return bad("bad tail account");
  }
  for (const TailRow& t : tail_index_) {
    if (t.account >= accounts || t.row < sorted_rows || t.row >= rows) {
      return bad("bad tail index");
    }
  }
  // Every row belongs to exactly one session number.
  std::vector<bool> seen(rows, false);
  for (uint32_t row : session_row_) {
    if (row >= rows || seen[row]) return bad("bad session rows");
    seen[row] = true;
  }
  const uint64_t overflow = r.U64();
  if (!r.ok() || overflow > rows) return bad("bad overflow table");
  for (uint64_t i = 0; i < overflow; ++i) {
    const absl::string_view id = r.Bytes();
    const uint32_t number = r.U32();
    if (!r.ok() || number >= rows) return bad("bad overflow table");
    overflow_.emplace(std::string(id), number);
  }
  if (!r.done()) return bad("trailing bytes");
  num_rows_ = rows;
  sorted_rows_ = sorted_rows;
  sorted_accounts_ = sorted_accounts;
  tail_account_.reserve(capacity - rows);
  RebuildSets();
  return absl::OkStatus();
}

void ColumnarDataset::ClearRows() {
  for (size_t d = 0; d < spec_->dimensions.size(); ++d) {
    const DimensionSpec& dim = spec_->dimensions[d];
    dictionaries_[d] = dim.open_domain || dim.derived
                           ? Dictionary::Open()
                           : Dictionary::Closed(dim.values);
    codes_[d] = CodeColumn(dictionaries_[d].cardinality() - 1);
  }
  for (MeasureColumn& column : measures_) {
    column.AssignRaw(column.width(), 0, {}, 0);
  }
  num_rows_ = 0;
  month_codes_.clear();
  account_keys_.clear();
  accounts_.clear();
  sorted_rows_ = 0;
  sorted_accounts_ = 0;
  account_begin_.assign(1, 0);
  tail_account_.clear();
  tail_index_.clear();
  row_fingerprint_.clear();
  session_row_.clear();
  sessions_.clear();
  overflow_.clear();
}

void ColumnarDataset::RebuildSets() {
  accounts_.clear();
  accounts_.reserve(account_keys_.size());
  for (uint32_t a = 0; a < account_keys_.size(); ++a) accounts_.insert(a);
  std::vector<bool> in_overflow(session_row_.size(), false);
  for (const auto& [id, number] : overflow_) in_overflow[number] = true;
  sessions_.clear();
  sessions_.reserve(session_row_.size());
  for (uint32_t number = 0; number < session_row_.size(); ++number) {
    if (!in_overflow[number]) sessions_.insert(number);
  }
}

void ColumnarDataset::ReplaceWith(ColumnarDataset* other) {
  absl::MutexLock lock(&mu_);
  absl::MutexLock other_lock(&other->mu_);
  // The sets' hashers point into their own dataset: moved vectors, rebuilt
  // sets.
  dictionaries_ = std::move(other->dictionaries_);
  codes_ = std::move(other->codes_);
  measures_ = std::move(other->measures_);
  num_rows_ = other->num_rows_;
  month_codes_ = std::move(other->month_codes_);
  account_keys_ = std::move(other->account_keys_);
  sorted_rows_ = other->sorted_rows_;
  sorted_accounts_ = other->sorted_accounts_;
  account_begin_ = std::move(other->account_begin_);
  tail_account_ = std::move(other->tail_account_);
  tail_index_ = std::move(other->tail_index_);
  row_fingerprint_ = std::move(other->row_fingerprint_);
  session_row_ = std::move(other->session_row_);
  overflow_ = std::move(other->overflow_);
  RebuildSets();
  // `other` keeps moved-from vectors; make it a valid empty dataset.
  other->dictionaries_.clear();
  for (size_t d = 0; d < other->spec_->dimensions.size(); ++d) {
    other->dictionaries_.push_back(Dictionary::Open());
  }
  other->codes_.assign(other->spec_->dimensions.size(), CodeColumn());
  other->measures_.clear();
  for (const MeasureSpec& m : other->spec_->measures) {
    // The spec was valid when both datasets were created.
    other->measures_.push_back(*MeasureColumn::Create(m));
  }
  other->ClearRows();
}

std::vector<std::string> ColumnarDataset::DimensionValues(int dim) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> values;
  const Dictionary& dictionary = dictionaries_[dim];
  for (uint32_t code = 1; code < dictionary.cardinality(); ++code) {
    values.emplace_back(dictionary.Value(code));
  }
  return values;
}

}  // namespace cohortd

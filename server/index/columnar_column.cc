#include "server/index/columnar_column.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd {
namespace {

// The byte width whose all-ones value exceeds `max_stored`, so all-ones
// can serve as a sentinel ("absent" for measures; never issued for codes).
int WidthFor(uint64_t max_stored) {
  if (max_stored < std::numeric_limits<uint8_t>::max()) return 1;
  if (max_stored < std::numeric_limits<uint16_t>::max()) return 2;
  if (max_stored < std::numeric_limits<uint32_t>::max()) return 4;
  return 8;
}

template <typename T>
void PermuteVector(std::vector<T>* v, const std::vector<uint32_t>& new_to_old,
                   size_t capacity) {
  std::vector<T> out;
  out.reserve(std::max(capacity, new_to_old.size()));
  for (uint32_t old_row : new_to_old) out.push_back((*v)[old_row]);
  v->swap(out);
}

template <typename T>
absl::string_view BytesOf(const std::vector<T>& v, uint32_t size) {
  return absl::string_view(reinterpret_cast<const char*>(v.data()),
                           size_t{size} * sizeof(T));
}

template <typename T>
bool AssignBytes(std::vector<T>* v, uint32_t size, absl::string_view bytes,
                 size_t capacity) {
  if (bytes.size() != size_t{size} * sizeof(T)) return false;
  std::vector<T> out;
  out.reserve(std::max<size_t>(capacity, size));
  out.resize(size);
  if (size > 0) std::memcpy(out.data(), bytes.data(), bytes.size());
  v->swap(out);
  return true;
}

template <typename T>
size_t VectorBytes(const std::vector<T>& v) {
  return v.capacity() * sizeof(T);
}

}  // namespace

CodeColumn::CodeColumn(uint32_t max_code) {
  width_ = std::min(WidthFor(max_code), 4);
}

void CodeColumn::WidenFor(uint32_t code) {
  const int needed = std::min(WidthFor(code), 4);
  if (needed <= width_) return;
  // Widening happens at most twice per column over its lifetime (at the
  // 255th and 65535th value of a growing dictionary), so the copy is rare.
  std::vector<uint32_t> codes;
  codes.reserve(size_);
  for (uint32_t row = 0; row < size_; ++row) codes.push_back((*this)[row]);
  u8_ = {};
  u16_ = {};
  u32_ = {};
  width_ = needed;
  if (width_ == 2) {
    u16_.assign(codes.begin(), codes.end());
  } else {
    u32_ = std::move(codes);
  }
}

void CodeColumn::Append(uint32_t code) {
  WidenFor(code);
  switch (width_) {
    case 1:
      u8_.push_back(static_cast<uint8_t>(code));
      break;
    case 2:
      u16_.push_back(static_cast<uint16_t>(code));
      break;
    default:
      u32_.push_back(code);
  }
  ++size_;
}

void CodeColumn::Set(uint32_t row, uint32_t code) {
  WidenFor(code);
  switch (width_) {
    case 1:
      u8_[row] = static_cast<uint8_t>(code);
      break;
    case 2:
      u16_[row] = static_cast<uint16_t>(code);
      break;
    default:
      u32_[row] = code;
  }
}

void CodeColumn::Permute(const std::vector<uint32_t>& new_to_old,
                         size_t capacity) {
  switch (width_) {
    case 1:
      PermuteVector(&u8_, new_to_old, capacity);
      break;
    case 2:
      PermuteVector(&u16_, new_to_old, capacity);
      break;
    default:
      PermuteVector(&u32_, new_to_old, capacity);
  }
  size_ = static_cast<uint32_t>(new_to_old.size());
}

void CodeColumn::Reserve(size_t rows) {
  switch (width_) {
    case 1:
      u8_.reserve(rows);
      break;
    case 2:
      u16_.reserve(rows);
      break;
    default:
      u32_.reserve(rows);
  }
}

absl::string_view CodeColumn::RawBytes() const {
  switch (width_) {
    case 1:
      return BytesOf(u8_, size_);
    case 2:
      return BytesOf(u16_, size_);
    default:
      return BytesOf(u32_, size_);
  }
}

bool CodeColumn::AssignRaw(int width, uint32_t size, absl::string_view bytes,
                           size_t capacity) {
  CodeColumn column;
  column.width_ = width;
  switch (width) {
    case 1:
      if (!AssignBytes(&column.u8_, size, bytes, capacity)) return false;
      break;
    case 2:
      if (!AssignBytes(&column.u16_, size, bytes, capacity)) return false;
      break;
    case 4:
      if (!AssignBytes(&column.u32_, size, bytes, capacity)) return false;
      break;
    default:
      return false;
  }
  column.size_ = size;
  *this = std::move(column);
  return true;
}

size_t CodeColumn::MemoryBytes() const {
  return VectorBytes(u8_) + VectorBytes(u16_) + VectorBytes(u32_);
}

absl::StatusOr<MeasureColumn> MeasureColumn::Create(const MeasureSpec& spec) {
  if (!(spec.lower < spec.upper) || !(spec.granularity > 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "measure %s: needs lower < upper and granularity > 0, got [%g, %g] "
        "step %g",
        spec.name, spec.lower, spec.upper, spec.granularity));
  }
  constexpr double kMaxSteps = 4611686018427387904.0;  // 2^62
  if (std::fabs(spec.lower) / spec.granularity >= kMaxSteps ||
      std::fabs(spec.upper) / spec.granularity >= kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrFormat("measure %s: bounds [%g, %g] exceed 2^62 steps of %g",
                        spec.name, spec.lower, spec.upper, spec.granularity));
  }
  MeasureColumn column;
  column.lower_ = spec.lower;
  column.upper_ = spec.upper;
  column.granularity_ = spec.granularity;
  column.fixed_lower_ = std::llround(spec.lower / spec.granularity);
  column.fixed_upper_ = std::llround(spec.upper / spec.granularity);
  column.width_ = WidthFor(static_cast<uint64_t>(column.fixed_upper_) -
                           static_cast<uint64_t>(column.fixed_lower_));
  return column;
}

absl::optional<int64_t> MeasureColumn::Encode(double value) const {
  if (std::isnan(value)) return absl::nullopt;
  // llround is monotonic, so clamping first keeps the result inside
  // [fixed_lower_, fixed_upper_] (infinities clamp to the bounds too).
  return std::llround(std::clamp(value, lower_, upper_) / granularity_);
}

uint64_t MeasureColumn::Stored(absl::optional<int64_t> fixed) const {
  if (!fixed.has_value()) return kAbsent64;  // truncates to all-ones
  return static_cast<uint64_t>(*fixed) - static_cast<uint64_t>(fixed_lower_);
}

bool MeasureColumn::Has(uint32_t row) const {
  switch (width_) {
    case 1:
      return u8_[row] != kAbsent8;
    case 2:
      return u16_[row] != kAbsent16;
    case 4:
      return u32_[row] != kAbsent32;
    default:
      return u64_[row] != kAbsent64;
  }
}

int64_t MeasureColumn::Fixed(uint32_t row) const {
  uint64_t stored;
  switch (width_) {
    case 1:
      stored = u8_[row];
      break;
    case 2:
      stored = u16_[row];
      break;
    case 4:
      stored = u32_[row];
      break;
    default:
      stored = u64_[row];
  }
  return static_cast<int64_t>(stored + static_cast<uint64_t>(fixed_lower_));
}

void MeasureColumn::Append(absl::optional<int64_t> fixed) {
  const uint64_t stored = Stored(fixed);
  switch (width_) {
    case 1:
      u8_.push_back(static_cast<uint8_t>(stored));
      break;
    case 2:
      u16_.push_back(static_cast<uint16_t>(stored));
      break;
    case 4:
      u32_.push_back(static_cast<uint32_t>(stored));
      break;
    default:
      u64_.push_back(stored);
  }
  ++size_;
}

void MeasureColumn::Set(uint32_t row, absl::optional<int64_t> fixed) {
  const uint64_t stored = Stored(fixed);
  switch (width_) {
    case 1:
      u8_[row] = static_cast<uint8_t>(stored);
      break;
    case 2:
      u16_[row] = static_cast<uint16_t>(stored);
      break;
    case 4:
      u32_[row] = static_cast<uint32_t>(stored);
      break;
    default:
      u64_[row] = stored;
  }
}

void MeasureColumn::Permute(const std::vector<uint32_t>& new_to_old,
                            size_t capacity) {
  switch (width_) {
    case 1:
      PermuteVector(&u8_, new_to_old, capacity);
      break;
    case 2:
      PermuteVector(&u16_, new_to_old, capacity);
      break;
    case 4:
      PermuteVector(&u32_, new_to_old, capacity);
      break;
    default:
      PermuteVector(&u64_, new_to_old, capacity);
  }
  size_ = static_cast<uint32_t>(new_to_old.size());
}

void MeasureColumn::Reserve(size_t rows) {
  switch (width_) {
    case 1:
      u8_.reserve(rows);
      break;
    case 2:
      u16_.reserve(rows);
      break;
    case 4:
      u32_.reserve(rows);
      break;
    default:
      u64_.reserve(rows);
  }
}

absl::string_view MeasureColumn::RawBytes() const {
  switch (width_) {
    case 1:
      return BytesOf(u8_, size_);
    case 2:
      return BytesOf(u16_, size_);
    case 4:
      return BytesOf(u32_, size_);
    default:
      return BytesOf(u64_, size_);
  }
}

bool MeasureColumn::AssignRaw(int width, uint32_t size, absl::string_view bytes,
                              size_t capacity) {
  if (width != width_) return false;
  bool ok = false;
  switch (width) {
    case 1:
      ok = AssignBytes(&u8_, size, bytes, capacity);
      break;
    case 2:
      ok = AssignBytes(&u16_, size, bytes, capacity);
      break;
    case 4:
      ok = AssignBytes(&u32_, size, bytes, capacity);
      break;
    case 8:
      ok = AssignBytes(&u64_, size, bytes, capacity);
      break;
    default:
      return false;
  }
  if (ok) size_ = size;
  return ok;
}

size_t MeasureColumn::MemoryBytes() const {
  return VectorBytes(u8_) + VectorBytes(u16_) + VectorBytes(u32_) +
         VectorBytes(u64_);
}

}  // namespace cohortd

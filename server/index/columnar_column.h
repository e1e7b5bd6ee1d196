// The two column types of the columnar index: dictionary codes of a
// dimension (CodeColumn) and fixed-point values of a measure
// (MeasureColumn). Each keeps its values in the narrowest unsigned integer
// type that holds them, because memory per session is the index's budget
// (< 100 bytes per session) and narrow columns also scan faster. Readers
// that want a tight loop use Visit() to get the typed array once instead of
// paying a width switch per row.
#ifndef COHORTD_SERVER_INDEX_COLUMNAR_COLUMN_H_
#define COHORTD_SERVER_INDEX_COLUMNAR_COLUMN_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "server/config/config.h"

namespace cohortd {

// Dimension codes, one per row; 0 = absent. Starts 1 byte wide and widens
// (2, then 4 bytes) when a growing dictionary issues a larger code. Not
// thread-safe by itself: the index guards it with the dataset's lock.
class CodeColumn {
 public:
  // A column whose codes can reach `max_code` without widening.
  explicit CodeColumn(uint32_t max_code = 0);

  uint32_t size() const { return size_; }
  int width() const { return width_; }  // bytes per code: 1, 2 or 4

  uint32_t operator[](uint32_t row) const {
    switch (width_) {
      case 1:
        return u8_[row];
      case 2:
        return u16_[row];
      default:
        return u32_[row];
    }
  }

  // Calls fn(const T* codes) with T = uint8_t, uint16_t or uint32_t (the
  // current width) and returns its result. The pointer is valid until the
  // next mutation.
  template <typename Fn>
  decltype(auto) Visit(Fn&& fn) const {
    switch (width_) {
      case 1:
        return fn(static_cast<const uint8_t*>(u8_.data()));
      case 2:
        return fn(static_cast<const uint16_t*>(u16_.data()));
      default:
        return fn(static_cast<const uint32_t*>(u32_.data()));
    }
  }

  // Mutators, for the index's writer only. Append/Set widen as needed.
  void Append(uint32_t code);
  void Set(uint32_t row, uint32_t code);
  // Reorders rows: row i of the result is row new_to_old[i] of this
  // column, then reserves room for `capacity` rows.
  void Permute(const std::vector<uint32_t>& new_to_old, size_t capacity);
  void Reserve(size_t rows);

  // Persistence (index/sealed_index.h). The codes as size() * width()
  // bytes in host byte order; valid until the next mutation.
  absl::string_view RawBytes() const;
  // Replaces the contents with `size` codes of `width` bytes each, as
  // RawBytes gave them, reserving room for `capacity` rows. False (and
  // unchanged) when width is not 1, 2 or 4 or the byte count is wrong.
  bool AssignRaw(int width, uint32_t size, absl::string_view bytes,
                 size_t capacity);

  size_t MemoryBytes() const;

 private:
  void WidenFor(uint32_t code);

  int width_ = 1;
  uint32_t size_ = 0;
  // Exactly one of these is in use, the one matching width_.
  std::vector<uint8_t> u8_;
  std::vector<uint16_t> u16_;
  std::vector<uint32_t> u32_;
};

// Fixed-point measure values, one per row, possibly absent (a session that
// never got the measure is not a session with value 0). The fixed value of
// x is q = llround(clamp(x, lower, upper) / granularity), so noise later
// only meets integers (STYLE.md). Stored as q - fixed_lower() in the
// narrowest unsigned type whose all-ones value is free to mean "absent".
// Not thread-safe by itself: the index guards it with the dataset's lock.
class MeasureColumn {
 public:
  // Errors: InvalidArgument when the spec's bounds are not ordered, its
  // granularity is not positive, or bounds / granularity exceed 2^62.
  static absl::StatusOr<MeasureColumn> Create(const MeasureSpec& spec);

  uint32_t size() const { return size_; }
  int width() const { return width_; }  // bytes per value: 1, 2, 4 or 8
  double granularity() const { return granularity_; }
  int64_t fixed_lower() const { return fixed_lower_; }
  int64_t fixed_upper() const { return fixed_upper_; }

  // The fixed-point value of a raw value; nullopt for NaN (treated as
  // absent). Clamps, so the result is in [fixed_lower(), fixed_upper()].
  absl::optional<int64_t> Encode(double value) const;

  bool Has(uint32_t row) const;
  // Fixed-point value at `row`; requires Has(row).
  int64_t Fixed(uint32_t row) const;
  // Fixed-point value at `row`, or nullopt when absent.
  absl::optional<int64_t> Get(uint32_t row) const {
    if (!Has(row)) return absl::nullopt;
    return Fixed(row);
  }

  // Calls fn(const T* stored, T absent) with T the current unsigned type;
  // a present row's fixed value is stored[row] + fixed_lower(). Returns
  // fn's result. The pointer is valid until the next mutation.
  template <typename Fn>
  decltype(auto) Visit(Fn&& fn) const {
    switch (width_) {
      case 1:
        return fn(static_cast<const uint8_t*>(u8_.data()), kAbsent8);
      case 2:
        return fn(static_cast<const uint16_t*>(u16_.data()), kAbsent16);
      case 4:
        return fn(static_cast<const uint32_t*>(u32_.data()), kAbsent32);
      default:
        return fn(static_cast<const uint64_t*>(u64_.data()), kAbsent64);
    }
  }

  // Mutators, for the index's writer only. `fixed` is an Encode() result.
  void Append(absl::optional<int64_t> fixed);
  void Set(uint32_t row, absl::optional<int64_t> fixed);
  // As CodeColumn::Permute.
  void Permute(const std::vector<uint32_t>& new_to_old, size_t capacity);
  void Reserve(size_t rows);

  // Persistence, as CodeColumn's (widths 1, 2, 4 or 8; AssignRaw also
  // fails when `width` is not the one this column's bounds give).
  absl::string_view RawBytes() const;
  bool AssignRaw(int width, uint32_t size, absl::string_view bytes,
                 size_t capacity);

  size_t MemoryBytes() const;

 private:
  static constexpr uint8_t kAbsent8 = std::numeric_limits<uint8_t>::max();
  static constexpr uint16_t kAbsent16 = std::numeric_limits<uint16_t>::max();
  static constexpr uint32_t kAbsent32 = std::numeric_limits<uint32_t>::max();
  static constexpr uint64_t kAbsent64 = std::numeric_limits<uint64_t>::max();

  MeasureColumn() = default;
  uint64_t Stored(absl::optional<int64_t> fixed) const;

  double lower_ = 0;
  double upper_ = 0;
  double granularity_ = 1;
  int64_t fixed_lower_ = 0;
  int64_t fixed_upper_ = 0;
  int width_ = 8;
  uint32_t size_ = 0;
  std::vector<uint8_t> u8_;
  std::vector<uint16_t> u16_;
  std::vector<uint32_t> u32_;
  std::vector<uint64_t> u64_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_INDEX_COLUMNAR_COLUMN_H_

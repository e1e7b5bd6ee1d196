#include "server/storage/wal_reader.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/common/wire_encoding.h"

namespace cohortd {
namespace {

constexpr size_t kBlockSize = 32768;
constexpr size_t kHeaderSize = 7;  // crc32c (4), length (2), type (1)
enum RecordType : uint8_t {
  kZeroType = 0,
  kFullType = 1,
  kFirstType = 2,
  kMiddleType = 3,
  kLastType = 4,
};

uint32_t Crc32c(uint32_t crc, const char* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc = table[(crc ^ static_cast<uint8_t>(data[i])) & 0xff] ^ (crc >> 8);
  }
  return ~crc;
}

// RocksDB stores crc32c::Mask(crc) (util/crc32c.h): rotated right by 15
// bits plus a constant, so a CRC over data holding CRCs stays strong.
uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

uint32_t Fixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t Fixed64(const char* p) {
  return (static_cast<uint64_t>(Fixed32(p + 4)) << 32) | Fixed32(p);
}

// Parses a write batch's contents (best effort for a damaged one): the
// operations up to the first it cannot read.
void ParseBatch(absl::string_view payload, WalBatch* batch) {
  if (payload.size() < 12) return;
  batch->sequence = Fixed64(payload.data());
  batch->count = Fixed32(payload.data() + 8);
  absl::string_view in = payload.substr(12);
  while (!in.empty()) {
    const uint8_t tag = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    WalEntry entry;
    absl::string_view key;
    absl::string_view value;
    switch (tag) {  // RocksDB's ValueType (db/dbformat.h)
      case 0x4:     // column family deletion
      case 0x8:     // column family single deletion
        if (!wire::ConsumeVarint32(&in, &entry.column_family)) return;
        [[fallthrough]];
      case 0x0:  // deletion
      case 0x7:  // single deletion
        if (!wire::ConsumeLengthPrefixed(&in, &key)) return;
        entry.kind = (tag == 0x0 || tag == 0x4) ? WalEntry::Kind::kDelete
                                                : WalEntry::Kind::kSingleDelete;
        break;
      case 0x5:  // column family value
      case 0x6:  // column family merge
        if (!wire::ConsumeVarint32(&in, &entry.column_family)) return;
        [[fallthrough]];
      case 0x1:  // value
      case 0x2:  // merge
        if (!wire::ConsumeLengthPrefixed(&in, &key) ||
            !wire::ConsumeLengthPrefixed(&in, &value)) {
          return;
        }
        entry.kind = (tag == 0x1 || tag == 0x5) ? WalEntry::Kind::kPut
                                                : WalEntry::Kind::kMerge;
        break;
      case 0x3:  // log data: no key, not counted
        if (!wire::ConsumeLengthPrefixed(&in, &value)) return;
        continue;
      default:
        return;  // a kind cohortd never writes
    }
    entry.key = std::string(key);
    entry.value = std::string(value);
    batch->entries.push_back(std::move(entry));
  }
  batch->parsed = batch->entries.size() == batch->count;
}

// Frames and parses every record of `data`, damaged ones included, and
// notes the first damage.
class Scanner {
 public:
  explicit Scanner(absl::string_view data) : data_(data) {}

  WalContents Run() {
    size_t pos = 0;
    while (pos + kHeaderSize <= data_.size()) {
      const size_t block_left = kBlockSize - pos % kBlockSize;
      if (block_left < kHeaderSize) {  // block trailer
        pos += block_left;
        continue;
      }
      const char* h = data_.data() + pos;
      const uint32_t length =
          static_cast<uint8_t>(h[4]) |
          (static_cast<uint32_t>(static_cast<uint8_t>(h[5])) << 8);
      const uint8_t type = static_cast<uint8_t>(h[6]);
      if (type == kZeroType && length == 0 && ZerosFrom(pos)) {
        break;  // preallocated space: the end of what was written
      }
      if (type == kZeroType || type > kLastType ||
          kHeaderSize + length > block_left ||
          pos + kHeaderSize + length > data_.size()) {
        // A damaged header: the rest of the block cannot be framed. A zero
        // header with data after it is a lost block, not the end.
        const WalDamage why =
            type == kZeroType && length == 0 && Fixed32(h) == 0
                ? WalDamage::kZeroedRegion
            : type == kZeroType || type > kLastType ? WalDamage::kUnknownType
            : kHeaderSize + length > block_left     ? WalDamage::kBadLength
                                                    : WalDamage::kTornTail;
        if (!in_record_) StartRecord(pos, /*known_start=*/false);
        Damage(why);
        pos += block_left;
        continue;
      }
      const bool crc_ok = Crc32c(0, h + 6, 1 + length) == Unmask(Fixed32(h));
      if (type == kFullType || type == kFirstType) {
        if (in_record_) {  // the record in progress never got its LAST
          Damage(WalDamage::kBadFragmentOrder);
          Finish();
        }
        StartRecord(pos, /*known_start=*/true);
      } else if (!in_record_) {  // a MIDDLE or LAST without its FIRST
        StartRecord(pos, /*known_start=*/false);
        Damage(WalDamage::kBadFragmentOrder);
      }
      if (!crc_ok) Damage(WalDamage::kBadChecksum);
      payload_.append(h + kHeaderSize, length);
      pos += kHeaderSize + length;
      if (type == kFullType || type == kLastType) Finish();
    }
    if (!in_record_ && pos < data_.size() && !ZerosFrom(pos) &&
        kBlockSize - pos % kBlockSize >= kHeaderSize) {
      StartRecord(pos, /*known_start=*/false);  // cut inside a header
    }
    if (in_record_) {
      Damage(WalDamage::kTornTail);  // cut inside the record
      Finish();
    }
    return Split();
  }

 private:
  // Whether every byte from `pos` to the end is zero.
  bool ZerosFrom(size_t pos) const {
    return data_.find_first_not_of('\0', pos) == absl::string_view::npos;
  }

  // `known_start`: the record begins with its FULL or FIRST fragment, so
  // its payload begins with a batch header. Otherwise what is read from
  // the next block on is the rest of an unknown record, not parsed (its
  // "keys" would be garbage).
  void StartRecord(size_t pos, bool known_start) {
    current_ = WalBatch();
    current_.offset = pos;
    known_start_ = known_start;
    payload_.clear();
    in_record_ = true;
  }

  // The record in progress is damaged; the first damage splits the file.
  void Damage(WalDamage why) {
    current_.intact = false;
    if (damage_ == WalDamage::kNone) {
      damage_ = why;
      damage_offset_ = current_.offset;
      split_ = batches_.size();
    }
  }

  void Finish() {
    if (known_start_) ParseBatch(payload_, &current_);
    batches_.push_back(std::move(current_));
    current_ = WalBatch();
    payload_.clear();
    in_record_ = false;
  }

  WalContents Split() {
    WalContents out;
    out.file_size = data_.size();
    out.damage = damage_;
    out.damage_offset =
        damage_ == WalDamage::kNone ? data_.size() : damage_offset_;
    const size_t split = damage_ == WalDamage::kNone ? batches_.size() : split_;
    for (size_t i = 0; i < batches_.size(); ++i) {
      if (i < split) {
        const WalBatch& b = batches_[i];
        if (b.count > 0) out.last_good_sequence = b.sequence + b.count - 1;
        out.batches.push_back(std::move(batches_[i]));
      } else {
        out.after_damage.push_back(std::move(batches_[i]));
      }
    }
    return out;
  }

  absl::string_view data_;
  std::vector<WalBatch> batches_;
  WalBatch current_;
  std::string payload_;
  bool in_record_ = false;
  bool known_start_ = false;
  WalDamage damage_ = WalDamage::kNone;
  uint64_t damage_offset_ = 0;
  size_t split_ = 0;
};

}  // namespace

absl::string_view WalDamageName(WalDamage damage) {
  switch (damage) {
    case WalDamage::kNone:
      return "none";
    case WalDamage::kTornTail:
      return "torn tail";
    case WalDamage::kBadChecksum:
      return "bad checksum";
    case WalDamage::kBadLength:
      return "bad record length";
    case WalDamage::kUnknownType:
      return "unknown record type";
    case WalDamage::kBadFragmentOrder:
      return "fragment missing or out of order";
    case WalDamage::kZeroedRegion:
      return "zeroed region before more data";
  }
  return "unknown";
}

WalContents ParseWal(absl::string_view data) { return Scanner(data).Run(); }

absl::StatusOr<WalContents> ReadWalFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(absl::StrFormat("no WAL %s", path));
    }
    return absl::UnavailableError(
        absl::StrFormat("cannot open %s: %s", path, std::strerror(error)));
  }
  const std::string data((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::UnavailableError(
        absl::StrFormat("cannot read %s: %s", path, std::strerror(errno)));
  }
  return ParseWal(data);
}

}  // namespace cohortd

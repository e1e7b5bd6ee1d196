// Reads a RocksDB write-ahead log file record by record, without RocksDB,
// to say exactly what a damaged WAL holds and loses (`cohortd --salvage`,
// salvage.cc). RocksDB's own reader can only replay or drop; this one
// reports where the first bad record is and which write batches are before
// and after it.
//
// The format (RocksDB 7.8, db/log_format.h and db/write_batch.cc): the file
// is a sequence of 32 KiB blocks; a block holds fragments, each behind a
// 7-byte header (masked CRC32C of type and payload (4), payload length
// (2), type (1)); a fragment never crosses a block, and fewer than 7 bytes
// left at a block's end are zero padding. A logical record (one write
// batch) is one FULL fragment or FIRST, MIDDLE..., LAST. The batch is an
// 8-byte sequence number, a 4-byte count, then tagged operations.
// cohortd's options (no recycle_log_file_num, no wal_compression) make
// RocksDB 7.8 write only these four fragment types; the recyclable types
// (5-8, an 11-byte header with the log number) and the compression-type
// record (9) are reported as an unknown type, not read.
#ifndef COHORTD_SERVER_STORAGE_WAL_READER_H_
#define COHORTD_SERVER_STORAGE_WAL_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohortd {

// One operation of a write batch.
struct WalEntry {
  enum class Kind { kPut, kMerge, kDelete, kSingleDelete };
  Kind kind = Kind::kPut;
  uint32_t column_family = 0;  // 0: the default column family
  std::string key;
  std::string value;  // kPut, kMerge; empty for the deletions
  bool operator==(const WalEntry& o) const {
    return kind == o.kind && column_family == o.column_family && key == o.key &&
           value == o.value;
  }
};

// One logical WAL record: a write batch.
struct WalBatch {
  uint64_t offset = 0;  // file offset of its first fragment's header
  // Every fragment's checksum matched and the fragments came in order
  // (FULL, or FIRST MIDDLE... LAST) without a gap.
  bool intact = true;
  uint64_t sequence = 0;  // of its first operation
  uint32_t count = 0;     // operations, as its header says
  // Its operations in order, as far as they could be parsed (log data
  // records, which carry no key, are skipped).
  std::vector<WalEntry> entries;
  // The whole batch parsed and held `count` operations. An intact batch
  // that does not parse holds an operation kind cohortd never writes
  // (range deletion, blob index, transaction markers, ...).
  bool parsed = false;
};

// Why reading stopped before the end of the file.
enum class WalDamage {
  kNone,  // read to the end (zero preallocated tail included)
  // The file ends, or turns into zeros up to its end, inside a record or
  // its header: a write cut short by a crash (never synced, if the WAL was
  // synced after every acknowledged write). A record whose header was
  // written but whose payload reads as zeros fails its checksum instead:
  // kBadChecksum, even at the end.
  kTornTail,
  kBadChecksum,  // a fragment's CRC32C does not match its contents
  // A fragment whose length overruns its block (a damaged header).
  kBadLength,
  // A fragment type other than FULL/FIRST/MIDDLE/LAST (see the file
  // comment; includes the recyclable types).
  kUnknownType,
  // A MIDDLE or LAST without a FIRST, or a FULL or FIRST before the
  // record in progress got its LAST: a fragment is missing.
  kBadFragmentOrder,
  // A zero header (or zero bytes) followed later by non-zero data: a block
  // lost in the middle (e.g. a page never written back), not a
  // preallocated tail. Its record(s) cannot be read.
  kZeroedRegion,
};

// "torn tail", "bad checksum", ... for reports.
absl::string_view WalDamageName(WalDamage damage);

// What a WAL file holds, up to its first bad record.
struct WalContents {
  uint64_t file_size = 0;
  // The batches before the first bad record, in file order; each intact.
  // An intact file: every batch of the file.
  std::vector<WalBatch> batches;
  WalDamage damage = WalDamage::kNone;
  // The file offset where the damage starts: the header of the first
  // fragment of the first bad record (for kZeroedRegion or a torn header
  // with no record in progress, the first bad header). file_size when
  // damage is kNone.
  uint64_t damage_offset = 0;
  // The last sequence number of `batches` (sequence + count - 1 of the last
  // one with a count); 0 when there is none.
  uint64_t last_good_sequence = 0;
  // Diagnostics only, not to be replayed: from the first bad record on,
  // every record the reader could frame after skipping to the next block
  // at each damaged header, each with its own `intact` and `parsed` (a
  // damaged batch is parsed as far as it goes; one whose FULL or FIRST
  // fragment was not read is not parsed at all). The first is the bad
  // record itself, never intact; where no record was in progress (a
  // zeroed region, a damaged or torn header) it is an empty, unparsed
  // placeholder at damage_offset for what could not be read there. Empty
  // when damage is kNone.
  std::vector<WalBatch> after_damage;
};

// Reads the WAL bytes `data` (a whole file). Never fails: damage is
// reported in the result, as follows.
//  - intact file: every batch in `batches`, damage kNone, damage_offset =
//    data.size(); an empty file or one of zeros only (preallocated) holds
//    no batch and is intact; a zero tail after the last record likewise.
//  - torn tail (cut inside a record, inside a header, or at a block
//    boundary inside a record): kTornTail at the cut record; the batches
//    before it. A cut between records is an intact shorter file.
//  - bad checksum in any fragment: kBadChecksum at the offset of the first
//    fragment of that fragment's record; the batches before it.
//  - a length past the block's end, or an unknown fragment type:
//    kBadLength / kUnknownType at the record in progress (or the header);
//    the batches before it.
//  - fragments out of order or a zeroed block before more data:
//    kBadFragmentOrder / kZeroedRegion likewise.
// In every case the batches after the damage are in `after_damage` only.
WalContents ParseWal(absl::string_view data);

// Reads the WAL file at `path` and parses it as ParseWal does.
// Errors: NotFound when it does not exist; Unavailable when it cannot be
// read. Thread-safe (no shared state).
absl::StatusOr<WalContents> ReadWalFile(const std::string& path);

}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_WAL_READER_H_

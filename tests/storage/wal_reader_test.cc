// The salvage path's WAL reader against real WAL files written by RocksDB
// itself (a fresh database whose memtable is never flushed, so every batch
// stays in its one WAL; the file is copied before the database closes),
// intact and then damaged the ways a crash or a bad disk would. Every
// check compares with the exact batches the test wrote.
#include "server/storage/wal_reader.h"

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "tests/common/status_matchers.h"

namespace cohortd {

void PrintTo(const WalEntry& e, std::ostream* os) {
  *os << "{kind " << static_cast<int>(e.kind) << ", cf " << e.column_family
      << ", key \"" << e.key << "\", value of " << e.value.size() << " bytes}";
}

namespace {

namespace fs = std::filesystem;
using ::cohortd::testing::StatusIs;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

constexpr uint64_t kBlock = 32768;
constexpr uint64_t kHeader = 7;

// One batch as the test wrote it.
struct Written {
  uint64_t sequence = 0;
  std::vector<WalEntry> entries;
};

WalEntry Put(std::string key, std::string value) {
  WalEntry e;
  e.kind = WalEntry::Kind::kPut;
  e.key = std::move(key);
  e.value = std::move(value);
  return e;
}
WalEntry Delete(std::string key) {
  WalEntry e;
  e.kind = WalEntry::Kind::kDelete;
  e.key = std::move(key);
  return e;
}
WalEntry SingleDelete(std::string key) {
  WalEntry e;
  e.kind = WalEntry::Kind::kSingleDelete;
  e.key = std::move(key);
  return e;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

class WalReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/wal_reader_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  // Writes `batches` (synced, one Write each) into a fresh RocksDB and
  // returns the bytes of its WAL, copied while the database is open. Sets
  // each batch's sequence to the one RocksDB gave it.
  std::string WriteWal(std::vector<Written>* batches) {
    const std::string dir = absl::StrCat(root_, "/db", ++dbs_);
    rocksdb::Options options;
    options.create_if_missing = true;
    options.write_buffer_size = 64 << 20;  // no flush: the WAL keeps all
    rocksdb::DB* raw = nullptr;
    const rocksdb::Status opened = rocksdb::DB::Open(options, dir, &raw);
    EXPECT_TRUE(opened.ok()) << opened.ToString();
    if (!opened.ok()) return "";
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions write;
    write.sync = true;
    for (Written& w : *batches) {
      rocksdb::WriteBatch batch;
      for (const WalEntry& e : w.entries) {
        switch (e.kind) {
          case WalEntry::Kind::kPut:
            batch.Put(e.key, e.value);
            break;
          case WalEntry::Kind::kDelete:
            batch.Delete(e.key);
            break;
          case WalEntry::Kind::kSingleDelete:
            batch.SingleDelete(e.key);
            break;
          case WalEntry::Kind::kMerge:
            ADD_FAILURE() << "no merge operator configured";
            break;
        }
      }
      w.sequence = db->GetLatestSequenceNumber() + 1;
      const rocksdb::Status s = db->Write(write, &batch);
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    std::vector<std::string> wals;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() == ".log") {
        wals.push_back(entry.path().string());
      }
    }
    EXPECT_EQ(wals.size(), 1u);
    const std::string data = wals.empty() ? "" : ReadAll(wals.front());
    EXPECT_TRUE(db->Close().ok());
    return data;
  }

  // Writes `data` to a file and reads it back with ReadWalFile.
  WalContents ReadBytes(const std::string& data) {
    const std::string path = absl::StrCat(root_, "/", ++files_, ".log");
    {
      std::ofstream out(path, std::ios::binary);
      out.write(data.data(), static_cast<std::streamsize>(data.size()));
    }
    absl::StatusOr<WalContents> read = ReadWalFile(path);
    EXPECT_OK(read.status());
    return read.ok() ? *std::move(read) : WalContents();
  }

  std::string root_;
  int dbs_ = 0;
  int files_ = 0;
};

// Small batches, a put and deletions together, one of 100 KiB (four
// blocks: FIRST, MIDDLE, MIDDLE, LAST), then small ones past the next block
// boundary.
std::vector<Written> SampleBatches() {
  std::vector<Written> batches;
  for (int i = 0; i < 4; ++i) {
    Written w;
    for (int j = 0; j < 3; ++j) {
      w.entries.push_back(Put(absl::StrFormat("s/d/%03d/%d", i, j),
                              absl::StrCat(std::string(200 + 10 * i, 'v'), j)));
    }
    batches.push_back(w);
  }
  Written mixed;
  mixed.entries = {Put("s/d/new", "fresh value"), Delete("s/d/000/1"),
                   SingleDelete("s/d/001/2"), Put("b/budget", "charged")};
  batches.push_back(mixed);
  Written big;
  std::string huge(100 << 10, '\0');
  for (size_t i = 0; i < huge.size(); ++i) {
    huge[i] = static_cast<char>('a' + (i * 7919) % 26);
  }
  big.entries = {Put("s/big/1", huge), Put("s/big/2", "after the big one")};
  batches.push_back(big);
  for (int i = 0; i < 30; ++i) {  // past the next block boundary
    Written w;
    w.entries = {Put(absl::StrFormat("s/e/%03d", i), std::string(900, 'x')),
                 Delete(absl::StrFormat("s/d/%03d/0", i % 4))};
    batches.push_back(w);
  }
  return batches;
}
constexpr size_t kBig = 5;  // index of the 100 KiB batch

// `got` holds exactly `want`'s first `n` batches: sequence, count and every
// operation, each intact and parsed.
void ExpectBatches(const std::vector<WalBatch>& got,
                   const std::vector<Written>& want, size_t n) {
  ASSERT_EQ(got.size(), n);
  for (size_t i = 0; i < n; ++i) {
    SCOPED_TRACE(absl::StrCat("batch ", i));
    EXPECT_TRUE(got[i].intact);
    EXPECT_TRUE(got[i].parsed);
    EXPECT_EQ(got[i].sequence, want[i].sequence);
    EXPECT_EQ(got[i].count, want[i].entries.size());
    EXPECT_THAT(got[i].entries, ElementsAreArray(want[i].entries));
  }
}

uint64_t LastSequence(const std::vector<Written>& want, size_t n) {
  if (n == 0) return 0;
  return want[n - 1].sequence + want[n - 1].entries.size() - 1;
}

// A WAL written by RocksDB and its intact parse (whose offsets the damage
// tests aim at).
class WalReaderWrittenTest : public WalReaderTest {
 protected:
  void SetUp() override {
    WalReaderTest::SetUp();
    want_ = SampleBatches();
    wal_ = WriteWal(&want_);
    intact_ = ParseWal(wal_);
    ASSERT_EQ(intact_.batches.size(), want_.size());
    ASSERT_EQ(intact_.damage, WalDamage::kNone);
  }
  uint64_t OffsetOf(size_t i) const { return intact_.batches[i].offset; }

  std::vector<Written> want_;
  std::string wal_;
  WalContents intact_;
};

TEST_F(WalReaderWrittenTest, IntactWalReturnsEveryBatchAsWritten) {
  const WalContents read = ReadBytes(wal_);
  ExpectBatches(read.batches, want_, want_.size());
  EXPECT_EQ(read.damage, WalDamage::kNone);
  EXPECT_EQ(read.file_size, wal_.size());
  EXPECT_EQ(read.damage_offset, wal_.size());
  EXPECT_EQ(read.last_good_sequence, LastSequence(want_, want_.size()));
  EXPECT_THAT(read.after_damage, IsEmpty());
  // Batches follow each other; the big one spans at least three block
  // boundaries (FIRST, MIDDLE..., LAST).
  EXPECT_EQ(read.batches[0].offset, 0u);
  for (size_t i = 1; i < read.batches.size(); ++i) {
    EXPECT_LT(read.batches[i - 1].offset, read.batches[i].offset);
    EXPECT_EQ(read.batches[i].sequence,
              read.batches[i - 1].sequence + read.batches[i - 1].count);
  }
  EXPECT_GT(OffsetOf(kBig + 1) / kBlock, OffsetOf(kBig) / kBlock + 2);
}

TEST_F(WalReaderWrittenTest, PutAndDeletionsInOneBatch) {
  const WalBatch& mixed = intact_.batches[4];
  ASSERT_EQ(mixed.entries.size(), 4u);
  EXPECT_EQ(mixed.entries[0].kind, WalEntry::Kind::kPut);
  EXPECT_EQ(mixed.entries[0].value, "fresh value");
  EXPECT_EQ(mixed.entries[1].kind, WalEntry::Kind::kDelete);
  EXPECT_EQ(mixed.entries[1].key, "s/d/000/1");
  EXPECT_EQ(mixed.entries[1].value, "");
  EXPECT_EQ(mixed.entries[2].kind, WalEntry::Kind::kSingleDelete);
  EXPECT_EQ(mixed.entries[2].key, "s/d/001/2");
  EXPECT_EQ(mixed.entries[3].kind, WalEntry::Kind::kPut);
  EXPECT_EQ(mixed.sequence + 4, intact_.batches[5].sequence);
}

// A flipped payload byte in batch `i` (at `into` bytes past its first
// header): reading stops there, with every batch before it and none after.
void ExpectStopsAt(const WalContents& read, const std::vector<Written>& want,
                   size_t i, uint64_t offset, WalDamage damage) {
  EXPECT_EQ(read.damage, damage) << WalDamageName(read.damage);
  EXPECT_EQ(read.damage_offset, offset);
  ExpectBatches(read.batches, want, i);
  EXPECT_EQ(read.last_good_sequence, LastSequence(want, i));
}

TEST_F(WalReaderWrittenTest, FlippedByteStopsAtItsRecord) {
  for (size_t i : {size_t{0}, size_t{2}, size_t{4}, want_.size() - 1}) {
    SCOPED_TRACE(absl::StrCat("flip in batch ", i));
    std::string damaged = wal_;
    const uint64_t at = OffsetOf(i) + kHeader + 20;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x40);
    const WalContents read = ReadBytes(damaged);
    ExpectStopsAt(read, want_, i, OffsetOf(i), WalDamage::kBadChecksum);
    // The damaged record leads the diagnostics, then every later batch.
    ASSERT_EQ(read.after_damage.size(), want_.size() - i);
    EXPECT_FALSE(read.after_damage[0].intact);
    EXPECT_EQ(read.after_damage[0].offset, OffsetOf(i));
    for (size_t j = 1; j < read.after_damage.size(); ++j) {
      EXPECT_TRUE(read.after_damage[j].intact);
      EXPECT_EQ(read.after_damage[j].sequence, want_[i + j].sequence);
    }
  }
}

TEST_F(WalReaderWrittenTest, FlippedByteInALaterFragmentStopsAtTheRecordStart) {
  // Inside the big batch's third block (a MIDDLE fragment).
  std::string damaged = wal_;
  const uint64_t at = (OffsetOf(kBig) / kBlock + 2) * kBlock + 1000;
  ASSERT_LT(at, OffsetOf(kBig + 1));
  damaged[at] = static_cast<char>(damaged[at] ^ 0x01);
  const WalContents read = ReadBytes(damaged);
  ExpectStopsAt(read, want_, kBig, OffsetOf(kBig), WalDamage::kBadChecksum);
  ASSERT_EQ(read.after_damage.size(), want_.size() - kBig);
}

TEST_F(WalReaderWrittenTest, FlippedByteInTheMiddleOfTheFile) {
  // As the fault tests damage a WAL (tests/storage/corrupt_files.cc).
  std::string damaged = wal_;
  const uint64_t at = damaged.size() / 2;
  damaged[at] = static_cast<char>(damaged[at] ^ 0xff);
  size_t hit = 0;
  while (hit + 1 < want_.size() && OffsetOf(hit + 1) <= at) ++hit;
  const WalContents read = ReadBytes(damaged);
  EXPECT_NE(read.damage, WalDamage::kNone);
  EXPECT_EQ(read.damage_offset, OffsetOf(hit));
  ExpectBatches(read.batches, want_, hit);
}

TEST_F(WalReaderWrittenTest, UnknownRecordTypeStopsThere) {
  // Type 5 is RocksDB's recyclable FULL record, never written here.
  std::string damaged = wal_;
  damaged[OffsetOf(3) + 6] = 5;
  const WalContents read = ReadBytes(damaged);
  ExpectStopsAt(read, want_, 3, OffsetOf(3), WalDamage::kUnknownType);
}

TEST_F(WalReaderWrittenTest, LengthPastTheBlockStopsThere) {
  std::string damaged = wal_;
  damaged[OffsetOf(2) + 5] = static_cast<char>(0x7f);  // length >= 32512
  const WalContents read = ReadBytes(damaged);
  ExpectStopsAt(read, want_, 2, OffsetOf(2), WalDamage::kBadLength);
}

TEST_F(WalReaderWrittenTest, CutTailKeepsOnlyTheCompleteBatches) {
  const size_t last = want_.size() - 1;
  struct Cut {
    uint64_t at;
    size_t complete;
    WalDamage damage;
  };
  const std::vector<Cut> cuts = {
      {OffsetOf(last) + kHeader + 30, last, WalDamage::kTornTail},
      {OffsetOf(last) + 3, last, WalDamage::kTornTail},  // inside a header
      {OffsetOf(last), last, WalDamage::kNone},          // between records
      {OffsetOf(2) + 100, 2, WalDamage::kTornTail},
      {OffsetOf(kBig) + 50000, kBig, WalDamage::kTornTail},
      {0, 0, WalDamage::kNone},
  };
  for (const Cut& cut : cuts) {
    SCOPED_TRACE(absl::StrCat("cut at ", cut.at));
    const WalContents read = ReadBytes(wal_.substr(0, cut.at));
    EXPECT_EQ(read.damage, cut.damage) << WalDamageName(read.damage);
    EXPECT_EQ(read.damage_offset,
              cut.damage == WalDamage::kNone ? cut.at : OffsetOf(cut.complete));
    ExpectBatches(read.batches, want_, cut.complete);
    EXPECT_EQ(read.last_good_sequence, LastSequence(want_, cut.complete));
  }
}

TEST_F(WalReaderWrittenTest, ZeroedPayloadOfTheLastRecordFailsItsChecksum) {
  // Its header reached the disk, its payload did not (as the header file
  // documents: a bad checksum, not a torn tail).
  const size_t last = want_.size() - 1;
  std::string damaged = wal_;
  const uint64_t from = OffsetOf(last) + kHeader;
  damaged.replace(from, damaged.size() - from,
                  std::string(damaged.size() - from, '\0'));
  const WalContents read = ReadBytes(damaged);
  ExpectStopsAt(read, want_, last, OffsetOf(last), WalDamage::kBadChecksum);
}

TEST_F(WalReaderWrittenTest, CutAtABlockBoundary) {
  // Every boundary the big batch spans: FIRST (and MIDDLEs) without LAST.
  for (uint64_t at = (OffsetOf(kBig) / kBlock + 1) * kBlock;
       at < OffsetOf(kBig + 1); at += kBlock) {
    SCOPED_TRACE(absl::StrCat("cut at ", at));
    const WalContents read = ReadBytes(wal_.substr(0, at));
    ExpectStopsAt(read, want_, kBig, OffsetOf(kBig), WalDamage::kTornTail);
  }
  // The first boundary after the big batch: the batches that end by it.
  const uint64_t at = (OffsetOf(kBig + 1) / kBlock + 1) * kBlock;
  ASSERT_LT(at, wal_.size());
  auto end_of = [&](size_t i) {
    return i + 1 < want_.size() ? OffsetOf(i + 1) : wal_.size();
  };
  size_t complete = 0;
  while (complete < want_.size() && end_of(complete) <= at) ++complete;
  ASSERT_LT(complete, want_.size());
  const WalContents read = ReadBytes(wal_.substr(0, at));
  // A record ending within 6 bytes of the boundary is followed by padding.
  if (at - end_of(complete - 1) < kHeader) {
    EXPECT_EQ(read.damage, WalDamage::kNone);
    ExpectBatches(read.batches, want_, complete);
  } else {
    ExpectStopsAt(read, want_, complete, OffsetOf(complete),
                  WalDamage::kTornTail);
  }
}

TEST_F(WalReaderWrittenTest, ZeroedBlockInsideARecordStopsThere) {
  // A MIDDLE fragment of the big batch lost to zeros (a block never
  // written back), with intact records after it: not a preallocated tail.
  std::string damaged = wal_;
  const uint64_t block = OffsetOf(kBig) / kBlock + 2;
  ASSERT_LT((block + 1) * kBlock, OffsetOf(kBig + 1));
  damaged.replace(block * kBlock, kBlock, std::string(kBlock, '\0'));
  const WalContents read = ReadBytes(damaged);
  ExpectStopsAt(read, want_, kBig, OffsetOf(kBig), WalDamage::kZeroedRegion);
}

TEST_F(WalReaderWrittenTest, ZeroedRecordsBeforeMoreDataStopThere) {
  // From a record's start to its block's end: the records there are gone,
  // and those in later blocks must not be read as if nothing was missing.
  size_t first = kBig + 1;
  while (OffsetOf(first) % kBlock < kBlock / 2) ++first;
  const uint64_t from = OffsetOf(first);
  const uint64_t to = (from / kBlock + 1) * kBlock;
  ASSERT_LT(to, wal_.size());
  std::string damaged = wal_;
  damaged.replace(from, to - from, std::string(to - from, '\0'));
  const WalContents read = ReadBytes(damaged);
  ExpectStopsAt(read, want_, first, from, WalDamage::kZeroedRegion);
  // What was there is unknown: a placeholder, then the records framed in
  // the next block on.
  ASSERT_FALSE(read.after_damage.empty());
  EXPECT_EQ(read.after_damage[0].offset, from);
  EXPECT_FALSE(read.after_damage[0].intact);
  EXPECT_FALSE(read.after_damage[0].parsed);
  EXPECT_THAT(read.after_damage[0].entries, IsEmpty());
  EXPECT_EQ(read.after_damage.back().sequence, want_.back().sequence);
}

// RocksDB's masked CRC32C of a fragment's type and payload (to forge a
// fragment whose checksum matches).
uint32_t MaskedCrc(absl::string_view data) {
  uint32_t crc = ~0u;
  for (const char c : data) {
    crc ^= static_cast<uint8_t>(c);
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
  }
  crc = ~crc;
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

// Sets the type of the single-fragment record at `offset` to `type`, with
// a checksum that matches.
void Retype(std::string* wal, uint64_t offset, uint8_t type) {
  const size_t length = static_cast<uint8_t>((*wal)[offset + 4]) |
                        (static_cast<uint8_t>((*wal)[offset + 5]) << 8);
  (*wal)[offset + 6] = static_cast<char>(type);
  const uint32_t crc =
      MaskedCrc(absl::string_view(*wal).substr(offset + 6, 1 + length));
  for (int i = 0; i < 4; ++i) {
    (*wal)[offset + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  }
}

TEST_F(WalReaderWrittenTest, FragmentsOutOfOrderStopThere) {
  {
    SCOPED_TRACE("a FIRST followed by a FULL: the LAST is missing");
    std::string damaged = wal_;
    Retype(&damaged, OffsetOf(1), 2);
    const WalContents read = ReadBytes(damaged);
    ExpectStopsAt(read, want_, 1, OffsetOf(1), WalDamage::kBadFragmentOrder);
  }
  {
    SCOPED_TRACE("a LAST without a FIRST");
    std::string damaged = wal_;
    Retype(&damaged, OffsetOf(2), 4);
    const WalContents read = ReadBytes(damaged);
    ExpectStopsAt(read, want_, 2, OffsetOf(2), WalDamage::kBadFragmentOrder);
  }
  {
    SCOPED_TRACE("the forged checksum is right: FULL again reads intact");
    std::string forged = wal_;
    Retype(&forged, OffsetOf(2), 1);
    EXPECT_EQ(forged, wal_);
  }
}

TEST_F(WalReaderTest, EmptyFileHoldsNothing) {
  const WalContents read = ReadBytes("");
  EXPECT_THAT(read.batches, IsEmpty());
  EXPECT_EQ(read.damage, WalDamage::kNone);
  EXPECT_EQ(read.damage_offset, 0u);
  EXPECT_EQ(read.last_good_sequence, 0u);
}

TEST_F(WalReaderTest, FileOfZerosHoldsNothing) {
  for (size_t size : {size_t{5}, size_t{7}, size_t{100}, size_t{kBlock},
                      size_t{3 * kBlock + 11}}) {
    SCOPED_TRACE(absl::StrCat(size, " zero bytes"));
    const WalContents read = ReadBytes(std::string(size, '\0'));
    EXPECT_THAT(read.batches, IsEmpty());
    EXPECT_EQ(read.damage, WalDamage::kNone);
    EXPECT_EQ(read.damage_offset, size);
  }
}

TEST_F(WalReaderWrittenTest, PreallocatedZeroTailIsIntact) {
  for (size_t zeros : {size_t{3}, size_t{7}, size_t{kBlock + 100}}) {
    SCOPED_TRACE(absl::StrCat(zeros, " zero bytes"));
    const WalContents read = ReadBytes(wal_ + std::string(zeros, '\0'));
    EXPECT_EQ(read.damage, WalDamage::kNone);
    ExpectBatches(read.batches, want_, want_.size());
  }
}

TEST_F(WalReaderWrittenTest, MissingFileIsNotFound) {
  EXPECT_THAT(ReadWalFile(root_ + "/absent.log").status(),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace cohortd

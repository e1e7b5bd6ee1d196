// Helpers that damage a closed RocksDB store on disk the way a bad disk or
// a stray write would, for the corruption tests (tests/storage/ and
// tests/fault/). Each returns the damaged file's path, or an error saying
// why nothing was damaged (no such file, file too small, not an SST).
#ifndef COHORTD_TESTS_STORAGE_CORRUPT_FILES_H_
#define COHORTD_TESTS_STORAGE_CORRUPT_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cohortd::testing {

// Paths of the files in `dir` whose name ends with `suffix` (".log" for
// WALs, ".sst" for tables), sorted by name (RocksDB numbers grow).
std::vector<std::string> FilesWithSuffix(const std::string& dir,
                                         const std::string& suffix);

// XORs `mask` into the byte at `offset` of `path`.
absl::Status FlipByte(const std::string& path, uint64_t offset,
                      uint8_t mask = 0xff);

// Flips every bit of the byte in the middle of the newest WAL in `dir`.
absl::StatusOr<std::string> FlipByteInMiddleOfWal(const std::string& dir);

// Where the blocks of a block-based SST are, from its footer.
struct SstLayout {
  uint64_t index_offset = 0;  // index block, without its 5-byte trailer
  uint64_t index_size = 0;
  uint64_t metaindex_offset = 0;
  uint64_t file_size = 0;
};
absl::StatusOr<SstLayout> ReadSstLayout(const std::string& path);

// Flips one bit in the middle of the index block of `path`.
absl::Status FlipBitInSstIndexBlock(const std::string& path);
// Flips one bit inside the first data block of `path` (offset 0 .. the
// index block), not in any block trailer.
absl::Status FlipBitInSstDataBlock(const std::string& path);

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_STORAGE_CORRUPT_FILES_H_

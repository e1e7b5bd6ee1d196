#include "tests/storage/corrupt_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cohortd::testing {
namespace {

// RocksDB's block-based table footer (format_version >= 1, the only kind
// RocksDB 7 writes): checksum type (1 byte), metaindex handle and index
// handle (varint64 offset, varint64 size each), padding, format version
// (4 bytes) and magic (8 bytes), 53 bytes in all.
constexpr uint64_t kFooterSize = 53;
constexpr uint64_t kBlockTrailerSize = 5;
constexpr uint64_t kBlockBasedTableMagic = 0x88e241b785f4cff7ull;

bool GetVarint64(const std::string& s, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift <= 63 && *pos < s.size(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(s[(*pos)++]);
    *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> FilesWithSuffix(const std::string& dir,
                                         const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string path = entry.path().string();
    if (absl::EndsWith(path, suffix)) out.push_back(path);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status FlipByte(const std::string& path, uint64_t offset, uint8_t mask) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  f.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  if (!f.get(byte)) {
    return absl::OutOfRangeError(
        absl::StrCat(path, " has no byte at offset ", offset));
  }
  byte = static_cast<char>(static_cast<uint8_t>(byte) ^ mask);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(byte);
  f.flush();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> FlipByteInMiddleOfWal(const std::string& dir) {
  const std::vector<std::string> wals = FilesWithSuffix(dir, ".log");
  if (wals.empty()) return absl::NotFoundError(absl::StrCat("no WAL in ", dir));
  const std::string& wal = wals.back();
  const uint64_t size = std::filesystem::file_size(wal);
  if (size < 64) {
    return absl::FailedPreconditionError(
        absl::StrCat(wal, " holds only ", size, " bytes"));
  }
  absl::Status s = FlipByte(wal, size / 2);
  if (!s.ok()) return s;
  return wal;
}

absl::StatusOr<SstLayout> ReadSstLayout(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string data((std::istreambuf_iterator<char>(f)),
                   std::istreambuf_iterator<char>());
  if (data.size() < kFooterSize) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is too small"));
  }
  const std::string footer = data.substr(data.size() - kFooterSize);
  uint64_t magic = 0;
  for (int i = 7; i >= 0; --i) {
    magic = (magic << 8) | static_cast<uint8_t>(footer[kFooterSize - 8 + i]);
  }
  if (magic != kBlockBasedTableMagic) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a block-based table"));
  }
  SstLayout layout;
  layout.file_size = data.size();
  size_t pos = 1;  // after the checksum type
  uint64_t metaindex_size = 0;
  if (!GetVarint64(footer, &pos, &layout.metaindex_offset) ||
      !GetVarint64(footer, &pos, &metaindex_size) ||
      !GetVarint64(footer, &pos, &layout.index_offset) ||
      !GetVarint64(footer, &pos, &layout.index_size) ||
      layout.index_offset + layout.index_size > data.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": unreadable footer"));
  }
  return layout;
}

absl::Status FlipBitInSstIndexBlock(const std::string& path) {
  absl::StatusOr<SstLayout> layout = ReadSstLayout(path);
  if (!layout.ok()) return layout.status();
  if (layout->index_size == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " has an empty index block"));
  }
  return FlipByte(path, layout->index_offset + layout->index_size / 2, 0x10);
}

absl::Status FlipBitInSstDataBlock(const std::string& path) {
  absl::StatusOr<SstLayout> layout = ReadSstLayout(path);
  if (!layout.ok()) return layout.status();
  // Data blocks start at offset 0; the first one is well over 64 bytes
  // whenever the table holds a few records.
  if (layout->index_offset < 64 + kBlockTrailerSize) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " has almost no data"));
  }
  return FlipByte(path, 32, 0x10);
}

}  // namespace cohortd::testing

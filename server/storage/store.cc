#include "server/storage/store.h"

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "server/common/logging.h"

namespace cohortd {
namespace {

// Reads a varint32 at `*pos` of `bytes`, advancing `*pos`; false when it
// runs past the end or is longer than five bytes.
bool ReadVarint32(absl::string_view bytes, size_t* pos, uint32_t* value) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && *pos < bytes.size(); shift += 7) {
    const uint32_t byte = static_cast<uint8_t>(bytes[(*pos)++]);
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return true;
    }
  }
  return false;
}

bool ReadSlice(absl::string_view bytes, size_t* pos, absl::string_view* out) {
  uint32_t size = 0;
  if (!ReadVarint32(bytes, pos, &size) || bytes.size() - *pos < size) {
    return false;
  }
  *out = bytes.substr(*pos, size);
  *pos += size;
  return true;
}

}  // namespace

std::vector<WriteBatch::Op> WriteBatch::ops() const {
  std::vector<Op> out;
  out.reserve(count_);
  const absl::string_view bytes = rep_;
  size_t pos = kHeaderSize;
  while (pos < bytes.size()) {
    Op op;
    const char tag = bytes[pos++];
    op.is_delete = tag == kDeletionTag;
    // Only this class writes the encoding, so it always parses.
    const bool ok = (tag == kDeletionTag || tag == kValueTag) &&
                    ReadSlice(bytes, &pos, &op.key) &&
                    (op.is_delete || ReadSlice(bytes, &pos, &op.value));
    if (!ok) {
      LogError("store", "WriteBatch encoding is malformed at byte %d",
               static_cast<int>(pos));
      std::abort();
    }
    out.push_back(op);
  }
  return out;
}

}  // namespace cohortd

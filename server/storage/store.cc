#include "server/storage/store.h"

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/common/logging.h"
#include "server/common/wire_encoding.h"

namespace cohortd {

std::vector<WriteBatch::Op> WriteBatch::ops() const {
  std::vector<Op> out;
  out.reserve(count_);
  absl::string_view rest = absl::string_view(rep_).substr(kHeaderSize);
  while (!rest.empty()) {
    Op op;
    const char tag = rest.front();
    rest.remove_prefix(1);
    op.is_delete = tag == kDeletionTag;
    // Only this class writes the encoding, so it always parses.
    const bool ok =
        (tag == kDeletionTag || tag == kValueTag) &&
        wire::ConsumeLengthPrefixed(&rest, &op.key) &&
        (op.is_delete || wire::ConsumeLengthPrefixed(&rest, &op.value));
    if (!ok) {
      LogError("store", "WriteBatch encoding is malformed at byte %d",
               static_cast<int>(rep_.size() - rest.size()));
      std::abort();
    }
    out.push_back(op);
  }
  return out;
}

}  // namespace cohortd

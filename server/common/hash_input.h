// Unambiguous byte encodings for building the input of a cryptographic
// hash: fixed-width big-endian integers, doubles by their exact IEEE-754
// bits, and length-prefixed byte strings, so that no two different field
// sequences encode to the same bytes. Used by the audit chain
// (ledger/audit_chain.cc, whose known-answer hashes pin this format) and the
// release cache's config fingerprint (ledger/release_journal.cc).
#ifndef COHORTD_SERVER_COMMON_HASH_INPUT_H_
#define COHORTD_SERVER_COMMON_HASH_INPUT_H_

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace cohortd {
namespace hash_input {

inline void AppendUint64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

inline void AppendUint32(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

// The 8-byte length, then the bytes.
inline void AppendBytes(absl::string_view bytes, std::string* out) {
  AppendUint64(bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}

// The exact bits, so 0.1 and the next double apart hash differently.
inline void AppendDouble(double d, std::string* out) {
  uint64_t bits;
  static_assert(sizeof(bits) == sizeof(d));
  std::memcpy(&bits, &d, sizeof(bits));
  AppendUint64(bits, out);
}

// One presence byte (0 or 1), then the value if present.
inline void AppendOptionalDouble(const std::optional<double>& d,
                                 std::string* out) {
  out->push_back(d.has_value() ? 1 : 0);
  if (d.has_value()) AppendDouble(*d, out);
}

}  // namespace hash_input
}  // namespace cohortd

#endif  // COHORTD_SERVER_COMMON_HASH_INPUT_H_

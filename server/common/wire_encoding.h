// Protobuf's base-128 varints and length-delimited fields, written by hand
// into a string (protobuf encoding guide, "Base 128 Varints" and
// "Length-Delimited Records"; RocksDB's WriteBatch lengths use the same
// varint). For the hot paths that write wire bytes without building a
// message: the server's stored contributions (ingest/ingestor.cc), the
// store's WriteBatch (storage/store.h) and cohortctl's requests
// (tools/cohortctl/observation_wire.cc). Header-only: cohortctl includes
// it without linking a server library.
#ifndef COHORTD_SERVER_COMMON_WIRE_ENCODING_H_
#define COHORTD_SERVER_COMMON_WIRE_ENCODING_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace cohortd {
namespace wire {

// Appends `value` as a varint (1 to 10 bytes).
inline void AppendVarint(uint64_t value, std::string* out) {
  char buf[10];
  int n = 0;
  while (value >= 0x80) {
    buf[n++] = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  buf[n++] = static_cast<char>(value);
  out->append(buf, n);
}

// The bytes AppendVarint writes for `value`.
inline size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

// Appends a length-delimited field: its one-byte `tag` (field number < 16),
// the length of `bytes` and the bytes.
inline void AppendLengthDelimited(uint8_t tag, absl::string_view bytes,
                                  std::string* out) {
  out->push_back(static_cast<char>(tag));
  AppendVarint(bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}

}  // namespace wire
}  // namespace cohortd

#endif  // COHORTD_SERVER_COMMON_WIRE_ENCODING_H_

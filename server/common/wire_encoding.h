// Protobuf's base-128 varints and length-delimited fields, written by hand
// into a string (protobuf encoding guide, "Base 128 Varints" and
// "Length-Delimited Records"; RocksDB's WriteBatch lengths use the same
// varint). For the hot paths that write wire bytes without building a
// message: the server's stored contributions (ingest/ingestor.cc), the
// store's WriteBatch (storage/store.h) and cohortctl's requests
// (tools/cohortctl/observation_wire.cc); and RocksDB's length-prefixed
// slices read back (storage/store.cc, storage/wal_reader.cc). Header-only:
// cohortctl includes it without linking a server library.
#ifndef COHORTD_SERVER_COMMON_WIRE_ENCODING_H_
#define COHORTD_SERVER_COMMON_WIRE_ENCODING_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"

namespace cohortd {
namespace wire {

// Writes `value` as a varint (1 to 10 bytes) at `out`, which has room for
// 10; returns the bytes written.
inline size_t EncodeVarint(uint64_t value, char* out) {
  size_t n = 0;
  while (value >= 0x80) {
    out[n++] = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out[n++] = static_cast<char>(value);
  return n;
}

// Appends `value` as a varint (1 to 10 bytes).
inline void AppendVarint(uint64_t value, std::string* out) {
  char buf[10];
  out->append(buf, EncodeVarint(value, buf));
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

// Map entries (a message with the key as field 1 and the value as field
// 2), written as field `tag` of the enclosing message: map<string,
// string> and map<string, double>. *MapEntryBytes: the bytes Append*
// writes, tag included.
inline constexpr uint8_t kMapKeyTag = (1 << 3) | 2;
inline constexpr uint8_t kMapStringValueTag = (2 << 3) | 2;
inline constexpr uint8_t kMapDoubleValueTag = (2 << 3) | 1;
inline size_t StringMapEntryBody(absl::string_view key,
                                 absl::string_view value) {
  return 2 + VarintSize(key.size()) + key.size() + VarintSize(value.size()) +
         value.size();
}
inline size_t DoubleMapEntryBody(absl::string_view key) {
  return 1 + VarintSize(key.size()) + key.size() + 9;
}
inline size_t StringMapEntryBytes(absl::string_view key,
                                  absl::string_view value) {
  const size_t body = StringMapEntryBody(key, value);
  return 1 + VarintSize(body) + body;
}
inline size_t DoubleMapEntryBytes(absl::string_view key) {
  const size_t body = DoubleMapEntryBody(key);
  return 1 + VarintSize(body) + body;
}
inline void AppendStringMapEntry(uint8_t tag, absl::string_view key,
                                 absl::string_view value, std::string* out) {
  out->push_back(static_cast<char>(tag));
  AppendVarint(StringMapEntryBody(key, value), out);
  AppendLengthDelimited(kMapKeyTag, key, out);
  AppendLengthDelimited(kMapStringValueTag, value, out);
}
inline void AppendDoubleMapEntry(uint8_t tag, absl::string_view key,
                                 double value, std::string* out) {
  out->push_back(static_cast<char>(tag));
  AppendVarint(DoubleMapEntryBody(key), out);
  AppendLengthDelimited(kMapKeyTag, key, out);
  out->push_back(static_cast<char>(kMapDoubleValueTag));  // little-endian
  uint64_t bits;
  static_assert(sizeof(bits) == sizeof(value));
  std::memcpy(&bits, &value, sizeof(bits));
  for (int b = 0; b < 8; ++b) {
    out->push_back(static_cast<char>((bits >> (8 * b)) & 0xff));
  }
}

// Reads a varint of at most 5 bytes (RocksDB's varint32; bits past 32
// dropped) from the front of `*in` and removes it. False when `*in` ends
// inside it or it is longer; `*in` is then unspecified.
inline bool ConsumeVarint32(absl::string_view* in, uint32_t* value) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && !in->empty(); shift += 7) {
    const uint32_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return true;
    }
  }
  return false;
}

// Reads a varint32 length and that many bytes (a RocksDB length-prefixed
// slice) from the front of `*in` into `*out`, a view of `*in`'s bytes.
inline bool ConsumeLengthPrefixed(absl::string_view* in,
                                  absl::string_view* out) {
  uint32_t size = 0;
  if (!ConsumeVarint32(in, &size) || in->size() < size) return false;
  *out = in->substr(0, size);
  in->remove_prefix(size);
  return true;
}

}  // namespace wire
}  // namespace cohortd

#endif  // COHORTD_SERVER_COMMON_WIRE_ENCODING_H_

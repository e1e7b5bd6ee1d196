#include "tools/cohortctl/observation_wire.h"

#include <cstdint>

#include "server/common/wire_encoding.h"

namespace cohortd::cohortctl {
namespace {

// Field tags (field number << 3 | wire type) of cohortd.v1.PushRequest,
// Observation and google.protobuf.Timestamp (map entries: wire_encoding.h).
constexpr char kRequestDatasetTag = (1 << 3) | 2;
constexpr char kRequestObservationTag = (2 << 3) | 2;
constexpr char kSessionIdTag = (1 << 3) | 2;
constexpr char kAccountIdTag = (2 << 3) | 2;
constexpr char kSessionStartTag = (3 << 3) | 2;
constexpr char kSourceTag = (4 << 3) | 2;
constexpr char kLabelsTag = (5 << 3) | 2;
constexpr char kMeasuresTag = (6 << 3) | 2;
constexpr char kSecondsTag = (1 << 3) | 0;
constexpr char kNanosTag = (2 << 3) | 0;

using ::cohortd::wire::AppendVarint;
using ::cohortd::wire::VarintSize;

void AppendBytesField(char tag, absl::string_view bytes, std::string* out) {
  ::cohortd::wire::AppendLengthDelimited(static_cast<uint8_t>(tag), bytes, out);
}

// A string field as proto3 writes it: omitted when empty.
void AppendStringField(char tag, absl::string_view bytes, std::string* out) {
  if (!bytes.empty()) AppendBytesField(tag, bytes, out);
}

}  // namespace

void StartPushRequest(absl::string_view dataset, std::string* wire) {
  wire->clear();
  AppendStringField(kRequestDatasetTag, dataset, wire);
}

void AppendSerializedObservation(absl::string_view observation,
                                 std::string* request) {
  AppendBytesField(kRequestObservationTag, observation, request);
}

void ObservationWireWriter::SessionId(absl::string_view id) {
  AppendStringField(kSessionIdTag, id, &body_);
}

void ObservationWireWriter::AccountId(absl::string_view id) {
  AppendStringField(kAccountIdTag, id, &body_);
}

void ObservationWireWriter::SessionStart(int64_t seconds, int32_t nanos) {
  // A Timestamp's int64 seconds is written as a two's-complement varint.
  const uint64_t s = static_cast<uint64_t>(seconds);
  const uint64_t n = static_cast<uint64_t>(nanos);
  const size_t size =
      (s != 0 ? 1 + VarintSize(s) : 0) + (n != 0 ? 1 + VarintSize(n) : 0);
  body_.push_back(kSessionStartTag);
  AppendVarint(size, &body_);
  if (s != 0) {
    body_.push_back(kSecondsTag);
    AppendVarint(s, &body_);
  }
  if (n != 0) {
    body_.push_back(kNanosTag);
    AppendVarint(n, &body_);
  }
}

void ObservationWireWriter::Source(absl::string_view source) {
  AppendStringField(kSourceTag, source, &body_);
}

void ObservationWireWriter::Label(absl::string_view name,
                                  absl::string_view value) {
  ::cohortd::wire::AppendStringMapEntry(kLabelsTag, name, value, &body_);
}

void ObservationWireWriter::Measure(absl::string_view name, double value) {
  ::cohortd::wire::AppendDoubleMapEntry(kMeasuresTag, name, value, &body_);
}

void ObservationWireWriter::AppendTo(std::string* request) const {
  AppendSerializedObservation(body_, request);
}

}  // namespace cohortd::cohortctl

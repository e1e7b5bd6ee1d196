// Validation of pushed observations against a dataset's schema. Pure
// functions: no storage, no keys, no time.
#ifndef COHORTD_SERVER_INGEST_VALIDATOR_H_
#define COHORTD_SERVER_INGEST_VALIDATOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "cohortd/internal/ingest_wire.pb.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/config/config.h"

namespace cohortd {

// Limits on identifiers, so that one observation cannot bloat the store.
inline constexpr size_t kMaxSessionIdBytes = 256;
inline constexpr size_t kMaxAccountIdBytes = 256;
inline constexpr size_t kMaxSourceBytes = 128;

// Why an observation was turned away. `reason_class` is a short, bounded
// token for metrics labels ("missing_field", "unknown_dimension",
// "value_not_in_domain", "value_too_long", "not_finite", "out_of_range",
// "invalid_timestamp", "too_long", "derived_dimension", "conflict").
struct ObservationError {
  std::string field;   // e.g. "labels.work_mode", "measures.commits"
  std::string reason;  // human-readable; names the allowed values or range
  std::string reason_class;
};

// One pushed observation as the ingest path reads it: views of the
// strings of a request that the holder keeps alive (no copies), so the
// server never builds protobuf maps on the way in. Once SortNames() ran,
// labels and measures are sorted by name and each name is there once.
struct ObservationRef {
  absl::string_view session_id;
  absl::string_view account_id;
  absl::string_view source;
  bool has_session_start = false;
  int64_t session_start_seconds = 0;
  int32_t session_start_nanos = 0;
  std::vector<std::pair<absl::string_view, absl::string_view>> labels;
  std::vector<std::pair<absl::string_view, double>> measures;

  // Sorts labels and measures by name; of a name given several times the
  // last one is kept, as a protobuf map does when parsing.
  void SortNames();
  // Views of `observation`'s fields, names sorted; `observation` must
  // outlive the result.
  static ObservationRef Of(const cohortd::v1::Observation& observation);
};

// Checks one observation against `dataset`. Returns the first problem
// found, checking fields in a fixed order (ids, time, source, then labels
// and measures by name) so the same input always gets the same answer; or
// nullopt when the observation is valid. Thread-safe.
std::optional<ObservationError> ValidateObservation(
    const DatasetSpec& dataset, const cohortd::v1::Observation& observation);
// The same for an ObservationRef whose names are sorted (SortNames).
std::optional<ObservationError> ValidateObservation(
    const DatasetSpec& dataset, const ObservationRef& observation);

// "YYYY-MM" (UTC) of a Unix time in seconds: the derived `month` dimension.
std::string MonthOf(int64_t unix_seconds);

// ---- Untrusted bytes (the server parses pushes as bytes, see
// proto/cohortd/internal/ingest_wire.proto).

// Byte offset of the first byte of `text` that does not start a valid UTF-8
// sequence (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF),
// or absl::string_view::npos when all of `text` is valid. Thread-safe.
size_t FindInvalidUtf8(absl::string_view text);

// Checks that every string field of `observation` is valid UTF-8, in field
// order (session_id, account_id, source, then labels and measures in wire
// order: call it before SortNames, so that a repeated name that is
// overridden is checked too). Each byte is looked at once. Returns the
// first offending field, e.g. {"labels.work_mode", "value is not valid
// UTF-8 at byte 3", "invalid_utf8"}; a map key that is not UTF-8 is
// reported on "labels" / "measures". nullopt when all are valid.
// Thread-safe.
std::optional<ObservationError> ValidateUtf8(const ObservationRef& observation);
// The same for a message parsed by protobuf.
std::optional<ObservationError> ValidateUtf8(
    const cohortd::internal::WireObservation& observation);

// Longest client-supplied name (dataset, dimension, measure, value) echoed
// in an error message, in bytes, before "..." is appended.
inline constexpr size_t kMaxEchoedNameBytes = 64;

// `name` as it may be quoted back to a client: at most kMaxEchoedNameBytes
// bytes (cut at a character boundary) followed by "..." when longer, with
// every byte that is not part of valid UTF-8 written as \xNN, so the
// result is always valid UTF-8 and bounded. Thread-safe.
std::string EchoName(absl::string_view name);

// ---- Responses a default client can read.

// Upper bound on the serialized size of the rejections of one PushResponse
// (a default gRPC client reads at most 4 MiB).
inline constexpr size_t kMaxRejectionBytes = 2 << 20;

// Makes `response` readable by any client, whatever the batch:
// 1. A list of allowed values (or of a dataset's dimensions or measures) is
//    named in full only in the first rejection carrying it; later ones say
//    "see index N" instead (N: that first rejection's index).
// 2. When the rejections still exceed `max_rejection_bytes` serialized, the
//    list is cut there and `rejected_omitted` counts the rejections left
//    out (they are the highest indexes).
// Expects the rejections in index order. Thread-safe (no shared state).
void BoundPushResponse(size_t max_rejection_bytes,
                       cohortd::v1::PushResponse* response);

}  // namespace cohortd

#endif  // COHORTD_SERVER_INGEST_VALIDATOR_H_

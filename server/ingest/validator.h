// Validation of pushed observations against a dataset's schema. Pure
// functions: no storage, no keys, no time.
#ifndef COHORTD_SERVER_INGEST_VALIDATOR_H_
#define COHORTD_SERVER_INGEST_VALIDATOR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
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

// Checks one observation against `dataset`. Returns the first problem
// found, checking fields in a fixed order (ids, time, source, then labels
// and measures by name) so the same input always gets the same answer; or
// nullopt when the observation is valid. Thread-safe.
std::optional<ObservationError> ValidateObservation(
    const DatasetSpec& dataset, const cohortd::v1::Observation& observation);

// "YYYY-MM" (UTC) of a Unix time in seconds: the derived `month` dimension.
std::string MonthOf(int64_t unix_seconds);

}  // namespace cohortd

#endif  // COHORTD_SERVER_INGEST_VALIDATOR_H_

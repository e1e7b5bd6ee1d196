#include "server/ingest/validator.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace cohortd {
namespace {

// Session start times outside [2000-01-01, 2100-01-01) are taken to be
// client bugs (an epoch in ms, a zero timestamp) rather than real sessions.
constexpr int64_t kMinSessionStart = 946684800;
constexpr int64_t kMaxSessionStart = 4102444800;

// Lists at most this many allowed values in a rejection reason.
constexpr size_t kMaxListedValues = 30;

ObservationError Error(std::string field, std::string reason,
                       std::string reason_class) {
  return {std::move(field), std::move(reason), std::move(reason_class)};
}

std::optional<ObservationError> CheckId(absl::string_view field,
                                        absl::string_view value,
                                        size_t max_bytes) {
  if (value.empty()) {
    return Error(std::string(field), "is required", "missing_field");
  }
  if (value.size() > max_bytes) {
    return Error(std::string(field),
                 absl::StrFormat("is %d bytes; at most %d allowed",
                                 value.size(), max_bytes),
                 "too_long");
  }
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Error(std::string(field), "contains a control character",
                   "invalid_characters");
    }
  }
  return std::nullopt;
}

std::string AllowedValues(const DimensionSpec& dim) {
  if (dim.values.size() <= kMaxListedValues) {
    return absl::StrJoin(dim.values, ", ");
  }
  std::vector<std::string> head(dim.values.begin(),
                                dim.values.begin() + kMaxListedValues);
  return absl::StrCat(absl::StrJoin(head, ", "), ", ... (",
                      dim.values.size(), " in all)");
}

std::optional<ObservationError> CheckLabel(const DatasetSpec& dataset,
                                           const std::string& name,
                                           const std::string& value) {
  const std::string field = absl::StrCat("labels.", name);
  const DimensionSpec* dim = dataset.FindDimension(name);
  if (dim == nullptr) {
    std::vector<std::string> names;
    for (const auto& d : dataset.dimensions) {
      if (!d.derived) names.push_back(d.name);
    }
    return Error(field,
                 absl::StrCat("unknown dimension of dataset '", dataset.name,
                              "'; dimensions: ", absl::StrJoin(names, ", ")),
                 "unknown_dimension");
  }
  if (dim->derived) {
    return Error(field,
                 "is derived by the server (from session_start) and cannot "
                 "be pushed",
                 "derived_dimension");
  }
  if (dim->open_domain) {
    if (value.empty()) {
      return Error(field, "is empty", "missing_field");
    }
    if (value.size() > static_cast<size_t>(dim->max_length)) {
      return Error(field,
                   absl::StrFormat("is %d bytes; at most %d allowed",
                                   value.size(), dim->max_length),
                   "value_too_long");
    }
    for (char c : value) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return Error(field, "contains a control character",
                     "invalid_characters");
      }
    }
    return std::nullopt;
  }
  if (std::find(dim->values.begin(), dim->values.end(), value) ==
      dim->values.end()) {
    return Error(field,
                 absl::StrCat("'", value.substr(0, 64),
                              "' is not an allowed value; allowed: ",
                              AllowedValues(*dim)),
                 "value_not_in_domain");
  }
  return std::nullopt;
}

std::optional<ObservationError> CheckMeasure(const DatasetSpec& dataset,
                                             const std::string& name,
                                             double value) {
  const std::string field = absl::StrCat("measures.", name);
  const MeasureSpec* measure = dataset.FindMeasure(name);
  if (measure == nullptr) {
    std::vector<std::string> names;
    for (const auto& m : dataset.measures) names.push_back(m.name);
    return Error(field,
                 absl::StrCat("unknown measure of dataset '", dataset.name,
                              "'; measures: ", absl::StrJoin(names, ", ")),
                 "unknown_measure");
  }
  if (!std::isfinite(value)) {
    return Error(field, absl::StrCat(value, " is not a finite number"),
                 "not_finite");
  }
  const bool below = measure->valid_min && value < *measure->valid_min;
  const bool above = measure->valid_max && value > *measure->valid_max;
  if (below || above) {
    return Error(
        field,
        absl::StrCat(value, " is outside the valid range [",
                     measure->valid_min ? absl::StrCat(*measure->valid_min)
                                        : std::string("-inf"),
                     ", ",
                     measure->valid_max ? absl::StrCat(*measure->valid_max)
                                        : std::string("inf"),
                     "]"),
        "out_of_range");
  }
  return std::nullopt;
}

template <typename Map>
std::vector<std::string> SortedKeys(const Map& map) {
  std::vector<std::string> keys;
  keys.reserve(map.size());
  for (const auto& [key, value] : map) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace

std::optional<ObservationError> ValidateObservation(
    const DatasetSpec& dataset, const cohortd::v1::Observation& observation) {
  if (auto e = CheckId("session_id", observation.session_id(),
                       kMaxSessionIdBytes)) {
    return e;
  }
  if (auto e = CheckId("account_id", observation.account_id(),
                       kMaxAccountIdBytes)) {
    return e;
  }
  if (!observation.has_session_start()) {
    return Error("session_start", "is required", "missing_field");
  }
  const auto& ts = observation.session_start();
  if (ts.seconds() < kMinSessionStart || ts.seconds() >= kMaxSessionStart ||
      ts.nanos() < 0 || ts.nanos() > 999999999) {
    return Error("session_start",
                 absl::StrCat(ts.seconds(), "s ", ts.nanos(),
                              "ns is not a time between 2000-01-01 and "
                              "2100-01-01 (UTC)"),
                 "invalid_timestamp");
  }
  if (auto e = CheckId("source", observation.source(), kMaxSourceBytes)) {
    return e;
  }
  for (const std::string& name : SortedKeys(observation.labels())) {
    if (auto e = CheckLabel(dataset, name, observation.labels().at(name))) {
      return e;
    }
  }
  for (const std::string& name : SortedKeys(observation.measures())) {
    if (auto e =
            CheckMeasure(dataset, name, observation.measures().at(name))) {
      return e;
    }
  }
  return std::nullopt;
}

std::string MonthOf(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

}  // namespace cohortd

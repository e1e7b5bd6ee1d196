#include "server/ingest/validator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
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

// What introduces a list of names in a reason; BoundPushResponse names each
// list once per response.
constexpr absl::string_view kAllowedMarker = "; allowed: ";
constexpr absl::string_view kDimensionsMarker = "; dimensions: ";
constexpr absl::string_view kMeasuresMarker = "; measures: ";

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
  return absl::StrCat(absl::StrJoin(head, ", "), ", ... (", dim.values.size(),
                      " in all)");
}

std::optional<ObservationError> CheckLabel(const DatasetSpec& dataset,
                                           absl::string_view name,
                                           absl::string_view value) {
  // Built only for a rejection: valid observations are the common case.
  auto field = [&] { return absl::StrCat("labels.", EchoName(name)); };
  const DimensionSpec* dim = dataset.FindDimension(name);
  if (dim == nullptr) {
    std::vector<std::string> names;
    for (const auto& d : dataset.dimensions) {
      if (!d.derived) names.push_back(d.name);
    }
    return Error(
        field(),
        absl::StrCat("unknown dimension of dataset '", dataset.name, "'",
                     kDimensionsMarker, absl::StrJoin(names, ", ")),
        "unknown_dimension");
  }
  if (dim->derived) {
    return Error(field(),
                 "is derived by the server (from session_start) and cannot "
                 "be pushed",
                 "derived_dimension");
  }
  if (dim->open_domain) {
    if (value.empty()) {
      return Error(field(), "is empty", "missing_field");
    }
    if (value.size() > static_cast<size_t>(dim->max_length)) {
      return Error(field(),
                   absl::StrFormat("is %d bytes; at most %d allowed",
                                   value.size(), dim->max_length),
                   "value_too_long");
    }
    for (char c : value) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return Error(field(), "contains a control character",
                     "invalid_characters");
      }
    }
    return std::nullopt;
  }
  if (std::find(dim->values.begin(), dim->values.end(), value) ==
      dim->values.end()) {
    return Error(field(),
                 absl::StrCat("'", EchoName(value), "' is not an allowed value",
                              kAllowedMarker, AllowedValues(*dim)),
                 "value_not_in_domain");
  }
  return std::nullopt;
}

std::optional<ObservationError> CheckMeasure(const DatasetSpec& dataset,
                                             absl::string_view name,
                                             double value) {
  auto field = [&] { return absl::StrCat("measures.", EchoName(name)); };
  const MeasureSpec* measure = dataset.FindMeasure(name);
  if (measure == nullptr) {
    std::vector<std::string> names;
    for (const auto& m : dataset.measures) names.push_back(m.name);
    return Error(field(),
                 absl::StrCat("unknown measure of dataset '", dataset.name, "'",
                              kMeasuresMarker, absl::StrJoin(names, ", ")),
                 "unknown_measure");
  }
  if (!std::isfinite(value)) {
    return Error(field(), absl::StrCat(value, " is not a finite number"),
                 "not_finite");
  }
  const bool below = measure->valid_min && value < *measure->valid_min;
  const bool above = measure->valid_max && value > *measure->valid_max;
  if (below || above) {
    return Error(
        field(),
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

// Sorts `entries` by name, keeping the last of equal names. Insertion
// sort: an observation has a handful of names.
template <typename Entry>
void SortUniqueByName(std::vector<Entry>* entries) {
  auto& v = *entries;
  for (size_t i = 1; i < v.size(); ++i) {
    // Stable: an equal name stays after the earlier one.
    for (size_t j = i; j > 0 && v[j].first < v[j - 1].first; --j) {
      std::swap(v[j], v[j - 1]);
    }
  }
  size_t out = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i + 1 < v.size() && v[i + 1].first == v[i].first) continue;
    if (out != i) v[out] = v[i];
    ++out;
  }
  v.resize(out);
}

}  // namespace

void ObservationRef::SortNames() {
  SortUniqueByName(&labels);
  SortUniqueByName(&measures);
}

ObservationRef ObservationRef::Of(const cohortd::v1::Observation& observation) {
  ObservationRef ref;
  ref.session_id = observation.session_id();
  ref.account_id = observation.account_id();
  ref.source = observation.source();
  ref.has_session_start = observation.has_session_start();
  ref.session_start_seconds = observation.session_start().seconds();
  ref.session_start_nanos = observation.session_start().nanos();
  ref.labels.reserve(observation.labels().size());
  for (const auto& [name, value] : observation.labels()) {
    ref.labels.emplace_back(name, value);
  }
  ref.measures.reserve(observation.measures().size());
  for (const auto& [name, value] : observation.measures()) {
    ref.measures.emplace_back(name, value);
  }
  ref.SortNames();
  return ref;
}

std::optional<ObservationError> ValidateObservation(
    const DatasetSpec& dataset, const cohortd::v1::Observation& observation) {
  return ValidateObservation(dataset, ObservationRef::Of(observation));
}

std::optional<ObservationError> ValidateObservation(
    const DatasetSpec& dataset, const ObservationRef& observation) {
  if (auto e =
          CheckId("session_id", observation.session_id, kMaxSessionIdBytes)) {
    return e;
  }
  if (auto e =
          CheckId("account_id", observation.account_id, kMaxAccountIdBytes)) {
    return e;
  }
  if (!observation.has_session_start) {
    return Error("session_start", "is required", "missing_field");
  }
  const int64_t seconds = observation.session_start_seconds;
  const int32_t nanos = observation.session_start_nanos;
  if (seconds < kMinSessionStart || seconds >= kMaxSessionStart || nanos < 0 ||
      nanos > 999999999) {
    return Error("session_start",
                 absl::StrCat(seconds, "s ", nanos,
                              "ns is not a time between 2000-01-01 and "
                              "2100-01-01 (UTC)"),
                 "invalid_timestamp");
  }
  if (auto e = CheckId("source", observation.source, kMaxSourceBytes)) {
    return e;
  }
  for (const auto& [name, value] : observation.labels) {
    if (auto e = CheckLabel(dataset, name, value)) return e;
  }
  for (const auto& [name, value] : observation.measures) {
    if (auto e = CheckMeasure(dataset, name, value)) return e;
  }
  return std::nullopt;
}

size_t FindInvalidUtf8(absl::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII, the common case, eight bytes at a time.
    while (n - i >= 8) {
      uint64_t word;
      std::memcpy(&word, p + i, sizeof word);
      if ((word & 0x8080808080808080ull) != 0) break;
      i += 8;
    }
    if (i == n) break;
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Lead byte: the sequence length and the range its first continuation
    // byte must be in (RFC 3629 section 4, which excludes overlong forms,
    // the surrogates U+D800..U+DFFF and code points above U+10FFFF).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return absl::string_view::npos;
}

namespace {

std::optional<ObservationError> CheckUtf8(absl::string_view field,
                                          absl::string_view what,
                                          absl::string_view value) {
  const size_t at = FindInvalidUtf8(value);
  if (at == absl::string_view::npos) return std::nullopt;
  return Error(std::string(field),
               absl::StrCat(what, "is not valid UTF-8 at byte ", at),
               "invalid_utf8");
}

}  // namespace

std::optional<ObservationError> ValidateUtf8(
    const ObservationRef& observation) {
  if (auto e = CheckUtf8("session_id", "", observation.session_id)) return e;
  if (auto e = CheckUtf8("account_id", "", observation.account_id)) return e;
  if (auto e = CheckUtf8("source", "", observation.source)) return e;
  for (const auto& [name, value] : observation.labels) {
    if (auto e = CheckUtf8("labels", "a dimension name ", name)) return e;
    // The field is named only for a rejection: one pass over the bytes,
    // no string built for a valid label.
    if (auto e = CheckUtf8("", "value ", value)) {
      e->field = absl::StrCat("labels.", EchoName(name));
      return e;
    }
  }
  for (const auto& measure : observation.measures) {
    if (auto e = CheckUtf8("measures", "a measure name ", measure.first)) {
      return e;
    }
  }
  return std::nullopt;
}

std::optional<ObservationError> ValidateUtf8(
    const cohortd::internal::WireObservation& observation) {
  ObservationRef ref;
  ref.session_id = observation.session_id();
  ref.account_id = observation.account_id();
  ref.source = observation.source();
  for (const auto& label : observation.labels()) {
    ref.labels.emplace_back(label.key(), label.value());
  }
  for (const auto& measure : observation.measures()) {
    ref.measures.emplace_back(measure.key(), measure.value());
  }
  return ValidateUtf8(ref);
}

std::string EchoName(absl::string_view name) {
  std::string out;
  out.reserve(std::min(name.size(), kMaxEchoedNameBytes) + 3);
  size_t i = 0;
  while (i < name.size()) {
    const size_t bad = FindInvalidUtf8(name.substr(i));
    const size_t valid_end =
        bad == absl::string_view::npos ? name.size() : i + bad;
    // Copy valid UTF-8 up to the budget, never splitting a character.
    while (i < valid_end) {
      size_t len = 1;
      const auto c = static_cast<unsigned char>(name[i]);
      if (c >= 0xF0) {
        len = 4;
      } else if (c >= 0xE0) {
        len = 3;
      } else if (c >= 0xC0) {
        len = 2;
      }
      if (out.size() + len > kMaxEchoedNameBytes) {
        return out + "...";
      }
      out.append(name.data() + i, len);
      i += len;
    }
    if (i < name.size()) {
      if (out.size() + 4 > kMaxEchoedNameBytes) return out + "...";
      absl::StrAppend(
          &out,
          absl::StrFormat("\\x%02X", static_cast<unsigned char>(name[i])));
      ++i;
    }
  }
  return out;
}

void BoundPushResponse(size_t max_rejection_bytes,
                       cohortd::v1::PushResponse* response) {
  // List text (marker included) -> index of the rejection that named it.
  absl::flat_hash_map<std::string, int> listed;
  size_t bytes = 0;
  int kept = 0;
  auto* rejected = response->mutable_rejected();
  for (; kept < rejected->size(); ++kept) {
    cohortd::v1::Rejection& r = (*rejected)[kept];
    std::string* reason = r.mutable_reason();
    for (absl::string_view marker :
         {kAllowedMarker, kDimensionsMarker, kMeasuresMarker}) {
      const size_t at = reason->find(marker.data(), 0, marker.size());
      if (at == std::string::npos) continue;
      auto [it, inserted] = listed.try_emplace(reason->substr(at), r.index());
      if (!inserted) {
        reason->resize(at);
        absl::StrAppend(reason, marker, "see index ", it->second);
      }
      break;
    }
    // Field tag, length prefix (at most 5 bytes) and the message itself.
    const size_t size = r.ByteSizeLong() + 6;
    if (bytes + size > max_rejection_bytes) break;
    bytes += size;
  }
  const int omitted = rejected->size() - kept;
  if (omitted > 0) {
    rejected->DeleteSubrange(kept, omitted);
    response->set_rejected_omitted(omitted);
  }
}

std::string MonthOf(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

}  // namespace cohortd

// Compares PushWireReader with protobuf's parser of
// cohortd.internal.WirePushRequest on the same bytes; shared by
// push_wire_reader_test and fuzz/push_wire_reader_fuzz.cc.
#ifndef COHORTD_TESTS_SERVICE_PUSH_WIRE_EQUIVALENCE_H_
#define COHORTD_TESTS_SERVICE_PUSH_WIRE_EQUIVALENCE_H_

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "cohortd/internal/ingest_wire.pb.h"
#include "server/service/push_wire_reader.h"

namespace cohortd {

// "" when `reader` (fresh or reused) and protobuf both reject `bytes`, or
// both accept it with the same values (doubles compared bit for bit, so
// NaN payloads count); else what differs. `accepted`, when given, is set
// to whether protobuf accepted the bytes.
inline std::string DifferenceFromProtobuf(absl::string_view bytes,
                                          PushWireReader* reader,
                                          bool* accepted = nullptr) {
  cohortd::internal::WirePushRequest proto;
  const bool proto_ok =
      proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  const absl::Status status = reader->Read(bytes);
  if (accepted != nullptr) *accepted = proto_ok;
  if (proto_ok != status.ok()) {
    return absl::StrCat("protobuf ", proto_ok ? "accepts" : "rejects",
                        ", reader says: ", status.ToString());
  }
  if (!proto_ok) return "";
  if (proto.dataset() != reader->dataset()) return "dataset differs";
  if (proto.observations_size() != reader->size()) {
    return absl::StrCat("protobuf has ", proto.observations_size(),
                        " observations, reader ", reader->size());
  }
  for (int i = 0; i < reader->size(); ++i) {
    const auto& want = proto.observations(i);
    const ObservationRef& got = reader->observations()[i];
    const std::string at = absl::StrCat("observation ", i, ": ");
    if (want.session_id() != got.session_id) return at + "session_id";
    if (want.account_id() != got.account_id) return at + "account_id";
    if (want.source() != got.source) return at + "source";
    if (want.has_session_start() != got.has_session_start) {
      return at + "has_session_start";
    }
    if (want.session_start().seconds() != got.session_start_seconds ||
        want.session_start().nanos() != got.session_start_nanos) {
      return at + "session_start";
    }
    if (static_cast<size_t>(want.labels_size()) != got.labels.size()) {
      return at + "number of labels";
    }
    for (int j = 0; j < want.labels_size(); ++j) {
      if (want.labels(j).key() != got.labels[j].first ||
          want.labels(j).value() != got.labels[j].second) {
        return absl::StrCat(at, "label ", j);
      }
    }
    if (static_cast<size_t>(want.measures_size()) != got.measures.size()) {
      return at + "number of measures";
    }
    for (int j = 0; j < want.measures_size(); ++j) {
      const double want_value = want.measures(j).value();
      if (want.measures(j).key() != got.measures[j].first ||
          std::memcmp(&want_value, &got.measures[j].second,
                      sizeof want_value) != 0) {
        return absl::StrCat(at, "measure ", j);
      }
    }
  }
  return "";
}

}  // namespace cohortd

#endif  // COHORTD_TESTS_SERVICE_PUSH_WIRE_EQUIVALENCE_H_

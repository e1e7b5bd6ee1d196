// Writes cohortd.v1.PushRequest and Observation in protobuf wire format
// by hand, with no protobuf message or map built: the encoder shared by
// `cohortctl push` (JSON Lines to wire bytes, observation_jsonl.h) and
// `cohortctl simulate --push` (the synthetic population to wire bytes,
// population.h). Protobuf maps cost most of a client's time when the
// requests are built as messages (a hash map and several allocations per
// entry); these bytes parse to the same messages.
#ifndef COHORTD_TOOLS_COHORTCTL_OBSERVATION_WIRE_H_
#define COHORTD_TOOLS_COHORTCTL_OBSERVATION_WIRE_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace cohortd::cohortctl {

// Sets `wire` to the start of a PushRequest's wire bytes: its dataset.
// Observations are then appended with ObservationWireWriter::AppendTo.
void StartPushRequest(absl::string_view dataset, std::string* wire);

// Appends `observation`, a serialized Observation, as one `observations`
// entry to `request` (for an observation built as a message).
void AppendSerializedObservation(absl::string_view observation,
                                 std::string* request);

// One Observation's fields, written one by one as proto3 writes them
// (empty strings and zero timestamp fields omitted). Fields may come in
// any order (a parser accepts any), but each at most once: a repeated
// scalar field would parse to its last value, a repeated map key to its
// last entry, and neither is checked here. Reuse one writer for many
// observations: Clear keeps its buffer, so writing allocates nothing once
// it has grown. Not thread-safe.
class ObservationWireWriter {
 public:
  // Starts a new observation.
  void Clear() { body_.clear(); }

  void SessionId(absl::string_view id);
  void AccountId(absl::string_view id);
  // session_start; `nanos` in [0, 999999999].
  void SessionStart(int64_t seconds, int32_t nanos);
  void Source(absl::string_view source);
  // One entry of the labels map.
  void Label(absl::string_view name, absl::string_view value);
  // One entry of the measures map.
  void Measure(absl::string_view name, double value);

  // Appends the observation written since Clear as one `observations`
  // entry to `request` (bytes begun by StartPushRequest).
  void AppendTo(std::string* request) const;

  // The observation's fields so far: a serialized Observation.
  const std::string& body() const { return body_; }

 private:
  std::string body_;
};

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_OBSERVATION_WIRE_H_

// libFuzzer target: the server's reading of untrusted pushes. Parses the
// input as a cohortd.internal.WirePushRequest (what the Ingest service
// receives), runs ValidateUtf8 and ValidateObservation on each observation
// as the service does, and bounds a response of the rejections. Checks the
// invariants a client relies on: every echoed name and rejection is valid
// UTF-8 (else the client cannot parse the response) and bounded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cohortd/internal/ingest_wire.pb.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/config/config.h"
#include "server/ingest/validator.h"

namespace {

using cohortd::FindInvalidUtf8;

void Require(bool condition) {
  if (!condition) std::abort();
}

cohortd::DatasetSpec Dataset() {
  cohortd::DatasetSpec ds;
  ds.name = "sessions";
  ds.dimensions.push_back({"work_mode", false, {"build", "fix"}, 0, false});
  ds.dimensions.push_back({"task_topic", true, {}, 16, false});
  ds.dimensions.push_back({"month", false, {}, 0, true});
  cohortd::MeasureSpec prompts{"prompts", 0, 200, 0.0, 1000, 1};
  ds.measures = {prompts};
  return ds;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const cohortd::DatasetSpec* const dataset =
      new cohortd::DatasetSpec(Dataset());
  cohortd::internal::WirePushRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;

  const std::string echoed = cohortd::EchoName(request.dataset());
  Require(FindInvalidUtf8(echoed) == std::string::npos);
  Require(echoed.size() <= cohortd::kMaxEchoedNameBytes + 3);

  cohortd::v1::PushResponse response;
  for (int i = 0; i < request.observations_size(); ++i) {
    const cohortd::internal::WireObservation& wire = request.observations(i);
    std::optional<cohortd::ObservationError> error =
        cohortd::ValidateUtf8(wire);
    if (!error) {
      cohortd::v1::Observation obs;
      obs.set_session_id(wire.session_id());
      obs.set_account_id(wire.account_id());
      if (wire.has_session_start()) {
        *obs.mutable_session_start() = wire.session_start();
      }
      obs.set_source(wire.source());
      for (const auto& label : wire.labels()) {
        (*obs.mutable_labels())[label.key()] = label.value();
      }
      for (const auto& measure : wire.measures()) {
        (*obs.mutable_measures())[measure.key()] = measure.value();
      }
      error = cohortd::ValidateObservation(*dataset, obs);
    }
    if (!error) continue;
    Require(!error->reason_class.empty());
    cohortd::v1::Rejection* r = response.add_rejected();
    r->set_index(i);
    r->set_field(error->field);
    r->set_reason(error->reason);
  }
  cohortd::BoundPushResponse(/*max_rejection_bytes=*/4096, &response);
  Require(response.rejected_size() + response.rejected_omitted() <=
          request.observations_size());
  size_t bytes = 0;
  for (const auto& r : response.rejected()) {
    Require(FindInvalidUtf8(r.field()) == std::string::npos);
    Require(FindInvalidUtf8(r.reason()) == std::string::npos);
    bytes += r.ByteSizeLong() + 6;
  }
  Require(bytes <= 4096);
  return 0;
}

// libFuzzer target: cohortctl's JSON Lines observation reader
// (tools/cohortctl/observation_jsonl.h). Any input is read to its end in
// small batches; each line is an observation or a malformed-line report,
// and every batch's wire bytes parse as a PushRequest holding exactly the
// batch's observations.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "cohortd/v1/cohortd.pb.h"
#include "tools/cohortctl/observation_jsonl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  cohortd::cohortctl::ObservationReader reader(&in);
  cohortd::cohortctl::ObservationBatch batch;
  std::vector<cohortd::cohortctl::MalformedLine> malformed;
  int64_t observations = 0;
  cohortd::v1::PushRequest request;
  while (reader.ReadBatch("sessions", 3, &batch, &malformed)) {
    if (!request.ParseFromString(batch.wire) ||
        request.dataset() != "sessions" ||
        request.observations_size() > 3 ||
        batch.lines.size() !=
            static_cast<size_t>(request.observations_size())) {
      std::abort();
    }
    observations += request.observations_size();
    batch = {};
  }
  // Every non-blank line is either an observation or reported malformed.
  if (observations + static_cast<int64_t>(malformed.size()) >
      reader.lines_read()) {
    std::abort();
  }
  return 0;
}

// libFuzzer target: the Ingest service's hand-written reader of pushed
// bytes (server/service/push_wire_reader.h) against protobuf's parser of
// cohortd.internal.WirePushRequest. Both must accept the same inputs and,
// when they do, read the same values; the reader is reused across inputs
// as a stream reuses it, so stale state from a previous request would show.
// Then each accepted observation goes through the service's UTF-8 check,
// whose rejection must be valid UTF-8 itself.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "server/ingest/validator.h"
#include "server/service/push_wire_reader.h"
#include "tests/service/push_wire_equivalence.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static cohortd::PushWireReader* const reader = new cohortd::PushWireReader;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string difference = cohortd::DifferenceFromProtobuf(bytes, reader);
  if (!difference.empty()) {
    std::fprintf(stderr, "reader differs from protobuf: %s\n",
                 difference.c_str());
    std::abort();
  }
  for (cohortd::ObservationRef& obs : reader->observations()) {
    if (auto error = cohortd::ValidateUtf8(obs)) {
      if (cohortd::FindInvalidUtf8(error->field) != absl::string_view::npos ||
          cohortd::FindInvalidUtf8(error->reason) != absl::string_view::npos) {
        std::abort();
      }
    }
  }
  return 0;
}

// libFuzzer target: the YAML config parser. Any input must give a Config
// or an error status; never a crash, a hang or an escaped exception.
// base_dir names no existing folder, so principals_file never reads a file.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "server/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<cohortd::Config> config = cohortd::ParseConfig(
      absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz.yaml",
      "/nonexistent/cohortd-fuzz");
  if (config.ok()) {
    // What the server derives from a valid config must hold too.
    (void)cohortd::MaxReceiveMessageBytes(*config);
  }
  return 0;
}

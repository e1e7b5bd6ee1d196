// A small valid config for the config tests, with room for each test's own
// keys: `server_keys` are lines inside `server:` (indented two spaces),
// `dataset_keys` lines inside the one dataset (indented four spaces).
#ifndef COHORTD_TESTS_CONFIG_SMALL_CONFIG_H_
#define COHORTD_TESTS_CONFIG_SMALL_CONFIG_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cohortd::testing {

inline std::string SmallConfigYaml(absl::string_view server_keys = "",
                                   absl::string_view dataset_keys = "") {
  auto lines = [](absl::string_view keys) {
    return keys.empty() ? std::string() : absl::StrCat(keys, "\n");
  };
  return absl::StrCat(R"(
server:
  data_dir: data
  pseudonymization_key_file: secret/key
  max_batch_size: 500
)",
                      lines(server_keys), R"(principals:
  - {name: worker-1, role: ingest, token_sha256: )",
                      std::string(64, 'a'), R"(}
  - {name: alice, role: analyst, token_sha256: )",
                      std::string(64, 'b'), R"(}
datasets:
  - name: sessions
    description: test
)",
                      lines(dataset_keys), R"(    dimensions:
      - {name: work_mode, values: [build, fix]}
    measures:
      - {name: prompts, bounds: [0, 200], granularity: 1}
      - {name: task_value_usd, bounds: [0, 5000], granularity: 0.01}
    privacy:
      k: 10
      epsilon_per_query: 1.0
      max_epsilon_per_query: 2.0
      delta_per_query: 1.0e-7
      max_cohorts_per_account: 4
      max_sessions_per_cohort: 8
      budget:
        per_principal: {epsilon: 20, delta: 1.0e-5}
        dataset: {epsilon: 100, delta: 1.0e-4}
)");
}

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_CONFIG_SMALL_CONFIG_H_

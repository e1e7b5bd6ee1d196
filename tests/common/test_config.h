// A small `sessions`-like config for tests that must not depend on the YAML
// parser: three closed dimensions, one open, the derived month, and three
// measures.
#ifndef COHORTD_TESTS_COMMON_TEST_CONFIG_H_
#define COHORTD_TESTS_COMMON_TEST_CONFIG_H_

#include <string>

#include "server/config/config.h"

namespace cohortd::testing {

inline DatasetSpec TestDataset() {
  DatasetSpec ds;
  ds.name = "sessions";
  ds.description = "test sessions";
  ds.dimensions.push_back(
      {"work_mode", false, {"build", "fix", "test", "write"}, 0, false});
  ds.dimensions.push_back({"expertise",
                           false,
                           {"novice", "beginner", "intermediate", "advanced",
                            "expert"},
                           0,
                           false});
  ds.dimensions.push_back(
      {"outcome", false, {"success", "partial", "failure", "unclear"}, 0,
       false});
  ds.dimensions.push_back({"task_topic", true, {}, 16, false});
  ds.dimensions.push_back({"month", false, {}, 0, true});
  MeasureSpec actions{"actions_per_prompt", 0, 200, 0.0, 100000, 0.01};
  MeasureSpec lines{"lines_added", 0, 10000, 0.0, std::nullopt, 1};
  MeasureSpec share{"planning_user_share", 0, 1, 0.0, 1.0, 0.001};
  ds.measures = {actions, lines, share};
  return ds;
}

inline Config TestConfig() {
  Config config;
  config.listen_address = "127.0.0.1:0";
  config.metrics_address = "127.0.0.1:0";
  config.max_batch_size = 1000;
  config.datasets.push_back(TestDataset());
  return config;
}

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_COMMON_TEST_CONFIG_H_

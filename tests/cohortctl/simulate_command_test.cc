// `cohortctl simulate` without a server, run in-process through
// RunCohortctl: the JSON Lines and truth files, and flag errors. The push
// is tested against the real cohortd in simulate_integration_test.cc.
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cohortctl/run_in_process.h"
#include "tools/cohortctl/cli.h"
#include "tools/cohortctl/observation_jsonl.h"
#include "tools/cohortctl/simulator/population.h"

namespace cohortd::cohortctl {
namespace {

using ::testing::HasSubstr;

std::string MakeTempDir() {
  std::string dir = ::testing::TempDir() + "simulate-XXXXXX";
  return mkdtemp(dir.data()) != nullptr ? dir : ::testing::TempDir();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class SimulateCommandTest : public ::testing::Test {
 protected:
  int Run(const std::vector<std::string>& args) {
    return RunInProcess(args, &in_, &out_, &err_);
  }

  const std::string dir_ = MakeTempDir();
  std::stringstream in_, out_, err_;
};

TEST_F(SimulateCommandTest, JsonlNeedsNoServerAndIsReproducible) {
  const std::string jsonl = dir_ + "/a.jsonl";
  const std::string truth = dir_ + "/truth.csv";
  ASSERT_EQ(Run({"simulate", "--sessions", "2000", "--seed", "3", "--jsonl",
                 jsonl, "--truth", truth}),
            kExitOk)
      << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("10,000 observations, 2,000 sessions "
                                    "of 1,175 accounts (seed 3)"));

  // Every line is an Observation `cohortctl push` accepts.
  std::ifstream in(jsonl);
  ObservationReader reader(&in);
  ObservationBatch batch;
  std::vector<MalformedLine> malformed;
  int64_t observations = 0;
  while (reader.ReadBatch("sessions", 1000, &batch, &malformed)) {
    cohortd::v1::PushRequest request;
    ASSERT_TRUE(request.ParseFromString(batch.wire));
    observations += request.observations_size();
  }
  EXPECT_EQ(observations, 2000 * kSourcesPerSession);
  EXPECT_TRUE(malformed.empty());

  const std::string text = ReadAll(truth);
  EXPECT_EQ(text.substr(0, text.find('\n') + 1), TruthCsvHeader());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2001);

  // The same flags give the same bytes; another seed does not.
  const std::string again = dir_ + "/b.jsonl";
  ASSERT_EQ(
      Run({"simulate", "--sessions", "2000", "--seed", "3", "--jsonl", again}),
      kExitOk);
  EXPECT_EQ(ReadAll(again), ReadAll(jsonl));
  ASSERT_EQ(
      Run({"simulate", "--sessions", "2000", "--seed", "4", "--jsonl", again}),
      kExitOk);
  EXPECT_NE(ReadAll(again), ReadAll(jsonl));
}

TEST_F(SimulateCommandTest, JsonlToStdout) {
  ASSERT_EQ(Run({"simulate", "--sessions", "1000", "--jsonl", "-"}), kExitOk)
      << err_.str();
  const std::string text = out_.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'),
            1000 * kSourcesPerSession);
}

TEST_F(SimulateCommandTest, BadFlagsAreUsageErrors) {
  EXPECT_EQ(Run({"simulate", "--sessions", "999", "--jsonl", "-"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--sessions must be between 1000"));
  EXPECT_EQ(Run({"simulate", "--push", "--jsonl", "-"}), kExitUsage);
  EXPECT_EQ(Run({"simulate", "--seed", "-1", "--jsonl", "-"}), kExitUsage);
  EXPECT_EQ(Run({"simulate", "--batch", "4", "--jsonl", "-"}), kExitUsage);
  // Pushing needs the ingest token; nothing is sent without it.
  EXPECT_EQ(Run({"simulate", "--sessions", "1000", "--target", "127.0.0.1:1"}),
            kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("COHORTD_INGEST_TOKEN"));
}

}  // namespace
}  // namespace cohortd::cohortctl

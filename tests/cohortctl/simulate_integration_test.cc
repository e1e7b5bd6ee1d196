// `cohortctl simulate` pushing to the real cohortd binary (port 0, temp
// dir), in-process through RunCohortctl: the generated data must be valid
// for the shipped schema (no rejections), pushing it again must change
// nothing, and a server whose schema differs must be refused up front.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cohortctl/run_in_process.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"
#include "tools/cohortctl/cli.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::ServerProcess;
using ::testing::HasSubstr;

// Runs cohortctl against `server` with its ingest token.
int RunCli(const ServerProcess& server, std::vector<std::string> args,
           std::string* out, std::string* err) {
  const std::string token_file = server.dir() + "/ingest.token";
  std::ofstream(token_file) << server.tokens().ingest << "\n";
  std::vector<std::string> full = {"--target", server.address(), "--token-file",
                                   token_file};
  full.insert(full.end(), args.begin(), args.end());
  std::stringstream in, out_stream, err_stream;
  const int code = RunInProcess(full, &in, &out_stream, &err_stream);
  *out = out_stream.str();
  *err = err_stream.str();
  return code;
}

TEST(SimulateIntegrationTest, PushesWithoutRejectionsAndIdempotently) {
  ServerProcess server(cohortd::testing::MakeTempDir());
  ASSERT_OK(server.Start());
  std::string out, err;
  ASSERT_EQ(RunCli(server,
                   {"simulate", "--sessions", "3000", "--batch", "700",
                    "--streams", "3"},
                   &out, &err),
            kExitOk)
      << err << out;
  EXPECT_THAT(out, HasSubstr("simulated 3,000 sessions of 1,763 accounts "
                             "(seed 1): 15,000 observations"));
  EXPECT_THAT(out, HasSubstr("accepted     15000\nunchanged    0\n"
                             "rejected     0\n"));

  ASSERT_EQ(RunCli(server, {"simulate", "--sessions", "3000"}, &out, &err),
            kExitOk)
      << err;
  EXPECT_THAT(out, HasSubstr("accepted     0\nunchanged    15000\n"));
}

// `simulate --push` sends exactly the observations of `simulate --jsonl`
// for the same sessions and seed: pushing that file afterwards changes
// nothing, and both write the same truth.
TEST(SimulateIntegrationTest, PushesTheSameObservationsAsItsJsonLines) {
  ServerProcess server(cohortd::testing::MakeTempDir());
  ASSERT_OK(server.Start());
  const std::string pushed_truth = server.dir() + "/pushed-truth.csv";
  std::string out, err;
  ASSERT_EQ(RunCli(server,
                   {"simulate", "--sessions", "2000", "--seed", "5", "--batch",
                    "999", "--streams", "2", "--truth", pushed_truth},
                   &out, &err),
            kExitOk)
      << err << out;
  EXPECT_THAT(out, HasSubstr("accepted     10000\n"));
  EXPECT_THAT(out, HasSubstr(" observations/s)\n"));

  const std::string jsonl = server.dir() + "/simulated.jsonl";
  const std::string jsonl_truth = server.dir() + "/jsonl-truth.csv";
  ASSERT_EQ(RunCli(server,
                   {"simulate", "--sessions", "2000", "--seed", "5", "--jsonl",
                    jsonl, "--truth", jsonl_truth},
                   &out, &err),
            kExitOk)
      << err;
  ASSERT_EQ(RunCli(server, {"push", jsonl, "--batch", "1000"}, &out, &err),
            kExitOk)
      << err << out;
  EXPECT_THAT(out, HasSubstr("accepted     0\nunchanged    10000\n"
                             "rejected     0\n"));

  const auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  const std::string truth = read(pushed_truth);
  EXPECT_EQ(std::count(truth.begin(), truth.end(), '\n'), 2001);
  EXPECT_EQ(truth, read(jsonl_truth));
}

TEST(SimulateIntegrationTest, RefusesAServerWhoseSchemaDiffers) {
  ServerProcess server(cohortd::testing::MakeTempDir(), "",
                       {{"{name: prompts, bounds: [0, 200]",
                         "{name: prompts, bounds: [0, 100]"}});
  ASSERT_OK(server.Start());
  std::string out, err;
  EXPECT_EQ(RunCli(server, {"simulate", "--sessions", "1000"}, &out, &err),
            kExitError);
  EXPECT_THAT(err, HasSubstr("measure 3 is 'prompts' [0, 100] step 1; "
                             "expected 'prompts' [0, 200] step 1"));
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace cohortd::cohortctl

// Two issue 13 defects of the real cohortd binary that shutdown_fault_test
// and the storage tests did not pin down (docs/storage.md "Issue 13: each
// defect and its test"):
// - An idle server took 2.3-3.6 s to stop on SIGTERM: each metrics
//   listener (civetweb) polls its socket in 2 s quanta and mg_stop waited
//   out the current one. shutdown_fault_test's bound (the 5 s grace less
//   1 s) passes on that; the bound here is one quantum, which a stop that
//   waits for a poll cannot meet with two listeners, and about nine times
//   what an idle stop takes now (printed).
// - Item 2's start-up message saying how much free space recovery needs.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fault/fault_client.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

// civetweb's accept loop poll (see MetricsHttpServer::Stop).
constexpr absl::Duration kMetricsPollQuantum = absl::Seconds(2);

std::string ReadLog(const std::string& dir) {
  std::ifstream in(dir + "/cohortd.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(StopAndSpaceFaultTest, IdleStopDoesNotWaitForTheMetricsPoll) {
  ServerProcess server(MakeTempDir());
  ASSERT_OK(server.Start());
  // Both metrics endpoints are up (a scrape each), so their accept loops
  // are inside a poll when SIGTERM comes.
  ASSERT_EQ(CurlGet(absl::StrCat("http://127.0.0.1:", server.metrics_port(),
                                 "/metrics"))
                .code,
            200);
  ASSERT_EQ(CurlGet(absl::StrCat("http://127.0.0.1:",
                                 server.operator_metrics_port(), "/metrics"),
                    server.tokens().admin)
                .code,
            200);
  const absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(int code, server.Stop());
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(code, 0);
  std::printf("shutdown, idle, both metrics listeners up: %s\n",
              absl::FormatDuration(took).c_str());
  EXPECT_LT(took, kMetricsPollQuantum);
}

TEST(StopAndSpaceFaultTest, StartLogsTheFreeSpaceRecoveryNeeds) {
  const std::string dir = MakeTempDir();
  ServerProcess server(dir);
  ASSERT_OK(server.Start());
  auto stub = cohortd::v1::Ingest::NewStub(server.Channel());
  cohortd::v1::PushResponse response;
  auto context = AuthContext(server.tokens().ingest);
  ASSERT_TRUE(stub->Push(context.get(), ValidBatch(2000), &response).ok());
  ASSERT_EQ(response.accepted(), 2000);
  server.Kill();  // the next start replays the WAL
  const size_t before = ReadLog(dir).size();
  ASSERT_OK(server.Start());
  const std::string log = ReadLog(dir).substr(before);
  EXPECT_THAT(log, HasSubstr("recovery and compaction need up to"));
  // The WAL the kill left is counted (2,000 observations: >= 0.1 MiB).
  EXPECT_THAT(log, ContainsRegex("[0-9]+\\.[0-9] MiB of WAL replayed"));
  EXPECT_THAT(log, Not(HasSubstr(" 0.0 MiB of WAL replayed")));
  EXPECT_THAT(log, ContainsRegex("MiB\\); [0-9]+\\.[0-9] MiB free"));
  ASSERT_OK_AND_ASSIGN(int code, server.Stop());
  EXPECT_EQ(code, 0);
}

}  // namespace
}  // namespace cohortd::testing

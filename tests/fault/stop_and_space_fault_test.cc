// Two issue 13 defects of the real cohortd binary that shutdown_fault_test
// and the storage tests did not pin down (docs/storage.md "Issue 13: each
// defect and its test"):
// - An idle server took 2.3-3.6 s to stop on SIGTERM: each metrics
//   listener (civetweb) polls its socket in 2 s quanta and mg_stop waited
//   out the current one. shutdown_fault_test's bound (the 5 s grace less
//   1 s) passes on that; the bound here is one quantum, which a stop that
//   waits for a poll cannot meet with two listeners, and about nine times
//   what an idle stop takes now (printed).
// - Item 6's "finishes in-flight batches": SIGTERM while clients push;
//   every acknowledged push is stored, the others end UNAVAILABLE (or,
//   for now, CANCELLED: see the test), and cohortd exits 0.
// - Item 2's start-up message saying how much free space recovery needs.
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fault/fault_client.h"
#include "tests/fault/fault_support.h"
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

TEST(StopAndSpaceFaultTest, SigtermUnderLoadFinishesInFlightPushes) {
  constexpr int kPushers = 3;
  constexpr int kBatch = 300;
  ServerProcess server(MakeTempDir());
  ASSERT_OK(server.Start());
  std::mutex mu;
  std::set<std::string> acknowledged;
  std::map<grpc::StatusCode, int> endings;  // each pusher's last status
  std::atomic<int> pushes{0};
  std::vector<std::thread> pushers;
  for (int p = 0; p < kPushers; ++p) {
    pushers.emplace_back([&, p] {
      auto stub = cohortd::v1::Ingest::NewStub(server.Channel());
      const std::string prefix = absl::StrCat("term", p);
      for (int first = 0;; first += kBatch) {
        cohortd::v1::PushResponse response;
        auto context = AuthContext(server.tokens().ingest);
        const grpc::Status status = stub->Push(
            context.get(), SessionBatch(prefix, first, kBatch), &response);
        std::lock_guard<std::mutex> lock(mu);
        if (!status.ok()) {
          ++endings[status.error_code()];
          std::printf("pusher %d ended: code %d '%s'\n", p,
                      static_cast<int>(status.error_code()),
                      status.error_message().c_str());
          return;
        }
        EXPECT_EQ(response.accepted(), kBatch);
        for (int i = first; i < first + kBatch; ++i) {
          acknowledged.insert(absl::StrCat(prefix, "-", i));
        }
        ++pushes;
      }
    });
  }
  // SIGTERM once every pusher has had a batch through, so batches are in
  // flight when it comes.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (pushes.load() < 2 * kPushers && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_OK_AND_ASSIGN(int code, server.Stop());
  for (std::thread& t : pushers) t.join();
  EXPECT_EQ(code, 0);
  // A push in flight finished (OK, acknowledged); the next one each
  // pusher sent was refused as retryable. Not CANCELLED: gRPC 1.51 ends a
  // call that arrives after its Shutdown began with CANCELLED
  // (grpc/grpc#41785), which clients do not retry, so the server drains
  // first (CallTracker): new calls get UNAVAILABLE until none has arrived
  // for 100 ms. Before the drain, 4 runs in 6 ended a pusher CANCELLED.
  for (const auto& [status, count] : endings) {
    EXPECT_EQ(status, grpc::StatusCode::UNAVAILABLE)
        << count << " pusher(s) ended with code " << status;
  }
  ASSERT_OK_AND_ASSIGN(std::set<std::string> stored,
                       StoredSessionIds(server.data_dir()));
  ASSERT_GT(acknowledged.size(), 0u);
  size_t missing = 0;
  for (const std::string& id : acknowledged) missing += stored.count(id) == 0;
  EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged";
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

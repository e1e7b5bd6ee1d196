// kill -9 under load, several times over: after every restart each
// acknowledged session is in the store, and the server restarts on what
// the kill left (an incomplete last WAL record is tolerated, since it was
// never acknowledged; anything else would stop it with DATA_LOSS).
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fault/fault_support.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

constexpr int kIterations = 4;
constexpr int kPushers = 2;
constexpr int kBatch = 200;

TEST(KillLoopFaultTest, EveryAcknowledgedSessionSurvivesKillNine) {
  const std::string dir = MakeTempDir();
  ServerProcess server(dir);
  // Seeded, so a failure replays with the same kill times.
  std::mt19937 rng(20261201);
  std::uniform_int_distribution<int> kill_after_ms(150, 700);
  std::mutex mu;
  std::set<std::string> acknowledged;

  for (int iteration = 0; iteration < kIterations; ++iteration) {
    ASSERT_OK(server.Start());
    std::atomic<bool> stop{false};
    std::vector<std::thread> pushers;
    for (int p = 0; p < kPushers; ++p) {
      pushers.emplace_back([&, p] {
        auto stub = cohortd::v1::Ingest::NewStub(server.Channel());
        const std::string prefix = absl::StrCat("k", iteration, "p", p);
        for (int first = 0; !stop.load(); first += kBatch) {
          cohortd::v1::PushResponse response;
          auto context = AuthContext(server.tokens().ingest);
          const grpc::Status status = stub->Push(
              context.get(), SessionBatch(prefix, first, kBatch), &response);
          if (!status.ok()) break;  // the server was killed
          EXPECT_EQ(response.accepted(), kBatch);
          std::lock_guard<std::mutex> lock(mu);
          for (int i = first; i < first + kBatch; ++i) {
            acknowledged.insert(absl::StrCat(prefix, "-", i));
          }
        }
      });
    }
    absl::SleepFor(absl::Milliseconds(kill_after_ms(rng)));
    server.Kill();
    stop = true;
    for (std::thread& t : pushers) t.join();
  }
  // One more start proves the last kill left a store cohortd accepts.
  ASSERT_OK(server.Start());
  ASSERT_OK_AND_ASSIGN(int code, server.Stop());
  EXPECT_EQ(code, 0);

  ASSERT_OK_AND_ASSIGN(std::set<std::string> stored,
                       StoredSessionIds(server.data_dir()));
  ASSERT_GT(acknowledged.size(), 0u);
  size_t missing = 0;
  for (const std::string& id : acknowledged) {
    if (stored.count(id) == 0 && ++missing <= 5) {
      ADD_FAILURE() << id << " was acknowledged, then lost";
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged";
  std::cerr << acknowledged.size() << " acknowledged sessions over "
            << kIterations << " kill -9 runs, all present\n";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cohortd::testing

// The real cohortd binary on a store whose newest write-ahead log was
// deleted, or cut at a 32 KiB block boundary, after acknowledged (synced,
// not yet flushed) pushes. RocksDB cannot see either: no WAL means nothing
// to replay, and a WAL cut between blocks ends with a complete record, so
// the store opens "healthy" with every later session gone. The store's
// synced-sequence sidecar (docs/storage.md "A missing or cut WAL") makes
// the start refuse with DATA_LOSS naming the WAL instead.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fault/fault_support.h"
#include "tests/fault/store_fault_test.h"
#include "tests/integration/server_process.h"
#include "tests/storage/corrupt_files.h"

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kExitDataLoss = 3;
constexpr uint64_t kWalBlock = 32 * 1024;

class MissingWalFaultTest : public StoreFaultTest {
 protected:
  void SetUp() override {
    StoreFaultTest::SetUp();
    ASSERT_OK(server_->Start());
  }

  // Pushes `batches` acknowledged batches of 500 sessions and kills the
  // server: the acknowledged sessions are in the WAL only. With
  // `wait_for_periodic_record`, first waits long enough for the store's
  // periodic, fsynced record (once a second); without, kills at once, so
  // only the record each synced write leaves can know of the sessions.
  void PushAcknowledgedAndKill(int batches,
                               bool wait_for_periodic_record = true) {
    PushAcknowledged(batches);
    if (HasFatalFailure()) return;
    if (wait_for_periodic_record) absl::SleepFor(absl::Milliseconds(2500));
    server_->Kill();
    ASSERT_TRUE(FilesWithSuffix(server_->data_dir(), ".sst").empty())
        << "the test needs the sessions in the WAL only";
  }

  // Start and --verify must refuse with DATA_LOSS naming `wal`, and leave
  // the store as it is.
  void ExpectRefusedNaming(const std::string& wal) {
    const std::string name = std::filesystem::path(wal).filename();
    RunResult start = RunCohortd({"--config", config()});
    std::printf("--- cohortd start (exit %d):\n%s---\n", start.exit_code,
                start.output.c_str());
    EXPECT_EQ(start.exit_code, kExitDataLoss) << start.output;
    EXPECT_THAT(start.output, HasSubstr("DATA_LOSS"));
    EXPECT_THAT(start.output, HasSubstr(name));
    EXPECT_THAT(start.output, HasSubstr("missing or cut short"));
    RunResult verify = RunCohortd({"--verify", "--config", config()});
    EXPECT_EQ(verify.exit_code, kExitDataLoss) << verify.output;
    EXPECT_THAT(verify.output, HasSubstr(name));
  }
};

TEST_F(MissingWalFaultTest, DeletedNewestWalRefusesToStart) {
  PushAcknowledgedAndKill(4);
  const std::vector<std::string> wals =
      FilesWithSuffix(server_->data_dir(), ".log");
  ASSERT_FALSE(wals.empty());
  ASSERT_TRUE(std::filesystem::remove(wals.back()));
  ExpectRefusedNaming(wals.back());
  // The operator accepts the loss: --salvage keeps the original folder,
  // says the lost sessions cannot be counted, and the server starts.
  RunResult salvage = RunCohortd({"--salvage", "--config", config()});
  std::printf("--- cohortd --salvage (exit %d):\n%s---\n", salvage.exit_code,
              salvage.output.c_str());
  EXPECT_EQ(salvage.exit_code, 0) << salvage.output;
  EXPECT_THAT(salvage.output, HasSubstr("cannot be known"));
  EXPECT_THAT(salvage.output, HasSubstr("uncountable"));
  EXPECT_THAT(salvage.output, HasSubstr("kept in"));
  EXPECT_OK(server_->Start());
}

TEST_F(MissingWalFaultTest, WalCutAtBlockBoundaryRefusesToStart) {
  PushAcknowledgedAndKill(8);
  const std::vector<std::string> wals =
      FilesWithSuffix(server_->data_dir(), ".log");
  ASSERT_FALSE(wals.empty());
  const uint64_t size = std::filesystem::file_size(wals.back());
  const uint64_t cut = size / 2 / kWalBlock * kWalBlock;
  ASSERT_GT(cut, 0u) << "WAL of " << size << " bytes is too small";
  ASSERT_EQ(truncate(wals.back().c_str(), cut), 0);
  ExpectRefusedNaming(wals.back());
}

// Before, the record lagged by up to a second (written only by the
// store's resume thread): a WAL deleted right after acknowledged pushes
// went unnoticed (the start succeeded with the sessions gone). Each
// synced write now records itself.
TEST_F(MissingWalFaultTest, WalDeletedRightAfterTheAcknowledgementRefuses) {
  PushAcknowledgedAndKill(4, /*wait_for_periodic_record=*/false);
  const std::vector<std::string> wals =
      FilesWithSuffix(server_->data_dir(), ".log");
  ASSERT_FALSE(wals.empty());
  ASSERT_TRUE(std::filesystem::remove(wals.back()));
  ExpectRefusedNaming(wals.back());
}

// The record each synced write leaves never claims more than is durable
// either: kill -9 at once after acknowledged pushes, three times, and
// every start succeeds with every session.
TEST_F(MissingWalFaultTest, IntactWalsStartAfterAnImmediateKill) {
  PushAcknowledgedAndKill(2, /*wait_for_periodic_record=*/false);
  for (int round = 0; round < 2; ++round) {
    ASSERT_OK(server_->Start());
    PushAcknowledged(1, /*first_batch=*/2 + round);
    if (HasFatalFailure()) return;
    server_->Kill();
  }
  ASSERT_OK(server_->Start());
  ASSERT_OK_AND_ASSIGN(int code, server_->Stop());
  EXPECT_EQ(code, 0);
  ASSERT_OK_AND_ASSIGN(auto ids, StoredSessionIds(server_->data_dir()));
  EXPECT_EQ(ids.size(), 2000u);
}

// The sidecar never claims more than is durable: kill -9 right after
// acknowledged pushes, twice, and every start succeeds with every session.
TEST_F(MissingWalFaultTest, IntactWalsStartAfterKill) {
  PushAcknowledgedAndKill(2);
  ASSERT_OK(server_->Start());
  server_->Kill();
  ASSERT_OK(server_->Start());
  ASSERT_OK_AND_ASSIGN(int code, server_->Stop());
  EXPECT_EQ(code, 0);
  ASSERT_OK_AND_ASSIGN(auto ids, StoredSessionIds(server_->data_dir()));
  EXPECT_EQ(ids.size(), 1000u);
}

}  // namespace
}  // namespace cohortd::testing

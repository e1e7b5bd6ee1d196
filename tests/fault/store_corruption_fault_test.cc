// The real cohortd binary on a damaged store: a flipped byte in the WAL or
// a flipped bit in an SST index or data block makes it refuse to start
// with DATA_LOSS naming the file (exit status 3), and `cohortd --verify`
// reports the same. Before, a WAL flip lost every later acknowledged
// session silently and permanently.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

class StoreCorruptionFaultTest : public StoreFaultTest {
 protected:
  void SetUp() override {
    StoreFaultTest::SetUp();
    ASSERT_OK(server_->Start());
  }

  // Starting must fail with DATA_LOSS naming `file`; so must --verify.
  void ExpectRefusedNaming(const std::string& file) {
    const std::string name = std::filesystem::path(file).filename();
    RunResult start = RunCohortd({"--config", config()});
    EXPECT_EQ(start.exit_code, kExitDataLoss) << start.output;
    EXPECT_THAT(start.output, HasSubstr("DATA_LOSS"));
    EXPECT_THAT(start.output, HasSubstr(name));
    RunResult verify = RunCohortd({"--verify", "--config", config()});
    EXPECT_EQ(verify.exit_code, kExitDataLoss) << verify.output;
    EXPECT_THAT(verify.output, HasSubstr("DATA_LOSS"));
    EXPECT_THAT(verify.output, HasSubstr(name));
  }
};

TEST_F(StoreCorruptionFaultTest, VerifyPassesOnAnIntactStore) {
  PushAcknowledged(2);
  RunResult busy = RunCohortd({"--verify", "--config", config()});
  EXPECT_EQ(busy.exit_code, 1) << busy.output;
  EXPECT_THAT(busy.output, HasSubstr("in use"));
  server_->Kill();  // the WAL holds everything
  RunResult verify = RunCohortd({"--verify", "--config", config()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("every record replayed"));
  EXPECT_THAT(verify.output, HasSubstr("dataset sessions: 1000 session"));
  EXPECT_THAT(verify.output, HasSubstr("is intact"));
  // And it changed nothing: the server starts and has every session.
  ASSERT_OK(server_->Start());
  ASSERT_OK_AND_ASSIGN(int code, server_->Stop());
  EXPECT_EQ(code, 0);
  ASSERT_OK_AND_ASSIGN(auto ids, StoredSessionIds(server_->data_dir()));
  EXPECT_EQ(ids.size(), 1000u);
}

TEST_F(StoreCorruptionFaultTest, WalByteFlipRefusesToStart) {
  PushAcknowledged(4);
  server_->Kill();
  ASSERT_OK_AND_ASSIGN(const std::string wal,
                       FlipByteInMiddleOfWal(server_->data_dir()));
  const uint64_t size = std::filesystem::file_size(wal);
  ExpectRefusedNaming(wal);
  // The damaged WAL is still there, untouched, for the operator.
  ASSERT_TRUE(std::filesystem::exists(wal));
  EXPECT_EQ(std::filesystem::file_size(wal), size);
}

TEST_F(StoreCorruptionFaultTest, SstIndexBlockBitFlipRefusesToStart) {
  PushAcknowledged(4);
  ASSERT_OK_AND_ASSIGN(int code, server_->Stop());  // flushes an SST
  ASSERT_EQ(code, 0);
  const std::vector<std::string> ssts =
      FilesWithSuffix(server_->data_dir(), ".sst");
  ASSERT_FALSE(ssts.empty());
  ASSERT_OK(FlipBitInSstIndexBlock(ssts.back()));
  ExpectRefusedNaming(ssts.back());
}

TEST_F(StoreCorruptionFaultTest, SstDataBlockBitFlipRefusesToStart) {
  PushAcknowledged(4);
  ASSERT_OK_AND_ASSIGN(int code, server_->Stop());
  ASSERT_EQ(code, 0);
  const std::vector<std::string> ssts =
      FilesWithSuffix(server_->data_dir(), ".sst");
  ASSERT_FALSE(ssts.empty());
  ASSERT_OK(FlipBitInSstDataBlock(ssts.back()));
  ExpectRefusedNaming(ssts.back());
}

}  // namespace
}  // namespace cohortd::testing

// The real cohortd binary meeting corruption while it runs (issue 13): a
// damaged block read by a request makes the store's health DataLoss, and
// the process stops with DATA_LOSS naming the file and exit status 3, as a
// start on a damaged store does; before, only that one request failed and
// the server carried on SERVING. And a damaged persisted sealed index stops
// the start the same way.
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

std::string ReadLog(const std::string& dir) {
  std::ifstream in(dir + "/cohortd.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts on 2,000 acknowledged sessions, stopped cleanly (so in an SST).
class RuntimeCorruptionFaultTest : public StoreFaultTest {
 protected:
  void SetUp() override {
    StoreFaultTest::SetUp();
    ASSERT_OK(server_->Start());
    PushAcknowledged(4);
    if (HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(int code, server_->Stop());  // flushes an SST
    ASSERT_EQ(code, 0);
  }
};

TEST_F(RuntimeCorruptionFaultTest, DamageMetWhileRunningStopsWithDataLoss) {
  ASSERT_OK(server_->Start());
  // The background checksum pass found the store intact.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (ReadLog(dir_).find("verified the checksums of every SST block") ==
             std::string::npos &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_THAT(ReadLog(dir_), HasSubstr("verified the checksums"));
  const std::vector<std::string> ssts =
      FilesWithSuffix(server_->data_dir(), ".sst");
  ASSERT_FALSE(ssts.empty());
  // Damage under the running server, a third into the newest SST: among
  // the session records (keys "s/..." make up most of it), which an
  // erasure scans from disk (scans bypass the block cache).
  ASSERT_OK_AND_ASSIGN(SstLayout layout, ReadSstLayout(ssts.back()));
  ASSERT_OK(FlipByte(ssts.back(), layout.index_offset / 3, 0x04));

  auto admin = cohortd::v1::Admin::NewStub(server_->Channel());
  cohortd::v1::DeleteAccountRequest request;
  request.set_dataset("sessions");
  request.set_account_id("nobody");
  cohortd::v1::DeleteAccountResponse response;
  auto context = AuthContext(server_->tokens().admin);
  const grpc::Status deleted =
      admin->DeleteAccount(context.get(), request, &response);
  EXPECT_EQ(deleted.error_code(), grpc::StatusCode::DATA_LOSS)
      << deleted.error_message();

  ASSERT_OK_AND_ASSIGN(int code, server_->WaitForExit(absl::Seconds(30)));
  EXPECT_EQ(code, kExitDataLoss);
  const std::string log = ReadLog(dir_);
  EXPECT_THAT(log, HasSubstr("health NOT_SERVING, stopping"));
  EXPECT_THAT(log, HasSubstr("DATA_LOSS"));
  EXPECT_THAT(
      log, HasSubstr(std::filesystem::path(ssts.back()).filename().string()));
}

TEST_F(RuntimeCorruptionFaultTest, DamagedSealedIndexImageRefusesToStart) {
  // The sealed index image is the store's last keys ("x/..."), at the end
  // of the newest SST, before the index block: flip a bit just before it.
  const std::vector<std::string> ssts =
      FilesWithSuffix(server_->data_dir(), ".sst");
  ASSERT_FALSE(ssts.empty());
  ASSERT_OK_AND_ASSIGN(SstLayout layout, ReadSstLayout(ssts.back()));
  ASSERT_GT(layout.index_offset, 64u);
  ASSERT_OK(FlipByte(ssts.back(), layout.index_offset - 40, 0x04));
  RunResult start = RunCohortd({"--config", dir_ + "/cohortd.yaml"});
  EXPECT_EQ(start.exit_code, kExitDataLoss) << start.output;
  EXPECT_THAT(start.output, HasSubstr("DATA_LOSS"));
}

}  // namespace
}  // namespace cohortd::testing

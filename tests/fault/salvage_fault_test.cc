// `cohortd --salvage` on the real binary (docs/storage.md "After
// DATA_LOSS"): a damaged store that cohortd refuses to start on is brought
// up by the operator's explicit choice, the loss printed, the original
// kept whole; an intact store is left alone; damage touching the budget
// ledger or audit log is refused.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <regex>
#include <set>
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

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int kExitDataLoss = 3;
constexpr int kSessions = 2000;  // 4 batches of 500

// Every file under `dir` (relative path) -> its bytes.
std::map<std::string, std::string> Contents(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    files[fs::relative(entry.path(), dir).string()].assign(
        std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return files;
}

// The first number after `prefix` in `text`, or -1.
int64_t NumberAfter(const std::string& text, const std::string& prefix) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return -1;
  return std::stoll(text.substr(at + prefix.size()));
}

class SalvageFaultTest : public StoreFaultTest {
 protected:
  // Runs --salvage; its report goes to the test log too, for the reader.
  RunResult Salvage() {
    RunResult result = RunCohortd({"--salvage", "--config", config()});
    std::printf("--- cohortd --salvage (exit %d):\n%s---\n", result.exit_code,
                result.output.c_str());
    return result;
  }

  // Start is refused with DATA_LOSS (as without salvage).
  void ExpectStartRefused() {
    RunResult start = RunCohortd({"--config", config()});
    EXPECT_EQ(start.exit_code, kExitDataLoss) << start.output;
    EXPECT_THAT(start.output, HasSubstr("DATA_LOSS"));
  }

  // After a salvage that printed its kept folder: the original is there,
  // the server starts, and returns the stored session ids.
  std::set<std::string> StartAndReadSessions(const RunResult& salvage) {
    std::smatch kept;
    const std::regex kept_re("kept in (\\S+)");
    EXPECT_TRUE(std::regex_search(salvage.output, kept, kept_re))
        << salvage.output;
    if (kept.size() > 1) EXPECT_TRUE(fs::exists(kept[1].str() + "/CURRENT"));
    EXPECT_THAT(salvage.output, HasSubstr("is intact"));  // the final verify
    EXPECT_OK(server_->Start());
    absl::StatusOr<int> code = server_->Stop();
    EXPECT_OK(code.status());
    absl::StatusOr<std::set<std::string>> ids =
        StoredSessionIds(server_->data_dir());
    EXPECT_OK(ids.status());
    return ids.ok() ? *ids : std::set<std::string>();
  }
};

TEST_F(SalvageFaultTest, IntactStoreHasNothingToSalvage) {
  server_->DropPublications();
  ASSERT_OK(server_->Start());
  PushAcknowledged(2);
  ASSERT_OK_AND_ASSIGN(int code, server_->Stop());
  ASSERT_EQ(code, 0);
  const auto before = Contents(server_->data_dir());
  const auto parent_before = Contents(dir_);
  RunResult salvage = Salvage();
  EXPECT_EQ(salvage.exit_code, 0) << salvage.output;
  EXPECT_THAT(salvage.output, HasSubstr("nothing to salvage"));
  EXPECT_EQ(Contents(server_->data_dir()), before);
  EXPECT_EQ(Contents(dir_).size(), parent_before.size());  // no kept copy
}

TEST_F(SalvageFaultTest, RefusesAStoreInUse) {
  server_->DropPublications();
  ASSERT_OK(server_->Start());
  RunResult salvage = Salvage();
  EXPECT_EQ(salvage.exit_code, 1) << salvage.output;
  EXPECT_THAT(salvage.output, HasSubstr("in use"));
}

TEST_F(SalvageFaultTest, WalByteFlipDropsTheTailAndSaysHowMuch) {
  server_->DropPublications();
  ASSERT_OK(server_->Start());
  PushAcknowledged(4);
  server_->Kill();
  ASSERT_OK_AND_ASSIGN(const std::string wal,
                       FlipByteInMiddleOfWal(server_->data_dir()));
  const std::string damaged =
      Contents(server_->data_dir())[fs::path(wal).filename().string()];
  ExpectStartRefused();

  RunResult salvage = Salvage();
  ASSERT_EQ(salvage.exit_code, 0) << salvage.output;
  EXPECT_THAT(salvage.output, HasSubstr(fs::path(wal).filename().string()));
  EXPECT_THAT(salvage.output, HasSubstr("damaged record at offset"));
  EXPECT_THAT(salvage.output, HasSubstr("last good sequence number"));
  const int64_t lost = NumberAfter(salvage.output, "LOST dataset sessions: ");
  ASSERT_GT(lost, 0) << salvage.output;
  // The damaged WAL is kept, byte for byte.
  std::smatch kept;
  ASSERT_TRUE(
      std::regex_search(salvage.output, kept, std::regex("kept in (\\S+)")));
  EXPECT_EQ(Contents(kept[1].str())[fs::path(wal).filename().string()],
            damaged);

  const std::set<std::string> ids = StartAndReadSessions(salvage);
  // Exactly the printed number is missing, and they are the latest: the
  // sessions before the damage are all there.
  EXPECT_EQ(static_cast<int64_t>(ids.size()), kSessions - lost);
  for (int i = 0; i < kSessions - lost; ++i) {
    EXPECT_EQ(ids.count(absl::StrCat("s-", i)), 1u) << i;
  }
}

TEST_F(SalvageFaultTest, SstDataBlockBitFlipDropsTheUnreadableSessions) {
  server_->DropPublications();
  ASSERT_OK(server_->Start());
  PushAcknowledged(4);
  ASSERT_OK_AND_ASSIGN(int code, server_->Stop());  // flushes an SST
  ASSERT_EQ(code, 0);
  const std::vector<std::string> ssts =
      FilesWithSuffix(server_->data_dir(), ".sst");
  ASSERT_FALSE(ssts.empty());
  ASSERT_OK(FlipBitInSstDataBlock(ssts.back()));
  ExpectStartRefused();

  RunResult salvage = Salvage();
  ASSERT_EQ(salvage.exit_code, 0) << salvage.output;
  EXPECT_THAT(salvage.output, HasSubstr(fs::path(ssts.back()).filename()));
  EXPECT_THAT(salvage.output, HasSubstr("unreadable between"));
  const int64_t at_least =
      NumberAfter(salvage.output, "LOST dataset sessions: at least ");
  const int64_t unattributed = NumberAfter(salvage.output, "session(s); ");
  ASSERT_GE(at_least, 0) << salvage.output;
  ASSERT_GE(unattributed, 0) << salvage.output;

  const std::set<std::string> ids = StartAndReadSessions(salvage);
  const int64_t missing = kSessions - static_cast<int64_t>(ids.size());
  EXPECT_GT(missing, 0);
  // The printed bound holds: at least that many, at most that many plus
  // one per unattributed entry.
  EXPECT_GE(missing, at_least) << salvage.output;
  EXPECT_LE(missing, at_least + unattributed) << salvage.output;
  EXPECT_LT(missing, kSessions / 2);  // only the damaged block's range
}

TEST_F(SalvageFaultTest, LedgerDamageIsRefused) {
  // Publications at start make releases: budget, release and audit keys,
  // which sort before the sessions, in the SST's first data block.
  ASSERT_OK(server_->Start());
  PushAcknowledged(1);
  ASSERT_OK_AND_ASSIGN(int code, server_->Stop());
  ASSERT_EQ(code, 0);
  const std::vector<std::string> ssts =
      FilesWithSuffix(server_->data_dir(), ".sst");
  ASSERT_FALSE(ssts.empty());
  ASSERT_OK(FlipBitInSstDataBlock(ssts.back()));
  const auto before = Contents(server_->data_dir());

  RunResult salvage = Salvage();
  EXPECT_EQ(salvage.exit_code, kExitDataLoss) << salvage.output;
  EXPECT_THAT(salvage.output, HasSubstr("REFUSED"));
  EXPECT_THAT(salvage.output, HasSubstr("refund budget"));
  EXPECT_THAT(salvage.output, HasSubstr("a/"));
  EXPECT_EQ(Contents(server_->data_dir()), before);  // nothing changed
  ExpectStartRefused();
}

}  // namespace
}  // namespace cohortd::testing

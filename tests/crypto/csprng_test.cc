#include "server/crypto/csprng.h"

#include <bitset>
#include <cstdint>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;

// Counts calls and hands out 0, 1, 2, ...: lets the test see buffering.
class CountingSource : public RandomSource {
 public:
  absl::Status Fill(uint64_t* words, size_t count) override {
    ++calls;
    if (fail) return absl::InternalError("broken");
    for (size_t i = 0; i < count; ++i) words[i] = next++;
    return absl::OkStatus();
  }
  int calls = 0;
  bool fail = false;
  uint64_t next = 0;
};

TEST(RandomWordsTest, RefillsInBlocksAndNeverReusesAWord) {
  CountingSource source;
  RandomWords words(&source);
  uint64_t w = 0;
  for (uint64_t i = 0; i < 3 * RandomWords::kBufferWords; ++i) {
    ASSERT_TRUE(words.Next(&w));
    EXPECT_EQ(w, i);
  }
  EXPECT_EQ(source.calls, 3);
}

TEST(RandomWordsTest, FailsClosedAndStaysFailed) {
  CountingSource source;
  source.fail = true;
  RandomWords words(&source);
  uint64_t w = 42;
  EXPECT_FALSE(words.Next(&w));
  EXPECT_EQ(w, 42u);
  EXPECT_THAT(words.status(), StatusIs(absl::StatusCode::kInternal));
  source.fail = false;  // A recovered source does not revive the buffer.
  EXPECT_FALSE(words.Next(&w));
}

TEST(OpenSslRandomSourceTest, ProducesDistinctWordsWithBalancedBits) {
  RandomWords& words = SecureRandomWords();
  constexpr int kWords = 4096;
  std::set<uint64_t> seen;
  int64_t ones = 0;
  for (int i = 0; i < kWords; ++i) {
    uint64_t w = 0;
    ASSERT_TRUE(words.Next(&w));
    seen.insert(w);
    ones += std::bitset<64>(w).count();
  }
  // 2^12 uniform words collide with probability < 2^24 / 2^64.
  EXPECT_EQ(seen.size(), static_cast<size_t>(kWords));
  // Bits ~ Binomial(262144, 1/2): sd = 256; 8 sd bounds a false failure
  // below 1e-15.
  EXPECT_NEAR(static_cast<double>(ones), kWords * 32.0, 8 * 256.0);
}

TEST(OpenSslRandomSourceTest, ThreadsGetTheirOwnBuffers) {
  RandomWords* main_words = &SecureRandomWords();
  RandomWords* other_words = nullptr;
  std::thread t([&] { other_words = &SecureRandomWords(); });
  t.join();
  EXPECT_NE(main_words, other_words);
}

}  // namespace
}  // namespace cohortd

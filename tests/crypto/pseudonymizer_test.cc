#include "server/crypto/pseudonymizer.h"

#include <openssl/hmac.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

std::string Unhex(absl::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(
        std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

struct Rfc4231Case {
  int number;
  std::string key;
  std::string data;
  std::string hmac_sha256_hex;
};

// RFC 4231 section 4 (case 5 truncates the output, which we never do).
std::vector<Rfc4231Case> Rfc4231Cases() {
  return {
      {1, std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {2, "Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {3, std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {4, Unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
       std::string(50, '\xcd'),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {6, std::string(131, '\xaa'),
       "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {7, std::string(131, '\xaa'),
       "This is a test using a larger than block-size key and a larger than "
       "block-size data. The key needs to be hashed before being used by the "
       "HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
}

TEST(HmacSha256Test, Rfc4231Vectors) {
  for (const Rfc4231Case& c : Rfc4231Cases()) {
    ASSERT_OK_AND_ASSIGN(auto hmac, HmacSha256::Create(c.key));
    EXPECT_EQ(HexEncode(hmac->Mac(c.data)), c.hmac_sha256_hex)
        << "RFC 4231 case " << c.number;
    // The keyed context is reused: a second call must not see the first.
    EXPECT_EQ(HexEncode(hmac->Mac(c.data)), c.hmac_sha256_hex)
        << "RFC 4231 case " << c.number << ", second call";
  }
}

// The precomputed pad states against OpenSSL's one-shot HMAC (what the
// EVP_MAC implementation they replaced computed) for key lengths around
// the 64-byte block (shorter, equal, hashed) and message lengths around
// SHA-256's padding boundaries (55/56 and 64 bytes).
TEST(HmacSha256Test, MatchesOpenSslHmac) {
  for (size_t key_size : {1, 31, 32, 33, 63, 64, 65, 128, 200}) {
    std::string key(key_size, '\0');
    for (size_t i = 0; i < key_size; ++i) key[i] = static_cast<char>(i * 7);
    ASSERT_OK_AND_ASSIGN(auto hmac, HmacSha256::Create(key));
    for (size_t size = 0; size <= 300; ++size) {
      std::string message(size, '\0');
      for (size_t i = 0; i < size; ++i) {
        message[i] = static_cast<char>(i * 31 + key_size);
      }
      Digest256 want;
      unsigned int want_len = 0;
      ASSERT_NE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size(), want.data(), &want_len),
                nullptr);
      ASSERT_EQ(want_len, want.size());
      ASSERT_EQ(HexEncode(hmac->Mac(message)), HexEncode(want))
          << "key " << key_size << " bytes, message " << size << " bytes";
    }
  }
}

TEST(HmacSha256Test, RejectsEmptyKey) {
  EXPECT_THAT(HmacSha256::Create(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// HMAC zero-pads keys shorter than the 64-byte block (RFC 2104 section 2),
// so the RFC 4231 cases with keys of at most 32 bytes, zero-padded to 32,
// are also test vectors for the 32-byte-key Pseudonymizer itself.
TEST(PseudonymizerTest, Rfc4231VectorsWithZeroPaddedKeys) {
  for (const Rfc4231Case& c : Rfc4231Cases()) {
    if (c.key.size() > kPseudonymizationKeySize) continue;
    std::string key = c.key;
    key.resize(kPseudonymizationKeySize, '\0');
    ASSERT_OK_AND_ASSIGN(auto p, Pseudonymizer::Create(key));
    EXPECT_EQ(HexEncode(p->Pseudonymize(c.data)), c.hmac_sha256_hex)
        << "RFC 4231 case " << c.number;
  }
}

TEST(PseudonymizerTest, RequiresA32ByteKey) {
  EXPECT_THAT(Pseudonymizer::Create(std::string(31, 'k')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("31")));
  EXPECT_THAT(Pseudonymizer::Create(std::string(33, 'k')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PseudonymizerTest, DistinguishesAccountsAndKeys) {
  ASSERT_OK_AND_ASSIGN(auto a, Pseudonymizer::Create(std::string(32, 'a')));
  ASSERT_OK_AND_ASSIGN(auto b, Pseudonymizer::Create(std::string(32, 'b')));
  EXPECT_NE(a->Pseudonymize("acct-1"), a->Pseudonymize("acct-2"));
  EXPECT_NE(a->Pseudonymize("acct-1"), b->Pseudonymize("acct-1"));
  EXPECT_EQ(a->Pseudonymize("acct-1"), a->Pseudonymize("acct-1"));
}

TEST(PseudonymizerTest, ThreadSafe) {
  ASSERT_OK_AND_ASSIGN(auto p, Pseudonymizer::Create(std::string(32, 'k')));
  const Digest256 expected = p->Pseudonymize("acct");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        if (p->Pseudonymize("acct") != expected) ++mismatches[t];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(Sha256Test, KnownVectors) {
  // FIPS 180-2 appendix B.1 and the empty string.
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HexTest, RoundTripsAndRejectsMalformed) {
  Digest256 d = Sha256("abc");
  Digest256 parsed;
  ASSERT_TRUE(ParseHexDigest256(HexEncode(d), &parsed));
  EXPECT_EQ(parsed, d);
  ASSERT_TRUE(ParseHexDigest256(
      "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
      &parsed));
  EXPECT_EQ(parsed, d);
  EXPECT_FALSE(ParseHexDigest256("ba78", &parsed));
  EXPECT_FALSE(ParseHexDigest256(std::string(63, 'a') + "g", &parsed));
  EXPECT_FALSE(ParseHexDigest256(std::string(66, 'a'), &parsed));
  EXPECT_EQ(HexEncode(absl::string_view("\x00\xff\x10", 3)), "00ff10");
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/keyfile_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static mode_t ModeOf(const std::string& path) {
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0);
    return st.st_mode & 07777;
  }

  std::string dir_;
};

TEST_F(KeyFileTest, CreatesWithMode0600AndReloadsTheSameKey) {
  // Parent folders are created too.
  const std::string path = dir_ + "/a/b/pseudonymization.key";
  ASSERT_OK_AND_ASSIGN(std::string key, LoadOrCreateKeyFile(path));
  EXPECT_EQ(key.size(), kPseudonymizationKeySize);
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_EQ(std::filesystem::file_size(path), kPseudonymizationKeySize);
  ASSERT_OK_AND_ASSIGN(std::string again, LoadOrCreateKeyFile(path));
  EXPECT_EQ(again, key);
  EXPECT_OK(Pseudonymizer::Create(key));
}

TEST_F(KeyFileTest, NewKeysDiffer) {
  ASSERT_OK_AND_ASSIGN(std::string a, LoadOrCreateKeyFile(dir_ + "/a.key"));
  ASSERT_OK_AND_ASSIGN(std::string b, LoadOrCreateKeyFile(dir_ + "/b.key"));
  EXPECT_NE(a, b);
}

TEST_F(KeyFileTest, RefusesWrongSize) {
  const std::string path = dir_ + "/short.key";
  std::ofstream(path) << "too short";
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  EXPECT_THAT(LoadOrCreateKeyFile(path),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(path)));
  // It must not have been replaced by a fresh key.
  EXPECT_EQ(std::filesystem::file_size(path), 9u);
}

TEST_F(KeyFileTest, RefusesGroupOrOtherAccess) {
  const std::string path = dir_ + "/open.key";
  ASSERT_OK(LoadOrCreateKeyFile(path).status());
  for (mode_t mode : {0640, 0604, 0660, 0620}) {
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
    EXPECT_THAT(
        LoadOrCreateKeyFile(path),
        StatusIs(absl::StatusCode::kFailedPrecondition,
                 ::testing::AllOf(HasSubstr(path), HasSubstr("chmod 600"))))
        << "mode " << std::oct << mode;
  }
  ASSERT_EQ(chmod(path.c_str(), 0400), 0);
  EXPECT_OK(LoadOrCreateKeyFile(path).status());
}

TEST_F(KeyFileTest, RefusesADirectory) {
  const std::string path = dir_ + "/dir.key";
  std::filesystem::create_directory(path);
  ASSERT_EQ(chmod(path.c_str(), 0700), 0);
  EXPECT_THAT(LoadOrCreateKeyFile(path),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace cohortd

#include "server/storage/keys.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace cohortd::keys {
namespace {

TEST(KeysTest, SessionKeyLayout) {
  EXPECT_EQ(SessionKey("sessions", "abc-123"), "s/sessions/abc-123");
  EXPECT_EQ(SessionPrefix("sessions"), "s/sessions/");
  EXPECT_TRUE(absl::StartsWith(SessionKey("sessions", "x"), kSessionPrefix));
}

TEST(KeysTest, EscapesSeparatorAndEscapeCharacter) {
  EXPECT_EQ(EscapeKeyComponent("a/b%c"), "a%2Fb%25c");
  EXPECT_EQ(SessionKey("d/1", "s/2%"), "s/d%2F1/s%2F2%25");
}

TEST(KeysTest, DatasetPrefixDoesNotCoverOtherDatasets) {
  // Without escaping, dataset "a"'s prefix "s/a/" would match session
  // "b/c" of dataset "a/b"... and the reverse.
  EXPECT_FALSE(absl::StartsWith(SessionKey("a/b", "c"), SessionPrefix("a")));
  EXPECT_FALSE(absl::StartsWith(SessionKey("a", "b/c"), SessionPrefix("a/b")));
  EXPECT_NE(SessionKey("a/b", "c"), SessionKey("a", "b/c"));
}

TEST(KeysTest, ParseRoundTrips) {
  for (const auto& [dataset, session] :
       {std::pair<std::string, std::string>{"sessions", "s1"},
        {"a/b", "c/d"},
        {"%2F", "%25/%"},
        {"", ""},
        {std::string("\0\xff", 2), "\x01/"}}) {
    std::string d, s;
    ASSERT_TRUE(ParseSessionKey(SessionKey(dataset, session), &d, &s));
    EXPECT_EQ(d, dataset);
    EXPECT_EQ(s, session);
  }
}

TEST(KeysTest, ParseRejectsForeignKeys) {
  std::string d, s;
  EXPECT_FALSE(ParseSessionKey("m/format_version", &d, &s));
  EXPECT_FALSE(ParseSessionKey("s/no-separator", &d, &s));
  EXPECT_FALSE(ParseSessionKey("s/a/b/c", &d, &s));
  EXPECT_FALSE(ParseSessionKey("s/a%2/b", &d, &s));
  EXPECT_FALSE(ParseSessionKey("s/a/b%", &d, &s));
}

TEST(KeysTest, PrefixesAreDistinctAndFormatKeyIsMeta) {
  const absl::string_view prefixes[] = {
      kMetaPrefix,    kSessionPrefix, kBudgetLedgerPrefix,
      kReleasePrefix, kAuditPrefix,   kDataVersionPrefix};
  for (absl::string_view a : prefixes) {
    int covering = 0;
    for (absl::string_view b : prefixes) covering += absl::StartsWith(a, b);
    EXPECT_EQ(covering, 1) << a;
  }
  EXPECT_TRUE(absl::StartsWith(kFormatVersionKey, kMetaPrefix));
}

}  // namespace
}  // namespace cohortd::keys

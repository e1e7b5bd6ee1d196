#include "server/storage/keys.h"

#include <set>
#include <string>
#include <tuple>
#include <vector>

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

TEST(KeysTest, Format2SessionLayout) {
  EXPECT_EQ(SessionHeaderKey("sessions", "abc"), "s/sessions/abc/");
  EXPECT_EQ(SessionRecordPrefix("sessions", "abc"), "s/sessions/abc/");
  EXPECT_EQ(ContributionKey("sessions", "abc", "cls@1"),
            "s/sessions/abc/cls@1");
  EXPECT_EQ(ContributionKey("d/1", "s/2", "x/y%"), "s/d%2F1/s%2F2/x%2Fy%25");
  // A format-1 parser does not take format-2 keys, nor the reverse, so a
  // half-migrated store is told apart key by key.
  std::string d, s, src;
  EXPECT_FALSE(ParseSessionKey(SessionHeaderKey("a", "b"), &d, &s));
  EXPECT_FALSE(ParseSessionKey(ContributionKey("a", "b", "c"), &d, &s));
  EXPECT_FALSE(ParseSessionRecordKey(SessionKey("a", "b"), &d, &s, &src));
}

TEST(KeysTest, Format2ParseRoundTrips) {
  for (const auto& [dataset, session, source] :
       {std::tuple<std::string, std::string, std::string>{"sessions", "s1",
                                                          "cls@1"},
        {"a/b", "c/d", "e/f"},
        {"%2F", "%25/%", "%"},
        {std::string("\0\xff", 2), "\x01/", "\x7f"}}) {
    std::string d, s, src;
    ASSERT_TRUE(ParseSessionRecordKey(ContributionKey(dataset, session, source),
                                      &d, &s, &src));
    EXPECT_EQ(d, dataset);
    EXPECT_EQ(s, session);
    EXPECT_EQ(src, source);
    ASSERT_TRUE(ParseSessionRecordKey(SessionHeaderKey(dataset, session), &d,
                                      &s, &src));
    EXPECT_EQ(s, session);
    EXPECT_EQ(src, "");
  }
  std::string d, s, src;
  EXPECT_FALSE(ParseSessionRecordKey("s/a/b%/c", &d, &s, &src));
  EXPECT_FALSE(ParseSessionRecordKey("s/a/b", &d, &s, &src));
}

TEST(KeysTest, Format2KeysOfOneSessionAreContiguousHeaderFirst) {
  // Session "x" and session "x-y" ('-' sorts before '/'): every key of "x"
  // lies in the range of its prefix, so "x-y"'s keys never fall between
  // "x"'s header and its contributions.
  std::set<std::string> keys = {
      SessionHeaderKey("d", "x"),        ContributionKey("d", "x", "a"),
      ContributionKey("d", "x", "\x01"), SessionHeaderKey("d", "x-y"),
      ContributionKey("d", "x-y", "a"),  SessionHeaderKey("d", "x/"),
      ContributionKey("d", "x/", "a"),   SessionHeaderKey("d", "x0"),
      ContributionKey("d", "x0", "a")};
  std::vector<std::string> sessions_in_order;
  for (const std::string& key : keys) {
    std::string d, s, src;
    ASSERT_TRUE(ParseSessionRecordKey(key, &d, &s, &src));
    if (src.empty()) {
      sessions_in_order.push_back(s);
    } else {
      // A contribution follows its own session's header.
      ASSERT_FALSE(sessions_in_order.empty());
      EXPECT_EQ(sessions_in_order.back(), s) << key;
    }
  }
  EXPECT_EQ(sessions_in_order.size(), 4u);
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

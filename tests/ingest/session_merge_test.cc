#include "server/ingest/session_merge.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/ingest/ingestor.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::internal::SourceContribution;
using ::cohortd::internal::StoredSession;
using ::cohortd::internal::StoredSessionHeader;
using ::cohortd::testing::IsOk;
using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr int64_t kJan2026 = 1767225600;

StoredSession Record(const std::string& account,
                     std::map<std::string, SourceContribution> sources) {
  StoredSession record;
  record.set_account_pseudonym(account);
  record.set_session_start_unix_seconds(kJan2026);
  for (auto& [source, c] : sources) (*record.mutable_sources())[source] = c;
  return record;
}

SourceContribution Contribution(uint64_t sequence,
                                std::map<std::string, std::string> labels,
                                std::map<std::string, double> measures = {}) {
  SourceContribution c;
  c.set_sequence(sequence);
  for (const auto& [k, v] : labels) (*c.mutable_labels())[k] = v;
  for (const auto& [k, v] : measures) (*c.mutable_measures())[k] = v;
  return c;
}

// A format-1 store: the version key and merged records.
void WriteFormat1(MemStore* store,
                  const std::map<std::string, StoredSession>& sessions) {
  WriteBatch batch;
  batch.Put(keys::kFormatVersionKey, "1");
  for (const auto& [id, record] : sessions) {
    batch.Put(keys::SessionKey("sessions", id), record.SerializeAsString());
  }
  ASSERT_OK(store->Write(batch, true));
}

std::vector<std::string> Keys(MemStore* store, absl::string_view prefix) {
  std::vector<std::string> out;
  EXPECT_OK(store->Scan(prefix, [&](absl::string_view k, absl::string_view) {
    out.emplace_back(k);
    return true;
  }));
  return out;
}

TEST(SessionMergerTest, LaterSequenceWinsPerNameWhateverTheOrder) {
  SessionMerger merger;
  merger.Add("b", Contribution(5, {{"work_mode", "fix"}}, {{"x", 2}}));
  merger.Add("a", Contribution(3, {{"work_mode", "build"}, {"outcome", "ok"}},
                               {{"x", 1}, {"y", 7}}));
  CommittedSession out;
  merger.Finish(&out);
  EXPECT_THAT(out.labels, UnorderedElementsAre(Pair("work_mode", "fix"),
                                               Pair("outcome", "ok")));
  EXPECT_THAT(out.measures,
              UnorderedElementsAre(Pair("x", 2.0), Pair("y", 7.0)));
}

TEST(MigrateSessionStoreTest, RewritesFormat1RecordsIntoHeaderAndSources) {
  MemStore store;
  WriteFormat1(
      &store,
      {{"s/1", Record("acct-1", {{"cls@1", Contribution(4, {{"w", "x"}})},
                                 {"tel", Contribution(2, {}, {{"m", 3}})}})},
       {"s2", Record("acct-2", {{"cls@1", Contribution(1, {{"w", "y"}})}})}});
  EXPECT_THAT(
      CheckSessionFormatCurrent(&store),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("version 1")));

  ASSERT_OK(MigrateSessionStore(&store));
  EXPECT_EQ(store.Get(keys::kFormatVersionKey).value_or(""), "2");
  EXPECT_THAT(CheckSessionFormatCurrent(&store), IsOk());
  EXPECT_THAT(
      Keys(&store, "s/"),
      ::testing::ElementsAre(keys::SessionHeaderKey("sessions", "s/1"),
                             keys::ContributionKey("sessions", "s/1", "cls@1"),
                             keys::ContributionKey("sessions", "s/1", "tel"),
                             keys::SessionHeaderKey("sessions", "s2"),
                             keys::ContributionKey("sessions", "s2", "cls@1")));
  StoredSessionHeader header;
  ASSERT_TRUE(header.ParseFromString(
      *store.Get(keys::SessionHeaderKey("sessions", "s/1"))));
  EXPECT_EQ(header.account_pseudonym(), "acct-1");
  EXPECT_EQ(header.session_start_unix_seconds(), kJan2026);
  EXPECT_EQ(header.source_count(), 2u);
  SourceContribution c;
  ASSERT_TRUE(c.ParseFromString(
      *store.Get(keys::ContributionKey("sessions", "s/1", "cls@1"))));
  EXPECT_EQ(c.sequence(), 4u);  // sequences kept: "later push wins" holds
  EXPECT_EQ(c.labels().at("w"), "x");

  // Idempotent: a second run at the current version changes nothing.
  const auto before = Keys(&store, "");
  ASSERT_OK(MigrateSessionStore(&store));
  EXPECT_EQ(Keys(&store, ""), before);
}

TEST(MigrateSessionStoreTest, FinishesAMigrationInterruptedMidway) {
  MemStore store;
  WriteFormat1(&store, {{"a", Record("acct", {{"src", Contribution(1, {})}})},
                        {"b", Record("acct", {{"src", Contribution(2, {})}})}});
  // As if a crash came after the batch that rewrote "a": that session has
  // the new shape, "b" the old one, and the version is still 1.
  WriteBatch partial;
  StoredSessionHeader header;
  header.set_account_pseudonym("acct");
  header.set_session_start_unix_seconds(kJan2026);
  header.set_source_count(1);
  partial.Delete(keys::SessionKey("sessions", "a"));
  partial.Put(keys::SessionHeaderKey("sessions", "a"),
              header.SerializeAsString());
  partial.Put(keys::ContributionKey("sessions", "a", "src"),
              Contribution(1, {}).SerializeAsString());
  ASSERT_OK(store.Write(partial, true));

  ASSERT_OK(MigrateSessionStore(&store));
  EXPECT_THAT(
      Keys(&store, "s/"),
      ::testing::ElementsAre(keys::SessionHeaderKey("sessions", "a"),
                             keys::ContributionKey("sessions", "a", "src"),
                             keys::SessionHeaderKey("sessions", "b"),
                             keys::ContributionKey("sessions", "b", "src")));
}

TEST(MigrateSessionStoreTest, UnparsableRecordIsDataLossNamingItsKey) {
  MemStore store;
  WriteFormat1(&store, {});
  WriteBatch batch;
  batch.Put(keys::SessionKey("sessions", "bad"), "\xff\xff not a proto");
  ASSERT_OK(store.Write(batch, true));
  EXPECT_THAT(
      MigrateSessionStore(&store),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("s/sessions/bad")));
  EXPECT_EQ(store.Get(keys::kFormatVersionKey).value_or(""), "1");
}

TEST(MigrateSessionStoreTest, IngestorRefusesAnUnmigratedStore) {
  MemStore store;
  WriteFormat1(&store, {});
  Config config = testing::TestConfig();
  auto pseudonymizer = Pseudonymizer::Create(std::string(32, 'k'));
  ASSERT_OK(pseudonymizer);
  auto metrics = NewInMemoryMetrics();
  EXPECT_THAT(
      Ingestor::Create(&config, &store, pseudonymizer->get(), metrics.get(),
                       nullptr),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("migrate")));
  ASSERT_OK(MigrateSessionStore(&store));
  EXPECT_OK(Ingestor::Create(&config, &store, pseudonymizer->get(),
                             metrics.get(), nullptr));
}

}  // namespace
}  // namespace cohortd

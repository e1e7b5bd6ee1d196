// storage: (config.h StorageSpec, issue 10): defaults, the fixed shape,
// and the errors that name the key.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config/config.h"
#include "tests/common/status_matchers.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Yaml(const std::string& storage) {
  const std::string base = R"(
server:
  data_dir: data
  pseudonymization_key_file: key
STORAGE
principals:
  - {name: worker-1, role: ingest, token_sha256: )" +
                           std::string(64, 'a') + R"(}
datasets:
  - name: sessions
    description: test
    dimensions:
      - {name: work_mode, values: [build, fix]}
    measures:
      - {name: prompts, bounds: [0, 200], granularity: 1}
    privacy:
      k: 10
      epsilon_per_query: 1.0
      max_epsilon_per_query: 2.0
      delta_per_query: 1.0e-7
      max_cohorts_per_account: 4
      max_sessions_per_cohort: 8
      budget:
        per_principal: {epsilon: 20, delta: 1.0e-5}
        dataset: {epsilon: 100, delta: 1.0e-4}
)";
  return absl::StrReplaceAll(base, {{"STORAGE", storage}});
}

TEST(StorageConfigTest, RocksDbByDefault) {
  ASSERT_OK_AND_ASSIGN(Config c, ParseConfig(Yaml(""), "t.yaml", "/base"));
  EXPECT_EQ(c.storage.engine, StorageSpec::Engine::kRocksDb);
}

TEST(StorageConfigTest, TheIssuesShape) {
  ASSERT_OK_AND_ASSIGN(Config c, ParseConfig(Yaml(R"(storage:
  engine: clickhouse
  clickhouse:
    url: http://127.0.0.1:8123
    database: cohortd
    cluster: ""
    user: default
    password_file: ""
)"),
                                             "t.yaml", "/base"));
  EXPECT_EQ(c.storage.engine, StorageSpec::Engine::kClickHouse);
  EXPECT_EQ(c.storage.clickhouse.url, "http://127.0.0.1:8123");
  EXPECT_EQ(c.storage.clickhouse.database, "cohortd");
  EXPECT_EQ(c.storage.clickhouse.cluster, "");
  EXPECT_EQ(c.storage.clickhouse.user, "default");
  EXPECT_EQ(c.storage.clickhouse.password_file, "");
  EXPECT_EQ(c.storage.clickhouse.max_outbox_bytes, int64_t{1} << 30);
}

TEST(StorageConfigTest, MaxOutboxBytes) {
  ASSERT_OK_AND_ASSIGN(
      Config c, ParseConfig(Yaml("storage: {clickhouse: {max_outbox_bytes: "
                                 "4096}}"),
                            "t.yaml", ""));
  EXPECT_EQ(c.storage.clickhouse.max_outbox_bytes, 4096);
  for (const char* bad : {"-1", "lots", "2000000000000000"}) {
    EXPECT_THAT(
        ParseConfig(
            Yaml(absl::StrCat("storage: {clickhouse: {max_outbox_bytes: ", bad,
                              "}}")),
            "t.yaml", ""),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 HasSubstr("storage.clickhouse.max_outbox_bytes")))
        << bad;
  }
}

TEST(StorageConfigTest, PasswordFileIsResolvedAgainstTheConfigFolder) {
  ASSERT_OK_AND_ASSIGN(Config c, ParseConfig(Yaml(R"(storage:
  engine: clickhouse
  clickhouse: {url: "http://ch:8123", cluster: two, password_file: pw}
)"),
                                             "t.yaml", "/base"));
  EXPECT_EQ(c.storage.clickhouse.cluster, "two");
  EXPECT_EQ(c.storage.clickhouse.password_file, "/base/pw");
}

TEST(StorageConfigTest, ErrorsNameTheKey) {
  EXPECT_THAT(ParseConfig(Yaml("storage: {engine: mysql}"), "t.yaml", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("storage.engine"),
                             HasSubstr("rocksdb, clickhouse"))));
  EXPECT_THAT(ParseConfig(Yaml("storage: {engine: clickhouse}"), "t.yaml", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("storage.clickhouse")));
  EXPECT_THAT(ParseConfig(Yaml("storage: {clickhouse: {url: 'ch:8123'}}"),
                          "t.yaml", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("storage.clickhouse.url")));
  EXPECT_THAT(ParseConfig(Yaml("storage: {clickhouse: {database: 'a-b'}}"),
                          "t.yaml", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("storage.clickhouse.database")));
  EXPECT_THAT(
      ParseConfig(Yaml("storage: {clickhouse: {port: 1}}"), "t.yaml", ""),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("storage.clickhouse")));
}

}  // namespace
}  // namespace cohortd

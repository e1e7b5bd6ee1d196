#include "tools/cohortctl/token.h"

#include <cstdio>
#include <fstream>
#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kDevTokens[] =
    "# cohortd dev tokens (scripts/dev-secrets); never commit.\n"
    "COHORTD_INGEST_TOKEN=ingest123\n"
    "export COHORTD_ANALYST_TOKEN=\"analyst456\"\n"
    "COHORTD_ADMIN_TOKEN=admin789\n";

EnvLookup FakeEnv(std::map<std::string, std::string> values) {
  return [values](absl::string_view name) -> std::optional<std::string> {
    auto it = values.find(std::string(name));
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(TokenTest, PicksTheRolesKeyFromADevTokensFile) {
  EXPECT_EQ(*TokenFromFileContents(kDevTokens, Role::kIngest), "ingest123");
  EXPECT_EQ(*TokenFromFileContents(kDevTokens, Role::kAnalyst), "analyst456");
  EXPECT_EQ(*TokenFromFileContents(kDevTokens, Role::kAdmin), "admin789");
}

TEST(TokenTest, MissingRoleKeyIsNamed) {
  EXPECT_THAT(TokenFromFileContents("COHORTD_INGEST_TOKEN=x\n", Role::kAdmin),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no COHORTD_ADMIN_TOKEN line")));
}

TEST(TokenTest, ABareTokenIsUsedForAnyRoleEvenWithEqualsSigns) {
  EXPECT_EQ(*TokenFromFileContents("  dG9rZW4=\n", Role::kAdmin), "dG9rZW4=");
}

TEST(TokenTest, RejectsEmptyMultiWordAndMultiLineFiles) {
  EXPECT_THAT(TokenFromFileContents("\n\n", Role::kIngest),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(TokenFromFileContents("two words\n", Role::kIngest),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("printable ASCII")));
  EXPECT_THAT(TokenFromFileContents("a\nb\n", Role::kIngest),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      TokenFromFileContents("COHORTD_INGEST_TOKEN=\n", Role::kIngest),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is empty")));
}

TEST(TokenTest, FileWinsOverEnvironment) {
  const std::string path = ::testing::TempDir() + "/token_test_tokens.env";
  std::ofstream(path) << kDevTokens;
  ASSERT_OK_AND_ASSIGN(
      std::string token,
      ResolveToken(path, Role::kAnalyst, FakeEnv({{"COHORTD_TOKEN", "env"}})));
  EXPECT_EQ(token, "analyst456");
  std::remove(path.c_str());
}

TEST(TokenTest, GenericVariableThenRoleVariable) {
  EXPECT_EQ(*ResolveToken("", Role::kIngest,
                          FakeEnv({{"COHORTD_TOKEN", "generic"},
                                   {"COHORTD_INGEST_TOKEN", "role"}})),
            "generic");
  EXPECT_EQ(*ResolveToken("", Role::kIngest,
                          FakeEnv({{"COHORTD_INGEST_TOKEN", "role"},
                                   {"COHORTD_ADMIN_TOKEN", "admin"}})),
            "role");
  EXPECT_EQ(*ResolveToken("", Role::kIngest,
                          FakeEnv({{"COHORTD_TOKEN", ""},
                                   {"COHORTD_INGEST_TOKEN", "role"}})),
            "role");
}

TEST(TokenTest, NoTokenSaysWhereToPutOne) {
  EXPECT_THAT(
      ResolveToken("", Role::kAdmin, FakeEnv({})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--token-file")));
  EXPECT_THAT(
      ResolveToken("/nonexistent/tokens", Role::kAdmin, FakeEnv({})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot read")));
}

}  // namespace
}  // namespace cohortd::cohortctl

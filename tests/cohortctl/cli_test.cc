// The command line without a server: help, usage errors and token rules,
// all of which must be settled before anything is sent.
#include "tools/cohortctl/cli.h"

#include <map>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cohortctl/run_in_process.h"

namespace cohortd::cohortctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class CliTest : public ::testing::Test {
 protected:
  int Run(std::vector<std::string> args) {
    return RunInProcess(
        args, &in_, &out_, &err_,
        [this](absl::string_view name) -> std::optional<std::string> {
          auto it = env_.find(std::string(name));
          if (it == env_.end()) return std::nullopt;
          return it->second;
        });
  }

  std::map<std::string, std::string> env_;
  std::stringstream in_, out_, err_;
};

TEST_F(CliTest, HelpListsEveryCommandAndTheExitCodes) {
  EXPECT_EQ(Run({"--help"}), kExitOk);
  for (const Command& command : AllCommands()) {
    EXPECT_THAT(out_.str(), HasSubstr("  " + command.name));
  }
  EXPECT_THAT(out_.str(), HasSubstr("exit codes:"));
  EXPECT_EQ(Run({}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("usage: cohortctl"));
}

TEST_F(CliTest, EachCommandHasHelpInThreeSpellings) {
  for (const Command& command : AllCommands()) {
    for (std::vector<std::string> args :
         {std::vector<std::string>{command.name, "--help"},
          {"help", command.name},
          {"--help", command.name}}) {
      EXPECT_EQ(Run(args), kExitOk) << command.name;
      EXPECT_THAT(out_.str(), HasSubstr("usage: cohortctl " + command.name));
    }
  }
  Run({"push", "--help"});
  EXPECT_THAT(out_.str(), HasSubstr("COHORTD_INGEST_TOKEN"));
  Run({"audit", "--help"});
  EXPECT_THAT(out_.str(), HasSubstr("COHORTD_ADMIN_TOKEN"));
  Run({"health", "--help"});
  EXPECT_THAT(out_.str(), HasSubstr("no token is needed"));
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Run({"frobnicate"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("unknown command 'frobnicate'"));
  EXPECT_EQ(Run({"push"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("push takes FILE"));
  EXPECT_EQ(Run({"budget", "extra"}), kExitUsage);
  EXPECT_EQ(Run({"health", "--bogus"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("unknown flag --bogus"));
  EXPECT_EQ(Run({"health", "--tls-cert", "c.pem"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--tls-key"));
}

TEST_F(CliTest, ATokenIsNeverAFlag) {
  EXPECT_EQ(Run({"query", "--token", "secret", "--metric", "sessions"}),
            kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("unknown flag --token"));
  EXPECT_EQ(Run({"query", "--metric", "sessions"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("COHORTD_ANALYST_TOKEN"));
}

TEST_F(CliTest, BadQueriesFailBeforeAnyCall) {
  env_["COHORTD_TOKEN"] = "token";
  // Port 1 is never listened on: a call would fail with exit 1, not 2.
  const std::vector<std::string> base = {"--target", "127.0.0.1:1", "query"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return Run(args);
  };
  EXPECT_EQ(with({}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("at least one --metric"));
  EXPECT_EQ(with({"--metric", "median:prompts"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("unknown metric"));
  EXPECT_EQ(with({"--metric", "sessions", "--format", "xml"}), kExitUsage);
  EXPECT_EQ(with({"--metric", "sessions", "--confidence", "95"}), kExitUsage);
  EXPECT_EQ(with({"--metric", "sessions", "--filter", "outcome"}), kExitUsage);
  EXPECT_EQ(with({"--metric", "sessions", "--interval", "sampling"}),
            kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("noise_and_sampling"));
  EXPECT_EQ(with({"--group-by", "expertise", "--metric", "rate:abandoned=true",
                  "--adjust-for", "expertise"}),
            kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("also in --group-by"));
}

TEST_F(CliTest, SyntaxErrorsComeBeforeTheMissingToken) {
  EXPECT_EQ(Run({"query", "--metric", "median:prompts"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("unknown metric"));
  EXPECT_EQ(Run({"push", "f.jsonl", "--streams", "0"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--streams between 1 and"));
  EXPECT_EQ(Run({"audit", "--limit", "100000"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--limit between 1 and 10000"));
  EXPECT_EQ(Run({"budget", "--format", "yaml"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--format must be text or json"));
}

TEST_F(CliTest, UnreachableServerIsAnRpcErrorWithItsCodeName) {
  env_["COHORTD_TARGET"] = "127.0.0.1:1";
  EXPECT_EQ(Run({"health", "--timeout", "5"}), kExitError);
  EXPECT_THAT(err_.str(), HasSubstr("cohortctl: health: UNAVAILABLE: "));
  EXPECT_THAT(out_.str(), Not(HasSubstr("SERVING")));
}

}  // namespace
}  // namespace cohortd::cohortctl

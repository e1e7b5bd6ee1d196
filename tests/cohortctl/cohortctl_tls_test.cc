// cohortctl's TLS flags against the real cohortd with mutual TLS, using a
// throwaway CA made with the openssl CLI (as tests/integration/
// tls_integration_test.cc does for the server side).
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"
#include "tests/cohortctl/run_in_process.h"
#include "tools/cohortctl/cli.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::MakeTestCertificates;
using ::cohortd::testing::ServerProcess;
using ::testing::HasSubstr;

class CohortctlTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = cohortd::testing::MakeTempDir();
    ASSERT_TRUE(MakeTestCertificates(dir_)) << "openssl failed";
    server_ = std::make_unique<ServerProcess>(
        dir_,
        "  tls:\n    enabled: true\n    cert_file: server.pem\n"
        "    key_file: server.key\n    client_ca_file: ca.pem\n"
        "    require_client_cert: true\n");
    ASSERT_OK(server_->Start());
    std::ofstream(dir_ + "/ingest.token") << server_->tokens().ingest << "\n";
  }

  int Run(std::vector<std::string> args) {
    std::vector<std::string> full = {"--target", server_->address(),
                                     "--timeout", "5"};
    full.insert(full.end(), args.begin(), args.end());
    return RunInProcess(full, &in_, &out_, &err_);
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  std::stringstream in_, out_, err_;
};

TEST_F(CohortctlTlsTest, MutualTlsWithTheClientCertificate) {
  const std::vector<std::string> mtls = {"--tls-ca",   dir_ + "/ca.pem",
                                         "--tls-cert", dir_ + "/client.pem",
                                         "--tls-key",  dir_ + "/client.key"};
  std::vector<std::string> health = mtls;
  health.push_back("health");
  EXPECT_EQ(Run(health), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "SERVING\n");

  std::ofstream(dir_ + "/one.jsonl")
      << R"({"sessionId": "tls-1", "accountId": "a", )"
      << R"("sessionStart": "2026-01-05T09:30:00Z", "source": "telemetry"})"
      << "\n";
  std::vector<std::string> push = mtls;
  for (const std::string& arg :
       {std::string("--token-file"), dir_ + "/ingest.token",
        std::string("push"), dir_ + "/one.jsonl"}) {
    push.push_back(arg);
  }
  EXPECT_EQ(Run(push), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("accepted     1\n"));
}

TEST_F(CohortctlTlsTest, WithoutClientCertificateOrTlsTheCallFails) {
  EXPECT_EQ(Run({"--tls-ca", dir_ + "/ca.pem", "health"}), kExitError);
  EXPECT_THAT(err_.str(), HasSubstr("cohortctl: health: UNAVAILABLE"));
  EXPECT_EQ(Run({"health"}), kExitError);
  EXPECT_THAT(err_.str(), HasSubstr("cohortctl: health: UNAVAILABLE"));
  EXPECT_EQ(Run({"--tls-ca", dir_ + "/missing.pem", "health"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("cannot read --tls-ca"));
}

}  // namespace
}  // namespace cohortd::cohortctl

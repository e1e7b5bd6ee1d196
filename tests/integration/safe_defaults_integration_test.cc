// Issue 9 item 8 on the real binary: the data dir and everything cohortd
// writes are its user's alone; a TLS key that group or other can read, and
// plaintext on a non-loopback address, stop the server at start with an
// error that names the file or key.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

#ifndef COHORTD_BINARY
#error "COHORTD_BINARY must name the cohortd executable"
#endif

namespace cohortd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

struct Exit {
  int exit_code = -1;
  std::string stderr_text;
};

// Runs cohortd with `args` until it exits (it is expected to refuse to
// start, so this never waits on a serving server).
Exit RunCohortd(const std::string& dir, const std::string& args) {
  const std::string err = dir + "/refused.stderr";
  const std::string command =
      absl::StrCat("timeout 30 ", COHORTD_BINARY, " --config ", dir,
                   "/cohortd.yaml ", args, " >/dev/null 2>", err);
  Exit run;
  const int status = std::system(command.c_str());
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  run.stderr_text = text.str();
  return run;
}

TEST(SafeDefaultsIntegrationTest, DataDirIsOwnerOnlyAndEveryFileInIt0600) {
  const std::string dir = MakeTempDir();
  ServerProcess server(dir);
  // A data dir an older install left world-readable is tightened too.
  fs::create_directories(server.data_dir());
  ASSERT_EQ(chmod(server.data_dir().c_str(), 0755), 0);
  ASSERT_OK(server.Start());

  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = 0; i < 20; ++i) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id(absl::StrCat("mode-s", i));
    obs->set_account_id(absl::StrCat("mode-a", i));
    obs->mutable_session_start()->set_seconds(1767225600 + i);
    obs->set_source("telemetry");
    (*obs->mutable_measures())["prompts"] = 2;
  }
  auto stub = cohortd::v1::Ingest::NewStub(server.Channel());
  cohortd::v1::PushResponse response;
  auto context = AuthContext(server.tokens().ingest);
  ASSERT_TRUE(stub->Push(context.get(), request, &response).ok());
  ASSERT_EQ(response.accepted(), 20);
  ASSERT_OK_AND_ASSIGN(int exit_code, server.Stop());
  ASSERT_EQ(exit_code, 0);

  EXPECT_EQ(ModeOf(server.data_dir()), 0700);
  EXPECT_EQ(ModeOf(dir + "/pseudonymization.key"), 0600);
  int files = 0;
  for (const fs::directory_entry& entry :
       fs::recursive_directory_iterator(server.data_dir())) {
    const std::string path = entry.path().string();
    if (entry.is_symlink()) continue;
    if (entry.is_directory()) {
      EXPECT_EQ(ModeOf(path) & 077, 0)
          << absl::StrFormat("%s has mode %04o", path, ModeOf(path));
      continue;
    }
    ++files;
    EXPECT_EQ(ModeOf(path) & 077, 0)
        << absl::StrFormat("%s has mode %04o", path, ModeOf(path));
  }
  EXPECT_GT(files, 3) << "the store wrote almost nothing: nothing was tested";
}

TEST(SafeDefaultsIntegrationTest, RefusesATlsKeyThatGroupOrOtherCanRead) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(MakeTestCertificates(dir)) << "openssl failed";
  ServerProcess server(dir,
                       "  tls:\n    enabled: true\n    cert_file: server.pem\n"
                       "    key_file: server.key\n");
  const std::string key = dir + "/server.key";
  ASSERT_EQ(chmod(key.c_str(), 0640), 0);
  EXPECT_THAT(server.Start(),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("tls.key_file"), HasSubstr(key),
                             HasSubstr("mode 0640"))));
  ASSERT_EQ(chmod(key.c_str(), 0604), 0);
  EXPECT_THAT(server.Start(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("mode 0604")));
  // The same key, owner-only: the server starts (positive control).
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  ASSERT_OK(server.Start());
  ASSERT_OK_AND_ASSIGN(int exit_code, server.Stop());
  EXPECT_EQ(exit_code, 0);
}

TEST(SafeDefaultsIntegrationTest, RefusesPlaintextOnANonLoopbackAddress) {
  const std::string dir = MakeTempDir();
  ServerProcess server(dir);  // writes dir/cohortd.yaml: TLS off

  const Exit grpc = RunCohortd(dir, "--listen 0.0.0.0:0");
  EXPECT_EQ(grpc.exit_code, 2);
  EXPECT_THAT(grpc.stderr_text,
              AllOf(HasSubstr("server.listen: 0.0.0.0:0"),
                    HasSubstr("server.allow_plaintext: true")));

  const Exit operator_metrics =
      RunCohortd(dir, "--operator-metrics-listen 0.0.0.0:0");
  EXPECT_EQ(operator_metrics.exit_code, 2);
  EXPECT_THAT(operator_metrics.stderr_text,
              AllOf(HasSubstr("server.operator_metrics_listen: 0.0.0.0:0"),
                    HasSubstr("allow_plaintext")));
  // Nothing was created before the refusal.
  EXPECT_FALSE(fs::exists(server.data_dir()));
}

}  // namespace
}  // namespace cohortd::testing

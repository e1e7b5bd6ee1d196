// A whole cohortd server (in-process, so the store can run on the
// fault-injecting file system) through a full disk: pushes are refused
// with UNAVAILABLE and a clear message, health says NOT_SERVING, and once
// space is back both recover without a restart; nothing acknowledged is
// lost. Before, every push kept failing until a restart and health said
// SERVING throughout.
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/config/config.h"
#include "server/metrics/metrics.h"
#include "server/service/server.h"
#include "server/storage/fault_file_system.h"
#include "tests/common/status_matchers.h"
#include "tests/fault/fault_support.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

class DiskFullFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    // Only for the config it writes; the server runs in this process.
    ServerProcess config_writer(dir_);
    ASSERT_OK_AND_ASSIGN(Config config, LoadConfigFile(dir_ + "/cohortd.yaml"));
    data_dir_ = config.data_dir;
    metrics_ = NewInMemoryMetrics();
    injector_ = std::make_shared<FaultInjector>();
    RocksDbStoreOptions options;
    options.file_system = NewFaultInjectingFileSystem(injector_);
    options.resume_interval = absl::Milliseconds(100);
    ASSERT_OK_AND_ASSIGN(server_,
                         CohortdServer::Start(std::move(config), metrics_.get(),
                                              metrics_.get(), options));
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    ingest_ = cohortd::v1::Ingest::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  grpc::Status Push(int first, int n) {
    cohortd::v1::PushResponse response;
    auto context = AuthContext(ServerTokens().ingest);
    grpc::Status status =
        ingest_->Push(context.get(), SessionBatch("s", first, n), &response);
    if (status.ok() && response.accepted() != n) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("accepted ", response.accepted()));
    }
    if (status.ok()) {
      for (int i = first; i < first + n; ++i) {
        acknowledged_.insert(absl::StrCat("s-", i));
      }
    }
    return status;
  }

  HealthCheckResponse::ServingStatus Health() {
    grpc::health::v1::HealthCheckRequest request;
    HealthCheckResponse response;
    auto context = AuthContext("");
    if (!health_->Check(context.get(), request, &response).ok()) {
      return HealthCheckResponse::UNKNOWN;
    }
    return response.status();
  }

  // Polls health until it is `want` or 30 s have passed.
  bool WaitForHealth(HealthCheckResponse::ServingStatus want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (Health() == want) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  std::string dir_;
  std::string data_dir_;
  std::unique_ptr<InMemoryMetrics> metrics_;
  std::shared_ptr<FaultInjector> injector_;
  std::unique_ptr<CohortdServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> ingest_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::set<std::string> acknowledged_;
};

TEST_F(DiskFullFaultTest, RefusesWhileFullRecoversWithoutRestart) {
  ASSERT_TRUE(Push(0, 500).ok());
  EXPECT_EQ(Health(), HealthCheckResponse::SERVING);

  injector_->SetDiskFull(true);
  grpc::Status refused = Push(500, 500);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("out of space"));
  EXPECT_TRUE(WaitForHealth(HealthCheckResponse::NOT_SERVING));
  // Still refused, and still NOT_SERVING, while the disk stays full.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Push(1000, 10).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Health(), HealthCheckResponse::NOT_SERVING);

  injector_->SetDiskFull(false);
  ASSERT_TRUE(WaitForHealth(HealthCheckResponse::SERVING));
  grpc::Status again = Push(500, 500);
  ASSERT_TRUE(again.ok()) << again.error_message();
  ASSERT_TRUE(Push(1000, 500).ok());

  server_.reset();  // shuts down and closes the store
  ASSERT_OK_AND_ASSIGN(std::set<std::string> stored,
                       StoredSessionIds(data_dir_));
  for (const std::string& id : acknowledged_) {
    ASSERT_TRUE(stored.count(id)) << id << " was acknowledged, then lost";
  }
  EXPECT_EQ(acknowledged_.size(), 1500u);
}

}  // namespace
}  // namespace cohortd::testing

#include "server/service/call_tracker.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"

namespace cohortd {
namespace {

using ::testing::HasSubstr;

// An Ingest service whose Push accepts one observation, after waiting for
// `release_` when `hold_` is set (a call kept in progress).
class FakeIngest final : public cohortd::v1::Ingest::Service {
 public:
  grpc::Status Push(grpc::ServerContext* context,
                    const cohortd::v1::PushRequest* request,
                    cohortd::v1::PushResponse* response) override {
    if (hold_) {
      entered_.Notify();
      release_.WaitForNotification();
    }
    response->set_accepted(1);
    return grpc::Status::OK;
  }
  bool hold_ = false;
  absl::Notification entered_;
  absl::Notification release_;
};

class CallTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(tracker_.NewInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override {
    if (!service_.release_.HasBeenNotified()) service_.release_.Notify();
    server_->Shutdown(std::chrono::system_clock::now());
  }

  grpc::Status Push() {
    auto stub = cohortd::v1::Ingest::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    cohortd::v1::PushRequest request;
    cohortd::v1::PushResponse response;
    return stub->Push(&context, request, &response);
  }

  FakeIngest service_;
  CallTracker tracker_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(CallTrackerTest, DrainingAnswersNewCallsUnavailableButNotHealth) {
  ASSERT_TRUE(Push().ok());
  tracker_.BeginDraining();
  const grpc::Status refused = Push();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("shutting down"));
  EXPECT_EQ(tracker_.calls_refused(), 1);

  // Health checks still get their answer (a load balancer must see
  // NOT_SERVING, not an error).
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_TRUE(health->Check(&context, request, &response).ok());
  EXPECT_EQ(tracker_.calls_refused(), 1);
}

TEST_F(CallTrackerTest, QuietWaitsForCallsInProgressAndNewArrivals) {
  service_.hold_ = true;
  grpc::Status held;
  std::thread caller([&] { held = Push(); });
  service_.entered_.WaitForNotification();
  tracker_.BeginDraining();
  // A call in progress: not quiet before the deadline.
  EXPECT_FALSE(tracker_.AwaitQuiet(absl::Milliseconds(10),
                                   absl::Now() + absl::Milliseconds(100)));
  service_.release_.Notify();
  caller.join();
  // The call in progress finished normally, though it ended while
  // draining.
  EXPECT_TRUE(held.ok()) << held.error_message();
  EXPECT_TRUE(tracker_.AwaitQuiet(absl::Milliseconds(10),
                                  absl::Now() + absl::Seconds(30)));
  EXPECT_EQ(tracker_.calls_in_progress(), 0);
}

TEST_F(CallTrackerTest, QuietPeriodStartsAtTheLastArrival) {
  tracker_.BeginDraining();
  EXPECT_EQ(Push().error_code(), grpc::StatusCode::UNAVAILABLE);
  // The refused call arrived just now: a quiet period far longer than the
  // deadline cannot have passed yet.
  EXPECT_FALSE(tracker_.AwaitQuiet(absl::Hours(1),
                                   absl::Now() + absl::Milliseconds(50)));
  EXPECT_TRUE(tracker_.AwaitQuiet(absl::ZeroDuration(),
                                  absl::Now() + absl::Seconds(30)));
}

}  // namespace
}  // namespace cohortd

// Abusive and malformed clients against the real cohortd binary (issue 13,
// items 4 and 5): streams beyond the caps, rate limits, requests beyond
// the receive size, invalid UTF-8, responses that would not fit a default
// client, and unbounded names echoed in errors. The server must refuse
// precisely (RESOURCE_EXHAUSTED with a retry hint, or one Rejection naming
// the field) and stay responsive to well-behaved clients.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/fault/fault_client.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Small caps, so the test reaches them quickly; see config/cohortd.yaml.
constexpr char kLimitsYaml[] =
    "  limits:\n"
    "    observation_bytes: 256\n"
    "    max_threads: 64\n"
    "    max_streams: 8\n"
    "    max_streams_per_principal: 4\n"
    "    ingest_rate: 100\n"
    "    ingest_burst: 5000\n"
    "    query_rate: 0.01\n"
    "    query_burst: 3\n";

class AbuseFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(MakeTempDir(), kLimitsYaml);
    ASSERT_OK(server_->Start());
    channel_ = server_->Channel();
    ingest_ = cohortd::v1::Ingest::NewStub(channel_);
  }

  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> ingest_;
};

TEST_F(AbuseFaultTest, InvalidUtf8IsOneRejectionNamingTheField) {
  cohortd::internal::WirePushRequest request;
  request.set_dataset("sessions");
  for (int i = 0; i < 5; ++i) *request.add_observations() = WireObservation(i);
  request.mutable_observations(1)->set_session_id("bad-\xFF-id");
  request.mutable_observations(3)->mutable_labels(0)->set_value("fi\xC3");
  request.mutable_observations(4)->set_source("tele\xED\xA0\x80metry");

  cohortd::v1::PushResponse response;
  auto context = AuthContext(server_->tokens().ingest);
  const grpc::Status status =
      PushWire(channel_.get(), context.get(), request, &response);
  // Before: INTERNAL '' for the whole batch (protobuf's parse-time check).
  ASSERT_TRUE(status.ok()) << status.error_code() << " "
                           << status.error_message();
  EXPECT_EQ(response.accepted(), 2);
  ASSERT_EQ(response.rejected_size(), 3);
  EXPECT_EQ(response.rejected(0).index(), 1);
  EXPECT_EQ(response.rejected(0).field(), "session_id");
  EXPECT_EQ(response.rejected(0).reason(), "is not valid UTF-8 at byte 4");
  EXPECT_EQ(response.rejected(1).index(), 3);
  EXPECT_EQ(response.rejected(1).field(), "labels.work_mode");
  EXPECT_EQ(response.rejected(1).reason(),
            "value is not valid UTF-8 at byte 2");
  EXPECT_EQ(response.rejected(2).index(), 4);
  EXPECT_EQ(response.rejected(2).field(), "source");

  // The good ones were stored: pushing them again changes nothing.
  cohortd::v1::PushRequest again;
  again.set_dataset("sessions");
  *again.add_observations() = ValidBatch(1, 0).observations(0);
  *again.add_observations() = ValidBatch(1, 2).observations(0);
  auto context2 = AuthContext(server_->tokens().ingest);
  ASSERT_TRUE(ingest_->Push(context2.get(), again, &response).ok());
  EXPECT_EQ(response.unchanged(), 2);
  EXPECT_EQ(response.accepted(), 0);
}

TEST_F(AbuseFaultTest, ResponseNamesAllowedValuesOnceAndFitsADefaultClient) {
  // A legal batch whose every observation has a bad closed-domain value
  // with a long echo, against occupation's 23 allowed values.
  cohortd::v1::PushRequest request = ValidBatch(5000);
  for (auto& obs : *request.mutable_observations()) {
    (*obs.mutable_labels())["occupation"] = std::string(70, 'q');
  }
  cohortd::v1::PushResponse response;
  auto context = AuthContext(server_->tokens().ingest);
  const grpc::Status status = ingest_->Push(context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.rejected_size() + response.rejected_omitted(), 5000);
  EXPECT_LT(response.ByteSizeLong(), size_t{4} << 20);
  EXPECT_THAT(response.rejected(0).reason(), HasSubstr("management"));
  EXPECT_THAT(response.rejected(0).reason(),
              HasSubstr(std::string(64, 'q') + "..."));
  EXPECT_THAT(response.rejected(0).reason(),
              Not(HasSubstr(std::string(65, 'q'))));
  for (int i = 1; i < response.rejected_size(); ++i) {
    ASSERT_THAT(response.rejected(i).reason(), Not(HasSubstr("management")))
        << "index " << i;
    ASSERT_THAT(response.rejected(i).reason(), HasSubstr("see index 0"));
  }
}

TEST_F(AbuseFaultTest, UnknownDatasetNameIsEchoedTruncated) {
  cohortd::v1::PushRequest request = ValidBatch(1);
  request.set_dataset(std::string(100000, 'x'));
  cohortd::v1::PushResponse response;
  auto context = AuthContext(server_->tokens().ingest);
  const grpc::Status status = ingest_->Push(context.get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              StartsWith("dataset: unknown dataset '" + std::string(64, 'x') +
                         "...'; datasets: sessions"));
  EXPECT_LT(status.error_message().size(), 200u);
}

TEST_F(AbuseFaultTest, RequestBeyondTheReceiveSizeIsRefusedBeforeReading) {
  // max_batch_size 5000 * 256 bytes + 64 KiB = 1.3 MB; this is 3 MB.
  cohortd::v1::PushRequest request = ValidBatch(1000);
  for (auto& obs : *request.mutable_observations()) {
    obs.set_source(std::string(3000, 's'));
  }
  cohortd::v1::PushResponse response;
  auto context = AuthContext(server_->tokens().ingest);
  const grpc::Status status = ingest_->Push(context.get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  // The server is fine afterwards.
  auto context2 = AuthContext(server_->tokens().ingest);
  EXPECT_TRUE(ingest_->Push(context2.get(), ValidBatch(3), &response).ok());
}

TEST_F(AbuseFaultTest, StreamsBeyondThePrincipalCapAreRefused) {
  OpenStreams streams;
  int served = 0, refused = 0;
  for (int i = 0; i < 40; ++i) {
    grpc::Status status;
    if (streams.TryOpen(ingest_.get(), AuthContext(server_->tokens().ingest),
                        ValidBatch(1, i), &status)) {
      ++served;  // kept open
      continue;
    }
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("retry after"));
    ++refused;
  }
  // Before: no cap, every stream got a thread of its own.
  EXPECT_EQ(served, 4);
  EXPECT_EQ(refused, 36);

  // Everyone else is still served: a query, and health.
  auto query = cohortd::v1::Query::NewStub(channel_);
  cohortd::v1::DescribeDatasetRequest describe;
  describe.set_dataset("sessions");
  cohortd::v1::DatasetDescription description;
  auto context = AuthContext(server_->tokens().analyst);
  EXPECT_TRUE(
      query->DescribeDataset(context.get(), describe, &description).ok());

  // Closing the streams frees the slots.
  EXPECT_TRUE(streams.CloseAll().ok());
  cohortd::v1::PushResponse response;
  auto context2 = AuthContext(server_->tokens().ingest);
  EXPECT_TRUE(ingest_->Push(context2.get(), ValidBatch(1), &response).ok());
}

TEST_F(AbuseFaultTest, RateLimitsAnswerResourceExhaustedWithARetryHint) {
  // The ingest bucket holds 5000 observations and refills 100/s.
  cohortd::v1::PushResponse response;
  auto context = AuthContext(server_->tokens().ingest);
  ASSERT_TRUE(ingest_->Push(context.get(), ValidBatch(5000), &response).ok());
  auto context2 = AuthContext(server_->tokens().ingest);
  const grpc::Status status =
      ingest_->Push(context2.get(), ValidBatch(5000, 5000), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("ingest rate limit"));
  EXPECT_THAT(status.error_message(), HasSubstr("retry after"));
  const auto& trailers = context2->GetServerTrailingMetadata();
  auto it = trailers.find("retry-after-ms");
  ASSERT_NE(it, trailers.end());
  int64_t retry_ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::string_view(it->second.data(), it->second.size()), &retry_ms));
  // About 5000 / 100 s, less what refilled since the first push.
  EXPECT_GT(retry_ms, 40000);
  EXPECT_LE(retry_ms, 50000);

  // Queries: a burst of 3, then one per 100 s.
  auto query = cohortd::v1::Query::NewStub(channel_);
  cohortd::v1::DescribeDatasetRequest describe;
  describe.set_dataset("sessions");
  cohortd::v1::DatasetDescription description;
  for (int i = 0; i < 3; ++i) {
    auto c = AuthContext(server_->tokens().analyst);
    EXPECT_TRUE(query->DescribeDataset(c.get(), describe, &description).ok());
  }
  auto c = AuthContext(server_->tokens().analyst);
  const grpc::Status refused =
      query->DescribeDataset(c.get(), describe, &description);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("query rate limit"));
  // Another principal's bucket is its own.
  auto admin = AuthContext(server_->tokens().admin);
  EXPECT_TRUE(query->DescribeDataset(admin.get(), describe, &description).ok());
}

}  // namespace
}  // namespace cohortd::testing

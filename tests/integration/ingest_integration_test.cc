// The ingest path end to end: the real cohortd binary, a real gRPC client,
// restarts and kill -9.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohortd/internal/storage.pb.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "gtest/gtest.h"
#include "server/storage/keys.h"
#include "server/storage/rocksdb_store.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr int64_t kJan2026 = 1767225600;

cohortd::v1::PushRequest Batch(int n, int bad_every, int offset = 0) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = offset; i < offset + n; ++i) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id(absl::StrCat("session-", i));
    obs->set_account_id(absl::StrCat("account-", i % 331));
    obs->mutable_session_start()->set_seconds(kJan2026 + i * 60);
    obs->set_source("work_mode_classifier@3");
    (*obs->mutable_labels())["work_mode"] =
        bad_every > 0 && i % bad_every == bad_every - 1 ? "juggling" : "fix";
    (*obs->mutable_measures())["actions_per_prompt"] = i % 50;
  }
  return request;
}

// Counts the session records of dataset `sessions` in a stopped server's
// store, and checks no raw account id was stored.
int CountStoredSessions(const std::string& data_dir) {
  auto store = OpenRocksDbStore(data_dir, RocksDbStoreOptions());
  EXPECT_OK(store);
  if (!store.ok()) return -1;
  int count = 0;
  std::string dataset, session, source;
  EXPECT_OK((*store)->Scan(keys::SessionPrefix("sessions"),
                           [&](absl::string_view key, absl::string_view value) {
                             EXPECT_EQ(value.find("account-"),
                                       absl::string_view::npos);
                             EXPECT_TRUE(keys::ParseSessionRecordKey(
                                 key, &dataset, &session, &source));
                             if (source.empty()) ++count;  // a header
                             return true;
                           }));
  return count;
}

class IngestIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    server_ = std::make_unique<ServerProcess>(dir_);
    ASSERT_OK(server_->Start());
    stub_ = cohortd::v1::Ingest::NewStub(server_->Channel());
  }

  grpc::Status Push(const cohortd::v1::PushRequest& request,
                    cohortd::v1::PushResponse* response,
                    const std::string& token) {
    auto context = AuthContext(token);
    return stub_->Push(context.get(), request, response);
  }

  void Restart() {
    ASSERT_OK(server_->Start());
    stub_ = cohortd::v1::Ingest::NewStub(server_->Channel());
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> stub_;
};

TEST_F(IngestIntegrationTest, HealthAnswersWithoutToken) {
  auto health = grpc::health::v1::Health::NewStub(server_->Channel());
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  auto context = AuthContext("");
  ASSERT_TRUE(health->Check(context.get(), request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(IngestIntegrationTest, ThousandWithTenBadThenRepeatSurvivesRestart) {
  const auto request = Batch(1000, /*bad_every=*/100);
  cohortd::v1::PushResponse response;
  ASSERT_TRUE(Push(request, &response, server_->tokens().ingest).ok());
  EXPECT_EQ(response.accepted(), 990);
  ASSERT_THAT(response.rejected(), SizeIs(10));
  EXPECT_EQ(response.rejected(0).index(), 99);
  EXPECT_EQ(response.rejected(0).field(), "labels.work_mode");
  EXPECT_THAT(response.rejected(0).reason(), HasSubstr("'juggling'"));

  ASSERT_TRUE(Push(request, &response, server_->tokens().ingest).ok());
  EXPECT_EQ(response.accepted(), 0);
  EXPECT_EQ(response.unchanged(), 990);

  ASSERT_OK_AND_ASSIGN(int exit_code, server_->Stop());
  EXPECT_EQ(exit_code, 0);
  EXPECT_EQ(CountStoredSessions(server_->data_dir()), 990);

  Restart();
  ASSERT_TRUE(Push(request, &response, server_->tokens().ingest).ok());
  EXPECT_EQ(response.unchanged(), 990);
}

TEST_F(IngestIntegrationTest, KillNineLosesNothingAcknowledged) {
  int acknowledged = 0;
  for (int round = 0; round < 5; ++round) {
    cohortd::v1::PushResponse response;
    ASSERT_TRUE(
        Push(Batch(400, 0, round * 400), &response, server_->tokens().ingest)
            .ok());
    acknowledged += response.accepted();
  }
  ASSERT_EQ(acknowledged, 2000);
  server_->Kill();
  EXPECT_EQ(CountStoredSessions(server_->data_dir()), 2000);
  Restart();
  for (int round = 0; round < 5; ++round) {
    cohortd::v1::PushResponse response;
    ASSERT_TRUE(
        Push(Batch(400, 0, round * 400), &response, server_->tokens().ingest)
            .ok());
    EXPECT_EQ(response.unchanged(), 400);
  }
}

TEST_F(IngestIntegrationTest, TokensAndRolesAreChecked) {
  const auto request = Batch(3, 0);
  cohortd::v1::PushResponse response;
  EXPECT_EQ(Push(request, &response, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Push(request, &response, "not-a-token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status analyst =
      Push(request, &response, server_->tokens().analyst);
  EXPECT_EQ(analyst.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(analyst.error_message(), HasSubstr("needs role ingest"));
}

TEST_F(IngestIntegrationTest, ConflictsAndBadRequestsArePrecise) {
  cohortd::v1::PushResponse response;
  ASSERT_TRUE(Push(Batch(2, 0), &response, server_->tokens().ingest).ok());

  auto conflicting = Batch(2, 0);
  conflicting.mutable_observations(1)->set_account_id("someone-else");
  ASSERT_TRUE(Push(conflicting, &response, server_->tokens().ingest).ok());
  EXPECT_EQ(response.unchanged(), 1);
  ASSERT_THAT(response.rejected(), SizeIs(1));
  EXPECT_EQ(response.rejected(0).index(), 1);
  EXPECT_EQ(response.rejected(0).field(), "account_id");

  auto unknown = Batch(1, 0);
  unknown.set_dataset("nope");
  const grpc::Status s = Push(unknown, &response, server_->tokens().ingest);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown dataset 'nope'"));

  const grpc::Status big =
      Push(Batch(5001, 0), &response, server_->tokens().ingest);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(big.error_message(), HasSubstr("maximum of 5000"));
}

TEST_F(IngestIntegrationTest, PushStreamAnswersEachRequestInOrder) {
  auto context = AuthContext(server_->tokens().ingest);
  auto stream = stub_->PushStream(context.get());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(stream->Write(Batch(50, 10, i * 50)));
    cohortd::v1::PushResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.accepted(), 45);
    EXPECT_THAT(response.rejected(), SizeIs(5));
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// The server reads PushStream requests as bytes (parsed on an arena):
// bytes that are not a PushRequest end the stream with INVALID_ARGUMENT,
// after the valid requests before them were answered.
TEST_F(IngestIntegrationTest, PushStreamRefusesBytesThatAreNotARequest) {
  auto context = AuthContext(server_->tokens().ingest);
  // One channel: a method is registered with the channel it is used on.
  const std::shared_ptr<grpc::Channel> channel = server_->Channel();
  const grpc::internal::RpcMethod method(
      "/cohortd.v1.Ingest/PushStream",
      grpc::internal::RpcMethod::BIDI_STREAMING, channel);
  std::unique_ptr<
      grpc::ClientReaderWriter<grpc::ByteBuffer, cohortd::v1::PushResponse>>
      stream(grpc::internal::ClientReaderWriterFactory<
             grpc::ByteBuffer, cohortd::v1::PushResponse>::Create(channel.get(),
                                                                  method,
                                                                  context
                                                                      .get()));
  grpc::Slice valid(Batch(10, 0).SerializeAsString());
  ASSERT_TRUE(stream->Write(grpc::ByteBuffer(&valid, 1)));
  cohortd::v1::PushResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.accepted(), 10);
  // Field 2 (observations), length-delimited, claiming 100 bytes of 3.
  grpc::Slice garbage(
      std::string("\x12\x64"
                  "abc"));
  ASSERT_TRUE(stream->Write(grpc::ByteBuffer(&garbage, 1)));
  EXPECT_FALSE(stream->Read(&response));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("not a cohortd.v1.PushRequest"));
}

// Unary Push reads bytes as PushStream does: malformed bytes are
// INVALID_ARGUMENT naming where (protobuf's parse in gRPC's handler said
// INTERNAL), and a request arriving in several slices (here one per
// observation-sized piece) is read whole.
TEST_F(IngestIntegrationTest, UnaryPushReadsBytesAsPushStreamDoes) {
  const std::shared_ptr<grpc::Channel> channel = server_->Channel();
  const grpc::internal::RpcMethod method("/cohortd.v1.Ingest/Push",
                                         grpc::internal::RpcMethod::NORMAL_RPC,
                                         channel);
  auto push = [&](const grpc::ByteBuffer& request,
                  cohortd::v1::PushResponse* response) {
    auto context = AuthContext(server_->tokens().ingest);
    return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer,
                                             cohortd::v1::PushResponse>(
        channel.get(), method, context.get(), request, response);
  };
  const std::string bytes = Batch(10, 0).SerializeAsString();
  std::vector<grpc::Slice> pieces;
  for (size_t at = 0; at < bytes.size(); at += 37) {
    pieces.emplace_back(bytes.substr(at, 37));
  }
  cohortd::v1::PushResponse response;
  grpc::Status status =
      push(grpc::ByteBuffer(pieces.data(), pieces.size()), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.accepted(), 10);

  // Field 2 (observations), length-delimited, claiming 100 bytes of 3.
  grpc::Slice garbage(
      std::string("\x12\x64"
                  "abc"));
  status = push(grpc::ByteBuffer(&garbage, 1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("not a cohortd.v1.PushRequest (the bytes do not "
                        "parse: observation 0: length 100 runs past the end at "
                        "byte 1)"));
}

}  // namespace
}  // namespace cohortd::testing

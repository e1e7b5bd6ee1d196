// Issue 13 defects that had only unit tests, against the real cohortd
// binary (the "Issue 13: each defect and its test" table in
// docs/storage.md): one client adding many sources to one session (each
// push used to rewrite the whole session record), the caps on sources per
// session and on open-domain values, the total stream cap across
// principals, the connection age limit, and the limits on the operator
// metrics endpoint. Every assertion is structural (bytes the WAL grew by,
// status codes, counts, metric values); none is a time.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/crypto/pseudonymizer.h"
#include "tests/common/exposition.h"
#include "tests/common/status_matchers.h"
#include "tests/fault/fault_client.h"
#include "tests/integration/server_process.h"
#include "tests/storage/corrupt_files.h"

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;

// Bytes in the store's WAL files. Every acknowledged push is a synced WAL
// append, so the growth across one push is what that push wrote.
uint64_t WalBytes(const std::string& data_dir) {
  uint64_t total = 0;
  for (const std::string& wal : FilesWithSuffix(data_dir, ".log")) {
    total += std::filesystem::file_size(wal);
  }
  return total;
}

// One observation of session `session`, from `source`.
cohortd::v1::Observation SourceObservation(const std::string& session,
                                           const std::string& source) {
  cohortd::v1::Observation obs = ValidBatch(1).observations(0);
  obs.set_session_id(session);
  obs.set_account_id("many-sources-account");
  obs.set_source(source);
  return obs;
}

class IngestLimitsFaultTest : public ::testing::Test {
 protected:
  // Starts cohortd with `extra_yaml` appended to its `server:` block (an
  // unindented line there starts a top-level block, e.g. `ingest:`).
  void Start(const std::string& extra_yaml) {
    dir_ = MakeTempDir();
    server_ = std::make_unique<ServerProcess>(dir_, extra_yaml);
    ASSERT_OK(server_->Start());
    channel_ = server_->Channel();
    ingest_ = cohortd::v1::Ingest::NewStub(channel_);
  }

  cohortd::v1::PushResponse MustPush(const cohortd::v1::PushRequest& request) {
    cohortd::v1::PushResponse response;
    auto context = AuthContext(server_->tokens().ingest);
    const grpc::Status status =
        ingest_->Push(context.get(), request, &response);
    EXPECT_TRUE(status.ok())
        << status.error_code() << " " << status.error_message();
    return response;
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> ingest_;
};

// Before: every push to a session rewrote its whole record (300,000
// sources: 1.5 s per push, and every other client's push waited behind
// it on the one committer). Now a push writes its own contribution: one
// new source on a session holding 4,000 costs the WAL what one new source
// on a fresh session does.
TEST_F(IngestLimitsFaultTest, PushToABusySessionWritesOnlyItsContribution) {
  Start("ingest:\n  max_sources_per_session: 10000\n");
  constexpr int kSources = 4000;
  for (int first = 0; first < kSources; first += 1000) {
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    for (int i = first; i < first + 1000; ++i) {
      *request.add_observations() =
          SourceObservation("busy", absl::StrCat("classifier-", i));
    }
    ASSERT_EQ(MustPush(request).accepted(), 1000);
  }

  auto one = [](const std::string& session, const std::string& source) {
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    *request.add_observations() = SourceObservation(session, source);
    return request;
  };
  // A fresh session, then a new source of the busy one, five times over.
  // The server's own writes (a seal, the publisher) can land between two
  // readings and a flush can switch to a new WAL, so a round only counts
  // when both differences are positive, and the smallest of each is
  // compared: a background write only ever adds bytes.
  int64_t fresh = INT64_MAX;
  int64_t busy = INT64_MAX;
  for (int round = 0; round < 5; ++round) {
    const int64_t before_fresh = WalBytes(server_->data_dir());
    ASSERT_EQ(
        MustPush(one(absl::StrCat("fresh-", round), "classifier-0")).accepted(),
        1);
    const int64_t fresh_round = WalBytes(server_->data_dir()) - before_fresh;
    const int64_t before_busy = WalBytes(server_->data_dir());
    ASSERT_EQ(MustPush(one("busy", absl::StrCat("late-", round))).accepted(),
              1);
    const int64_t busy_round = WalBytes(server_->data_dir()) - before_busy;
    std::printf(
        "WAL bytes of one new source: fresh session %lld, session of %d "
        "sources %lld\n",
        static_cast<long long>(fresh_round), kSources + round,
        static_cast<long long>(busy_round));
    if (fresh_round <= 0 || busy_round <= 0) continue;  // a WAL switch
    fresh = std::min(fresh, fresh_round);
    busy = std::min(busy, busy_round);
  }
  ASSERT_NE(fresh, INT64_MAX) << "no round without a WAL switch";
  // The whole record would be over kSources x 14 bytes (the source names
  // alone): 56 KB. The counters and the header differ by a few bytes
  // between the two.
  EXPECT_LE(busy, fresh + 64);
  EXPECT_LT(busy, 1024);

  // Another client's push is served and stored alongside.
  EXPECT_EQ(MustPush(ValidBatch(10)).accepted(), 10);
}

TEST_F(IngestLimitsFaultTest, SourceCapRejectsNamingFieldAndLimit) {
  Start("");  // the shipped default: 64 sources per session
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = 0; i < 70; ++i) {
    *request.add_observations() =
        SourceObservation("capped", absl::StrCat("classifier-", i));
  }
  *request.add_observations() = ValidBatch(1).observations(0);
  const cohortd::v1::PushResponse response = MustPush(request);
  EXPECT_EQ(response.accepted(), 65);
  ASSERT_EQ(response.rejected_size() + response.rejected_omitted(), 6);
  ASSERT_GE(response.rejected_size(), 1);
  EXPECT_EQ(response.rejected(0).index(), 64);
  EXPECT_EQ(response.rejected(0).field(), "source");
  EXPECT_THAT(response.rejected(0).reason(),
              HasSubstr("ingest.max_sources_per_session = 64"));
  // A source the session has may still change its contribution.
  cohortd::v1::PushRequest update;
  update.set_dataset("sessions");
  cohortd::v1::Observation obs = SourceObservation("capped", "classifier-3");
  (*obs.mutable_labels())["work_mode"] = "test";
  *update.add_observations() = obs;
  EXPECT_EQ(MustPush(update).accepted(), 1);
}

TEST_F(IngestLimitsFaultTest, OpenDomainCapRejectsNewValuesNamingTheLimit) {
  Start("ingest:\n  max_open_domain_values: 5\n");
  cohortd::v1::PushRequest request = ValidBatch(8);
  for (int i = 0; i < 8; ++i) {
    (*request.mutable_observations(i)->mutable_labels())["task_topic"] =
        absl::StrCat("topic-", i);
  }
  const cohortd::v1::PushResponse response = MustPush(request);
  EXPECT_EQ(response.accepted(), 5);
  ASSERT_EQ(response.rejected_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(response.rejected(i).index(), 5 + i);
    EXPECT_EQ(response.rejected(i).field(), "labels.task_topic");
    EXPECT_THAT(response.rejected(i).reason(),
                HasSubstr("ingest.max_open_domain_values = 5"));
  }
  // A value already held is still accepted on a new session.
  cohortd::v1::PushRequest known = ValidBatch(1, 100);
  (*known.mutable_observations(0)->mutable_labels())["task_topic"] = "topic-2";
  EXPECT_EQ(MustPush(known).accepted(), 1);
}

// The per-principal cap is in abuse_fault_test; this is the total one,
// which two principals reach together, and its metrics.
TEST_F(IngestLimitsFaultTest, TotalStreamCapCountsEveryPrincipal) {
  const std::string second_token = "second-ingest-token-0123456789";
  const std::string principals = MakeTempDir() + "/more-principals.yaml";
  {
    std::ofstream out(principals);
    out << "principals:\n  - name: test-ingest-2\n    role: ingest\n"
        << "    token_sha256: " << HexEncode(Sha256(second_token)) << "\n";
  }
  Start(
      absl::StrCat("  limits:\n    max_threads: 32\n    max_streams: 6\n"
                   "    max_streams_per_principal: 4\n",
                   "principals_file: ", principals, "\n"));

  OpenStreams open;
  // Opens a stream for `token` and pushes one batch: true when served.
  auto try_stream = [&](const std::string& token, int i,
                        grpc::Status* refused) {
    return open.TryOpen(ingest_.get(), AuthContext(token), ValidBatch(1, i),
                        refused);
  };
  grpc::Status refused;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(try_stream(server_->tokens().ingest, i, &refused))
        << refused.error_message();
  }
  for (int i = 4; i < 6; ++i) {
    ASSERT_TRUE(try_stream(second_token, i, &refused))
        << refused.error_message();
  }
  // The second principal has 2 of its 4, but the server has 6 of 6.
  ASSERT_FALSE(try_stream(second_token, 6, &refused));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("at most 6 in all"));
  EXPECT_THAT(refused.error_message(), HasSubstr("retry after"));

  // Item 4: all of it is visible on the operator metrics endpoint.
  const HttpResponse scrape = CurlGet(
      absl::StrCat("http://127.0.0.1:", server_->operator_metrics_port(),
                   "/metrics"),
      server_->tokens().admin);
  ASSERT_EQ(scrape.code, 200) << scrape.body;
  EXPECT_EQ(ExpositionSample(scrape.body, "cohortd_limit_open_streams"), 6);
  EXPECT_EQ(ExpositionSample(scrape.body,
                             "cohortd_limit_setting{limit=\"max_streams\"}"),
            6);
  EXPECT_EQ(ExpositionSample(
                scrape.body,
                "cohortd_limit_setting{limit=\"max_streams_per_principal\"}"),
            4);
  EXPECT_GT(
      ExpositionSample(scrape.body,
                       "cohortd_limit_setting{limit=\"max_receive_bytes\"}"),
      0);
  EXPECT_EQ(ExpositionSample(scrape.body,
                             "cohortd_limit_rejections_total{limit=\"streams\","
                             "principal=\"test-ingest-2\"}"),
            1);

  // Closing one frees a slot for the other principal.
  EXPECT_TRUE(open.CloseOldest().ok());
  EXPECT_TRUE(try_stream(second_token, 7, &refused)) << refused.error_message();
  EXPECT_TRUE(open.CloseAll().ok());
}

// Before: no max connection age, so an idle stream held its connection
// (and, then, its thread) until the client gave up. Now the connection is
// closed max_connection_age + grace after it opened, and the stream ends
// with UNAVAILABLE, which clients retry on a new connection.
TEST_F(IngestLimitsFaultTest, ConnectionPastItsMaxAgeEndsTheIdleStream) {
  Start(
      "  limits:\n    max_connection_age: 1s\n"
      "    max_connection_age_grace: 1s\n");
  auto context = AuthContext(server_->tokens().ingest);
  // Far beyond the age, so only the server can end the stream first.
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(60));
  auto stream = ingest_->PushStream(context.get());
  ASSERT_TRUE(stream->Write(ValidBatch(3)));
  cohortd::v1::PushResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.accepted(), 3);
  EXPECT_FALSE(stream->Read(&response));  // idle until the server ends it
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_code() << " " << status.error_message();
  // A new connection is served, and what the stream pushed was kept.
  auto stub = cohortd::v1::Ingest::NewStub(server_->Channel());
  auto context2 = AuthContext(server_->tokens().ingest);
  ASSERT_TRUE(stub->Push(context2.get(), ValidBatch(3), &response).ok());
  EXPECT_EQ(response.unchanged(), 3);
}

}  // namespace
}  // namespace cohortd::testing

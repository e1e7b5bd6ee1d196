// The two gRPC connection limits of issue 13 item 4 that were parsed and
// published but never exercised (docs/storage.md "Issue 13: each defect and
// its test"), against the real cohortd binary:
// - keepalive (server.limits.keepalive_time / keepalive_timeout): a peer
//   that stops answering the server's HTTP/2 PINGs is dropped. The peer is a
//   raw TCP socket speaking just enough HTTP/2 (preface, SETTINGS, SETTINGS
//   ack) and never acking a PING, which no gRPC client can be made to do.
// - max_threads (gRPC's thread quota): gRPC 1.51's sync server keeps one
//   thread polling for new calls and runs each call on a thread of its own;
//   when the quota leaves no thread for the next call, the polling thread
//   answers it RESOURCE_EXHAUSTED "Server Threadpool Exhausted" itself
//   (src/cpp/thread_manager/thread_manager.cc). So at most max_threads - 1
//   calls, of any method, are served at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/exposition.h"
#include "tests/common/status_matchers.h"
#include "tests/fault/fault_client.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;

constexpr uint8_t kFrameSettings = 0x4;
constexpr uint8_t kFramePing = 0x6;
constexpr uint8_t kFlagAck = 0x1;

// What a raw HTTP/2 peer saw from the server while it kept silent.
struct PeerLog {
  bool closed = false;  // EOF or reset from the server
  int pings = 0;        // PING frames (not acks) received
  bool ping_before_close = false;
  absl::Duration closed_after;  // since Connect, when closed
};

// A TCP client that opens an HTTP/2 connection (client preface, an empty
// SETTINGS frame, an ack of the server's SETTINGS) and then answers nothing,
// in particular no PING: the peer of a dead or wedged client. (gRPC 1.51
// pings and drops such a peer also when the SETTINGS ack is left out;
// acking them makes the test measure exactly "unanswered PING -> dropped".)
class SilentHttp2Peer {
 public:
  ~SilentHttp2Peer() {
    if (fd_ >= 0) close(fd_);
  }

  // Connects to 127.0.0.1:`port` and sends the preface and SETTINGS.
  void Connect(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd_, 0) << errno;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << errno;
    start_ = absl::Now();
    std::string hello = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    hello += Frame(kFrameSettings, 0);
    ASSERT_TRUE(SendAll(hello));
  }

  // Reads frames for at most `limit` or until the server closes the
  // connection; acks the server's SETTINGS (once), nothing else.
  PeerLog Watch(absl::Duration limit) {
    PeerLog log;
    const absl::Time deadline = absl::Now() + limit;
    while (!log.closed) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      pollfd p{fd_, POLLIN, 0};
      const int ready =
          poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n <= 0) {  // EOF, or ECONNRESET: the server dropped us
        log.closed = true;
        log.closed_after = absl::Now() - start_;
        log.ping_before_close = log.pings > 0;
        break;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
      ParseFrames(&log);
    }
    return log;
  }

 private:
  static std::string Frame(uint8_t type, uint8_t flags) {
    // Empty payload, stream 0: length (3 bytes), type, flags, stream id (4).
    return std::string({0, 0, 0, static_cast<char>(type),
                        static_cast<char>(flags), 0, 0, 0, 0});
  }

  bool SendAll(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = write(fd_, bytes.data() + sent, bytes.size() - sent);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  void ParseFrames(PeerLog* log) {
    while (buffer_.size() >= 9) {
      const auto byte = [&](size_t i) {
        return static_cast<uint32_t>(static_cast<uint8_t>(buffer_[i]));
      };
      const size_t length = (byte(0) << 16) | (byte(1) << 8) | byte(2);
      if (buffer_.size() < 9 + length) return;
      const uint8_t type = static_cast<uint8_t>(byte(3));
      const uint8_t flags = static_cast<uint8_t>(byte(4));
      if (type == kFrameSettings && !(flags & kFlagAck) && !settings_acked_) {
        settings_acked_ = SendAll(Frame(kFrameSettings, kFlagAck));
      }
      if (type == kFramePing && !(flags & kFlagAck)) ++log->pings;
      buffer_.erase(0, 9 + length);
    }
  }

  int fd_ = -1;
  absl::Time start_;
  std::string buffer_;
  bool settings_acked_ = false;
};

class ConnectionLimitsFaultTest : public ::testing::Test {
 protected:
  void Start(const std::string& extra_yaml) {
    server_ = std::make_unique<ServerProcess>(MakeTempDir(), extra_yaml);
    ASSERT_OK(server_->Start());
  }

  std::string ScrapeOperatorMetrics() {
    const HttpResponse scrape = CurlGet(
        absl::StrCat("http://127.0.0.1:", server_->operator_metrics_port(),
                     "/metrics"),
        server_->tokens().admin);
    EXPECT_EQ(scrape.code, 200) << scrape.body;
    return scrape.body;
  }

  std::unique_ptr<ServerProcess> server_;
};

// Before: keepalive was parsed and published, but nothing showed that the
// server pings or drops a silent peer. With keepalive_time 1s and
// keepalive_timeout 1s, the server pings the silent peer and, the ping
// unanswered, closes the connection (~2 s; 15 s allowed).
TEST_F(ConnectionLimitsFaultTest, UnansweredKeepalivePingDropsTheConnection) {
  Start(
      "  limits:\n    keepalive_time: 1s\n    keepalive_timeout: 1s\n"
      "    max_connection_age: 1h\n");
  SilentHttp2Peer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Connect(server_->port()));
  const PeerLog log = peer.Watch(absl::Seconds(15));
  ASSERT_TRUE(log.closed) << "a peer that never acks a PING is kept";
  EXPECT_TRUE(log.ping_before_close)
      << "closed without a keepalive PING after " << log.closed_after;
  // Not before one keepalive_time + keepalive_timeout.
  EXPECT_GE(log.closed_after, absl::Seconds(2) - absl::Milliseconds(100))
      << log.closed_after;

  const std::string metrics = ScrapeOperatorMetrics();
  EXPECT_EQ(
      ExpositionSample(
          metrics, "cohortd_limit_setting{limit=\"keepalive_time_seconds\"}"),
      1);
  EXPECT_EQ(ExpositionSample(
                metrics,
                "cohortd_limit_setting{limit=\"keepalive_timeout_seconds\"}"),
            1);
}

// The control: the same silent peer under the default keepalive (ping
// after 1 min) is neither pinged nor dropped in 4 s, twice the time the
// test above needs; so the drop above is keepalive's doing and not, say,
// the server's handshake or idle handling.
TEST_F(ConnectionLimitsFaultTest, SilentPeerIsKeptUnderTheDefaultKeepalive) {
  Start("");
  SilentHttp2Peer peer;
  ASSERT_NO_FATAL_FAILURE(peer.Connect(server_->port()));
  const PeerLog log = peer.Watch(absl::Seconds(4));
  EXPECT_FALSE(log.closed) << log.closed_after;
  EXPECT_EQ(log.pings, 0);

  const std::string metrics = ScrapeOperatorMetrics();
  EXPECT_EQ(
      ExpositionSample(
          metrics, "cohortd_limit_setting{limit=\"keepalive_time_seconds\"}"),
      60);
  EXPECT_EQ(ExpositionSample(
                metrics,
                "cohortd_limit_setting{limit=\"keepalive_timeout_seconds\"}"),
            20);
}

// Before: max_threads was only parsed and published. gRPC's sync server
// keeps one thread polling, so with max_threads 8 it serves 7 calls at
// once. max_streams 6 (the most the config allows: max_threads - 2) idle
// PushStreams take 6 of them; one more stream is refused by the stream
// cap, and queries, one at a time, are still served on the seventh
// thread. Concurrent queries then find no thread: gRPC itself refuses
// some with RESOURCE_EXHAUSTED "Server Threadpool Exhausted", before
// cohortd's handler runs (without the quota every one is served).
TEST_F(ConnectionLimitsFaultTest, ThreadQuotaRefusesCallsBeyondMaxThreads) {
  constexpr int kMaxThreads = 8;
  constexpr int kStreams = kMaxThreads - 2;
  Start(absl::StrCat("  limits:\n    max_threads: ", kMaxThreads,
                     "\n    max_streams: ", kStreams,
                     "\n    max_streams_per_principal: ", kStreams,
                     "\n    query_rate: 0\n"));
  std::shared_ptr<grpc::Channel> channel = server_->Channel();
  auto ingest = cohortd::v1::Ingest::NewStub(channel);
  auto query = cohortd::v1::Query::NewStub(channel);

  OpenStreams open;
  // Opens a PushStream and pushes one batch: true when served (the stream
  // then stays open and idle, holding its server thread).
  auto try_stream = [&](int i, grpc::Status* refused) {
    return open.TryOpen(ingest.get(), AuthContext(server_->tokens().ingest),
                        ValidBatch(1, i), refused);
  };
  auto describe = [&] {
    auto context = AuthContext(server_->tokens().analyst);
    cohortd::v1::DescribeDatasetRequest request;
    request.set_dataset("sessions");
    cohortd::v1::DatasetDescription description;
    return query->DescribeDataset(context.get(), request, &description);
  };

  grpc::Status refused;
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(try_stream(i, &refused))
        << i << ": " << refused.error_code() << " " << refused.error_message();
  }
  // One more stream: the stream cap's refusal, not gRPC's.
  ASSERT_FALSE(try_stream(kStreams, &refused));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("in all"));
  // Queries one at a time: served while the streams are at their cap
  // (what max_threads >= max_streams + 2 is for). A query right after the
  // refused stream may meet its thread still finishing: retried briefly.
  auto served_soon = [](const std::function<grpc::Status()>& call) {
    grpc::Status status;
    for (int attempt = 0; attempt < 100; ++attempt) {
      status = call();
      if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return status;
  };
  for (int i = 0; i < 3; ++i) {
    const grpc::Status served = served_soon(describe);
    EXPECT_TRUE(served.ok())
        << served.error_code() << " " << served.error_message();
  }
  // Bursts of concurrent queries: one thread is left for them, so gRPC
  // refuses the ones that arrive while it is busy. Up to 20 bursts of 32;
  // the first burst normally suffices.
  int exhausted = 0;
  int other_errors = 0;
  std::string other;
  for (int burst = 0; burst < 20 && exhausted == 0; ++burst) {
    std::vector<grpc::Status> statuses(32);
    std::vector<std::thread> callers;
    for (grpc::Status& status : statuses) {
      callers.emplace_back([&status, &describe] { status = describe(); });
    }
    for (std::thread& caller : callers) caller.join();
    for (const grpc::Status& status : statuses) {
      if (status.ok()) continue;
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
          status.error_message() == "Server Threadpool Exhausted") {
        ++exhausted;
      } else {
        ++other_errors;
        other = absl::StrCat(status.error_code(), " ", status.error_message());
      }
    }
  }
  EXPECT_GT(exhausted, 0) << "no concurrent query met the thread quota";
  EXPECT_EQ(other_errors, 0) << other;

  const std::string metrics = ScrapeOperatorMetrics();
  EXPECT_EQ(
      ExpositionSample(metrics, "cohortd_limit_setting{limit=\"max_threads\"}"),
      kMaxThreads);
  EXPECT_EQ(ExpositionSample(metrics, "cohortd_limit_open_streams"), kStreams);
  // gRPC's refusals happen before cohortd's handler: the one stream
  // rejection counted is the stream cap's.
  EXPECT_EQ(ExpositionSample(metrics,
                             "cohortd_limit_rejections_total{limit=\"streams\","
                             "principal=\"test-ingest\"}"),
            1);

  // Closing a stream frees its thread and its slot: a new stream is
  // served again.
  EXPECT_TRUE(open.CloseOldest().ok());
  const grpc::Status stream_served = served_soon(
      [&] { return try_stream(100, &refused) ? grpc::Status::OK : refused; });
  EXPECT_TRUE(stream_served.ok()) << stream_served.error_message();
  EXPECT_TRUE(open.CloseAll().ok());
}

}  // namespace
}  // namespace cohortd::testing

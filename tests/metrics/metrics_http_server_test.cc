#include "server/metrics/metrics_http_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/prometheus_metrics.h"
#include "tests/common/status_matchers.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

struct Response {
  int code = 0;  // 0: no connection or no status line
  std::string head;
  std::string body;
};

// One HTTP/1.1 request over a plain socket to 127.0.0.1:`port`, read until
// the server closes (it always answers with Connection: close).
Response Request(int port, const std::string& method, const std::string& path,
                 const std::string& authorization = "") {
  Response response;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return response;
  }
  std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  if (!authorization.empty()) {
    absl::StrAppend(&request, "Authorization: ", authorization, "\r\n");
  }
  request += "Connection: close\r\n\r\n";
  (void)write(fd, request.data(), request.size());
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) raw.append(buf, n);
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (!absl::StartsWith(raw, "HTTP/1.1 ") || end == std::string::npos) {
    return response;
  }
  response.head = raw.substr(0, end);
  response.body = raw.substr(end + 4);
  (void)absl::SimpleAtoi(raw.substr(9, 3), &response.code);
  return response;
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics_ = PrometheusMetrics::Create();
    metrics_
        ->GetCounter("cohortd_test_total", "A test counter.",
                     {{"method", "GetBudget"}})
        ->Increment(3);
  }

  std::unique_ptr<MetricsHttpServer> Serve(
      MetricsHttpServer::Authorizer authorize = nullptr) {
    auto server = MetricsHttpServer::Start(
        metrics_.get(), {"127.0.0.1:0", std::move(authorize)});
    EXPECT_OK(server.status());
    return server.ok() ? *std::move(server) : nullptr;
  }

  std::unique_ptr<PrometheusMetrics> metrics_;
};

TEST_F(MetricsHttpServerTest, ServesTheRegistryAndNothingOfItsOwn) {
  auto server = Serve();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  const Response first = Request(server->port(), "GET", "/metrics");
  EXPECT_EQ(first.code, 200);
  EXPECT_THAT(first.head, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(first.body,
              HasSubstr("cohortd_test_total{method=\"GetBudget\"} 3\n"));
  EXPECT_EQ(first.body, metrics_->Exposition());
  // Scraping changes nothing: no scrape counters, sizes or latencies.
  EXPECT_THAT(first.body, Not(HasSubstr("exposer_")));
  EXPECT_EQ(Request(server->port(), "GET", "/metrics").body, first.body);
}

TEST_F(MetricsHttpServerTest, HeadHasNoBodyAndOtherMethodsAndPathsAreRefused) {
  auto server = Serve();
  ASSERT_NE(server, nullptr);
  const Response head = Request(server->port(), "HEAD", "/metrics");
  EXPECT_EQ(head.code, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(Request(server->port(), "POST", "/metrics").code, 405);
  EXPECT_EQ(Request(server->port(), "GET", "/metrics/x").code, 404);
  EXPECT_EQ(Request(server->port(), "GET", "/").code, 404);
}

TEST_F(MetricsHttpServerTest, AuthorizerDecidesEveryScrape) {
  auto server = Serve([](absl::string_view authorization) {
    if (authorization == "Bearer admin") return absl::OkStatus();
    if (authorization == "Bearer analyst") {
      return absl::PermissionDeniedError("needs the admin role");
    }
    return absl::UnauthenticatedError("missing or unknown bearer token");
  });
  ASSERT_NE(server, nullptr);
  const Response none = Request(server->port(), "GET", "/metrics");
  EXPECT_EQ(none.code, 401);
  EXPECT_THAT(none.head, HasSubstr("WWW-Authenticate: Bearer"));
  EXPECT_EQ(none.body, "missing or unknown bearer token\n");
  const Response analyst =
      Request(server->port(), "GET", "/metrics", "Bearer analyst");
  EXPECT_EQ(analyst.code, 403);
  EXPECT_THAT(analyst.body, Not(HasSubstr("cohortd_test_total")));
  const Response admin =
      Request(server->port(), "GET", "/metrics", "Bearer admin");
  EXPECT_EQ(admin.code, 200);
  EXPECT_THAT(admin.body, HasSubstr("cohortd_test_total"));
}

TEST_F(MetricsHttpServerTest, StopClosesTheListeningSocket) {
  auto server = Serve();
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  ASSERT_EQ(Request(port, "GET", "/metrics").code, 200);
  server->Stop();
  EXPECT_EQ(Request(port, "GET", "/metrics").code, 0);
  server->Stop();  // idempotent
}

TEST_F(MetricsHttpServerTest, ABoundPortIsUnavailable) {
  auto first = Serve();
  ASSERT_NE(first, nullptr);
  const std::string address = absl::StrCat("127.0.0.1:", first->port());
  EXPECT_THAT(
      MetricsHttpServer::Start(metrics_.get(), {address, nullptr}).status(),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr(address)));
}

TEST(PrometheusMetricsTest, RemovedGaugeLeavesTheExposition) {
  auto metrics = PrometheusMetrics::Create();
  metrics->GetGauge("cohortd_published_rate", "A figure.", {{"bound", "value"}})
      ->Set(0.25);
  EXPECT_THAT(metrics->Exposition(),
              HasSubstr("cohortd_published_rate{bound=\"value\"} 0.25"));
  metrics->RemoveGauge("cohortd_published_rate", {{"bound", "value"}});
  EXPECT_THAT(metrics->Exposition(), Not(HasSubstr("cohortd_published_rate{")));
}

}  // namespace
}  // namespace cohortd

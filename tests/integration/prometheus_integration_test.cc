// Real Prometheus servers (Debian's `prometheus`) scrape a running cohortd
// with the shipped configs: the dashboards' (deploy/prometheus/
// prometheus.yml) gets the published series and no record-derived one; the
// operators' (prometheus-operator.yml, with rules.yml) gets both
// endpoints. The test reads the series back through Prometheus's HTTP API.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

#ifndef COHORTD_SOURCE_DIR
#error "COHORTD_SOURCE_DIR must name the source tree"
#endif

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr int64_t kJan2026 = 1767225600;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// GET through the curl binary; "" on failure.
std::string HttpGet(const std::string& url) {
  const std::string command = absl::StrCat("curl -sf --max-time 5 '", url, "'");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  pclose(pipe);
  return out;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Polls `fetch` until `done(body)` or the deadline; returns the last body.
template <typename Fetch, typename Done>
std::string WaitFor(Fetch fetch, Done done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string body;
  while (absl::Now() < deadline) {
    body = fetch();
    if (done(body)) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  return body;
}

class PrometheusIntegrationTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (pid_t pid : prometheus_pids_) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }

  // Starts Prometheus on a free port with deploy/prometheus/`name` (and
  // rules.yml next to it), its scrape interval 1 s and its 127.0.0.1:9464
  // and :9465 targets pointed at `server`. Returns the port.
  int StartPrometheus(const std::string& dir, const std::string& name,
                      const ServerProcess& server) {
    const std::string deploy =
        std::string(COHORTD_SOURCE_DIR) + "/deploy/prometheus/";
    std::string config = Slurp(deploy + name);
    EXPECT_THAT(config, HasSubstr("127.0.0.1:9464")) << name;
    config = absl::StrReplaceAll(
        config,
        {{"127.0.0.1:9464", absl::StrCat("127.0.0.1:", server.metrics_port())},
         {"127.0.0.1:9465",
          absl::StrCat("127.0.0.1:", server.operator_metrics_port())},
         {"scrape_interval: 15s", "scrape_interval: 1s"}});
    const std::string folder = absl::StrCat(dir, "/", name, ".d");
    mkdir(folder.c_str(), 0700);
    {
      std::ofstream out(folder + "/prometheus.yml");
      out << config;
      std::ofstream rules(folder + "/rules.yml");
      rules << Slurp(deploy + "rules.yml");
    }
    const int port = FreePort();
    const pid_t pid = fork();
    if (pid == 0) {
      const std::string log = folder + "/prometheus.log";
      FILE* f = fopen(log.c_str(), "w");
      if (f != nullptr) {
        dup2(fileno(f), STDOUT_FILENO);
        dup2(fileno(f), STDERR_FILENO);
      }
      const std::string config_flag =
          "--config.file=" + folder + "/prometheus.yml";
      const std::string storage = "--storage.tsdb.path=" + folder + "/tsdb";
      const std::string listen =
          absl::StrCat("--web.listen-address=127.0.0.1:", port);
      execl(kPrometheus, kPrometheus, config_flag.c_str(), storage.c_str(),
            listen.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    prometheus_pids_.push_back(pid);
    return port;
  }

  void PushPopulation(cohortd::v1::Ingest::Stub* ingest,
                      const std::string& token) {
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    const char* occupations[] = {"legal", "management",
                                 "computer_mathematical"};
    int serial = 0;
    for (const char* occupation : occupations) {
      for (int a = 0; a < 400; ++a) {
        auto* obs = request.add_observations();
        obs->set_session_id(absl::StrCat(occupation, "-s", a));
        obs->set_account_id(absl::StrCat(occupation, "-a", a));
        obs->mutable_session_start()->set_seconds(kJan2026 + serial++ * 60);
        obs->set_source("test@1");
        (*obs->mutable_labels())["occupation"] = occupation;
        (*obs->mutable_labels())["verified_success"] =
            a % 4 == 0 ? "true" : "false";
        (*obs->mutable_labels())["work_mode"] = a % 2 ? "fix" : "build";
      }
    }
    cohortd::v1::PushResponse response;
    auto context = AuthContext(token);
    ASSERT_TRUE(ingest->Push(context.get(), request, &response).ok());
    ASSERT_EQ(response.accepted(), 1200);
  }

  // Seals a snapshot, so publications read what was pushed.
  static void Seal(const ServerProcess& server) {
    auto admin = cohortd::v1::Admin::NewStub(server.Channel());
    cohortd::v1::SealSnapshotRequest request;
    cohortd::v1::SealSnapshotResponse response;
    auto context = AuthContext(server.tokens().admin);
    ASSERT_TRUE(admin->SealSnapshot(context.get(), request, &response).ok());
  }

  std::vector<pid_t> prometheus_pids_;
};

TEST_F(PrometheusIntegrationTest, ScrapesPublishedAndOperationalSeries) {
  if (access(kPrometheus, X_OK) != 0) {
    GTEST_SKIP() << kPrometheus
                 << " is missing; scripts/setup installs Debian's prometheus";
  }
  const std::string dir = MakeTempDir();
  // Publications recompute every second here (a free cache hit while the
  // data is unchanged), so the test need not wait ten minutes.
  ServerProcess server(dir, "", {{"every: 10m", "every: 1s"}});
  ASSERT_OK(server.Start());
  ASSERT_GT(server.metrics_port(), 0);
  auto ingest = cohortd::v1::Ingest::NewStub(server.Channel());
  PushPopulation(ingest.get(), server.tokens().ingest);
  Seal(server);

  const std::string metrics_url =
      absl::StrCat("http://127.0.0.1:", server.metrics_port(), "/metrics");
  const std::string exposition = WaitFor(
      [&] { return HttpGet(metrics_url); },
      [](const std::string& body) {
        return body.find("cohortd_published_rate{") != std::string::npos;
      },
      absl::Seconds(30));
  ASSERT_THAT(exposition, HasSubstr("cohortd_published_rate{"))
      << "cohortd never exported the publication";
  // No account or session value appears in any label.
  EXPECT_THAT(exposition, Not(HasSubstr("-a1")));
  EXPECT_THAT(exposition, Not(HasSubstr("-s1")));

  const int dashboards = StartPrometheus(dir, "prometheus.yml", server);
  const int operators = StartPrometheus(dir, "prometheus-operator.yml", server);
  auto query_on = [&](int port, const std::string& promql) {
    return HttpGet(absl::StrCat("http://127.0.0.1:", port,
                                "/api/v1/query?query=", promql));
  };
  auto has_series = [](const std::string& body) {
    return body.find("\"status\":\"success\"") != std::string::npos &&
           body.find("\"result\":[]") == std::string::npos &&
           body.find("\"result\":[") != std::string::npos;
  };
  auto query = [&](const std::string& promql) {
    return query_on(dashboards, promql);
  };
  const std::string published =
      WaitFor([&] { return query("cohortd_published_rate"); }, has_series,
              absl::Seconds(60));
  ASSERT_TRUE(has_series(published))
      << "Prometheus has no published series: " << published << "\n"
      << Slurp(dir + "/prometheus.yml.d/prometheus.log");
  EXPECT_THAT(published,
              HasSubstr("\"publication\":\"verified_success_by_occupation\""));
  EXPECT_THAT(published, HasSubstr("\"bound\":\"value\""));
  EXPECT_THAT(published, HasSubstr("\"bound\":\"ci_low\""));
  EXPECT_THAT(published, HasSubstr("\"bound\":\"ci_high\""));
  EXPECT_THAT(published, HasSubstr("\"occupation\":\"legal\""));
  EXPECT_TRUE(has_series(query("cohortd_budget_remaining_epsilon")));
  EXPECT_TRUE(has_series(query("cohortd_build_info")));

  // The operators' Prometheus has the record-derived series; by the time it
  // does, the dashboards' has scraped for as long, and has none of them.
  const std::string ingested = WaitFor(
      [&] { return query_on(operators, "cohortd_ingest_observations_total"); },
      has_series, absl::Seconds(60));
  ASSERT_TRUE(has_series(ingested))
      << ingested << "\n"
      << Slurp(dir + "/prometheus-operator.yml.d/prometheus.log");
  EXPECT_TRUE(has_series(query_on(operators, "cohortd_index_memory_bytes")));
  // It scrapes the dashboards' endpoint as a target of its own, on its
  // own schedule: wait for that scrape too.
  EXPECT_TRUE(has_series(
      WaitFor([&] { return query_on(operators, "cohortd_published_rate"); },
              has_series, absl::Seconds(60))));
  EXPECT_TRUE(has_series(query_on(
      operators, "cohortd_rpc_requests_total%7Bmethod%3D%22Push%22%7D")));
  for (const char* operator_only :
       {"cohortd_ingest_observations_total", "cohortd_index_memory_bytes",
        "cohortd_index_sessions", "cohortd_store_live_data_bytes",
        "cohortd_rpc_requests_total%7Bmethod%3D%22Push%22%7D"}) {
    const std::string body = query(operator_only);
    EXPECT_THAT(body, HasSubstr("\"status\":\"success\"")) << operator_only;
    EXPECT_FALSE(has_series(body)) << operator_only << ": " << body;
  }
  // The alerting rules are loaded where their series are.
  EXPECT_THAT(
      HttpGet(absl::StrCat("http://127.0.0.1:", operators, "/api/v1/rules")),
      HasSubstr("CohortdIngestRejectionsSpiking"));

  // Scrapes and scheduled re-runs on unchanged data cost nothing.
  const std::string spent_query =
      "cohortd_budget_spent_epsilon%7Bprincipal%3D%22publisher%2F"
      "verified_success_by_occupation%22%7D";
  const std::string before = HttpGet(metrics_url);
  absl::SleepFor(absl::Seconds(3));
  const std::string after = HttpGet(metrics_url);
  auto spent_line = [](const std::string& body) {
    const size_t at = body.find(
        "cohortd_budget_spent_epsilon{dataset=\"sessions\",principal=\""
        "publisher/verified_success_by_occupation\"}");
    return at == std::string::npos ? std::string()
                                   : body.substr(at, body.find('\n', at) - at);
  };
  EXPECT_FALSE(spent_line(before).empty());
  EXPECT_EQ(spent_line(before), spent_line(after));
  EXPECT_TRUE(has_series(query(spent_query)));
}

}  // namespace
}  // namespace cohortd::testing

#include "tests/backend/clickhouse_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/backend/clickhouse_client.h"

namespace cohortd::testing {

std::string ClickHouseServerBinary() {
  for (const char* path :
       {"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

absl::StatusOr<std::unique_ptr<ClickHouseServer>> ClickHouseServer::Start(
    const std::string& remote_servers) {
  return StartOn(remote_servers, 0, 0);
}

absl::StatusOr<std::vector<std::unique_ptr<ClickHouseServer>>>
ClickHouseServer::StartCluster(const std::string& cluster, int shards) {
  std::vector<std::pair<int, int>> ports;  // (http, tcp)
  std::string xml = absl::StrCat("<", cluster, ">");
  for (int i = 0; i < shards; ++i) {
    ports.emplace_back(PickFreePort(), PickFreePort());
    absl::StrAppend(&xml, "<shard><replica><host>127.0.0.1</host><port>",
                    ports.back().second, "</port></replica></shard>");
  }
  absl::StrAppend(&xml, "</", cluster, ">");
  std::vector<std::unique_ptr<ClickHouseServer>> nodes;
  for (const auto& [http, tcp] : ports) {
    auto node = StartOn(xml, http, tcp);
    if (!node.ok()) return node.status();
    nodes.push_back(std::move(*node));
  }
  return nodes;
}

absl::StatusOr<std::unique_ptr<ClickHouseServer>> ClickHouseServer::StartOn(
    const std::string& remote_servers, int http_port, int tcp_port) {
  const std::string binary = ClickHouseServerBinary();
  if (binary.empty()) {
    return absl::UnavailableError("clickhouse-server is not installed");
  }
  std::unique_ptr<ClickHouseServer> s(new ClickHouseServer());
  const char* base = getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/cohortd-ch-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  s->dir_ = pattern;
  s->http_port_ = http_port != 0 ? http_port : PickFreePort();
  s->tcp_port_ = tcp_port != 0 ? tcp_port : PickFreePort();
  // Only what the server needs, everything under dir_, loopback only. The
  // defaults of /etc/clickhouse-server/config.xml (8123/9000/9009 on all
  // loopback addresses, /var/lib/clickhouse) are not read.
  std::ofstream config(s->dir_ + "/config.xml");
  config << "<?xml version=\"1.0\"?>\n<yandex>\n"
         << "  <logger><level>warning</level><log>" << s->dir_
         << "/server.log</log><errorlog>" << s->dir_
         << "/server.err.log</errorlog><console>0</console></logger>\n"
         << "  <http_port>" << s->http_port_ << "</http_port>\n"
         << "  <tcp_port>" << s->tcp_port_ << "</tcp_port>\n"
         << "  <listen_host>127.0.0.1</listen_host>\n"
         << "  <path>" << s->dir_ << "/data/</path>\n"
         << "  <tmp_path>" << s->dir_ << "/tmp/</tmp_path>\n"
         << "  <user_files_path>" << s->dir_
         << "/user_files/</user_files_path>\n"
         << "  <format_schema_path>" << s->dir_
         << "/format_schemas/</format_schema_path>\n"
         << "  <mark_cache_size>67108864</mark_cache_size>\n"
         << "  <uncompressed_cache_size>0</uncompressed_cache_size>\n"
         << "  <max_concurrent_queries>16</max_concurrent_queries>\n"
         << "  <timezone>UTC</timezone>\n"
         << "  <users><default><password></password><networks><ip>127.0.0.1"
         << "</ip></networks><profile>default</profile><quota>default"
         << "</quota></default></users>\n"
         << "  <profiles><default><max_threads>2</max_threads>"
         << "</default></profiles>\n"
         << "  <quotas><default></default></quotas>\n"
         << "  <default_profile>default</default_profile>\n"
         << "  <default_database>default</default_database>\n";
  if (!remote_servers.empty()) {
    config << "  <remote_servers>" << remote_servers << "</remote_servers>\n";
  }
  config << "</yandex>\n";
  config.close();
  absl::Status status = s->Launch();
  if (!status.ok()) return status;
  return s;
}

absl::Status ClickHouseServer::Launch() {
  const std::string binary = ClickHouseServerBinary();
  const std::string arg = absl::StrCat("--config-file=", dir_, "/config.xml");
  pid_ = fork();
  if (pid_ == 0) {
    const std::string out = dir_ + "/stdout.log";
    freopen(out.c_str(), "a", stdout);
    freopen(out.c_str(), "a", stderr);
    execl(binary.c_str(), binary.c_str(), arg.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  ClickHouseEndpoint endpoint;
  endpoint.url = url();
  endpoint.timeout = absl::Seconds(2);
  auto client = ClickHouseClient::Create(endpoint);
  if (!client.ok()) return client.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    if ((*client)->Execute("SELECT 1").ok()) return absl::OkStatus();
    int wstatus;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat("clickhouse-server exited; see ", dir_));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::UnavailableError(
      absl::StrCat("clickhouse-server did not answer; see ", dir_));
}

std::string ClickHouseServer::url() const {
  return absl::StrCat("http://127.0.0.1:", http_port_);
}

void ClickHouseServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void ClickHouseServer::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void ClickHouseServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

absl::Status ClickHouseServer::Restart() {
  Kill();
  return Launch();
}

ClickHouseServer::~ClickHouseServer() {
  Kill();
  if (!dir_.empty() && getenv("COHORTD_KEEP_CLICKHOUSE") == nullptr) {
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }
}

}  // namespace cohortd::testing

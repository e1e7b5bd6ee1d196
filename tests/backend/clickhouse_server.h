// A real clickhouse-server (Debian's 18.16) for tests: its own config in a
// temp dir, HTTP and native ports picked free on 127.0.0.1, no other
// listener (no interserver port, no default paths under /var). Tests that
// need it call GTEST_SKIP when the binary is absent (scripts/setup installs
// it, so CI runs them).
#ifndef COHORTD_TESTS_BACKEND_CLICKHOUSE_SERVER_H_
#define COHORTD_TESTS_BACKEND_CLICKHOUSE_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cohortd::testing {

// The server binary, or "" when it is not installed.
std::string ClickHouseServerBinary();

class ClickHouseServer {
 public:
  // One node. `remote_servers` (optional) is the <remote_servers> XML body,
  // for a node of a test cluster. Errors: Unavailable when the binary is
  // missing or the server does not answer within 60 s.
  static absl::StatusOr<std::unique_ptr<ClickHouseServer>> Start(
      const std::string& remote_servers = "");
  // `shards` nodes (one replica each) whose <remote_servers> all name the
  // same cluster `cluster` of them (native TCP ports on 127.0.0.1), so a
  // Distributed table on any node spans every shard. Errors: as Start.
  static absl::StatusOr<std::vector<std::unique_ptr<ClickHouseServer>>>
  StartCluster(const std::string& cluster, int shards);
  ~ClickHouseServer();  // SIGKILL if running; removes the dir

  // http://127.0.0.1:<port>
  std::string url() const;
  int http_port() const { return http_port_; }
  int tcp_port() const { return tcp_port_; }
  // The server's process id while it runs (benchmarks read its CPU time
  // and RSS from /proc), else -1.
  pid_t pid() const { return pid_; }
  // Stops with SIGKILL (a crash) / restarts on the same ports and data.
  void Kill();
  absl::Status Restart();
  // SIGSTOP / SIGCONT: a server that hangs (its listen socket still takes
  // connections, nothing answers), as in a network partition or a stall.
  void Pause();
  void Resume();

 private:
  ClickHouseServer() = default;
  // Start on the given ports (0 = pick free ones).
  static absl::StatusOr<std::unique_ptr<ClickHouseServer>> StartOn(
      const std::string& remote_servers, int http_port, int tcp_port);
  absl::Status Launch();

  std::string dir_;
  int http_port_ = 0;
  int tcp_port_ = 0;
  pid_t pid_ = -1;
};

// A free TCP port on 127.0.0.1 (bound then released).
int PickFreePort();

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_BACKEND_CLICKHOUSE_SERVER_H_

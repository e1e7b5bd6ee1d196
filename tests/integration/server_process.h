// ServerProcess: runs the real `cohortd` binary for integration tests, on
// 127.0.0.1 with port 0 and a temp data dir, and reads the bound ports from
// its "metrics on port N", "operator metrics on port N" and "listening on
// port N" lines. Tokens are generated per test and only
// their hashes go into the config, as in production.
#ifndef COHORTD_TESTS_INTEGRATION_SERVER_PROCESS_H_
#define COHORTD_TESTS_INTEGRATION_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cohortd::testing {

struct ServerTokens {
  std::string ingest = "ingest-token-0123456789";
  std::string analyst = "analyst-token-0123456789";
  std::string admin = "admin-token-0123456789";
};

class ServerProcess {
 public:
  // `dir` holds the config, key and data dir and outlives restarts.
  // `extra_server_yaml` is appended to the `server:` block (indented two
  // spaces), e.g. TLS settings; when it sets operator_metrics_listen, the
  // default 127.0.0.1:0 is left out.
  // `dataset_edits` are (from, to) replacements applied to the shipped
  // config's dataset section, e.g. to shrink a budget.
  explicit ServerProcess(
      std::string dir, std::string extra_server_yaml = "",
      std::vector<std::pair<std::string, std::string>> dataset_edits = {});
  ~ServerProcess();  // kills a still-running server

  // Starts the binary and waits (up to 30 s) until it listens.
  absl::Status Start();
  // SIGTERM and wait; returns the exit status (0 on a clean stop).
  absl::StatusOr<int> Stop();
  // SIGKILL and wait: a crash.
  void Kill();
  // Waits up to `timeout` for the server to exit by itself; returns its
  // exit status, or DeadlineExceeded (it keeps running).
  absl::StatusOr<int> WaitForExit(absl::Duration timeout);

  int port() const { return port_; }
  // The server's process id while it runs, -1 otherwise.
  pid_t pid() const { return pid_; }
  // The dashboards' endpoint (server.metrics_listen).
  int metrics_port() const { return metrics_port_; }
  // The operators' endpoint (server.operator_metrics_listen).
  int operator_metrics_port() const { return operator_metrics_port_; }
  // Leaves the shipped publications out of the config (rewritten now; takes
  // effect at the next Start), so no publication run changes the dashboard
  // endpoint.
  void DropPublications();
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  std::string data_dir() const { return dir_ + "/data"; }
  const ServerTokens& tokens() const { return tokens_; }
  std::shared_ptr<grpc::Channel> Channel() const;

 private:
  void WriteConfig();

  std::string dir_;
  std::string extra_server_yaml_;
  std::vector<std::pair<std::string, std::string>> dataset_edits_;
  bool publications_ = true;
  ServerTokens tokens_;
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  int operator_metrics_port_ = 0;
};

// A client context carrying `authorization: Bearer <token>` (none when
// token is empty), with a 30 s deadline.
std::unique_ptr<grpc::ClientContext> AuthContext(const std::string& token);

// An HTTP GET through the curl binary (5 s timeout), with
// `authorization: Bearer <token>` when `token` is not empty. code is 0
// when curl could not connect.
struct HttpResponse {
  int code = 0;
  std::string body;
};
HttpResponse CurlGet(const std::string& url, const std::string& token = "");

// Creates a fresh temp directory and returns its path. It is removed at
// process exit when every test passed, and kept when one failed.
std::string MakeTempDir();

// A throwaway CA and two certificates it signs, made with the openssl CLI in
// `dir`: ca.pem (+ ca.key), server.pem/server.key (subjectAltName
// IP:127.0.0.1 and DNS:localhost) and client.pem/client.key. Returns false
// if openssl failed.
bool MakeTestCertificates(const std::string& dir);

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_INTEGRATION_SERVER_PROCESS_H_

#include "tests/integration/server_process.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/crypto/pseudonymizer.h"

#ifndef COHORTD_BINARY
#error "COHORTD_BINARY must name the cohortd executable"
#endif
#ifndef COHORTD_SOURCE_DIR
#error "COHORTD_SOURCE_DIR must name the source tree"
#endif

namespace cohortd::testing {

namespace {

// Every directory MakeTempDir made in this process. Each holds a data dir
// whose RocksDB WAL is preallocated (~70 MB), so a suite that left them
// behind filled the disk of a long-lived machine.
std::vector<std::string>& MadeTempDirs() {
  static auto* dirs = new std::vector<std::string>();
  return *dirs;
}

// At exit: removes the temp dirs when every test passed; keeps them (and
// says where) when one failed, since the server's log is in them.
void RemoveTempDirsAtExit() {
  const ::testing::UnitTest* unit = ::testing::UnitTest::GetInstance();
  const bool keep = unit != nullptr && unit->Failed();
  for (const std::string& dir : MadeTempDirs()) {
    if (keep) {
      std::fprintf(stderr, "kept %s for the failed test\n", dir.c_str());
      continue;
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
}

}  // namespace

std::string MakeTempDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/cohortd-it-XXXXXX");
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) return "";
  if (MadeTempDirs().empty()) std::atexit(RemoveTempDirsAtExit);
  MadeTempDirs().emplace_back(made);
  return std::string(made);
}

bool MakeTestCertificates(const std::string& dir) {
  const std::string script = absl::StrCat(
      "set -e; cd '", dir, "';",
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca "
      "-keyout ca.key -out ca.pem 2>/dev/null;",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
      "-keyout server.key -out server.csr 2>/dev/null;",
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext;",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
      "-CAcreateserial -days 1 -extfile san.ext -out server.pem 2>/dev/null;",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=worker "
      "-keyout client.key -out client.csr 2>/dev/null;",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
      "-CAcreateserial -days 1 -out client.pem 2>/dev/null");
  return std::system(script.c_str()) == 0;
}

ServerProcess::ServerProcess(
    std::string dir, std::string extra_server_yaml,
    std::vector<std::pair<std::string, std::string>> dataset_edits)
    : dir_(std::move(dir)),
      extra_server_yaml_(std::move(extra_server_yaml)),
      dataset_edits_(std::move(dataset_edits)) {
  WriteConfig();
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill();
}

void ServerProcess::WriteConfig() {
  // The dataset section is the shipped production config's, so the tests
  // exercise the real schema; everything else is this test's own.
  std::ifstream shipped(std::string(COHORTD_SOURCE_DIR) +
                        "/config/cohortd.yaml");
  std::string text((std::istreambuf_iterator<char>(shipped)),
                   std::istreambuf_iterator<char>());
  const size_t datasets = text.find("\ndatasets:");
  std::ofstream out(dir_ + "/cohortd.yaml");
  out << "server:\n"
      << "  listen: 127.0.0.1:0\n"
      << "  metrics_listen: 127.0.0.1:0\n"
      << (extra_server_yaml_.find("operator_metrics_listen:") ==
                  std::string::npos
              ? "  operator_metrics_listen: 127.0.0.1:0\n"
              : "")
      << "  data_dir: data\n"
      << "  pseudonymization_key_file: pseudonymization.key\n"
      << "  max_batch_size: 5000\n"
      // Unless a test sets its own schedule: seals only at start and on
      // Admin.SealSnapshot, so no test straddles a scheduled seal by chance.
      << (extra_server_yaml_.find("snapshot_every:") == std::string::npos
              ? "  snapshot_every: 87600h\n"
              : "")
      << extra_server_yaml_ << "principals:\n";
  const std::pair<const char*, const std::string*> roles[] = {
      {"ingest", &tokens_.ingest},
      {"analyst", &tokens_.analyst},
      {"admin", &tokens_.admin}};
  for (const auto& [role, token] : roles) {
    out << "  - name: test-" << role << "\n    role: " << role
        << "\n    token_sha256: " << HexEncode(Sha256(*token)) << "\n";
  }
  std::string dataset_section =
      text.substr(datasets == std::string::npos ? text.size() : datasets + 1);
  const size_t publications = dataset_section.find("\npublications:");
  if (!publications_ && publications != std::string::npos) {
    dataset_section = dataset_section.substr(0, publications + 1);
  }
  for (const auto& [from, to] : dataset_edits_) {
    dataset_section = absl::StrReplaceAll(dataset_section, {{from, to}});
  }
  out << dataset_section;
}

void ServerProcess::DropPublications() {
  publications_ = false;
  WriteConfig();
}

absl::Status ServerProcess::Start() {
  int out_pipe[2];
  if (pipe(out_pipe) != 0) return absl::InternalError("pipe failed");
  const std::string config = dir_ + "/cohortd.yaml";
  const std::string log = dir_ + "/cohortd.log";
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    FILE* err = fopen(log.c_str(), "a");
    if (err != nullptr) dup2(fileno(err), STDERR_FILENO);
    close(out_pipe[0]);
    execl(COHORTD_BINARY, COHORTD_BINARY, "--config", config.c_str(),
          "--shutdown-grace", "5", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out_pipe[1]);
  // Read stdout until the "listening on port N" line.
  std::string seen;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  char buf[256];
  while (absl::Now() < deadline) {
    const ssize_t n = read(out_pipe[0], buf, sizeof(buf));
    if (n <= 0) break;
    seen.append(buf, n);
    const size_t at = seen.find("listening on port ");
    if (at != std::string::npos && seen.find('\n', at) != std::string::npos) {
      port_ = std::atoi(seen.c_str() + at + strlen("listening on port "));
      auto port_after = [&seen](const std::string& prefix) {
        const size_t p = seen.find(prefix);
        return p == std::string::npos
                   ? 0
                   : std::atoi(seen.c_str() + p + prefix.size());
      };
      metrics_port_ = port_after("cohortd: metrics on port ");
      operator_metrics_port_ = port_after("cohortd: operator metrics on port ");
      close(out_pipe[0]);
      return absl::OkStatus();
    }
  }
  close(out_pipe[0]);
  std::ifstream err(log);
  std::string log_text((std::istreambuf_iterator<char>(err)),
                       std::istreambuf_iterator<char>());
  Kill();
  return absl::UnavailableError(
      absl::StrCat("cohortd did not start; its log:\n", log_text));
}

absl::StatusOr<int> ServerProcess::Stop() {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (!WIFEXITED(status)) {
    return absl::InternalError(absl::StrCat("cohortd died: ", status));
  }
  return WEXITSTATUS(status);
}

absl::StatusOr<int> ServerProcess::WaitForExit(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) != pid_) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("cohortd is still running");
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  pid_ = -1;
  if (!WIFEXITED(status)) {
    return absl::InternalError(absl::StrCat("cohortd died: ", status));
  }
  return WEXITSTATUS(status);
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::shared_ptr<grpc::Channel> ServerProcess::Channel() const {
  return grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
}

HttpResponse CurlGet(const std::string& url, const std::string& token) {
  // The status code goes on a line of its own after the body.
  std::string command = "curl -s --max-time 5 -w '\n%{http_code}' ";
  if (!token.empty()) {
    command += absl::StrCat("-H 'Authorization: Bearer ", token, "' ");
  }
  command += absl::StrCat("'", url, "'");
  HttpResponse response;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return response;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  pclose(pipe);
  const size_t last = out.rfind('\n');
  if (last == std::string::npos) return response;
  response.code = std::atoi(out.c_str() + last + 1);
  response.body = out.substr(0, last);
  return response;
}

std::unique_ptr<grpc::ClientContext> AuthContext(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) {
    context->AddMetadata("authorization", "Bearer " + token);
  }
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(30));
  return context;
}

}  // namespace cohortd::testing

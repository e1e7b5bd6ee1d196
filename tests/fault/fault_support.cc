#include "tests/fault/fault_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/storage/keys.h"
#include "server/storage/rocksdb_store.h"

#ifndef COHORTD_BINARY
#error "COHORTD_BINARY must name the cohortd executable"
#endif

namespace cohortd::testing {

RunResult RunCohortd(const std::vector<std::string>& args,
                     absl::Duration timeout) {
  char path[] = "/tmp/cohortd-fault-run-XXXXXX";
  const int fd = mkstemp(path);
  RunResult result;
  if (fd < 0) {
    result.output = "mkstemp failed";
    return result;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(COHORTD_BINARY));
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(COHORTD_BINARY, argv.data());
    _exit(127);
  }
  close(fd);
  int status = 0;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
      break;
    }
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::ifstream in(path);
  result.output.assign(std::istreambuf_iterator<char>(in),
                       std::istreambuf_iterator<char>());
  unlink(path);
  return result;
}

cohortd::v1::PushRequest SessionBatch(const std::string& prefix, int first,
                                      int n) {
  constexpr int64_t kJan2026 = 1767225600;
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = first; i < first + n; ++i) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id(absl::StrCat(prefix, "-", i));
    obs->set_account_id(absl::StrCat("account-", i % 997));
    obs->mutable_session_start()->set_seconds(kJan2026 + i * 60);
    obs->set_source("work_mode_classifier@3");
    (*obs->mutable_labels())["work_mode"] = "fix";
    (*obs->mutable_measures())["actions_per_prompt"] = i % 50;
  }
  return request;
}

absl::StatusOr<std::set<std::string>> StoredSessionIds(
    const std::string& data_dir) {
  absl::StatusOr<std::unique_ptr<Store>> store =
      OpenRocksDbStore(data_dir, RocksDbStoreOptions());
  if (!store.ok()) return store.status();
  std::set<std::string> ids;
  std::string dataset;
  std::string session;
  std::string source;
  absl::Status parse;
  absl::Status scan = (*store)->Scan(
      keys::SessionPrefix("sessions"),
      [&](absl::string_view key, absl::string_view) {
        if (!keys::ParseSessionRecordKey(key, &dataset, &session, &source)) {
          parse = absl::DataLossError(absl::StrCat("bad key ", key));
          return false;
        }
        if (source.empty()) ids.insert(session);  // the session's header
        return true;
      });
  if (!scan.ok()) return scan;
  if (!parse.ok()) return parse;
  return ids;
}

}  // namespace cohortd::testing

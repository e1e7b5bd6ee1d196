// cohortd: flags, config, wiring, signals; nothing else (STYLE.md).
//
//   cohortd --config config/dev.yaml [--listen HOST:PORT]
//           [--metrics-listen HOST:PORT] [--data-dir DIR]
//   cohortd --config FILE [--data-dir DIR] --restore-from BACKUP_DIR
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/logging.h"
#include "server/config/config.h"
#include "server/metrics/prometheus_metrics.h"
#include "server/service/server.h"
#include "server/storage/rocksdb_store.h"

namespace {

constexpr char kUsage[] =
    "usage: cohortd --config FILE [options]\n"
    "\n"
    "Serves cohortd's gRPC API (ingest, query) and Prometheus metrics.\n"
    "\n"
    "options:\n"
    "  --config FILE            YAML config (see config/cohortd.yaml)\n"
    "  --listen HOST:PORT       gRPC address; overrides server.listen\n"
    "  --metrics-listen HOST:PORT\n"
    "                           /metrics address; overrides "
    "server.metrics_listen\n"
    "  --data-dir DIR           store folder; overrides server.data_dir\n"
    "  --shutdown-grace SECONDS time in-flight calls get on SIGTERM "
    "(default 10)\n"
    "  --restore-from DIR       restore the backup in DIR (Admin.Backup) "
    "into the\n"
    "                           data dir, which must be empty or absent, "
    "and exit\n"
    "                           (0 on success) without serving\n"
    "  --help                   this text\n"
    "\n"
    "SIGTERM or SIGINT stop the server gracefully: in-flight pushes finish\n"
    "and are committed before it exits.\n";

struct Flags {
  std::string config;
  std::string listen;
  std::string metrics_listen;
  std::string data_dir;
  double shutdown_grace_seconds = 10;
  std::string restore_from;
};

// Accepts "--name value" and "--name=value". Returns false (after printing
// why) on an unknown flag or a missing value.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "cohortd: flag %s needs a value\n%s", arg.c_str(),
                   kUsage);
      return false;
    }
    if (arg == "--config") {
      flags->config = value;
    } else if (arg == "--listen") {
      flags->listen = value;
    } else if (arg == "--metrics-listen") {
      flags->metrics_listen = value;
    } else if (arg == "--data-dir") {
      flags->data_dir = value;
    } else if (arg == "--restore-from") {
      flags->restore_from = value;
    } else if (arg == "--shutdown-grace") {
      char* end = nullptr;
      flags->shutdown_grace_seconds = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0' ||
          flags->shutdown_grace_seconds < 0) {
        std::fprintf(stderr, "cohortd: --shutdown-grace needs seconds >= 0\n");
        return false;
      }
    } else {
      std::fprintf(stderr, "cohortd: unknown flag %s\n%s", arg.c_str(),
                   kUsage);
      return false;
    }
  }
  if (flags->config.empty()) {
    std::fprintf(stderr, "cohortd: --config is required\n%s", kUsage);
    return false;
  }
  return true;
}

// --restore-from: an offline restore into an empty data dir; the server
// does not start. Returns the exit code.
int Restore(const cohortd::Config& config, const std::string& backup_dir) {
  absl::Status status =
      cohortd::RestoreRocksDbStore(backup_dir, config.data_dir);
  if (!status.ok()) {
    std::fprintf(stderr, "cohortd: restore failed: %s\n",
                 status.ToString().c_str());
    return 1;
  }
  std::printf(
      "cohortd: restored %s into %s\n"
      "cohortd: the pseudonymisation key is not part of a backup; this "
      "store needs the key it was written with at %s\n",
      backup_dir.c_str(), config.data_dir.c_str(),
      config.pseudonymization_key_file.c_str());
  if (!std::filesystem::exists(config.pseudonymization_key_file)) {
    std::fprintf(stderr,
                 "cohortd: warning: %s does not exist; restore the key file "
                 "kept with the backup there before starting (a new key "
                 "would split every account in two)\n",
                 config.pseudonymization_key_file.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;

  absl::StatusOr<cohortd::Config> config =
      cohortd::LoadConfigFile(flags.config);
  if (!config.ok()) {
    std::fprintf(stderr, "cohortd: invalid config: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  if (!flags.listen.empty()) config->listen_address = flags.listen;
  if (!flags.metrics_listen.empty()) {
    config->metrics_address = flags.metrics_listen;
  }
  if (!flags.data_dir.empty()) config->data_dir = flags.data_dir;
  if (!flags.restore_from.empty()) return Restore(*config, flags.restore_from);

  // Block the stop signals in every thread (gRPC's and RocksDB's threads
  // inherit this mask) and wait for them here, so shutdown runs on the main
  // thread with no async-signal-safety concerns.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto metrics = cohortd::PrometheusMetrics::Create(config->metrics_address);
  if (!metrics.ok()) {
    std::fprintf(stderr, "cohortd: %s\n", metrics.status().ToString().c_str());
    return 1;
  }
  cohortd::LogInfo("main", "metrics on http://%s/metrics (port %d)",
                   config->metrics_address, (*metrics)->port());

  auto server =
      cohortd::CohortdServer::Start(*std::move(config), metrics->get());
  if (!server.ok()) {
    std::fprintf(stderr, "cohortd: cannot start: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  // Lines tests and scripts can wait for; "listening" comes last.
  std::printf("cohortd: metrics on port %d\n", (*metrics)->port());
  std::printf("cohortd: listening on port %d\n", (*server)->port());
  std::fflush(stdout);

  int signal = 0;
  sigwait(&stop_signals, &signal);
  cohortd::LogInfo("main", "received %s", strsignal(signal));
  (*server)->Shutdown(absl::Seconds(flags.shutdown_grace_seconds));
  return 0;
}

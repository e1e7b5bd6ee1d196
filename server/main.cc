// cohortd: flags, config, wiring, signals; nothing else (STYLE.md).
//
//   cohortd --config config/dev.yaml [--listen HOST:PORT]
//           [--metrics-listen HOST:PORT] [--operator-metrics-listen HOST:PORT]
//           [--data-dir DIR]
//   cohortd --verify --config FILE [--data-dir DIR]
//   cohortd --config FILE [--data-dir DIR] --restore-from BACKUP_DIR
//   cohortd --salvage --config FILE [--data-dir DIR] [--salvage-keep DIR]
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/allocator.h"
#include "server/common/logging.h"
#include "server/config/config.h"
#include "server/metrics/metrics_http_server.h"
#include "server/metrics/prometheus_metrics.h"
#include "server/service/auth.h"
#include "server/service/server.h"
#include "server/service/store_salvage.h"
#include "server/service/store_verifier.h"
#include "server/storage/rocksdb_store.h"

#ifndef COHORTD_VERSION
#error "COHORTD_VERSION must be the project version"
#endif

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
    "                           dashboards' /metrics address; overrides "
    "server.metrics_listen\n"
    "  --operator-metrics-listen HOST:PORT\n"
    "                           operators' /metrics address; overrides\n"
    "                           server.operator_metrics_listen\n"
    "  --data-dir DIR           store folder; overrides server.data_dir\n"
    "  --shutdown-grace SECONDS time in-flight calls get on SIGTERM "
    "(default 10)\n"
    "  --restore-from DIR       restore the backup in DIR (Admin.Backup) "
    "into the\n"
    "                           data dir, which must be empty or absent, "
    "and exit\n"
    "                           (0 on success) without serving\n"
    "  --verify                 check the store offline and exit: replays\n"
    "                           the WAL, verifies every SST block checksum,\n"
    "                           reads every key and parses every record;\n"
    "                           prints what it checked (opens read-only)\n"
    "  --salvage                brings up a DAMAGED store by dropping what\n"
    "                           cannot be read, printing what is lost, and\n"
    "                           exits (an operator's choice, never automatic;\n"
    "                           docs/storage.md \"After DATA_LOSS\"). The\n"
    "                           original folder is kept whole in\n"
    "                           DATA_DIR/../salvage-<UTC time>; refuses (exit\n"
    "                           3) when the damage touches the budget ledger,\n"
    "                           releases or audit log; an intact store is "
    "left\n"
    "                           as it is (\"nothing to salvage\", exit 0)\n"
    "  --salvage-keep DIR       with --salvage: keep the original there\n"
    "                           (absent or empty, same file system)\n"
    "  --help                   this text\n"
    "\n"
    "SIGTERM or SIGINT stop the server gracefully: in-flight pushes finish\n"
    "and are committed before it exits.\n"
    "\n"
    "exit status: 0 stopped cleanly (--verify: store intact); 1 cannot\n"
    "start or check (e.g. address in use, store locked); 2 bad flags or\n"
    "config; 3 the store is damaged (DATA_LOSS naming the file): cohortd\n"
    "refuses to start on it, or stops when it finds damage while running;\n"
    "see docs/storage.md.\n";

// Exit status when the store is damaged (DATA_LOSS), at start or --verify.
constexpr int kExitDataLoss = 3;

struct Flags {
  std::string config;
  std::string listen;
  std::string metrics_listen;
  std::string operator_metrics_listen;
  std::string data_dir;
  double shutdown_grace_seconds = 10;
  std::string restore_from;
  bool verify = false;
  // --salvage (server/service/store_salvage.h).
  bool salvage = false;
  std::string salvage_keep;
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
    if (arg == "--verify") {
      flags->verify = true;
      continue;
    }
    if (arg == "--salvage") {
      flags->salvage = true;
      continue;
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
    } else if (arg == "--operator-metrics-listen") {
      flags->operator_metrics_listen = value;
    } else if (arg == "--data-dir") {
      flags->data_dir = value;
    } else if (arg == "--salvage-keep") {
      flags->salvage_keep = value;
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
      std::fprintf(stderr, "cohortd: unknown flag %s\n%s", arg.c_str(), kUsage);
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
  // Before any thread: bounded malloc arenas (server/common/allocator.h).
  cohortd::TuneAllocator();
  // Everything cohortd creates (store files, the key, backups) is its
  // user's alone: files 0600, folders 0700.
  umask(077);
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
  if (!flags.operator_metrics_listen.empty()) {
    config->operator_metrics_address = flags.operator_metrics_listen;
  }
  if (!flags.data_dir.empty()) config->data_dir = flags.data_dir;
  if (!flags.restore_from.empty()) return Restore(*config, flags.restore_from);
  if (absl::Status exposure = cohortd::CheckServerExposure(*config);
      !exposure.ok()) {
    std::fprintf(stderr, "cohortd: invalid config: %s\n",
                 std::string(exposure.message()).c_str());
    return 2;
  }

  if (flags.salvage) {
    const absl::Status salvaged =
        cohortd::SalvageStoreOffline(*config, flags.salvage_keep, stdout);
    std::fflush(stdout);
    if (salvaged.ok()) return 0;
    std::fprintf(stderr, "cohortd: salvage failed: %s\n",
                 salvaged.ToString().c_str());
    return absl::IsFailedPrecondition(salvaged) || absl::IsDataLoss(salvaged)
               ? kExitDataLoss
               : 1;
  }

  if (flags.verify) {
    const absl::Status verified = cohortd::VerifyStoreOffline(*config, stdout);
    std::fflush(stdout);
    if (verified.ok()) return 0;
    std::fprintf(stderr, "cohortd: verify failed: %s\n",
                 verified.ToString().c_str());
    return absl::IsDataLoss(verified) ? kExitDataLoss : 1;
  }

  // Block the stop signals in every thread (gRPC's and RocksDB's threads
  // inherit this mask) and wait for them here, so shutdown runs on the main
  // thread with no async-signal-safety concerns.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Two registries on two addresses (server/metrics/metrics.h, "Two
  // endpoints"). Declared before the servers that use them, so they are
  // destroyed after.
  std::unique_ptr<cohortd::PrometheusMetrics> dashboard_metrics =
      cohortd::PrometheusMetrics::Create();
  std::unique_ptr<cohortd::PrometheusMetrics> operator_metrics =
      cohortd::PrometheusMetrics::Create();
  dashboard_metrics
      ->GetGauge("cohortd_build_info", "Always 1; the version is a label.",
                 {{"version", COHORTD_VERSION}})
      ->Set(1);
  dashboard_metrics
      ->GetGauge("cohortd_start_time_seconds",
                 "When this cohortd process started (Unix seconds).", {})
      ->Set(absl::ToUnixSeconds(absl::Now()));

  // The operator endpoint checks admin tokens against its own copy of the
  // principals (CohortdServer owns the config it is given).
  const cohortd::Config auth_config = *config;
  const cohortd::Authenticator operator_auth(auth_config);
  cohortd::MetricsHttpServer::Options operator_options;
  operator_options.listen_address = config->operator_metrics_address;
  if (cohortd::OperatorMetricsRequireToken(*config)) {
    operator_options.authorize = [&operator_auth](absl::string_view header) {
      return operator_auth.Authorize(header, {cohortd::Role::kAdmin}).status();
    };
  }
  auto dashboard_server = cohortd::MetricsHttpServer::Start(
      dashboard_metrics.get(), {config->metrics_address, nullptr});
  if (!dashboard_server.ok()) {
    std::fprintf(stderr, "cohortd: %s\n",
                 dashboard_server.status().ToString().c_str());
    return 1;
  }
  auto operator_server = cohortd::MetricsHttpServer::Start(
      operator_metrics.get(), std::move(operator_options));
  if (!operator_server.ok()) {
    std::fprintf(stderr, "cohortd: %s\n",
                 operator_server.status().ToString().c_str());
    return 1;
  }
  cohortd::LogInfo("main", "dashboard metrics on http://%s/metrics (port %d)",
                   config->metrics_address, (*dashboard_server)->port());
  cohortd::LogInfo(
      "main", "operator metrics on http://%s/metrics (port %d, %s)",
      config->operator_metrics_address, (*operator_server)->port(),
      cohortd::OperatorMetricsRequireToken(*config) ? "admin token required"
                                                    : "no token: loopback");

  // The full checksum pass over the store runs beside the start, not
  // before it (a restart then reads only what it needs; damage found
  // stops the process with DATA_LOSS, exit status 3).
  cohortd::RocksDbStoreOptions store_options;
  store_options.verify_checksums_in_background = true;
  auto server =
      cohortd::CohortdServer::Start(*std::move(config), dashboard_metrics.get(),
                                    operator_metrics.get(), store_options);
  if (!server.ok()) {
    std::fprintf(stderr, "cohortd: cannot start: %s\n",
                 server.status().ToString().c_str());
    if (!absl::IsDataLoss(server.status())) return 1;
    std::fprintf(stderr,
                 "cohortd: the store is damaged and was left as it is; "
                 "`cohortd --verify` checks it (docs/storage.md)\n");
    return kExitDataLoss;
  }
  // Lines tests and scripts can wait for; "listening" comes last.
  std::printf("cohortd: metrics on port %d\n", (*dashboard_server)->port());
  std::printf("cohortd: operator metrics on port %d\n",
              (*operator_server)->port());
  std::printf("cohortd: listening on port %d\n", (*server)->port());
  std::fflush(stdout);

  // Waits for a stop signal, or for the store to report corruption while
  // running (CohortdServer::data_loss), which stops the process as a
  // damaged store stops a start: exit status 3.
  int signal = 0;
  absl::Status data_loss;
  for (;;) {
    const timespec poll = {0, 200 * 1000 * 1000};
    signal = sigtimedwait(&stop_signals, nullptr, &poll);
    if (signal > 0) break;
    data_loss = (*server)->data_loss();
    if (!data_loss.ok()) break;
  }
  if (signal > 0) cohortd::LogInfo("main", "received %s", strsignal(signal));
  (*server)->Shutdown(data_loss.ok()
                          ? absl::Seconds(flags.shutdown_grace_seconds)
                          : absl::Seconds(1));
  (*operator_server)->Stop();
  (*dashboard_server)->Stop();
  // Damage found during the shutdown counts too.
  if (data_loss.ok()) data_loss = (*server)->data_loss();
  if (data_loss.ok()) return 0;
  std::fprintf(stderr,
               "cohortd: stopped: %s\n"
               "cohortd: the store is damaged and was left as it is; "
               "`cohortd --verify` checks it (docs/storage.md)\n",
               data_loss.ToString().c_str());
  return kExitDataLoss;
}

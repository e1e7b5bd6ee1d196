#include "server/service/server.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpc/grpc.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/backend/clickhouse_backfill.h"
#include "server/backend/tee_listener.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/ingest/session_merge.h"
#include "server/storage/rocksdb_store.h"

namespace cohortd {
namespace {

absl::StatusOr<std::string> ReadTextFile(const std::string& path,
                                         absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " file '", path, "'"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A private key that group or other may read is refused, as the
// pseudonymisation key is: whoever reads it can impersonate the server.
absl::Status CheckPrivateKeyMode(const std::string& path,
                                 absl::string_view what) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " file '", path, "'"));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s file '%s' has mode %04o: group and other must have no access "
        "to a private key (chmod 600 '%s')",
        what, path, st.st_mode & 07777, path));
  }
  return absl::OkStatus();
}

// The data dir holds pseudonymised records: only cohortd's user may list
// or read it. Creates it 0700, or takes group/other bits off an existing
// one and off everything already in it (files a version without this rule
// made 0644).
absl::Status PrepareDataDir(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot create data dir '",
                                               data_dir, "': ", ec.message()));
  }
  auto restrict = [](const fs::path& path) -> absl::Status {
    std::error_code ec;
    const fs::file_status status = fs::symlink_status(path, ec);
    if (ec || fs::is_symlink(status)) return absl::OkStatus();
    const fs::perms open = fs::perms::group_all | fs::perms::others_all;
    if ((status.permissions() & open) == fs::perms::none) {
      return absl::OkStatus();  // the usual case: no chmod per store file
    }
    fs::permissions(path, open, fs::perm_options::remove, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot restrict permissions of '", path.string(),
                       "' to its owner: ", ec.message()));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(restrict(data_dir));
  for (auto it = fs::recursive_directory_iterator(data_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    RETURN_IF_ERROR(restrict(it->path()));
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot list data dir '", data_dir, "': ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(
    const TlsSpec& tls) {
  if (!tls.enabled) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  RETURN_IF_ERROR(CheckPrivateKeyMode(tls.key_file, "tls.key_file"));
  ASSIGN_OR_RETURN(pair.private_key,
                   ReadTextFile(tls.key_file, "tls.key_file"));
  ASSIGN_OR_RETURN(pair.cert_chain,
                   ReadTextFile(tls.cert_file, "tls.cert_file"));
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls.client_ca_file.empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs,
                     ReadTextFile(tls.client_ca_file, "tls.client_ca_file"));
    options.client_certificate_request =
        tls.require_client_cert
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

// server.limits (config.h LimitsSpec) as gRPC server options.
void ApplyLimits(const Config& config, grpc::ServerBuilder* builder) {
  const LimitsSpec& limits = config.limits;
  // The largest legal batch and no more: a bigger request is refused by
  // gRPC (RESOURCE_EXHAUSTED) before it is read into memory.
  builder->SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(
      MaxReceiveMessageBytes(config), std::numeric_limits<int>::max())));
  // Every call in progress holds a thread of the sync server; the quota
  // caps them (and so the memory of requests being handled), beyond which
  // gRPC answers RESOURCE_EXHAUSTED.
  grpc::ResourceQuota quota("cohortd");
  quota.SetMaxThreads(limits.max_threads);
  builder->SetResourceQuota(quota);
  auto ms = [](absl::Duration d) {
    return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d),
                                              std::numeric_limits<int>::max()));
  };
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                              ms(limits.keepalive_time));
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                              ms(limits.keepalive_timeout));
  // Clients may ping as often as the server does.
  builder->AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      std::min(ms(limits.keepalive_time), 10000));
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (limits.max_connection_age > absl::ZeroDuration()) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                                ms(limits.max_connection_age));
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                                ms(limits.max_connection_age_grace));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CohortdServer>> CohortdServer::Start(
    Config config, MetricsRegistry* dashboard_metrics,
    MetricsRegistry* operator_metrics,
    const RocksDbStoreOptions& store_options) {
  std::unique_ptr<CohortdServer> server(new CohortdServer());
  server->config_ = std::move(config);
  // Wiring of the two registries (server/metrics/metrics.h, "Two
  // endpoints"): `metrics` (operator) for whatever reads records,
  // `dashboard` for the query and admin services, the publisher and the
  // budgets.
  server->metrics_ = operator_metrics;
  server->dashboard_metrics_ = dashboard_metrics;
  MetricsRegistry* const metrics = operator_metrics;
  MetricsRegistry* const dashboard = dashboard_metrics;
  const Config& cfg = server->config_;

  ASSIGN_OR_RETURN(auto credentials, MakeCredentials(cfg.tls));
  RETURN_IF_ERROR(PrepareDataDir(cfg.data_dir));
  ASSIGN_OR_RETURN(std::string key,
                   LoadOrCreateKeyFile(cfg.pseudonymization_key_file));
  ASSIGN_OR_RETURN(server->pseudonymizer_, Pseudonymizer::Create(key));
  LogInfo("server", "opening store in %s", cfg.data_dir);
  ASSIGN_OR_RETURN(server->store_,
                   OpenRocksDbStore(cfg.data_dir, store_options));
  // Session records of an older storage format are rewritten before
  // anything reads them (a no-op on a current store).
  RETURN_IF_ERROR(MigrateSessionStore(server->store_.get()));
  // The index is loaded before the ingestor starts: the last sealed
  // snapshot as persisted in the store (a restart serves the same
  // snapshot; index/snapshot.h "Restart"), or, on a first start, built
  // from the records and sealed. The snapshot layer is the ingestor's
  // listener (and its open-domain catalog: the index plus what awaits the
  // next seal), so no commit is missed and none is seen before a seal.
  {
    std::vector<const DatasetSpec*> specs;
    for (const DatasetSpec& spec : cfg.datasets) specs.push_back(&spec);
    ASSIGN_OR_RETURN(server->index_,
                     ColumnarIndex::Create(specs, ColumnarIndex::Options()));
  }
  ASSIGN_OR_RETURN(server->snapshots_,
                   SnapshotIndex::Open(&cfg, server->index_.get(),
                                       server->store_.get(), Clock::Real()));
  IngestListener* listener = server->snapshots_.get();
  if (cfg.storage.engine == StorageSpec::Engine::kClickHouse) {
    // Issue 10: sessions also go to ClickHouse (before each push is
    // acknowledged), and queries compute their statistics there.
    ClickHouseOptions ch;
    ch.endpoint.url = cfg.storage.clickhouse.url;
    ch.endpoint.user = cfg.storage.clickhouse.user;
    ch.database = cfg.storage.clickhouse.database;
    ch.cluster = cfg.storage.clickhouse.cluster;  // "" = one node
    ch.outbox_dir = cfg.data_dir + "/clickhouse-outbox";
    ch.max_outbox_bytes = cfg.storage.clickhouse.max_outbox_bytes;
    if (!cfg.storage.clickhouse.password_file.empty()) {
      std::ifstream in(cfg.storage.clickhouse.password_file);
      if (!in) {
        return absl::NotFoundError(
            absl::StrCat("storage.clickhouse.password_file: cannot read ",
                         cfg.storage.clickhouse.password_file));
      }
      ch.endpoint.password.assign(std::istreambuf_iterator<char>(in), {});
      while (!ch.endpoint.password.empty() &&
             (ch.endpoint.password.back() == '\n' ||
              ch.endpoint.password.back() == '\r')) {
        ch.endpoint.password.pop_back();
      }
    }
    LogInfo("server", "query backend: clickhouse at %s, database %s",
            ch.endpoint.url, ch.database);
    ASSIGN_OR_RETURN(server->clickhouse_,
                     ClickHouseBackend::Create(ch, metrics));
    // A data dir that ran on the embedded engine: its sessions go to
    // ClickHouse once, before the start snapshot is observed.
    RETURN_IF_ERROR(BackfillClickHouse(cfg, server->store_.get(),
                                       server->clickhouse_.get(),
                                       cfg.data_dir + "/clickhouse-backfill")
                        .status());
    server->snapshots_->SetSealObserver(server->clickhouse_.get());
    server->clickhouse_tee_ = std::make_unique<TeeListener>(
        server->snapshots_.get(), server->clickhouse_.get());
    listener = server->clickhouse_tee_.get();
  } else {
    // The store moves on without ClickHouse: a later switch back must
    // backfill again.
    std::error_code ignored;
    std::filesystem::remove(cfg.data_dir + "/clickhouse-backfill", ignored);
  }
  ASSIGN_OR_RETURN(
      server->ingestor_,
      Ingestor::Create(&cfg, server->store_.get(), server->pseudonymizer_.get(),
                       metrics, listener, server->snapshots_.get()));
  ASSIGN_OR_RETURN(
      server->journal_,
      ReleaseJournal::Open(&cfg, server->store_.get(), Clock::Real()));
  // Contribution bounding gets a key of its own, derived from the server
  // secret under a label no account id is expected to carry.
  const Digest256 bounding_key =
      server->pseudonymizer_->Pseudonymize("cohortd/contribution-bounding/v1");
  ASSIGN_OR_RETURN(std::unique_ptr<HmacSha256> bounding_hmac,
                   HmacSha256::Create(absl::string_view(
                       reinterpret_cast<const char*>(bounding_key.data()),
                       bounding_key.size())));
  server->query_engine_ = std::make_unique<QueryEngine>(
      &cfg, server->snapshots_.get(), server->journal_.get(),
      std::move(bounding_hmac), metrics);
  if (server->clickhouse_ != nullptr) {
    server->query_engine_->UseBackend(server->clickhouse_.get());
  }
  ASSIGN_OR_RETURN(server->publisher_,
                   Publisher::Create(&cfg, server->query_engine_.get(),
                                     dashboard, Clock::Real()));
  server->auth_ = std::make_unique<Authenticator>(cfg);
  server->limiter_ = std::make_unique<RateLimiter>(
      cfg.limits, MaxReceiveMessageBytes(cfg), Clock::Real(), metrics);
  server->ingest_service_ = std::make_unique<IngestService>(
      server->auth_.get(), server->ingestor_.get(), server->limiter_.get(),
      metrics);
  server->query_service_ = std::make_unique<QueryService>(
      &cfg, server->auth_.get(), server->query_engine_.get(),
      server->journal_.get(), dashboard);
  server->query_service_->set_rate_limiter(server->limiter_.get());
  // Deletions (erasure, retention) are audited in the same write that
  // deletes: the journal appends its entry to the ingestor's batch.
  ErasureAuditor auditor =
      [journal = server->journal_.get()](
          const std::string& principal, const std::string& dataset,
          absl::string_view reason, int64_t sessions, WriteBatch* batch,
          const std::function<absl::Status()>& write) {
        return journal->CommitErasure(principal, dataset, reason, sessions,
                                      batch, write);
      };
  server->eraser_ = std::make_unique<AccountEraser>(
      &cfg, server->ingestor_.get(), server->pseudonymizer_.get(), auditor);
  server->retention_ = std::make_unique<RetentionJob>(
      &cfg, server->ingestor_.get(), Clock::Real(), auditor);
  server->admin_service_ = std::make_unique<AdminService>(
      server->auth_.get(), server->journal_.get(), dashboard,
      server->store_.get(), server->eraser_.get());
  server->admin_service_->set_snapshots(server->snapshots_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(cfg.listen_address, credentials, &server->port_);
  builder.RegisterService(server->ingest_service_.get());
  builder.RegisterService(server->query_service_.get());
  builder.RegisterService(server->admin_service_.get());
  ApplyLimits(cfg, &builder);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(server->call_tracker_.NewInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", cfg.listen_address,
                     " (address in use, or not a valid host:port)"));
  }
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(true);
  server->health_thread_ =
      std::thread([s = server.get()] { s->WatchStoreHealth(); });
  server->snapshots_->Start();
  server->publisher_->Start();
  server->retention_->Start();
  server->stats_thread_ = std::thread([s = server.get()] {
    do {
      s->PublishStoreStats();
      s->PublishBudgets();
    } while (!s->stop_stats_.WaitForNotificationWithTimeout(absl::Seconds(5)));
  });
  LogInfo("server", "serving gRPC on port %d (%s), %d dataset(s)",
          server->port_, cfg.tls.enabled ? "TLS" : "plaintext",
          cfg.datasets.size());
  return server;
}

CohortdServer::~CohortdServer() { Shutdown(absl::Seconds(10)); }

void CohortdServer::PublishStoreStats() {
  const StoreStats stats = store_->Stats();
  metrics_
      ->GetGauge("cohortd_store_live_data_bytes",
                 "Estimated bytes stored on disk.", {})
      ->Set(stats.live_data_bytes);
  metrics_
      ->GetGauge("cohortd_store_wal_syncs",
                 "Synced WAL writes since the store was opened.", {})
      ->Set(stats.wal_syncs);
  metrics_
      ->GetGauge("cohortd_store_pending_compaction_bytes",
                 "Bytes RocksDB estimates compaction still has to rewrite.", {})
      ->Set(stats.pending_compaction_bytes);
  metrics_
      ->GetGauge("cohortd_index_memory_bytes",
                 "Approximate heap bytes of the columnar index.", {})
      ->Set(index_->MemoryBytes());
  for (const DatasetSpec& dataset : config_.datasets) {
    absl::StatusOr<std::unique_ptr<DatasetView>> view =
        index_->Read(dataset.name);
    if (!view.ok()) continue;
    metrics_
        ->GetGauge("cohortd_index_sessions", "Sessions in the columnar index.",
                   {{"dataset", dataset.name}})
        ->Set((*view)->num_sessions());
  }
  // What waits for the next seal (server.snapshot_buffer_mib bounds it).
  for (const DatasetSpec& dataset : config_.datasets) {
    metrics_
        ->GetGauge("cohortd_snapshot_buffer_bytes",
                   "Estimated bytes of the commits waiting for the next seal "
                   "(past server.snapshot_buffer_mib they are folded into "
                   "the next index).",
                   {{"dataset", dataset.name}})
        ->Set(static_cast<double>(snapshots_->PendingBytes(dataset.name)));
  }
}

absl::Status CohortdServer::data_loss() const {
  absl::MutexLock lock(&data_loss_mu_);
  return data_loss_;
}

void CohortdServer::WatchStoreHealth() {
  bool serving = true;
  do {
    absl::Status health = store_->Health();
    if (absl::IsDataLoss(health)) {
      // Never SERVING again: the process is about to stop (main.cc).
      grpc_server_->GetHealthCheckService()->SetServingStatus(false);
      LogError("server", "health NOT_SERVING, stopping: %s", health.ToString());
      absl::MutexLock lock(&data_loss_mu_);
      data_loss_ = health;
      return;
    }
    // Issue 10: a full ClickHouse outbox refuses pushes; say so here too.
    if (health.ok() && clickhouse_ != nullptr) {
      health = clickhouse_->CheckOutbox();
    }
    if (health.ok() != serving) {
      serving = health.ok();
      grpc_server_->GetHealthCheckService()->SetServingStatus(serving);
      if (serving) {
        LogInfo("server", "store writable again: health SERVING");
      } else {
        LogWarning("server", "health NOT_SERVING: %s", health.ToString());
      }
    }
  } while (
      !stop_health_.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
}

// The ledger moves only with releases, so the budgets are public
// (metrics.h).
void CohortdServer::PublishBudgets() {
  auto publish = [&](const std::string& dataset, const std::string& label,
                     const absl::StatusOr<cohortd::v1::Budget>& budget) {
    if (!budget.ok()) return;
    const MetricLabels labels = {{"dataset", dataset}, {"principal", label}};
    dashboard_metrics_
        ->GetGauge("cohortd_budget_total_epsilon",
                   "Privacy budget, as epsilon (principal \"*\": the "
                   "dataset as a whole).",
                   labels)
        ->Set(budget->total().epsilon());
    dashboard_metrics_
        ->GetGauge("cohortd_budget_spent_epsilon",
                   "Privacy budget spent, as epsilon (rounded up).", labels)
        ->Set(budget->spent().epsilon());
    dashboard_metrics_
        ->GetGauge("cohortd_budget_remaining_epsilon",
                   "Privacy budget remaining, as epsilon (rounded down).",
                   labels)
        ->Set(budget->remaining().epsilon());
  };
  for (const DatasetSpec& dataset : config_.datasets) {
    publish(dataset.name, "*", journal_->DatasetBudget(dataset.name));
    for (const Principal& p : config_.principals) {
      if (p.role == Role::kIngest) continue;
      publish(dataset.name, p.name, journal_->GetBudget(p.name, dataset.name));
    }
    for (const PublicationSpec& pub : config_.publications) {
      if (pub.dataset != dataset.name) continue;
      const std::string principal = PublicationPrincipal(pub.name);
      publish(dataset.name, principal,
              journal_->GetBudget(principal, dataset.name));
    }
  }
}

void CohortdServer::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  LogInfo("server", "shutting down (grace %s)", absl::FormatDuration(grace));
  stop_health_.Notify();
  if (health_thread_.joinable()) health_thread_.join();
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
    // Idle streams first, so that only batches in progress are waited for.
    if (ingest_service_ != nullptr) ingest_service_->BeginShutdown();
    const absl::Time deadline = absl::Now() + grace;
    // Drain before gRPC's Shutdown, which would end a call racing in with
    // CANCELLED (call_tracker.h): calls in progress finish, new ones are
    // answered UNAVAILABLE, until none has arrived for kDrainQuiet (at
    // most kMaxDrain, within the grace).
    constexpr absl::Duration kDrainQuiet = absl::Milliseconds(100);
    constexpr absl::Duration kMaxDrain = absl::Seconds(1);
    call_tracker_.BeginDraining();
    const bool quiet = call_tracker_.AwaitQuiet(
        kDrainQuiet, std::min(deadline, absl::Now() + kMaxDrain));
    LogInfo("server", "drained: %d new call(s) answered UNAVAILABLE; %s",
            call_tracker_.calls_refused(),
            quiet ? "quiet" : "calls still arriving or in progress");
    // Stops accepting at once; returns when every call is done and every
    // connection closed, or cancels what is left at the deadline.
    absl::Notification grpc_stopped;
    std::thread stopper([&] {
      grpc_server_->Shutdown(absl::ToChronoTime(deadline));
      grpc_stopped.Notify();
    });
    // gRPC would also wait for idle client connections (a worker keeps its
    // channel open) until the deadline: once no call is in progress, close
    // them, repeating in case one raced in before the listener stopped.
    if (call_tracker_.AwaitNoCalls(deadline)) {
      do {
        grpc_server_cancel_all_calls(grpc_server_->c_server());
      } while (!grpc_stopped.WaitForNotificationWithTimeout(
          absl::Milliseconds(100)));
    }
    stopper.join();
    grpc_server_->Wait();
  }
  if (publisher_ != nullptr) publisher_->Stop();
  if (retention_ != nullptr) retention_->Stop();
  if (snapshots_ != nullptr) snapshots_->Stop();
  if (ingestor_ != nullptr) ingestor_->Shutdown();
  stop_stats_.Notify();
  if (stats_thread_.joinable()) stats_thread_.join();
  publisher_.reset();
  retention_.reset();
  eraser_.reset();
  query_engine_.reset();
  journal_.reset();
  ingestor_.reset();
  snapshots_.reset();
  index_.reset();
  store_.reset();
  LogInfo("server", "stopped");
}

}  // namespace cohortd

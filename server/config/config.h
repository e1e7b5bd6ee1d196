// The cohortd configuration: what the YAML file (config/cohortd.yaml,
// documented in place) says, parsed and validated into plain structs.
//
// Everything here is public information: schemas, bounds, privacy
// parameters and token *hashes*. Secrets (the pseudonymisation key, the
// plaintext tokens) live in files the config only names.
#ifndef COHORTD_SERVER_CONFIG_CONFIG_H_
#define COHORTD_SERVER_CONFIG_CONFIG_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cohortd {

enum class Role { kIngest, kAnalyst, kAdmin };

// "ingest", "analyst", "admin".
absl::string_view RoleName(Role role);

struct Principal {
  std::string name;
  Role role = Role::kAnalyst;
  // SHA-256 of the bearer token; the plaintext token is never configured.
  std::array<uint8_t, 32> token_sha256{};
};

struct DimensionSpec {
  std::string name;
  // Closed domain: `values` lists every allowed value. Open domain
  // (e.g. task_topic): any value of at most `max_length` bytes, released
  // only through DP partition selection.
  bool open_domain = false;
  std::vector<std::string> values;
  int max_length = 0;
  // Derived by the server rather than pushed; the only one today is
  // "month" ("YYYY-MM", UTC, from session_start). Pushing a label for a
  // derived dimension is a rejection.
  bool derived = false;
};

struct MeasureSpec {
  std::string name;
  // Public clamping bounds: every value is clamped into [lower, upper]
  // before it is aggregated. lower < upper.
  double lower = 0;
  double upper = 0;
  // Optional hard validity range: a pushed value outside it is rejected
  // (rather than clamped). When set it contains [lower, upper].
  std::optional<double> valid_min;
  std::optional<double> valid_max;
  // Fixed-point step: values are rounded to a multiple of it before noise
  // is added, so noise only ever meets integers. > 0.
  double granularity = 1;
};

// A derived band dimension (issue 11 item 4): a measure cut at public
// edges, so the measure can be a control of an adjusted metric
// (Metric.adjust_for). Band i holds values v with edges[i-1] <= v <
// edges[i] (clamped to the measure's bounds first); `levels` names them
// "<e1", "e1-e2", ..., ">=en". Sessions without the measure have no band.
struct BandSpec {
  std::string name;
  std::string measure;
  std::vector<double> edges;        // strictly increasing, inside bounds
  std::vector<std::string> levels;  // edges.size() + 1 names

  // The band of `value` (0 .. edges.size()).
  int LevelOf(double value) const;
};

// A budget stated as (epsilon, delta); the ledger keeps it as zCDP.
struct BudgetSpec {
  double epsilon = 0;
  double delta = 0;
};

struct PrivacySpec {
  // Minimum number of distinct accounts for a cohort to be released; a
  // pre-threshold in front of DP partition selection. >= 1.
  int k = 10;
  double default_epsilon = 1.0;     // per query when a request says 0
  double max_epsilon = 2.0;         // per query cap, >= default_epsilon
  double delta = 1e-7;              // per query, in (0, 1e-3]
  int max_cohorts_per_account = 4;  // L0 contribution bound, >= 1
  int max_sessions_per_cohort = 8;  // Linf contribution bound, >= 1
  BudgetSpec principal_budget;      // per principal per dataset
  BudgetSpec dataset_budget;        // all principals together
  // Budgets of particular principals in place of principal_budget; each
  // publication's own budget is here, under its principal
  // (PublicationPrincipal).
  std::map<std::string, BudgetSpec> principal_budgets;

  // The budget of `principal`: its own entry, else principal_budget.
  const BudgetSpec& PrincipalBudget(absl::string_view principal) const;
};

struct DatasetSpec {
  std::string name;
  std::string description;
  std::vector<DimensionSpec> dimensions;  // in configured order
  std::vector<MeasureSpec> measures;      // in configured order
  PrivacySpec privacy;
  // Sessions that started longer ago than this are deleted by the
  // retention job (server/ingest/retention.h); zero keeps them forever.
  absl::Duration retention = absl::ZeroDuration();
  // Derived band dimensions (config key `bands`), usable in adjust_for.
  std::vector<BandSpec> bands;

  // Null when there is no such dimension / measure. The returned pointer
  // borrows from this spec.
  const DimensionSpec* FindDimension(absl::string_view name) const;
  const MeasureSpec* FindMeasure(absl::string_view name) const;
  const BandSpec* FindBand(absl::string_view name) const;
};

// A figure cohortd releases on its own, on a schedule, and exposes on
// /metrics for dashboards (issue 5). It is released through the normal
// path (budget ledger, release cache, audit log) under its own principal
// and budget; scrapes only read the stored release.
struct PublicationSpec {
  std::string name;  // identifier; also the `publication` metric label
  std::string dataset;
  // The AggregateRequest as protobuf JSON (from the YAML `request:`
  // mapping); validated against the dataset when the server starts.
  std::string request_json;
  absl::Duration every = absl::Hours(1);  // how often to recompute
  // Which months to read: all of them, only closed months (before the
  // current UTC month: the figure changes once a month), or the last N
  // closed months (a sliding window).
  enum class Months { kAll, kClosed, kLastClosed } months = Months::kAll;
  int last_months = 0;  // kLastClosed only, >= 1
  BudgetSpec budget;    // the publication's own, durable budget
};

// "publisher/<publication name>": the principal a publication releases
// under. '/' cannot appear in configured principal names, so it cannot
// collide with one.
std::string PublicationPrincipal(absl::string_view publication);

struct TlsSpec {
  bool enabled = false;
  std::string cert_file;       // PEM server certificate chain
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CA bundle; set => clients may present
                               // certificates signed by it
  bool require_client_cert = false;  // mutual TLS; needs client_ca_file
};

// Caps on what pushes may add (config section `ingest`). A push beyond one
// is a Rejection of the offending observation naming the field and limit.
struct IngestCaps {
  // Distinct sources one session may have.
  int max_sources_per_session = 64;
  // Distinct values each open-domain dimension of a dataset may hold.
  int max_open_domain_values = 100000;
};

// Resource limits of the gRPC server (`server.limits` in the YAML; every
// field has a default, documented in config/cohortd.yaml). A rate of 0
// means unlimited.
struct LimitsSpec {
  // Receive allowance per observation: the largest request the server
  // reads is max_batch_size * observation_bytes + 64 KiB
  // (MaxReceiveMessageBytes); gRPC refuses a larger one with
  // RESOURCE_EXHAUSTED before reading it into memory.
  int observation_bytes = 2048;
  // gRPC's thread quota. gRPC 1.51's sync server runs every call in
  // progress on a thread of its own and keeps one more thread polling for
  // new calls, so at most max_threads - 1 calls (of any method) are served
  // at once; the next one is answered RESOURCE_EXHAUSTED "Server Threadpool
  // Exhausted" by gRPC itself (not queued, no retry hint, not counted in
  // cohortd_limit_rejections_total). At least max_streams + 2, so that
  // queries still get through while ingest streams take their whole share
  // (the defaults leave 255 threads): ingest streams alone never reach the
  // quota; bursts of concurrent calls can
  // (ConnectionLimitsFaultTest.ThreadQuotaRefusesCallsBeyondMaxThreads).
  int max_threads = 512;
  // Concurrent Push/PushStream calls, all principals / one principal.
  int max_streams = 256;
  int max_streams_per_principal = 32;
  // HTTP/2 keepalive: ping an idle connection every keepalive_time, drop
  // it when the ping is unanswered after keepalive_timeout.
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // A connection is asked to go away (GOAWAY) after max_connection_age and
  // closed max_connection_age_grace later, so clients rebalance and no
  // connection lives forever. Zero: unlimited.
  absl::Duration max_connection_age = absl::Hours(1);
  absl::Duration max_connection_age_grace = absl::Minutes(5);
  // Per principal token buckets: observations per second (burst: bucket
  // size, >= max_batch_size so that any legal batch can pass) and queries
  // (Aggregate, DescribeDataset, GetBudget) per second.
  double ingest_rate = 1000000;
  double ingest_burst = 2000000;
  double query_rate = 50;
  double query_burst = 200;
};

// Where sessions live and the account-level query work runs (issue 10;
// server/backend/). YAML "storage:"; the shape is fixed for outside
// tooling. data_dir still holds what stays in cohortd (ledger, cache,
// audit chain, the synced record of every acknowledged session).
struct ClickHouseSpec {
  std::string url = "http://127.0.0.1:8123";
  std::string database = "cohortd";
  std::string cluster;  // "" = one node, no Distributed table
  std::string user = "default";
  std::string password_file;  // "" = no password
  // Bytes of unconfirmed batches in the outbox past which pushes get
  // UNAVAILABLE (ClickHouse unreachable). 0 = no bound.
  int64_t max_outbox_bytes = int64_t{1} << 30;
};
struct StorageSpec {
  enum class Engine { kRocksDb, kClickHouse };
  Engine engine = Engine::kRocksDb;
  ClickHouseSpec clickhouse;
};

struct Config {
  std::string listen_address = "127.0.0.1:7443";
  std::string metrics_address = "127.0.0.1:9464";
  // Relative paths in the file are resolved against the config file's
  // folder, so a config works from any working directory.
  std::string data_dir;
  // 32 random bytes; created with mode 0600 on first start if absent.
  std::string pseudonymization_key_file;
  int max_batch_size = 10000;  // observations per PushRequest
  // Queries read sealed snapshots (server/index/snapshot.h): every dataset
  // is sealed at each multiple of this period since the Unix epoch, besides
  // Admin.SealSnapshot and every start. >= 1s.
  absl::Duration snapshot_every = absl::Hours(1);
  // Bound on the memory a dataset's commits may hold while they wait for
  // the next seal (`snapshot_buffer_mib`, >= 1; default 64 MiB): past it
  // they are folded into the next index (server/index/snapshot.h,
  // "Bounded buffer"); seals stay on schedule.
  int64_t snapshot_buffer_bytes = int64_t{64} << 20;
  TlsSpec tls;
  IngestCaps ingest;
  LimitsSpec limits;
  // Exposure (issue 9; server/metrics/metrics.h, "Two endpoints").
  // The record-derived operational series; loopback by default.
  std::string operator_metrics_address = "127.0.0.1:9465";
  // Whether an operator scrape must carry `authorization: Bearer <token>`
  // of an admin. Unset: exactly when operator_metrics_address is not
  // loopback (see OperatorMetricsRequireToken).
  std::optional<bool> operator_metrics_require_token;
  // Allows gRPC without TLS, and the operator token over plain HTTP, on a
  // non-loopback address (a TLS-terminating proxy or a private network is
  // then the operator's promise).
  bool allow_plaintext = false;
  std::vector<Principal> principals;
  std::vector<DatasetSpec> datasets;
  std::vector<PublicationSpec> publications;
  // How often the retention job runs (only when a dataset has a
  // retention). >= 1 s.
  absl::Duration retention_interval = absl::Hours(1);
  StorageSpec storage;

  // Null when there is no such dataset. Borrows from this config.
  const DatasetSpec* FindDataset(absl::string_view name) const;
};

// The largest gRPC message the server accepts: max_batch_size *
// limits.observation_bytes + 64 KiB (for the request envelope).
int64_t MaxReceiveMessageBytes(const Config& config);

// Whether `host_port` ("host:port", "[v6]:port") binds only loopback:
// "localhost", an IPv4 address in 127.0.0.0/8, or ::1. A wildcard or any
// other name is not.
bool IsLoopbackAddress(absl::string_view host_port);

// Whether operator scrapes need an admin token: the configured value, or
// (unset) whether the operator address is not loopback.
bool OperatorMetricsRequireToken(const Config& config);

// The address rules that depend on several keys, checked by ParseConfig
// and again by main.cc after flags override addresses: gRPC without TLS on
// a non-loopback address needs allow_plaintext; the operator endpoint off
// loopback needs a token (require_token cannot be false there) and, since
// it is plain HTTP, allow_plaintext; the three addresses differ.
// Errors: InvalidArgument naming the key, e.g. "server.listen: ...".
absl::Status CheckServerExposure(const Config& config);

// Parses and validates a YAML config. `origin` names the text in error
// messages and `base_dir` resolves relative paths ("" = working directory).
// Errors: InvalidArgument naming the key path (e.g.
// "datasets[0].measures[2].bounds") and what is wrong with it. Reads the
// file `principals_file` names, if any: NotFound / PermissionDenied when it
// cannot be read.
absl::StatusOr<Config> ParseConfig(absl::string_view yaml_text,
                                   absl::string_view origin,
                                   absl::string_view base_dir);

// Reads `path` and parses it as above, with base_dir = the file's folder.
// Errors: NotFound / PermissionDenied when unreadable; as ParseConfig.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

}  // namespace cohortd

#endif  // COHORTD_SERVER_CONFIG_CONFIG_H_

#include "server/config/config.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/crypto/pseudonymizer.h"
#include "tests/common/status_matchers.h"
#include "yaml-cpp/yaml.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

const std::string kHashA(64, 'a');
const std::string kHashB(64, 'b');

// A small valid config; the error tests each break one thing in it.
std::string BaseYaml() {
  return R"(
server:
  listen: 127.0.0.1:7443
  metrics_listen: 127.0.0.1:9464
  data_dir: data
  pseudonymization_key_file: secret/key
  max_batch_size: 500
principals:
  - {name: worker-1, role: ingest, token_sha256: )" +
         kHashA + R"(}
  - {name: alice, role: analyst, token_sha256: )" +
         kHashB + R"(}
datasets:
  - name: sessions
    description: test
    dimensions:
      - {name: work_mode, values: [build, fix]}
      - {name: task_topic, open_domain: true, max_length: 64}
      - {name: month, derived: month}
    measures:
      - {name: prompts, bounds: [0, 200], granularity: 1}
      - {name: lines_added, bounds: [0, 10000], valid: [0, 1000000],
         granularity: 0.5}
    privacy:
      k: 10
      epsilon_per_query: 1.0
      max_epsilon_per_query: 2.0
      delta_per_query: 1.0e-7
      max_cohorts_per_account: 4
      max_sessions_per_cohort: 8
      budget:
        per_principal: {epsilon: 20, delta: 1.0e-5}
        dataset: {epsilon: 100, delta: 1.0e-4}
)";
}

std::string Emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "/config_test_XXXXXX";
    EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
    // Normalised, as the config's resolved paths are ("/tmp//x" -> "/tmp/x").
    path_ = std::filesystem::path(tmpl).lexically_normal().string();
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

  void Write(const std::string& relative, const std::string& text) const {
    std::filesystem::path p = std::filesystem::path(path_) / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ConfigTest, ParsesEveryField) {
  ASSERT_OK_AND_ASSIGN(Config c,
                       ParseConfig(BaseYaml(), "test.yaml", "/etc/c"));
  EXPECT_EQ(c.listen_address, "127.0.0.1:7443");
  EXPECT_EQ(c.metrics_address, "127.0.0.1:9464");
  EXPECT_EQ(c.data_dir, "/etc/c/data");
  EXPECT_EQ(c.pseudonymization_key_file, "/etc/c/secret/key");
  EXPECT_EQ(c.max_batch_size, 500);
  EXPECT_FALSE(c.tls.enabled);

  ASSERT_THAT(c.principals, SizeIs(2));
  EXPECT_EQ(c.principals[0].name, "worker-1");
  EXPECT_EQ(c.principals[0].role, Role::kIngest);
  EXPECT_EQ(HexEncode(c.principals[0].token_sha256), kHashA);
  EXPECT_EQ(c.principals[1].role, Role::kAnalyst);

  ASSERT_THAT(c.datasets, SizeIs(1));
  const DatasetSpec* ds = c.FindDataset("sessions");
  ASSERT_NE(ds, nullptr);
  EXPECT_EQ(c.FindDataset("nope"), nullptr);
  EXPECT_EQ(ds->description, "test");
  ASSERT_THAT(ds->dimensions, SizeIs(3));
  const DimensionSpec* wm = ds->FindDimension("work_mode");
  ASSERT_NE(wm, nullptr);
  EXPECT_FALSE(wm->open_domain);
  EXPECT_FALSE(wm->derived);
  EXPECT_THAT(wm->values, ElementsAre("build", "fix"));
  const DimensionSpec* topic = ds->FindDimension("task_topic");
  ASSERT_NE(topic, nullptr);
  EXPECT_TRUE(topic->open_domain);
  EXPECT_EQ(topic->max_length, 64);
  EXPECT_TRUE(ds->FindDimension("month")->derived);
  EXPECT_EQ(ds->FindDimension("prompts"), nullptr);

  const MeasureSpec* prompts = ds->FindMeasure("prompts");
  ASSERT_NE(prompts, nullptr);
  EXPECT_EQ(prompts->lower, 0);
  EXPECT_EQ(prompts->upper, 200);
  EXPECT_FALSE(prompts->valid_min.has_value());
  EXPECT_EQ(prompts->granularity, 1);
  const MeasureSpec* lines = ds->FindMeasure("lines_added");
  ASSERT_NE(lines, nullptr);
  EXPECT_EQ(lines->valid_min, 0);
  EXPECT_EQ(lines->valid_max, 1000000);
  EXPECT_EQ(lines->granularity, 0.5);
  EXPECT_EQ(ds->FindMeasure("work_mode"), nullptr);

  const PrivacySpec& p = ds->privacy;
  EXPECT_EQ(p.k, 10);
  EXPECT_EQ(p.default_epsilon, 1.0);
  EXPECT_EQ(p.max_epsilon, 2.0);
  EXPECT_EQ(p.delta, 1e-7);
  EXPECT_EQ(p.max_cohorts_per_account, 4);
  EXPECT_EQ(p.max_sessions_per_cohort, 8);
  EXPECT_EQ(p.principal_budget.epsilon, 20);
  EXPECT_EQ(p.principal_budget.delta, 1e-5);
  EXPECT_EQ(p.dataset_budget.epsilon, 100);
  EXPECT_EQ(p.dataset_budget.delta, 1e-4);
}

TEST(ConfigTest, RoleNames) {
  EXPECT_EQ(RoleName(Role::kIngest), "ingest");
  EXPECT_EQ(RoleName(Role::kAnalyst), "analyst");
  EXPECT_EQ(RoleName(Role::kAdmin), "admin");
}

TEST(ConfigTest, IngestCapsDefaultAndParse) {
  YAML::Node c = YAML::Load(BaseYaml());
  ASSERT_OK_AND_ASSIGN(Config defaults, ParseConfig(Emit(c), "t", ""));
  EXPECT_EQ(defaults.ingest.max_sources_per_session, 64);
  EXPECT_EQ(defaults.ingest.max_open_domain_values, 100000);
  c["ingest"]["max_sources_per_session"] = 8;
  c["ingest"]["max_open_domain_values"] = 500;
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(Emit(c), "t", ""));
  EXPECT_EQ(config.ingest.max_sources_per_session, 8);
  EXPECT_EQ(config.ingest.max_open_domain_values, 500);
}

TEST(ConfigTest, OptionalServerKeysKeepDefaults) {
  YAML::Node c = YAML::Load(BaseYaml());
  c["server"].remove("listen");
  c["server"].remove("metrics_listen");
  c["server"].remove("max_batch_size");
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(Emit(c), "t", ""));
  EXPECT_EQ(config.listen_address, "127.0.0.1:7443");
  EXPECT_EQ(config.metrics_address, "127.0.0.1:9464");
  EXPECT_EQ(config.max_batch_size, 10000);
  EXPECT_EQ(config.snapshot_every, absl::Hours(1));
  // Without a base_dir, relative paths stay relative to the working dir.
  EXPECT_EQ(config.data_dir, "data");
}

TEST(ConfigTest, SnapshotEveryIsADuration) {
  YAML::Node c = YAML::Load(BaseYaml());
  c["server"]["snapshot_every"] = "15m";
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(Emit(c), "t", ""));
  EXPECT_EQ(config.snapshot_every, absl::Minutes(15));
}

TEST(ConfigTest, SnapshotBufferIsInMib) {
  ASSERT_OK_AND_ASSIGN(Config defaults, ParseConfig(BaseYaml(), "t", ""));
  EXPECT_EQ(defaults.snapshot_buffer_bytes, int64_t{64} << 20);
  YAML::Node c = YAML::Load(BaseYaml());
  c["server"]["snapshot_buffer_mib"] = 3;
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(Emit(c), "t", ""));
  EXPECT_EQ(config.snapshot_buffer_bytes, int64_t{3} << 20);
}

TEST(ConfigTest, AcceptsPortZeroIpv6AndHostNames) {
  YAML::Node c = YAML::Load(BaseYaml());
  c["server"]["listen"] = "127.0.0.1:0";
  c["server"]["metrics_listen"] = "127.0.0.1:0";
  EXPECT_OK(ParseConfig(Emit(c), "t", ""));
  c["server"]["listen"] = "[::1]:7443";
  c["server"]["metrics_listen"] = "localhost:9464";
  EXPECT_OK(ParseConfig(Emit(c), "t", ""));
}

TEST(ConfigTest, ExposureDefaultsKeepEverythingOnLoopback) {
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(BaseYaml(), "t", ""));
  EXPECT_EQ(config.operator_metrics_address, "127.0.0.1:9465");
  EXPECT_FALSE(config.operator_metrics_require_token.has_value());
  EXPECT_FALSE(OperatorMetricsRequireToken(config));
  EXPECT_FALSE(config.allow_plaintext);
  EXPECT_OK(CheckServerExposure(config));
}

TEST(ConfigTest, AllowPlaintextPermitsNonLoopbackAndForcesTheToken) {
  YAML::Node c = YAML::Load(BaseYaml());
  c["server"]["listen"] = "0.0.0.0:7443";
  c["server"]["metrics_listen"] = "0.0.0.0:9464";
  c["server"]["operator_metrics_listen"] = "0.0.0.0:9465";
  c["server"]["allow_plaintext"] = true;
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(Emit(c), "t", ""));
  EXPECT_TRUE(config.allow_plaintext);
  EXPECT_EQ(config.operator_metrics_address, "0.0.0.0:9465");
  // Unset: required exactly because the address is not loopback.
  EXPECT_TRUE(OperatorMetricsRequireToken(config));
}

TEST(ConfigTest, TlsNeedsNoPlaintextPermissionOffLoopback) {
  YAML::Node c = YAML::Load(BaseYaml());
  c["server"]["listen"] = "0.0.0.0:7443";
  c["server"]["tls"]["enabled"] = true;
  c["server"]["tls"]["cert_file"] = "c";
  c["server"]["tls"]["key_file"] = "k";
  EXPECT_OK(ParseConfig(Emit(c), "t", ""));
}

TEST(ConfigTest, OperatorTokenCanBeRequiredOnLoopback) {
  YAML::Node c = YAML::Load(BaseYaml());
  c["server"]["operator_metrics_require_token"] = true;
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(Emit(c), "t", ""));
  EXPECT_TRUE(OperatorMetricsRequireToken(config));
}

TEST(ConfigTest, ExposureIsCheckedAgainAfterFlagOverrides) {
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(BaseYaml(), "t", ""));
  config.listen_address = "0.0.0.0:7443";  // as main.cc's --listen does
  EXPECT_THAT(CheckServerExposure(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("server.listen: 0.0.0.0:7443"),
                             HasSubstr("allow_plaintext"))));
  config.listen_address = "127.0.0.1:7443";
  config.operator_metrics_address = "192.168.1.4:9465";
  EXPECT_THAT(CheckServerExposure(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("server.operator_metrics_listen")));
  config.allow_plaintext = true;
  EXPECT_OK(CheckServerExposure(config));
}

TEST(ConfigTest, LoopbackIsTheWhole127Slash8AndIpv6One) {
  for (const char* loopback :
       {"127.0.0.1:1", "127.0.0.2:0", "127.255.255.254:9465", "localhost:1",
        "LOCALHOST:1", "[::1]:7443"}) {
    EXPECT_TRUE(IsLoopbackAddress(loopback)) << loopback;
  }
  for (const char* open :
       {"0.0.0.0:1", "[::]:1", "10.0.0.1:1", "128.0.0.1:1", "126.0.0.1:1",
        "example.com:1", "127.0.0.1.example.com:1", "[::2]:1",
        "[::ffff:10.0.0.1]:1"}) {
    EXPECT_FALSE(IsLoopbackAddress(open)) << open;
  }
}

TEST(ConfigTest, TlsPathsResolveAgainstBaseDir) {
  YAML::Node c = YAML::Load(BaseYaml());
  c["server"]["tls"]["enabled"] = true;
  c["server"]["tls"]["cert_file"] = "tls/server.crt";
  c["server"]["tls"]["key_file"] = "/abs/server.key";
  c["server"]["tls"]["client_ca_file"] = "../ca.crt";
  c["server"]["tls"]["require_client_cert"] = true;
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(Emit(c), "t", "/etc/c"));
  EXPECT_TRUE(config.tls.enabled);
  EXPECT_TRUE(config.tls.require_client_cert);
  EXPECT_EQ(config.tls.cert_file, "/etc/c/tls/server.crt");
  EXPECT_EQ(config.tls.key_file, "/abs/server.key");
  EXPECT_EQ(config.tls.client_ca_file, "/etc/ca.crt");
}

// One broken thing per case: the error must be InvalidArgument and name
// the key path.
struct ErrorCase {
  std::string name;
  std::function<void(YAML::Node)> mutate;
  std::string expected_path;
  std::string expected_detail;  // another substring, "" = none
};

YAML::Node Dataset(YAML::Node c) { return c["datasets"][0]; }
YAML::Node Dim(YAML::Node c, int i) {
  return c["datasets"][0]["dimensions"][i];
}
YAML::Node Measure(YAML::Node c, int i) {
  return c["datasets"][0]["measures"][i];
}
YAML::Node Privacy(YAML::Node c) { return c["datasets"][0]["privacy"]; }
YAML::Node EmptyList() { return YAML::Node(YAML::NodeType::Sequence); }
YAML::Node Pair(double a, double b) {
  YAML::Node n(YAML::NodeType::Sequence);
  n.push_back(a);
  n.push_back(b);
  return n;
}
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<ErrorCase> ErrorCases() {
  return {
      {"UnknownTopLevelKey", [](YAML::Node c) { c["servr"] = 1; }, "servr",
       "unknown key; allowed here: server, principals"},
      {"UnknownPrivacyKey", [](YAML::Node c) { Privacy(c)["epsilon"] = 1; },
       "datasets[sessions].privacy.epsilon", "epsilon_per_query"},
      {"UnknownMeasureKey",
       [](YAML::Node c) { Measure(c, 0)["bound"] = Pair(0, 1); },
       "datasets[sessions].measures[0].bound", "unknown key"},
      {"MissingServer", [](YAML::Node c) { c.remove("server"); }, "server",
       "is required"},
      {"ServerNotAMap", [](YAML::Node c) { c["server"] = "x"; }, "server",
       "mapping"},
      {"ListenWithoutPort",
       [](YAML::Node c) { c["server"]["listen"] = "localhost"; },
       "server.listen", "host:port"},
      {"ListenPortTooLarge",
       [](YAML::Node c) { c["server"]["listen"] = "127.0.0.1:70000"; },
       "server.listen", ""},
      {"MetricsListenBadHost",
       [](YAML::Node c) { c["server"]["metrics_listen"] = "a b:1"; },
       "server.metrics_listen", ""},
      {"SameListenAddresses",
       [](YAML::Node c) { c["server"]["metrics_listen"] = "127.0.0.1:7443"; },
       "server.metrics_listen", "must differ"},
      {"PlaintextOnWildcard",
       [](YAML::Node c) { c["server"]["listen"] = "0.0.0.0:7443"; },
       "server.listen", "allow_plaintext"},
      {"PlaintextOnIpv6Wildcard",
       [](YAML::Node c) { c["server"]["listen"] = "[::]:7443"; },
       "server.listen", "tls.enabled is false"},
      {"PlaintextOnHostName",
       [](YAML::Node c) { c["server"]["listen"] = "cohortd.internal:7443"; },
       "server.listen", "not a loopback address"},
      {"OperatorMetricsOffLoopbackOverPlainHttp",
       [](YAML::Node c) {
         c["server"]["operator_metrics_listen"] = "10.0.0.5:9465";
       },
       "server.operator_metrics_listen", "allow_plaintext"},
      {"OperatorMetricsTokenOffOffLoopback",
       [](YAML::Node c) {
         c["server"]["operator_metrics_listen"] = "0.0.0.0:9465";
         c["server"]["operator_metrics_require_token"] = false;
         c["server"]["allow_plaintext"] = true;
       },
       "server.operator_metrics_require_token", "admin token"},
      {"OperatorMetricsSameAsMetrics",
       [](YAML::Node c) {
         c["server"]["operator_metrics_listen"] = "127.0.0.1:9464";
       },
       "server.operator_metrics_listen", "must differ"},
      {"OperatorMetricsBadAddress",
       [](YAML::Node c) { c["server"]["operator_metrics_listen"] = "9465"; },
       "server.operator_metrics_listen", "host:port"},
      {"OperatorRequireTokenNotBool",
       [](YAML::Node c) {
         c["server"]["operator_metrics_require_token"] = "sometimes";
       },
       "server.operator_metrics_require_token", ""},
      {"AllowPlaintextNotBool",
       [](YAML::Node c) { c["server"]["allow_plaintext"] = "yes please"; },
       "server.allow_plaintext", ""},
      {"MissingDataDir", [](YAML::Node c) { c["server"].remove("data_dir"); },
       "server.data_dir", "is required"},
      {"MissingKeyFile",
       [](YAML::Node c) { c["server"].remove("pseudonymization_key_file"); },
       "server.pseudonymization_key_file", "is required"},
      {"IngestSourcesZero",
       [](YAML::Node c) { c["ingest"]["max_sources_per_session"] = 0; },
       "ingest.max_sources_per_session", "[1, 1000000]"},
      {"IngestOpenValuesNotANumber",
       [](YAML::Node c) { c["ingest"]["max_open_domain_values"] = "many"; },
       "ingest.max_open_domain_values", "integer"},
      {"IngestUnknownKey", [](YAML::Node c) { c["ingest"]["max_rate"] = 1; },
       "ingest.max_rate", "unknown key"},
      {"BatchSizeZero", [](YAML::Node c) { c["server"]["max_batch_size"] = 0; },
       "server.max_batch_size", "[1, 1000000]"},
      {"BatchSizeTooLarge",
       [](YAML::Node c) { c["server"]["max_batch_size"] = 1000001; },
       "server.max_batch_size", ""},
      {"BatchSizeNotInteger",
       [](YAML::Node c) { c["server"]["max_batch_size"] = "lots"; },
       "server.max_batch_size", "integer"},
      {"SnapshotEveryNotADuration",
       [](YAML::Node c) { c["server"]["snapshot_every"] = "hourly"; },
       "server.snapshot_every", "\"hourly\" is not a duration of at least 1s"},
      {"SnapshotEveryTooShort",
       [](YAML::Node c) { c["server"]["snapshot_every"] = "500ms"; },
       "server.snapshot_every", "at least 1s"},
      {"SnapshotBufferZero",
       [](YAML::Node c) { c["server"]["snapshot_buffer_mib"] = 0; },
       "server.snapshot_buffer_mib", "must be an integer in [1, 1048576]"},
      {"TlsWithoutCert",
       [](YAML::Node c) {
         c["server"]["tls"]["enabled"] = true;
         c["server"]["tls"]["key_file"] = "k";
       },
       "server.tls.cert_file", "required"},
      {"TlsWithoutKey",
       [](YAML::Node c) {
         c["server"]["tls"]["enabled"] = true;
         c["server"]["tls"]["cert_file"] = "c";
       },
       "server.tls.key_file", "required"},
      {"ClientCertWithoutCa",
       [](YAML::Node c) {
         c["server"]["tls"]["enabled"] = true;
         c["server"]["tls"]["cert_file"] = "c";
         c["server"]["tls"]["key_file"] = "k";
         c["server"]["tls"]["require_client_cert"] = true;
       },
       "server.tls.require_client_cert", "client_ca_file"},
      {"ClientCertWithoutTls",
       [](YAML::Node c) {
         c["server"]["tls"]["client_ca_file"] = "ca";
         c["server"]["tls"]["require_client_cert"] = true;
       },
       "server.tls.require_client_cert", "enabled"},
      {"TlsEnabledNotBool",
       [](YAML::Node c) { c["server"]["tls"]["enabled"] = "maybe"; },
       "server.tls.enabled", "true or false"},
      {"UnknownRole", [](YAML::Node c) { c["principals"][0]["role"] = "root"; },
       "principals[worker-1].role", "ingest, analyst, admin"},
      {"ShortTokenHash",
       [](YAML::Node c) {
         c["principals"][0]["token_sha256"] = std::string(63, 'a');
       },
       "principals[worker-1].token_sha256", "64 hex"},
      {"NonHexTokenHash",
       [](YAML::Node c) {
         c["principals"][0]["token_sha256"] = std::string(63, 'a') + "z";
       },
       "principals[worker-1].token_sha256", ""},
      {"MissingTokenHash",
       [](YAML::Node c) { c["principals"][1].remove("token_sha256"); },
       "principals[alice].token_sha256", "is required"},
      {"BadPrincipalName",
       [](YAML::Node c) { c["principals"][0]["name"] = "bob smith"; },
       "principals[0].name", "principal name"},
      {"DuplicatePrincipalName",
       [](YAML::Node c) { c["principals"][1]["name"] = "worker-1"; },
       "principals[worker-1]", "used twice"},
      {"DuplicateTokenHash",
       [](YAML::Node c) { c["principals"][1]["token_sha256"] = kHashA; },
       "principals[alice].token_sha256", "worker-1"},
      {"DatasetsNotAList", [](YAML::Node c) { c["datasets"] = "sessions"; },
       "datasets", "list"},
      {"DuplicateDataset",
       [](YAML::Node c) { c["datasets"].push_back(YAML::Clone(Dataset(c))); },
       "datasets[sessions]", "declared twice"},
      {"DatasetNameNotIdentifier",
       [](YAML::Node c) { Dataset(c)["name"] = "Sessions"; },
       "datasets[0].name", "[a-z][a-z0-9_]*"},
      {"MissingPrivacy", [](YAML::Node c) { Dataset(c).remove("privacy"); },
       "datasets[sessions].privacy", "is required"},
      {"MissingDimensions",
       [](YAML::Node c) { Dataset(c).remove("dimensions"); },
       "datasets[sessions].dimensions", "is required"},
      {"DimensionNameNotIdentifier",
       [](YAML::Node c) { Dim(c, 0)["name"] = "work-mode"; },
       "datasets[sessions].dimensions[0].name", "identifier"},
      {"DuplicateDimension",
       [](YAML::Node c) { Dim(c, 1)["name"] = "work_mode"; },
       "datasets[sessions].dimensions[work_mode]", "used twice"},
      {"MeasureNamedLikeDimension",
       [](YAML::Node c) { Measure(c, 0)["name"] = "work_mode"; },
       "datasets[sessions].measures[work_mode]", "used twice"},
      {"DuplicateMeasure",
       [](YAML::Node c) { Measure(c, 1)["name"] = "prompts"; },
       "datasets[sessions].measures[prompts]", "used twice"},
      {"DuplicateValue", [](YAML::Node c) { Dim(c, 0)["values"][1] = "build"; },
       "datasets[sessions].dimensions[work_mode].values[1]", "twice"},
      {"EmptyClosedDomain",
       [](YAML::Node c) { Dim(c, 0)["values"] = EmptyList(); },
       "datasets[sessions].dimensions[work_mode].values", "non-empty"},
      {"EmptyLabelValue", [](YAML::Node c) { Dim(c, 0)["values"][0] = ""; },
       "datasets[sessions].dimensions[work_mode].values[0]", "1-256 bytes"},
      {"ValuesAndOpenDomain",
       [](YAML::Node c) { Dim(c, 0)["open_domain"] = true; },
       "datasets[sessions].dimensions[work_mode]", "exactly one"},
      {"NoDomainAtAll", [](YAML::Node c) { Dim(c, 0).remove("values"); },
       "datasets[sessions].dimensions[work_mode]", "exactly one"},
      {"OpenDomainWithoutMaxLength",
       [](YAML::Node c) { Dim(c, 1).remove("max_length"); },
       "datasets[sessions].dimensions[task_topic].max_length", "required"},
      {"OpenDomainMaxLengthZero",
       [](YAML::Node c) { Dim(c, 1)["max_length"] = 0; },
       "datasets[sessions].dimensions[task_topic].max_length", "[1, 1024]"},
      {"MaxLengthOnClosedDomain",
       [](YAML::Node c) { Dim(c, 0)["max_length"] = 5; },
       "datasets[sessions].dimensions[work_mode].max_length", "open_domain"},
      {"UnknownDerivedKind",
       [](YAML::Node c) { Dim(c, 2)["derived"] = "year"; },
       "datasets[sessions].dimensions[month].derived", "allowed: month"},
      {"BoundsReversed",
       [](YAML::Node c) { Measure(c, 0)["bounds"] = Pair(5, 1); },
       "datasets[sessions].measures[prompts].bounds", "below upper"},
      {"BoundsEqual",
       [](YAML::Node c) { Measure(c, 0)["bounds"] = Pair(1, 1); },
       "datasets[sessions].measures[prompts].bounds", ""},
      {"BoundsInfinite",
       [](YAML::Node c) { Measure(c, 0)["bounds"] = Pair(0, kInf); },
       "datasets[sessions].measures[prompts].bounds", "finite"},
      {"BoundsThreeNumbers",
       [](YAML::Node c) { Measure(c, 0)["bounds"].push_back(3); },
       "datasets[sessions].measures[prompts].bounds", "two numbers"},
      {"BoundsNotNumbers",
       [](YAML::Node c) { Measure(c, 0)["bounds"][0] = "low"; },
       "datasets[sessions].measures[prompts].bounds", "finite number"},
      {"MissingBounds", [](YAML::Node c) { Measure(c, 0).remove("bounds"); },
       "datasets[sessions].measures[prompts].bounds", "is required"},
      {"ValidDoesNotContainBounds",
       [](YAML::Node c) { Measure(c, 1)["valid"] = Pair(0, 5000); },
       "datasets[sessions].measures[lines_added].valid", "contain"},
      {"GranularityZero",
       [](YAML::Node c) { Measure(c, 0)["granularity"] = 0; },
       "datasets[sessions].measures[prompts].granularity", "> 0"},
      {"GranularityNegative",
       [](YAML::Node c) { Measure(c, 0)["granularity"] = -1; },
       "datasets[sessions].measures[prompts].granularity", ""},
      {"GranularityTooFine",
       [](YAML::Node c) { Measure(c, 1)["granularity"] = 1e-9; },
       "datasets[sessions].measures[lines_added].granularity", "2^40"},
      {"MissingGranularity",
       [](YAML::Node c) { Measure(c, 0).remove("granularity"); },
       "datasets[sessions].measures[prompts].granularity", "is required"},
      {"KZero", [](YAML::Node c) { Privacy(c)["k"] = 0; },
       "datasets[sessions].privacy.k", "[1, "},
      {"KNotANumber", [](YAML::Node c) { Privacy(c)["k"] = "ten"; },
       "datasets[sessions].privacy.k", "integer"},
      {"MissingK", [](YAML::Node c) { Privacy(c).remove("k"); },
       "datasets[sessions].privacy.k", "is required"},
      {"EpsilonZero", [](YAML::Node c) { Privacy(c)["epsilon_per_query"] = 0; },
       "datasets[sessions].privacy.epsilon_per_query", "> 0"},
      {"DefaultAboveMax",
       [](YAML::Node c) { Privacy(c)["epsilon_per_query"] = 3; },
       "datasets[sessions].privacy.max_epsilon_per_query", "cap"},
      {"DeltaZero", [](YAML::Node c) { Privacy(c)["delta_per_query"] = 0; },
       "datasets[sessions].privacy.delta_per_query", "(0, 0.001]"},
      {"DeltaTooLarge",
       [](YAML::Node c) { Privacy(c)["delta_per_query"] = 0.01; },
       "datasets[sessions].privacy.delta_per_query", ""},
      {"L0Zero",
       [](YAML::Node c) { Privacy(c)["max_cohorts_per_account"] = 0; },
       "datasets[sessions].privacy.max_cohorts_per_account", ""},
      {"LinfZero",
       [](YAML::Node c) { Privacy(c)["max_sessions_per_cohort"] = 0; },
       "datasets[sessions].privacy.max_sessions_per_cohort", ""},
      {"BudgetEpsilonZero",
       [](YAML::Node c) {
         Privacy(c)["budget"]["per_principal"]["epsilon"] = 0;
       },
       "datasets[sessions].privacy.budget.per_principal.epsilon", "> 0"},
      {"BudgetDeltaMissing",
       [](YAML::Node c) { Privacy(c)["budget"]["dataset"].remove("delta"); },
       "datasets[sessions].privacy.budget.dataset.delta", "is required"},
      {"PrincipalBudgetBelowOneQuery",
       [](YAML::Node c) {
         Privacy(c)["budget"]["per_principal"]["epsilon"] = 1.5;
       },
       "datasets[sessions].privacy.budget.per_principal", "one query"},
      {"DatasetBudgetBelowPrincipal",
       [](YAML::Node c) { Privacy(c)["budget"]["dataset"]["epsilon"] = 10; },
       "datasets[sessions].privacy.budget.dataset", "at least"},
  };
}

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, NamesTheKeyPath) {
  const ErrorCase& c = GetParam();
  YAML::Node root = YAML::Load(BaseYaml());
  c.mutate(root);
  absl::StatusOr<Config> config = ParseConfig(Emit(root), "test.yaml", "");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("test.yaml"),
                                     HasSubstr(c.expected_path + ":"),
                                     HasSubstr(c.expected_detail))));
}

INSTANTIATE_TEST_SUITE_P(OneBrokenThing, ConfigErrorTest,
                         ::testing::ValuesIn(ErrorCases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });

TEST(ConfigTest, ErrorsCarryLineNumbers) {
  std::string yaml = BaseYaml();
  const std::string from = "{name: prompts, bounds: [0, 200]";
  yaml.replace(yaml.find(from), from.size(), "{name: prompts, bounds: [9, 2]");
  // Line 19 of BaseYaml (counting its leading newline) is the prompts
  // measure.
  EXPECT_THAT(ParseConfig(yaml, "test.yaml", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("test.yaml:19: datasets[sessions]."
                                 "measures[prompts].bounds: lower (9)")));
}

TEST(ConfigTest, DuplicateYamlKeyIsAnError) {
  std::string yaml = BaseYaml();
  yaml.replace(yaml.find("  max_batch_size: 500"), 0, "  max_batch_size: 7\n");
  EXPECT_THAT(ParseConfig(yaml, "t", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("server.max_batch_size: key appears twice")));
}

TEST(ConfigTest, MalformedYamlIsInvalidArgument) {
  EXPECT_THAT(
      ParseConfig("server: [unclosed", "bad.yaml", ""),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("bad.yaml:"), HasSubstr("invalid YAML"))));
  EXPECT_THAT(ParseConfig("", "empty.yaml", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(
      ParseConfig("- a\n- b\n", "list.yaml", ""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mapping")));
}

std::string PrincipalsYaml(const std::string& name, const std::string& role,
                           const std::string& hash) {
  return "principals:\n  - {name: " + name + ", role: " + role +
         ", token_sha256: " + hash + "}\n";
}

TEST(ConfigTest, PrincipalsFileIsMergedWithInlineList) {
  TempDir dir;
  dir.Write("secrets/p.yaml",
            PrincipalsYaml("ops", "admin", std::string(64, 'c')));
  YAML::Node c = YAML::Load(BaseYaml());
  c["principals_file"] = "secrets/p.yaml";
  ASSERT_OK_AND_ASSIGN(Config config, ParseConfig(Emit(c), "t", dir.path()));
  ASSERT_THAT(config.principals, SizeIs(3));
  EXPECT_EQ(config.principals[2].name, "ops");
  EXPECT_EQ(config.principals[2].role, Role::kAdmin);

  // Only the file, no inline list.
  c.remove("principals");
  ASSERT_OK_AND_ASSIGN(config, ParseConfig(Emit(c), "t", dir.path()));
  EXPECT_THAT(config.principals, SizeIs(1));
}

TEST(ConfigTest, PrincipalsFileErrors) {
  TempDir dir;
  YAML::Node c = YAML::Load(BaseYaml());
  c["principals_file"] = "p.yaml";

  EXPECT_THAT(ParseConfig(Emit(c), "t", dir.path()),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("principals_file"),
                             HasSubstr(dir.path() + "/p.yaml"))));

  dir.Write("p.yaml", PrincipalsYaml("alice", "ingest", std::string(64, 'c')));
  EXPECT_THAT(
      ParseConfig(Emit(c), "t", dir.path()),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("principals[alice]"), HasSubstr("used twice"))));

  dir.Write("p.yaml", PrincipalsYaml("ops", "boss", std::string(64, 'c')));
  EXPECT_THAT(ParseConfig(Emit(c), "t", dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(dir.path() + "/p.yaml:"),
                             HasSubstr("principals[ops].role"))));

  dir.Write("p.yaml", "principals: []\nextra: 1\n");
  EXPECT_THAT(ParseConfig(Emit(c), "t", dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("extra: unknown key")));

  dir.Write("p.yaml", "principals: [unclosed\n");
  EXPECT_THAT(ParseConfig(Emit(c), "t", dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(dir.path() + "/p.yaml:"),
                             HasSubstr("invalid YAML"))));
}

TEST(ConfigTest, LoadConfigFileResolvesAgainstItsFolder) {
  TempDir dir;
  dir.Write("etc/cohortd.yaml", BaseYaml());
  ASSERT_OK_AND_ASSIGN(Config config,
                       LoadConfigFile(dir.path() + "/etc/cohortd.yaml"));
  EXPECT_EQ(config.data_dir, dir.path() + "/etc/data");
  EXPECT_EQ(config.pseudonymization_key_file, dir.path() + "/etc/secret/key");
}

TEST(ConfigTest, LoadConfigFileErrors) {
  TempDir dir;
  EXPECT_THAT(LoadConfigFile(dir.path() + "/missing.yaml"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(dir.path() + "/missing.yaml")));
  dir.Write("bad.yaml", "server: {listen: nowhere}\n");
  EXPECT_THAT(LoadConfigFile(dir.path() + "/bad.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(dir.path() + "/bad.yaml:1:"),
                             HasSubstr("server.listen"))));
}

// ------------------------------------------------------- shipped configs

const std::string kSourceDir = COHORTD_SOURCE_DIR;

void ExpectSessionsDataset(const DatasetSpec& ds) {
  EXPECT_EQ(ds.name, "sessions");
  std::vector<std::string> dims;
  for (const DimensionSpec& d : ds.dimensions) dims.push_back(d.name);
  EXPECT_THAT(dims, ElementsAre("work_mode", "expertise", "occupation",
                                "outcome", "verified_success", "abandoned",
                                "client", "task_topic", "month"));
  // The 22 SOC 2018 major groups plus unclassified.
  ASSERT_NE(ds.FindDimension("occupation"), nullptr);
  EXPECT_THAT(ds.FindDimension("occupation")->values, SizeIs(23));
  EXPECT_THAT(ds.FindDimension("work_mode")->values, SizeIs(9));
  EXPECT_THAT(ds.FindDimension("verified_success")->values,
              ElementsAre("true", "false"));
  EXPECT_TRUE(ds.FindDimension("task_topic")->open_domain);
  EXPECT_TRUE(ds.FindDimension("month")->derived);

  // Bounds from DOMAIN.md.
  const std::vector<std::tuple<std::string, double, double>> bounds = {
      {"actions_per_prompt", 0, 200},
      {"words_per_prompt", 0, 20000},
      {"prompts", 0, 200},
      {"planning_user_share", 0, 1},
      {"implementation_user_share", 0, 1},
      {"lines_added", 0, 10000},
      {"lines_removed", 0, 10000},
      {"commits", 0, 1000},
      {"tests_passed", 0, 1000},
      {"success_signal", 0, 5},
      {"failure_signal", 0, 5},
      {"task_value_usd", 0, 5000}};
  ASSERT_THAT(ds.measures, SizeIs(bounds.size()));
  for (const auto& [name, lower, upper] : bounds) {
    const MeasureSpec* m = ds.FindMeasure(name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_EQ(m->lower, lower) << name;
    EXPECT_EQ(m->upper, upper) << name;
  }
  EXPECT_EQ(ds.privacy.k, 10);
}

// Writes a principals file where a shipped config expects one.
void WritePrincipals(const TempDir& dir, const std::string& relative) {
  dir.Write(relative,
            PrincipalsYaml("dev-ingest", "ingest", HexEncode(Sha256("token"))));
}

TEST(ShippedConfigTest, ProductionConfigIsValid) {
  TempDir dir;
  WritePrincipals(dir, "secrets/principals.yaml");
  ASSERT_OK_AND_ASSIGN(
      Config c, ParseConfig(ReadFile(kSourceDir + "/config/cohortd.yaml"),
                            "cohortd.yaml", dir.path()));
  EXPECT_EQ(c.listen_address, "127.0.0.1:7443");
  EXPECT_TRUE(c.tls.enabled);
  EXPECT_EQ(c.tls.cert_file, dir.path() + "/tls/server.crt");
  EXPECT_THAT(c.principals, SizeIs(1));
  ASSERT_THAT(c.datasets, SizeIs(1));
  ExpectSessionsDataset(c.datasets[0]);
}

// deploy/'s two configs bind 0.0.0.0 inside their containers: they must
// pass the exposure rules the server enforces (allow_plaintext, where the
// operator endpoint listens) through the real parser.
TEST(ShippedConfigTest, DeployConfigsAreValid) {
  TempDir dir;
  auto parse = [&](std::string text, const std::string& principals_file) {
    const std::string line = "principals_file: " + principals_file;
    const size_t at = text.find(line);
    EXPECT_NE(at, std::string::npos) << line;
    if (at != std::string::npos) {
      text.replace(at, line.size(), "principals_file: principals.yaml");
    }
    return ParseConfig(text, principals_file, dir.path());
  };
  WritePrincipals(dir, "principals.yaml");

  ASSERT_OK_AND_ASSIGN(
      Config compose,
      parse(ReadFile(kSourceDir + "/deploy/compose/cohortd.yaml"),
            "/run/cohortd/principals.yaml"));
  EXPECT_TRUE(compose.allow_plaintext);
  EXPECT_TRUE(IsLoopbackAddress(compose.operator_metrics_address));
  EXPECT_FALSE(OperatorMetricsRequireToken(compose));

  const YAML::Node configmap =
      YAML::Load(ReadFile(kSourceDir + "/deploy/k8s/configmap.yaml"));
  ASSERT_OK_AND_ASSIGN(
      Config k8s, parse(configmap["data"]["cohortd.yaml"].as<std::string>(),
                        "/etc/cohortd/secrets/principals.yaml"));
  EXPECT_TRUE(k8s.allow_plaintext);
  EXPECT_FALSE(IsLoopbackAddress(k8s.operator_metrics_address));
  EXPECT_TRUE(OperatorMetricsRequireToken(k8s));
}

TEST(ShippedConfigTest, DevConfigIsValidAndLocal) {
  TempDir dir;
  dir.Write("config/dev.yaml", ReadFile(kSourceDir + "/config/dev.yaml"));
  WritePrincipals(dir, "secrets/dev-principals.yaml");
  ASSERT_OK_AND_ASSIGN(Config c,
                       LoadConfigFile(dir.path() + "/config/dev.yaml"));
  EXPECT_EQ(c.data_dir, dir.path() + "/.data/cohortd");
  EXPECT_EQ(c.pseudonymization_key_file,
            dir.path() + "/.data/pseudonymization.key");
  EXPECT_FALSE(c.tls.enabled);
  ASSERT_THAT(c.datasets, SizeIs(1));
  ExpectSessionsDataset(c.datasets[0]);
}

// scripts/dev-secrets writes what dev.yaml's principals_file expects, with
// hashes of the tokens it writes next to it.
TEST(ShippedConfigTest, DevSecretsScriptMakesLoadablePrincipals) {
  TempDir dir;
  dir.Write("config/dev.yaml", ReadFile(kSourceDir + "/config/dev.yaml"));
  dir.Write("scripts/dev-secrets",
            ReadFile(kSourceDir + "/scripts/dev-secrets"));
  const std::string script = dir.path() + "/scripts/dev-secrets";
  ASSERT_EQ(std::system(("bash " + script + " >/dev/null").c_str()), 0);
  // A second run changes nothing.
  const std::string env = ReadFile(dir.path() + "/secrets/dev-tokens.env");
  ASSERT_EQ(std::system(("bash " + script).c_str()), 0);
  EXPECT_EQ(ReadFile(dir.path() + "/secrets/dev-tokens.env"), env);

  ASSERT_OK_AND_ASSIGN(Config c,
                       LoadConfigFile(dir.path() + "/config/dev.yaml"));
  ASSERT_THAT(c.principals, SizeIs(3));
  const std::vector<std::tuple<std::string, Role, std::string>> expected = {
      {"dev-ingest", Role::kIngest, "COHORTD_INGEST_TOKEN="},
      {"dev-analyst", Role::kAnalyst, "COHORTD_ANALYST_TOKEN="},
      {"dev-admin", Role::kAdmin, "COHORTD_ADMIN_TOKEN="}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [name, role, var] = expected[i];
    EXPECT_EQ(c.principals[i].name, name);
    EXPECT_EQ(c.principals[i].role, role);
    const size_t at = env.find(var);
    ASSERT_NE(at, std::string::npos) << var;
    const std::string token =
        env.substr(at + var.size(), env.find('\n', at) - at - var.size());
    EXPECT_EQ(token.size(), 48u) << var;
    EXPECT_EQ(c.principals[i].token_sha256, Sha256(token)) << name;
  }
  struct stat st;
  ASSERT_EQ(stat((dir.path() + "/secrets/dev-tokens.env").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// dev.yaml repeats the production dataset rather than including it; this
// keeps the two from drifting apart.
TEST(ShippedConfigTest, DevDatasetsEqualProduction) {
  YAML::Node prod = YAML::LoadFile(kSourceDir + "/config/cohortd.yaml");
  YAML::Node dev = YAML::LoadFile(kSourceDir + "/config/dev.yaml");
  EXPECT_EQ(Emit(prod["datasets"]), Emit(dev["datasets"]));
  EXPECT_EQ(Emit(prod["publications"]), Emit(dev["publications"]));
}

constexpr char kPublicationConfig[] = R"(
server:
  data_dir: data
  pseudonymization_key_file: key
datasets:
  - name: sessions
    dimensions:
      - {name: work_mode, values: [build, fix]}
      - {name: month, derived: month}
    measures:
      - {name: prompts, bounds: [0, 200], granularity: 1}
    privacy:
      k: 10
      epsilon_per_query: 1.0
      max_epsilon_per_query: 2.0
      delta_per_query: 1.0e-7
      max_cohorts_per_account: 4
      max_sessions_per_cohort: 8
      budget:
        per_principal: {epsilon: 20, delta: 1.0e-5}
        dataset: {epsilon: 100, delta: 1.0e-4}
publications:
  - name: modes
    dataset: sessions
    request:
      group_by: [work_mode]
      metrics: [{kind: SESSIONS}, {kind: QUANTILES, measure: prompts, quantiles: [0.5]}]
      epsilon: 0.5
    every: 90s
    months: last_3
    budget: {epsilon: 5, delta: 1.0e-6}
)";

TEST(PublicationConfigTest, ParsesScheduleWindowAndOwnBudget) {
  ASSERT_OK_AND_ASSIGN(Config c, ParseConfig(kPublicationConfig, "t", ""));
  ASSERT_THAT(c.publications, SizeIs(1));
  const PublicationSpec& p = c.publications[0];
  EXPECT_EQ(p.name, "modes");
  EXPECT_EQ(p.every, absl::Seconds(90));
  EXPECT_EQ(p.months, PublicationSpec::Months::kLastClosed);
  EXPECT_EQ(p.last_months, 3);
  EXPECT_THAT(p.request_json, HasSubstr(R"("group_by":["work_mode"])"));
  EXPECT_THAT(p.request_json, HasSubstr(R"("quantiles":["0.5"])"));
  const PrivacySpec& privacy = c.datasets[0].privacy;
  EXPECT_EQ(privacy.PrincipalBudget(PublicationPrincipal("modes")).epsilon, 5);
  EXPECT_EQ(privacy.PrincipalBudget("someone").epsilon, 20);
}

TEST(PublicationConfigTest, ErrorsNameThePublicationKey) {
  const std::pair<std::string, std::string> cases[] = {
      {"dataset: sessions\n    request:", "dataset: nope\n    request:"},
      {"every: 90s", "every: soon"},
      {"months: last_3", "months: lately"},
      {"    budget: {epsilon: 5, delta: 1.0e-6}\n", ""},
  };
  const std::string messages[] = {
      "publications[modes].dataset: unknown dataset",
      "publications[modes].every: \"soon\" is not a duration",
      "publications[modes].months: must be all, closed, or last_N",
      "publications[modes].budget: is required",
  };
  for (size_t i = 0; i < 4; ++i) {
    std::string text = kPublicationConfig;
    const size_t at = text.find(cases[i].first);
    ASSERT_NE(at, std::string::npos) << cases[i].first;
    text.replace(at, cases[i].first.size(), cases[i].second);
    EXPECT_THAT(
        ParseConfig(text, "t", ""),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(messages[i])));
  }
}

}  // namespace
}  // namespace cohortd

#include "server/config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/common/status_macros.h"
#include "server/crypto/pseudonymizer.h"
#include "yaml-cpp/yaml.h"

namespace cohortd {
namespace {

using YAML::Node;

// Fixed-point values are int64 multiples of a measure's granularity; 2^40
// steps leave 2^23 of headroom for sums over millions of sessions and for
// noise before an int64 could overflow.
constexpr double kMaxGranularitySteps = 1099511627776.0;  // 2^40
constexpr double kMaxDelta = 1e-3;
constexpr int64_t kMaxBatchSize = 1000000;
constexpr int64_t kMaxContributionBound = 1000000;
constexpr int64_t kMaxK = 1000000;
constexpr int64_t kMaxOpenDomainLength = 1024;
constexpr size_t kMaxLabelValueLength = 256;
constexpr size_t kMaxNameLength = 64;

// The first rule of CheckServerExposure that `config` breaks: the key
// under `server` it is about, and why. False when none.
bool FindExposureProblem(const Config& config, std::string* key,
                         std::string* problem) {
  const bool listen_loopback = IsLoopbackAddress(config.listen_address);
  const bool operator_loopback =
      IsLoopbackAddress(config.operator_metrics_address);
  if (!config.tls.enabled && !listen_loopback && !config.allow_plaintext) {
    *key = "listen";
    *problem = absl::StrFormat(
        "%s is not a loopback address and tls.enabled is false, so bearer "
        "tokens and records would cross the network in plaintext: enable "
        "server.tls, bind to loopback, or set server.allow_plaintext: true "
        "when a TLS-terminating proxy or a private network protects it",
        config.listen_address);
    return true;
  }
  if (!operator_loopback && config.operator_metrics_require_token.has_value() &&
      !*config.operator_metrics_require_token) {
    *key = "operator_metrics_require_token";
    *problem = absl::StrFormat(
        "cannot be false while operator_metrics_listen (%s) is not a "
        "loopback address: its series derive from records, so scrapes "
        "from the network must carry an admin token",
        config.operator_metrics_address);
    return true;
  }
  if (!operator_loopback && !config.allow_plaintext) {
    *key = "operator_metrics_listen";
    *problem = absl::StrFormat(
        "%s is not a loopback address: scrapes there need an admin bearer "
        "token, which would cross the network over plain HTTP; bind it to "
        "loopback (e.g. 127.0.0.1:9465), or set server.allow_plaintext: "
        "true when a private network protects it",
        config.operator_metrics_address);
    return true;
  }
  const std::pair<const char*, const std::string*> others[] = {
      {"listen", &config.listen_address},
      {"metrics_listen", &config.metrics_address}};
  for (const auto& [other, address] : others) {
    if (*address == config.operator_metrics_address &&
        !absl::EndsWith(*address, ":0")) {
      *key = "operator_metrics_listen";
      *problem = absl::StrFormat("must differ from server.%s (both %s)", other,
                                 *address);
      return true;
    }
  }
  return false;
}

std::string Join(const std::string& path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

// "datasets[sessions]" when the item has a usable name, else
// "datasets[0]", so messages point at what the author wrote.
std::string ItemPath(const std::string& list_path, size_t index,
                     absl::string_view name) {
  if (name.empty() || name.find_first_of("[]. \t") != absl::string_view::npos)
    return absl::StrCat(list_path, "[", index, "]");
  return absl::StrCat(list_path, "[", name, "]");
}

// [a-z][a-z0-9_]*: names that appear in requests, metric names and
// Prometheus output without quoting.
bool IsIdentifier(absl::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  if (!absl::ascii_islower(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_')
      return false;
  }
  return true;
}

// Principal names show up in logs, audit records and budgets: letters,
// digits and . _ @ - only.
bool IsPrincipalName(absl::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '@' && c != '-')
      return false;
  }
  return true;
}

bool HasControlCharacter(absl::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// host:port, host being a name, an IPv4 address or a bracketed IPv6
// address; port 0 asks for any free port (tests).
bool IsHostPort(absl::string_view s) {
  absl::string_view host, port;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find("]:");
    if (close == absl::string_view::npos || close == 1) return false;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    for (char c : host) {
      if (!absl::ascii_isxdigit(c) && c != ':' && c != '.') return false;
    }
  } else {
    size_t colon = s.rfind(':');
    if (colon == absl::string_view::npos || colon == 0) return false;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    for (char c : host) {
      if (!absl::ascii_isalnum(c) && c != '.' && c != '-') return false;
    }
  }
  if (port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  int port_number = 0;
  return absl::SimpleAtoi(port, &port_number) && port_number <= 65535;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path));
  std::string text;
  char buf[1 << 14];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status =
          absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path));
      close(fd);
      return status;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

// Parses one YAML document into the structs of config.h. Every error is
// InvalidArgument and reads "<origin>:<line>: <key path>: <problem>".
class Parser {
 public:
  Parser(absl::string_view origin, absl::string_view base_dir)
      : origin_(origin), base_dir_(base_dir) {}

  absl::Status ParseConfig(const Node& root, Config* config);
  // A principals_file: a mapping with only a `principals:` list.
  absl::Status ParsePrincipalsFile(const Node& root,
                                   std::vector<Principal>* out);

  absl::Status Error(const Node& at, const std::string& path,
                     absl::string_view problem) const {
    const YAML::Mark mark = at.Mark();
    if (mark.is_null()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: %s: %s", origin_, path, problem));
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s:%d: %s: %s", origin_, mark.line + 1, path, problem));
  }

 private:
  // `node` must be a mapping whose keys are all in `allowed` (typos in a
  // privacy config must not be silently ignored) and appear once.
  absl::Status CheckMap(const Node& node, const std::string& path,
                        std::initializer_list<absl::string_view> allowed);
  // Null when `key` is absent or has no value.
  static Node Child(const Node& map, absl::string_view key) {
    Node child = map[std::string(key)];
    return child.IsDefined() && !child.IsNull() ? child : Node();
  }
  static bool Present(const Node& node) {
    return node.IsDefined() && !node.IsNull();
  }
  absl::Status Required(const Node& map, absl::string_view key,
                        const std::string& path, Node* out);

  absl::Status ParseStorage(const Node& node, const std::string& path,
                            StorageSpec* storage);
  absl::Status ReadString(const Node& node, const std::string& path,
                          std::string* out);
  absl::Status ReadBool(const Node& node, const std::string& path, bool* out);
  absl::Status ReadInt(const Node& node, const std::string& path, int64_t min,
                       int64_t max, int64_t* out);
  absl::Status ReadInt(const Node& node, const std::string& path, int min,
                       int max, int* out) {
    int64_t v = 0;
    RETURN_IF_ERROR(ReadInt(node, path, int64_t{min}, int64_t{max}, &v));
    *out = static_cast<int>(v);
    return absl::OkStatus();
  }
  // A finite number.
  absl::Status ReadDouble(const Node& node, const std::string& path,
                          double* out);
  // A two-element list of finite numbers, first < second.
  absl::Status ReadRange(const Node& node, const std::string& path, double* lo,
                         double* hi);
  absl::Status ReadPositive(const Node& node, const std::string& path,
                            double* out);
  absl::Status ReadDelta(const Node& node, const std::string& path,
                         double* out);
  // A duration: whole days as "400d", or absl's form ("36h", "90m",
  // "1h30m", "30s"); "0" is zero. Must be 0 (when `zero_ok`) or >= `min`.
  absl::Status ReadRetentionDuration(const Node& node, const std::string& path,
                                     absl::Duration min, bool zero_ok,
                                     absl::Duration* out);
  absl::Status ReadPath(const Node& node, const std::string& path,
                        std::string* out);
  absl::Status ReadAddress(const Node& node, const std::string& path,
                           std::string* out);

  absl::Status ParseServer(const Node& node, const std::string& path,
                           Config* config);
  absl::Status ParseIngestCaps(const Node& node, const std::string& path,
                               IngestCaps* caps);
  absl::Status ParseTls(const Node& node, const std::string& path,
                        TlsSpec* tls);
  // After max_batch_size (the ingest burst must hold a whole batch).
  absl::Status ParseLimits(const Node& node, const std::string& path,
                           int max_batch_size, LimitsSpec* limits);
  // A duration such as "90s", "5m", "1h" (absl::ParseDuration), >= 0.
  absl::Status ReadDuration(const Node& node, const std::string& path,
                            absl::Duration* out);
  // A finite number >= 0.
  absl::Status ReadNonNegative(const Node& node, const std::string& path,
                               double* out);
  // server.operator_metrics_listen, operator_metrics_require_token,
  // allow_plaintext, and the rules across them (CheckServerExposure).
  absl::Status ParseExposure(const Node& node, const std::string& path,
                             Config* config);
  absl::Status ParsePrincipals(const Node& node, const std::string& path,
                               std::vector<Principal>* out);
  absl::Status ParseDataset(const Node& node, const std::string& path,
                            size_t index, DatasetSpec* dataset);
  absl::Status ParseDimension(const Node& node, const std::string& path,
                              DimensionSpec* dimension);
  absl::Status ParseMeasure(const Node& node, const std::string& path,
                            MeasureSpec* measure);
  // After the measures: each band cuts one of them; `names` is the
  // dataset's namespace of dimensions and measures.
  absl::Status ParseBands(const Node& node, const std::string& path,
                          std::set<std::string>* names, DatasetSpec* dataset);
  absl::Status ParsePrivacy(const Node& node, const std::string& path,
                            PrivacySpec* privacy);
  absl::Status ParseBudget(const Node& node, const std::string& path,
                           BudgetSpec* budget);
  // After the datasets: each publication names one of them.
  absl::Status ParsePublications(const Node& node, Config* config);
  static std::string ToJson(const Node& node);
  static std::string JsonString(const std::string& s);

  std::string ResolvePath(const std::string& path) const {
    std::filesystem::path p(path);
    if (p.is_absolute() || base_dir_.empty()) return p.lexically_normal();
    return (std::filesystem::path(base_dir_) / p).lexically_normal();
  }

  std::string origin_;
  std::string base_dir_;
};

absl::Status Parser::CheckMap(
    const Node& node, const std::string& path,
    std::initializer_list<absl::string_view> allowed) {
  if (!node.IsMap()) {
    return Error(node, path.empty() ? "(top level)" : path,
                 "must be a mapping of keys to values");
  }
  std::set<std::string> seen;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    if (!seen.insert(key).second) {
      return Error(entry.first, Join(path, key), "key appears twice");
    }
    bool known = false;
    for (absl::string_view a : allowed) known |= (a == key);
    if (!known) {
      return Error(entry.first, Join(path, key),
                   absl::StrCat("unknown key; allowed here: ",
                                absl::StrJoin(allowed, ", ")));
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::Required(const Node& map, absl::string_view key,
                              const std::string& path, Node* out) {
  *out = Child(map, key);
  if (!Present(*out)) return Error(map, Join(path, key), "is required");
  return absl::OkStatus();
}

absl::Status Parser::ReadString(const Node& node, const std::string& path,
                                std::string* out) {
  if (!node.IsScalar()) return Error(node, path, "must be a string");
  *out = node.Scalar();
  return absl::OkStatus();
}

absl::Status Parser::ReadRetentionDuration(const Node& node,
                                           const std::string& path,
                                           absl::Duration min, bool zero_ok,
                                           absl::Duration* out) {
  const std::string hint =
      absl::StrFormat("must be a duration such as 400d, 36h or 30m%s",
                      zero_ok ? " (0: keep forever)" : "");
  if (!node.IsScalar()) return Error(node, path, hint);
  const std::string text = node.Scalar();
  absl::Duration d;
  int64_t days = 0;
  if (text == "0") {
    d = absl::ZeroDuration();
  } else if (absl::EndsWith(text, "d") &&
             absl::SimpleAtoi(
                 absl::string_view(text).substr(0, text.size() - 1), &days) &&
             days >= 0 && days <= 100 * 366) {
    d = absl::Hours(24 * days);
  } else if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration() ||
             d == absl::InfiniteDuration()) {
    return Error(node, path, absl::StrFormat("\"%s\" %s", text, hint));
  }
  if (d == absl::ZeroDuration() && zero_ok) {
    *out = d;
    return absl::OkStatus();
  }
  if (d < min) {
    return Error(node, path,
                 absl::StrFormat("\"%s\" is shorter than the minimum %s%s",
                                 text, absl::FormatDuration(min),
                                 zero_ok ? " (0: keep forever)" : ""));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status Parser::ReadBool(const Node& node, const std::string& path,
                              bool* out) {
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, *out)) {
    return Error(node, path, "must be true or false");
  }
  return absl::OkStatus();
}

absl::Status Parser::ReadInt(const Node& node, const std::string& path,
                             int64_t min, int64_t max, int64_t* out) {
  int64_t v = 0;
  if (!node.IsScalar() || !absl::SimpleAtoi(node.Scalar(), &v) || v < min ||
      v > max) {
    return Error(
        node, path,
        absl::StrFormat("must be an integer in [%d, %d], got \"%s\"", min, max,
                        node.IsScalar() ? node.Scalar() : "(not a number)"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status Parser::ReadDouble(const Node& node, const std::string& path,
                                double* out) {
  double v = 0;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, v) ||
      !std::isfinite(v)) {
    return Error(node, path,
                 absl::StrFormat("must be a finite number, got \"%s\"",
                                 node.IsScalar() ? node.Scalar() : "(list)"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status Parser::ReadRange(const Node& node, const std::string& path,
                               double* lo, double* hi) {
  if (!node.IsSequence() || node.size() != 2) {
    return Error(node, path, "must be a list [lower, upper] of two numbers");
  }
  RETURN_IF_ERROR(ReadDouble(node[0], path, lo));
  RETURN_IF_ERROR(ReadDouble(node[1], path, hi));
  if (!(*lo < *hi)) {
    return Error(
        node, path,
        absl::StrFormat("lower (%g) must be below upper (%g)", *lo, *hi));
  }
  return absl::OkStatus();
}

absl::Status Parser::ReadPositive(const Node& node, const std::string& path,
                                  double* out) {
  RETURN_IF_ERROR(ReadDouble(node, path, out));
  if (!(*out > 0)) {
    return Error(node, path, absl::StrFormat("must be > 0, got %g", *out));
  }
  return absl::OkStatus();
}

absl::Status Parser::ReadDelta(const Node& node, const std::string& path,
                               double* out) {
  RETURN_IF_ERROR(ReadDouble(node, path, out));
  if (!(*out > 0 && *out <= kMaxDelta)) {
    return Error(node, path,
                 absl::StrFormat("must be in (0, %g] (a delta above that "
                                 "risks releasing a record outright), got %g",
                                 kMaxDelta, *out));
  }
  return absl::OkStatus();
}

absl::Status Parser::ReadPath(const Node& node, const std::string& path,
                              std::string* out) {
  std::string raw;
  RETURN_IF_ERROR(ReadString(node, path, &raw));
  if (raw.empty()) return Error(node, path, "must be a non-empty path");
  *out = ResolvePath(raw);
  return absl::OkStatus();
}

absl::Status Parser::ReadAddress(const Node& node, const std::string& path,
                                 std::string* out) {
  RETURN_IF_ERROR(ReadString(node, path, out));
  if (!IsHostPort(*out)) {
    return Error(node, path,
                 absl::StrFormat("\"%s\" is not host:port (e.g. "
                                 "127.0.0.1:7443 or [::1]:7443; port 0-65535)",
                                 *out));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseConfig(const Node& root, Config* config) {
  if (!Present(root)) return Error(root, "(top level)", "the config is empty");
  RETURN_IF_ERROR(CheckMap(root, "",
                           {"server", "principals", "principals_file",
                            "datasets", "publications", "ingest", "storage"}));
  Node server;
  RETURN_IF_ERROR(Required(root, "server", "", &server));
  RETURN_IF_ERROR(ParseServer(server, "server", config));
  if (Node ingest = Child(root, "ingest"); Present(ingest)) {
    RETURN_IF_ERROR(ParseIngestCaps(ingest, "ingest", &config->ingest));
  }
  if (Node storage = Child(root, "storage"); Present(storage)) {
    RETURN_IF_ERROR(ParseStorage(storage, "storage", &config->storage));
  }

  if (Node principals = Child(root, "principals"); Present(principals)) {
    RETURN_IF_ERROR(
        ParsePrincipals(principals, "principals", &config->principals));
  }
  if (Node file = Child(root, "principals_file"); Present(file)) {
    std::string path;
    RETURN_IF_ERROR(ReadPath(file, "principals_file", &path));
    absl::StatusOr<std::string> text = ReadWholeFile(path);
    if (!text.ok()) {
      // Keep the errno-derived code (NotFound, PermissionDenied) but say
      // which key named the file.
      return absl::Status(text.status().code(),
                          absl::StrFormat("%s: principals_file: %s", origin_,
                                          text.status().message()));
    }
    Parser file_parser(path, base_dir_);
    std::vector<Principal> from_file;
    Node file_root;
    try {
      file_root = YAML::Load(*text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d:%d: invalid YAML: %s", path, e.mark.line + 1,
                          e.mark.column + 1, e.msg));
    }
    RETURN_IF_ERROR(file_parser.ParsePrincipalsFile(file_root, &from_file));
    for (Principal& p : from_file) config->principals.push_back(std::move(p));
  }
  // Names are unique across the inline list and the file together; a token
  // hash must identify one principal, or authentication would be ambiguous.
  // The two entries may sit in different files, so no line is given.
  std::set<std::string> names;
  std::map<Digest256, std::string> hashes;
  for (size_t i = 0; i < config->principals.size(); ++i) {
    const Principal& p = config->principals[i];
    const std::string path = ItemPath("principals", i, p.name);
    if (!names.insert(p.name).second) {
      return Error(Node(), path,
                   absl::StrFormat("principal name \"%s\" is used twice "
                                   "(inline list and principals_file "
                                   "together)",
                                   p.name));
    }
    auto [it, inserted] = hashes.emplace(p.token_sha256, p.name);
    if (!inserted) {
      return Error(Node(), Join(path, "token_sha256"),
                   absl::StrFormat("same token hash as principal \"%s\"; "
                                   "every principal needs its own token",
                                   it->second));
    }
  }

  if (Node datasets = Child(root, "datasets"); Present(datasets)) {
    if (!datasets.IsSequence()) {
      return Error(datasets, "datasets", "must be a list of datasets");
    }
    std::set<std::string> dataset_names;
    for (size_t i = 0; i < datasets.size(); ++i) {
      DatasetSpec dataset;
      RETURN_IF_ERROR(ParseDataset(datasets[i], "datasets", i, &dataset));
      if (!dataset_names.insert(dataset.name).second) {
        return Error(
            datasets[i], ItemPath("datasets", i, dataset.name),
            absl::StrFormat("dataset \"%s\" is declared twice", dataset.name));
      }
      config->datasets.push_back(std::move(dataset));
    }
  }
  if (Node publications = Child(root, "publications"); Present(publications)) {
    RETURN_IF_ERROR(ParsePublications(publications, config));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParsePublications(const Node& node, Config* config) {
  if (!node.IsSequence()) {
    return Error(node, "publications", "must be a list of publications");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < node.size(); ++i) {
    const Node& item = node[i];
    std::string path = ItemPath("publications", i, "");
    RETURN_IF_ERROR(
        CheckMap(item, path,
                 {"name", "dataset", "request", "every", "months", "budget"}));
    PublicationSpec pub;
    Node n;
    RETURN_IF_ERROR(Required(item, "name", path, &n));
    RETURN_IF_ERROR(ReadString(n, Join(path, "name"), &pub.name));
    if (!IsIdentifier(pub.name)) {
      return Error(n, Join(path, "name"),
                   absl::StrFormat("\"%s\" is not an identifier "
                                   "([a-z][a-z0-9_]*)",
                                   pub.name));
    }
    path = ItemPath("publications", i, pub.name);
    if (!names.insert(pub.name).second) {
      return Error(n, path, "is declared twice");
    }
    RETURN_IF_ERROR(Required(item, "dataset", path, &n));
    RETURN_IF_ERROR(ReadString(n, Join(path, "dataset"), &pub.dataset));
    DatasetSpec* dataset = nullptr;
    for (DatasetSpec& d : config->datasets) {
      if (d.name == pub.dataset) dataset = &d;
    }
    if (dataset == nullptr) {
      return Error(n, Join(path, "dataset"),
                   absl::StrFormat("unknown dataset \"%s\"", pub.dataset));
    }
    RETURN_IF_ERROR(Required(item, "request", path, &n));
    if (!n.IsMap()) {
      return Error(n, Join(path, "request"),
                   "must be a mapping in the form of an AggregateRequest "
                   "(group_by, filters, metrics, epsilon, confidence)");
    }
    if (Present(Child(n, "dataset"))) {
      return Error(n, Join(path, "request.dataset"),
                   "is taken from the publication's `dataset`; remove it");
    }
    pub.request_json = ToJson(n);
    if (Node every = Child(item, "every"); Present(every)) {
      std::string text;
      RETURN_IF_ERROR(ReadString(every, Join(path, "every"), &text));
      if (!absl::ParseDuration(text, &pub.every) ||
          pub.every < absl::Seconds(1)) {
        return Error(every, Join(path, "every"),
                     absl::StrFormat("\"%s\" is not a duration of at least "
                                     "1s (e.g. 30s, 10m, 1h)",
                                     text));
      }
    }
    if (Node months = Child(item, "months"); Present(months)) {
      std::string text;
      RETURN_IF_ERROR(ReadString(months, Join(path, "months"), &text));
      int last = 0;
      absl::string_view rest = text;
      if (text == "all") {
        pub.months = PublicationSpec::Months::kAll;
      } else if (text == "closed") {
        pub.months = PublicationSpec::Months::kClosed;
      } else if (absl::ConsumePrefix(&rest, "last_") &&
                 absl::SimpleAtoi(rest, &last) && last >= 1 && last <= 120) {
        pub.months = PublicationSpec::Months::kLastClosed;
        pub.last_months = last;
      } else {
        return Error(months, Join(path, "months"),
                     "must be all, closed, or last_N (N closed months, "
                     "1 to 120)");
      }
    }
    RETURN_IF_ERROR(Required(item, "budget", path, &n));
    RETURN_IF_ERROR(ParseBudget(n, Join(path, "budget"), &pub.budget));
    dataset->privacy.principal_budgets[PublicationPrincipal(pub.name)] =
        pub.budget;
    config->publications.push_back(std::move(pub));
  }
  return absl::OkStatus();
}

// Every scalar becomes a JSON string: protobuf's JSON parser accepts
// strings for numbers and enum names alike, so the YAML author need not
// care which is which.
std::string Parser::ToJson(const Node& node) {
  if (node.IsMap()) {
    std::string out = "{";
    bool first = true;
    for (const auto& kv : node) {
      if (!first) out += ",";
      first = false;
      out += JsonString(kv.first.as<std::string>()) + ":" + ToJson(kv.second);
    }
    return out + "}";
  }
  if (node.IsSequence()) {
    std::string out = "[";
    for (size_t i = 0; i < node.size(); ++i) {
      if (i > 0) out += ",";
      out += ToJson(node[i]);
    }
    return out + "]";
  }
  if (!Present(node)) return "null";
  return JsonString(node.as<std::string>());
}

std::string Parser::JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

absl::Status Parser::ParsePrincipalsFile(const Node& root,
                                         std::vector<Principal>* out) {
  if (!Present(root)) return Error(root, "(top level)", "the file is empty");
  RETURN_IF_ERROR(CheckMap(root, "", {"principals"}));
  Node principals;
  RETURN_IF_ERROR(Required(root, "principals", "", &principals));
  return ParsePrincipals(principals, "principals", out);
}

absl::Status Parser::ParseServer(const Node& node, const std::string& path,
                                 Config* config) {
  RETURN_IF_ERROR(CheckMap(
      node, path,
      {"listen", "metrics_listen", "data_dir", "pseudonymization_key_file",
       "max_batch_size", "tls", "limits", "snapshot_every",
       "operator_metrics_listen", "operator_metrics_require_token",
       "allow_plaintext", "retention_interval", "snapshot_buffer_mib"}));
  if (Node n = Child(node, "listen"); Present(n)) {
    RETURN_IF_ERROR(
        ReadAddress(n, Join(path, "listen"), &config->listen_address));
  }
  if (Node n = Child(node, "metrics_listen"); Present(n)) {
    RETURN_IF_ERROR(
        ReadAddress(n, Join(path, "metrics_listen"), &config->metrics_address));
  }
  if (config->listen_address == config->metrics_address &&
      !absl::EndsWith(config->listen_address, ":0")) {
    return Error(node, Join(path, "metrics_listen"),
                 absl::StrFormat("must differ from server.listen (both %s)",
                                 config->listen_address));
  }
  Node n;
  RETURN_IF_ERROR(Required(node, "data_dir", path, &n));
  RETURN_IF_ERROR(ReadPath(n, Join(path, "data_dir"), &config->data_dir));
  RETURN_IF_ERROR(Required(node, "pseudonymization_key_file", path, &n));
  RETURN_IF_ERROR(ReadPath(n, Join(path, "pseudonymization_key_file"),
                           &config->pseudonymization_key_file));
  if (Node n = Child(node, "max_batch_size"); Present(n)) {
    RETURN_IF_ERROR(ReadInt(n, Join(path, "max_batch_size"), 1,
                            static_cast<int>(kMaxBatchSize),
                            &config->max_batch_size));
  }
  if (Node n = Child(node, "tls"); Present(n)) {
    RETURN_IF_ERROR(ParseTls(n, Join(path, "tls"), &config->tls));
  }
  if (Node n = Child(node, "snapshot_every"); Present(n)) {
    std::string text;
    RETURN_IF_ERROR(ReadString(n, Join(path, "snapshot_every"), &text));
    if (!absl::ParseDuration(text, &config->snapshot_every) ||
        config->snapshot_every < absl::Seconds(1)) {
      return Error(n, Join(path, "snapshot_every"),
                   absl::StrFormat("\"%s\" is not a duration of at least 1s "
                                   "(e.g. 15m, 1h, 24h)",
                                   text));
    }
  }
  if (Node n = Child(node, "snapshot_buffer_mib"); Present(n)) {
    int64_t mib = 0;
    RETURN_IF_ERROR(ReadInt(n, Join(path, "snapshot_buffer_mib"), 1,
                            int64_t{1} << 20, &mib));
    config->snapshot_buffer_bytes = mib << 20;
  }
  if (Node n = Child(node, "limits"); Present(n)) {
    RETURN_IF_ERROR(ParseLimits(n, Join(path, "limits"), config->max_batch_size,
                                &config->limits));
  } else if (config->limits.ingest_burst > 0 &&
             config->limits.ingest_burst < config->max_batch_size) {
    config->limits.ingest_burst = config->max_batch_size;
  }
  if (Node n = Child(node, "retention_interval"); Present(n)) {
    RETURN_IF_ERROR(ReadRetentionDuration(n, Join(path, "retention_interval"),
                                          absl::Seconds(1), /*zero_ok=*/false,
                                          &config->retention_interval));
  }
  RETURN_IF_ERROR(ParseExposure(node, path, config));
  return absl::OkStatus();
}

absl::Status Parser::ReadDuration(const Node& node, const std::string& path,
                                  absl::Duration* out) {
  if (!node.IsScalar() || !absl::ParseDuration(node.Scalar(), out) ||
      *out < absl::ZeroDuration() || *out == absl::InfiniteDuration()) {
    return Error(node, path,
                 absl::StrFormat("must be a duration >= 0 such as 90s, 5m or "
                                 "1h, got \"%s\"",
                                 node.IsScalar() ? node.Scalar() : "(list)"));
  }
  return absl::OkStatus();
}

absl::Status Parser::ReadNonNegative(const Node& node, const std::string& path,
                                     double* out) {
  RETURN_IF_ERROR(ReadDouble(node, path, out));
  if (!(*out >= 0)) {
    return Error(node, path, absl::StrFormat("must be >= 0, got %g", *out));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseLimits(const Node& node, const std::string& path,
                                 int max_batch_size, LimitsSpec* limits) {
  RETURN_IF_ERROR(CheckMap(
      node, path,
      {"observation_bytes", "max_threads", "max_streams",
       "max_streams_per_principal", "keepalive_time", "keepalive_timeout",
       "max_connection_age", "max_connection_age_grace", "ingest_rate",
       "ingest_burst", "query_rate", "query_burst"}));
  struct IntKey {
    absl::string_view key;
    int min, max;
    int* out;
  };
  for (const IntKey& k :
       {IntKey{"observation_bytes", 256, 1 << 20, &limits->observation_bytes},
        IntKey{"max_threads", 8, 100000, &limits->max_threads},
        IntKey{"max_streams", 1, 100000, &limits->max_streams},
        IntKey{"max_streams_per_principal", 1, 100000,
               &limits->max_streams_per_principal}}) {
    if (Node n = Child(node, k.key); Present(n)) {
      RETURN_IF_ERROR(ReadInt(n, Join(path, k.key), k.min, k.max, k.out));
    }
  }
  struct DurationKey {
    absl::string_view key;
    absl::Duration* out;
  };
  for (const DurationKey& k :
       {DurationKey{"keepalive_time", &limits->keepalive_time},
        DurationKey{"keepalive_timeout", &limits->keepalive_timeout},
        DurationKey{"max_connection_age", &limits->max_connection_age},
        DurationKey{"max_connection_age_grace",
                    &limits->max_connection_age_grace}}) {
    if (Node n = Child(node, k.key); Present(n)) {
      RETURN_IF_ERROR(ReadDuration(n, Join(path, k.key), k.out));
    }
  }
  const bool burst_set = Present(Child(node, "ingest_burst"));
  struct RateKey {
    absl::string_view key;
    double* out;
  };
  for (const RateKey& k : {RateKey{"ingest_rate", &limits->ingest_rate},
                           RateKey{"ingest_burst", &limits->ingest_burst},
                           RateKey{"query_rate", &limits->query_rate},
                           RateKey{"query_burst", &limits->query_burst}}) {
    if (Node n = Child(node, k.key); Present(n)) {
      RETURN_IF_ERROR(ReadNonNegative(n, Join(path, k.key), k.out));
    }
  }
  // gRPC keeps one thread polling, so max_threads - 1 calls run at once;
  // ingest streams may take max_streams of them, queries need one more.
  if (limits->max_threads < limits->max_streams + 2) {
    return Error(
        node, Join(path, "max_threads"),
        absl::StrFormat("must be at least max_streams + 2 (%d): gRPC keeps "
                        "one thread polling, so max_threads - 1 calls run "
                        "at once, and queries need one while ingest streams "
                        "are at their cap; got %d",
                        limits->max_streams + 2, limits->max_threads));
  }
  if (limits->max_streams_per_principal > limits->max_streams) {
    return Error(node, Join(path, "max_streams_per_principal"),
                 absl::StrFormat("must be at most max_streams (%d), got %d",
                                 limits->max_streams,
                                 limits->max_streams_per_principal));
  }
  if (limits->ingest_rate > 0 && limits->ingest_burst < max_batch_size) {
    if (!burst_set) {
      limits->ingest_burst = max_batch_size;
    } else {
      return Error(node, Join(path, "ingest_burst"),
                   absl::StrFormat("must be at least max_batch_size (%d) so "
                                   "that a full batch can pass; got %g",
                                   max_batch_size, limits->ingest_burst));
    }
  }
  if (limits->query_rate > 0 && limits->query_burst < 1) {
    return Error(node, Join(path, "query_burst"),
                 absl::StrFormat("must be >= 1 when query_rate is set; got %g",
                                 limits->query_burst));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseExposure(const Node& node, const std::string& path,
                                   Config* config) {
  if (Node n = Child(node, "operator_metrics_listen"); Present(n)) {
    RETURN_IF_ERROR(ReadAddress(n, Join(path, "operator_metrics_listen"),
                                &config->operator_metrics_address));
  }
  if (Node n = Child(node, "operator_metrics_require_token"); Present(n)) {
    bool require = false;
    RETURN_IF_ERROR(
        ReadBool(n, Join(path, "operator_metrics_require_token"), &require));
    config->operator_metrics_require_token = require;
  }
  if (Node n = Child(node, "allow_plaintext"); Present(n)) {
    RETURN_IF_ERROR(
        ReadBool(n, Join(path, "allow_plaintext"), &config->allow_plaintext));
  }
  std::string key;
  std::string problem;
  if (FindExposureProblem(*config, &key, &problem)) {
    Node at = Child(node, key);
    return Error(Present(at) ? at : node, Join(path, key), problem);
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseIngestCaps(const Node& node, const std::string& path,
                                     IngestCaps* caps) {
  RETURN_IF_ERROR(CheckMap(
      node, path, {"max_sources_per_session", "max_open_domain_values"}));
  if (Node n = Child(node, "max_sources_per_session"); Present(n)) {
    RETURN_IF_ERROR(ReadInt(n, Join(path, "max_sources_per_session"), 1,
                            1000000, &caps->max_sources_per_session));
  }
  if (Node n = Child(node, "max_open_domain_values"); Present(n)) {
    RETURN_IF_ERROR(ReadInt(n, Join(path, "max_open_domain_values"), 1,
                            100000000, &caps->max_open_domain_values));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseStorage(const Node& node, const std::string& path,
                                  StorageSpec* storage) {
  RETURN_IF_ERROR(CheckMap(node, path, {"engine", "clickhouse"}));
  if (Node n = Child(node, "engine"); Present(n)) {
    std::string engine;
    RETURN_IF_ERROR(ReadString(n, Join(path, "engine"), &engine));
    if (engine == "rocksdb") {
      storage->engine = StorageSpec::Engine::kRocksDb;
    } else if (engine == "clickhouse") {
      storage->engine = StorageSpec::Engine::kClickHouse;
    } else {
      return Error(n, Join(path, "engine"),
                   absl::StrFormat("\"%s\" is not an engine; allowed: "
                                   "rocksdb, clickhouse",
                                   engine));
    }
  }
  const Node ch = Child(node, "clickhouse");
  if (!Present(ch)) {
    if (storage->engine == StorageSpec::Engine::kClickHouse) {
      return Error(node, Join(path, "clickhouse"),
                   "engine clickhouse needs a clickhouse: section with url");
    }
    return absl::OkStatus();
  }
  const std::string chp = Join(path, "clickhouse");
  ClickHouseSpec& spec = storage->clickhouse;
  RETURN_IF_ERROR(CheckMap(ch, chp,
                           {"url", "database", "cluster", "user",
                            "password_file", "max_outbox_bytes"}));
  if (Node n = Child(ch, "max_outbox_bytes"); Present(n)) {
    RETURN_IF_ERROR(ReadInt(n, Join(chp, "max_outbox_bytes"), 0,
                            int64_t{1} << 50, &spec.max_outbox_bytes));
  }
  if (Node n = Child(ch, "url"); Present(n)) {
    RETURN_IF_ERROR(ReadString(n, Join(chp, "url"), &spec.url));
    if (!absl::StartsWith(spec.url, "http://") &&
        !absl::StartsWith(spec.url, "https://")) {
      return Error(n, Join(chp, "url"),
                   absl::StrFormat("\"%s\" is not an http:// or https:// "
                                   "URL (e.g. http://127.0.0.1:8123)",
                                   spec.url));
    }
  }
  if (Node n = Child(ch, "database"); Present(n)) {
    RETURN_IF_ERROR(ReadString(n, Join(chp, "database"), &spec.database));
    const bool ok =
        !spec.database.empty() &&
        std::all_of(spec.database.begin(), spec.database.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        });
    if (!ok) {
      return Error(
          n, Join(chp, "database"),
          absl::StrFormat("\"%s\": use letters, digits and _", spec.database));
    }
  }
  if (Node n = Child(ch, "cluster"); Present(n)) {
    RETURN_IF_ERROR(ReadString(n, Join(chp, "cluster"), &spec.cluster));
  }
  if (Node n = Child(ch, "user"); Present(n)) {
    RETURN_IF_ERROR(ReadString(n, Join(chp, "user"), &spec.user));
  }
  if (Node n = Child(ch, "password_file"); Present(n)) {
    std::string file;
    RETURN_IF_ERROR(ReadString(n, Join(chp, "password_file"), &file));
    if (!file.empty()) {
      RETURN_IF_ERROR(
          ReadPath(n, Join(chp, "password_file"), &spec.password_file));
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseTls(const Node& node, const std::string& path,
                              TlsSpec* tls) {
  RETURN_IF_ERROR(CheckMap(node, path,
                           {"enabled", "cert_file", "key_file",
                            "client_ca_file", "require_client_cert"}));
  if (Node n = Child(node, "enabled"); Present(n)) {
    RETURN_IF_ERROR(ReadBool(n, Join(path, "enabled"), &tls->enabled));
  }
  if (Node n = Child(node, "require_client_cert"); Present(n)) {
    RETURN_IF_ERROR(ReadBool(n, Join(path, "require_client_cert"),
                             &tls->require_client_cert));
  }
  struct FileKey {
    absl::string_view key;
    std::string* out;
  };
  for (const FileKey& f : {FileKey{"cert_file", &tls->cert_file},
                           FileKey{"key_file", &tls->key_file},
                           FileKey{"client_ca_file", &tls->client_ca_file}}) {
    if (Node n = Child(node, f.key); Present(n)) {
      RETURN_IF_ERROR(ReadPath(n, Join(path, f.key), f.out));
    }
  }
  if (tls->enabled) {
    if (tls->cert_file.empty()) {
      return Error(node, Join(path, "cert_file"),
                   "is required when tls.enabled is true");
    }
    if (tls->key_file.empty()) {
      return Error(node, Join(path, "key_file"),
                   "is required when tls.enabled is true");
    }
  }
  if (tls->require_client_cert) {
    if (!tls->enabled) {
      return Error(node, Join(path, "require_client_cert"),
                   "needs tls.enabled: true (mutual TLS is TLS)");
    }
    if (tls->client_ca_file.empty()) {
      return Error(node, Join(path, "require_client_cert"),
                   "needs tls.client_ca_file, the CA that signs client "
                   "certificates");
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::ParsePrincipals(const Node& node, const std::string& path,
                                     std::vector<Principal>* out) {
  if (!node.IsSequence()) {
    return Error(node, path,
                 "must be a list of {name, role, token_sha256} entries");
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const Node item = node[i];
    std::string item_path = ItemPath(path, i, "");
    RETURN_IF_ERROR(
        CheckMap(item, item_path, {"name", "role", "token_sha256"}));
    Principal p;
    Node n;
    RETURN_IF_ERROR(Required(item, "name", item_path, &n));
    RETURN_IF_ERROR(ReadString(n, Join(item_path, "name"), &p.name));
    if (!IsPrincipalName(p.name)) {
      return Error(n, Join(item_path, "name"),
                   absl::StrFormat("\"%s\" is not a principal name: 1-%d "
                                   "letters, digits or . _ @ -",
                                   p.name, kMaxNameLength));
    }
    item_path = ItemPath(path, i, p.name);

    std::string role;
    RETURN_IF_ERROR(Required(item, "role", item_path, &n));
    RETURN_IF_ERROR(ReadString(n, Join(item_path, "role"), &role));
    if (role == "ingest") {
      p.role = Role::kIngest;
    } else if (role == "analyst") {
      p.role = Role::kAnalyst;
    } else if (role == "admin") {
      p.role = Role::kAdmin;
    } else {
      return Error(n, Join(item_path, "role"),
                   absl::StrFormat("unknown role \"%s\"; allowed: ingest, "
                                   "analyst, admin",
                                   role));
    }

    std::string hex;
    RETURN_IF_ERROR(Required(item, "token_sha256", item_path, &n));
    RETURN_IF_ERROR(ReadString(n, Join(item_path, "token_sha256"), &hex));
    if (!ParseHexDigest256(hex, &p.token_sha256)) {
      return Error(n, Join(item_path, "token_sha256"),
                   "must be the SHA-256 of the token as 64 hex digits "
                   "(printf %s \"$TOKEN\" | sha256sum), never the token "
                   "itself");
    }
    out->push_back(std::move(p));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseDataset(const Node& node, const std::string& list,
                                  size_t index, DatasetSpec* dataset) {
  std::string path = ItemPath(list, index, "");
  RETURN_IF_ERROR(CheckMap(node, path,
                           {"name", "description", "dimensions", "measures",
                            "bands", "privacy", "retention"}));
  Node n;
  RETURN_IF_ERROR(Required(node, "name", path, &n));
  RETURN_IF_ERROR(ReadString(n, Join(path, "name"), &dataset->name));
  if (!IsIdentifier(dataset->name)) {
    return Error(n, Join(path, "name"),
                 absl::StrFormat("\"%s\" is not an identifier "
                                 "([a-z][a-z0-9_]*, at most %d characters)",
                                 dataset->name, kMaxNameLength));
  }
  path = ItemPath(list, index, dataset->name);
  if (Node d = Child(node, "description"); Present(d)) {
    RETURN_IF_ERROR(
        ReadString(d, Join(path, "description"), &dataset->description));
  }

  // Dimensions and measures share one namespace: a request's group_by,
  // filters and metrics name them, and output columns must not collide.
  std::set<std::string> names;
  Node dims;
  RETURN_IF_ERROR(Required(node, "dimensions", path, &dims));
  const std::string dims_path = Join(path, "dimensions");
  if (!dims.IsSequence()) {
    return Error(dims, dims_path, "must be a list of dimensions");
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    DimensionSpec dim;
    RETURN_IF_ERROR(ParseDimension(dims[i], ItemPath(dims_path, i, ""), &dim));
    if (!names.insert(dim.name).second) {
      return Error(dims[i], ItemPath(dims_path, i, dim.name),
                   absl::StrFormat("name \"%s\" is used twice among this "
                                   "dataset's dimensions and measures",
                                   dim.name));
    }
    dataset->dimensions.push_back(std::move(dim));
  }

  Node measures;
  RETURN_IF_ERROR(Required(node, "measures", path, &measures));
  const std::string measures_path = Join(path, "measures");
  if (!measures.IsSequence()) {
    return Error(measures, measures_path, "must be a list of measures");
  }
  for (size_t i = 0; i < measures.size(); ++i) {
    MeasureSpec measure;
    RETURN_IF_ERROR(
        ParseMeasure(measures[i], ItemPath(measures_path, i, ""), &measure));
    if (!names.insert(measure.name).second) {
      return Error(measures[i], ItemPath(measures_path, i, measure.name),
                   absl::StrFormat("name \"%s\" is used twice among this "
                                   "dataset's dimensions and measures",
                                   measure.name));
    }
    dataset->measures.push_back(std::move(measure));
  }

  if (Node bands = Child(node, "bands"); Present(bands)) {
    RETURN_IF_ERROR(ParseBands(bands, Join(path, "bands"), &names, dataset));
  }

  if (Node r = Child(node, "retention"); Present(r)) {
    // Under a day is almost surely a unit mistake ("400" meant as days),
    // and deletions cannot be undone.
    RETURN_IF_ERROR(ReadRetentionDuration(r, Join(path, "retention"),
                                          absl::Hours(24), /*zero_ok=*/true,
                                          &dataset->retention));
  }

  Node privacy;
  RETURN_IF_ERROR(Required(node, "privacy", path, &privacy));
  return ParsePrivacy(privacy, Join(path, "privacy"), &dataset->privacy);
}

absl::Status Parser::ParseDimension(const Node& node, const std::string& path,
                                    DimensionSpec* dim) {
  RETURN_IF_ERROR(CheckMap(
      node, path, {"name", "values", "open_domain", "max_length", "derived"}));
  Node n;
  RETURN_IF_ERROR(Required(node, "name", path, &n));
  RETURN_IF_ERROR(ReadString(n, Join(path, "name"), &dim->name));
  if (!IsIdentifier(dim->name)) {
    return Error(n, Join(path, "name"),
                 absl::StrFormat("\"%s\" is not an identifier "
                                 "([a-z][a-z0-9_]*, at most %d characters)",
                                 dim->name, kMaxNameLength));
  }
  // The path from here on names the dimension, e.g. "...dimensions[month]".
  const std::string named =
      absl::StrCat(path.substr(0, path.rfind('[')), "[", dim->name, "]");

  const Node values = Child(node, "values");
  const Node open = Child(node, "open_domain");
  const Node max_length = Child(node, "max_length");
  const Node derived = Child(node, "derived");
  if (Present(open)) {
    RETURN_IF_ERROR(
        ReadBool(open, Join(named, "open_domain"), &dim->open_domain));
  }
  const int kinds = Present(values) + dim->open_domain + Present(derived);
  if (kinds != 1) {
    return Error(node, named,
                 "must have exactly one of: values (a closed domain), "
                 "open_domain: true (with max_length), derived: month");
  }

  if (Present(derived)) {
    std::string kind;
    RETURN_IF_ERROR(ReadString(derived, Join(named, "derived"), &kind));
    if (kind != "month") {
      return Error(derived, Join(named, "derived"),
                   absl::StrFormat("unknown derived dimension \"%s\"; "
                                   "allowed: month (YYYY-MM of "
                                   "session_start, UTC)",
                                   kind));
    }
    dim->derived = true;
  }
  if (dim->open_domain) {
    if (!Present(max_length)) {
      return Error(node, Join(named, "max_length"),
                   "is required for an open-domain dimension");
    }
    RETURN_IF_ERROR(ReadInt(max_length, Join(named, "max_length"), 1,
                            static_cast<int>(kMaxOpenDomainLength),
                            &dim->max_length));
  } else if (Present(max_length)) {
    return Error(max_length, Join(named, "max_length"),
                 "applies only to open_domain: true dimensions");
  }
  if (Present(values)) {
    const std::string values_path = Join(named, "values");
    if (!values.IsSequence() || values.size() == 0) {
      return Error(values, values_path,
                   "must be a non-empty list of the allowed values");
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < values.size(); ++i) {
      const std::string value_path = absl::StrCat(values_path, "[", i, "]");
      std::string value;
      RETURN_IF_ERROR(ReadString(values[i], value_path, &value));
      if (value.empty() || value.size() > kMaxLabelValueLength ||
          HasControlCharacter(value)) {
        return Error(values[i], value_path,
                     absl::StrFormat("label values must be 1-%d bytes "
                                     "without control characters",
                                     kMaxLabelValueLength));
      }
      if (!seen.insert(value).second) {
        return Error(values[i], value_path,
                     absl::StrFormat("value \"%s\" is listed twice", value));
      }
      dim->values.push_back(std::move(value));
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseMeasure(const Node& node, const std::string& path,
                                  MeasureSpec* measure) {
  RETURN_IF_ERROR(
      CheckMap(node, path, {"name", "bounds", "valid", "granularity"}));
  Node n;
  RETURN_IF_ERROR(Required(node, "name", path, &n));
  RETURN_IF_ERROR(ReadString(n, Join(path, "name"), &measure->name));
  if (!IsIdentifier(measure->name)) {
    return Error(n, Join(path, "name"),
                 absl::StrFormat("\"%s\" is not an identifier "
                                 "([a-z][a-z0-9_]*, at most %d characters)",
                                 measure->name, kMaxNameLength));
  }
  const std::string named =
      absl::StrCat(path.substr(0, path.rfind('[')), "[", measure->name, "]");

  RETURN_IF_ERROR(Required(node, "bounds", named, &n));
  RETURN_IF_ERROR(
      ReadRange(n, Join(named, "bounds"), &measure->lower, &measure->upper));
  if (Node valid = Child(node, "valid"); Present(valid)) {
    double lo = 0, hi = 0;
    RETURN_IF_ERROR(ReadRange(valid, Join(named, "valid"), &lo, &hi));
    if (lo > measure->lower || hi < measure->upper) {
      return Error(valid, Join(named, "valid"),
                   absl::StrFormat("[%g, %g] must contain bounds [%g, %g]: "
                                   "a value inside the clamping bounds is "
                                   "always valid",
                                   lo, hi, measure->lower, measure->upper));
    }
    measure->valid_min = lo;
    measure->valid_max = hi;
  }
  RETURN_IF_ERROR(Required(node, "granularity", named, &n));
  const std::string g_path = Join(named, "granularity");
  RETURN_IF_ERROR(ReadPositive(n, g_path, &measure->granularity));
  const double widest =
      std::max({std::fabs(measure->lower), std::fabs(measure->upper),
                measure->upper - measure->lower});
  if (widest / measure->granularity >= kMaxGranularitySteps) {
    return Error(
        n, g_path,
        absl::StrFormat("%g is too fine for bounds [%g, %g]: "
                        "values must stay below 2^40 steps; use a "
                        "granularity of at least %g",
                        measure->granularity, measure->lower, measure->upper,
                        widest / kMaxGranularitySteps));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseBands(const Node& node, const std::string& path,
                                std::set<std::string>* names,
                                DatasetSpec* dataset) {
  if (!node.IsSequence()) {
    return Error(node, path, "must be a list of {name, measure, edges: [...]}");
  }
  for (size_t i = 0; i < node.size(); ++i) {
    std::string item = ItemPath(path, i, "");
    RETURN_IF_ERROR(CheckMap(node[i], item, {"name", "measure", "edges"}));
    BandSpec band;
    Node n;
    RETURN_IF_ERROR(Required(node[i], "name", item, &n));
    RETURN_IF_ERROR(ReadString(n, Join(item, "name"), &band.name));
    if (!IsIdentifier(band.name)) {
      return Error(n, Join(item, "name"),
                   absl::StrFormat("\"%s\" is not an identifier", band.name));
    }
    item = ItemPath(path, i, band.name);
    if (!names->insert(band.name).second) {
      return Error(n, Join(item, "name"),
                   absl::StrFormat("name \"%s\" is used twice among this "
                                   "dataset's dimensions, measures and bands",
                                   band.name));
    }
    RETURN_IF_ERROR(Required(node[i], "measure", item, &n));
    RETURN_IF_ERROR(ReadString(n, Join(item, "measure"), &band.measure));
    const MeasureSpec* measure = dataset->FindMeasure(band.measure);
    if (measure == nullptr) {
      return Error(n, Join(item, "measure"),
                   absl::StrFormat("unknown measure \"%s\"", band.measure));
    }
    RETURN_IF_ERROR(Required(node[i], "edges", item, &n));
    const std::string edges_path = Join(item, "edges");
    if (!n.IsSequence() || n.size() < 1 || n.size() > 31) {
      return Error(n, edges_path, "must be a list of 1 to 31 numbers");
    }
    for (size_t e = 0; e < n.size(); ++e) {
      double edge = 0;
      RETURN_IF_ERROR(ReadDouble(n[e], edges_path, &edge));
      if (!(edge > measure->lower && edge < measure->upper)) {
        return Error(n[e], edges_path,
                     absl::StrFormat("edge %g is not inside the bounds "
                                     "(%g, %g) of %s",
                                     edge, measure->lower, measure->upper,
                                     measure->name));
      }
      if (!band.edges.empty() && !(edge > band.edges.back())) {
        return Error(n[e], edges_path,
                     absl::StrFormat("edges must increase: %g after %g", edge,
                                     band.edges.back()));
      }
      band.edges.push_back(edge);
    }
    band.levels.push_back(absl::StrFormat("<%g", band.edges.front()));
    for (size_t e = 1; e < band.edges.size(); ++e) {
      band.levels.push_back(
          absl::StrFormat("%g-%g", band.edges[e - 1], band.edges[e]));
    }
    band.levels.push_back(absl::StrFormat(">=%g", band.edges.back()));
    dataset->bands.push_back(std::move(band));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseBudget(const Node& node, const std::string& path,
                                 BudgetSpec* budget) {
  RETURN_IF_ERROR(CheckMap(node, path, {"epsilon", "delta"}));
  Node n;
  RETURN_IF_ERROR(Required(node, "epsilon", path, &n));
  RETURN_IF_ERROR(ReadPositive(n, Join(path, "epsilon"), &budget->epsilon));
  RETURN_IF_ERROR(Required(node, "delta", path, &n));
  return ReadDelta(n, Join(path, "delta"), &budget->delta);
}

absl::Status Parser::ParsePrivacy(const Node& node, const std::string& path,
                                  PrivacySpec* privacy) {
  RETURN_IF_ERROR(CheckMap(
      node, path,
      {"k", "epsilon_per_query", "max_epsilon_per_query", "delta_per_query",
       "max_cohorts_per_account", "max_sessions_per_cohort", "budget"}));
  // Every privacy parameter is spelled out: a silent default here would be
  // a privacy decision nobody made.
  Node n;
  RETURN_IF_ERROR(Required(node, "k", path, &n));
  RETURN_IF_ERROR(
      ReadInt(n, Join(path, "k"), 1, static_cast<int>(kMaxK), &privacy->k));
  RETURN_IF_ERROR(Required(node, "epsilon_per_query", path, &n));
  RETURN_IF_ERROR(ReadPositive(n, Join(path, "epsilon_per_query"),
                               &privacy->default_epsilon));
  RETURN_IF_ERROR(Required(node, "max_epsilon_per_query", path, &n));
  RETURN_IF_ERROR(ReadPositive(n, Join(path, "max_epsilon_per_query"),
                               &privacy->max_epsilon));
  if (privacy->default_epsilon > privacy->max_epsilon) {
    return Error(
        n, Join(path, "max_epsilon_per_query"),
        absl::StrFormat("%g is below epsilon_per_query (%g); the "
                        "default must not exceed the cap",
                        privacy->max_epsilon, privacy->default_epsilon));
  }
  RETURN_IF_ERROR(Required(node, "delta_per_query", path, &n));
  RETURN_IF_ERROR(ReadDelta(n, Join(path, "delta_per_query"), &privacy->delta));
  RETURN_IF_ERROR(Required(node, "max_cohorts_per_account", path, &n));
  RETURN_IF_ERROR(ReadInt(n, Join(path, "max_cohorts_per_account"), 1,
                          static_cast<int>(kMaxContributionBound),
                          &privacy->max_cohorts_per_account));
  RETURN_IF_ERROR(Required(node, "max_sessions_per_cohort", path, &n));
  RETURN_IF_ERROR(ReadInt(n, Join(path, "max_sessions_per_cohort"), 1,
                          static_cast<int>(kMaxContributionBound),
                          &privacy->max_sessions_per_cohort));

  Node budget;
  const std::string budget_path = Join(path, "budget");
  RETURN_IF_ERROR(Required(node, "budget", path, &budget));
  RETURN_IF_ERROR(CheckMap(budget, budget_path, {"per_principal", "dataset"}));
  Node per_principal, whole;
  RETURN_IF_ERROR(
      Required(budget, "per_principal", budget_path, &per_principal));
  RETURN_IF_ERROR(ParseBudget(per_principal, Join(budget_path, "per_principal"),
                              &privacy->principal_budget));
  RETURN_IF_ERROR(Required(budget, "dataset", budget_path, &whole));
  RETURN_IF_ERROR(ParseBudget(whole, Join(budget_path, "dataset"),
                              &privacy->dataset_budget));

  // Budgets that no query could fit in are mistakes, not policies.
  const BudgetSpec& mine = privacy->principal_budget;
  const BudgetSpec& all = privacy->dataset_budget;
  if (privacy->max_epsilon > mine.epsilon || privacy->delta > mine.delta) {
    return Error(per_principal, Join(budget_path, "per_principal"),
                 absl::StrFormat("(epsilon %g, delta %g) cannot pay for one "
                                 "query at max_epsilon_per_query %g, "
                                 "delta_per_query %g",
                                 mine.epsilon, mine.delta, privacy->max_epsilon,
                                 privacy->delta));
  }
  if (mine.epsilon > all.epsilon || mine.delta > all.delta) {
    return Error(
        whole, Join(budget_path, "dataset"),
        absl::StrFormat("(epsilon %g, delta %g) must be at least "
                        "budget.per_principal (epsilon %g, delta "
                        "%g)",
                        all.epsilon, all.delta, mine.epsilon, mine.delta));
  }
  return absl::OkStatus();
}

}  // namespace

std::string PublicationPrincipal(absl::string_view publication) {
  return absl::StrCat("publisher/", publication);
}

const BudgetSpec& PrivacySpec::PrincipalBudget(
    absl::string_view principal) const {
  auto it = principal_budgets.find(std::string(principal));
  return it == principal_budgets.end() ? principal_budget : it->second;
}

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kIngest:
      return "ingest";
    case Role::kAnalyst:
      return "analyst";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

const DimensionSpec* DatasetSpec::FindDimension(absl::string_view name) const {
  for (const DimensionSpec& d : dimensions) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

const MeasureSpec* DatasetSpec::FindMeasure(absl::string_view name) const {
  for (const MeasureSpec& m : measures) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const BandSpec* DatasetSpec::FindBand(absl::string_view name) const {
  for (const BandSpec& b : bands) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

int BandSpec::LevelOf(double value) const {
  return static_cast<int>(std::upper_bound(edges.begin(), edges.end(), value) -
                          edges.begin());
}

const DatasetSpec* Config::FindDataset(absl::string_view name) const {
  for (const DatasetSpec& d : datasets) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

bool IsLoopbackAddress(absl::string_view host_port) {
  absl::string_view host = host_port.substr(0, host_port.rfind(':'));
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  const std::string text(host);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  return inet_pton(AF_INET6, text.c_str(), &v6) == 1 &&
         IN6_IS_ADDR_LOOPBACK(&v6);
}

bool OperatorMetricsRequireToken(const Config& config) {
  return config.operator_metrics_require_token.value_or(
      !IsLoopbackAddress(config.operator_metrics_address));
}

absl::Status CheckServerExposure(const Config& config) {
  std::string key;
  std::string problem;
  if (FindExposureProblem(config, &key, &problem)) {
    return absl::InvalidArgumentError(
        absl::StrCat("server.", key, ": ", problem));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseConfig(absl::string_view yaml_text,
                                   absl::string_view origin,
                                   absl::string_view base_dir) {
  Parser parser(origin, base_dir);
  Config config;
  // yaml-cpp reports malformed YAML by throwing; the parser reads nodes
  // only through checked accessors, so this catches YAML::Load's
  // exceptions, and converts them rather than let them escape the module.
  try {
    RETURN_IF_ERROR(
        parser.ParseConfig(YAML::Load(std::string(yaml_text)), &config));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d:%d: invalid YAML: %s", origin, e.mark.line + 1,
                        e.mark.column + 1, e.msg));
  }
  return config;
}

int64_t MaxReceiveMessageBytes(const Config& config) {
  return int64_t{config.max_batch_size} * config.limits.observation_bytes +
         (64 << 10);
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  std::error_code ec;
  std::filesystem::path base =
      std::filesystem::absolute(std::filesystem::path(path), ec).parent_path();
  if (ec) {
    return absl::InternalError(
        absl::StrFormat("cannot make %s absolute: %s", path, ec.message()));
  }
  return ParseConfig(text, path, base.string());
}

}  // namespace cohortd

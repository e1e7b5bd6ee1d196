// The synthetic population of `cohortctl simulate`: AI coding-agent
// sessions modelled on the study of ../shared/design/DOMAIN.md (400,000
// sessions from 235,000 accounts, Oct 2025 - Apr 2026), with the published
// figures built in so that a private release can be compared with a known
// truth. Pure and deterministic: the same options give the same sessions,
// byte for byte, on every platform; no gRPC, no clock, no global state.
//
// Each session is a function of (seed, session index) alone, so sessions
// can be generated in any order or streamed without being held in memory;
// only the accounts (a few bytes each) are precomputed.
#ifndef COHORTD_TOOLS_COHORTCTL_SIMULATOR_POPULATION_H_
#define COHORTD_TOOLS_COHORTCTL_SIMULATOR_POPULATION_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cohortd/v1/cohortd.pb.h"
#include "tools/cohortctl/observation_wire.h"

namespace cohortd::cohortctl {

// A small seeded generator for the *data* (never for privacy noise, which
// comes from the server's CSPRNG): xoshiro256** seeded through SplitMix64.
// The house bans <random> engines and std::rand because their output is
// not specified across standard libraries; this one is, so a seed names
// the same population everywhere. Not thread-safe; cheap to construct.
class SimRng {
 public:
  explicit SimRng(uint64_t seed);

  uint64_t Next();
  // Uniform in [0, 1), 53 random bits.
  double Uniform();
  // Uniform in {0, ..., n - 1}; n >= 1.
  int64_t Below(int64_t n);
  bool Bernoulli(double p) { return Uniform() < p; }
  // Standard normal (Box-Muller).
  double Normal();
  // exp(N(log(median), sigma^2)): median `median`.
  double LogNormal(double median, double sigma);
  // Gamma(shape, 1), shape > 0 (Marsaglia and Tsang, 2000).
  double Gamma(double shape);
  // Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
  double Beta(double a, double b);
  // An index drawn with probability proportional to weights[i] given as
  // the cumulative weights (non-decreasing, last > 0).
  size_t PickCumulative(const std::vector<double>& cumulative);

 private:
  std::array<uint64_t, 4> state_;
};

// SplitMix64 of `a` combined with `b`: the seed of an independent stream,
// e.g. Mix(seed, session_index).
uint64_t Mix(uint64_t a, uint64_t b);

// The model's own copy of the `sessions` schema of config/cohortd.yaml,
// in its order. The simulator generates against this list and checks it
// against the server's DescribeDataset before pushing (CheckSchema), so a
// changed config fails loudly instead of producing rejections.
struct ModelDimension {
  std::string name;
  std::vector<std::string> values;  // empty for open or derived dimensions
  bool open_domain = false;
  int max_length = 0;  // open domain only
  bool derived = false;
};
struct ModelMeasure {
  std::string name;
  double lower = 0;  // public clamping bounds
  double upper = 0;
  double valid_max = 0;  // generated values stay in [0, valid_max]
  double granularity = 1;
};
const std::vector<ModelDimension>& SessionDimensions();
const std::vector<ModelMeasure>& SessionMeasures();

// Indices into SessionDimensions(), in config order.
enum Dimension {
  kWorkMode,
  kExpertise,
  kOccupation,
  kOutcome,
  kVerifiedSuccess,
  kAbandoned,
  kClient,
  kTaskTopic,
  kMonth,
  kNumDimensions
};
// Indices into SessionMeasures(), in config order.
enum Measure {
  kActionsPerPrompt,
  kWordsPerPrompt,
  kPrompts,
  kPlanningUserShare,
  kImplementationUserShare,
  kLinesAdded,
  kLinesRemoved,
  kCommits,
  kTestsPassed,
  kSuccessSignal,
  kFailureSignal,
  kTaskValueUsd,
  kNumMeasures
};

// Value indices of the closed dimensions the model refers to.
inline constexpr int kFix = 1;           // work_mode "fix"
inline constexpr int kOperate = 4;       // work_mode "operate"
inline constexpr int kAnalyze = 7;       // work_mode "analyze"
inline constexpr int kWrite = 8;         // work_mode "write"
inline constexpr int kNovice = 0;        // expertise "novice"
inline constexpr int kIntermediate = 2;  // expertise "intermediate"
inline constexpr int kSoftware = 2;      // occupation computer_mathematical
inline constexpr int kUnclassified = 22;
inline constexpr int kSuccess = 0;  // outcome "success"
inline constexpr int kPartial = 1;  // outcome "partial"
inline constexpr int kFailure = 2;  // outcome "failure"
inline constexpr int kUnclear = 3;  // outcome "unclear"

inline constexpr int kNumMonths = 7;  // 2025-10 ... 2026-04
// "2025-10" for month 0.
std::string MonthName(int month);

// The tiny cohorts that must never be released (k = 10 in the config):
// exactly kTinyCohortAccounts accounts have occupation
// farming_fishing_forestry, and only they work on task_topic
// kTinyCohortTopic, each with many sessions, so that a release of either
// cohort would reveal a count below k however many sessions it holds.
inline constexpr int kTinyCohortOccupation = 17;  // farming_fishing_forestry
inline constexpr char kTinyCohortTopic[] = "farm-yield-forecasting";
inline constexpr int kTinyCohortAccounts = 9;

// The default size: the study's 400,000 sessions and 235,000 accounts.
inline constexpr int64_t kDefaultSessions = 400000;
inline constexpr double kAccountsPerSession = 235000.0 / 400000.0;
inline constexpr int64_t kMinSessions = 1000;
inline constexpr int64_t kMaxSessions = 100000000;

struct PopulationOptions {
  int64_t sessions = kDefaultSessions;
  uint64_t seed = 1;
};

// One synthetic session with every label and measure (the model has no
// absent values: every source reports on every session).
struct SimSession {
  int64_t index = 0;          // 0 <= index < Population::sessions()
  int64_t account = 0;        // account index
  int64_t start_seconds = 0;  // session_start, Unix seconds (UTC)
  int month = 0;              // 0 = 2025-10, from start_seconds
  // Value indices of the closed dimensions, in SessionDimensions() order.
  int work_mode = 0;
  int expertise = 0;
  int occupation = 0;
  int outcome = 0;
  bool verified_success = false;
  bool abandoned = false;
  int client = 0;
  std::string task_topic;
  // Rounded to each measure's granularity, within [0, valid_max].
  std::array<double, kNumMeasures> measures{};
};

// What the accounts are; the sessions are derived from them on demand.
struct SimAccount {
  int occupation = 0;
  int base_expertise = 0;  // the level the account's sessions centre on
  int client = 0;          // the client it mostly uses
  int64_t first_session = 0;
  int64_t sessions = 0;  // >= 1
};

// The population for one (sessions, seed). Immutable after Create:
// thread-compatible, and SessionAt may be called from several threads.
class Population {
 public:
  // Draws the accounts. Fails with INVALID_ARGUMENT unless
  // kMinSessions <= options.sessions <= kMaxSessions.
  static absl::StatusOr<Population> Create(const PopulationOptions& options);

  int64_t sessions() const { return sessions_; }
  int64_t accounts() const { return static_cast<int64_t>(accounts_.size()); }
  uint64_t seed() const { return seed_; }
  const SimAccount& account(int64_t a) const { return accounts_[a]; }

  // Session `index` (0 <= index < sessions()); the sessions of an account
  // have consecutive indices.
  SimSession SessionAt(int64_t index) const;

  // "sim1-s0000042", "sim1-a000007": the seed is part of the ids, so two
  // populations with different seeds pushed to one server stay apart.
  std::string SessionId(int64_t index) const;
  std::string AccountId(int64_t account) const;

 private:
  Population() = default;

  int64_t sessions_ = 0;
  uint64_t seed_ = 0;
  std::vector<SimAccount> accounts_;      // by first_session, ascending
  std::vector<double> topic_cumulative_;  // Zipf over the common topics
  // Work-mode distribution of each month.
  std::array<std::vector<double>, kNumMonths> mode_cumulative_;
};

// The label value of `dimension` for `session`, as pushed and as written to
// the truth CSV ("true"/"false" for the booleans). Valid as long as
// `session` (task_topic is its own) and the model's schema are: the other
// values are static.
absl::string_view LabelValue(const SimSession& session, Dimension dimension);

// The sources that report on every session, each with its share of the
// labels and measures, in the order they are emitted.
inline constexpr int kSourcesPerSession = 5;
// Appends the session's kSourcesPerSession observations, in the order of
// ObservationsJsonl, to `request`: a PushRequest's wire bytes begun by
// StartPushRequest. `writer` is scratch space, reused so that writing
// allocates nothing once its buffer has grown. This is what
// `cohortctl simulate --push` sends: no protobuf message or map is built.
void AppendObservationsWire(const Population& population,
                            const SimSession& session,
                            ObservationWireWriter* writer,
                            std::string* request);
// The same observations as messages, appended to `request` (parsed from
// AppendObservationsWire's bytes, so the two cannot differ).
void AppendObservations(const Population& population, const SimSession& session,
                        cohortd::v1::PushRequest* request);

// The same observations as JSON Lines for `cohortctl push` (one line per
// observation, each ending in a newline): the protobuf JSON mapping with
// keys in a fixed order and each measure printed with its granularity's
// decimals, so that a seed gives the same file byte for byte (the protobuf
// printer's map order varies between runs).
std::string ObservationsJsonl(const Population& population,
                              const SimSession& session);

// The ground truth CSV: "session_id,account_id,month," then every other
// dimension and every measure, by name in config order; one row per
// session, each measure with its granularity's decimals. Values never need
// quoting (slugs and identifiers only).
std::string TruthCsvHeader();
// One row, with its trailing newline.
std::string TruthCsvRow(const Population& population,
                        const SimSession& session);

// Checks the server's description of the dataset against the model's
// schema: the same dimensions (names, order, domains) and measures (names,
// order, bounds, granularity). Fails with FAILED_PRECONDITION naming the
// first difference.
absl::Status CheckSchema(const cohortd::v1::DatasetDescription& description);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_SIMULATOR_POPULATION_H_

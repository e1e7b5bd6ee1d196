#include "tools/cohortctl/simulator/population.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "server/common/check.h"

namespace cohortd::cohortctl {
namespace {

// Stream tags, so that the account, session and count streams of one seed
// are independent.
constexpr uint64_t kCountStream = 0x636f756e74ULL;
constexpr uint64_t kAccountStream = 0x6163636f756e74ULL;
constexpr uint64_t kSessionStream = 0x73657373696f6eULL;
constexpr uint64_t kTopicStream = 0x746f706963ULL;

constexpr double kPi = 3.14159265358979323846;

// --- Accounts -------------------------------------------------------------
// Sessions per account: 1 + a discrete Pareto extra, P(extra >= k - 1) =
// k^-1.9 for k >= 1. Then 73% of accounts have one session, about 1 in 600
// has dozens and about 1 in 6,300 a hundred or more; its mean (1.75) is
// close to the study's 400,000 / 235,000 = 1.70 sessions per account, and
// the extras are rescaled to hit the requested total exactly.
constexpr double kParetoAlpha = 1.9;
constexpr int64_t kMaxSessionsPerAccount = 5000;
// The tiny cohort's accounts each have this many sessions at the default
// size (scaled, at least 12): many sessions, few accounts.
constexpr int64_t kTinyCohortSessions = 40;

// Occupation of an account, weights in SOC order (see the config). The
// study reports ~30% unclassified; among the rest software
// (computer_mathematical) dominates, then business, engineering,
// management, science. farming_fishing_forestry gets 0: only the tiny
// cohort's accounts have it. The weights sum to 98, so unclassified is
// 30.6% of accounts (and, in expectation, of sessions).
constexpr std::array<double, 23> kOccupationWeights = {
    5.0,   // management
    6.0,   // business_financial
    26.0,  // computer_mathematical
    5.0,   // architecture_engineering
    4.0,   // life_physical_social_science
    0.8,   // community_social_service
    1.5,   // legal
    3.5,   // educational_instruction_library
    4.0,   // arts_design_media
    1.8,   // healthcare_practitioners
    0.5,   // healthcare_support
    0.3,   // protective_service
    0.3,   // food_preparation_serving
    0.2,   // building_grounds_maintenance
    0.3,   // personal_care_service
    2.5,   // sales
    3.0,   // office_administrative_support
    0.0,   // farming_fishing_forestry (tiny cohort only)
    0.5,   // construction_extraction
    0.6,   // installation_maintenance_repair
    1.2,   // production
    1.0,   // transportation_material_moving
    30.0,  // unclassified
};

// An account's base expertise: the level its sessions centre on.
constexpr std::array<double, 5> kBaseExpertise = {12, 18, 35, 25, 10};
// Its main client; a session uses it 85% of the time.
constexpr std::array<double, 3> kClientWeights = {55, 15, 30};  // cli,desk,web
constexpr double kMainClientShare = 0.85;

// --- Sessions -------------------------------------------------------------
// Work-mode shares in the first (2025-10) and last (2026-04) month,
// interpolated linearly in between (DOMAIN.md figure 1: fix 33% -> 19%,
// operate 14% -> 21%, analyze + write ~10% -> ~20%).
//                                  bld fix tst orc ope und pln ana wri
constexpr std::array<double, 9> kModeFirst = {20, 33, 7, 4, 14, 7, 5, 5, 5};
constexpr std::array<double, 9> kModeLast = {17, 19, 7, 5, 21, 6, 5, 10, 10};
// Work modes that write code: the others have no lines or commits.
constexpr int kTestMode = 2;  // work_mode "test"
constexpr std::array<bool, 9> kCodeMode = {true,  true,  true,  true, false,
                                           false, false, false, false};

// Per expertise (novice ... expert), DOMAIN.md figure 4: verified success
// ~15% for novices vs 28-33% from intermediate up; at least partial 77% vs
// 91-92%. Beginners, unpublished, sit in between.
constexpr std::array<double, 5> kVerified = {0.15, 0.22, 0.28, 0.31, 0.33};
constexpr std::array<double, 5> kAtLeastPartial = {0.77, 0.85, 0.91, 0.915,
                                                   0.92};
// Share of successes that carry a hard signal (the rest are unverified).
constexpr double kVerifiedOfSuccess = 0.55;
// Figure 5: verified success ~30% for software occupations vs ~26% for the
// others. The overall rate by the expertise mix above is 26.6%; these
// factors move software (26.5% of sessions) up and the rest down; their
// session-weighted mean is 1.013, so the expertise figures move by at
// most 0.4 points.
constexpr double kSoftwareFactor = 1.12;
constexpr double kOtherFactor = 0.975;
// Share of non-successes that fail (the rest are unclear).
constexpr double kFailureOfRest = 0.65;
// Figure 7: abandonment among problem sessions, ~19% for novices and 5-7%
// otherwise. A "problem session" is one with failure signal > 3, as in the
// study; among them, whatever the work mode, each is abandoned with this
// probability by expertise, so that the planted rates are exactly the
// published ones (abandoned sessions fail with no code written).
constexpr std::array<double, 5> kAbandon = {0.19, 0.07, 0.065, 0.06, 0.05};
constexpr double kProblemFailureSignal = 3;

// Figure 3: actions and words per prompt by expertise, lognormal; the
// sigmas give a 95th percentile ~4x the median and an occasional action
// count above 100.
constexpr std::array<double, 5> kActionsMedian = {5, 6.5, 8, 10, 12};
constexpr double kActionsSigma = 0.8;
constexpr std::array<double, 5> kWordsMedian = {600, 950, 1500, 2300, 3200};
constexpr double kWordsSigma = 0.75;

// Figure 6: task value by work mode (median, USD), rising 24.5% within
// each work mode from the first month to the last (geometrically in
// between); the shift towards analysis adds ~3 points, so the mean rises
// ~27% as published.
constexpr std::array<double, 9> kValueMedian = {120, 60, 50, 150, 70,
                                                30,  40, 90, 45};
constexpr double kValueSigma = 0.9;
constexpr double kValueGrowth = 1.245;

// Lines added by work mode for code modes (median; sigma 1.3).
constexpr std::array<double, 4> kLinesMedian = {150, 40, 90, 120};

// --- Topics ---------------------------------------------------------------
// Common topics are "<tech>-<task>" (300 of them, Zipf-distributed with
// exponent 1.07: all 300 are seen hundreds of times at the default size).
// 3% of sessions get a rare topic: "<domain>-<tech>-<task>-<n>", where n is
// the session index / 8, so no rare topic is ever seen in more than 8
// sessions (hence by fewer than k = 10 accounts) and most are seen once.
constexpr std::array<const char*, 20> kTechs = {
    "python", "typescript", "react",      "rust",      "go",
    "java",   "sql",        "kubernetes", "terraform", "docker",
    "django", "nodejs",     "swift",      "kotlin",    "cpp",
    "bash",   "pandas",     "spark",      "excel-vba", "latex"};
constexpr std::array<const char*, 15> kTasks = {
    "api-endpoint",  "unit-tests", "refactor",     "bug-fix",
    "data-pipeline", "ci-config",  "migration",    "cli-tool",
    "dashboard",     "auth",       "performance",  "documentation",
    "deployment",    "scraper",    "schema-design"};
constexpr std::array<const char*, 16> kRareDomains = {
    "legacy", "embedded", "quantum",  "genomics", "firmware",  "a11y",
    "l10n",   "music",    "robotics", "game",     "satellite", "payroll",
    "chess",  "weather",  "compiler", "ledger"};
constexpr double kTopicZipfExponent = 1.07;
constexpr double kRareTopicShare = 0.03;
constexpr int64_t kRareTopicBlock = 8;

std::vector<double> Cumulative(const double* weights, size_t n) {
  std::vector<double> cumulative(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) cumulative[i] = sum += weights[i];
  return cumulative;
}

template <size_t N>
std::vector<double> Cumulative(const std::array<double, N>& weights) {
  return Cumulative(weights.data(), N);
}

// Rounds to a multiple of `granularity`. For steps below 1 it divides by
// the (integral) number of steps per unit, so that 1.63 comes out as the
// double nearest to 1.63 and prints as such, not as 1.6300000000000001.
double RoundTo(double value, double granularity) {
  if (granularity < 1) {
    const double per_unit = std::round(1 / granularity);
    return std::round(value * per_unit) / per_unit;
  }
  return std::round(value / granularity) * granularity;
}

int64_t MonthStart(int month) {
  return absl::ToUnixSeconds(absl::FromCivil(
      absl::CivilSecond(2025, 10 + month, 1, 0, 0, 0), absl::UTCTimeZone()));
}

std::string Base36(int64_t value) {
  constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[value % 36]);
    value /= 36;
  } while (value > 0);
  return out;
}

std::string CommonTopic(size_t rank) {
  return absl::StrCat(kTechs[rank % kTechs.size()], "-",
                      kTasks[rank / kTechs.size()]);
}

int Decimals(double granularity) {
  int decimals = 0;
  while (decimals < 9 &&
         std::fabs(granularity - std::round(granularity)) > 1e-9) {
    granularity *= 10;
    ++decimals;
  }
  return decimals;
}

}  // namespace

// --- SimRng ---------------------------------------------------------------

uint64_t Mix(uint64_t a, uint64_t b) {
  // SplitMix64's finaliser over a + golden-ratio multiple of b.
  uint64_t z = a + 0x9e3779b97f4a7c15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

SimRng::SimRng(uint64_t seed) {
  for (size_t i = 0; i < state_.size(); ++i) state_[i] = Mix(seed, i);
}

uint64_t SimRng::Next() {
  // xoshiro256** (Blackman and Vigna, 2018).
  const auto rotl = [](uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
  };
  const uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

double SimRng::Uniform() {
  return static_cast<double>(Next() >> 11) * 0x1.0p-53;
}

int64_t SimRng::Below(int64_t n) {
  // Multiply-shift; the bias (n / 2^64) is far below anything measurable.
  return static_cast<int64_t>(
      (static_cast<unsigned __int128>(Next()) * static_cast<uint64_t>(n)) >>
      64);
}

double SimRng::Normal() {
  // Box-Muller; 1 - Uniform() is in (0, 1], so the log is finite.
  const double u = 1.0 - Uniform();
  const double v = Uniform();
  return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * kPi * v);
}

double SimRng::LogNormal(double median, double sigma) {
  return median * std::exp(sigma * Normal());
}

double SimRng::Gamma(double shape) {
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a) (Marsaglia and Tsang, section 6).
    const double u = 1.0 - Uniform();
    return Gamma(shape + 1.0) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x, v;
    do {
      x = Normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - Uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

double SimRng::Beta(double a, double b) {
  const double x = Gamma(a);
  const double y = Gamma(b);
  return x / (x + y);
}

size_t SimRng::PickCumulative(const std::vector<double>& cumulative) {
  const double target = Uniform() * cumulative.back();
  const auto it =
      std::upper_bound(cumulative.begin(), cumulative.end(), target);
  return std::min<size_t>(it - cumulative.begin(), cumulative.size() - 1);
}

// --- Schema ---------------------------------------------------------------

const std::vector<ModelDimension>& SessionDimensions() {
  static const auto* const kDimensions = new std::vector<ModelDimension>{
      {"work_mode",
       {"build", "fix", "test", "orchestrate", "operate", "understand", "plan",
        "analyze", "write"}},
      {"expertise",
       {"novice", "beginner", "intermediate", "advanced", "expert"}},
      {"occupation",
       {"management",
        "business_financial",
        "computer_mathematical",
        "architecture_engineering",
        "life_physical_social_science",
        "community_social_service",
        "legal",
        "educational_instruction_library",
        "arts_design_media",
        "healthcare_practitioners",
        "healthcare_support",
        "protective_service",
        "food_preparation_serving",
        "building_grounds_maintenance",
        "personal_care_service",
        "sales",
        "office_administrative_support",
        "farming_fishing_forestry",
        "construction_extraction",
        "installation_maintenance_repair",
        "production",
        "transportation_material_moving",
        "unclassified"}},
      {"outcome", {"success", "partial", "failure", "unclear"}},
      {"verified_success", {"true", "false"}},
      {"abandoned", {"true", "false"}},
      {"client", {"cli", "desktop", "web"}},
      {"task_topic", {}, /*open_domain=*/true, /*max_length=*/64},
      {"month", {}, false, 0, /*derived=*/true},
  };
  return *kDimensions;
}

const std::vector<ModelMeasure>& SessionMeasures() {
  // valid_max is the model's own cap, well inside the config's validity
  // ranges; values above `upper` are intended (the server clamps them).
  static const auto* const kMeasures = new std::vector<ModelMeasure>{
      {"actions_per_prompt", 0, 200, 100000, 0.01},
      {"words_per_prompt", 0, 20000, 10000000, 0.1},
      {"prompts", 0, 200, 1000000, 1},
      {"planning_user_share", 0, 1, 1, 0.001},
      {"implementation_user_share", 0, 1, 1, 0.001},
      {"lines_added", 0, 10000, 1000000, 1},
      {"lines_removed", 0, 10000, 1000000, 1},
      {"commits", 0, 1000, 1000000, 1},
      {"tests_passed", 0, 1000, 1000000, 1},
      {"success_signal", 0, 5, 5, 0.01},
      {"failure_signal", 0, 5, 5, 0.01},
      {"task_value_usd", 0, 5000, 100000000, 0.01},
  };
  return *kMeasures;
}

std::string MonthName(int month) {
  return absl::FormatCivilTime(absl::CivilMonth(2025, 10 + month));
}

// --- Population -----------------------------------------------------------

absl::StatusOr<Population> Population::Create(
    const PopulationOptions& options) {
  if (options.sessions < kMinSessions || options.sessions > kMaxSessions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--sessions must be between ", kMinSessions, " and ", kMaxSessions));
  }
  Population population;
  population.sessions_ = options.sessions;
  population.seed_ = options.seed;
  const int64_t num_accounts =
      std::max<int64_t>(kTinyCohortAccounts + 1,
                        std::llround(options.sessions * kAccountsPerSession));
  const int64_t tiny_sessions = std::max<int64_t>(
      12,
      std::llround(kTinyCohortSessions *
                   (static_cast<double>(options.sessions) / kDefaultSessions)));

  // Which accounts form the tiny cohort: kTinyCohortAccounts distinct
  // indices spread over the population.
  SimRng count_rng(Mix(options.seed, kCountStream));
  std::vector<bool> tiny(num_accounts, false);
  for (int placed = 0; placed < kTinyCohortAccounts;) {
    const int64_t a = count_rng.Below(num_accounts);
    if (!tiny[a]) {
      tiny[a] = true;
      ++placed;
    }
  }

  // Heavy-tailed extra sessions of the other accounts, rescaled (with
  // random rounding, then +-1 corrections) to sum to exactly what is left.
  const int64_t regular_accounts = num_accounts - kTinyCohortAccounts;
  const int64_t extra_target =
      options.sessions - kTinyCohortAccounts * tiny_sessions - regular_accounts;
  std::vector<int64_t> extra(num_accounts, 0);
  double extra_sum = 0;
  for (int64_t a = 0; a < num_accounts; ++a) {
    if (tiny[a]) continue;
    const double pareto =
        std::pow(1.0 - count_rng.Uniform(), -1.0 / kParetoAlpha);
    extra[a] = std::min<int64_t>(static_cast<int64_t>(pareto) - 1,
                                 kMaxSessionsPerAccount - 1);
    extra_sum += extra[a];
  }
  const double scale = extra_sum > 0 ? extra_target / extra_sum : 0;
  int64_t assigned = 0;
  for (int64_t a = 0; a < num_accounts; ++a) {
    extra[a] = static_cast<int64_t>(extra[a] * scale + count_rng.Uniform());
    assigned += extra[a];
  }
  while (assigned != extra_target) {
    const int64_t a = count_rng.Below(num_accounts);
    if (tiny[a]) continue;
    if (assigned < extra_target) {
      ++extra[a];
      ++assigned;
    } else if (extra[a] > 0) {
      --extra[a];
      --assigned;
    }
  }

  const std::vector<double> occupations = Cumulative(kOccupationWeights);
  const std::vector<double> expertise = Cumulative(kBaseExpertise);
  const std::vector<double> clients = Cumulative(kClientWeights);
  population.accounts_.resize(num_accounts);
  int64_t next_session = 0;
  for (int64_t a = 0; a < num_accounts; ++a) {
    SimRng rng(Mix(options.seed ^ kAccountStream, a));
    SimAccount& account = population.accounts_[a];
    account.occupation =
        tiny[a] ? kTinyCohortOccupation
                : static_cast<int>(rng.PickCumulative(occupations));
    account.base_expertise = static_cast<int>(rng.PickCumulative(expertise));
    account.client = static_cast<int>(rng.PickCumulative(clients));
    account.first_session = next_session;
    account.sessions = tiny[a] ? tiny_sessions : 1 + extra[a];
    next_session += account.sessions;
  }

  std::vector<double> zipf(kTechs.size() * kTasks.size());
  for (size_t rank = 0; rank < zipf.size(); ++rank) {
    zipf[rank] = std::pow(static_cast<double>(rank + 1), -kTopicZipfExponent);
  }
  population.topic_cumulative_ = Cumulative(zipf.data(), zipf.size());
  for (int month = 0; month < kNumMonths; ++month) {
    const double t = month / static_cast<double>(kNumMonths - 1);
    std::array<double, 9> modes;
    for (size_t m = 0; m < modes.size(); ++m) {
      modes[m] = kModeFirst[m] + (kModeLast[m] - kModeFirst[m]) * t;
    }
    population.mode_cumulative_[month] = Cumulative(modes);
  }
  return population;
}

std::string Population::SessionId(int64_t index) const {
  return absl::StrFormat("sim%d-s%07d", seed_, index);
}

std::string Population::AccountId(int64_t account) const {
  return absl::StrFormat("sim%d-a%06d", seed_, account);
}

SimSession Population::SessionAt(int64_t index) const {
  const auto it = std::upper_bound(
      accounts_.begin(), accounts_.end(), index,
      [](int64_t i, const SimAccount& a) { return i < a.first_session; });
  const int64_t account_index = (it - accounts_.begin()) - 1;
  const SimAccount& account = accounts_[account_index];
  SimRng rng(Mix(seed_ ^ kSessionStream, index));

  SimSession s;
  s.index = index;
  s.account = account_index;
  s.month = static_cast<int>(rng.Below(kNumMonths));
  const int64_t month_start = MonthStart(s.month);
  s.start_seconds =
      month_start + rng.Below(MonthStart(s.month + 1) - month_start);

  s.work_mode = static_cast<int>(rng.PickCumulative(mode_cumulative_[s.month]));

  // Task-specific expertise: the account's level, one step either way 15%
  // of the time each.
  const double step = rng.Uniform();
  s.expertise = std::clamp(account.base_expertise + (step < 0.15   ? -1
                                                     : step < 0.30 ? 1
                                                                   : 0),
                           0, 4);
  s.occupation = account.occupation;
  s.client = rng.Bernoulli(kMainClientShare) ? account.client
                                             : static_cast<int>(rng.Below(3));

  // Outcome; abandonment is drawn after the failure signal (below).
  const int e = s.expertise;
  const double scale = 1.0;
  const double verified =
      kVerified[e] *
      (s.occupation == kSoftware ? kSoftwareFactor : kOtherFactor);
  const double success = verified / kVerifiedOfSuccess;
  const double u = rng.Uniform();
  if (u < verified * scale) {
    s.outcome = kSuccess;
    s.verified_success = true;
  } else if (u < success * scale) {
    s.outcome = kSuccess;
  } else if (u < kAtLeastPartial[e] * scale) {
    s.outcome = kPartial;
  } else {
    s.outcome = rng.Bernoulli(kFailureOfRest) ? kFailure : kUnclear;
  }

  if (account.occupation == kTinyCohortOccupation) {
    s.task_topic = kTinyCohortTopic;
  } else if (rng.Bernoulli(kRareTopicShare)) {
    const int64_t block = index / kRareTopicBlock;
    SimRng topic_rng(Mix(seed_ ^ kTopicStream, block));
    s.task_topic = absl::StrCat(
        kRareDomains[topic_rng.Below(kRareDomains.size())], "-",
        CommonTopic(topic_rng.Below(kTechs.size() * kTasks.size())), "-",
        Base36(block));
  } else {
    s.task_topic = CommonTopic(rng.PickCumulative(topic_cumulative_));
  }

  // Measures.
  auto& m = s.measures;
  m[kActionsPerPrompt] = rng.LogNormal(kActionsMedian[e], kActionsSigma);
  m[kWordsPerPrompt] = rng.LogNormal(kWordsMedian[e], kWordsSigma);
  m[kPrompts] = 1 + std::floor(rng.LogNormal(3.0, 0.6));  // mean ~4
  // DOMAIN.md figure 2: humans make ~70% of planning and ~20% of
  // implementation decisions.
  m[kPlanningUserShare] = rng.Beta(7, 3);
  m[kImplementationUserShare] = rng.Beta(2, 8);
  const bool code = kCodeMode[s.work_mode] && !s.abandoned;
  if (code) {
    m[kLinesAdded] = std::round(rng.LogNormal(kLinesMedian[s.work_mode], 1.3));
    m[kLinesRemoved] =
        std::round(m[kLinesAdded] * rng.Beta(2, s.work_mode == kFix ? 3 : 6));
  }
  // Hard signals: a verified success has one (a commit in code work,
  // explicit approval otherwise); an unverified success has none.
  const bool unverified_success = s.outcome == kSuccess && !s.verified_success;
  if (code && !unverified_success) {
    const bool commits = s.verified_success || rng.Bernoulli(0.4);
    m[kCommits] = commits ? 1 + std::floor(rng.LogNormal(1.0, 0.8)) : 0;
    const bool tests = s.work_mode == kTestMode || rng.Bernoulli(0.4);
    m[kTestsPassed] = tests ? std::round(rng.LogNormal(25, 1.2)) : 0;
  }
  static constexpr std::array<double, 4> kSuccessMean = {3.6, 2.3, 0.6, 1.3};
  static constexpr std::array<double, 4> kFailureMean = {0.5, 1.6, 3.4, 1.5};
  m[kSuccessSignal] = kSuccessMean[s.outcome] + 0.7 * rng.Normal();
  m[kFailureSignal] = kFailureMean[s.outcome] + 0.8 * rng.Normal();
  m[kTaskValueUsd] = rng.LogNormal(
      kValueMedian[s.work_mode] *
          std::pow(kValueGrowth, s.month / static_cast<double>(kNumMonths - 1)),
      kValueSigma);

  const std::vector<ModelMeasure>& specs = SessionMeasures();
  for (int i = 0; i < kNumMeasures; ++i) {
    m[i] = std::clamp(RoundTo(m[i], specs[i].granularity), 0.0,
                      specs[i].valid_max);
  }
  // Problem sessions (the stored failure signal above 3, as the report's
  // measure filter sees it) are abandoned at kAbandon[e]: an abandoned one
  // fails, unverified, with no code written (no lines, commits or tests).
  // Successes rarely have such a signal (mean 0.5, sd 0.8), so the success
  // figures by expertise move by well under a point.
  if (m[kFailureSignal] > kProblemFailureSignal && rng.Bernoulli(kAbandon[e])) {
    s.abandoned = true;
    s.outcome = kFailure;
    s.verified_success = false;
    m[kLinesAdded] = m[kLinesRemoved] = m[kCommits] = m[kTestsPassed] = 0;
  }
  return s;
}

// --- Output ---------------------------------------------------------------

absl::string_view LabelValue(const SimSession& session, Dimension dimension) {
  const std::vector<ModelDimension>& dims = SessionDimensions();
  switch (dimension) {
    case kWorkMode:
      return dims[kWorkMode].values[session.work_mode];
    case kExpertise:
      return dims[kExpertise].values[session.expertise];
    case kOccupation:
      return dims[kOccupation].values[session.occupation];
    case kOutcome:
      return dims[kOutcome].values[session.outcome];
    case kVerifiedSuccess:
      return session.verified_success ? "true" : "false";
    case kAbandoned:
      return session.abandoned ? "true" : "false";
    case kClient:
      return dims[kClient].values[session.client];
    case kTaskTopic:
      return session.task_topic;
    case kMonth:
    case kNumDimensions:
      break;
  }
  return MonthName(session.month);
}

namespace {

// Which source reports what: a classifier per label group (the occupation
// classifier labels every session of an account alike), and telemetry.
struct Source {
  const char* name;
  std::vector<Dimension> labels;
  std::vector<Measure> measures;
};

const std::array<Source, kSourcesPerSession>& Sources() {
  static const auto* const kSources =
      new std::array<Source, kSourcesPerSession>{{
          {"work_mode_classifier@3", {kWorkMode, kTaskTopic}, {}},
          {"expertise_classifier@2", {kExpertise}, {}},
          {"occupation_classifier@1", {kOccupation}, {}},
          {"outcome_classifier@4",
           {kOutcome, kVerifiedSuccess, kAbandoned},
           {kSuccessSignal, kFailureSignal, kTaskValueUsd, kPlanningUserShare,
            kImplementationUserShare}},
          {"telemetry",
           {kClient},
           {kActionsPerPrompt, kWordsPerPrompt, kPrompts, kLinesAdded,
            kLinesRemoved, kCommits, kTestsPassed}},
      }};
  return *kSources;
}

// Decimals of each measure's granularity: how its values are printed.
const std::array<int, kNumMeasures>& MeasureDecimals() {
  static const auto* const kDecimals = [] {
    auto* decimals = new std::array<int, kNumMeasures>;
    for (int i = 0; i < kNumMeasures; ++i) {
      (*decimals)[i] = Decimals(SessionMeasures()[i].granularity);
    }
    return decimals;
  }();
  return *kDecimals;
}

// Appends `value` as "%.*f" with `decimals` (<= 9) would, but for a
// value on the grid of 10^-decimals (every generated measure: RoundTo
// returns the double nearest a multiple) without printf, which cost a
// third of `simulate --truth`'s time. On the grid, |value| * 10^decimals
// is within far less than 1/2 of an integer k, so printf's correctly
// rounded output is k's digits with the point inserted, and the sign
// (also of -0.0, which RoundTo gives for tiny negative draws). Anything
// off the grid goes to printf.
void AppendFixed(double value, int decimals, std::string* out) {
  static constexpr std::array<double, 10> kPow10 = {1,   1e1, 1e2, 1e3, 1e4,
                                                    1e5, 1e6, 1e7, 1e8, 1e9};
  const double scaled = std::fabs(value) * kPow10[decimals];
  const double k = std::round(scaled);
  if (!(scaled < 1e15) || std::fabs(scaled - k) > 1e-6) {
    absl::StrAppend(out, absl::StrFormat("%.*f", decimals, value));
    return;
  }
  if (std::signbit(value)) out->push_back('-');
  std::string digits = absl::StrCat(static_cast<int64_t>(k));
  if (decimals == 0) {
    out->append(digits);
    return;
  }
  if (digits.size() <= static_cast<size_t>(decimals)) {
    digits.insert(0, decimals + 1 - digits.size(), '0');
  }
  out->append(digits, 0, digits.size() - decimals);
  out->push_back('.');
  out->append(digits, digits.size() - decimals, decimals);
}

}  // namespace

void AppendObservationsWire(const Population& population,
                            const SimSession& session,
                            ObservationWireWriter* writer,
                            std::string* request) {
  const std::string session_id = population.SessionId(session.index);
  const std::string account_id = population.AccountId(session.account);
  const std::vector<ModelDimension>& dims = SessionDimensions();
  const std::vector<ModelMeasure>& measures = SessionMeasures();
  for (const Source& source : Sources()) {
    writer->Clear();
    writer->SessionId(session_id);
    writer->AccountId(account_id);
    writer->SessionStart(session.start_seconds, 0);
    writer->Source(source.name);
    for (Dimension d : source.labels) {
      writer->Label(dims[d].name, LabelValue(session, d));
    }
    for (Measure m : source.measures) {
      writer->Measure(measures[m].name, session.measures[m]);
    }
    writer->AppendTo(request);
  }
}

void AppendObservations(const Population& population, const SimSession& session,
                        cohortd::v1::PushRequest* request) {
  ObservationWireWriter writer;
  std::string wire;
  AppendObservationsWire(population, session, &writer, &wire);
  // `wire` holds only observations (no dataset), and merging appends to
  // a repeated field. Bytes written by AppendObservationsWire always parse.
  CHECK(request->MergeFromString(wire));
}

std::string ObservationsJsonl(const Population& population,
                              const SimSession& session) {
  const std::string prefix = absl::StrCat(
      "{\"sessionId\":\"", population.SessionId(session.index),
      "\",\"accountId\":\"", population.AccountId(session.account),
      "\",\"sessionStart\":\"",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                       absl::FromUnixSeconds(session.start_seconds),
                       absl::UTCTimeZone()),
      "\",\"source\":\"");
  const std::vector<ModelDimension>& dims = SessionDimensions();
  const std::vector<ModelMeasure>& measures = SessionMeasures();
  std::string out;
  for (const Source& source : Sources()) {
    absl::StrAppend(&out, prefix, source.name, "\"");
    // Every value is an identifier, a slug or "true"/"false": nothing to
    // escape.
    const char* separator = ",\"labels\":{";
    for (Dimension d : source.labels) {
      absl::StrAppend(&out, separator, "\"", dims[d].name, "\":\"",
                      LabelValue(session, d), "\"");
      separator = ",";
    }
    if (!source.labels.empty()) out += '}';
    separator = ",\"measures\":{";
    for (Measure m : source.measures) {
      absl::StrAppend(&out, separator, "\"", measures[m].name, "\":");
      AppendFixed(session.measures[m], MeasureDecimals()[m], &out);
      separator = ",";
    }
    if (!source.measures.empty()) out += '}';
    out += "}\n";
  }
  return out;
}

std::string TruthCsvHeader() {
  std::string header = "session_id,account_id,month";
  for (const ModelDimension& d : SessionDimensions()) {
    if (d.name != "month") absl::StrAppend(&header, ",", d.name);
  }
  for (const ModelMeasure& m : SessionMeasures()) {
    absl::StrAppend(&header, ",", m.name);
  }
  return header + "\n";
}

std::string TruthCsvRow(const Population& population,
                        const SimSession& session) {
  std::string row = absl::StrCat(population.SessionId(session.index), ",",
                                 population.AccountId(session.account), ",",
                                 MonthName(session.month));
  for (int d = 0; d < kMonth; ++d) {
    absl::StrAppend(&row, ",", LabelValue(session, static_cast<Dimension>(d)));
  }
  for (int i = 0; i < kNumMeasures; ++i) {
    row += ',';
    AppendFixed(session.measures[i], MeasureDecimals()[i], &row);
  }
  row += '\n';
  return row;
}

absl::Status CheckSchema(const cohortd::v1::DatasetDescription& description) {
  const auto differs = [&](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat(
        "dataset '", description.name(), "' differs from the simulator's ",
        "model of `sessions` (tools/cohortctl/simulator/population.h): ",
        what));
  };
  const std::vector<ModelDimension>& dims = SessionDimensions();
  if (description.dimensions_size() != static_cast<int>(dims.size())) {
    return differs(absl::StrCat(description.dimensions_size(),
                                " dimensions, expected ", dims.size()));
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    const auto& got = description.dimensions(static_cast<int>(i));
    const ModelDimension& want = dims[i];
    const std::vector<std::string> values(got.values().begin(),
                                          got.values().end());
    if (got.name() != want.name || values != want.values ||
        got.open_domain() != want.open_domain ||
        got.derived() != want.derived ||
        (want.open_domain && got.max_length() < want.max_length)) {
      return differs(absl::StrCat("dimension ", i + 1, " is '", got.name(),
                                  "' with another domain; expected '",
                                  want.name, "'"));
    }
  }
  const std::vector<ModelMeasure>& measures = SessionMeasures();
  if (description.measures_size() != static_cast<int>(measures.size())) {
    return differs(absl::StrCat(description.measures_size(),
                                " measures, expected ", measures.size()));
  }
  for (size_t i = 0; i < measures.size(); ++i) {
    const auto& got = description.measures(static_cast<int>(i));
    const ModelMeasure& want = measures[i];
    if (got.name() != want.name || got.lower() != want.lower ||
        got.upper() != want.upper || got.granularity() != want.granularity) {
      return differs(absl::StrFormat(
          "measure %d is '%s' [%g, %g] step %g; expected '%s' [%g, %g] "
          "step %g",
          i + 1, got.name(), got.lower(), got.upper(), got.granularity(),
          want.name, want.lower, want.upper, want.granularity));
    }
  }
  return absl::OkStatus();
}

}  // namespace cohortd::cohortctl

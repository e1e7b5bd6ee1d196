#include "tools/cohortctl/simulator/population.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tools/cohortctl/observation_jsonl.h"
#include "yaml-cpp/yaml.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

// A tenth of the study: fast, and large enough for the marginals.
constexpr int64_t kTestSessions = 40000;

const Population& TestPopulation() {
  static const auto* const population = [] {
    absl::StatusOr<Population> p =
        Population::Create({.sessions = kTestSessions, .seed = 1});
    return new Population(*std::move(p));
  }();
  return *population;
}

const std::vector<SimSession>& TestSessions() {
  static const auto* const sessions = [] {
    auto* all = new std::vector<SimSession>;
    for (int64_t i = 0; i < TestPopulation().sessions(); ++i) {
      all->push_back(TestPopulation().SessionAt(i));
    }
    return all;
  }();
  return *sessions;
}

// A share among the sessions selected by `in`, with the tolerance the test
// allows around its target.
//
// Tolerance: 4 standard errors. Sessions of one account may be correlated
// (they share occupation, base expertise and client), so the share is
// treated as a ratio of per-account sums: with c_a selected sessions of
// account a and n = sum c_a, Var(share) <= p (1 - p) sum c_a^2 / n^2, the
// binomial variance p (1 - p) / n inflated by the design effect
// sum c_a^2 / n (exact when an account's sessions always agree, an upper
// bound otherwise). 4 SE keeps a false failure below 1 in 15,000 per check
// for the fixed seed, and any model change that moves a figure by a few
// points fails.
struct Share {
  double value = 0;
  double tolerance = 0;
  int64_t n = 0;
};

template <typename In, typename Hit>
Share MeasureShare(double target, In in, Hit hit) {
  std::map<int64_t, int64_t> per_account;
  int64_t n = 0, hits = 0;
  for (const SimSession& s : TestSessions()) {
    if (!in(s)) continue;
    ++n;
    ++per_account[s.account];
    if (hit(s)) ++hits;
  }
  double sum_squares = 0;
  for (const auto& [account, c] : per_account) {
    sum_squares += static_cast<double>(c) * c;
  }
  Share share;
  share.n = n;
  share.value = n > 0 ? static_cast<double>(hits) / n : 0;
  share.tolerance = 4 * std::sqrt(target * (1 - target) * sum_squares) / n;
  return share;
}

#define EXPECT_SHARE_NEAR(target, in, hit)                                    \
  do {                                                                        \
    const Share share = MeasureShare((target), (in), (hit));                  \
    EXPECT_NEAR(share.value, (target), share.tolerance) << "n = " << share.n; \
  } while (0)

TEST(SimRngTest, SameSeedSameStreamAndSamplersInRange) {
  SimRng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = a.Next();
    EXPECT_EQ(x, b.Next());
    differs |= x != c.Next();
  }
  EXPECT_TRUE(differs);
  // Means of the samplers over 200,000 draws; SEs: normal 1/sqrt(n) =
  // 0.0022, Beta(7, 3) sqrt(0.021/n) = 0.00033, Gamma(0.5) sqrt(0.5/n) =
  // 0.0016; tolerances are about 5 SE.
  double normal = 0, beta = 0, gamma = 0;
  constexpr int kDraws = 200000;
  for (int i = 0; i < kDraws; ++i) {
    normal += a.Normal();
    const double x = a.Beta(7, 3);
    ASSERT_GE(x, 0);
    ASSERT_LE(x, 1);
    beta += x;
    gamma += a.Gamma(0.5);
    ASSERT_LT(a.Below(7), 7);
  }
  EXPECT_NEAR(normal / kDraws, 0.0, 0.011);
  EXPECT_NEAR(beta / kDraws, 0.7, 0.0017);
  EXPECT_NEAR(gamma / kDraws, 0.5, 0.008);
}

TEST(PopulationTest, RejectsSizesOutOfRange) {
  EXPECT_THAT(
      Population::Create({.sessions = 999}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--sessions")));
}

TEST(PopulationTest, SameSeedSameSessions) {
  absl::StatusOr<Population> again =
      Population::Create({.sessions = kTestSessions, .seed = 1});
  ASSERT_TRUE(again.ok());
  for (int64_t i = 0; i < kTestSessions; i += 37) {
    EXPECT_EQ(TruthCsvRow(*again, again->SessionAt(i)),
              TruthCsvRow(TestPopulation(), TestSessions()[i]));
  }
}

TEST(PopulationTest, DifferentSeedDiffers) {
  absl::StatusOr<Population> other =
      Population::Create({.sessions = kTestSessions, .seed = 2});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->SessionId(5), "sim2-s0000005");
  EXPECT_EQ(TestPopulation().SessionId(5), "sim1-s0000005");
  int same_measures = 0, compared = 0;
  for (int64_t i = 0; i < kTestSessions; i += 101, ++compared) {
    if (other->SessionAt(i).measures == TestSessions()[i].measures) {
      ++same_measures;
    }
  }
  EXPECT_EQ(same_measures, 0) << "of " << compared;
}

TEST(PopulationTest, TotalsHitTheirTargets) {
  const Population& p = TestPopulation();
  EXPECT_EQ(p.sessions(), kTestSessions);
  // ~0.59 accounts per session, as in the study (235,000 / 400,000).
  EXPECT_EQ(p.accounts(), 23500);
  int64_t next = 0;
  for (int64_t a = 0; a < p.accounts(); ++a) {
    ASSERT_EQ(p.account(a).first_session, next);
    ASSERT_GE(p.account(a).sessions, 1);
    next += p.account(a).sessions;
  }
  EXPECT_EQ(next, kTestSessions);
  for (int64_t i : {int64_t{0}, int64_t{1}, kTestSessions - 1}) {
    const SimSession& s = TestSessions()[i];
    EXPECT_GE(i, p.account(s.account).first_session);
    EXPECT_LT(
        i, p.account(s.account).first_session + p.account(s.account).sessions);
  }
}

TEST(PopulationTest, HeavyTailOfPowerUsers) {
  const Population& p = TestPopulation();
  int64_t max_sessions = 0, single = 0, dozens = 0;
  for (int64_t a = 0; a < p.accounts(); ++a) {
    max_sessions = std::max(max_sessions, p.account(a).sessions);
    single += p.account(a).sessions == 1;
    dozens += p.account(a).sessions >= 24;
  }
  EXPECT_GE(max_sessions, 100);
  EXPECT_GT(single, p.accounts() * 6 / 10);
  EXPECT_GE(dozens, 20);
}

TEST(PopulationTest, WorkModeTrendFromFirstToLastMonth) {
  // DOMAIN.md figure 1. Work modes are drawn per session given its month,
  // so here the design effect only reflects accounts with several sessions
  // in one month.
  const auto month = [](int m) {
    return [m](const SimSession& s) { return s.month == m; };
  };
  const auto mode = [](std::set<int> modes) {
    return [modes](const SimSession& s) { return modes.count(s.work_mode); };
  };
  EXPECT_SHARE_NEAR(0.33, month(0), mode({kFix}));
  EXPECT_SHARE_NEAR(0.19, month(6), mode({kFix}));
  EXPECT_SHARE_NEAR(0.14, month(0), mode({kOperate}));
  EXPECT_SHARE_NEAR(0.21, month(6), mode({kOperate}));
  EXPECT_SHARE_NEAR(0.10, month(0), mode({kAnalyze, kWrite}));
  EXPECT_SHARE_NEAR(0.20, month(6), mode({kAnalyze, kWrite}));
  // Sessions spread over the seven months evenly (1/7 each).
  for (int m = 0; m < kNumMonths; ++m) {
    EXPECT_SHARE_NEAR(
        1.0 / 7, [](const SimSession&) { return true; }, month(m));
  }
}

TEST(PopulationTest, SuccessByExpertise) {
  // DOMAIN.md figure 4. Occupation shifts verified success by a factor
  // whose session-weighted mean is 1.013: within the tolerances.
  const auto level = [](int e) {
    return [e](const SimSession& s) { return s.expertise == e; };
  };
  const auto verified = [](const SimSession& s) { return s.verified_success; };
  const auto at_least_partial = [](const SimSession& s) {
    return s.outcome == kSuccess || s.outcome == kPartial;
  };
  EXPECT_SHARE_NEAR(0.15, level(kNovice), verified);
  EXPECT_SHARE_NEAR(0.28, level(kIntermediate), verified);
  EXPECT_SHARE_NEAR(0.31, level(3), verified);
  EXPECT_SHARE_NEAR(0.33, level(4), verified);
  EXPECT_SHARE_NEAR(0.77, level(kNovice), at_least_partial);
  EXPECT_SHARE_NEAR(0.91, level(kIntermediate), at_least_partial);
  EXPECT_SHARE_NEAR(0.92, level(4), at_least_partial);
  for (const SimSession& s : TestSessions()) {
    if (s.verified_success) {
      ASSERT_EQ(s.outcome, kSuccess);
    }
  }
}

TEST(PopulationTest, VerifiedSuccessHigherForSoftwareOccupations) {
  // DOMAIN.md figure 5: ~30% vs ~26%. The exact expectation depends on each
  // group's expertise mix: sum over levels of share x rate x factor.
  constexpr double kRate[] = {0.15, 0.22, 0.28, 0.31, 0.33};
  const auto expected = [&](bool software, double factor) {
    double sum = 0;
    int64_t n = 0;
    for (const SimSession& s : TestSessions()) {
      if ((s.occupation == kSoftware) != software) continue;
      sum += kRate[s.expertise] * factor;
      ++n;
    }
    return sum / n;
  };
  const double software = expected(true, 1.12);
  const double others = expected(false, 0.975);
  EXPECT_NEAR(software, 0.30, 0.01);
  EXPECT_NEAR(others, 0.26, 0.01);
  const auto verified = [](const SimSession& s) { return s.verified_success; };
  EXPECT_SHARE_NEAR(
      software, [](const SimSession& s) { return s.occupation == kSoftware; },
      verified);
  EXPECT_SHARE_NEAR(
      others, [](const SimSession& s) { return s.occupation != kSoftware; },
      verified);
}

TEST(PopulationTest, UnclassifiedOccupationIsAboutThirtyPercent) {
  // Accounts get unclassified with weight 30 / 98.
  EXPECT_SHARE_NEAR(
      30.0 / 98, [](const SimSession&) { return true; },
      [](const SimSession& s) { return s.occupation == kUnclassified; });
}

TEST(PopulationTest, AbandonmentOnlyAmongProblemSessions) {
  // DOMAIN.md figure 7: ~19% of novices' problem sessions (failure signal
  // > 3, as the report filters them), 5-7% otherwise, in every work mode;
  // abandoned sessions failed, unverified, and wrote no code.
  const auto problem_at = [](std::set<int> levels) {
    return [levels](const SimSession& s) {
      return s.measures[kFailureSignal] > 3 && levels.count(s.expertise) > 0;
    };
  };
  const auto abandoned = [](const SimSession& s) { return s.abandoned; };
  EXPECT_SHARE_NEAR(0.19, problem_at({kNovice}), abandoned);
  EXPECT_SHARE_NEAR(0.06, problem_at({2, 3, 4}), abandoned);
  bool outside_fix = false;
  for (const SimSession& s : TestSessions()) {
    if (!s.abandoned) continue;
    ASSERT_GT(s.measures[kFailureSignal], 3);
    ASSERT_EQ(s.outcome, kFailure);
    ASSERT_FALSE(s.verified_success);
    ASSERT_EQ(s.measures[kLinesAdded], 0);
    ASSERT_EQ(s.measures[kCommits], 0);
    outside_fix = outside_fix || s.work_mode != kFix;
  }
  EXPECT_TRUE(outside_fix);
}

// The median of measure `m` among sessions at expertise `e`.
double Median(Measure m, int e) {
  std::vector<double> values;
  for (const SimSession& s : TestSessions()) {
    if (s.expertise == e) values.push_back(s.measures[m]);
  }
  std::nth_element(values.begin(), values.begin() + values.size() / 2,
                   values.end());
  return values[values.size() / 2];
}

double Mean(Measure m, int month = -1) {
  double sum = 0;
  int64_t n = 0;
  for (const SimSession& s : TestSessions()) {
    if (month >= 0 && s.month != month) continue;
    sum += s.measures[m];
    ++n;
  }
  return sum / n;
}

TEST(PopulationTest, MeasuresNearTheStudy) {
  // Medians of lognormals with sigma ~0.8 over >= 3,000 sessions: the SE
  // of a median is ~1.25 sigma / sqrt(n) in log space (~2%); allow 10%.
  EXPECT_NEAR(Median(kActionsPerPrompt, kNovice), 5, 0.5);
  EXPECT_NEAR(Median(kActionsPerPrompt, 4), 12, 1.2);
  EXPECT_NEAR(Median(kWordsPerPrompt, kNovice), 600, 60);
  EXPECT_NEAR(Median(kWordsPerPrompt, 4), 3200, 320);
  int64_t over_100 = 0;
  for (const SimSession& s : TestSessions()) {
    over_100 += s.measures[kActionsPerPrompt] > 100;
  }
  EXPECT_GT(over_100, 0);
  // Beta(7, 3) and Beta(2, 8): SD 0.14 and 0.12 over 40,000 sessions.
  EXPECT_NEAR(Mean(kPlanningUserShare), 0.70, 0.005);
  EXPECT_NEAR(Mean(kImplementationUserShare), 0.20, 0.005);
  EXPECT_NEAR(Mean(kPrompts), 4.0, 0.3);
  // Task value rose ~27% over the seven months (lognormal, sigma 0.9: the
  // monthly means have an SE of ~2.5%, their ratio ~3.5%).
  EXPECT_NEAR(Mean(kTaskValueUsd, 6) / Mean(kTaskValueUsd, 0), 1.27, 0.12);
}

TEST(PopulationTest, TinyCohortsHaveNineAccountsAndManySessions) {
  const Population& p = TestPopulation();
  std::set<int64_t> occupation_accounts, topic_accounts;
  int64_t occupation_sessions = 0;
  for (const SimSession& s : TestSessions()) {
    if (s.occupation == kTinyCohortOccupation) {
      occupation_accounts.insert(s.account);
      ++occupation_sessions;
    }
    if (s.task_topic == kTinyCohortTopic) topic_accounts.insert(s.account);
  }
  EXPECT_EQ(occupation_accounts.size(), 9u);
  EXPECT_EQ(topic_accounts, occupation_accounts);
  EXPECT_GE(occupation_sessions, 9 * 12);
  int64_t accounts = 0;
  for (int64_t a = 0; a < p.accounts(); ++a) {
    accounts += p.account(a).occupation == kTinyCohortOccupation;
  }
  EXPECT_EQ(accounts, kTinyCohortAccounts);
}

TEST(PopulationTest, TopicsHaveACommonHeadAndANeverReleasableTail) {
  std::map<std::string, std::set<int64_t>> accounts_by_topic;
  std::map<std::string, int64_t> sessions_by_topic;
  for (const SimSession& s : TestSessions()) {
    accounts_by_topic[s.task_topic].insert(s.account);
    ++sessions_by_topic[s.task_topic];
  }
  // The head: at most the 300 common topics (and the tiny cohort's) are
  // seen in more than 8 sessions; most of them reach k = 10 accounts.
  int frequent = 0, releasable = 0, seen_once_or_twice = 0;
  for (const auto& [topic, sessions] : sessions_by_topic) {
    frequent += sessions > 8;
    releasable += accounts_by_topic[topic].size() >= 10;
    seen_once_or_twice += sessions <= 2;
  }
  EXPECT_LE(frequent, 301);
  EXPECT_GE(releasable, 250);
  // The tail: ~3% of 40,000 sessions on topics seen once or twice.
  EXPECT_GE(seen_once_or_twice, 1000);
}

// The model's schema against the shipped config, and every generated value
// against it.
TEST(PopulationTest, MatchesTheConfigAndStaysWithinIt) {
  const YAML::Node config =
      YAML::LoadFile(std::string(COHORTD_SOURCE_DIR) + "/config/cohortd.yaml");
  const YAML::Node dataset = config["datasets"][0];
  ASSERT_EQ(dataset["name"].as<std::string>(), "sessions");
  const std::vector<ModelDimension>& dims = SessionDimensions();
  ASSERT_EQ(dataset["dimensions"].size(), dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    const YAML::Node d = dataset["dimensions"][i];
    EXPECT_EQ(d["name"].as<std::string>(), dims[i].name);
    if (d["values"]) {
      EXPECT_EQ(d["values"].as<std::vector<std::string>>(), dims[i].values);
    }
    EXPECT_EQ(d["open_domain"].IsDefined(), dims[i].open_domain);
    if (dims[i].open_domain) {
      EXPECT_EQ(d["max_length"].as<int>(), dims[i].max_length);
    }
    EXPECT_EQ(d["derived"].IsDefined(), dims[i].derived);
  }
  const std::vector<ModelMeasure>& measures = SessionMeasures();
  ASSERT_EQ(dataset["measures"].size(), measures.size());
  for (size_t i = 0; i < measures.size(); ++i) {
    const YAML::Node m = dataset["measures"][i];
    EXPECT_EQ(m["name"].as<std::string>(), measures[i].name);
    EXPECT_EQ(m["bounds"][0].as<double>(), measures[i].lower);
    EXPECT_EQ(m["bounds"][1].as<double>(), measures[i].upper);
    EXPECT_EQ(m["granularity"].as<double>(), measures[i].granularity);
    EXPECT_LE(m["valid"][0].as<double>(), 0);
    EXPECT_GE(m["valid"][1].as<double>(), measures[i].valid_max);
  }

  for (const SimSession& s : TestSessions()) {
    for (int d = 0; d < kTaskTopic; ++d) {
      const std::vector<std::string>& domain = dims[d].values;
      ASSERT_NE(std::find(domain.begin(), domain.end(),
                          LabelValue(s, static_cast<Dimension>(d))),
                domain.end());
    }
    ASSERT_FALSE(s.task_topic.empty());
    ASSERT_LE(s.task_topic.size(), 64u);
    ASSERT_EQ(
        s.task_topic.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-"),
        std::string::npos);
    for (int m = 0; m < kNumMeasures; ++m) {
      const double v = s.measures[m];
      ASSERT_GE(v, 0) << measures[m].name;
      ASSERT_LE(v, measures[m].valid_max) << measures[m].name;
      const double steps = v / measures[m].granularity;
      ASSERT_NEAR(steps, std::round(steps), 1e-6) << measures[m].name;
    }
    if (s.work_mode >= kOperate) {
      ASSERT_EQ(s.measures[kLinesAdded], 0);
      ASSERT_EQ(s.measures[kCommits], 0);
    }
  }
}

cohortd::v1::DatasetDescription ModelDescription() {
  cohortd::v1::DatasetDescription description;
  description.set_name("sessions");
  for (const ModelDimension& d : SessionDimensions()) {
    auto* dim = description.add_dimensions();
    dim->set_name(d.name);
    for (const std::string& v : d.values) dim->add_values(v);
    dim->set_open_domain(d.open_domain);
    dim->set_max_length(d.max_length);
    dim->set_derived(d.derived);
  }
  for (const ModelMeasure& m : SessionMeasures()) {
    auto* measure = description.add_measures();
    measure->set_name(m.name);
    measure->set_lower(m.lower);
    measure->set_upper(m.upper);
    measure->set_granularity(m.granularity);
  }
  return description;
}

TEST(CheckSchemaTest, AcceptsTheModelAndNamesTheFirstDifference) {
  EXPECT_TRUE(CheckSchema(ModelDescription()).ok());
  cohortd::v1::DatasetDescription changed = ModelDescription();
  changed.mutable_dimensions(1)->add_values("guru");
  EXPECT_THAT(CheckSchema(changed),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("dimension 2 is 'expertise'")));
  changed = ModelDescription();
  changed.mutable_measures(2)->set_upper(100);
  EXPECT_THAT(CheckSchema(changed),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("measure 3 is 'prompts' [0, 100]")));
  changed = ModelDescription();
  changed.mutable_measures()->RemoveLast();
  EXPECT_THAT(CheckSchema(changed),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("11 measures, expected 12")));
}

TEST(ObservationsTest, FiveSourcesCoverEveryLabelAndMeasure) {
  const SimSession& s = TestSessions()[123];
  cohortd::v1::PushRequest request;
  AppendObservations(TestPopulation(), s, &request);
  ASSERT_EQ(request.observations_size(), kSourcesPerSession);
  std::set<std::string> sources, labels, measures;
  for (const cohortd::v1::Observation& obs : request.observations()) {
    EXPECT_EQ(obs.session_id(), TestPopulation().SessionId(123));
    EXPECT_EQ(obs.account_id(), TestPopulation().AccountId(s.account));
    EXPECT_EQ(obs.session_start().seconds(), s.start_seconds);
    sources.insert(obs.source());
    for (const auto& [name, value] : obs.labels()) {
      EXPECT_TRUE(labels.insert(name).second) << name << " twice";
    }
    for (const auto& [name, value] : obs.measures()) {
      EXPECT_TRUE(measures.insert(name).second) << name << " twice";
    }
  }
  EXPECT_EQ(sources.size(), 5u);
  EXPECT_TRUE(sources.count("telemetry"));
  EXPECT_EQ(labels.size(), 8u);  // every dimension but the derived month
  EXPECT_FALSE(labels.count("month"));
  EXPECT_EQ(measures.size(), static_cast<size_t>(kNumMeasures));
}

TEST(ObservationsTest, JsonLinesParseBackToTheSameObservations) {
  for (int64_t i : {0, 1, 4567, 39999}) {
    const SimSession& s = TestSessions()[i];
    cohortd::v1::PushRequest request;
    AppendObservations(TestPopulation(), s, &request);
    const std::string jsonl = ObservationsJsonl(TestPopulation(), s);
    ASSERT_EQ(jsonl.back(), '\n');
    const std::vector<std::string> lines =
        absl::StrSplit(jsonl.substr(0, jsonl.size() - 1), '\n');
    ASSERT_EQ(lines.size(), static_cast<size_t>(kSourcesPerSession));
    for (int k = 0; k < kSourcesPerSession; ++k) {
      absl::StatusOr<cohortd::v1::Observation> parsed =
          ParseObservationJson(lines[k]);
      ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << lines[k];
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
          *parsed, request.observations(k)))
          << lines[k];
    }
  }
  EXPECT_EQ(ObservationsJsonl(TestPopulation(), TestSessions()[9]),
            ObservationsJsonl(TestPopulation(), TestSessions()[9]));
}

TEST(TruthCsvTest, HeaderAndRowsLineUp) {
  EXPECT_EQ(TruthCsvHeader(),
            "session_id,account_id,month,work_mode,expertise,occupation,"
            "outcome,verified_success,abandoned,client,task_topic,"
            "actions_per_prompt,words_per_prompt,prompts,planning_user_share,"
            "implementation_user_share,lines_added,lines_removed,commits,"
            "tests_passed,success_signal,failure_signal,task_value_usd\n");
  const SimSession& s = TestSessions()[7];
  const std::string row = TruthCsvRow(TestPopulation(), s);
  ASSERT_EQ(row.back(), '\n');
  const std::vector<std::string> cells =
      absl::StrSplit(row.substr(0, row.size() - 1), ',');
  ASSERT_EQ(cells.size(), 23u);
  EXPECT_EQ(cells[0], "sim1-s0000007");
  EXPECT_EQ(cells[2], MonthName(s.month));
  EXPECT_EQ(cells[10], s.task_topic);
  EXPECT_EQ(std::stod(cells[13]), s.measures[kPrompts]);
  EXPECT_EQ(MonthName(0), "2025-10");
  EXPECT_EQ(MonthName(6), "2026-04");
}

// The truth rows and JSON Lines print each measure as "%.*f" with its
// granularity's decimals would (they format without printf): checked
// against printf for every test session and for values the generator
// could give at the edges (-0.0, zero, negatives, the cap) or off the
// grid.
TEST(TruthCsvTest, MeasuresPrintAsPrintfWould) {
  const std::vector<ModelMeasure>& specs = SessionMeasures();
  std::vector<int> decimals;
  for (const ModelMeasure& m : specs) {
    int d = 0;
    for (double g = m.granularity; std::fabs(g - std::round(g)) > 1e-9;
         g *= 10) {
      ++d;
    }
    decimals.push_back(d);
  }
  const auto expected_row = [&](const SimSession& s) {
    std::string row = absl::StrCat(TestPopulation().SessionId(s.index), ",",
                                   TestPopulation().AccountId(s.account), ",",
                                   MonthName(s.month));
    for (int d = 0; d < kMonth; ++d) {
      absl::StrAppend(&row, ",", LabelValue(s, static_cast<Dimension>(d)));
    }
    for (int i = 0; i < kNumMeasures; ++i) {
      absl::StrAppend(&row,
                      absl::StrFormat(",%.*f", decimals[i], s.measures[i]));
    }
    return row + "\n";
  };
  for (const SimSession& s : TestSessions()) {
    ASSERT_EQ(TruthCsvRow(TestPopulation(), s), expected_row(s));
  }
  SimSession edge = TestSessions()[5];
  for (double value : {-0.0, 0.0, -0.01, 0.004, 0.005, 0.125, 1e-7, 12345.5,
                       1e17, 0.1 + 0.2}) {
    for (int i = 0; i < kNumMeasures; ++i) {
      edge.measures[i] = i % 2 == 0 ? value : specs[i].valid_max;
    }
    EXPECT_EQ(TruthCsvRow(TestPopulation(), edge), expected_row(edge)) << value;
  }
  // JSON Lines print the same way: each measure's text is its truth cell.
  const std::string jsonl = ObservationsJsonl(TestPopulation(), edge);
  EXPECT_THAT(jsonl,
              HasSubstr(absl::StrFormat("\"prompts\":%.*f", decimals[kPrompts],
                                        edge.measures[kPrompts])));
  EXPECT_THAT(jsonl, HasSubstr(absl::StrFormat("\"success_signal\":%.*f",
                                               decimals[kSuccessSignal],
                                               edge.measures[kSuccessSignal])));
}

}  // namespace
}  // namespace cohortd::cohortctl

// Issue 11 items 3 and 4 through the real cohortd binary and the shipped
// dataset config: intervals that include sampling (interval =
// NOISE_AND_SAMPLING) and adjusted rates and means (Metric.adjust_for).
//
// The data are one draw from a known super-population with clustered
// accounts (test data from a seeded SplitMix64, not noise): an account is
// of type A or B (probability 1/2), has 1..8 sessions, each a success with
// probability 0.1 (A) or 0.5 (B) and with actions_per_prompt mu + {-2..2},
// mu = 5 (A) or 12 (B). Population values: success rate 0.3, mean 8.5.
// Server noise is not seedable, so probabilistic checks run at confidence
// 0.999 (each fails with probability <= 1e-3 for a correct server).
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using cohortd::v1::AggregateRequest;
using cohortd::v1::AggregateResponse;
using cohortd::v1::Estimate;
using cohortd::v1::Metric;

constexpr int64_t kJan2026 = 1767225600;

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double Uniform(uint64_t* state) {
  return static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53;
}

// The exact clustered statistics of what was pushed, for the checks.
struct Pushed {
  std::vector<std::pair<double, double>> rate;  // per account (a, n)
  std::vector<std::pair<double, double>> mean;  // per account (y, n)
};

// The clustered SE of sum(y) / sum(n) over accounts (sampling_interval.h).
double ClusteredSe(const std::vector<std::pair<double, double>>& accounts) {
  double y = 0, n = 0;
  for (const auto& [ay, an] : accounts) {
    y += ay;
    n += an;
  }
  const double r = y / n;
  double q = 0;
  for (const auto& [ay, an] : accounts) q += (ay - r * an) * (ay - r * an);
  const double m = static_cast<double>(accounts.size());
  return std::sqrt(m / (m - 1) * q) / n;
}

class SamplingAdjustIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(MakeTempDir());
    ASSERT_OK(server_->Start());
    ingest_ = cohortd::v1::Ingest::NewStub(server_->Channel());
    query_ = cohortd::v1::Query::NewStub(server_->Channel());
    admin_ = cohortd::v1::Admin::NewStub(server_->Channel());
  }

  // Pushes `request`, expects every observation accepted, and clears its
  // observations for the next batch.
  void PushAccepted(cohortd::v1::PushRequest* request) {
    cohortd::v1::PushResponse response;
    auto context = AuthContext(server_->tokens().ingest);
    const grpc::Status status =
        ingest_->Push(context.get(), *request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.rejected_size(), 0);
    request->clear_observations();
  }

  // `accounts` accounts of the population in the file comment.
  Pushed PushPopulation(int accounts, uint64_t seed) {
    Pushed pushed;
    uint64_t state = seed;
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    auto flush = [&] { PushAccepted(&request); };
    for (int a = 0; a < accounts; ++a) {
      const bool type_b = Uniform(&state) < 0.5;
      const int n = 1 + static_cast<int>(Uniform(&state) * 8);
      double matches = 0, sum = 0;
      for (int s = 0; s < n; ++s) {
        cohortd::v1::Observation* obs = request.add_observations();
        const std::string account = absl::StrCat("acct-", a);
        obs->set_session_id(absl::StrCat(account, "-s", s));
        obs->set_account_id(account);
        obs->mutable_session_start()->set_seconds(kJan2026 + serial_++);
        obs->set_source("test_classifier@1");
        const bool success = Uniform(&state) < (type_b ? 0.5 : 0.1);
        const double value =
            (type_b ? 12 : 5) - 2 + static_cast<int>(Uniform(&state) * 5);
        (*obs->mutable_labels())["outcome"] = success ? "success" : "failure";
        (*obs->mutable_measures())["actions_per_prompt"] = value;
        matches += success;
        sum += value;
      }
      pushed.rate.emplace_back(matches, n);
      pushed.mean.emplace_back(sum, n);
      if (request.observations_size() >= 4000) flush();
    }
    if (request.observations_size() > 0) flush();
    Seal();
    return pushed;
  }

  void Seal() {
    cohortd::v1::SealSnapshotRequest request;
    request.set_dataset("sessions");
    cohortd::v1::SealSnapshotResponse response;
    auto context = AuthContext(server_->tokens().admin);
    const grpc::Status status =
        admin_->SealSnapshot(context.get(), request, &response);
    ASSERT_TRUE(status.ok() ||
                status.error_code() == grpc::StatusCode::UNIMPLEMENTED)
        << status.error_message();
  }

  grpc::Status Aggregate(const AggregateRequest& request,
                         AggregateResponse* response) {
    auto context = AuthContext(server_->tokens().analyst);
    return query_->Aggregate(context.get(), request, response);
  }

  // The success rate and mean actions per prompt, no group-by.
  static AggregateRequest RateAndMean(cohortd::v1::IntervalKind interval) {
    AggregateRequest request;
    request.set_dataset("sessions");
    request.set_epsilon(2);
    request.set_confidence(0.999);
    request.set_interval(interval);
    Metric rate;
    rate.set_kind(Metric::RATE);
    rate.set_name("success");
    rate.mutable_rate_of()->set_dimension("outcome");
    rate.mutable_rate_of()->add_any_of("success");
    *request.add_metrics() = rate;
    Metric mean;
    mean.set_kind(Metric::MEAN);
    mean.set_measure("actions_per_prompt");
    mean.set_name("actions");
    *request.add_metrics() = mean;
    return request;
  }

  // The success rate by expertise, raw and adjusted for `controls`, at
  // epsilon 2.
  static AggregateRequest RawAndAdjustedByExpertise(
      const std::vector<std::string>& controls) {
    AggregateRequest query;
    query.set_dataset("sessions");
    query.add_group_by("expertise");
    query.set_epsilon(2);
    Metric raw;
    raw.set_kind(Metric::RATE);
    raw.set_name("raw");
    raw.mutable_rate_of()->set_dimension("outcome");
    raw.mutable_rate_of()->add_any_of("success");
    Metric adjusted = raw;
    adjusted.set_name("adjusted");
    for (const std::string& c : controls) adjusted.add_adjust_for(c);
    *query.add_metrics() = raw;
    *query.add_metrics() = adjusted;
    return query;
  }

  // expertise -> metric -> estimate.
  static std::map<std::string, std::map<std::string, Estimate>> ByExpertise(
      const AggregateResponse& response) {
    std::map<std::string, std::map<std::string, Estimate>> t;
    for (const auto& c : response.cohorts()) {
      for (const Estimate& e : c.estimates()) {
        t[c.key().at("expertise")][e.metric()] = e;
      }
    }
    return t;
  }

  static std::map<std::string, Estimate> Estimates(
      const AggregateResponse& response) {
    std::map<std::string, Estimate> out;
    if (response.cohorts_size() != 1) return out;
    for (const Estimate& e : response.cohorts(0).estimates()) {
      out[e.metric()] = e;
    }
    return out;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> ingest_;
  std::unique_ptr<cohortd::v1::Query::Stub> query_;
  std::unique_ptr<cohortd::v1::Admin::Stub> admin_;
  int serial_ = 0;
};

TEST_F(SamplingAdjustIntegrationTest,
       NoiseAndSamplingCoversThePopulationValue) {
  const Pushed pushed = PushPopulation(6000, 42);
  AggregateResponse noise, both;
  ASSERT_TRUE(Aggregate(RateAndMean(cohortd::v1::NOISE), &noise).ok());
  const grpc::Status status =
      Aggregate(RateAndMean(cohortd::v1::NOISE_AND_SAMPLING), &both);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(both.from_cache()) << "a different release from NOISE";
  EXPECT_NEAR(both.cost().epsilon(), noise.cost().epsilon(), 1e-9)
      << "the variance is paid from the same epsilon";
  auto n = Estimates(noise), b = Estimates(both);
  ASSERT_EQ(n.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  const double z = 3.2905;  // two-sided 0.999
  const std::map<std::string, std::pair<double, double>> truth_and_se = {
      {"success", {0.3, ClusteredSe(pushed.rate)}},
      {"actions", {8.5, ClusteredSe(pushed.mean)}}};
  for (const auto& [name, t] : truth_and_se) {
    const Estimate& e = b[name];
    SCOPED_TRACE(name);
    // Covers the population value (not only the sample's).
    EXPECT_LE(e.ci_low(), t.first);
    EXPECT_GE(e.ci_high(), t.first);
    // At least the sampling half-width the data imply (its SE is an
    // upper confidence value), and not absurdly wider than noise and
    // sampling together.
    const double half = (e.ci_high() - e.ci_low()) / 2;
    const double noise_half = (n[name].ci_high() - n[name].ci_low()) / 2;
    EXPECT_GE(half, 0.95 * z * t.second);
    EXPECT_LE(half, 3 * std::hypot(noise_half, z * t.second));
    // The noise-only interval is much narrower here: sampling dominates.
    EXPECT_LT(noise_half, half);
  }
  // The identical request is the identical stored release.
  AggregateResponse again;
  ASSERT_TRUE(
      Aggregate(RateAndMean(cohortd::v1::NOISE_AND_SAMPLING), &again).ok());
  EXPECT_TRUE(again.from_cache());
}

TEST_F(SamplingAdjustIntegrationTest, NoiseAndSamplingRefusesOtherMetrics) {
  AggregateRequest request = RateAndMean(cohortd::v1::NOISE_AND_SAMPLING);
  Metric quantiles;
  quantiles.set_kind(Metric::QUANTILES);
  quantiles.set_measure("actions_per_prompt");
  *request.add_metrics() = quantiles;
  AggregateResponse response;
  const grpc::Status status = Aggregate(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("interval"));
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("QUANTILES"));
}

// Item 4: a confounded population with a planted effect. Accounts are
// novices or experts (1/2 each), with 1..8 sessions; a session is "build"
// with probability 0.8 (experts) or 0.2 (novices), else "fix", has a
// task value uniform in [0, 2000) (no effect), and succeeds with
// probability 0.10 + 0.10 [expert] + 0.30 [build]. Raw rates differ by
// ~0.28; adjusted for work mode at the overall mix (build ~ 1/2), novices
// are at 0.25 and experts at 0.35.
TEST_F(SamplingAdjustIntegrationTest, AdjustedRateRemovesPlantedConfounding) {
  uint64_t state = 7;
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int a = 0; a < 6000; ++a) {
    const bool expert = Uniform(&state) < 0.5;
    const int n = 1 + static_cast<int>(Uniform(&state) * 8);
    for (int s = 0; s < n; ++s) {
      const bool build = Uniform(&state) < (expert ? 0.8 : 0.2);
      const bool success = Uniform(&state) < 0.1 + 0.1 * expert + 0.3 * build;
      cohortd::v1::Observation* obs = request.add_observations();
      const std::string account = absl::StrCat("acct-", a);
      obs->set_session_id(absl::StrCat(account, "-s", s));
      obs->set_account_id(account);
      obs->mutable_session_start()->set_seconds(kJan2026 + serial_++);
      obs->set_source("test_classifier@1");
      (*obs->mutable_labels())["expertise"] = expert ? "expert" : "novice";
      (*obs->mutable_labels())["work_mode"] = build ? "build" : "fix";
      (*obs->mutable_labels())["outcome"] = success ? "success" : "failure";
      (*obs->mutable_measures())["task_value_usd"] = Uniform(&state) * 2000;
    }
    if (request.observations_size() >= 4000 || a == 5999) {
      ASSERT_NO_FATAL_FAILURE(PushAccepted(&request));
    }
  }
  Seal();
  AggregateRequest query =
      RawAndAdjustedByExpertise({"work_mode", "task_value_band"});
  query.set_confidence(0.999);
  AggregateResponse response;
  const grpc::Status status = Aggregate(query, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto t = ByExpertise(response);
  ASSERT_EQ(t.size(), 2u);
  for (const auto& [cohort, estimates] : t) {
    ASSERT_EQ(estimates.count("adjusted"), 1u) << cohort;
    const Estimate& e = estimates.at("adjusted");
    std::printf("%s: raw %.4f [%.4f, %.4f], adjusted %.4f [%.4f, %.4f]\n",
                cohort.c_str(), estimates.at("raw").value(),
                estimates.at("raw").ci_low(), estimates.at("raw").ci_high(),
                e.value(), e.ci_low(), e.ci_high());
    // Population truth at the overall mix, with a sampling allowance
    // (the interval covers the noise only; sampling sd here ~0.006).
    const double truth = cohort == "expert" ? 0.35 : 0.25;
    EXPECT_LE(e.ci_low(), truth + 0.03) << cohort;
    EXPECT_GE(e.ci_high(), truth - 0.03) << cohort;
  }
  const double raw_gap =
      t["expert"]["raw"].value() - t["novice"]["raw"].value();
  const double adjusted_gap =
      t["expert"]["adjusted"].value() - t["novice"]["adjusted"].value();
  EXPECT_NEAR(raw_gap, 0.28, 0.06);
  // The planted effect, within both intervals' half-widths (0.999 each)
  // plus a sampling allowance: the raw gap's confounding is gone.
  auto half = [&](const char* c) {
    return (t[c]["adjusted"].ci_high() - t[c]["adjusted"].ci_low()) / 2;
  };
  EXPECT_LE(std::abs(adjusted_gap - 0.10),
            half("expert") + half("novice") + 0.02);
}

// Invariant 2 for adjusted metrics: the k rule counts the accounts whose
// sessions carry the rate's label and a level of every control (the rows
// the regression reads). Every novice session has an outcome, but only 3
// novice accounts (k = 10) report a work mode: novices get their raw rate
// and no adjusted one; experts, whose sessions all carry a work mode, get
// both.
TEST_F(SamplingAdjustIntegrationTest, AdjustedRateNeedsKAccountsWithControls) {
  uint64_t state = 11;
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  constexpr int kAccounts = 5000;
  for (int a = 0; a < kAccounts; ++a) {
    const bool expert = a % 2 == 0;
    for (int s = 0; s < 4; ++s) {
      cohortd::v1::Observation* obs = request.add_observations();
      const std::string account = absl::StrCat("acct-", a);
      obs->set_session_id(absl::StrCat(account, "-s", s));
      obs->set_account_id(account);
      obs->mutable_session_start()->set_seconds(kJan2026 + serial_++);
      obs->set_source("test_classifier@1");
      (*obs->mutable_labels())["expertise"] = expert ? "expert" : "novice";
      (*obs->mutable_labels())["outcome"] =
          Uniform(&state) < 0.3 ? "success" : "failure";
      if (expert || a < 6) {
        (*obs->mutable_labels())["work_mode"] =
            Uniform(&state) < 0.5 ? "build" : "fix";
      }
    }
    if (request.observations_size() >= 4000 || a == kAccounts - 1) {
      ASSERT_NO_FATAL_FAILURE(PushAccepted(&request));
    }
  }
  Seal();
  const AggregateRequest query = RawAndAdjustedByExpertise({"work_mode"});
  AggregateResponse response;
  const grpc::Status status = Aggregate(query, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto t = ByExpertise(response);
  ASSERT_EQ(t.count("novice"), 1u);
  ASSERT_EQ(t.count("expert"), 1u);
  EXPECT_EQ(t["novice"].count("raw"), 1u);
  EXPECT_EQ(t["novice"].count("adjusted"), 0u);
  EXPECT_EQ(t["expert"].count("raw"), 1u);
  ASSERT_EQ(t["expert"].count("adjusted"), 1u);
  // A success rate of 0.3 in both modes; the noise sd here is ~0.03.
  EXPECT_NEAR(t["expert"]["adjusted"].value(), 0.3, 0.15);
}

TEST_F(SamplingAdjustIntegrationTest, AdjustForRefusesWhatItCannotAdjust) {
  auto ask = [&](std::function<void(AggregateRequest*)> edit) {
    AggregateRequest request = RateAndMean(cohortd::v1::NOISE);
    request.add_group_by("expertise");
    edit(&request);
    AggregateResponse response;
    return Aggregate(request, &response);
  };
  grpc::Status s = ask([](AggregateRequest* r) {
    r->mutable_metrics(0)->add_adjust_for("expertise");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("grouped by"));
  s = ask([](AggregateRequest* r) {
    r->mutable_metrics(0)->add_adjust_for("month");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("month"));
  s = ask([](AggregateRequest* r) {
    r->mutable_metrics(0)->add_adjust_for("no_such_thing");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("task_value_band"));
  s = ask([](AggregateRequest* r) {
    Metric sum;
    sum.set_kind(Metric::SUM);
    sum.set_measure("actions_per_prompt");
    sum.add_adjust_for("work_mode");
    *r->add_metrics() = sum;
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("adjust_for"));
  s = ask([](AggregateRequest* r) {
    r->set_interval(cohortd::v1::NOISE_AND_SAMPLING);
    r->mutable_metrics(0)->add_adjust_for("work_mode");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  // Month with a public list of months is a valid control.
  s = ask([](AggregateRequest* r) {
    cohortd::v1::Filter* f = r->add_filters();
    f->set_dimension("month");
    f->add_any_of("2026-01");
    f->add_any_of("2026-02");
    r->mutable_metrics(0)->add_adjust_for("month");
  });
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace cohortd::testing

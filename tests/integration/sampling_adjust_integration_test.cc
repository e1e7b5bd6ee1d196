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

  // `accounts` accounts of the population in the file comment.
  Pushed PushPopulation(int accounts, uint64_t seed) {
    Pushed pushed;
    uint64_t state = seed;
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    auto flush = [&] {
      cohortd::v1::PushResponse response;
      auto context = AuthContext(server_->tokens().ingest);
      const grpc::Status status =
          ingest_->Push(context.get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_EQ(response.rejected_size(), 0);
      request.clear_observations();
    };
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

}  // namespace
}  // namespace cohortd::testing

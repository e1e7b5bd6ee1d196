#include "tools/cohortctl/describe_format.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohortd::cohortctl {
namespace {

using ::testing::HasSubstr;

TEST(DescribeFormatTest, DomainsBoundsAndPrivacy) {
  cohortd::v1::DatasetDescription description;
  description.set_name("sessions");
  description.set_description("One record per session.");
  auto* client = description.add_dimensions();
  client->set_name("client");
  for (const char* v : {"cli", "desktop", "web"}) client->add_values(v);
  auto* topic = description.add_dimensions();
  topic->set_name("task_topic");
  topic->set_open_domain(true);
  topic->set_max_length(64);
  auto* month = description.add_dimensions();
  month->set_name("month");
  month->set_derived(true);
  auto* words = description.add_measures();
  words->set_name("words_per_prompt");
  words->set_upper(20000);
  words->set_granularity(1);
  auto* privacy = description.mutable_privacy();
  privacy->set_k(20);
  privacy->set_default_epsilon(0.5);
  privacy->set_max_epsilon(2);
  privacy->set_delta(1e-9);
  privacy->set_max_cohorts_per_account(10);
  privacy->set_max_sessions_per_cohort(5);

  const std::string text = FormatDescription(description);
  EXPECT_THAT(text, HasSubstr("dataset sessions\n  One record per session.\n"));
  EXPECT_THAT(text, HasSubstr("client      cli, desktop, web (3)\n"));
  EXPECT_THAT(
      text,
      HasSubstr("task_topic  open domain (max 64 bytes; partition selection)"));
  EXPECT_THAT(text, HasSubstr("month       derived by the server\n"));
  EXPECT_THAT(text, HasSubstr("words_per_prompt      0  20000            1\n"));
  EXPECT_THAT(text, HasSubstr("k (min distinct accounts per cohort)  20\n"));
  EXPECT_THAT(text, HasSubstr("default 0.5, max 2\n"));
  EXPECT_THAT(text, HasSubstr("delta per query                       1e-09\n"));
}

TEST(DescribeFormatTest, LongDomainsWrapUnderTheirDimension) {
  cohortd::v1::DatasetDescription description;
  description.set_name("d");
  auto* occupation = description.add_dimensions();
  occupation->set_name("occupation");
  for (int i = 0; i < 12; ++i) {
    occupation->add_values(absl::StrCat("occupation_group_", i));
  }
  const std::string text = FormatDescription(description);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    EXPECT_LE(line.size(), 80u) << line;
  }
  EXPECT_THAT(text, HasSubstr("occupation  occupation_group_0, "));
  EXPECT_THAT(text, HasSubstr("\n            occupation_group_"));
  EXPECT_THAT(text, HasSubstr("occupation_group_11 (12)\n"));
}

TEST(DescribeFormatTest, Budget) {
  cohortd::v1::Budget budget;
  budget.set_principal("dev-analyst");
  budget.set_dataset("sessions");
  budget.mutable_total()->set_epsilon(10);
  budget.mutable_total()->set_delta(1e-6);
  budget.mutable_spent()->set_epsilon(0.5);
  budget.mutable_remaining()->set_epsilon(9.5);
  budget.mutable_remaining()->set_delta(1e-6);
  EXPECT_EQ(FormatBudget(budget),
            "budget of dev-analyst on dataset sessions\n"
            "           epsilon  delta  rho\n"
            "---------  -------  -----  ---\n"
            "total           10  1e-06    0\n"
            "spent          0.5      0    0\n"
            "remaining      9.5  1e-06    0\n");
}

}  // namespace
}  // namespace cohortd::cohortctl

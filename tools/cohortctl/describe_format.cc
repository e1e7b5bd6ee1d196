#include "tools/cohortctl/describe_format.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/cohortctl/table_format.h"

namespace cohortd::cohortctl {

std::string FormatDescription(
    const cohortd::v1::DatasetDescription& description) {
  std::string out = absl::StrCat("dataset ", description.name(), "\n");
  if (!description.description().empty()) {
    absl::StrAppend(&out, "  ", description.description(), "\n");
  }

  Table dimensions;
  dimensions.header = {"dimension", "domain"};
  for (const auto& dimension : description.dimensions()) {
    std::string domain;
    if (dimension.derived()) {
      domain = "derived by the server";
      if (dimension.values_size() > 0) {
        absl::StrAppend(&domain, ": ", absl::StrJoin(dimension.values(), ", "));
      }
    } else if (dimension.open_domain()) {
      domain = absl::StrCat("open domain (max ", dimension.max_length(),
                            " bytes; released through partition selection)");
    } else {
      domain = absl::StrCat(absl::StrJoin(dimension.values(), ", "), " (",
                            dimension.values_size(), ")");
    }
    dimensions.rows.push_back({dimension.name(), domain});
  }
  absl::StrAppend(&out, "\n", FormatTable(dimensions));

  Table measures;
  measures.header = {"measure", "lower", "upper", "granularity"};
  measures.right_aligned = {false, true, true, true};
  for (const auto& measure : description.measures()) {
    measures.rows.push_back(
        {measure.name(), CompactNumber(measure.lower()),
         CompactNumber(measure.upper()),
         measure.granularity() > 0 ? CompactNumber(measure.granularity()) : "-"});
  }
  absl::StrAppend(&out, "\n", FormatTable(measures));

  if (description.has_privacy()) {
    const auto& privacy = description.privacy();
    absl::StrAppend(
        &out, "\nprivacy\n",
        absl::StrFormat("  k (min distinct accounts per cohort)  %d\n",
                        privacy.k()),
        "  epsilon per query                     default ",
        CompactNumber(privacy.default_epsilon()), ", max ",
        CompactNumber(privacy.max_epsilon()), "\n",
        "  delta per query                       ",
        CompactNumber(privacy.delta()), "\n",
        absl::StrFormat("  cohorts per account (L0 bound)        %d\n",
                        privacy.max_cohorts_per_account()),
        absl::StrFormat("  sessions per account per cohort       %d\n",
                        privacy.max_sessions_per_cohort()));
  }
  return out;
}

std::string FormatBudget(const cohortd::v1::Budget& budget) {
  Table table;
  table.header = {"", "epsilon", "delta", "rho"};
  table.right_aligned = {false, true, true, true};
  auto row = [](const char* name, const cohortd::v1::PrivacyCost& cost) {
    return std::vector<std::string>{name, CompactNumber(cost.epsilon()),
                                    CompactNumber(cost.delta()),
                                    CompactNumber(cost.rho())};
  };
  table.rows = {row("total", budget.total()), row("spent", budget.spent()),
                row("remaining", budget.remaining())};
  return absl::StrCat("budget of ", budget.principal(), " on dataset ",
                      budget.dataset(), "\n", FormatTable(table));
}

}  // namespace cohortd::cohortctl

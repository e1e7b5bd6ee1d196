#include "tools/cohortctl/describe_format.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tools/cohortctl/table_format.h"

namespace cohortd::cohortctl {
namespace {

// Keeps the domain column narrow enough for an 80-column terminal next to
// the longest dimension names.
constexpr size_t kDomainWidth = 56;
constexpr size_t kTextWidth = 76;

// Joins `words` with `separator`, starting a new line (keeping the
// separator at the end of the previous one) before `width` is exceeded.
std::vector<std::string> Wrap(const std::vector<std::string>& words,
                              absl::string_view separator, size_t width) {
  std::vector<std::string> lines(1);
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string word =
        i + 1 < words.size() ? absl::StrCat(words[i], separator) : words[i];
    const std::string trimmed(absl::StripTrailingAsciiWhitespace(word));
    if (!lines.back().empty() && lines.back().size() + trimmed.size() > width) {
      absl::StripTrailingAsciiWhitespace(&lines.back());
      lines.emplace_back();
    }
    lines.back() += word;
  }
  return lines;
}

}  // namespace

std::string FormatDescription(
    const cohortd::v1::DatasetDescription& description) {
  std::string out = absl::StrCat("dataset ", description.name(), "\n");
  if (!description.description().empty()) {
    for (const std::string& line :
         Wrap(absl::StrSplit(description.description(), ' ', absl::SkipEmpty()),
              " ", kTextWidth)) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }

  Table dimensions;
  dimensions.header = {"dimension", "domain"};
  for (const auto& dimension : description.dimensions()) {
    std::vector<std::string> domain;
    if (dimension.derived()) {
      domain = {"derived by the server"};
    } else if (dimension.open_domain()) {
      domain = {absl::StrCat("open domain (max ", dimension.max_length(),
                             " bytes; partition selection)")};
    } else {
      std::vector<std::string> values(dimension.values().begin(),
                                      dimension.values().end());
      if (values.empty()) {
        domain = {"no values"};
      } else {
        values.back() += absl::StrCat(" (", values.size(), ")");
        domain = Wrap(values, ", ", kDomainWidth);
      }
    }
    for (size_t i = 0; i < domain.size(); ++i) {
      dimensions.rows.push_back({i == 0 ? dimension.name() : "", domain[i]});
    }
  }
  absl::StrAppend(&out, "\n", FormatTable(dimensions));

  Table measures;
  measures.header = {"measure", "lower", "upper", "granularity"};
  measures.right_aligned = {false, true, true, true};
  for (const auto& measure : description.measures()) {
    measures.rows.push_back({measure.name(), CompactNumber(measure.lower()),
                             CompactNumber(measure.upper()),
                             measure.granularity() > 0
                                 ? CompactNumber(measure.granularity())
                                 : "-"});
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

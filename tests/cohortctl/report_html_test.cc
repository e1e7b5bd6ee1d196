#include "tools/cohortctl/report/report_html.h"

#include <regex>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohortd::cohortctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Panel MakeTestPanel(ChartKind chart, std::vector<std::string> rows,
                    std::vector<std::string> columns, bool percent) {
  Panel panel;
  panel.title = "panel <" + std::to_string(static_cast<int>(chart)) + ">";
  panel.chart = chart;
  panel.row_label = "expertise";
  panel.value_label = "value & unit";
  panel.rows = rows;
  panel.columns = columns;
  panel.percent.assign(columns.size(), percent);
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<std::optional<Cell>> row;
    for (size_t c = 0; c < columns.size(); ++c) {
      const double v = 0.1 * (r + 1) + 0.01 * c;
      // One cell unreleased, to draw a gap.
      if (r == 1 && c == 0) {
        row.push_back(std::nullopt);
      } else {
        row.push_back(Cell{v, v * 0.9, v * 1.1, std::nullopt});
      }
    }
    panel.cells.push_back(row);
  }
  return panel;
}

std::vector<FigureResult> Figures() {
  FigureResult a;
  a.number = 1;
  a.title = "Shares & <things>";
  a.epsilon = 1.5;
  a.suppression = {"work_mode: 2 of 3 cohorts released"};
  a.notes = {"a note"};
  a.panels.push_back(MakeTestPanel(ChartKind::kStackedShares,
                                   {"build", "fix", "write"},
                                   {"all", "2026-01"}, true));
  FigureResult b;
  b.number = 3;
  b.title = "Boxes";
  b.panels.push_back(
      MakeTestPanel(ChartKind::kBoxPlot, {"novice", "expert"},
                    {"p5", "p25", "median", "p75", "p95", "mean"}, false));
  b.panels.push_back(MakeTestPanel(
      ChartKind::kGroupedBars, {"novice", "expert"}, {"vs", "partial"}, true));
  b.panels.push_back(MakeTestPanel(ChartKind::kHorizontalBars,
                                   {"legal", "sales"}, {"vs"}, true));
  b.panels.push_back(MakeTestPanel(ChartKind::kLines, {"build", "fix"},
                                   {"2025-10", "2025-11", "2025-12"}, false));
  return {a, b};
}

ReportContext Context() {
  ReportContext context;
  context.dataset = "sessions";
  context.generated_at = "2026-05-01 00:00 UTC";
  context.privacy.set_k(10);
  context.budget.set_principal("analyst-dev");
  context.budget.mutable_total()->set_epsilon(20);
  context.budget.mutable_spent()->set_epsilon(5);
  context.budget.mutable_remaining()->set_epsilon(15);
  context.has_truth = true;
  return context;
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Every start tag has its end tag, properly nested (void elements and
// self-closed SVG elements excepted).
bool TagsBalanced(const std::string& html) {
  static const std::regex kTag(R"(<(/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*)>)");
  const std::vector<std::string> kVoid = {"meta", "link", "br",
                                          "hr",   "img",  "input"};
  std::vector<std::string> open;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), kTag);
       it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[2];
    const std::string rest = (*it)[3];
    if ((*it)[1] == "/") {
      if (open.empty() || open.back() != name) return false;
      open.pop_back();
    } else if (!rest.empty() && rest.back() == '/') {
      continue;
    } else if (std::find(kVoid.begin(), kVoid.end(), name) == kVoid.end()) {
      open.push_back(name);
    }
  }
  return open.empty();
}

TEST(ReportHtmlTest, WellFormedWithAnSvgPerChartAndTheBudget) {
  const std::string html = RenderReportHtml(Figures(), Context());
  EXPECT_TRUE(TagsBalanced(html));
  EXPECT_THAT(html, ::testing::StartsWith("<!DOCTYPE html>"));
  // Five panels plus the budget panel.
  EXPECT_EQ(Count(html, "<svg "), 6);
  EXPECT_EQ(Count(html, "</svg>"), 6);
  EXPECT_THAT(html, HasSubstr("Privacy budget"));
  EXPECT_THAT(html, HasSubstr("remaining ε 15 of 20"));
  EXPECT_THAT(html, HasSubstr("ε = 1.5"));
  EXPECT_THAT(html, HasSubstr("work_mode: 2 of 3 cohorts released"));
  EXPECT_THAT(html, HasSubstr("Honesty check"));
  EXPECT_THAT(html, HasSubstr("95% confidence intervals"));
}

TEST(ReportHtmlTest, SelfContainedAndEscaped) {
  const std::string html = RenderReportHtml(Figures(), Context());
  EXPECT_THAT(html, Not(HasSubstr("http://")));
  EXPECT_THAT(html, Not(HasSubstr("https://")));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("@import")));
  EXPECT_THAT(html, HasSubstr("Shares &amp; &lt;things&gt;"));
  EXPECT_THAT(html, HasSubstr("value &amp; unit"));
  EXPECT_THAT(html, Not(HasSubstr("<things>")));
}

TEST(ReportHtmlTest, NoFiguresStillAPage) {
  ReportContext context = Context();
  context.has_truth = false;
  const std::string html = RenderReportHtml({}, context);
  EXPECT_TRUE(TagsBalanced(html));
  EXPECT_EQ(Count(html, "<svg "), 1);
  EXPECT_THAT(html, Not(HasSubstr("Honesty check")));
}

}  // namespace
}  // namespace cohortd::cohortctl

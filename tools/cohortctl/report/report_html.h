// The visual report of `cohortctl report --html FILE`: the study's figures
// as one self-contained HTML page with inline SVG charts (stacked shares,
// box plots, bars with error bars, lines) and a privacy-budget panel. No
// script, no external font, image or style sheet: it opens offline and
// can be mailed as is. Pure: a function of the built figures.
#ifndef COHORTD_TOOLS_COHORTCTL_REPORT_REPORT_HTML_H_
#define COHORTD_TOOLS_COHORTCTL_REPORT_REPORT_HTML_H_

#include <string>
#include <vector>

#include "cohortd/v1/cohortd.pb.h"
#include "tools/cohortctl/report/report_figures.h"

namespace cohortd::cohortctl {

// What the page says besides the figures.
struct ReportContext {
  std::string dataset;
  std::string generated_at;  // shown as is, e.g. "2026-04-30 12:00 UTC"
  cohortd::v1::DatasetDescription::Privacy privacy;
  cohortd::v1::Budget budget;  // after the report's queries
  bool has_truth = false;      // figures carry raw truths: show coverage
};

// The page: a header with the privacy parameters, a note on what the
// intervals mean, one section per figure (a chart per panel with axis
// labels and units, a legend where colours encode a series, the epsilon
// spent, the suppression lines and notes, and the truth coverage when
// known) and the budget panel. Text is HTML-escaped.
std::string RenderReportHtml(const std::vector<FigureResult>& figures,
                             const ReportContext& context);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_REPORT_REPORT_HTML_H_

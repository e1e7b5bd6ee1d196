// `cohortctl report`: the seven figures of the study (DOMAIN.md) asked
// through Aggregate and printed as tables with intervals, the budget, the
// cohorts not released, optionally a visual report (--html) and, on a
// synthetic population whose truth is known (--truth), the honesty check.
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/describe_format.h"
#include "tools/cohortctl/report/report_figures.h"
#include "tools/cohortctl/report/report_html.h"
#include "tools/cohortctl/report/truth.h"

namespace cohortd::cohortctl {
namespace {

using cohortd::v1::AggregateResponse;

int RunReport(const CommandEnv& env) {
  std::ostream& out = *env.io.out;
  std::ostream& err = *env.io.err;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(env.global);
  if (!channel.ok()) {
    err << "cohortctl: " << channel.status().message() << "\n";
    return kExitUsage;
  }
  auto stub = cohortd::v1::Query::NewStub(*channel);

  cohortd::v1::DescribeDatasetRequest describe;
  describe.set_dataset(env.global.dataset);
  cohortd::v1::DatasetDescription description;
  grpc::Status status = stub->DescribeDataset(
      MakeContext(env.token, env.global.timeout).get(), describe, &description);
  if (!status.ok()) return ReportRpcError("describe", status, err);
  const int k = description.privacy().k();

  std::optional<GroundTruth> truth;
  if (env.flags.Has("truth")) {
    absl::StatusOr<GroundTruth> read =
        GroundTruth::ReadFile(env.flags.Get("truth"));
    if (!read.ok()) {
      err << "cohortctl: --truth: " << read.status().message() << "\n";
      return kExitError;
    }
    truth = *std::move(read);
    truth->SetGeometricFloors(description);
    truth->AddBand(kValueBand, kValueBandMeasure,
                   {std::begin(kValueBandEdges), std::end(kValueBandEdges)});
    out << "truth: " << truth->sessions() << " sessions read from "
        << env.flags.Get("truth") << "\n";
  }

  out << "cohortctl report: the study's seven figures on dataset "
      << env.global.dataset << ", each a differentially private release\n"
      << "(k=" << k << ", at most "
      << description.privacy().max_cohorts_per_account()
      << " cohorts per account and "
      << description.privacy().max_sessions_per_cohort()
      << " sessions per cohort; intervals are 95%)\n";

  std::vector<FigureResult> figures;
  std::vector<std::string> below_k;
  Coverage total;
  std::vector<std::string> adjusted_honesty;
  int adjusted_misses = 0;
  // Figure 1's released months: the levels the adjusted figures control
  // for (cohortd adjusts for the month only over listed months).
  std::vector<std::string> months;
  for (FigureSpec spec : StudyFigures(env.global.dataset)) {
    AdjustForMonths(months, &spec);
    std::vector<AggregateResponse> responses(spec.queries.size());
    std::vector<TruthByCohort> truths;
    for (size_t i = 0; i < spec.queries.size(); ++i) {
      status = stub->Aggregate(MakeContext(env.token, env.global.timeout).get(),
                               spec.queries[i], &responses[i]);
      if (!status.ok()) {
        return ReportRpcError(absl::StrCat("figure ", spec.number), status,
                              err);
      }
      if (!truth) continue;
      absl::StatusOr<TruthByCohort> computed = truth->Compute(spec.queries[i]);
      if (!computed.ok()) {
        err << "cohortctl: --truth: " << computed.status().message() << "\n";
        return kExitError;
      }
      for (std::string& line :
           CohortsBelowK(spec.queries[i], responses[i], *computed, k)) {
        below_k.push_back(absl::StrCat("figure ", spec.number, ": ", line));
      }
      truths.push_back(*std::move(computed));
    }
    absl::StatusOr<FigureResult> figure =
        BuildFigure(spec, responses, truths, description);
    if (!figure.ok()) {
      err << "cohortctl: " << figure.status().message() << "\n";
      return kExitError;
    }
    if (spec.number == 1 && responses.size() > 1) {
      months = ReleasedMonths(responses[1]);
    }
    out << "\n" << FormatFigureText(*figure);
    if (truth) {
      const Coverage coverage = CoverageOf(*figure);
      total.inside += coverage.inside;
      total.checked += coverage.checked;
      out << "honesty: " << coverage.inside << " of " << coverage.checked
          << " released values have the raw truth inside their interval\n";
      for (std::string& line : AdjustedHonesty(*figure, &adjusted_misses)) {
        adjusted_honesty.push_back(std::move(line));
      }
    }
    figures.push_back(*std::move(figure));
  }

  cohortd::v1::GetBudgetRequest budget_request;
  budget_request.set_dataset(env.global.dataset);
  cohortd::v1::Budget budget;
  status = stub->GetBudget(MakeContext(env.token, env.global.timeout).get(),
                           budget_request, &budget);
  if (!status.ok()) return ReportRpcError("budget", status, err);
  out << "\nPrivacy budget\n" << FormatBudget(budget);

  if (truth) {
    out << "\nHonesty check against the synthetic truth: " << total.inside
        << " of " << total.checked
        << " released values have the raw truth inside their interval.\n"
           "Intervals cover the bounded statistic (after each account is cut\n"
           "to its cohort and session limits and values are clamped), so\n"
           "they can miss the raw truth where heavy users were bounded:\n"
           "session counts most, shares and rates little.\n";
    if (!adjusted_honesty.empty()) {
      out << "\nAdjusted figures against the simulation's planted effects\n"
             "(truth: the exact fixed-effects fit on the truth rows; the\n"
             "tolerance is the released interval): "
          << adjusted_honesty.size() - adjusted_misses << " of "
          << adjusted_honesty.size() << " inside.\n";
      for (const std::string& line : adjusted_honesty) {
        out << "  " << line << "\n";
      }
    }
    if (below_k.empty()) {
      out << "No released cohort has fewer than k=" << k
          << " distinct accounts in the truth.\n";
    } else {
      out << "RELEASED BELOW k=" << k << ":\n";
      for (const std::string& line : below_k) out << "  " << line << "\n";
    }
  }

  if (env.flags.Has("html")) {
    ReportContext context;
    context.dataset = env.global.dataset;
    context.generated_at = absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(),
                                            absl::UTCTimeZone());
    context.privacy = description.privacy();
    context.budget = budget;
    context.has_truth = truth.has_value();
    const std::string path = env.flags.Get("html");
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << RenderReportHtml(figures, context);
    file.close();
    if (!file) {
      err << "cohortctl: cannot write " << path << "\n";
      return kExitError;
    }
    out << "\nvisual report: " << path << "\n";
  }
  return below_k.empty() ? kExitOk : kExitBelowK;
}

}  // namespace

Command ReportCommand() {
  Command command;
  command.name = "report";
  command.summary = "the study's seven figures, with intervals and budget";
  command.description =
      "Asks the seven figures of the study (shared/design/DOMAIN.md) through\n"
      "Aggregate: work-mode shares overall and by month, the human share of\n"
      "planning and implementation decisions, actions and words per prompt\n"
      "by expertise (box plots), success by expertise, verified success of\n"
      "the top 10 occupations, task value by month and work mode, and\n"
      "abandonment of fix sessions by expertise. Prints each as a table\n"
      "with 95% intervals, the epsilon it spent, how many cohorts of each\n"
      "dimension were not released, then the budget left. The figures cost\n"
      "epsilon 9.5 in all; asking again on unchanged data is free.\n"
      "\n"
      "--truth FILE (the CSV of `cohortctl simulate --truth`) adds the\n"
      "honesty check: per figure, how many released values have the raw\n"
      "truth inside their interval, and exit 4 if any released cohort has\n"
      "fewer than k distinct accounts in the truth.\n"
      "--html FILE writes the visual report: one self-contained page.\n";
  command.role = Role::kAnalyst;
  command.flags = {
      {"truth", "FILE", "ground-truth CSV of a simulated population"},
      {"html", "FILE", "write the visual report (HTML with inline SVG)"},
  };
  command.run = RunReport;
  return command;
}

}  // namespace cohortd::cohortctl
